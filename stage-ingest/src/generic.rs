//! The generic source: one Parquet or CSV/TSV file whose columns are named in
//! `[dataset.columns]` (see [`crate::config::ColumnsConfig`]).
//!
//! A file starting with the Parquet magic bytes `PAR1` is read as Parquet, anything else
//! as delimited text with a header. Accepted column types (Parquet): ids as any integer
//! or string type (a float id is refused, since a float cannot hold every 64-bit id);
//! the timestamp as a Timestamp of any unit, or an integer, float or string in
//! `timestamp_unit`; Boolean signals as Boolean, 0/1 numbers or text; numeric signals as
//! any number, Boolean or numeric text. In CSV every value is text and parsed the same
//! way. Unmapped signals are null. Videos get a `duration_ms` feature (median over the
//! log) when `duration_ms` is mapped; there are no other side features.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, TimeUnit};
use common::schema::{BOOL_SIGNALS, NUMERIC_SIGNALS};
use common::{Error, Expect, ParquetInput};

use crate::config::ColumnsConfig;
use crate::events::Flags;
use crate::fields::{self, Origin};
use crate::log::{RawLog, RowSignals, TimeWindow};
use crate::side::SideTable;
use crate::source::{self, SourceData};
use crate::text::TextTable;

/// The source columns to read, in batch order: user, video, timestamp, then the mapped
/// Boolean and numeric signals.
struct Plan<'a> {
    columns: Vec<&'a str>,
    /// (signal position in `BOOL_SIGNALS`, batch column) of mapped Boolean signals.
    flags: Vec<(usize, usize)>,
    /// (signal position in `NUMERIC_SIGNALS`, batch column) of mapped numeric signals.
    numbers: Vec<(usize, usize)>,
}

impl<'a> Plan<'a> {
    fn new(mapping: &'a ColumnsConfig) -> Plan<'a> {
        let mut columns = vec![
            mapping.user.as_str(),
            mapping.video.as_str(),
            mapping.timestamp.as_str(),
        ];
        let mut flags = Vec::new();
        for (signal, source) in mapping.bool_signals().into_iter().enumerate() {
            if let Some(source) = source {
                flags.push((signal, columns.len()));
                columns.push(source);
            }
        }
        let mut numbers = Vec::new();
        for (signal, source) in mapping.numeric_signals().into_iter().enumerate() {
            if let Some(source) = source {
                numbers.push((signal, columns.len()));
                columns.push(source);
            }
        }
        Plan {
            columns,
            flags,
            numbers,
        }
    }

    fn has_numeric(&self) -> [bool; 3] {
        let mut has = [false; 3];
        self.numbers
            .iter()
            .for_each(|&(signal, _)| has[signal] = true);
        has
    }
}

/// True when the file starts with the Parquet magic bytes.
fn is_parquet(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 4];
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let n = file
        .read(&mut magic)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(n == 4 && &magic == b"PAR1")
}

/// Reads the mapped columns of RAW.
pub fn read(
    raw: &Path,
    mapping: &ColumnsConfig,
    limit: Option<u64>,
    window: TimeWindow,
) -> Result<SourceData> {
    if !raw.is_file() {
        anyhow::bail!(
            "{}: no such file (RAW of the generic format is one Parquet or CSV file)",
            raw.display()
        );
    }
    let plan = Plan::new(mapping);
    let mut log = RawLog::new(plan.has_numeric(), window);
    log.begin_file(raw);
    if is_parquet(raw)? {
        let input = open_parquet(raw)?;
        let expects = plan_expects(&plan);
        let requested: Vec<(&str, Expect)> = plan.columns.iter().copied().zip(expects).collect();
        let mut left = limit.unwrap_or(u64::MAX);
        for batch in input.batches(&requested)? {
            if left == 0 {
                break;
            }
            let batch = batch?;
            let keep = (batch.num_rows() as u64).min(left);
            left -= keep;
            push_batch(
                raw,
                &plan,
                mapping,
                &batch.slice(0, keep as usize),
                &mut log,
            )?;
        }
    } else {
        let table = TextTable::open(raw, mapping.delimiter_byte())?;
        let projection = plan
            .columns
            .iter()
            .map(|c| table.column(c))
            .collect::<Result<Vec<_>, _>>()?;
        for batch in table.batches(&projection, limit)? {
            push_batch(raw, &plan, mapping, &batch?, &mut log)?;
        }
    }
    source::check_not_empty(raw, log.rows_read)?;
    source::check_rows_kept(&log)?;
    Ok(SourceData {
        log,
        user_side: SideTable::default(),
        video_side: SideTable::default(),
        feature_inputs: Vec::new(),
        video_duration: mapping.duration_ms.is_some(),
    })
}

/// Opens a Parquet log, refusing one without rows (or without row groups).
fn open_parquet(path: &Path) -> Result<ParquetInput> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
    let row_groups = builder.metadata().num_row_groups();
    if row_groups == 0 {
        return Err(Error::Empty {
            path: path.to_path_buf(),
            what: "the Parquet file has zero row groups (no rows to ingest)".to_string(),
        }
        .into());
    }
    ParquetInput::open(path)
}

fn id_types() -> Vec<DataType> {
    let mut types = integer_types();
    types.extend(text_types());
    types
}

fn integer_types() -> Vec<DataType> {
    use DataType::*;
    vec![Int8, Int16, Int32, Int64, UInt8, UInt16, UInt32, UInt64]
}

fn text_types() -> Vec<DataType> {
    vec![DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View]
}

fn number_types() -> Vec<DataType> {
    let mut types = integer_types();
    types.extend([
        DataType::Float16,
        DataType::Float32,
        DataType::Float64,
        DataType::Boolean,
    ]);
    types.extend(text_types());
    types
}

/// Accepted Parquet types of each planned column, so a wrong type fails before decoding.
fn plan_expects(plan: &Plan) -> Vec<Expect> {
    let mut timestamp = number_types();
    timestamp.retain(|t| *t != DataType::Boolean);
    for unit in [
        TimeUnit::Second,
        TimeUnit::Millisecond,
        TimeUnit::Microsecond,
        TimeUnit::Nanosecond,
    ] {
        timestamp.push(DataType::Timestamp(unit, None));
    }
    let mut expects = vec![
        Expect::AnyOf(id_types()),
        Expect::AnyOf(id_types()),
        Expect::AnyOf(timestamp),
    ];
    expects
        .extend((0..plan.flags.len() + plan.numbers.len()).map(|_| Expect::AnyOf(number_types())));
    expects
}

fn push_batch(
    path: &Path,
    plan: &Plan,
    mapping: &ColumnsConfig,
    batch: &RecordBatch,
    log: &mut RawLog,
) -> Result<()> {
    let first_row = log.inputs.last().map_or(0, |f| f.rows);
    let origin = |i: usize| Origin {
        path,
        column: plan.columns[i],
        first_row,
    };
    let users = fields::intern_ids(batch.column(0), &mut log.users, origin(0))?;
    let videos = fields::intern_ids(batch.column(1), &mut log.videos, origin(1))?;
    let ts = fields::timestamps_ms(batch.column(2), mapping.timestamp_unit, origin(2))?;
    let flags = plan
        .flags
        .iter()
        .map(|&(signal, at)| Ok((signal, fields::flags(batch.column(at), origin(at))?)))
        .collect::<Result<Vec<_>>>()?;
    let numbers = plan
        .numbers
        .iter()
        .map(|&(signal, at)| Ok((signal, fields::numbers(batch.column(at), origin(at))?)))
        .collect::<Result<Vec<_>>>()?;
    debug_assert!(BOOL_SIGNALS.len() == 7 && NUMERIC_SIGNALS.len() == 3);

    for row in 0..batch.num_rows() {
        let mut signals = RowSignals::default();
        let mut row_flags = Flags::default();
        for (signal, values) in &flags {
            row_flags.set(*signal, values[row]);
        }
        signals.flags = row_flags;
        for (signal, values) in &numbers {
            let value = values[row];
            match signal {
                0 => signals.play_time_ms = value,
                1 => signals.duration_ms = value,
                _ => signals.rating = value,
            }
        }
        log.push(users[row], videos[row], ts[row], signals);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampSecondArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::events::{LIKE, RATING};

    fn window() -> TimeWindow {
        TimeWindow::until(1_700_000_000_000)
    }

    fn mapping(extra: &str) -> ColumnsConfig {
        let text = format!(
            r#"{{"user": "u", "video": "v", "timestamp": "t", "timestamp_unit": "s" {extra}}}"#
        );
        serde_json::from_str(&text).unwrap()
    }

    fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap();
        let meta = common::stage_meta("test", "0", 0, serde_json::json!({}));
        common::io::write_batch(path, &batch, &meta).unwrap();
    }

    #[test]
    fn csv_with_mapped_signals_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        std::fs::write(
            &path,
            "u,v,t,liked,stars\na,x,1600000000,1,4.5\nb,x,1600000001,0,\n",
        )
        .unwrap();
        let data = read(
            &path,
            &mapping(r#", "like": "liked", "rating": "stars""#),
            None,
            window(),
        )
        .unwrap();
        assert_eq!(data.log.len(), 2);
        assert_eq!(data.log.ts_ms[0], 1_600_000_000_000);
        assert_eq!(data.log.flags[0].get(LIKE), Some(true));
        assert_eq!(data.log.numeric[RATING][0], 4.5);
        assert!(data.log.numeric[RATING][1].is_nan());
        assert!(!data.video_duration);
    }

    #[test]
    fn parquet_with_typed_timestamp_and_integer_ids_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.parquet");
        write_parquet(
            &path,
            vec![
                (
                    "u",
                    Arc::new(Int64Array::from(vec![9007199254740993, 9007199254740992])),
                ),
                ("v", Arc::new(StringArray::from(vec!["a", "b"]))),
                (
                    "t",
                    Arc::new(TimestampSecondArray::from(vec![
                        1_600_000_000,
                        1_600_000_001,
                    ])),
                ),
                ("r", Arc::new(Float64Array::from(vec![1.0, 2.0]))),
            ],
        );
        let data = read(&path, &mapping(r#", "rating": "r""#), None, window()).unwrap();
        assert_eq!(data.log.len(), 2);
        assert_eq!(data.log.users.len(), 2);
        assert_eq!(data.log.ts_ms, vec![1_600_000_000_000, 1_600_000_001_000]);
    }

    #[test]
    fn parquet_missing_mapped_column_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.parquet");
        write_parquet(
            &path,
            vec![
                ("u", Arc::new(Int64Array::from(vec![1]))),
                ("v", Arc::new(Int64Array::from(vec![1]))),
                ("t", Arc::new(Int64Array::from(vec![1_600_000_000]))),
            ],
        );
        let message = format!(
            "{:#}",
            read(&path, &mapping(r#", "like": "liked""#), None, window()).unwrap_err()
        );
        assert!(
            message.contains("log.parquet") && message.contains("\"liked\""),
            "{message}"
        );
    }

    #[test]
    fn parquet_float_ids_are_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.parquet");
        write_parquet(
            &path,
            vec![
                ("u", Arc::new(Float64Array::from(vec![1.0]))),
                ("v", Arc::new(Int64Array::from(vec![1]))),
                ("t", Arc::new(Int64Array::from(vec![1_600_000_000]))),
            ],
        );
        let message = format!(
            "{:#}",
            read(&path, &mapping(""), None, window()).unwrap_err()
        );
        assert!(
            message.contains("\"u\"") && message.contains("Float64"),
            "{message}"
        );
    }

    #[test]
    fn parquet_without_row_groups_is_an_empty_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new("u", DataType::Int64, true)]));
        let meta = common::stage_meta("test", "0", 0, serde_json::json!({}));
        common::AtomicParquetWriter::create(&path, schema, &meta)
            .unwrap()
            .finish()
            .unwrap();
        let message = format!(
            "{:#}",
            read(&path, &mapping(""), None, window()).unwrap_err()
        );
        assert!(
            message.contains("log.parquet") && message.contains("zero row groups"),
            "{message}"
        );
    }
}

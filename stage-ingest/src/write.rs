//! Writing the three canonical tables: `interactions.parquet` batch by batch (its file is
//! renamed into place last, by the caller), and `users.parquet` / `videos.parquet` in one
//! batch each.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{
    new_null_array, ArrayRef, BooleanArray, Float32Array, RecordBatch, StringArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use common::columns::{timestamp_ms_array, timestamp_type};
use common::schema::{files, BOOL_SIGNALS, NUMERIC_SIGNALS, SPLIT, TS, USER_IDX, VIDEO_IDX};
use common::{AtomicParquetWriter, IdColumn, Split, StageMeta};

use crate::events::Events;
use crate::split::SplitCuts;

/// Rows per written batch: bounds the memory of the Arrow arrays built for one write.
const WRITE_BATCH_ROWS: usize = 1 << 16;

/// The schema of `interactions.parquet`.
pub fn interactions_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new(USER_IDX, DataType::UInt32, false),
        Field::new(VIDEO_IDX, DataType::UInt32, false),
        Field::new(TS, timestamp_type(), false),
        Field::new(SPLIT, DataType::Utf8, false),
    ];
    fields.extend(
        BOOL_SIGNALS
            .iter()
            .map(|name| Field::new(*name, DataType::Boolean, true)),
    );
    fields.extend(
        NUMERIC_SIGNALS
            .iter()
            .map(|name| Field::new(*name, DataType::Float32, true)),
    );
    Arc::new(Schema::new(fields))
}

/// Streams canonical rows into `interactions.parquet.tmp`.
pub struct InteractionWriter {
    writer: AtomicParquetWriter,
    path: PathBuf,
    rows_per_split: [u64; 3],
}

impl InteractionWriter {
    /// Creates the temporary file in `dir`.
    pub fn create(dir: &Path, meta: &StageMeta) -> Result<InteractionWriter> {
        let path = dir.join(files::INTERACTIONS);
        let writer = AtomicParquetWriter::create(&path, interactions_schema(), meta)?;
        Ok(InteractionWriter {
            writer,
            path,
            rows_per_split: [0; 3],
        })
    }

    /// Final path of the file (written under `<path>.tmp` until `finish`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends rows that continue the (user_idx, ts, video_idx) order.
    pub fn write(&mut self, events: &Events, cuts: &SplitCuts) -> Result<()> {
        self.write_rows(events, 0..events.len(), cuts)
    }

    /// Appends the rows `rows` of `events`.
    pub fn write_rows(
        &mut self,
        events: &Events,
        rows: Range<usize>,
        cuts: &SplitCuts,
    ) -> Result<()> {
        let mut start = rows.start;
        while start < rows.end {
            let end = (start + WRITE_BATCH_ROWS).min(rows.end);
            let batch = self.batch(events, start, end, cuts)?;
            self.writer.write(&batch)?;
            start = end;
        }
        Ok(())
    }

    fn batch(
        &mut self,
        events: &Events,
        start: usize,
        end: usize,
        cuts: &SplitCuts,
    ) -> Result<RecordBatch> {
        let rows = start..end;
        let splits: Vec<Split> = events.ts_ms[rows.clone()]
            .iter()
            .map(|&t| cuts.assign(t))
            .collect();
        for split in &splits {
            self.rows_per_split[*split as usize] += 1;
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(events.user_idx[rows.clone()].to_vec())),
            Arc::new(UInt32Array::from(events.video_idx[rows.clone()].to_vec())),
            timestamp_ms_array(events.ts_ms[rows.clone()].to_vec()),
            Arc::new(StringArray::from_iter_values(
                splits.iter().map(|s| s.as_str()),
            )),
        ];
        for signal in 0..BOOL_SIGNALS.len() {
            let values: BooleanArray = events.flags[rows.clone()]
                .iter()
                .map(|f| f.get(signal))
                .collect();
            columns.push(Arc::new(values));
        }
        for values in &events.numeric {
            if values.is_empty() {
                columns.push(new_null_array(&DataType::Float32, end - start));
            } else {
                let values: Float32Array = values[rows.clone()]
                    .iter()
                    .map(|&v| (!v.is_nan()).then_some(v))
                    .collect();
                columns.push(Arc::new(values));
            }
        }
        Ok(RecordBatch::try_new(self.writer.schema().clone(), columns)?)
    }

    /// Rows written so far per split (train, valid, test).
    pub fn rows_per_split(&self) -> [u64; 3] {
        self.rows_per_split
    }

    /// Closes the file and renames it into place; returns the rows written.
    pub fn finish(self) -> Result<u64> {
        self.writer.finish()
    }
}

/// Writes an entity table: dense index 0..n, original id, then the feature columns.
pub fn write_entities(
    path: &Path,
    (idx_column, id_column): (&str, &str),
    ids: &IdColumn,
    features: Vec<(String, ArrayRef)>,
    meta: &StageMeta,
) -> Result<u64> {
    let n = ids.len();
    let mut fields = vec![
        Field::new(idx_column, DataType::UInt32, false),
        Field::new(id_column, ids.data_type(), false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(0..n as u32)),
        ids.to_array(),
    ];
    for (name, array) in features {
        debug_assert_eq!(array.len(), n, "feature {name}");
        fields.push(Field::new(name, array.data_type().clone(), true));
        columns.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    common::io::write_batch(path, &batch, meta)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use common::ParquetInput;

    use super::*;
    use crate::events::{Flags, LIKE};

    fn meta() -> StageMeta {
        common::stage_meta("stage-ingest", "test", 1, serde_json::json!({}))
    }

    #[test]
    fn interactions_round_trip_with_nulls_and_splits() {
        let dir = tempfile::tempdir().unwrap();
        let mut events = Events::with_capacity(3, [true, false, false]);
        events.user_idx = vec![0, 0, 1];
        events.video_idx = vec![1, 0, 0];
        events.ts_ms = vec![10, 20, 30];
        events.flags = vec![
            Flags::default().with(LIKE, Some(true)),
            Flags::default(),
            Flags::default(),
        ];
        events.numeric[0] = vec![1.5, f32::NAN, 2.0];
        let cuts = SplitCuts {
            valid_from_ms: 20,
            test_from_ms: 30,
        };

        let mut writer = InteractionWriter::create(dir.path(), &meta()).unwrap();
        writer.write(&events, &cuts).unwrap();
        assert_eq!(writer.rows_per_split(), [1, 1, 1]);
        assert_eq!(writer.finish().unwrap(), 3);

        let input = ParquetInput::open(&dir.path().join(files::INTERACTIONS)).unwrap();
        assert_eq!(input.schema().fields(), interactions_schema().fields());
        let columns = input
            .read_columns(&[
                ("split", common::Expect::Exactly(DataType::Utf8)),
                ("like", common::Expect::Exactly(DataType::Boolean)),
                ("play_time_ms", common::Expect::Exactly(DataType::Float32)),
                ("rating", common::Expect::Exactly(DataType::Float32)),
            ])
            .unwrap();
        let splits: Vec<&str> = columns[0].as_string::<i32>().iter().flatten().collect();
        assert_eq!(splits, vec!["train", "valid", "test"]);
        assert!(columns[1].as_boolean().value(0) && columns[1].is_null(1));
        assert!(columns[2].is_null(1));
        assert_eq!(columns[3].null_count(), 3);
    }
}

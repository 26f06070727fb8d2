//! The canonical interaction table, loaded column by column into dense vectors.
//!
//! Stages ask only for the signals they use, so a 100M-row log costs 4 bytes a row per
//! index column plus 4 bytes a row per requested signal, with no per-row allocation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use arrow::datatypes::DataType;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::compute::cast;

use crate::columns::{f32_values_nan_null, timestamp_ms_values, u32_values};
use crate::config::LabelRule;
use crate::error::Error;
use crate::io::{Expect, ParquetInput};
use crate::schema::{files, Split, SPLIT, TS, USER_IDX, VIDEO_IDX};

/// Interactions in file order.
#[derive(Debug, Clone, Default)]
pub struct Interactions {
    pub path: PathBuf,
    pub user_idx: Vec<u32>,
    pub video_idx: Vec<u32>,
    /// Epoch milliseconds.
    pub ts_ms: Vec<i64>,
    pub split: Vec<Split>,
    /// Requested signals as f32 (Booleans as 0/1), NaN where the source has no value.
    pub signals: BTreeMap<String, Vec<f32>>,
    /// Number of users and videos in `users.parquet` / `videos.parquet`.
    pub n_users: u32,
    pub n_videos: u32,
}

impl Interactions {
    /// Loads `interactions.parquet` of a dataset folder with the given signals.
    ///
    /// Indices are checked against the entity tables, so an unknown user or video fails
    /// here with its row instead of indexing out of bounds later.
    pub fn load(dataset_dir: &Path, signals: &[&str]) -> Result<Interactions> {
        let path = dataset_dir.join(files::INTERACTIONS);
        let n_users = ParquetInput::open(&dataset_dir.join(files::USERS))?.n_rows() as u32;
        let n_videos = ParquetInput::open(&dataset_dir.join(files::VIDEOS))?.n_rows() as u32;
        let input = ParquetInput::open(&path)?;

        let mut columns = vec![
            (USER_IDX, Expect::Exactly(DataType::UInt32)),
            (VIDEO_IDX, Expect::Exactly(DataType::UInt32)),
            (TS, Expect::Exactly(crate::columns::timestamp_type())),
            (SPLIT, Expect::Exactly(DataType::Utf8)),
        ];
        for signal in signals {
            columns.push((signal, Expect::Numeric));
        }

        let mut table = Interactions {
            path: path.clone(),
            n_users,
            n_videos,
            ..Default::default()
        };
        let n_rows = input.n_rows() as usize;
        table.user_idx.reserve(n_rows);
        table.video_idx.reserve(n_rows);
        table.ts_ms.reserve(n_rows);
        table.split.reserve(n_rows);
        for batch in input.batches(&columns)? {
            let batch = batch?;
            let offset = table.user_idx.len();
            let users = u32_values(batch.column(0), &path, USER_IDX)?;
            let videos = u32_values(batch.column(1), &path, VIDEO_IDX)?;
            check_indices(&users, n_users, &path, USER_IDX, offset, files::USERS)?;
            check_indices(&videos, n_videos, &path, VIDEO_IDX, offset, files::VIDEOS)?;
            table.user_idx.extend(users);
            table.video_idx.extend(videos);
            table
                .ts_ms
                .extend(timestamp_ms_values(batch.column(2), &path, TS)?);
            decode_splits(batch.column(3), &path, offset, &mut table.split)?;
            for (i, signal) in signals.iter().enumerate() {
                let values = f32_values_nan_null(batch.column(4 + i), &path, signal)?;
                table
                    .signals
                    .entry(signal.to_string())
                    .or_default()
                    .extend(values);
            }
        }
        Ok(table)
    }

    pub fn len(&self) -> usize {
        self.user_idx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.user_idx.is_empty()
    }

    /// The values of a loaded signal.
    pub fn signal(&self, name: &str) -> &[f32] {
        self.signals
            .get(name)
            .unwrap_or_else(|| panic!("signal \"{name}\" was not requested when loading"))
    }

    /// Per-row labels of a rule: 1, 0, or -1 where the signal is missing.
    pub fn labels(&self, rule: &LabelRule) -> Vec<i8> {
        self.signal(&rule.signal)
            .iter()
            .map(|&value| match rule.apply(value) {
                Some(true) => 1,
                Some(false) => 0,
                None => -1,
            })
            .collect()
    }
}

/// Parses a split column (rows `offset..` of `path`) straight from the Arrow buffer: no
/// string is allocated per row, which matters at 100M rows.
pub fn decode_splits(
    array: &ArrayRef,
    path: &Path,
    offset: usize,
    out: &mut Vec<Split>,
) -> Result<(), Error> {
    let bad = |row: usize, value: String| Error::BadValue {
        path: path.to_path_buf(),
        column: SPLIT.to_string(),
        row: (offset + row) as u64,
        value,
        reason: "expected train, valid or test".to_string(),
    };
    // Large and view strings are accepted by the schema check; bring them to plain Utf8.
    let text = cast(array, &DataType::Utf8).map_err(|_| Error::ColumnType {
        path: path.to_path_buf(),
        column: SPLIT.to_string(),
        expected: "Utf8".to_string(),
        found: array.data_type().to_string(),
    })?;
    let text = text
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8");
    for row in 0..text.len() {
        if text.is_null(row) {
            return Err(bad(row, "null".to_string()));
        }
        let value = text.value(row);
        out.push(Split::parse(value).ok_or_else(|| bad(row, format!("\"{value}\"")))?);
    }
    Ok(())
}

fn check_indices(
    values: &[u32],
    bound: u32,
    path: &Path,
    column: &str,
    offset: usize,
    table: &str,
) -> Result<(), Error> {
    match values.iter().position(|&v| v >= bound) {
        None => Ok(()),
        Some(row) => Err(Error::BadValue {
            path: path.to_path_buf(),
            column: column.to_string(),
            row: (offset + row) as u64,
            value: values[row].to_string(),
            reason: format!("unknown index: {table} has {bound} rows"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_splits_reads_each_split_and_names_a_bad_row() {
        let array: ArrayRef =
            std::sync::Arc::new(StringArray::from(vec!["train", "valid", "test"]));
        let mut out = Vec::new();
        decode_splits(&array, Path::new("i.parquet"), 0, &mut out).unwrap();
        assert_eq!(out, vec![Split::Train, Split::Valid, Split::Test]);

        let bad: ArrayRef =
            std::sync::Arc::new(StringArray::from(vec![Some("train"), Some("Test")]));
        let message = decode_splits(&bad, Path::new("i.parquet"), 10, &mut out)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("i.parquet: column \"split\", row 11: value \"Test\""),
            "{message}"
        );

        let null: ArrayRef = std::sync::Arc::new(StringArray::from(vec![None::<&str>]));
        assert!(decode_splits(&null, Path::new("i"), 0, &mut out)
            .unwrap_err()
            .to_string()
            .contains("null"));
    }
}

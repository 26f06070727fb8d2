//! Original ids of users and videos, kept exactly as the source wrote them.
//!
//! A source whose ids are all canonical 64-bit integers keeps them as Int64 (so
//! 9007199254740993 stays distinct from 9007199254740992, which a float would merge); any
//! other id column stays Utf8. Outputs carry these ids next to the dense indices.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use arrow::datatypes::DataType;

use crate::error::Error;
use crate::io::{Expect, ParquetInput};

/// The original ids of one entity, indexed by its dense index.
#[derive(Debug, Clone, PartialEq)]
pub enum IdColumn {
    Int64(Vec<i64>),
    Utf8(Vec<String>),
}

impl IdColumn {
    pub fn len(&self) -> usize {
        match self {
            IdColumn::Int64(ids) => ids.len(),
            IdColumn::Utf8(ids) => ids.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn data_type(&self) -> DataType {
        match self {
            IdColumn::Int64(_) => DataType::Int64,
            IdColumn::Utf8(_) => DataType::Utf8,
        }
    }

    /// The id of dense index `idx`, as text (for messages and logs).
    pub fn display(&self, idx: u32) -> String {
        match self {
            IdColumn::Int64(ids) => ids[idx as usize].to_string(),
            IdColumn::Utf8(ids) => ids[idx as usize].clone(),
        }
    }

    /// The ids of the given dense indices, as an Arrow array of the id type.
    pub fn take(&self, indices: &[u32]) -> ArrayRef {
        match self {
            IdColumn::Int64(ids) => Arc::new(Int64Array::from_iter_values(
                indices.iter().map(|&i| ids[i as usize]),
            )),
            IdColumn::Utf8(ids) => Arc::new(StringArray::from_iter_values(
                indices.iter().map(|&i| ids[i as usize].as_str()),
            )),
        }
    }

    /// All ids in index order.
    pub fn to_array(&self) -> ArrayRef {
        match self {
            IdColumn::Int64(ids) => Arc::new(Int64Array::from(ids.clone())),
            IdColumn::Utf8(ids) => Arc::new(StringArray::from(ids.clone())),
        }
    }

    /// Reads the id column of `users.parquet` / `videos.parquet`, checking that the index
    /// column is exactly 0..n in order.
    pub fn read(input: &ParquetInput, idx_column: &str, id_column: &str) -> Result<IdColumn> {
        let id_types = Expect::AnyOf(vec![DataType::Int64, DataType::Utf8]);
        let columns = input.read_columns(&[
            (idx_column, Expect::Exactly(DataType::UInt32)),
            (id_column, id_types),
        ])?;
        let indices = crate::columns::u32_values(&columns[0], input.path(), idx_column)?;
        if let Some(row) = indices
            .iter()
            .enumerate()
            .position(|(row, &idx)| idx as usize != row)
        {
            return Err(Error::BadValue {
                path: input.path().to_path_buf(),
                column: idx_column.to_string(),
                row: row as u64,
                value: indices[row].to_string(),
                reason: format!("indices must run 0, 1, 2, ... in row order (expected {row})"),
            }
            .into());
        }
        let ids = &columns[1];
        if ids.null_count() > 0 {
            let row = (0..ids.len()).find(|&r| ids.is_null(r)).unwrap_or(0);
            return Err(Error::BadValue {
                path: input.path().to_path_buf(),
                column: id_column.to_string(),
                row: row as u64,
                value: "null".to_string(),
                reason: "ids may not be null".to_string(),
            }
            .into());
        }
        Ok(match ids.data_type() {
            DataType::Int64 => IdColumn::Int64(
                ids.as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("Int64")
                    .values()
                    .to_vec(),
            ),
            _ => IdColumn::Utf8(crate::columns::string_values(ids, input.path(), id_column)?),
        })
    }
}

/// Parses a textual id as a canonical 64-bit integer: no sign, spaces or leading zeros that
/// a round trip through an integer would lose.
pub fn canonical_i64(text: &str) -> Option<i64> {
    let value: i64 = text.parse().ok()?;
    (value.to_string() == text).then_some(value)
}

/// Reads the ids of both entities from a dataset folder.
pub fn read_entity_ids(dataset_dir: &Path) -> Result<(IdColumn, IdColumn)> {
    use crate::schema::{files, USER_ID, USER_IDX, VIDEO_ID, VIDEO_IDX};
    let users = ParquetInput::open(&dataset_dir.join(files::USERS))?;
    let videos = ParquetInput::open(&dataset_dir.join(files::VIDEOS))?;
    Ok((
        IdColumn::read(&users, USER_IDX, USER_ID)?,
        IdColumn::read(&videos, VIDEO_IDX, VIDEO_ID)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integers_round_trip_and_others_do_not() {
        assert_eq!(canonical_i64("9007199254740993"), Some(9007199254740993));
        assert_eq!(canonical_i64("-5"), Some(-5));
        assert_eq!(canonical_i64("007"), None);
        assert_eq!(canonical_i64("+7"), None);
        assert_eq!(canonical_i64(" 7"), None);
        assert_eq!(canonical_i64("abc"), None);
    }
}

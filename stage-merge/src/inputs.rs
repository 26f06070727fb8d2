//! Step 1: reads the candidate pairs and their co-visitation score; every objective's two similarity files are read with
//! `common::aligned`, which checks that each has exactly the candidate rows, in order.
//!
//! Reads `candidates.parquet` (`source_idx`, `source_id`, `candidate_idx`, `candidate_id`,
//! `score` Float32),
//! `als_<obj>.parquet` (`source_idx`, `candidate_idx`, `linear_score` Float32) and
//! `twotower_<obj>.parquet` (`source_idx`, `candidate_idx`, `nonlinear_score` Float32);
//! writes nothing.

use std::path::{Path, PathBuf};

use anyhow::Result;
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float32Type};
use common::columns::u32_values;
use common::schema::{files, CANDIDATE_ID, CANDIDATE_IDX, SOURCE_ID, SOURCE_IDX};
use common::{Error, Expect, ParquetInput};

/// Column of the ALS similarity.
pub const LINEAR_SCORE: &str = "linear_score";
/// Column of the co-visitation score in candidates.parquet.
pub const SCORE: &str = "score";
/// Column of the two-tower similarity.
pub const NONLINEAR_SCORE: &str = "nonlinear_score";

/// The candidate pairs, in file order.
#[derive(Debug, Clone)]
pub struct Candidates {
    pub path: PathBuf,
    pub source_idx: Vec<u32>,
    pub candidate_idx: Vec<u32>,
    /// The co-visitation score of stage 1.
    pub score: Vec<f32>,
    /// Original ids, as stored (Int64 or Utf8), for `take` on the kept rows.
    pub source_id: ArrayRef,
    pub candidate_id: ArrayRef,
}

impl Candidates {
    /// The pairs as a score file must list them.
    pub fn pairs(&self) -> common::aligned::CandidatePairs<'_> {
        common::aligned::CandidatePairs {
            path: &self.path,
            source_idx: &self.source_idx,
            candidate_idx: &self.candidate_idx,
        }
    }

    /// Number of candidate pairs.
    pub fn len(&self) -> usize {
        self.source_idx.len()
    }

    /// True when there is no pair.
    pub fn is_empty(&self) -> bool {
        self.source_idx.is_empty()
    }

    /// Row ranges of each source, in file order.
    pub fn groups(&self) -> Vec<std::ops::Range<usize>> {
        let mut groups = Vec::new();
        let mut start = 0;
        for row in 1..=self.len() {
            if row == self.len() || self.source_idx[row] != self.source_idx[start] {
                groups.push(start..row);
                start = row;
            }
        }
        groups
    }
}

fn id_type() -> Expect {
    Expect::AnyOf(vec![DataType::Int64, DataType::Utf8])
}

/// Reads `candidates.parquet`; rows of one source must be contiguous and sources ascending.
pub fn read_candidates(dir: &Path) -> Result<Candidates> {
    let path = dir.join(files::CANDIDATES);
    let input = ParquetInput::open(&path)?;
    let columns = input.read_columns(&[
        (SOURCE_IDX, Expect::Exactly(DataType::UInt32)),
        (SOURCE_ID, id_type()),
        (CANDIDATE_IDX, Expect::Exactly(DataType::UInt32)),
        (CANDIDATE_ID, id_type()),
        (SCORE, Expect::Exactly(DataType::Float32)),
    ])?;
    let source_idx = u32_values(&columns[0], &path, SOURCE_IDX)?;
    let candidate_idx = u32_values(&columns[2], &path, CANDIDATE_IDX)?;
    let score = finite_f32(&columns[4], &path, SCORE)?;
    if source_idx.is_empty() {
        return Err(Error::Empty {
            path,
            what: "no candidate pairs to merge".into(),
        }
        .into());
    }
    if let Some(row) = source_idx.windows(2).position(|w| w[1] < w[0]) {
        return Err(Error::BadValue {
            path,
            column: SOURCE_IDX.into(),
            row: row as u64 + 1,
            value: source_idx[row + 1].to_string(),
            reason: format!(
                "rows must be sorted by source_idx (previous row has {})",
                source_idx[row]
            ),
        }
        .into());
    }
    for (column, array) in [(SOURCE_ID, &columns[1]), (CANDIDATE_ID, &columns[3])] {
        if let Some(row) = (0..array.len()).find(|&r| array.is_null(r)) {
            return Err(Error::BadValue {
                path,
                column: column.into(),
                row: row as u64,
                value: "null".into(),
                reason: "ids may not be null".into(),
            }
            .into());
        }
    }
    Ok(Candidates {
        path,
        source_idx,
        candidate_idx,
        score,
        source_id: columns[1].clone(),
        candidate_id: columns[3].clone(),
    })
}

/// A Float32 column without nulls, NaN or infinities.
fn finite_f32(array: &ArrayRef, path: &Path, column: &str) -> Result<Vec<f32>> {
    let values = array.as_primitive::<Float32Type>();
    for row in 0..values.len() {
        if values.is_null(row) || !values.value(row).is_finite() {
            return Err(Error::BadValue {
                path: path.to_path_buf(),
                column: column.into(),
                row: row as u64,
                value: if values.is_null(row) {
                    "null".into()
                } else {
                    values.value(row).to_string()
                },
                reason: "scores must be finite numbers".into(),
            }
            .into());
        }
    }
    Ok(values.values().to_vec())
}

/// File names of one objective's two similarity files.
pub fn score_files(dir: &Path, objective: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("als_{objective}.parquet")),
        dir.join(format!("twotower_{objective}.parquet")),
    )
}

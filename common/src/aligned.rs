//! Per-pair score files (`als_<obj>.parquet`, `twotower_<obj>.parquet`) hold one row per
//! row of `candidates.parquet`, in the same order. Reading one checks that alignment row by
//! row, so a score file left over from an older candidate list is an error, not a silent
//! mismatch. Used by stage-merge and stage-eval.

use std::path::Path;

use anyhow::{Context, Result};
use arrow::array::{Array, Float32Array};
use arrow::datatypes::DataType;

use crate::columns::u32_values;
use crate::error::Error;
use crate::io::{Expect, ParquetInput};
use crate::schema::{CANDIDATE_IDX, SOURCE_IDX};

/// The candidate pairs a score file must match, in `candidates.parquet` order.
#[derive(Debug, Clone, Copy)]
pub struct CandidatePairs<'a> {
    /// The candidates file, for messages.
    pub path: &'a Path,
    pub source_idx: &'a [u32],
    pub candidate_idx: &'a [u32],
}

impl CandidatePairs<'_> {
    pub fn len(&self) -> usize {
        self.source_idx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.source_idx.is_empty()
    }
}

/// Reads one score column of a per-objective file after checking, row by row, that its
/// pairs are the candidate pairs; every score must be finite.
pub fn read_aligned_scores(
    path: &Path,
    score_column: &str,
    candidates: &CandidatePairs,
) -> Result<Vec<f32>> {
    let input = ParquetInput::open(path)?;
    if input.n_rows() != candidates.len() as u64 {
        anyhow::bail!(
            "{} has {} rows but {} has {}: both must hold one row per candidate pair",
            path.display(),
            input.n_rows(),
            candidates.path.display(),
            candidates.len()
        );
    }
    let columns = [
        (SOURCE_IDX, Expect::Exactly(DataType::UInt32)),
        (CANDIDATE_IDX, Expect::Exactly(DataType::UInt32)),
        (score_column, Expect::Exactly(DataType::Float32)),
    ];
    let mut scores = Vec::with_capacity(candidates.len());
    for batch in input.batches(&columns)? {
        let batch = batch?;
        let offset = scores.len();
        let sources = u32_values(batch.column(0), path, SOURCE_IDX)?;
        let pairs = u32_values(batch.column(1), path, CANDIDATE_IDX)?;
        let end = offset + sources.len();
        if end > candidates.len() {
            anyhow::bail!("{} holds more rows than its footer says", path.display());
        }
        let expected_sources = &candidates.source_idx[offset..end];
        let expected_pairs = &candidates.candidate_idx[offset..end];
        if let Some(i) = (0..sources.len())
            .find(|&i| sources[i] != expected_sources[i] || pairs[i] != expected_pairs[i])
        {
            anyhow::bail!(
                "row {}: {} has pair (source_idx {}, candidate_idx {}) but {} has (source_idx {}, \
                 candidate_idx {}); re-run the stage that wrote {} after stage-candidates",
                offset + i,
                path.display(),
                sources[i],
                pairs[i],
                candidates.path.display(),
                expected_sources[i],
                expected_pairs[i],
                path.file_name().unwrap_or_default().to_string_lossy()
            );
        }
        let values = batch
            .column(2)
            .as_any()
            .downcast_ref::<Float32Array>()
            .context("score column type was checked as Float32")?;
        for i in 0..values.len() {
            let value = if values.is_null(i) {
                f32::NAN
            } else {
                values.value(i)
            };
            if !value.is_finite() {
                return Err(Error::BadValue {
                    path: path.to_path_buf(),
                    column: score_column.into(),
                    row: (offset + i) as u64,
                    value: if values.is_null(i) {
                        "null".into()
                    } else {
                        value.to_string()
                    },
                    reason: "scores must be finite numbers".into(),
                }
                .into());
            }
            scores.push(value);
        }
    }
    Ok(scores)
}

//! Step 4: the final score of every candidate pair, the top N per source, and
//! `related.parquet`.
//!
//! Reads the candidate pairs, the similarities s_k and the score terms (`score`); writes
//! `related.parquet` (`source_idx` UInt32, `source_id`, `rank` UInt32, `candidate_idx`
//! UInt32, `candidate_id`, `score` Float32, then per objective `s_<obj>` and
//! `contrib_<obj>` Float32, then `s_covisitation` (the co-visitation percentile, or probability under
//! `calibrated_max`) and
//! `contrib_covisitation`), sorted by (source_idx, rank). The contributions of a row add
//! up to its score.

use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use common::columns::{f32_array, u32_array};
use common::schema::{CANDIDATE_ID, CANDIDATE_IDX, SOURCE_ID, SOURCE_IDX};
use common::AtomicParquetWriter;
use rayon::prelude::*;

use crate::inputs::Candidates;
use crate::score::{self, Terms};

/// Output rows per written batch.
const WRITE_ROWS: usize = 1 << 20;

/// The kept pairs, in output order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ranked {
    /// Row of candidates.parquet of each kept pair.
    pub rows: Vec<usize>,
    pub rank: Vec<u32>,
    pub score: Vec<f32>,
}

/// Scores every pair as sum_k f_k t_k (`score::pair_score`) and keeps the `top_n` best of
/// each source.
///
/// Ranking uses the Float32 score that is written, so equal scores in the file are always
/// ordered by candidate index. Each source is an independent task; the result does not
/// depend on the thread count.
pub fn rank(candidates: &Candidates, terms: &Terms, top_n: usize) -> Ranked {
    let per_source: Vec<Vec<(usize, f32)>> = candidates
        .groups()
        .into_par_iter()
        .map(|group| {
            let mut scored: Vec<(usize, f32)> = group
                .map(|row| (row, score::pair_score(terms, row)))
                .collect();
            scored.sort_unstable_by(|a, b| {
                b.1.total_cmp(&a.1)
                    .then(candidates.candidate_idx[a.0].cmp(&candidates.candidate_idx[b.0]))
            });
            scored.truncate(top_n);
            scored
        })
        .collect();

    let mut ranked = Ranked::default();
    for list in per_source {
        for (position, (row, score)) in list.into_iter().enumerate() {
            ranked.rows.push(row);
            ranked.rank.push(position as u32 + 1);
            ranked.score.push(score);
        }
    }
    ranked
}

/// The schema of `related.parquet`.
pub fn schema(id_type: &DataType, objectives: &[String]) -> SchemaRef {
    let mut fields = vec![
        Field::new(SOURCE_IDX, DataType::UInt32, false),
        Field::new(SOURCE_ID, id_type.clone(), false),
        Field::new("rank", DataType::UInt32, false),
        Field::new(CANDIDATE_IDX, DataType::UInt32, false),
        Field::new(CANDIDATE_ID, id_type.clone(), false),
        Field::new("score", DataType::Float32, false),
    ];
    for name in objectives {
        fields.push(Field::new(format!("s_{name}"), DataType::Float32, false));
        fields.push(Field::new(
            format!("contrib_{name}"),
            DataType::Float32,
            false,
        ));
    }
    fields.push(Field::new("s_covisitation", DataType::Float32, false));
    fields.push(Field::new("contrib_covisitation", DataType::Float32, false));
    Arc::new(Schema::new(fields))
}

/// Writes the kept pairs in batches; the caller finishes (renames) the file.
pub fn write(
    writer: &mut AtomicParquetWriter,
    candidates: &Candidates,
    ranked: &Ranked,
    similarity: &[Vec<f32>],
    terms: &Terms,
) -> Result<()> {
    for start in (0..ranked.rows.len()).step_by(WRITE_ROWS) {
        let end = (start + WRITE_ROWS).min(ranked.rows.len());
        let rows = &ranked.rows[start..end];
        let positions = UInt32Array::from_iter_values(rows.iter().map(|&r| r as u32));
        let mut columns: Vec<ArrayRef> = vec![
            u32_array(rows.iter().map(|&r| candidates.source_idx[r]).collect()),
            take(candidates.source_id.as_ref(), &positions, None)?,
            u32_array(ranked.rank[start..end].to_vec()),
            u32_array(rows.iter().map(|&r| candidates.candidate_idx[r]).collect()),
            take(candidates.candidate_id.as_ref(), &positions, None)?,
            f32_array(ranked.score[start..end].to_vec()),
        ];
        // One s column per objective, then the co-visitation percentile (its own term).
        let shown = similarity
            .iter()
            .map(Vec::as_slice)
            .chain(terms.columns.last().copied());
        for ((s, t), factor) in shown.zip(&terms.columns).zip(&terms.factors) {
            columns.push(f32_array(rows.iter().map(|&r| s[r]).collect()));
            columns.push(f32_array(
                rows.iter()
                    .map(|&r| (factor * t[r] as f64) as f32)
                    .collect(),
            ));
        }
        writer.write_columns(columns)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn candidates(source_idx: Vec<u32>, candidate_idx: Vec<u32>) -> Candidates {
        let n = source_idx.len() as i64;
        Candidates {
            path: "c.parquet".into(),
            source_idx,
            candidate_idx,
            score: vec![0.0; n as usize],
            source_id: Arc::new(Int64Array::from_iter_values(0..n)),
            candidate_id: Arc::new(Int64Array::from_iter_values(0..n)),
        }
    }

    #[test]
    fn keeps_top_n_per_source_by_weighted_sum() {
        let c = candidates(vec![0, 0, 0, 1, 1], vec![5, 6, 7, 2, 3]);
        // Two objectives; the second has a negative factor (a disliked objective).
        let scaled: [&[f32]; 2] = [&[0.9, 0.5, 0.8, 0.1, 0.2], &[0.0, 0.0, 0.9, 0.0, 0.0]];
        let terms = Terms {
            columns: scaled.to_vec(),
            factors: vec![1.0, -1.0],
        };
        let ranked = rank(&c, &terms, 2);
        assert_eq!(ranked.rows, vec![0, 1, 4, 3]);
        assert_eq!(ranked.rank, vec![1, 2, 1, 2]);
        assert_eq!(ranked.score[0], 0.9);
    }

    #[test]
    fn equal_scores_are_ordered_by_candidate_index() {
        let c = candidates(vec![4, 4, 4], vec![9, 2, 5]);
        let terms = Terms {
            columns: vec![&[0.5, 0.5, 0.5]],
            factors: vec![2.0],
        };
        let ranked = rank(&c, &terms, 10);
        assert_eq!(ranked.rows, vec![1, 2, 0]);
    }
}

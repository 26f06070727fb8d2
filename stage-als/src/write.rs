//! Builds the stage's three output tables: the user and video factors (index, original id,
//! `factors` FixedSizeList<Float32, k>, null where an entity has no factor) and the
//! cosine score of every candidate pair.

use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Schema};
use common::columns::{f32_array, u32_array};
use common::schema::{CANDIDATE_ID, CANDIDATE_IDX, SOURCE_ID, SOURCE_IDX};
use common::IdColumn;
use rayon::prelude::*;

use crate::fit::Factors;
use crate::metrics::dot_f32;

/// Name of the factor column.
pub const FACTORS: &str = "factors";

/// Name of the score column of als_<objective>.parquet.
pub const LINEAR_SCORE: &str = "linear_score";

/// One row per entity: `idx_column` (0..n), `id_column` (original ids), `factors`.
pub fn factor_batch(
    idx_column: &str,
    id_column: &str,
    ids: &IdColumn,
    factors: &Factors,
) -> Result<RecordBatch> {
    let k = factors.n_factors;
    let item = Arc::new(Field::new_list_field(DataType::Float32, false));
    let values: ArrayRef = Arc::new(Float32Array::from(factors.values.clone()));
    let nulls = NullBuffer::from(factors.present.clone());
    let list = FixedSizeListArray::try_new(item.clone(), k as i32, values, Some(nulls))?;
    let schema = Schema::new(vec![
        Field::new(idx_column, DataType::UInt32, false),
        Field::new(id_column, ids.data_type(), false),
        Field::new(FACTORS, DataType::FixedSizeList(item, k as i32), true),
    ]);
    let indices: Vec<u32> = (0..factors.len() as u32).collect();
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![u32_array(indices), ids.to_array(), Arc::new(list)],
    )?)
}

/// Cosine similarity of the two videos' factors for every pair; 0 where either video has
/// no factor or a zero factor, so the score is never NaN.
pub fn cosine_scores(sources: &[u32], candidates: &[u32], videos: &Factors) -> Vec<f32> {
    let norms: Vec<f64> = (0..videos.len())
        .map(|i| videos.row(i).map_or(0.0, |f| dot_f32(f, f).sqrt()))
        .collect();
    sources
        .par_iter()
        .zip(candidates)
        .map(|(&s, &c)| {
            let (s, c) = (s as usize, c as usize);
            let denominator = norms[s] * norms[c];
            match (videos.row(s), videos.row(c)) {
                (Some(a), Some(b)) if denominator > 0.0 => {
                    // Rounding can push |cos| a hair past 1.
                    (dot_f32(a, b) / denominator).clamp(-1.0, 1.0) as f32
                }
                _ => 0.0,
            }
        })
        .collect()
}

/// The rows of als_<objective>.parquet.
pub fn score_batch(
    sources: &[u32],
    candidates: &[u32],
    video_ids: &IdColumn,
    scores: Vec<f32>,
) -> Result<RecordBatch> {
    let schema = Schema::new(vec![
        Field::new(SOURCE_IDX, DataType::UInt32, false),
        Field::new(SOURCE_ID, video_ids.data_type(), false),
        Field::new(CANDIDATE_IDX, DataType::UInt32, false),
        Field::new(CANDIDATE_ID, video_ids.data_type(), false),
        Field::new(LINEAR_SCORE, DataType::Float32, false),
    ]);
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![
            u32_array(sources.to_vec()),
            video_ids.take(sources),
            u32_array(candidates.to_vec()),
            video_ids.take(candidates),
            f32_array(scores),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    fn factors() -> Factors {
        Factors {
            n_factors: 2,
            values: vec![1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 0.0, 0.0],
            present: vec![true, true, true, false],
        }
    }

    #[test]
    fn cosine_is_zero_for_missing_or_zero_factors_and_never_nan() {
        let scores = cosine_scores(&[0, 0, 0, 1, 2], &[2, 1, 3, 1, 2], &factors());
        let half_sqrt2 = std::f32::consts::FRAC_1_SQRT_2;
        assert!((scores[0] - half_sqrt2).abs() < 1e-6);
        assert_eq!(&scores[1..4], &[0.0, 0.0, 0.0]);
        assert!((scores[4] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn factor_batch_marks_entities_without_factor_as_null() {
        let ids = IdColumn::Int64(vec![10, 11, 12, 13]);
        let batch = factor_batch("video_idx", "video_id", &ids, &factors()).unwrap();
        let list = batch.column(2).as_fixed_size_list();
        assert_eq!(list.value_length(), 2);
        assert!(list.is_valid(2) && list.is_null(3));
        let row: Vec<f32> = list
            .value(2)
            .as_primitive::<arrow::datatypes::Float32Type>()
            .values()
            .to_vec();
        assert_eq!(row, vec![2.0, 2.0]);
    }
}

//! Builds the stage's three output tables: the user and video factors (index, original id,
//! `factors` FixedSizeList<Float32, k>, null where an entity has no factor) and the
//! linear score of every candidate pair (`similarity`).

use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Schema};
use common::columns::{f32_array, u32_array};
use common::schema::{CANDIDATE_ID, CANDIDATE_IDX, SOURCE_ID, SOURCE_IDX};
use common::IdColumn;

use crate::fit::Factors;

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

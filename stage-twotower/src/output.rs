//! Writes the three outputs: the per-candidate scores, the per-video embeddings and
//! (through relvid-nn) the model file.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array};
use arrow::datatypes::{DataType, Field, Schema};
use common::columns::{f32_array, u32_array};
use common::io::ROW_GROUP_ROWS;
use common::schema::{CANDIDATE_ID, CANDIDATE_IDX, SOURCE_ID, SOURCE_IDX, VIDEO_ID, VIDEO_IDX};
use common::{AtomicParquetWriter, IdColumn, StageMeta};
use rayon::prelude::*;

use crate::inputs::Candidates;

/// Column of the pair score in `twotower_<objective>.parquet`.
pub const NONLINEAR_SCORE: &str = "nonlinear_score";
/// Embedding columns of `twotower_<objective>_videos.parquet`.
pub const QUERY_EMBEDDING: &str = "query_embedding";
pub const CANDIDATE_EMBEDDING: &str = "candidate_embedding";

/// Cosine of two vectors in f64; 0 when either is the zero vector.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        dot += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    let norms = (aa * bb).sqrt();
    if norms > 0.0 {
        (dot / norms) as f32
    } else {
        0.0
    }
}

/// The score of every candidate row: cosine of the source's query embedding and the
/// candidate's candidate embedding. Each row is computed on its own, so the result does not
/// depend on the thread count.
pub fn score_candidates(
    candidates: &Candidates,
    query: &[f32],
    candidate: &[f32],
    dim: usize,
) -> Vec<f32> {
    candidates
        .source
        .par_iter()
        .zip(&candidates.candidate)
        .map(|(&s, &c)| {
            let (s, c) = (s as usize * dim, c as usize * dim);
            cosine(&query[s..s + dim], &candidate[c..c + dim])
        })
        .collect()
}

/// Writes `source_idx, source_id, candidate_idx, candidate_id, nonlinear_score`.
pub fn write_scores(
    path: &Path,
    candidates: &Candidates,
    scores: &[f32],
    ids: &IdColumn,
    meta: &StageMeta,
) -> Result<u64> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(SOURCE_IDX, DataType::UInt32, false),
        Field::new(SOURCE_ID, ids.data_type(), false),
        Field::new(CANDIDATE_IDX, DataType::UInt32, false),
        Field::new(CANDIDATE_ID, ids.data_type(), false),
        Field::new(NONLINEAR_SCORE, DataType::Float32, false),
    ]));
    let mut writer = AtomicParquetWriter::create(path, schema, meta)?;
    let n = scores.len();
    let mut start = 0;
    while start < n {
        let end = (start + ROW_GROUP_ROWS).min(n);
        let (source, candidate) = (
            &candidates.source[start..end],
            &candidates.candidate[start..end],
        );
        writer.write_columns(vec![
            u32_array(source.to_vec()),
            ids.take(source),
            u32_array(candidate.to_vec()),
            ids.take(candidate),
            f32_array(scores[start..end].to_vec()),
        ])?;
        start = end;
    }
    writer.finish()
}

fn embedding_type(dim: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        dim as i32,
    )
}

fn embedding_array(values: &[f32], dim: usize) -> Result<ArrayRef> {
    let field = Arc::new(Field::new_list_field(DataType::Float32, true));
    let values = Arc::new(Float32Array::from(values.to_vec()));
    Ok(Arc::new(FixedSizeListArray::try_new(
        field, dim as i32, values, None,
    )?))
}

/// Writes `video_idx, video_id, query_embedding, candidate_embedding`, one row per video.
pub fn write_videos(
    path: &Path,
    ids: &IdColumn,
    query: &[f32],
    candidate: &[f32],
    dim: usize,
    meta: &StageMeta,
) -> Result<u64> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(VIDEO_IDX, DataType::UInt32, false),
        Field::new(VIDEO_ID, ids.data_type(), false),
        Field::new(QUERY_EMBEDDING, embedding_type(dim), false),
        Field::new(CANDIDATE_EMBEDDING, embedding_type(dim), false),
    ]));
    let mut writer = AtomicParquetWriter::create(path, schema, meta)?;
    let n = ids.len();
    let mut start = 0;
    while start < n {
        let end = (start + ROW_GROUP_ROWS).min(n);
        let indices: Vec<u32> = (start as u32..end as u32).collect();
        writer.write_columns(vec![
            u32_array(indices.clone()),
            ids.take(&indices),
            embedding_array(&query[start * dim..end * dim], dim)?,
            embedding_array(&candidate[start * dim..end * dim], dim)?,
        ])?;
        start = end;
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_zero_vector_is_zero() {
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-7);
        assert!((cosine(&[1.0, 0.0], &[0.0, 3.0])).abs() < 1e-7);
    }

    #[test]
    fn scores_follow_the_candidate_rows() {
        let candidates = Candidates {
            source: vec![0, 1, 0],
            candidate: vec![1, 0, 0],
        };
        let query = [1.0, 0.0, 0.0, 1.0];
        let candidate = [1.0, 0.0, 0.6, 0.8];
        let scores = score_candidates(&candidates, &query, &candidate, 2);
        assert!((scores[0] - 0.6).abs() < 1e-6);
        assert!((scores[1] - 0.0).abs() < 1e-6);
        assert!((scores[2] - 1.0).abs() < 1e-6);
    }
}

//! Step 3: the ranked lists of a block of sources as rows of `candidates.parquet`.
//!
//! Reads the lists of one block; writes one batch per block through the atomic writer, so
//! the file appears only once every block is written.

use std::sync::Arc;

use anyhow::Result;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use common::columns::{f32_array, u32_array};
use common::schema::{CANDIDATE_ID, CANDIDATE_IDX, SOURCE_ID, SOURCE_IDX};
use common::{AtomicParquetWriter, IdColumn};

use crate::covisit::SourceList;

/// Column of the pair's co-count c_ij.
pub const CO_COUNT: &str = "co_count";
/// Column of the normalised score.
pub const SCORE: &str = "score";
/// Column of the position in the source's list (1 = best).
pub const RANK: &str = "rank";

/// The schema of `candidates.parquet` for ids of the given type.
pub fn schema(id_type: DataType) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(SOURCE_IDX, DataType::UInt32, false),
        Field::new(SOURCE_ID, id_type.clone(), false),
        Field::new(CANDIDATE_IDX, DataType::UInt32, false),
        Field::new(CANDIDATE_ID, id_type, false),
        Field::new(CO_COUNT, DataType::UInt32, false),
        Field::new(SCORE, DataType::Float32, false),
        Field::new(RANK, DataType::UInt32, false),
    ]))
}

/// Appends the lists of sources `first_source, first_source + 1, ...`; returns rows written.
pub fn write_block(
    writer: &mut AtomicParquetWriter,
    ids: &IdColumn,
    first_source: u32,
    lists: &[SourceList],
) -> Result<u64> {
    let n_rows: usize = lists.iter().map(|l| l.candidates.len()).sum();
    if n_rows == 0 {
        return Ok(0);
    }
    let mut source = Vec::with_capacity(n_rows);
    let mut candidate = Vec::with_capacity(n_rows);
    let mut co_count = Vec::with_capacity(n_rows);
    let mut score = Vec::with_capacity(n_rows);
    let mut rank = Vec::with_capacity(n_rows);
    for (offset, list) in lists.iter().enumerate() {
        for (position, c) in list.candidates.iter().enumerate() {
            source.push(first_source + offset as u32);
            candidate.push(c.idx);
            co_count.push(c.co_count);
            score.push(c.score as f32);
            rank.push(position as u32 + 1);
        }
    }
    let columns = vec![
        u32_array(source.clone()),
        ids.take(&source),
        u32_array(candidate.clone()),
        ids.take(&candidate),
        u32_array(co_count),
        f32_array(score),
        u32_array(rank),
    ];
    writer.write_columns(columns)?;
    Ok(n_rows as u64)
}

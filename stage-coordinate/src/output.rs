//! Writes routing.parquet (one row per interaction, in file order) and the model file.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use common::columns::{bool_array, f32_array, timestamp_ms_array, timestamp_type, u32_array};
use common::io::ROW_GROUP_ROWS;
use common::schema::{SPLIT, TS, USER_IDX, VIDEO_IDX};
use common::{AtomicParquetWriter, Interactions, StageMeta};

use crate::routing::ObjectiveRouting;

/// Column name of objective `name`'s probability.
pub fn p_column(name: &str) -> String {
    format!("p_{name}")
}

/// Column name of objective `name`'s routing flag.
pub fn routed_column(name: &str) -> String {
    format!("routed_{name}")
}

/// Writes `user_idx, video_idx, ts, split`, then `p_<k>` and `routed_<k>` per objective.
pub fn write_routing(
    path: &Path,
    table: &Interactions,
    p: &[Vec<f32>],
    routing: &[ObjectiveRouting],
    meta: &StageMeta,
) -> Result<u64> {
    let mut fields = vec![
        Field::new(USER_IDX, DataType::UInt32, false),
        Field::new(VIDEO_IDX, DataType::UInt32, false),
        Field::new(TS, timestamp_type(), false),
        Field::new(SPLIT, DataType::Utf8, false),
    ];
    for objective in routing {
        fields.push(Field::new(
            p_column(&objective.name),
            DataType::Float32,
            false,
        ));
        fields.push(Field::new(
            routed_column(&objective.name),
            DataType::Boolean,
            false,
        ));
    }
    let mut writer = AtomicParquetWriter::create(path, Arc::new(Schema::new(fields)), meta)?;

    // One batch per row group, so memory stays bounded whatever the log size.
    let n = table.len();
    let mut start = 0;
    while start < n {
        let end = (start + ROW_GROUP_ROWS).min(n);
        let splits = table.split[start..end].iter().map(|s| s.as_str());
        let mut columns: Vec<ArrayRef> = vec![
            u32_array(table.user_idx[start..end].to_vec()),
            u32_array(table.video_idx[start..end].to_vec()),
            timestamp_ms_array(table.ts_ms[start..end].to_vec()),
            Arc::new(StringArray::from_iter_values(splits)),
        ];
        for (k, objective) in routing.iter().enumerate() {
            columns.push(f32_array(p[k][start..end].to_vec()));
            columns.push(bool_array(objective.routed[start..end].to_vec()));
        }
        writer.write_columns(columns)?;
        start = end;
    }
    writer.finish()
}

//! Typed views of Arrow columns, with errors that name the file and the column.

use std::path::Path;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Int64Array, StringArray,
    TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};

use crate::error::Error;

fn type_error(path: &Path, column: &str, expected: &str, found: &DataType) -> Error {
    Error::ColumnType {
        path: path.to_path_buf(),
        column: column.to_string(),
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

fn null_error(path: &Path, column: &str, row: usize) -> Error {
    Error::BadValue {
        path: path.to_path_buf(),
        column: column.to_string(),
        row: row as u64,
        value: "null".to_string(),
        reason: "this column may not hold nulls".to_string(),
    }
}

/// The first null row of a column, if any.
fn first_null(array: &dyn Array) -> Option<usize> {
    if array.null_count() == 0 {
        return None;
    }
    (0..array.len()).find(|&row| array.is_null(row))
}

/// A non-null UInt32 column (dense indices) as a plain vector.
pub fn u32_values(array: &ArrayRef, path: &Path, column: &str) -> Result<Vec<u32>, Error> {
    let typed = array
        .as_any()
        .downcast_ref::<UInt32Array>()
        .ok_or_else(|| type_error(path, column, "UInt32", array.data_type()))?;
    if let Some(row) = first_null(typed) {
        return Err(null_error(path, column, row));
    }
    Ok(typed.values().to_vec())
}

/// A non-null millisecond timestamp column as epoch milliseconds.
pub fn timestamp_ms_values(array: &ArrayRef, path: &Path, column: &str) -> Result<Vec<i64>, Error> {
    let typed = array
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .ok_or_else(|| type_error(path, column, "Timestamp(ms)", array.data_type()))?;
    if let Some(row) = first_null(typed) {
        return Err(null_error(path, column, row));
    }
    Ok(typed.values().to_vec())
}

/// A numeric or Boolean column as f32, with NaN where the value is null.
///
/// NaN is the in-memory marker of "signal absent"; the input files themselves are checked
/// for NaN by `stage-ingest`, so a NaN here always means a null.
pub fn f32_values_nan_null(array: &ArrayRef, path: &Path, column: &str) -> Result<Vec<f32>, Error> {
    let as_float = cast(array, &DataType::Float32)
        .map_err(|_| type_error(path, column, "a numeric or Boolean type", array.data_type()))?;
    let typed = as_float
        .as_any()
        .downcast_ref::<Float32Array>()
        .expect("cast to Float32");
    Ok(typed
        .iter()
        .map(|value| value.unwrap_or(f32::NAN))
        .collect())
}

/// A non-null Utf8 column as owned strings.
pub fn string_values(array: &ArrayRef, path: &Path, column: &str) -> Result<Vec<String>, Error> {
    let as_utf8 = cast(array, &DataType::Utf8)
        .map_err(|_| type_error(path, column, "Utf8", array.data_type()))?;
    let typed: &StringArray = as_utf8.as_string::<i32>();
    if let Some(row) = first_null(typed) {
        return Err(null_error(path, column, row));
    }
    Ok(typed
        .iter()
        .map(|value| value.unwrap_or_default().to_string())
        .collect())
}

/// UInt32 array from values.
pub fn u32_array(values: Vec<u32>) -> ArrayRef {
    std::sync::Arc::new(UInt32Array::from(values))
}

/// Float32 array from values.
pub fn f32_array(values: Vec<f32>) -> ArrayRef {
    std::sync::Arc::new(Float32Array::from(values))
}

/// Float32 array with nulls where the value is NaN.
pub fn f32_array_nan_null(values: &[f32]) -> ArrayRef {
    std::sync::Arc::new(
        values
            .iter()
            .map(|v| if v.is_nan() { None } else { Some(*v) })
            .collect::<Float32Array>(),
    )
}

/// Boolean array from values.
pub fn bool_array(values: Vec<bool>) -> ArrayRef {
    std::sync::Arc::new(BooleanArray::from(values))
}

/// Int64 array from values.
pub fn i64_array(values: Vec<i64>) -> ArrayRef {
    std::sync::Arc::new(Int64Array::from(values))
}

/// Timestamp(ms, UTC) array from epoch milliseconds.
pub fn timestamp_ms_array(values: Vec<i64>) -> ArrayRef {
    std::sync::Arc::new(TimestampMillisecondArray::from(values).with_timezone("UTC"))
}

/// The data type of the `ts` column.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

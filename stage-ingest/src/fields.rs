//! Typed reading of one raw column: ids, timestamps, flags and numbers, from text (CSV) or
//! from Arrow types (Parquet), with errors that name the file, the column and the row.
//!
//! Text is parsed strictly: an unparsable value is an error, not a silent null. An empty
//! field is a null. NaN is kept as a value (the validation rules in `log.rs` drop it).

use std::fmt::Display;
use std::path::Path;

use anyhow::Result;
use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, UInt64Type};
use common::Error;

use crate::intern::IdInterner;

/// Where a column's values come from, for messages.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub path: &'a Path,
    pub column: &'a str,
    /// Data row number (0-based, header excluded) of the first value of the array.
    pub first_row: u64,
}

impl Origin<'_> {
    /// A `BadValue` error for the value at `row` of the array.
    pub fn bad(&self, row: usize, value: impl Display, reason: &str) -> Error {
        Error::BadValue {
            path: self.path.to_path_buf(),
            column: self.column.to_string(),
            row: self.first_row + row as u64,
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    fn type_error(&self, expected: &str, found: &DataType) -> Error {
        Error::ColumnType {
            path: self.path.to_path_buf(),
            column: self.column.to_string(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }
}

/// The unit of a numeric timestamp column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TsUnit {
    /// Seconds since the Unix epoch.
    #[serde(rename = "s")]
    Seconds,
    /// Milliseconds since the Unix epoch.
    #[serde(rename = "ms")]
    Millis,
}

impl TsUnit {
    fn to_ms(self) -> i64 {
        match self {
            TsUnit::Seconds => 1000,
            TsUnit::Millis => 1,
        }
    }
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn as_utf8(array: &ArrayRef) -> ArrayRef {
    if *array.data_type() == DataType::Utf8 {
        return array.clone();
    }
    cast(array, &DataType::Utf8).expect("every string type casts to Utf8")
}

/// One id value, borrowed from the array.
enum IdRef<'s> {
    Int(i64),
    Text(&'s str),
}

/// Calls `f` on every id of the column; null or empty ids are errors.
fn for_each_id(array: &ArrayRef, origin: Origin, mut f: impl FnMut(IdRef)) -> Result<()> {
    let null_id = |row| origin.bad(row, "null", "ids may not be null or empty");
    let data_type = array.data_type();
    if is_text(data_type) {
        let text = as_utf8(array);
        let text: &StringArray = text.as_string::<i32>();
        for row in 0..text.len() {
            if text.is_null(row) || text.value(row).is_empty() {
                return Err(null_id(row).into());
            }
            f(IdRef::Text(text.value(row)));
        }
    } else if *data_type == DataType::UInt64 {
        // Values beyond i64 are kept as their decimal text rather than wrapped around.
        let values = array.as_primitive::<UInt64Type>();
        for row in 0..values.len() {
            if values.is_null(row) {
                return Err(null_id(row).into());
            }
            let value = values.value(row);
            match i64::try_from(value) {
                Ok(value) => f(IdRef::Int(value)),
                Err(_) => f(IdRef::Text(&value.to_string())),
            }
        }
    } else if data_type.is_integer() {
        let values = cast(array, &DataType::Int64).expect("integers cast to Int64");
        let values = values.as_primitive::<Int64Type>();
        for row in 0..values.len() {
            if values.is_null(row) {
                return Err(null_id(row).into());
            }
            f(IdRef::Int(values.value(row)));
        }
    } else {
        // Float ids are refused: a float cannot hold every 64-bit id.
        return Err(origin
            .type_error("an integer or string id", data_type)
            .into());
    }
    Ok(())
}

/// Interns every id of a log column; returns the key of every row.
pub fn intern_ids(array: &ArrayRef, ids: &mut IdInterner, origin: Origin) -> Result<Vec<u32>> {
    let mut keys = Vec::with_capacity(array.len());
    for_each_id(array, origin, |id| {
        keys.push(match id {
            IdRef::Int(value) => ids.intern_int(value),
            IdRef::Text(text) => ids.intern_text(text),
        })
    })?;
    Ok(keys)
}

/// Looks up every id of a side-feature column; `None` for ids absent from the log.
pub fn lookup_ids(
    array: &ArrayRef,
    ids: &mut IdInterner,
    origin: Origin,
) -> Result<Vec<Option<u32>>> {
    let mut keys = Vec::with_capacity(array.len());
    for_each_id(array, origin, |id| {
        keys.push(match id {
            IdRef::Int(value) => ids.lookup_int(value),
            IdRef::Text(text) => ids.lookup_text(text),
        })
    })?;
    Ok(keys)
}

/// Parses a timestamp written as an integer or a decimal number.
fn parse_time_text(text: &str) -> Option<f64> {
    if let Ok(value) = text.parse::<i64>() {
        return Some(value as f64);
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Epoch milliseconds of a timestamp column; `unit` applies to numeric and text columns
/// (a Timestamp-typed column carries its own unit). Nulls and unparsable values are errors.
pub fn timestamps_ms(array: &ArrayRef, unit: Option<TsUnit>, origin: Origin) -> Result<Vec<i64>> {
    let data_type = array.data_type();
    if let DataType::Timestamp(_, _) = data_type {
        let ms = cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None))
            .map_err(|_| origin.type_error("a timestamp", data_type))?;
        let ms = ms.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        if let Some(row) = (0..ms.len()).find(|&row| ms.is_null(row)) {
            return Err(origin.bad(row, "null", "timestamps may not be null").into());
        }
        return Ok(ms.values().to_vec());
    }

    let unit = unit.ok_or_else(|| {
        origin.type_error(
            "a Timestamp column, or set timestamp_unit (\"s\" or \"ms\")",
            data_type,
        )
    })?;
    let factor = unit.to_ms();
    let scale = |row: usize, value: f64, shown: &dyn Display| -> Result<i64> {
        let ms = (value * factor as f64).round();
        // 2^62 ms is far beyond any plausible time; the range check drops such rows later.
        if !ms.is_finite() || ms.abs() > (1u64 << 62) as f64 {
            return Err(origin.bad(row, shown, "timestamp out of range").into());
        }
        Ok(ms as i64)
    };

    let mut out = Vec::with_capacity(array.len());
    if is_text(data_type) {
        let text = as_utf8(array);
        let text: &StringArray = text.as_string::<i32>();
        for row in 0..text.len() {
            if text.is_null(row) {
                return Err(origin.bad(row, "null", "timestamps may not be null").into());
            }
            let value = text.value(row);
            // Integers are scaled exactly; only decimals go through a float.
            match value
                .parse::<i64>()
                .ok()
                .and_then(|v| v.checked_mul(factor))
            {
                Some(ms) => out.push(ms),
                None => match parse_time_text(value) {
                    Some(number) => out.push(scale(row, number, &value)?),
                    None => {
                        return Err(origin
                            .bad(row, format!("\"{value}\""), "not a number")
                            .into())
                    }
                },
            }
        }
    } else if data_type.is_integer() {
        let values = cast(array, &DataType::Int64).expect("integers cast to Int64");
        let values = values.as_primitive::<Int64Type>();
        for row in 0..values.len() {
            if values.is_null(row) {
                return Err(origin.bad(row, "null", "timestamps may not be null").into());
            }
            let value = values.value(row);
            match value.checked_mul(factor) {
                Some(ms) => out.push(ms),
                None => return Err(origin.bad(row, value, "timestamp out of range").into()),
            }
        }
    } else if data_type.is_floating() {
        let values = cast(array, &DataType::Float64).expect("floats cast to Float64");
        let values = values.as_primitive::<Float64Type>();
        for row in 0..values.len() {
            if values.is_null(row) {
                return Err(origin.bad(row, "null", "timestamps may not be null").into());
            }
            let value = values.value(row);
            out.push(scale(row, value, &value)?);
        }
    } else {
        return Err(origin
            .type_error("a timestamp, a number or text", data_type)
            .into());
    }
    Ok(out)
}

/// Parses a 0/1 flag written as text.
fn parse_flag_text(text: &str) -> Option<bool> {
    match text {
        "1" | "1.0" => Some(true),
        "0" | "0.0" => Some(false),
        _ if text.eq_ignore_ascii_case("true") => Some(true),
        _ if text.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A Boolean signal: `true`/`false`, or 0/1 as integers, floats or text. A null or NaN is
/// a missing value; any other value is an error.
pub fn flags(array: &ArrayRef, origin: Origin) -> Result<Vec<Option<bool>>> {
    let data_type = array.data_type();
    if *data_type == DataType::Boolean {
        return Ok(array.as_boolean().iter().collect());
    }
    let not_flag = "a flag must be 0, 1, true or false";
    let mut out = Vec::with_capacity(array.len());
    if is_text(data_type) {
        let text = as_utf8(array);
        for (row, value) in text.as_string::<i32>().iter().enumerate() {
            out.push(match value {
                None => None,
                Some(value) => Some(
                    parse_flag_text(value)
                        .ok_or_else(|| origin.bad(row, format!("\"{value}\""), not_flag))?,
                ),
            });
        }
    } else if data_type.is_numeric() {
        let values = cast(array, &DataType::Float64).expect("numbers cast to Float64");
        for (row, value) in values.as_primitive::<Float64Type>().iter().enumerate() {
            out.push(match value {
                None => None,
                Some(v) if v.is_nan() => None,
                Some(v) if v != 0.0 && v != 1.0 => return Err(origin.bad(row, v, not_flag).into()),
                Some(v) => Some(v == 1.0),
            });
        }
    } else {
        return Err(origin
            .type_error("Boolean, 0/1 numbers or text", data_type)
            .into());
    }
    Ok(out)
}

/// A numeric signal as f32: numbers, Booleans (0/1) or decimal text. Nulls and empty fields
/// are `None`; NaN is kept as `Some(NaN)` for the validation rules to see.
pub fn numbers(array: &ArrayRef, origin: Origin) -> Result<Vec<Option<f32>>> {
    let data_type = array.data_type();
    if is_text(data_type) {
        let text = as_utf8(array);
        let mut out = Vec::with_capacity(array.len());
        for (row, value) in text.as_string::<i32>().iter().enumerate() {
            out.push(match value {
                None => None,
                Some(value) => Some(
                    value
                        .trim()
                        .parse::<f32>()
                        .map_err(|_| origin.bad(row, format!("\"{value}\""), "not a number"))?,
                ),
            });
        }
        return Ok(out);
    }
    if data_type.is_numeric() || *data_type == DataType::Boolean {
        let values = cast(array, &DataType::Float64).expect("numbers cast to Float64");
        return Ok(values
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map(|v| v as f32))
            .collect());
    }
    Err(origin
        .type_error("a number or numeric text", data_type)
        .into())
}

/// A descriptive column as optional text (any type is written as its text form).
pub fn texts(array: &ArrayRef, origin: Origin) -> Result<Vec<Option<String>>> {
    let text =
        cast(array, &DataType::Utf8).map_err(|_| origin.type_error("text", array.data_type()))?;
    Ok(text
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BooleanArray, Float64Array, Int32Array, TimestampSecondArray, UInt64Array};

    use super::*;

    fn origin() -> Origin<'static> {
        Origin {
            path: Path::new("log.csv"),
            column: "c",
            first_row: 10,
        }
    }

    fn text(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    #[test]
    fn empty_or_null_id_is_an_error_with_row() {
        let mut ids = IdInterner::new("user_id");
        ids.begin_file(Path::new("log.csv"));
        let message = intern_ids(&text(&[Some("1"), None]), &mut ids, origin()).unwrap_err();
        assert!(message.to_string().contains("row 11"), "{message}");
        let empty: ArrayRef = Arc::new(StringArray::from(vec!["a", ""]));
        assert!(intern_ids(&empty, &mut ids, origin()).is_err());
    }

    #[test]
    fn float_ids_are_refused() {
        let mut ids = IdInterner::new("user_id");
        ids.begin_file(Path::new("log.parquet"));
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
        let message = intern_ids(&floats, &mut ids, origin())
            .unwrap_err()
            .to_string();
        assert!(message.contains("integer or string id"), "{message}");
    }

    #[test]
    fn unsigned_ids_beyond_i64_become_text() {
        let mut ids = IdInterner::new("video_id");
        ids.begin_file(Path::new("log.parquet"));
        let values: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX, 5]));
        intern_ids(&values, &mut ids, origin()).unwrap();
        let dense = ids.assign(&[true, true]).unwrap();
        assert_eq!(dense.ids.data_type(), DataType::Utf8);
    }

    #[test]
    fn timestamps_scale_seconds_and_keep_typed_units() {
        let seconds = text(&[Some("881250949"), Some("1.5")]);
        let ms = timestamps_ms(&seconds, Some(TsUnit::Seconds), origin()).unwrap();
        assert_eq!(ms, vec![881_250_949_000, 1500]);
        let typed: ArrayRef = Arc::new(TimestampSecondArray::from(vec![2]));
        assert_eq!(timestamps_ms(&typed, None, origin()).unwrap(), vec![2000]);
    }

    #[test]
    fn numeric_timestamp_without_unit_is_an_error() {
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![1]));
        let message = timestamps_ms(&ints, None, origin())
            .unwrap_err()
            .to_string();
        assert!(message.contains("timestamp_unit"), "{message}");
    }

    #[test]
    fn garbage_or_null_timestamp_is_an_error() {
        assert!(timestamps_ms(&text(&[Some("x")]), Some(TsUnit::Millis), origin()).is_err());
        assert!(timestamps_ms(&text(&[None]), Some(TsUnit::Millis), origin()).is_err());
    }

    #[test]
    fn flags_accept_01_text_and_numbers_and_refuse_others() {
        let parsed = flags(&text(&[Some("1"), Some("0"), None, Some("TRUE")]), origin()).unwrap();
        assert_eq!(parsed, vec![Some(true), Some(false), None, Some(true)]);
        assert!(flags(&text(&[Some("2")]), origin()).is_err());
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![1.0, f64::NAN, 0.0]));
        assert_eq!(
            flags(&floats, origin()).unwrap(),
            vec![Some(true), None, Some(false)]
        );
        let bools: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), None]));
        assert_eq!(flags(&bools, origin()).unwrap(), vec![Some(true), None]);
    }

    #[test]
    fn numbers_keep_nan_and_refuse_garbage() {
        let parsed = numbers(&text(&[Some("1.5"), Some("NaN"), None]), origin()).unwrap();
        assert_eq!(parsed[0], Some(1.5));
        assert!(parsed[1].unwrap().is_nan());
        assert_eq!(parsed[2], None);
        let message = numbers(&text(&[Some("abc")]), origin())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("row 10") && message.contains("\"c\""),
            "{message}"
        );
    }
}

//! A small typed table written two ways: GitHub Markdown for people and Parquet (Utf8,
//! Int64, Float64 columns, nullable) for polars.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

/// One column's values; `None` is a null (an empty Markdown cell).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Text(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::Float(v) => v.len(),
        }
    }

    fn cell(&self, row: usize) -> String {
        match self {
            Values::Text(v) => v[row].clone().unwrap_or_default().replace('|', "\\|"),
            Values::Int(v) => v[row].map(group_thousands).unwrap_or_default(),
            Values::Float(v) => v[row].map(format_float).unwrap_or_default(),
        }
    }
}

/// Named columns of equal length.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<(String, Values)>,
}

impl Table {
    /// Adds a column; panics on a length that differs from the first column's, which is a
    /// bug in the caller, not bad input.
    pub fn push(&mut self, name: &str, values: Values) {
        if let Some((_, first)) = self.columns.first() {
            assert_eq!(
                first.len(),
                values.len(),
                "column {name} has another length"
            );
        }
        self.columns.push((name.to_string(), values));
    }

    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, v)| v.len())
    }

    /// The table as GitHub Markdown, numbers right-aligned.
    pub fn to_markdown(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(n, _)| n.as_str()).collect();
        let align: Vec<&str> = self
            .columns
            .iter()
            .map(|(_, v)| {
                if matches!(v, Values::Text(_)) {
                    "---"
                } else {
                    "---:"
                }
            })
            .collect();
        let mut out = format!("| {} |\n|{}|\n", names.join(" | "), align.join("|"));
        for row in 0..self.n_rows() {
            let cells: Vec<String> = self.columns.iter().map(|(_, v)| v.cell(row)).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out
    }

    /// Writes the table as Parquet (tmp + rename), with relvid's key-value metadata.
    pub fn write_parquet(&self, path: &Path, what: &str) -> Result<u64> {
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (name, values) in &self.columns {
            let (data_type, array): (DataType, ArrayRef) = match values {
                Values::Text(v) => (DataType::Utf8, Arc::new(StringArray::from(v.clone()))),
                Values::Int(v) => (DataType::Int64, Arc::new(Int64Array::from(v.clone()))),
                Values::Float(v) => (DataType::Float64, Arc::new(Float64Array::from(v.clone()))),
            };
            fields.push(Field::new(name, data_type, true));
            arrays.push(array);
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
        let meta = common::stage_meta(
            "relvid-bench",
            env!("CARGO_PKG_VERSION"),
            0,
            serde_json::json!({ "table": what }),
        );
        common::io::write_batch(path, &batch, &meta)
    }
}

/// 1234567 -> "1,234,567".
pub fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Three significant digits for small values, whole numbers from 1000 on.
pub fn format_float(x: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 {
        group_thousands(x.round() as i64)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 || a == 0.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::{Expect, ParquetInput};

    fn table() -> Table {
        let mut t = Table::default();
        t.push("stage", Values::Text(vec![Some("ingest".into()), None]));
        t.push("rows", Values::Int(vec![Some(1_000_000), None]));
        t.push("wall_s", Values::Float(vec![Some(4.321), Some(0.01234)]));
        t
    }

    #[test]
    fn markdown_has_a_header_and_one_line_per_row() {
        let md = table().to_markdown();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "| stage | rows | wall_s |");
        assert_eq!(lines[1], "|---|---:|---:|");
        assert_eq!(lines[2], "| ingest | 1,000,000 | 4.32 |");
        assert_eq!(lines[3], "|  |  | 0.012 |");
    }

    #[test]
    fn parquet_has_the_columns_types_and_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        assert_eq!(table().write_parquet(&path, "test").unwrap(), 2);
        let input = ParquetInput::open(&path).unwrap();
        let cols = input
            .read_columns(&[
                ("stage", Expect::Exactly(DataType::Utf8)),
                ("rows", Expect::Exactly(DataType::Int64)),
                ("wall_s", Expect::Exactly(DataType::Float64)),
            ])
            .unwrap();
        assert_eq!(cols[0].null_count(), 1);
        assert_eq!(cols[1].null_count(), 1);
        assert_eq!(input.key_value("relvid.stage"), Some("relvid-bench"));
    }

    #[test]
    fn numbers_are_formatted_for_reading() {
        assert_eq!(group_thousands(-1234567), "-1,234,567");
        assert_eq!(format_float(12345.6), "12,346");
        assert_eq!(format_float(0.0), "0.00");
        assert_eq!(format_float(25.55), "25.6");
    }
}

//! Side features of users and videos, turned into model inputs.
//!
//! Every column of `users.parquet` / `videos.parquet` other than the index and the id is a
//! feature: text and Boolean columns become categorical codes (0 = missing, then the
//! distinct values in sorted order, so codes do not depend on row order); numeric columns
//! become standardised floats, with log1p first when no value is negative (durations and
//! counts are heavy-tailed) and 0 (the mean) where the value is missing.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use arrow::array::{Array, ArrayRef};
use arrow::compute::cast;
use arrow::datatypes::DataType;

use crate::columns::f32_values_nan_null;
use crate::io::{Expect, ParquetInput};

/// One categorical feature: a code per entity, 0 meaning missing.
#[derive(Debug, Clone)]
pub struct CategoricalFeature {
    pub name: String,
    pub codes: Vec<u32>,
    /// Number of codes including the missing code 0.
    pub cardinality: u32,
}

/// One numeric feature, standardised.
#[derive(Debug, Clone)]
pub struct NumericFeature {
    pub name: String,
    pub values: Vec<f32>,
}

/// All side features of one entity table.
#[derive(Debug, Clone, Default)]
pub struct EntityFeatures {
    pub n_rows: usize,
    pub categorical: Vec<CategoricalFeature>,
    pub numeric: Vec<NumericFeature>,
}

impl EntityFeatures {
    /// Reads every feature column of an entity table (all but `skip`).
    pub fn read(path: &Path, skip: &[&str]) -> Result<EntityFeatures> {
        let input = ParquetInput::open(path)?;
        let names: Vec<String> = input
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|name| !skip.contains(&name.as_str()))
            .collect();
        let mut features = EntityFeatures {
            n_rows: input.n_rows() as usize,
            ..Default::default()
        };
        for name in &names {
            let data_type = input.schema().field_with_name(name)?.data_type().clone();
            let expect = Expect::Exactly(data_type.clone());
            let array = input.read_columns(&[(name.as_str(), expect)])?.remove(0);
            if data_type.is_numeric() {
                let values = f32_values_nan_null(&array, path, name)?;
                features.numeric.push(NumericFeature {
                    name: name.clone(),
                    values: standardise(values),
                });
            } else {
                features.categorical.push(categorical(name, &array)?);
            }
        }
        Ok(features)
    }

    /// Numeric features of one entity, in feature order.
    pub fn numeric_row(&self, row: usize) -> impl Iterator<Item = f32> + '_ {
        self.numeric.iter().map(move |f| f.values[row])
    }
}

fn categorical(name: &str, array: &ArrayRef) -> Result<CategoricalFeature> {
    let text = cast(array, &DataType::Utf8)?;
    let text = text
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .expect("Utf8");
    let mut distinct: BTreeMap<&str, u32> = BTreeMap::new();
    for value in text.iter().flatten() {
        distinct.insert(value, 0);
    }
    for (code, slot) in distinct.values_mut().enumerate() {
        *slot = code as u32 + 1;
    }
    let codes = (0..text.len())
        .map(|row| {
            if text.is_null(row) {
                0
            } else {
                distinct[text.value(row)]
            }
        })
        .collect();
    Ok(CategoricalFeature {
        name: name.to_string(),
        codes,
        cardinality: distinct.len() as u32 + 1,
    })
}

fn standardise(mut values: Vec<f32>) -> Vec<f32> {
    let present: Vec<f64> = values
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| v as f64)
        .collect();
    if present.is_empty() {
        return vec![0.0; values.len()];
    }
    let log_scale = present.iter().all(|&v| v >= 0.0);
    let transform = |v: f64| if log_scale { v.ln_1p() } else { v };
    let n = present.len() as f64;
    let mean = present.iter().map(|&v| transform(v)).sum::<f64>() / n;
    let var = present
        .iter()
        .map(|&v| (transform(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = if var > 1e-12 { var.sqrt() } else { 1.0 };
    for value in values.iter_mut() {
        *value = if value.is_finite() {
            ((transform(*value as f64) - mean) / std) as f32
        } else {
            0.0
        };
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardise_maps_missing_to_zero_and_centres() {
        let out = standardise(vec![1.0, f32::NAN, 3.0]);
        assert_eq!(out[1], 0.0);
        assert!((out[0] + out[2]).abs() < 1e-6);
    }

    #[test]
    fn constant_column_does_not_divide_by_zero() {
        assert_eq!(standardise(vec![2.0, 2.0]), vec![0.0, 0.0]);
    }
}

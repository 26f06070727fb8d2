//! Side features of users and videos read from a source's feature files, held per interned
//! id key until dense indices exist, then gathered into `users.parquet` / `videos.parquet`
//! columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float32Array, StringArray};

/// The values of one feature, one per id key.
#[derive(Debug, Clone)]
pub enum SideValues {
    /// Float32 feature, NaN = null.
    Float(Vec<f32>),
    /// Utf8 feature.
    Text(Vec<Option<String>>),
    /// Boolean feature.
    Flag(Vec<Option<bool>>),
}

impl SideValues {
    /// The values of the given keys, in that order, as an Arrow array.
    pub fn gather(&self, keys: &[u32]) -> ArrayRef {
        match self {
            SideValues::Float(values) => Arc::new(
                keys.iter()
                    .map(|&k| Some(values[k as usize]).filter(|v| !v.is_nan()))
                    .collect::<Float32Array>(),
            ),
            SideValues::Text(values) => Arc::new(
                keys.iter()
                    .map(|&k| values[k as usize].as_deref())
                    .collect::<StringArray>(),
            ),
            SideValues::Flag(values) => Arc::new(
                keys.iter()
                    .map(|&k| values[k as usize])
                    .collect::<BooleanArray>(),
            ),
        }
    }

    /// True when no key has a value.
    pub fn all_null(&self) -> bool {
        match self {
            SideValues::Float(values) => values.iter().all(|v| v.is_nan()),
            SideValues::Text(values) => values.iter().all(Option::is_none),
            SideValues::Flag(values) => values.iter().all(Option::is_none),
        }
    }
}

/// One named feature.
#[derive(Debug, Clone)]
pub struct SideColumn {
    pub name: String,
    pub values: SideValues,
}

/// The features of one entity, in output column order.
#[derive(Debug, Clone, Default)]
pub struct SideTable {
    pub columns: Vec<SideColumn>,
}

impl SideTable {
    /// Appends a feature column.
    pub fn push(&mut self, name: &str, values: SideValues) {
        self.columns.push(SideColumn {
            name: name.to_string(),
            values,
        });
    }

    /// The feature of that name.
    pub fn get(&self, name: &str) -> Option<&SideColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The feature of that name, for filling.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut SideColumn> {
        self.columns.iter_mut().find(|c| c.name == name)
    }

    /// Drops features that no id has a value for: they would only add a constant input.
    pub fn drop_empty(&mut self) {
        self.columns.retain(|c| !c.values.all_null());
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Array;

    use super::*;

    #[test]
    fn gather_follows_key_order_and_maps_nan_to_null() {
        let values = SideValues::Float(vec![1.0, f32::NAN, 3.0]);
        let array = values.gather(&[2, 1, 0]);
        let array = array.as_any().downcast_ref::<Float32Array>().unwrap();
        assert_eq!(array.value(0), 3.0);
        assert!(array.is_null(1));
        assert_eq!(array.value(2), 1.0);
    }

    #[test]
    fn drop_empty_removes_all_null_columns() {
        let mut table = SideTable::default();
        table.push("a", SideValues::Text(vec![None, None]));
        table.push("b", SideValues::Flag(vec![None, Some(true)]));
        table.drop_empty();
        assert_eq!(table.columns.len(), 1);
        assert_eq!(table.columns[0].name, "b");
    }
}

//! Parquet reading and writing for every stage.
//!
//! Reads are projected to the columns a stage asks for and checked by name and type before any
//! row is decoded. Writes go to `<path>.tmp` and are renamed on `finish`, so a failed or killed
//! run never leaves a half-written file that make would take as up to date.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::concat;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::error::Error;

/// Rows per Parquet row group on write; bounds the writer's memory whatever the file size.
pub const ROW_GROUP_ROWS: usize = 1 << 20;

/// Rows per decoded batch on read.
pub const READ_BATCH_ROWS: usize = 1 << 16;

/// What a stage records in the key-value metadata of every file it writes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageMeta {
    /// Stage name, for example `"stage-als"`.
    pub stage: String,
    /// Version of the crate that wrote the file.
    pub version: String,
    /// The seed the run used.
    pub seed: u64,
    /// The effective configuration, as JSON.
    pub config: serde_json::Value,
}

impl StageMeta {
    fn key_values(&self) -> Vec<KeyValue> {
        vec![
            KeyValue::new("relvid.stage".to_string(), self.stage.clone()),
            KeyValue::new("relvid.version".to_string(), self.version.clone()),
            KeyValue::new("relvid.seed".to_string(), self.seed.to_string()),
            KeyValue::new("relvid.config".to_string(), self.config.to_string()),
        ]
    }
}

/// A Parquet file opened for a projected read, with its schema already checked.
pub struct ParquetInput {
    path: PathBuf,
    file_schema: SchemaRef,
    n_rows: u64,
    key_values: BTreeMap<String, String>,
}

/// The type a column must have; `AnyOf` accepts several (for example Int64 or Utf8 ids).
#[derive(Debug, Clone)]
pub enum Expect {
    Exactly(DataType),
    AnyOf(Vec<DataType>),
    /// Any integer or floating-point type (read through a cast to f64 or f32).
    Numeric,
}

impl Expect {
    fn accepts(&self, found: &DataType) -> bool {
        match self {
            Expect::Exactly(expected) => same_type(expected, found),
            Expect::AnyOf(options) => options.iter().any(|option| same_type(option, found)),
            Expect::Numeric => found.is_numeric() || *found == DataType::Boolean,
        }
    }

    fn describe(&self) -> String {
        match self {
            Expect::Exactly(expected) => expected.to_string(),
            Expect::AnyOf(options) => options
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(" or "),
            Expect::Numeric => "a numeric or Boolean type".to_string(),
        }
    }
}

/// Timestamps compare by unit only: a time zone label does not change the stored instant.
fn same_type(expected: &DataType, found: &DataType) -> bool {
    match (expected, found) {
        (DataType::Timestamp(a, _), DataType::Timestamp(b, _)) => a == b,
        (DataType::Utf8, DataType::LargeUtf8 | DataType::Utf8View) => true,
        _ => expected == found,
    }
}

impl ParquetInput {
    /// Opens `path` and reads its footer; fails with the path in the message.
    pub fn open(path: &Path) -> Result<ParquetInput> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
        let metadata = builder.metadata().file_metadata();
        let key_values = metadata
            .key_value_metadata()
            .map(|pairs| {
                pairs
                    .iter()
                    .filter_map(|kv| kv.value.clone().map(|value| (kv.key.clone(), value)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(ParquetInput {
            path: path.to_path_buf(),
            file_schema: builder.schema().clone(),
            n_rows: metadata.num_rows().max(0) as u64,
            key_values,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn n_rows(&self) -> u64 {
        self.n_rows
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.file_schema
    }

    /// A value of the file's key-value metadata, for example `relvid.seed`.
    pub fn key_value(&self, key: &str) -> Option<&str> {
        self.key_values.get(key).map(String::as_str)
    }

    /// True when the file has a column of that name.
    pub fn has_column(&self, name: &str) -> bool {
        self.file_schema.index_of(name).is_ok()
    }

    /// Checks that `name` exists with an accepted type; returns its data type.
    pub fn check_column(&self, name: &str, expect: &Expect) -> Result<DataType, Error> {
        let field = self
            .file_schema
            .field_with_name(name)
            .map_err(|_| Error::MissingColumn {
                path: self.path.clone(),
                column: name.to_string(),
                available: self
                    .file_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        if !expect.accepts(field.data_type()) {
            return Err(Error::ColumnType {
                path: self.path.clone(),
                column: name.to_string(),
                expected: expect.describe(),
                found: field.data_type().to_string(),
            });
        }
        Ok(field.data_type().clone())
    }

    /// Streams the named columns, row group by row group, in the order given.
    ///
    /// Every column is checked first, so a missing or mistyped column fails before any
    /// decoding. Batches hold the columns in `columns` order.
    pub fn batches(
        &self,
        columns: &[(&str, Expect)],
    ) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
        for (name, expect) in columns {
            self.check_column(name, expect)?;
        }

        let file =
            File::open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .with_context(|| format!("{}: not a readable Parquet file", self.path.display()))?;
        let root_indices: Vec<usize> = columns
            .iter()
            .map(|(name, _)| self.file_schema.index_of(name).expect("checked above"))
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), root_indices);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .with_context(|| format!("reading {}", self.path.display()))?;

        // The reader returns columns in file order; put them back in the caller's order.
        let wanted: Vec<String> = columns.iter().map(|(name, _)| name.to_string()).collect();
        let path = self.path.clone();
        Ok(reader.map(move |batch| {
            let batch = batch.with_context(|| format!("decoding {}", path.display()))?;
            let schema = batch.schema();
            let arrays: Vec<ArrayRef> = wanted
                .iter()
                .map(|name| {
                    batch
                        .column(schema.index_of(name).expect("projected"))
                        .clone()
                })
                .collect();
            let fields: Vec<Field> = wanted
                .iter()
                .map(|name| schema.field_with_name(name).expect("projected").clone())
                .collect();
            Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
        }))
    }

    /// Reads the named columns whole, one array per column, in the order given.
    pub fn read_columns(&self, columns: &[(&str, Expect)]) -> Result<Vec<ArrayRef>> {
        let mut parts: Vec<Vec<ArrayRef>> = vec![Vec::new(); columns.len()];
        for batch in self.batches(columns)? {
            let batch = batch?;
            for (slot, array) in parts.iter_mut().zip(batch.columns()) {
                slot.push(array.clone());
            }
        }
        parts
            .into_iter()
            .zip(columns)
            .map(|(chunks, (name, _))| {
                if chunks.is_empty() {
                    let data_type = self.file_schema.field_with_name(name)?.data_type().clone();
                    return Ok(arrow::array::new_empty_array(&data_type));
                }
                let refs: Vec<&dyn Array> = chunks.iter().map(|a| a.as_ref()).collect();
                Ok(concat(&refs)?)
            })
            .collect()
    }
}

/// A Parquet writer that only publishes its file when `finish` succeeds.
pub struct AtomicParquetWriter {
    final_path: PathBuf,
    temp_path: PathBuf,
    writer: Option<ArrowWriter<File>>,
    schema: SchemaRef,
    n_rows: u64,
}

impl AtomicParquetWriter {
    /// Creates `<path>.tmp` (and the parent folder) with the schema and stage metadata.
    pub fn create(path: &Path, schema: SchemaRef, meta: &StageMeta) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating folder {}", parent.display()))?;
        }
        let temp_path = temp_path_for(path);
        let file = File::create(&temp_path)
            .with_context(|| format!("creating {}", temp_path.display()))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_key_value_metadata(Some(meta.key_values()))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .with_context(|| format!("starting Parquet writer for {}", path.display()))?;
        Ok(AtomicParquetWriter {
            final_path: path.to_path_buf(),
            temp_path,
            writer: Some(writer),
            schema,
            n_rows: 0,
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Appends a batch whose schema must equal the writer's.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let writer = self.writer.as_mut().expect("write after finish");
        writer
            .write(batch)
            .with_context(|| format!("writing {}", self.temp_path.display()))?;
        self.n_rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Appends columns given as arrays, in schema order.
    pub fn write_columns(&mut self, columns: Vec<ArrayRef>) -> Result<()> {
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .with_context(|| format!("assembling a batch for {}", self.final_path.display()))?;
        self.write(&batch)
    }

    /// Closes the file and renames it into place; returns the number of rows written.
    pub fn finish(mut self) -> Result<u64> {
        let writer = self.writer.take().expect("finish twice");
        writer
            .close()
            .with_context(|| format!("closing {}", self.temp_path.display()))?;
        std::fs::rename(&self.temp_path, &self.final_path).with_context(|| {
            format!(
                "renaming {} to {}",
                self.temp_path.display(),
                self.final_path.display()
            )
        })?;
        Ok(self.n_rows)
    }
}

impl Drop for AtomicParquetWriter {
    fn drop(&mut self) {
        // Dropped before `finish`: an error path. Leave no partial file behind.
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

/// The temporary name a file is written under before it is renamed into place.
pub fn temp_path_for(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating folder {}", parent.display()))?;
    }
    let temp = temp_path_for(path);
    std::fs::write(&temp, bytes).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path)
        .with_context(|| format!("renaming {} to {}", temp.display(), path.display()))
}

/// Writes one batch to `path` atomically: the common case of a small output table.
pub fn write_batch(path: &Path, batch: &RecordBatch, meta: &StageMeta) -> Result<u64> {
    let mut writer = AtomicParquetWriter::create(path, batch.schema(), meta)?;
    writer.write(batch)?;
    writer.finish()
}

//! Delimited text files: CSV/TSV with a header (read through arrow-csv as all-text columns,
//! so ids never pass through a float), and the header-less `|`/tab files of MovieLens 100K,
//! whose titles may be Latin-1 rather than UTF-8.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::csv::reader::Format;
use arrow::csv::ReaderBuilder;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use common::Error;
use indicatif::ProgressBar;

/// Rows per decoded text batch.
const TEXT_BATCH_ROWS: usize = 1 << 16;

/// A delimited text file with a header line.
#[derive(Debug, Clone)]
pub struct TextTable {
    pub path: PathBuf,
    pub delimiter: u8,
    pub header: Vec<String>,
}

impl TextTable {
    /// Reads the header of `path`. Without an explicit delimiter, a header holding a tab
    /// makes the file tab-separated, else comma-separated.
    pub fn open(path: &Path, delimiter: Option<u8>) -> Result<TextTable> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut line = Vec::new();
        BufReader::new(file)
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", path.display()))?;
        let line = String::from_utf8_lossy(&line);
        let line = line
            .trim_start_matches('\u{feff}')
            .trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Err(Error::Empty {
                path: path.to_path_buf(),
                what: "the file is empty (no header line, no rows)".to_string(),
            }
            .into());
        }
        let delimiter = delimiter.unwrap_or(if line.contains('\t') { b'\t' } else { b',' });
        let header = split_header(line, delimiter as char)
            .into_iter()
            .map(|name| name.trim().to_string())
            .collect();
        Ok(TextTable {
            path: path.to_path_buf(),
            delimiter,
            header,
        })
    }

    /// Position of a column that may be absent.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// Position of a required column, or an error naming the file and the column. A name
    /// the header holds twice is an error too: which of the two to read would be a guess.
    pub fn column(&self, name: &str) -> Result<usize, Error> {
        let position = self.find(name).ok_or_else(|| self.missing(name))?;
        if let Some(again) = self.header[position + 1..].iter().position(|h| h == name) {
            return Err(Error::BadValue {
                path: self.path.clone(),
                column: name.to_string(),
                row: 0,
                value: format!(
                    "header fields {} and {}",
                    position + 1,
                    position + again + 2
                ),
                reason: "the header names this column twice; rename one of them".to_string(),
            });
        }
        Ok(position)
    }

    /// The error of a missing column (also used for "one of" requirements).
    pub fn missing(&self, name: &str) -> Error {
        Error::MissingColumn {
            path: self.path.clone(),
            column: name.to_string(),
            available: self.header.join(", "),
        }
    }

    /// Streams the given columns (positions from `column`/`find`) as Utf8 arrays in that
    /// order; stops after `limit` rows. Empty fields are nulls. A progress bar follows the
    /// bytes read.
    pub fn batches(&self, columns: &[usize], limit: Option<u64>) -> Result<TextBatches> {
        let fields: Vec<Field> = self
            .header
            .iter()
            .enumerate()
            .map(|(i, name)| Field::new(format!("{i}:{name}"), DataType::Utf8, true))
            .collect();
        let file =
            File::open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let name = self
            .path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let bar = common::progress::bar(size, &name);
        let reader = ReaderBuilder::new(Arc::new(Schema::new(fields)))
            .with_format(
                Format::default()
                    .with_header(true)
                    .with_delimiter(self.delimiter),
            )
            .with_projection(columns.to_vec())
            .with_batch_size(TEXT_BATCH_ROWS)
            .build(CountingReader {
                inner: file,
                bar: bar.clone(),
            })
            .with_context(|| format!("reading {}", self.path.display()))?;
        Ok(TextBatches {
            reader,
            path: self.path.clone(),
            left: limit.unwrap_or(u64::MAX),
            bar,
        })
    }
}

/// Splits a header line into its field names the way the CSV reader splits rows: a field
/// in double quotes may hold the delimiter, and `""` inside it is one quote. A naive split
/// on the delimiter would cut `"a,b"` in two and misalign every column after it.
fn split_header(line: &str, delimiter: char) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' if quoted => quoted = false,
            '"' if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            c if c == delimiter && !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// A reader that advances a progress bar by the bytes it reads.
pub struct CountingReader {
    inner: File,
    bar: ProgressBar,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// Batches of a [`TextTable`], with the path in every error.
pub struct TextBatches {
    reader: arrow::csv::Reader<CountingReader>,
    path: PathBuf,
    left: u64,
    bar: ProgressBar,
}

impl Iterator for TextBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = if self.left == 0 {
            None
        } else {
            self.reader.next()
        };
        let batch = match next {
            None => {
                self.bar.finish_and_clear();
                return None;
            }
            Some(Err(error)) => {
                let context = format!("parsing {}", self.path.display());
                return Some(Err(anyhow::Error::new(error).context(context)));
            }
            Some(Ok(batch)) => batch,
        };
        let keep = (batch.num_rows() as u64).min(self.left);
        self.left -= keep;
        Some(Ok(batch.slice(0, keep as usize)))
    }
}

/// Text of a line that may be UTF-8 or Latin-1 (MovieLens 100K titles are Latin-1).
fn decode_line(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        // Latin-1 maps every byte to the code point of the same value.
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// Batches of a header-less delimited file (MovieLens 100K's `u.data`, `u.user`,
/// `u.item`) as Utf8 columns named `names`. Every non-empty line must have exactly
/// `names.len()` fields; empty fields are nulls.
pub struct PlainBatches {
    reader: BufReader<File>,
    path: PathBuf,
    delimiter: char,
    schema: SchemaRef,
    left: u64,
    row: u64,
    line: u64,
}

impl PlainBatches {
    /// Opens `path`; stops after `limit` rows.
    pub fn open(path: &Path, delimiter: char, names: &[&str], limit: Option<u64>) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let fields: Vec<Field> = names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect();
        Ok(PlainBatches {
            reader: BufReader::new(file),
            path: path.to_path_buf(),
            delimiter,
            schema: Arc::new(Schema::new(fields)),
            left: limit.unwrap_or(u64::MAX),
            row: 0,
            line: 0,
        })
    }

    fn read_batch(&mut self) -> Result<Option<RecordBatch>> {
        let n_fields = self.schema.fields().len();
        let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); n_fields];
        let mut bytes = Vec::new();
        let mut n_rows = 0;
        while n_rows < TEXT_BATCH_ROWS && self.left > 0 {
            bytes.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut bytes)
                .with_context(|| format!("reading {}", self.path.display()))?;
            if n == 0 {
                break;
            }
            self.line += 1;
            let text = decode_line(&bytes);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                continue;
            }
            let fields: Vec<&str> = text.split(self.delimiter).collect();
            if fields.len() != n_fields {
                return Err(Error::BadValue {
                    path: self.path.clone(),
                    column: self.schema.field(0).name().clone(),
                    row: self.row,
                    value: format!("\"{text}\""),
                    reason: format!(
                        "line {}: expected {n_fields} fields separated by {:?}, found {}",
                        self.line,
                        self.delimiter,
                        fields.len()
                    ),
                }
                .into());
            }
            for (column, field) in columns.iter_mut().zip(fields) {
                column.push((!field.is_empty()).then(|| field.to_string()));
            }
            n_rows += 1;
            self.row += 1;
            self.left -= 1;
        }
        if n_rows == 0 {
            return Ok(None);
        }
        let arrays: Vec<ArrayRef> = columns
            .into_iter()
            .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
            .collect();
        Ok(Some(RecordBatch::try_new(self.schema.clone(), arrays)?))
    }
}

impl Iterator for PlainBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read_batch().transpose()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};

    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn header_split_keeps_quoted_delimiters_and_escaped_quotes() {
        assert_eq!(
            split_header(r#"uid,"a,b",  "say ""hi""",t"#, ','),
            vec!["uid", "a,b", "say \"hi\"", "t"]
        );
        assert_eq!(split_header("uid\titem", '\t'), vec!["uid", "item"]);
    }

    #[test]
    fn header_sniffs_tab_and_comma() {
        let dir = tempfile::tempdir().unwrap();
        let tsv = write(&dir, "a.tsv", b"user_id\tvideo_id\n1\t2\n");
        let csv = write(&dir, "a.csv", b"\xef\xbb\xbfuser_id,video_id\r\n1,2\r\n");
        assert_eq!(TextTable::open(&tsv, None).unwrap().delimiter, b'\t');
        let table = TextTable::open(&csv, None).unwrap();
        assert_eq!(
            (table.delimiter, table.header.clone()),
            (b',', vec!["user_id".into(), "video_id".into()])
        );
    }

    #[test]
    fn empty_file_is_an_empty_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "log.csv", b"");
        let message = TextTable::open(&path, None).unwrap_err().to_string();
        assert!(
            message.contains("log.csv") && message.contains("empty"),
            "{message}"
        );
    }

    #[test]
    fn missing_column_names_file_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let table = TextTable::open(&write(&dir, "log.csv", b"a,b\n"), None).unwrap();
        let message = table.column("time_ms").unwrap_err().to_string();
        assert!(
            message.contains("log.csv") && message.contains("\"time_ms\""),
            "{message}"
        );
    }

    #[test]
    fn batches_project_in_order_keep_big_ids_as_text_and_respect_limit() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"a,b,c\n9007199254740993,x,\n2,y,\"q,r\"\n3,z,w\n";
        let table = TextTable::open(&write(&dir, "t.csv", body), None).unwrap();
        let batches: Vec<RecordBatch> = table
            .batches(&[2, 0], Some(2))
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 2);
        let first = &batches[0];
        assert!(first.column(0).is_null(0));
        assert_eq!(first.column(0).as_string::<i32>().value(1), "q,r");
        assert_eq!(
            first.column(1).as_string::<i32>().value(0),
            "9007199254740993"
        );
    }

    #[test]
    fn plain_lines_decode_latin1_and_skip_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "u.item", b"1|Caf\xe9 (1995)\n\n2|\n");
        let batches: Vec<RecordBatch> = PlainBatches::open(&path, '|', &["id", "title"], None)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        let titles = batches[0].column(1).as_string::<i32>();
        assert_eq!(titles.value(0), "Café (1995)");
        assert!(titles.is_null(1));
    }

    #[test]
    fn plain_line_with_wrong_field_count_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "u.data", b"1\t2\t3\t4\n1\t2\t3\n");
        let result: Result<Vec<RecordBatch>> =
            PlainBatches::open(&path, '\t', &["a", "b", "c", "d"], None)
                .unwrap()
                .collect();
        let message = result.unwrap_err().to_string();
        assert!(
            message.contains("u.data") && message.contains("line 2"),
            "{message}"
        );
    }
}

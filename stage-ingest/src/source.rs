//! What every file source hands over (the raw log and its side features), and the helpers
//! the sources share: finding files in a folder, reading a feature CSV into a side table,
//! and the checks for an empty log.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use common::summary::FileRows;
use common::Error;

use crate::fields::{self, Origin};
use crate::intern::IdInterner;
use crate::log::RawLog;
use crate::side::{SideTable, SideValues};
use crate::text::TextTable;

/// A file source after reading.
#[derive(Debug)]
pub struct SourceData {
    pub log: RawLog,
    /// User features, per user key.
    pub user_side: SideTable,
    /// Video features, per video key (e.g. `title`, `category`, `duration_ms`).
    pub video_side: SideTable,
    /// Feature files read, with their rows.
    pub feature_inputs: Vec<FileRows>,
    /// Whether videos get a `duration_ms` feature: the side table's value where present,
    /// else the median duration of the video's rows in the log.
    pub video_duration: bool,
}

/// How a feature column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    /// A number (Float32); empty or unparsable-as-NaN values are null.
    Float,
    /// Text as written.
    Text,
    /// A 0/1 flag.
    Flag,
    /// The first element of a comma-separated list (e.g. KuaiRand's `tag` "28,3" → "28").
    FirstOfList,
}

/// One feature of a feature file: source column, output name, kind.
#[derive(Debug, Clone)]
pub struct FeatureSpec {
    pub source: String,
    pub name: String,
    pub kind: FeatureKind,
}

impl FeatureSpec {
    /// Reads column `source` as feature `name`.
    pub fn new(source: &str, name: &str, kind: FeatureKind) -> FeatureSpec {
        FeatureSpec {
            source: source.to_string(),
            name: name.to_string(),
            kind,
        }
    }
}

/// Files in `dir` whose names start with one of `prefixes` and end with one of
/// `extensions`, sorted by name.
pub fn files_matching(dir: &Path, prefixes: &[&str], extensions: &[&str]) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let wanted = prefixes.iter().any(|p| name.starts_with(p))
            && extensions.iter().any(|e| name.ends_with(e));
        if wanted && path.is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Fails with a clear message when a log file held no data rows.
pub fn check_not_empty(path: &Path, rows: u64) -> Result<()> {
    if rows == 0 {
        return Err(Error::Empty {
            path: path.to_path_buf(),
            what: "the log holds no rows (nothing to ingest)".to_string(),
        }
        .into());
    }
    Ok(())
}

/// Fails when validation dropped every row that was read.
pub fn check_rows_kept(log: &RawLog) -> Result<()> {
    if log.is_empty() {
        let files: Vec<String> = log.inputs.iter().map(|f| f.path.clone()).collect();
        bail!(
            "{}: all {} rows were dropped by the validation rules ({}); nothing to ingest",
            files.join(", "),
            log.rows_read,
            serde_json::Value::Object(log.drops.by_reason())
        );
    }
    Ok(())
}

/// Reads a feature CSV/TSV keyed by `id_column` into `table`, for ids already in the log.
///
/// A column of `specs` that the file lacks is skipped (features are best effort); the id
/// column is required. When several rows (or files) describe the same id, the first wins.
/// `filled` marks keys that already have a row and grows with the interner.
pub fn read_feature_file(
    path: &Path,
    id_column: &str,
    ids: &mut IdInterner,
    specs: &[FeatureSpec],
    table: &mut SideTable,
    filled: &mut Vec<bool>,
) -> Result<FileRows> {
    let text = TextTable::open(path, None)?;
    let id_at = text.column(id_column)?;
    let present: Vec<(&FeatureSpec, usize)> = specs
        .iter()
        .filter_map(|spec| text.find(&spec.source).map(|at| (spec, at)))
        .collect();
    let n_keys = ids.len();
    filled.resize(n_keys, false);
    for (spec, _) in &present {
        if table.get(&spec.name).is_none() {
            let values = match spec.kind {
                FeatureKind::Float => SideValues::Float(vec![f32::NAN; n_keys]),
                FeatureKind::Flag => SideValues::Flag(vec![None; n_keys]),
                FeatureKind::Text | FeatureKind::FirstOfList => {
                    SideValues::Text(vec![None; n_keys])
                }
            };
            table.push(&spec.name, values);
        }
    }

    let mut projection = vec![id_at];
    projection.extend(present.iter().map(|(_, at)| *at));
    ids.begin_file(path);
    let mut rows = 0u64;
    for batch in text.batches(&projection, None)? {
        let batch = batch?;
        let id_origin = Origin {
            path,
            column: id_column,
            first_row: rows,
        };
        let keys = fields::lookup_ids(batch.column(0), ids, id_origin)?;
        // Rows whose id is not in the log, or already described, are skipped.
        let targets: Vec<Option<usize>> = keys
            .iter()
            .map(|key| {
                let key = (*key)? as usize;
                (!std::mem::replace(&mut filled[key], true)).then_some(key)
            })
            .collect();
        for (i, (spec, _)) in present.iter().enumerate() {
            let array = batch.column(i + 1);
            let column_origin = Origin {
                path,
                column: &spec.source,
                first_row: rows,
            };
            let slot = &mut table.get_mut(&spec.name).expect("created above").values;
            match (spec.kind, slot) {
                (FeatureKind::Float, SideValues::Float(values)) => {
                    let parsed = fields::numbers(array, column_origin)?;
                    for (target, value) in targets.iter().zip(parsed) {
                        if let (Some(key), Some(value)) = (target, value) {
                            values[*key] = value;
                        }
                    }
                }
                (FeatureKind::Flag, SideValues::Flag(values)) => {
                    let parsed = fields::flags(array, column_origin)?;
                    for (target, value) in targets.iter().zip(parsed) {
                        if let Some(key) = target {
                            values[*key] = value;
                        }
                    }
                }
                (kind, SideValues::Text(values)) => {
                    let parsed = fields::texts(array, column_origin)?;
                    for (target, value) in targets.iter().zip(parsed) {
                        if let Some(key) = target {
                            values[*key] = match kind {
                                FeatureKind::FirstOfList => value.and_then(|v| first_of_list(&v)),
                                _ => value,
                            };
                        }
                    }
                }
                (_, _) => bail!(
                    "{}: feature \"{}\" is read as two different kinds by two files",
                    path.display(),
                    spec.name
                ),
            }
        }
        rows += batch.num_rows() as u64;
    }
    Ok(FileRows::new(path, rows))
}

/// The first non-empty element of a comma-separated list.
fn first_of_list(text: &str) -> Option<String> {
    text.split(',')
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_of_list_takes_the_first_non_empty_element() {
        assert_eq!(first_of_list("28,3"), Some("28".into()));
        assert_eq!(first_of_list(" ,7"), Some("7".into()));
        assert_eq!(first_of_list(""), None);
    }

    #[test]
    fn feature_file_fills_known_ids_first_row_wins_and_skips_absent_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("video_features_basic_x.csv");
        let body = "video_id,tag,video_duration\n2,\"5,6\",1000\n9,1,3\n2,8,2000\n1,,\n";
        std::fs::write(&path, body).unwrap();
        let mut ids = IdInterner::new("video_id");
        ids.begin_file(Path::new("log.csv"));
        ids.intern_text("1");
        ids.intern_text("2");
        let specs = [
            FeatureSpec::new("tag", "category", FeatureKind::FirstOfList),
            FeatureSpec::new("video_duration", "duration_ms", FeatureKind::Float),
            FeatureSpec::new("video_type", "video_type", FeatureKind::Text),
        ];
        let mut table = SideTable::default();
        let mut filled = Vec::new();
        let rows = read_feature_file(&path, "video_id", &mut ids, &specs, &mut table, &mut filled)
            .unwrap();
        assert_eq!(rows.rows, 4);
        assert_eq!(table.columns.len(), 2);
        let SideValues::Text(tags) = &table.get("category").unwrap().values else {
            panic!()
        };
        assert_eq!(tags, &vec![None, Some("5".to_string())]);
        let SideValues::Float(durations) = &table.get("duration_ms").unwrap().values else {
            panic!()
        };
        assert!(durations[0].is_nan());
        assert_eq!(durations[1], 1000.0);
    }

    #[test]
    fn feature_file_without_its_id_column_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user_features.csv");
        std::fs::write(&path, "uid,x\n1,2\n").unwrap();
        let mut ids = IdInterner::new("user_id");
        let message = read_feature_file(
            &path,
            "user_id",
            &mut ids,
            &[],
            &mut SideTable::default(),
            &mut Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(message.contains("user_features.csv") && message.contains("\"user_id\""));
    }
}

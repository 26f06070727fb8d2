//! The per-dataset TOML configuration: source format, objectives and stage parameters.
//!
//! One file (`data/<dataset>.toml`) drives the whole pipeline. This module parses the parts
//! every stage shares (the dataset and the objectives) and hands each stage its own section,
//! typed by the stage, with an objective's overrides laid over the global section:
//!
//! ```toml
//! [als]                      # global ALS settings
//! factors = 32
//! [[objective]]
//! name = "like"
//! label = "like"             # signal, or "signal OP number", e.g. "rating >= 4"
//! weight = 1.0               # manual weight a_k
//! als = { mode = "implicit" } # overrides [als] for this objective only
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{param_error, Error};
use crate::schema::is_signal;

/// Where the raw log comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    /// KuaiRand logs (`log_*.csv` or the TSV in shared/data), read from `RAW`.
    Kuairand,
    /// MovieLens (`u.data`/`u.user`/`u.item`, or `ratings.csv`/`movies.csv`), read from `RAW`.
    Movielens,
    /// Any Parquet or CSV log with a column mapping in `[dataset.columns]`.
    Generic,
    /// The built-in deterministic generator; needs no input.
    Synthetic,
}

/// The `[dataset]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Name used in logs and output metadata.
    pub name: String,
    pub format: SourceFormat,
    /// Column mapping of a generic log; read by `stage-ingest`.
    #[serde(default)]
    pub columns: Option<toml::Table>,
    /// Generator settings of the synthetic source; read by `stage-ingest`.
    #[serde(default)]
    pub synthetic: Option<toml::Table>,
}

/// A comparison in a label rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

/// How an objective's 0/1 label derives from one feedback signal.
///
/// `"like"` means `like > 0` (true for a Boolean signal that is set); `"rating >= 4"`
/// compares a numeric signal. A row whose signal is null has no label for the objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelRule {
    pub signal: String,
    pub op: CompareOp,
    pub threshold: f32,
}

impl LabelRule {
    /// Parses `"signal"` or `"signal OP number"` with OP one of `> >= < <= ==`.
    pub fn parse(text: &str) -> Result<LabelRule, Error> {
        let bad = |why: &str| param_error("label", format!("\"{text}\""), why);
        let parts: Vec<&str> = text.split_whitespace().collect();
        let (signal, op, threshold) = match parts.as_slice() {
            [signal] => (*signal, CompareOp::Gt, 0.0),
            [signal, op, number] => {
                let op = match *op {
                    ">" => CompareOp::Gt,
                    ">=" => CompareOp::Ge,
                    "<" => CompareOp::Lt,
                    "<=" => CompareOp::Le,
                    "==" => CompareOp::Eq,
                    _ => return Err(bad("the operator must be one of > >= < <= ==")),
                };
                let threshold: f32 = number
                    .parse()
                    .map_err(|_| bad("the right-hand side must be a number"))?;
                if !threshold.is_finite() {
                    return Err(bad("the right-hand side must be finite"));
                }
                (*signal, op, threshold)
            }
            _ => {
                return Err(bad(
                    "write \"signal\" or \"signal OP number\", e.g. \"rating >= 4\"",
                ))
            }
        };
        if !is_signal(signal) {
            return Err(bad(&format!(
                "unknown signal \"{signal}\"; signals are {}, {}",
                crate::schema::BOOL_SIGNALS.join(", "),
                crate::schema::NUMERIC_SIGNALS.join(", ")
            )));
        }
        Ok(LabelRule {
            signal: signal.to_string(),
            op,
            threshold,
        })
    }

    /// The label of one signal value; `None` when the value is missing (NaN).
    pub fn apply(&self, value: f32) -> Option<bool> {
        if value.is_nan() {
            return None;
        }
        Some(match self.op {
            CompareOp::Gt => value > self.threshold,
            CompareOp::Ge => value >= self.threshold,
            CompareOp::Lt => value < self.threshold,
            CompareOp::Le => value <= self.threshold,
            CompareOp::Eq => value == self.threshold,
        })
    }
}

/// One `[[objective]]` entry.
#[derive(Debug, Clone, Serialize)]
pub struct Objective {
    /// Identifier used in file and column names (`[a-z0-9_]+`).
    pub name: String,
    /// How the objective's label derives from the signals.
    pub label: LabelRule,
    /// Manual product weight a_k; negative pushes the objective's videos down.
    pub weight: f64,
    /// Routing threshold t_k of the Coordinating Network; `None` uses the global one.
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawObjective {
    name: String,
    label: String,
    weight: f64,
    #[serde(default)]
    threshold: Option<f64>,
}

/// The whole configuration file.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub path: PathBuf,
    pub dataset: DatasetConfig,
    pub objectives: Vec<Objective>,
    raw: toml::Table,
}

/// Top-level sections a configuration may hold; anything else is a typo.
const KNOWN_SECTIONS: &[&str] = &[
    "dataset",
    "split",
    "candidates",
    "coordinate",
    "als",
    "twotower",
    "merge",
    "eval",
    "objective",
];

/// Per-objective override tables a `[[objective]]` entry may hold.
const OBJECTIVE_OVERRIDES: &[&str] = &["als", "twotower"];

impl PipelineConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<PipelineConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Self::parse(&text, path).with_context(|| format!("config {}", path.display()))
    }

    /// Parses configuration text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<PipelineConfig> {
        let raw: toml::Table = toml::from_str(text)?;
        for key in raw.keys() {
            if !KNOWN_SECTIONS.contains(&key.as_str()) {
                bail!(
                    "unknown section [{key}]; known: {}",
                    KNOWN_SECTIONS.join(", ")
                );
            }
        }

        let dataset: DatasetConfig = raw
            .get("dataset")
            .context("missing [dataset] section")?
            .clone()
            .try_into()
            .context("in [dataset]")?;

        let entries = match raw.get("objective") {
            Some(toml::Value::Array(entries)) => entries.clone(),
            _ => bail!("no [[objective]] entries: name at least one objective"),
        };
        let mut objectives = Vec::with_capacity(entries.len());
        for (position, entry) in entries.iter().enumerate() {
            objectives.push(
                parse_objective(entry)
                    .with_context(|| format!("in [[objective]] number {}", position + 1))?,
            );
        }
        for (i, objective) in objectives.iter().enumerate() {
            if objectives[..i].iter().any(|o| o.name == objective.name) {
                bail!("objective \"{}\" is named twice", objective.name);
            }
        }
        // Every pair would score 0 and the lists would follow video index order.
        if objectives.iter().all(|o| o.weight == 0.0) {
            bail!(
                "every [[objective]] has weight = 0: the final score would be 0 for every pair; \
                 give at least one objective a non-zero manual weight"
            );
        }

        Ok(PipelineConfig {
            path: path.to_path_buf(),
            dataset,
            objectives,
            raw,
        })
    }

    /// A stage's section (`[candidates]`, `[als]`...), typed by the stage; absent means
    /// all defaults.
    pub fn section<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        let table = self
            .raw
            .get(name)
            .cloned()
            .unwrap_or(toml::Value::Table(toml::Table::new()));
        table
            .try_into()
            .with_context(|| format!("in [{name}] of {}", self.path.display()))
    }

    /// A stage's section for one objective: the global section with that objective's
    /// override table (for example `als = { factors = 64 }`) laid over it.
    pub fn objective_section<T: DeserializeOwned>(&self, name: &str, objective: &str) -> Result<T> {
        self.objective(objective)?;
        let mut table = match self.raw.get(name) {
            Some(toml::Value::Table(table)) => table.clone(),
            _ => toml::Table::new(),
        };
        if let Some(overrides) = self.objective_raw(objective).and_then(|o| o.get(name)) {
            let overrides = overrides.as_table().with_context(|| {
                format!("objective \"{objective}\": `{name}` must be a table of overrides")
            })?;
            for (key, value) in overrides {
                table.insert(key.clone(), value.clone());
            }
        }
        toml::Value::Table(table).try_into().with_context(|| {
            format!(
                "in [{name}] for objective \"{objective}\" of {}",
                self.path.display()
            )
        })
    }

    /// The objective of that name, or an error that lists the configured ones.
    pub fn objective(&self, name: &str) -> Result<&Objective> {
        self.objectives
            .iter()
            .find(|o| o.name == name)
            .with_context(|| {
                format!(
                    "unknown objective \"{name}\" in {}; configured: {}",
                    self.path.display(),
                    self.objective_names().join(", ")
                )
            })
    }

    pub fn objective_names(&self) -> Vec<&str> {
        self.objectives.iter().map(|o| o.name.as_str()).collect()
    }

    fn objective_raw(&self, name: &str) -> Option<&toml::Table> {
        self.raw
            .get("objective")?
            .as_array()?
            .iter()
            .filter_map(|v| v.as_table())
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
    }

    /// The raw text of one section (with an objective's overrides, if given) as canonical
    /// JSON: what make stamps compare to decide whether a stage must re-run.
    pub fn section_fingerprint(&self, name: &str, objective: Option<&str>) -> Result<String> {
        let value: toml::Value = match objective {
            Some(objective) => self.objective_section(name, objective)?,
            None => self
                .raw
                .get(name)
                .cloned()
                .unwrap_or(toml::Value::Table(Default::default())),
        };
        Ok(serde_json::to_string_pretty(&value)?)
    }
}

/// Names an objective cannot take: outputs already use them beside the objectives' names.
pub const RESERVED_OBJECTIVE_NAMES: [&str; 3] = ["all", "covisitation", "mean"];

fn parse_objective(entry: &toml::Value) -> Result<Objective> {
    let table = entry.as_table().context("an objective must be a table")?;
    let mut plain = table.clone();
    for key in OBJECTIVE_OVERRIDES {
        plain.remove(*key);
    }
    for key in plain.keys() {
        if !["name", "label", "weight", "threshold"].contains(&key.as_str()) {
            bail!(
                "unknown key `{key}`; an objective has name, label, weight, threshold and the \
                 override tables {}",
                OBJECTIVE_OVERRIDES.join(", ")
            );
        }
    }
    let raw: RawObjective = toml::Value::Table(plain).try_into()?;

    let name_ok = !raw.name.is_empty()
        && raw
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !name_ok {
        return Err(param_error("name", &raw.name, "use lowercase letters, digits and _").into());
    }
    // Output columns and rankings are named after objectives next to these fixed names
    // (`contrib_covisitation`, `als_mean`, the "all" truth of eval.parquet).
    if RESERVED_OBJECTIVE_NAMES.contains(&raw.name.as_str()) {
        return Err(param_error(
            "name",
            format!("\"{}\"", raw.name),
            &format!(
                "is reserved ({} name columns and rankings of their own); choose another",
                RESERVED_OBJECTIVE_NAMES.join(", ")
            ),
        )
        .into());
    }
    if !raw.weight.is_finite() {
        return Err(param_error("weight", raw.weight, "must be finite").into());
    }
    if let Some(t) = raw.threshold {
        if !(0.0..=1.0).contains(&t) {
            return Err(param_error("threshold", t, "must lie in [0, 1]").into());
        }
    }
    Ok(Objective {
        label: LabelRule::parse(&raw.label)?,
        name: raw.name,
        weight: raw.weight,
        threshold: raw.threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
        [dataset]
        name = "t"
        format = "synthetic"
        [als]
        factors = 8
        [[objective]]
        name = "like"
        label = "like"
        weight = 1.0
        als = { factors = 16 }
        [[objective]]
        name = "good"
        label = "rating >= 4"
        weight = -0.5
        threshold = 0.3
    "#;

    #[derive(Deserialize)]
    struct Als {
        factors: usize,
    }

    #[test]
    fn label_rules_parse_and_apply() {
        let rule = LabelRule::parse("rating >= 4").unwrap();
        assert_eq!(rule.apply(4.0), Some(true));
        assert_eq!(rule.apply(3.5), Some(false));
        assert_eq!(rule.apply(f32::NAN), None);
        let plain = LabelRule::parse("click").unwrap();
        assert_eq!(plain.apply(1.0), Some(true));
        assert_eq!(plain.apply(0.0), Some(false));
    }

    #[test]
    fn label_rule_rejects_unknown_signal_and_operator() {
        assert!(LabelRule::parse("clicks")
            .unwrap_err()
            .to_string()
            .contains("unknown signal"));
        assert!(LabelRule::parse("rating => 4")
            .unwrap_err()
            .to_string()
            .contains("operator"));
        assert!(LabelRule::parse("rating >= x")
            .unwrap_err()
            .to_string()
            .contains("number"));
    }

    #[test]
    fn objective_overrides_lay_over_global_section() {
        let config = PipelineConfig::parse(SAMPLE, Path::new("t.toml")).unwrap();
        let like: Als = config.objective_section("als", "like").unwrap();
        let good: Als = config.objective_section("als", "good").unwrap();
        assert_eq!((like.factors, good.factors), (16, 8));
        assert_eq!(config.objective("good").unwrap().threshold, Some(0.3));
    }

    #[test]
    fn rejects_unknown_section_duplicate_objective_and_bad_threshold() {
        let typo = SAMPLE.replace("[als]", "[alss]");
        assert!(format!(
            "{:#}",
            PipelineConfig::parse(&typo, Path::new("t")).unwrap_err()
        )
        .contains("unknown section [alss]"));
        let twice = SAMPLE.replace("name = \"good\"", "name = \"like\"");
        assert!(format!(
            "{:#}",
            PipelineConfig::parse(&twice, Path::new("t")).unwrap_err()
        )
        .contains("named twice"));
        let reserved = SAMPLE.replace("name = \"good\"", "name = \"mean\"");
        let message = format!(
            "{:#}",
            PipelineConfig::parse(&reserved, Path::new("t")).unwrap_err()
        );
        assert!(
            message.contains("name = \"mean\": is reserved"),
            "{message}"
        );
        let silent = SAMPLE
            .replace("weight = 1.0", "weight = 0.0")
            .replace("weight = -0.5", "weight = 0.0");
        let message = format!(
            "{:#}",
            PipelineConfig::parse(&silent, Path::new("t")).unwrap_err()
        );
        assert!(
            message.contains("every [[objective]] has weight = 0"),
            "{message}"
        );
        let bad = SAMPLE.replace("threshold = 0.3", "threshold = 1.5");
        assert!(format!(
            "{:#}",
            PipelineConfig::parse(&bad, Path::new("t")).unwrap_err()
        )
        .contains("[0, 1]"));
    }
}

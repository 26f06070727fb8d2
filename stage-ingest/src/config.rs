//! Settings of `stage-ingest`: the source (the `[dataset]` section and its `columns` or
//! `synthetic` table), the time split (`[split]`) and the command-line values, checked rule
//! by rule before any data is read.

use std::path::PathBuf;

use anyhow::{Context, Result};
use common::error::param_error;
use common::{PipelineConfig, SourceFormat};
use serde::{Deserialize, Serialize};

use crate::fields::TsUnit;

/// The `[split]` section: the share of events, latest first, held out for validation and
/// test.
///
/// ```toml
/// [split]
/// valid_fraction = 0.1   # in [0, 1), default 0.1
/// test_fraction = 0.1    # in [0, 1), default 0.1; valid_fraction + test_fraction < 1
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    /// Share of all events in the validation split (the events just before the test
    /// split). Range [0, 1); default 0.1.
    pub valid_fraction: f64,
    /// Share of all events in the test split (the latest events). Range [0, 1); default
    /// 0.1.
    pub test_fraction: f64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            valid_fraction: 0.1,
            test_fraction: 0.1,
        }
    }
}

impl SplitConfig {
    /// Checks each rule of the section.
    pub fn validate(&self) -> Result<(), common::Error> {
        for (name, value) in [
            ("split.valid_fraction", self.valid_fraction),
            ("split.test_fraction", self.test_fraction),
        ] {
            if !(0.0..1.0).contains(&value) {
                return Err(param_error(name, value, "must lie in [0, 1)"));
            }
        }
        let sum = self.valid_fraction + self.test_fraction;
        if sum >= 1.0 {
            return Err(param_error(
                "split.valid_fraction + split.test_fraction",
                sum,
                "must be below 1 so that the train split is not empty",
            ));
        }
        Ok(())
    }
}

/// The `[dataset.synthetic]` table: size and shape of the generated log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Target number of interactions; the generated log has this many rows within about
    /// 1 %. `--rows` overrides it. At least 1; default 200000.
    pub rows: u64,
    /// Number of video categories (interest clusters). Range 2..=1000; default 20.
    pub categories: u32,
    /// Weeks of activity; retention is decided week by week. Range 2..=52; default 4.
    pub weeks: u32,
    /// Exponent of the Zipf law of video popularity (weight of rank r is r^-s). Range
    /// (0, 3]; default 1.0.
    pub zipf_exponent: f64,
    /// Rows per user: users = max(rows / rows_per_user, 20). At least 1; default 40. With
    /// many weeks a user's log cannot be that short (one session per active week at
    /// least); fewer users are then generated, with a warning, to keep the size.
    pub rows_per_user: u64,
    /// Rows per video: videos = max(rows / rows_per_video, 50). At least 1; default 100.
    pub rows_per_video: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            rows: 200_000,
            categories: 20,
            weeks: 4,
            zipf_exponent: 1.0,
            rows_per_user: 40,
            rows_per_video: 100,
        }
    }
}

impl SyntheticConfig {
    /// Checks each rule of the table.
    pub fn validate(&self) -> Result<(), common::Error> {
        if self.rows == 0 {
            return Err(param_error(
                "dataset.synthetic.rows",
                self.rows,
                "must be at least 1",
            ));
        }
        if !(2..=1000).contains(&self.categories) {
            return Err(param_error(
                "dataset.synthetic.categories",
                self.categories,
                "must lie in 2..=1000",
            ));
        }
        if !(2..=52).contains(&self.weeks) {
            return Err(param_error(
                "dataset.synthetic.weeks",
                self.weeks,
                "must lie in 2..=52",
            ));
        }
        if !(self.zipf_exponent > 0.0 && self.zipf_exponent <= 3.0) {
            return Err(param_error(
                "dataset.synthetic.zipf_exponent",
                self.zipf_exponent,
                "must lie in (0, 3]",
            ));
        }
        if self.rows_per_user == 0 {
            return Err(param_error(
                "dataset.synthetic.rows_per_user",
                0,
                "must be at least 1",
            ));
        }
        if self.rows_per_video == 0 {
            return Err(param_error(
                "dataset.synthetic.rows_per_video",
                0,
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The `[dataset.columns]` table of a generic log: which source column holds what.
///
/// ```toml
/// [dataset.columns]
/// user = "uid"              # required: user id column (integer or text)
/// video = "item"            # required: video id column (integer or text)
/// timestamp = "event_time"  # required: Timestamp column, or a number/text of timestamp_unit
/// timestamp_unit = "s"      # "s" or "ms"; required unless the column is a Parquet Timestamp
/// delimiter = ","           # CSV only; default: tab when the header holds one, else comma
/// like = "liked"            # optional signals: click, long_view, like, comment, forward,
/// rating = "stars"          # follow, dislike, play_time_ms, duration_ms, rating
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnsConfig {
    /// Column of the user id.
    pub user: String,
    /// Column of the video id.
    pub video: String,
    /// Column of the event time.
    pub timestamp: String,
    /// Unit of a numeric or text timestamp.
    #[serde(default)]
    pub timestamp_unit: Option<TsUnit>,
    /// Field delimiter of a CSV file (one ASCII character).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Column of the Boolean signal `click` (0/1, Boolean or text).
    #[serde(default)]
    pub click: Option<String>,
    /// Column of the Boolean signal `long_view` (0/1, Boolean or text).
    #[serde(default)]
    pub long_view: Option<String>,
    /// Column of the Boolean signal `like` (0/1, Boolean or text).
    #[serde(default)]
    pub like: Option<String>,
    /// Column of the Boolean signal `comment` (0/1, Boolean or text).
    #[serde(default)]
    pub comment: Option<String>,
    /// Column of the Boolean signal `forward` (0/1, Boolean or text).
    #[serde(default)]
    pub forward: Option<String>,
    /// Column of the Boolean signal `follow` (0/1, Boolean or text).
    #[serde(default)]
    pub follow: Option<String>,
    /// Column of the Boolean signal `dislike` (0/1, Boolean or text).
    #[serde(default)]
    pub dislike: Option<String>,
    /// Column of the numeric signal `play_time_ms`.
    #[serde(default)]
    pub play_time_ms: Option<String>,
    /// Column of the numeric signal `duration_ms`.
    #[serde(default)]
    pub duration_ms: Option<String>,
    /// Column of the numeric signal `rating`.
    #[serde(default)]
    pub rating: Option<String>,
}

impl ColumnsConfig {
    /// The Boolean signals, in `BOOL_SIGNALS` order, with their source columns.
    pub fn bool_signals(&self) -> [Option<&str>; 7] {
        [
            &self.click,
            &self.long_view,
            &self.like,
            &self.comment,
            &self.forward,
            &self.follow,
            &self.dislike,
        ]
        .map(|c| c.as_deref())
    }

    /// The numeric signals, in `NUMERIC_SIGNALS` order, with their source columns.
    pub fn numeric_signals(&self) -> [Option<&str>; 3] {
        [&self.play_time_ms, &self.duration_ms, &self.rating].map(|c| c.as_deref())
    }

    /// The delimiter byte, if one is set.
    pub fn delimiter_byte(&self) -> Option<u8> {
        self.delimiter.as_ref().map(|d| d.as_bytes()[0])
    }

    /// Checks each rule of the table.
    pub fn validate(&self) -> Result<(), common::Error> {
        let names = [
            ("user", &self.user),
            ("video", &self.video),
            ("timestamp", &self.timestamp),
        ];
        for (key, name) in names {
            if name.is_empty() {
                return Err(param_error(
                    &format!("dataset.columns.{key}"),
                    "\"\"",
                    "name a column",
                ));
            }
        }
        let signals = self
            .bool_signals()
            .into_iter()
            .chain(self.numeric_signals());
        if signals.flatten().any(str::is_empty) {
            return Err(param_error(
                "dataset.columns",
                "\"\"",
                "a signal maps to an empty column name",
            ));
        }
        if self.user == self.video {
            return Err(param_error(
                "dataset.columns.video",
                format!("\"{}\"", self.video),
                "users and videos must come from different columns",
            ));
        }
        if let Some(delimiter) = &self.delimiter {
            if delimiter.len() != 1 || !delimiter.is_ascii() {
                return Err(param_error(
                    "dataset.columns.delimiter",
                    format!("\"{delimiter}\""),
                    "must be one ASCII character, e.g. \",\" or \"\\t\"",
                ));
            }
        }
        Ok(())
    }
}

/// Where the raw log comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "format", rename_all = "kebab-case")]
pub enum Source {
    /// KuaiRand logs (a file, or a folder of `log*.csv`/`log*.tsv` and feature files).
    Kuairand { raw: PathBuf },
    /// MovieLens (a folder with `u.data` or `ratings.csv`).
    Movielens { raw: PathBuf },
    /// A Parquet or CSV log with a column mapping.
    Generic {
        raw: PathBuf,
        columns: Box<ColumnsConfig>,
    },
    /// The built-in generator.
    Synthetic { settings: SyntheticConfig },
}

/// Everything a run needs, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// `[dataset] name`.
    pub dataset: String,
    /// Output folder.
    pub dir: PathBuf,
    pub source: Source,
    pub split: SplitConfig,
    /// At most this many raw rows are read (file sources); `None` reads everything.
    pub row_limit: Option<u64>,
    pub seed: u64,
}

/// Deserialises a raw TOML table of `[dataset]` into a typed, strict struct.
fn typed_table<T: serde::de::DeserializeOwned>(table: &impl Serialize, name: &str) -> Result<T> {
    let value = serde_json::to_value(table).with_context(|| format!("in [{name}]"))?;
    serde_json::from_value(value).with_context(|| format!("in [{name}]"))
}

impl Config {
    /// Builds and checks the settings from the pipeline configuration and the CLI values.
    pub fn from_parts(
        pipeline: &PipelineConfig,
        dir: PathBuf,
        raw: Option<PathBuf>,
        rows: Option<u64>,
        seed: u64,
    ) -> Result<Config> {
        let dataset = &pipeline.dataset;
        let split: SplitConfig = pipeline.section("split")?;
        split.validate()?;
        if rows == Some(0) {
            return Err(param_error("--rows", 0, "must be at least 1").into());
        }

        let format = dataset.format;
        if dataset.columns.is_some() && format != SourceFormat::Generic {
            return Err(param_error(
                "dataset.columns",
                "(a table)",
                "only the generic format reads a column mapping; remove it or set format = \"generic\"",
            )
            .into());
        }
        if dataset.synthetic.is_some() && format != SourceFormat::Synthetic {
            return Err(param_error(
                "dataset.synthetic",
                "(a table)",
                "only the synthetic format reads generator settings",
            )
            .into());
        }

        let need_raw = |raw: Option<PathBuf>, what: &str| {
            raw.ok_or_else(|| {
                param_error(
                    "--raw",
                    "(not given)",
                    &format!("the {what} format reads RAW: pass --raw PATH"),
                )
            })
        };
        let (source, row_limit) = match format {
            SourceFormat::Kuairand => (
                Source::Kuairand {
                    raw: need_raw(raw, "kuairand")?,
                },
                rows,
            ),
            SourceFormat::Movielens => (
                Source::Movielens {
                    raw: need_raw(raw, "movielens")?,
                },
                rows,
            ),
            SourceFormat::Generic => {
                let table = dataset.columns.as_ref().ok_or_else(|| {
                    param_error(
                        "dataset.columns",
                        "(missing)",
                        "the generic format needs a column mapping",
                    )
                })?;
                let columns: Box<ColumnsConfig> = typed_table(table, "dataset.columns")?;
                columns.validate()?;
                (
                    Source::Generic {
                        raw: need_raw(raw, "generic")?,
                        columns,
                    },
                    rows,
                )
            }
            SourceFormat::Synthetic => {
                if let Some(raw) = raw {
                    return Err(param_error(
                        "--raw",
                        raw.display(),
                        "the synthetic format generates its log and reads no file",
                    )
                    .into());
                }
                let mut settings: SyntheticConfig = match &dataset.synthetic {
                    Some(table) => typed_table(table, "dataset.synthetic")?,
                    None => SyntheticConfig::default(),
                };
                if let Some(rows) = rows {
                    settings.rows = rows;
                }
                settings.validate()?;
                (Source::Synthetic { settings }, None)
            }
        };

        Ok(Config {
            dataset: dataset.name.clone(),
            dir,
            source,
            split,
            row_limit,
            seed,
        })
    }

    /// The effective configuration as JSON, for the summary and the file metadata.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("the configuration is plain data")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const OBJECTIVE: &str = "[[objective]]\nname = \"like\"\nlabel = \"like\"\nweight = 1.0\n";

    fn pipeline(dataset: &str, extra: &str) -> PipelineConfig {
        let text = format!("[dataset]\nname = \"t\"\n{dataset}\n{extra}\n{OBJECTIVE}");
        PipelineConfig::parse(&text, Path::new("t.toml")).unwrap()
    }

    fn build(dataset: &str, extra: &str, raw: Option<&str>, rows: Option<u64>) -> Result<Config> {
        Config::from_parts(
            &pipeline(dataset, extra),
            "out".into(),
            raw.map(PathBuf::from),
            rows,
            1,
        )
    }

    fn message(result: Result<Config>) -> String {
        format!("{:#}", result.unwrap_err())
    }

    const GENERIC: &str = "format = \"generic\"\n[dataset.columns]\nuser = \"u\"\nvideo = \"v\"\ntimestamp = \"t\"\ntimestamp_unit = \"s\"";

    #[test]
    fn defaults_are_ten_percent_each() {
        let config = build("format = \"kuairand\"", "", Some("raw"), None).unwrap();
        assert_eq!(
            config.split,
            SplitConfig {
                valid_fraction: 0.1,
                test_fraction: 0.1
            }
        );
        assert_eq!(config.source, Source::Kuairand { raw: "raw".into() });
    }

    #[test]
    fn rejects_valid_fraction_outside_unit_interval() {
        let extra = "[split]\nvalid_fraction = 1.0";
        assert!(message(build("format = \"kuairand\"", extra, Some("r"), None)).contains("[0, 1)"));
        let extra = "[split]\nvalid_fraction = -0.1";
        assert!(
            message(build("format = \"kuairand\"", extra, Some("r"), None))
                .contains("valid_fraction")
        );
    }

    #[test]
    fn rejects_test_fraction_outside_unit_interval() {
        let extra = "[split]\ntest_fraction = nan";
        assert!(
            message(build("format = \"kuairand\"", extra, Some("r"), None))
                .contains("test_fraction")
        );
    }

    #[test]
    fn rejects_fractions_summing_to_one() {
        let extra = "[split]\nvalid_fraction = 0.5\ntest_fraction = 0.5";
        assert!(
            message(build("format = \"kuairand\"", extra, Some("r"), None)).contains("below 1")
        );
    }

    #[test]
    fn rejects_unknown_split_key() {
        let extra = "[split]\nvalid = 0.5";
        assert!(
            message(build("format = \"kuairand\"", extra, Some("r"), None))
                .contains("unknown field")
        );
    }

    #[test]
    fn rejects_zero_rows() {
        assert!(message(build("format = \"kuairand\"", "", Some("r"), Some(0))).contains("--rows"));
    }

    #[test]
    fn file_formats_need_raw() {
        for format in ["kuairand", "movielens"] {
            let result = build(&format!("format = \"{format}\""), "", None, None);
            assert!(message(result).contains("--raw"));
        }
        assert!(message(build(GENERIC, "", None, None)).contains("--raw"));
    }

    #[test]
    fn synthetic_refuses_raw() {
        assert!(
            message(build("format = \"synthetic\"", "", Some("x"), None)).contains("reads no file")
        );
    }

    #[test]
    fn rows_override_synthetic_rows() {
        let dataset = "format = \"synthetic\"\n[dataset.synthetic]\nrows = 5000\nweeks = 3";
        let config = build(dataset, "", None, Some(700)).unwrap();
        match config.source {
            Source::Synthetic { settings } => assert_eq!((settings.rows, settings.weeks), (700, 3)),
            other => panic!("{other:?}"),
        }
        assert_eq!(config.row_limit, None);
    }

    #[test]
    fn rejects_bad_synthetic_settings() {
        let cases = [
            ("categories = 1", "categories"),
            ("weeks = 1", "weeks"),
            ("zipf_exponent = 0.0", "zipf_exponent"),
            ("rows_per_user = 0", "rows_per_user"),
            ("rows_per_video = 0", "rows_per_video"),
            ("rows = 0", "rows"),
            ("row = 5", "unknown field"),
        ];
        for (line, expected) in cases {
            let dataset = format!("format = \"synthetic\"\n[dataset.synthetic]\n{line}");
            let text = message(build(&dataset, "", None, None));
            assert!(text.contains(expected), "{line}: {text}");
        }
    }

    #[test]
    fn generic_mapping_parses_and_signals_are_ordered() {
        let dataset = format!("{GENERIC}\nlike = \"liked\"\nrating = \"stars\"");
        let config = build(&dataset, "", Some("log.parquet"), None).unwrap();
        let Source::Generic { columns, .. } = config.source else {
            panic!("not generic")
        };
        assert_eq!(columns.timestamp_unit, Some(TsUnit::Seconds));
        assert_eq!(columns.bool_signals()[2], Some("liked"));
        assert_eq!(columns.numeric_signals()[2], Some("stars"));
    }

    #[test]
    fn generic_needs_a_mapping() {
        let result = build("format = \"generic\"", "", Some("x"), None);
        assert!(message(result).contains("column mapping"));
    }

    #[test]
    fn rejects_generic_mapping_typos_and_bad_values() {
        let typo = format!("{GENERIC}\nlikes = \"x\"");
        assert!(message(build(&typo, "", Some("x"), None)).contains("unknown field"));
        let unit = GENERIC.replace("\"s\"", "\"us\"");
        assert!(message(build(&unit, "", Some("x"), None)).contains("unknown variant"));
        let same = GENERIC.replace("video = \"v\"", "video = \"u\"");
        assert!(message(build(&same, "", Some("x"), None)).contains("different columns"));
        let delimiter = format!("{GENERIC}\ndelimiter = \"ab\"");
        assert!(message(build(&delimiter, "", Some("x"), None)).contains("one ASCII character"));
        let empty = GENERIC.replace("user = \"u\"", "user = \"\"");
        assert!(message(build(&empty, "", Some("x"), None)).contains("dataset.columns.user"));
    }

    #[test]
    fn tables_of_other_formats_are_refused() {
        let dataset = "format = \"kuairand\"\n[dataset.synthetic]\nrows = 5";
        assert!(message(build(dataset, "", Some("x"), None)).contains("dataset.synthetic"));
        let dataset = "format = \"movielens\"\n[dataset.columns]\nuser = \"u\"";
        assert!(message(build(dataset, "", Some("x"), None)).contains("dataset.columns"));
    }
}

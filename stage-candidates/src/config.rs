//! The `[candidates]` section of the dataset configuration and its validated form.
//!
//! `CandidatesSection` is what the TOML holds (every key optional, defaults below);
//! `Config::new` checks each value before any data is read, one rule per error.

use std::path::PathBuf;

use common::config::CompareOp;
use common::error::param_error;
use common::{LabelRule, Split};
use serde::{Deserialize, Serialize};

/// Settings of the `[candidates]` section, as written in the TOML.
///
/// ```toml
/// [candidates]
/// window_hours = 24.0        # 0 = no window
/// normalisation = "cosine"   # or "product"
/// min_co_count = 2
/// max_history = 200
/// top_n = 200
/// engaged = "click"          # optional; absent = every row counts
/// splits = ["train"]
/// anchor_compat = false
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CandidatesSection {
    /// Two events of one user co-visit when at most this many hours apart; 0 means no
    /// window (every pair of events in the capped history co-visits). Range >= 0; default 24.
    pub window_hours: f64,
    /// How a pair's co-count is normalised: "cosine" = c_ij / sqrt(c_i c_j) (default) or
    /// "product" = c_ij / (c_i c_j), which favours rarer candidates more strongly.
    pub normalisation: String,
    /// Pairs seen by fewer distinct users are dropped. Range >= 1; default 2.
    pub min_co_count: i64,
    /// Each user's most recent N engaged events are used. Range >= 1; default 200.
    pub max_history: i64,
    /// Candidates kept per source video. Range >= 1; default 200.
    pub top_n: i64,
    /// Label rule (`"click"`, `"rating >= 4"`) an event must satisfy to count; a row whose
    /// signal is null does not count. Absent (default): every row counts.
    pub engaged: Option<String>,
    /// Splits whose rows are used. Default `["train"]`; valid and test rows would leak the
    /// evaluation into the candidates.
    pub splits: Vec<String>,
    /// Reproduce `shared/bench/anchor_cooc.py` exactly (no window, cosine, no minimum
    /// co-count, 200 most recent events, top 50, ties by original video id), so both
    /// lists can be compared row for row. Default false; also set by `--anchor-compat`.
    pub anchor_compat: bool,
}

impl Default for CandidatesSection {
    fn default() -> Self {
        CandidatesSection {
            window_hours: 24.0,
            normalisation: "cosine".to_string(),
            min_co_count: 2,
            max_history: 200,
            top_n: 200,
            engaged: None,
            splits: vec!["train".to_string()],
            anchor_compat: false,
        }
    }
}

/// How a co-count becomes a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalisation {
    /// c_ij / sqrt(c_i c_j)
    Cosine,
    /// c_ij / (c_i c_j)
    Product,
}

impl Normalisation {
    /// The score of a pair from its co-count and the two videos' user counts, in f64.
    ///
    /// The operations run in the same order as the anchor's numpy expression
    /// `c / sqrt(d_i * d_j)`, so compatible runs give bit-identical scores.
    pub fn score(self, co_count: u32, count_source: u32, count_candidate: u32) -> f64 {
        let product = count_source as f64 * count_candidate as f64;
        match self {
            Normalisation::Cosine => co_count as f64 / product.sqrt(),
            Normalisation::Product => co_count as f64 / product,
        }
    }
}

/// Which order breaks exact score ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TieBreak {
    /// Higher co-count first, then lower candidate index (the pipeline's order).
    CoCountThenIndex,
    /// Lower original video id first (the anchor's order: its neighbour ids are ranks of
    /// the sorted original ids).
    OriginalId,
}

/// The checked settings of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Dataset folder holding the inputs and receiving `candidates.parquet`.
    pub dir: PathBuf,
    pub seed: u64,
    /// Co-visit window in milliseconds; `None` = no window.
    pub window_ms: Option<i64>,
    pub window_hours: f64,
    pub normalisation: Normalisation,
    pub min_co_count: u32,
    pub max_history: usize,
    pub top_n: usize,
    pub engaged: Option<LabelRule>,
    #[serde(serialize_with = "split_names")]
    pub splits: Vec<Split>,
    pub tie_break: TieBreak,
    pub anchor_compat: bool,
}

/// The anchor's history cap (`anchor_cooc.py --cap`, default 200).
pub const ANCHOR_MAX_HISTORY: usize = 200;
/// The anchor's list length (`anchor_cooc.py --topn`, default 50).
pub const ANCHOR_TOP_N: usize = 50;

impl Config {
    /// Checks every value of the section; the first broken rule is the error.
    pub fn new(
        section: &CandidatesSection,
        dir: PathBuf,
        seed: u64,
    ) -> Result<Config, common::Error> {
        let s = section;
        if !s.window_hours.is_finite() || s.window_hours < 0.0 {
            return Err(param_error(
                "window_hours",
                s.window_hours,
                "must be a finite number of hours >= 0 (0 = no window)",
            ));
        }
        let normalisation = match s.normalisation.as_str() {
            "cosine" => Normalisation::Cosine,
            "product" => Normalisation::Product,
            other => {
                return Err(param_error(
                    "normalisation",
                    format!("\"{other}\""),
                    "must be \"cosine\" or \"product\"",
                ))
            }
        };
        if s.min_co_count < 1 || s.min_co_count > u32::MAX as i64 {
            return Err(param_error(
                "min_co_count",
                s.min_co_count,
                "must be an integer from 1 to 4294967295",
            ));
        }
        if s.max_history < 1 || s.max_history > u32::MAX as i64 {
            return Err(param_error(
                "max_history",
                s.max_history,
                "must be an integer from 1 to 4294967295",
            ));
        }
        if s.top_n < 1 || s.top_n > u32::MAX as i64 {
            return Err(param_error(
                "top_n",
                s.top_n,
                "must be an integer from 1 to 4294967295",
            ));
        }
        let engaged = s.engaged.as_deref().map(LabelRule::parse).transpose()?;
        let splits = parse_splits(&s.splits)?;

        // The anchor has no window, no minimum and no engagement rule: its baskets are the
        // train rows as they are.
        if s.anchor_compat {
            return Ok(Config {
                dir,
                seed,
                window_ms: None,
                window_hours: 0.0,
                normalisation: Normalisation::Cosine,
                min_co_count: 1,
                max_history: ANCHOR_MAX_HISTORY,
                top_n: ANCHOR_TOP_N,
                engaged: None,
                splits: vec![Split::Train],
                tie_break: TieBreak::OriginalId,
                anchor_compat: true,
            });
        }

        // `as` saturates, so an absurdly large window behaves like "no window" instead of
        // wrapping around.
        let window_ms =
            (s.window_hours > 0.0).then(|| (s.window_hours * 3_600_000.0).round() as i64);
        Ok(Config {
            dir,
            seed,
            window_ms,
            window_hours: s.window_hours,
            normalisation,
            min_co_count: s.min_co_count as u32,
            max_history: s.max_history as usize,
            top_n: s.top_n as usize,
            engaged,
            splits,
            tie_break: TieBreak::CoCountThenIndex,
            anchor_compat: false,
        })
    }

    /// The effective settings as JSON, for the summary and the file metadata.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("config is plain data")
    }
}

/// A label rule as the TOML writes it, for messages: `click > 0`, `rating >= 4`.
pub fn describe_rule(rule: &LabelRule) -> String {
    let op = match rule.op {
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Eq => "==",
    };
    format!("{} {op} {}", rule.signal, rule.threshold)
}

/// `Split` has no serde form in `common`; its text form is the contract's.
fn split_names<S: serde::Serializer>(splits: &[Split], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(splits.iter().map(|s| s.as_str()))
}

fn parse_splits(names: &[String]) -> Result<Vec<Split>, common::Error> {
    let shown = format!("{names:?}");
    if names.is_empty() {
        return Err(param_error(
            "splits",
            shown,
            "name at least one of train, valid, test",
        ));
    }
    let mut splits = Vec::with_capacity(names.len());
    for name in names {
        let split = Split::parse(name).ok_or_else(|| {
            param_error(
                "splits",
                &shown,
                &format!("unknown split \"{name}\"; use train, valid, test"),
            )
        })?;
        if splits.contains(&split) {
            return Err(param_error(
                "splits",
                &shown,
                &format!("\"{name}\" is listed twice"),
            ));
        }
        splits.push(split);
    }
    splits.sort();
    Ok(splits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(section: CandidatesSection) -> Result<Config, common::Error> {
        Config::new(&section, PathBuf::from("d"), 42)
    }

    fn message(section: CandidatesSection) -> String {
        check(section).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid() {
        let config = check(CandidatesSection::default()).unwrap();
        assert_eq!(config.window_ms, Some(24 * 3_600_000));
        assert_eq!(config.normalisation, Normalisation::Cosine);
        assert_eq!(
            (config.min_co_count, config.max_history, config.top_n),
            (2, 200, 200)
        );
        assert_eq!(config.splits, vec![Split::Train]);
        assert_eq!(config.tie_break, TieBreak::CoCountThenIndex);
    }

    #[test]
    fn rejects_negative_window() {
        let m = message(CandidatesSection {
            window_hours: -1.0,
            ..Default::default()
        });
        assert!(m.contains("window_hours = -1"), "{m}");
    }

    #[test]
    fn rejects_non_finite_window() {
        let m = message(CandidatesSection {
            window_hours: f64::NAN,
            ..Default::default()
        });
        assert!(m.contains("window_hours"), "{m}");
    }

    #[test]
    fn zero_window_means_no_window() {
        let config = check(CandidatesSection {
            window_hours: 0.0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.window_ms, None);
    }

    #[test]
    fn rejects_unknown_normalisation() {
        let m = message(CandidatesSection {
            normalisation: "jaccard".into(),
            ..Default::default()
        });
        assert!(m.contains("normalisation = \"jaccard\""), "{m}");
    }

    #[test]
    fn rejects_zero_min_co_count() {
        let m = message(CandidatesSection {
            min_co_count: 0,
            ..Default::default()
        });
        assert!(m.contains("min_co_count = 0"), "{m}");
    }

    #[test]
    fn rejects_zero_max_history() {
        let m = message(CandidatesSection {
            max_history: 0,
            ..Default::default()
        });
        assert!(m.contains("max_history = 0"), "{m}");
    }

    #[test]
    fn rejects_zero_top_n() {
        let m = message(CandidatesSection {
            top_n: 0,
            ..Default::default()
        });
        assert!(m.contains("top_n = 0"), "{m}");
    }

    #[test]
    fn rejects_bad_engaged_rule() {
        let m = message(CandidatesSection {
            engaged: Some("clicks".into()),
            ..Default::default()
        });
        assert!(m.contains("unknown signal"), "{m}");
    }

    #[test]
    fn rejects_unknown_or_repeated_or_no_split() {
        let unknown = CandidatesSection {
            splits: vec!["training".into()],
            ..Default::default()
        };
        assert!(message(unknown).contains("unknown split \"training\""));
        let twice = CandidatesSection {
            splits: vec!["train".into(), "train".into()],
            ..Default::default()
        };
        assert!(message(twice).contains("listed twice"));
        let none = CandidatesSection {
            splits: vec![],
            ..Default::default()
        };
        assert!(message(none).contains("at least one"));
    }

    #[test]
    fn anchor_compat_fixes_the_anchor_settings() {
        let section = CandidatesSection {
            anchor_compat: true,
            window_hours: 2.0,
            min_co_count: 5,
            top_n: 10,
            ..Default::default()
        };
        let config = check(section).unwrap();
        assert_eq!(config.window_ms, None);
        assert_eq!(
            (config.min_co_count, config.max_history, config.top_n),
            (1, 200, 50)
        );
        assert_eq!(config.tie_break, TieBreak::OriginalId);
        assert!(config.engaged.is_none());
    }

    #[test]
    fn rules_are_described_as_written() {
        assert_eq!(
            describe_rule(&LabelRule::parse("rating >= 4").unwrap()),
            "rating >= 4"
        );
        assert_eq!(
            describe_rule(&LabelRule::parse("click").unwrap()),
            "click > 0"
        );
    }

    #[test]
    fn cosine_and_product_scores() {
        assert_eq!(Normalisation::Cosine.score(2, 4, 9), 2.0 / 6.0);
        assert_eq!(Normalisation::Product.score(2, 4, 9), 2.0 / 36.0);
    }
}

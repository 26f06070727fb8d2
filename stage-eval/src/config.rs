//! The `[eval]` section of the dataset configuration and the validated settings of a run.
//!
//! `EvalSection` is what the TOML holds (every key optional); `Config::new` checks each
//! value before any data is read, one rule per error. Also reads `[merge]`: `top_n`, the
//! list length every ranking is cut to, so that all rankings compete on the lists the
//! pipeline actually serves, and the score settings, checked by stage-merge's own rules.

use std::path::{Path, PathBuf};

use anyhow::Result;
use common::error::param_error;
use common::{LabelRule, PipelineConfig, Split};
use serde::{Deserialize, Serialize};
use stage_merge::config::MergeSection;
use stage_merge::score::ScoreSettings;

/// Settings of the `[eval]` section, as written in the TOML.
///
/// ```toml
/// [eval]
/// k = [10, 20, 50]
/// window_hours = 24.0
/// max_sources = 0
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSection {
    /// Cut-offs K of the @K metrics. Each >= 1, distinct; default [10, 20, 50].
    pub k: Vec<i64>,
    /// A video j is relevant to a source i when a user who engaged i in the test period
    /// engaged j at most this many hours later (strictly after i). Range >= 0; 0 = no
    /// window (the rest of the test period); default 24.
    pub window_hours: f64,
    /// Evaluate at most this many source videos, drawn with the seed. Range >= 0;
    /// 0 = every source with a ground truth; default 0.
    pub max_sources: i64,
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection {
            k: vec![10, 20, 50],
            window_hours: 24.0,
            max_sources: 0,
        }
    }
}

/// One objective as the evaluation uses it.
#[derive(Debug, Clone, Serialize)]
pub struct EvalObjective {
    pub name: String,
    /// Which test rows count as a positive of the objective.
    pub label: LabelRule,
    /// The manual weight a_k of the merge.
    pub weight: f64,
}

/// The checked settings of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Dataset folder holding the inputs and receiving the outputs.
    pub dir: PathBuf,
    pub seed: u64,
    /// Cut-offs, ascending.
    pub ks: Vec<usize>,
    pub window_hours: f64,
    /// None: no window.
    pub window_ms: Option<i64>,
    /// 0 = all sources.
    pub max_sources: usize,
    /// Length of every ranked list (`[merge] top_n`).
    pub top_n: usize,
    /// The merge's score formula (`[merge]`), for the merged rankings.
    pub score: ScoreSettings,
    /// Objectives in configuration order.
    pub objectives: Vec<EvalObjective>,
    /// What makes a test row a dislike: the label of the objective named "dislike" when
    /// there is one, else the Boolean `dislike` signal.
    pub dislike: LabelRule,
    /// The split whose rows are the ground truth: `test` for the figures that are reported,
    /// `valid` for choosing settings without looking at the test split.
    #[serde(serialize_with = "split_name")]
    pub split: Split,
}

fn split_name<S: serde::Serializer>(split: &Split, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(split.as_str())
}

impl Config {
    /// Output file names for the evaluated split: `eval.parquet` and `report.md` for the test
    /// split, `eval_valid.parquet` and `report_valid.md` for the valid split, so that a
    /// tuning run never overwrites the reported figures.
    pub fn output_name(&self, stem: &str, extension: &str) -> String {
        match self.split {
            Split::Test => format!("{stem}.{extension}"),
            other => format!("{stem}_{}.{extension}", other.as_str()),
        }
    }
}

impl Config {
    /// Checks every value; the first broken rule is the error.
    pub fn new(
        section: &EvalSection,
        merge: &MergeSection,
        objectives: &[common::Objective],
        dir: PathBuf,
        seed: u64,
        split: Split,
    ) -> Result<Config, common::Error> {
        let s = section;
        if split == Split::Train {
            return Err(param_error(
                "split",
                "train",
                "evaluate on valid or test: every model was fitted on train",
            ));
        }
        if s.k.is_empty() {
            return Err(param_error("k", "[]", "give at least one cut-off K"));
        }
        if let Some(bad) = s.k.iter().find(|&&k| k < 1 || k > u32::MAX as i64) {
            return Err(param_error("k", bad, "every cut-off K must be >= 1"));
        }
        let mut ks: Vec<usize> = s.k.iter().map(|&k| k as usize).collect();
        ks.sort_unstable();
        if let Some(pair) = ks.windows(2).find(|w| w[0] == w[1]) {
            return Err(param_error("k", pair[0], "cut-offs must be distinct"));
        }
        if !s.window_hours.is_finite() || s.window_hours < 0.0 {
            return Err(param_error(
                "window_hours",
                s.window_hours,
                "must be a finite number of hours >= 0 (0 = no window)",
            ));
        }
        if s.max_sources < 0 {
            return Err(param_error(
                "max_sources",
                s.max_sources,
                "must be >= 0 (0 = all sources)",
            ));
        }
        let top_n = merge.top_n;
        if top_n < 1 || top_n > u32::MAX as i64 {
            return Err(param_error("top_n", top_n, "[merge] top_n must be >= 1"));
        }
        let score = merge.score_settings()?;
        if objectives.is_empty() {
            return Err(param_error(
                "objective",
                "none",
                "configure at least one objective",
            ));
        }
        let dislike = match objectives.iter().find(|o| o.name == "dislike") {
            Some(o) => o.label.clone(),
            None => LabelRule::parse("dislike").expect("dislike is a signal"),
        };
        Ok(Config {
            dir,
            seed,
            ks,
            window_hours: s.window_hours,
            window_ms: (s.window_hours > 0.0)
                .then(|| (s.window_hours * 3_600_000.0).round() as i64),
            max_sources: s.max_sources as usize,
            top_n: top_n as usize,
            score,
            objectives: objectives
                .iter()
                .map(|o| EvalObjective {
                    name: o.name.clone(),
                    label: o.label.clone(),
                    weight: o.weight,
                })
                .collect(),
            dislike,
            split,
        })
    }

    /// The effective settings as JSON, for the summary and the file metadata.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("config is plain data")
    }
}

/// Reads the configuration file: the pipeline part, the `[eval]` and `[merge]` sections.
pub fn load(path: &Path) -> Result<(PipelineConfig, EvalSection, MergeSection)> {
    let pipeline = PipelineConfig::load(path)?;
    let section: EvalSection = pipeline.section("eval")?;
    let merge: MergeSection = pipeline.section("merge")?;
    Ok((pipeline, section, merge))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objectives() -> Vec<common::Objective> {
        vec![common::Objective {
            name: "like".into(),
            label: LabelRule::parse("like").unwrap(),
            weight: 1.0,
            threshold: None,
        }]
    }

    fn message(section: EvalSection) -> String {
        Config::new(
            &section,
            &MergeSection::default(),
            &objectives(),
            "d".into(),
            1,
            Split::Test,
        )
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::new(
            &EvalSection::default(),
            &MergeSection::default(),
            &objectives(),
            "d".into(),
            1,
            Split::Test,
        )
        .unwrap();
        assert_eq!(c.ks, vec![10, 20, 50]);
        assert_eq!(c.window_ms, Some(86_400_000));
        assert_eq!((c.max_sources, c.top_n), (0, 50));
        // No objective named dislike: the Boolean signal.
        assert_eq!(c.dislike.signal, "dislike");
    }

    #[test]
    fn rejects_empty_k() {
        let m = message(EvalSection {
            k: vec![],
            ..Default::default()
        });
        assert!(m.contains("k = []"), "{m}");
    }

    #[test]
    fn rejects_zero_k() {
        let m = message(EvalSection {
            k: vec![10, 0],
            ..Default::default()
        });
        assert!(m.contains("k = 0") && m.contains(">= 1"), "{m}");
    }

    #[test]
    fn rejects_duplicate_k() {
        let m = message(EvalSection {
            k: vec![20, 10, 20],
            ..Default::default()
        });
        assert!(m.contains("k = 20") && m.contains("distinct"), "{m}");
    }

    #[test]
    fn rejects_negative_or_infinite_window() {
        let m = message(EvalSection {
            window_hours: -1.0,
            ..Default::default()
        });
        assert!(m.contains("window_hours = -1"), "{m}");
        let m = message(EvalSection {
            window_hours: f64::NAN,
            ..Default::default()
        });
        assert!(m.contains("window_hours = NaN"), "{m}");
    }

    #[test]
    fn zero_window_means_no_window() {
        let section = EvalSection {
            window_hours: 0.0,
            ..Default::default()
        };
        let c = Config::new(
            &section,
            &MergeSection::default(),
            &objectives(),
            "d".into(),
            1,
            Split::Test,
        )
        .unwrap();
        assert_eq!(c.window_ms, None);
    }

    #[test]
    fn rejects_negative_max_sources() {
        let m = message(EvalSection {
            max_sources: -3,
            ..Default::default()
        });
        assert!(m.contains("max_sources = -3"), "{m}");
    }

    #[test]
    fn rejects_zero_top_n() {
        let m = Config::new(
            &EvalSection::default(),
            &MergeSection {
                top_n: 0,
                ..Default::default()
            },
            &objectives(),
            "d".into(),
            1,
            Split::Test,
        )
        .unwrap_err()
        .to_string();
        assert!(m.contains("top_n = 0"), "{m}");
    }

    #[test]
    fn rejects_a_bad_merge_score_setting() {
        let merge = MergeSection {
            nonlinear_share: 2.0,
            ..Default::default()
        };
        let m = Config::new(
            &EvalSection::default(),
            &merge,
            &objectives(),
            "d".into(),
            1,
            Split::Test,
        )
        .unwrap_err()
        .to_string();
        assert!(m.contains("nonlinear_share = 2"), "{m}");
    }

    #[test]
    fn rejects_the_train_split() {
        let m = Config::new(
            &EvalSection::default(),
            &MergeSection::default(),
            &objectives(),
            "d".into(),
            1,
            Split::Train,
        )
        .unwrap_err()
        .to_string();
        assert!(m.contains("split = train"), "{m}");
    }

    #[test]
    fn valid_split_outputs_have_their_own_names() {
        let test = Config::new(
            &EvalSection::default(),
            &MergeSection::default(),
            &objectives(),
            "d".into(),
            1,
            Split::Test,
        )
        .unwrap();
        let valid = Config {
            split: Split::Valid,
            ..test.clone()
        };
        assert_eq!(test.output_name("eval", "parquet"), "eval.parquet");
        assert_eq!(valid.output_name("report", "md"), "report_valid.md");
    }

    #[test]
    fn dislike_rule_comes_from_the_dislike_objective() {
        let mut objs = objectives();
        objs.push(common::Objective {
            name: "dislike".into(),
            label: LabelRule::parse("rating <= 2").unwrap(),
            weight: -1.0,
            threshold: None,
        });
        let c = Config::new(
            &EvalSection::default(),
            &MergeSection::default(),
            &objs,
            "d".into(),
            1,
            Split::Test,
        )
        .unwrap();
        assert_eq!(c.dislike, LabelRule::parse("rating <= 2").unwrap());
    }
}

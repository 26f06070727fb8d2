//! The `[merge]` section of the dataset configuration and the validated settings of a run.
//!
//! `MergeSection` is what the TOML holds (every key optional); `Config::new` checks each
//! value before any data is read, one rule per error.

use std::path::PathBuf;

use common::error::param_error;
use common::Objective;
use serde::{Deserialize, Serialize};

use crate::score::{Combine, NegativeSimilarity, ScoreSettings};

/// Settings of the `[merge]` section, as written in the TOML.
///
/// ```toml
/// [merge]
/// top_n = 50
/// l2 = 1.0
/// holdout_fraction = 0.2
/// min_user_weeks = 20
/// min_class_weeks = 10
/// min_auc = 0.55
/// combine = "max"
/// calibration_window_hours = 24.0
/// nonlinear_share = 1.0
/// covisitation_weight = 1.0
/// negative_similarity = "excess"
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MergeSection {
    /// Related videos kept per source. Range >= 1; default 50.
    pub top_n: i64,
    /// L2 penalty of the retention model: lambda/2 * ||beta||^2 added to the summed
    /// log-loss (the intercept is not penalised; sklearn's C = 1/lambda). Range > 0, so
    /// the fit exists even when the user-weeks are separable; default 1.0.
    pub l2: f64,
    /// Share of users (chosen by a hash of user_idx and the seed) held out to measure the
    /// retention model's AUC. Range [0, 1); 0 = no AUC; default 0.2.
    pub holdout_fraction: f64,
    /// Below this many labelled user-weeks the learned weights fall back to 1.
    /// Range >= 1; default 20.
    pub min_user_weeks: i64,
    /// Below this many user-weeks of the rarer label (retained or lost) the learned weights
    /// also fall back to 1: a handful of examples of one class decide the coefficients'
    /// ratios, and w_k rescales away the penalty that shrinks them. Range >= 1; default 10.
    pub min_class_weeks: i64,
    /// The learned weights are used only when the held-out AUC reaches this value and
    /// beats chance (0.5) by two standard errors; otherwise they fall back to 1, since
    /// w_k = |beta_k| / mean |beta| would blow noise coefficients up to full-size weights.
    /// Range [0, 1] (0 keeps only the chance test); default 0.55.
    pub min_auc: f64,
    /// How an objective's ALS and two-tower scores become its similarity s_k:
    /// `calibrated_max` (the larger of each model's probability that the candidate is
    /// engaged with the objective's label after the source, fitted on the valid split:
    /// `calibrate`), `max` (the larger of the two percentiles) or `blend`
    /// ((1 - nonlinear_share) ALS + nonlinear_share two-tower percentile).
    /// Default `max`, the spec's rule: on the valid split `calibrated_max` beat it on
    /// KuaiRand but not on MovieLens, and `blend` (two-tower only) beat both on MovieLens
    /// by ignoring the ALS model (figures in data/*.toml).
    pub combine: Combine,
    /// Under `calibrated_max`: a candidate counts as engaged after the source when the same
    /// user engaged it at most this many hours later in the valid split (stage-eval's
    /// `[eval] window_hours` definition; keep the two equal). Range >= 0; 0 = no window;
    /// default 24.
    pub calibration_window_hours: f64,
    /// Weight of the two-tower percentile under `blend`. Range [0, 1]; default 1.0 (the ALS
    /// percentile lowered NDCG@20 on the valid split of all three shipped logs).
    pub nonlinear_share: f64,
    /// The percentile of the co-visitation score enters the score with factor
    /// covisitation_weight x (sum of the positive a_k w_k). Range >= 0 (0 = no co-visitation
    /// term); default 1.0.
    pub covisitation_weight: f64,
    /// How a negative objective's similarity enters: `excess` (up to the positive
    /// objectives' mean similarity it counts as relatedness, only the excess is penalised)
    /// or `raw` (all of it is penalised). Default `excess`.
    pub negative_similarity: NegativeSimilarity,
}

impl MergeSection {
    /// The checked score settings: the rules of `nonlinear_share` and `covisitation_weight`.
    /// Also used by stage-eval, which rebuilds the merged rankings.
    pub fn score_settings(&self) -> Result<ScoreSettings, common::Error> {
        if !(0.0..=1.0).contains(&self.nonlinear_share) {
            return Err(param_error(
                "nonlinear_share",
                self.nonlinear_share,
                "must lie in [0, 1]",
            ));
        }
        if !self.covisitation_weight.is_finite() || self.covisitation_weight < 0.0 {
            return Err(param_error(
                "covisitation_weight",
                self.covisitation_weight,
                "must be a finite number >= 0 (0 = no co-visitation term)",
            ));
        }
        let hours = self.calibration_window_hours;
        if !hours.is_finite() || hours < 0.0 {
            return Err(param_error(
                "calibration_window_hours",
                hours,
                "must be a finite number of hours >= 0 (0 = no window)",
            ));
        }
        Ok(ScoreSettings {
            calibration_window_ms: (hours > 0.0).then(|| (hours * 3_600_000.0).round() as i64),
            combine: self.combine,
            nonlinear_share: self.nonlinear_share,
            covisitation_weight: self.covisitation_weight,
            negative_similarity: self.negative_similarity,
        })
    }
}

impl Default for MergeSection {
    fn default() -> Self {
        MergeSection {
            top_n: 50,
            l2: 1.0,
            holdout_fraction: 0.2,
            min_user_weeks: 20,
            min_class_weeks: 10,
            min_auc: 0.55,
            combine: Combine::Max,
            calibration_window_hours: 24.0,
            nonlinear_share: 1.0,
            covisitation_weight: 1.0,
            negative_similarity: NegativeSimilarity::Excess,
        }
    }
}

/// One objective as the merge uses it.
#[derive(Debug, Clone, Serialize)]
pub struct MergeObjective {
    pub name: String,
    /// The manual weight a_k: its sign sets the objective's direction.
    pub weight: f64,
    /// Which rows are the objective's positives (for `calibrated_max`).
    pub label: common::LabelRule,
}

/// The checked settings of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Dataset folder holding the inputs and receiving the outputs.
    pub dir: PathBuf,
    pub seed: u64,
    pub top_n: usize,
    pub l2: f64,
    pub holdout_fraction: f64,
    pub min_user_weeks: u64,
    pub min_class_weeks: u64,
    pub min_auc: f64,
    /// The score formula.
    pub score: ScoreSettings,
    /// Objectives in configuration order; output columns follow this order.
    pub objectives: Vec<MergeObjective>,
}

impl Config {
    /// Checks every value of the section; the first broken rule is the error.
    pub fn new(
        section: &MergeSection,
        objectives: &[Objective],
        dir: PathBuf,
        seed: u64,
    ) -> Result<Config, common::Error> {
        let s = section;
        if s.top_n < 1 || s.top_n > u32::MAX as i64 {
            return Err(param_error("top_n", s.top_n, "must be >= 1"));
        }
        if !s.l2.is_finite() || s.l2 <= 0.0 {
            return Err(param_error(
                "l2",
                s.l2,
                "must be a finite number > 0 (without a penalty the fit diverges on separable weeks)",
            ));
        }
        if !(0.0..1.0).contains(&s.holdout_fraction) {
            return Err(param_error(
                "holdout_fraction",
                s.holdout_fraction,
                "must lie in [0, 1)",
            ));
        }
        if s.min_user_weeks < 1 {
            return Err(param_error(
                "min_user_weeks",
                s.min_user_weeks,
                "must be >= 1",
            ));
        }
        if s.min_class_weeks < 1 {
            return Err(param_error(
                "min_class_weeks",
                s.min_class_weeks,
                "must be >= 1",
            ));
        }
        if !(0.0..=1.0).contains(&s.min_auc) {
            return Err(param_error("min_auc", s.min_auc, "must lie in [0, 1]"));
        }
        let score = s.score_settings()?;
        if objectives.is_empty() {
            return Err(param_error(
                "objective",
                "none",
                "configure at least one objective",
            ));
        }
        Ok(Config {
            dir,
            seed,
            top_n: s.top_n as usize,
            l2: s.l2,
            holdout_fraction: s.holdout_fraction,
            min_user_weeks: s.min_user_weeks as u64,
            min_class_weeks: s.min_class_weeks as u64,
            min_auc: s.min_auc,
            score,
            objectives: objectives
                .iter()
                .map(|o| MergeObjective {
                    name: o.name.clone(),
                    weight: o.weight,
                    label: o.label.clone(),
                })
                .collect(),
        })
    }

    /// The effective settings as JSON, for the summary and the file metadata.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("config is plain data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::LabelRule;

    fn objectives() -> Vec<Objective> {
        vec![Objective {
            name: "like".into(),
            label: LabelRule::parse("like").unwrap(),
            weight: 1.0,
            threshold: None,
        }]
    }

    fn message(section: MergeSection) -> String {
        Config::new(&section, &objectives(), PathBuf::from("d"), 1)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_are_valid() {
        let config = Config::new(&MergeSection::default(), &objectives(), "d".into(), 1).unwrap();
        assert_eq!((config.top_n, config.min_user_weeks), (50, 20));
        assert_eq!((config.l2, config.holdout_fraction), (1.0, 0.2));
        assert_eq!(config.objectives[0].name, "like");
    }

    #[test]
    fn rejects_zero_top_n() {
        assert!(message(MergeSection {
            top_n: 0,
            ..Default::default()
        })
        .contains("top_n = 0"));
    }

    #[test]
    fn rejects_zero_or_negative_l2() {
        assert!(message(MergeSection {
            l2: 0.0,
            ..Default::default()
        })
        .contains("l2 = 0"));
        assert!(message(MergeSection {
            l2: -1.0,
            ..Default::default()
        })
        .contains("l2 = -1"));
        assert!(message(MergeSection {
            l2: f64::INFINITY,
            ..Default::default()
        })
        .contains("l2 = inf"));
    }

    #[test]
    fn rejects_holdout_fraction_outside_zero_one() {
        let one = message(MergeSection {
            holdout_fraction: 1.0,
            ..Default::default()
        });
        assert!(
            one.contains("holdout_fraction = 1") && one.contains("[0, 1)"),
            "{one}"
        );
        assert!(message(MergeSection {
            holdout_fraction: -0.1,
            ..Default::default()
        })
        .contains("holdout_fraction = -0.1"));
        assert!(message(MergeSection {
            holdout_fraction: f64::NAN,
            ..Default::default()
        })
        .contains("holdout_fraction = NaN"));
    }

    #[test]
    fn rejects_zero_min_user_weeks() {
        assert!(message(MergeSection {
            min_user_weeks: 0,
            ..Default::default()
        })
        .contains("min_user_weeks = 0"));
    }

    #[test]
    fn rejects_zero_min_class_weeks() {
        assert!(message(MergeSection {
            min_class_weeks: 0,
            ..Default::default()
        })
        .contains("min_class_weeks = 0"));
    }

    #[test]
    fn rejects_min_auc_outside_zero_one() {
        let m = message(MergeSection {
            min_auc: 1.2,
            ..Default::default()
        });
        assert!(m.contains("min_auc = 1.2"), "{m}");
        let m = message(MergeSection {
            min_auc: f64::NAN,
            ..Default::default()
        });
        assert!(m.contains("min_auc = NaN"), "{m}");
    }

    #[test]
    fn rejects_nonlinear_share_outside_zero_one() {
        let m = message(MergeSection {
            nonlinear_share: 1.5,
            ..Default::default()
        });
        assert!(
            m.contains("nonlinear_share = 1.5") && m.contains("[0, 1]"),
            "{m}"
        );
        let m = message(MergeSection {
            nonlinear_share: f64::NAN,
            ..Default::default()
        });
        assert!(m.contains("nonlinear_share = NaN"), "{m}");
    }

    #[test]
    fn rejects_negative_or_infinite_covisitation_weight() {
        let m = message(MergeSection {
            covisitation_weight: -0.5,
            ..Default::default()
        });
        assert!(m.contains("covisitation_weight = -0.5"), "{m}");
        let m = message(MergeSection {
            covisitation_weight: f64::INFINITY,
            ..Default::default()
        });
        assert!(m.contains("covisitation_weight = inf"), "{m}");
    }

    #[test]
    fn unknown_combine_or_negative_mode_is_a_parse_error() {
        assert!(toml::from_str::<MergeSection>("combine = \"sum\"").is_err());
        assert!(toml::from_str::<MergeSection>("negative_similarity = \"clip\"").is_err());
        let s: MergeSection =
            toml::from_str("combine = \"max\"\nnegative_similarity = \"raw\"").unwrap();
        assert_eq!(s.score_settings().unwrap().combine, Combine::Max);
    }

    #[test]
    fn rejects_negative_or_infinite_calibration_window() {
        let m = message(MergeSection {
            calibration_window_hours: -1.0,
            ..Default::default()
        });
        assert!(m.contains("calibration_window_hours = -1"), "{m}");
        let m = message(MergeSection {
            calibration_window_hours: f64::NAN,
            ..Default::default()
        });
        assert!(m.contains("calibration_window_hours = NaN"), "{m}");
        let s: MergeSection = toml::from_str("calibration_window_hours = 0.0").unwrap();
        assert_eq!(s.score_settings().unwrap().calibration_window_ms, None);
        let s: MergeSection = toml::from_str("combine = \"calibrated_max\"").unwrap();
        assert_eq!(s.score_settings().unwrap().combine, Combine::CalibratedMax);
        assert_eq!(
            s.score_settings().unwrap().calibration_window_ms,
            Some(24 * 3_600_000)
        );
    }

    #[test]
    fn rejects_no_objectives() {
        let err = Config::new(&MergeSection::default(), &[], "d".into(), 1).unwrap_err();
        assert!(err.to_string().contains("at least one objective"));
    }
}

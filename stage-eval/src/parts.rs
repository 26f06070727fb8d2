//! The variants of `full` that each leave one part of the merge formula out.
//!
//! Reads nothing and writes nothing: it says, for each part, which ranking measures `full`
//! without it and how that ranking's score is formed, so that the report can show what
//! every part adds to (or costs) `full` on the evaluated split. On the valid split this is
//! the diagnosis a user runs before changing a setting; no model is retrained.
//!
//! - the linear model: inside each objective's max, the ALS column is replaced by the
//!   two-tower column, so s_k is the two-tower similarity alone (under any `combine` rule,
//!   max(n, n) = n and a blend of n with n is n);
//! - the non-linear model: likewise the ALS similarity alone;
//! - the learned weights: w_k = 1, which is `merged_manual`;
//! - the negative objectives (dislike): their factor a_k w_k set to 0;
//! - the co-visitation term: `covisitation_weight` = 0;
//! - the other objectives: every factor but one objective's set to 0 (`only`), the
//!   objective of the best single component, so the report can tell how much of the gap
//!   to that component is the mix of objectives itself.

use stage_merge::score::ScoreSettings;

/// One part of the merge formula that a variant leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Linear,
    Nonlinear,
    LearnedWeights,
    NegativeObjectives,
    Covisitation,
    /// Every objective but the one at `kept` (named `name`).
    OtherObjectives {
        kept: usize,
        name: String,
    },
}

/// Which score columns stand for the two models in a merged score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Models {
    Both,
    /// The two-tower column in both places.
    NonlinearOnly,
    /// The ALS column in both places.
    LinearOnly,
}

/// How one merged ranking is scored: its models, factors a_k w_k and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeInputs {
    pub models: Models,
    pub factors: Vec<f64>,
    pub settings: ScoreSettings,
}

impl Part {
    pub const ALL: [Part; 5] = [
        Part::Linear,
        Part::Nonlinear,
        Part::LearnedWeights,
        Part::NegativeObjectives,
        Part::Covisitation,
    ];

    /// The ranking that measures `full` without this part.
    pub fn ranking(&self) -> String {
        match self {
            Part::Linear => "full_without_linear".into(),
            Part::Nonlinear => "full_without_nonlinear".into(),
            Part::LearnedWeights => "merged_manual".into(),
            Part::NegativeObjectives => "full_without_negative".into(),
            Part::Covisitation => "full_without_covisitation".into(),
            Part::OtherObjectives { name, .. } => format!("full_only_{name}"),
        }
    }

    /// The key of this part in the JSON summary.
    pub fn key(&self) -> &'static str {
        match self {
            Part::Linear => "linear",
            Part::Nonlinear => "nonlinear",
            Part::LearnedWeights => "learned_weights",
            Part::NegativeObjectives => "negative_objectives",
            Part::Covisitation => "covisitation",
            Part::OtherObjectives { .. } => "other_objectives",
        }
    }

    /// What is left out, in the report's words.
    pub fn description(&self) -> String {
        match self {
            Part::Linear => "the linear model (ALS) in each objective's similarity s_k".into(),
            Part::Nonlinear => {
                "the non-linear model (two-tower) in each objective's similarity s_k".into()
            }
            Part::LearnedWeights => "the learned weights w_k (manual weights a_k alone)".into(),
            Part::NegativeObjectives => "the objectives with a negative weight".into(),
            Part::Covisitation => "the co-visitation term".into(),
            Part::OtherObjectives { name, .. } => {
                format!("the objectives other than `{name}` (the best component's objective)")
            }
        }
    }

    /// The objective of a single component's ranking (`als_<name>`, `twotower_<name>`)
    /// when `full` weighs it positively among other objectives: the part "the other
    /// objectives" for that component. None for co-visitation, the means, or a negative or
    /// lone objective.
    pub fn other_objectives_of(
        component: &str,
        objectives: &[String],
        full_factors: &[f64],
    ) -> Option<Part> {
        let name = component
            .strip_prefix("als_")
            .or_else(|| component.strip_prefix("twotower_"))?;
        let kept = objectives.iter().position(|o| o == name)?;
        (objectives.len() > 1 && full_factors[kept] > 0.0).then(|| Part::OtherObjectives {
            kept,
            name: name.to_string(),
        })
    }

    /// `full` without this part, or None when leaving it out cannot change `full` or would
    /// leave nothing: learned weights equal on every objective with a non-zero manual
    /// weight (they only rescale the score), no objective with a negative factor or none
    /// with a positive one, a co-visitation factor of 0.
    pub fn inputs(
        &self,
        manual: &[f64],
        full_factors: &[f64],
        settings: &ScoreSettings,
    ) -> Option<MergeInputs> {
        let full = |models| MergeInputs {
            models,
            factors: full_factors.to_vec(),
            settings: *settings,
        };
        match self {
            Part::Linear => Some(full(Models::NonlinearOnly)),
            Part::Nonlinear => Some(full(Models::LinearOnly)),
            Part::LearnedWeights => {
                learned_weights_matter(manual, full_factors).then(|| MergeInputs {
                    factors: manual.to_vec(),
                    ..full(Models::Both)
                })
            }
            Part::NegativeObjectives => {
                let negative = full_factors.iter().any(|&f| f < 0.0);
                let positive = full_factors.iter().any(|&f| f > 0.0);
                (negative && positive).then(|| MergeInputs {
                    factors: full_factors.iter().map(|&f| f.max(0.0)).collect(),
                    ..full(Models::Both)
                })
            }
            Part::Covisitation => {
                (settings.covisitation_factor(full_factors) > 0.0).then(|| MergeInputs {
                    settings: ScoreSettings {
                        covisitation_weight: 0.0,
                        ..*settings
                    },
                    ..full(Models::Both)
                })
            }
            Part::OtherObjectives { kept, .. } => Some(MergeInputs {
                factors: (0..full_factors.len())
                    .map(|k| if k == *kept { full_factors[k] } else { 0.0 })
                    .collect(),
                ..full(Models::Both)
            }),
        }
    }
}

/// Whether the learned weights w_k = f_k / a_k differ between objectives with a non-zero
/// manual weight a_k; when they do not, they only rescale the score.
pub fn learned_weights_matter(manual: &[f64], full_factors: &[f64]) -> bool {
    let mut learned = manual
        .iter()
        .zip(full_factors)
        .filter(|(&a, _)| a != 0.0)
        .map(|(&a, &f)| f / a);
    match learned.next() {
        Some(first) => learned.any(|w| (w - first).abs() > 1e-12 * first.abs().max(1.0)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stage_merge::score::{Combine, NegativeSimilarity};

    fn settings(covisitation_weight: f64) -> ScoreSettings {
        ScoreSettings {
            combine: Combine::Max,
            nonlinear_share: 1.0,
            covisitation_weight,
            negative_similarity: NegativeSimilarity::Excess,
            calibration_window_ms: None,
        }
    }

    #[test]
    fn each_variant_changes_only_its_part() {
        let (manual, full) = ([0.5, -1.0], [1.5, -0.5]);
        let s = settings(1.0);
        let linear = Part::Linear.inputs(&manual, &full, &s).unwrap();
        assert_eq!(
            (linear.models, linear.factors.as_slice(), linear.settings),
            (Models::NonlinearOnly, &full[..], s)
        );
        let weights = Part::LearnedWeights.inputs(&manual, &full, &s).unwrap();
        assert_eq!(
            (weights.models, weights.factors.as_slice()),
            (Models::Both, &manual[..])
        );
        let negative = Part::NegativeObjectives.inputs(&manual, &full, &s).unwrap();
        assert_eq!(negative.factors, vec![1.5, 0.0]);
        let covisitation = Part::Covisitation.inputs(&manual, &full, &s).unwrap();
        assert_eq!(covisitation.settings.covisitation_weight, 0.0);
        assert_eq!(covisitation.factors, full.to_vec());
    }

    #[test]
    fn parts_that_full_lacks_have_no_variant() {
        let s = settings(0.0);
        assert!(Part::Covisitation.inputs(&[1.0], &[1.0], &s).is_none());
        assert!(Part::NegativeObjectives
            .inputs(&[1.0], &[1.0], &s)
            .is_none());
        assert!(Part::Nonlinear.inputs(&[1.0], &[1.0], &s).is_some());
        // A co-visitation weight without a positive objective is a factor of 0.
        assert!(Part::Covisitation
            .inputs(&[-1.0], &[-1.0], &settings(1.0))
            .is_none());
        // Only negative objectives: leaving them out would leave a score of 0.
        assert!(Part::NegativeObjectives
            .inputs(&[-1.0], &[-2.0], &s)
            .is_none());
    }

    #[test]
    fn learned_weights_that_only_rescale_have_no_variant() {
        let s = settings(1.0);
        // One objective, or equal w_k (a fallback): the ranking cannot change.
        assert!(Part::LearnedWeights.inputs(&[0.5], &[1.0], &s).is_none());
        assert!(Part::LearnedWeights
            .inputs(&[0.5, -1.0, 0.0], &[1.0, -2.0, 0.0], &s)
            .is_none());
        assert!(Part::LearnedWeights
            .inputs(&[0.5, -1.0], &[1.0, -1.0], &s)
            .is_some());
        assert!(!learned_weights_matter(&[0.0, 0.0], &[0.0, 0.0]));
    }

    #[test]
    fn other_objectives_keep_only_the_component_objective() {
        let names = ["click".to_string(), "like".into(), "dislike".into()];
        let full = [0.5, 2.0, -1.0];
        let part = Part::other_objectives_of("als_like", &names, &full).unwrap();
        assert_eq!(part.ranking(), "full_only_like");
        let inputs = part.inputs(&full, &full, &settings(1.0)).unwrap();
        assert_eq!(inputs.factors, vec![0.0, 2.0, 0.0]);
        assert_eq!(
            Part::other_objectives_of("twotower_click", &names, &full).map(|p| p.ranking()),
            Some("full_only_click".to_string())
        );
        // Negative objectives, means, co-visitation and a lone objective have none.
        assert!(Part::other_objectives_of("als_dislike", &names, &full).is_none());
        assert!(Part::other_objectives_of("twotower_mean", &names, &full).is_none());
        assert!(Part::other_objectives_of("covisitation", &names, &full).is_none());
        assert!(Part::other_objectives_of("als_click", &names[..1], &full[..1]).is_none());
    }
}

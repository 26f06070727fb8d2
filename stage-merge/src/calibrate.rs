//! Step 1b: calibration of the max-merge (`combine = "calibrated_max"`).
//!
//! Reads the valid split of interactions.parquet (through `truth`), the candidate pairs and
//! one raw score column at a time; writes nothing. The spec takes, per objective, the
//! maximum of the ALS and the two-tower similarity. The raw cosines are not on one scale,
//! and their percentiles put a weak model's top pairs on par with a strong model's, so the
//! max is taken over probabilities instead: each model's score is mapped to
//! P(the candidate is engaged with the objective's label after the source | score), where
//! "engaged after" is stage-eval's ground truth (`truth::build`) on the VALID split: the
//! same user engages the candidate strictly after the source and within the window. The
//! dislike objective's label is the dislike, so its probability is "disliked after".
//!
//! The map is Platt scaling: a 1-D logistic regression of that label on the standardised
//! score (`logistic::fit`, Newton, deterministic), fitted on the pairs whose source has a
//! valid-split truth (a source nobody engaged in the valid split says nothing about its
//! candidates). It is monotone in the score, so it never reorders one model's list, equal
//! scores get equal probabilities, and a model without signal gets a nearly flat slope, so
//! its probability stays near the base rate and the other model wins the max wherever it
//! is confident. The co-visitation score is calibrated the same way against "engaged at
//! all", so that its term is a probability like the objectives' (its percentile would
//! outweigh them). An objective with no valid-split positive pair (or a model whose pairs
//! are all positive) cannot be calibrated: its probability is 0 for every pair, so it
//! drops out of the score, with a warning; the test split is never read here.

use std::path::Path;

use anyhow::{bail, Result};
use common::{LabelRule, Split};

use crate::logistic;
use crate::truth::{self, Truth};

/// L2 penalty on the slope: negligible against the hundreds of thousands of pairs, it keeps
/// the fit finite when a tiny valid split separates the labels.
const L2: f64 = 1.0;

/// One fitted map from a raw score to a probability: sigmoid(b0 + b1 (x - mean) / scale).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Platt {
    pub intercept: f64,
    pub slope: f64,
    pub mean: f64,
    /// Standard deviation of the fitted scores; 0 when they are all equal (slope 0 then).
    pub scale: f64,
    /// Labelled pairs and positives among them.
    pub n_pairs: u64,
    pub n_positive: u64,
}

impl Platt {
    /// The calibrated probability of one raw score.
    pub fn probability(&self, x: f32) -> f32 {
        let z = if self.scale > 0.0 {
            self.intercept + self.slope * (x as f64 - self.mean) / self.scale
        } else {
            self.intercept
        };
        (1.0 / (1.0 + (-z).exp())) as f32
    }
}

/// Per candidate row: `Some(label)` when the row's source has a truth (label: the
/// candidate is in the source's list `lists[p]` of `truth.sources[p]`), `None` otherwise.
/// Lists and sources are ascending, as `truth::build` makes them.
pub fn pair_labels(
    truth: &Truth,
    lists: &[Vec<u32>],
    source_idx: &[u32],
    candidate_idx: &[u32],
) -> Vec<Option<bool>> {
    source_idx
        .iter()
        .zip(candidate_idx)
        .map(|(s, c)| {
            let p = truth.sources.binary_search(s).ok()?;
            Some(lists[p].binary_search(c).is_ok())
        })
        .collect()
}

/// One label per candidate row (`pair_labels`).
pub type PairLabels = Vec<Option<bool>>;

/// The labels of every candidate pair from the valid split of `dir`: per objective (the
/// candidate engaged with `labels[k]` after the source), then "engaged at all" (for the
/// co-visitation score). Errors when the valid split has no engagement followed by another
/// within the window: nothing can be calibrated then (use `combine = "max"`).
pub fn valid_labels(
    dir: &Path,
    labels: &[LabelRule],
    window_ms: Option<i64>,
    source_idx: &[u32],
    candidate_idx: &[u32],
) -> Result<(Vec<PairLabels>, PairLabels)> {
    let (path, rows) = truth::read_rows(dir, labels, Split::Valid)?;
    let truth = truth::build(&rows, labels.len(), window_ms);
    if truth.sources.is_empty() {
        bail!(
            "{}: no valid-split engagement is followed by another within the window, so \
             combine = \"calibrated_max\" has nothing to calibrate on (use \"max\")",
            path.display()
        );
    }
    tracing::info!(
        "calibration truth: {} valid rows, {} sources, {} (source, next) pairs",
        rows.user.len(),
        truth.sources.len(),
        Truth::n_pairs(&truth.engaged)
    );
    let per_objective = truth
        .objectives
        .iter()
        .map(|lists| pair_labels(&truth, lists, source_idx, candidate_idx))
        .collect();
    let engaged = pair_labels(&truth, &truth.engaged, source_idx, candidate_idx);
    Ok((per_objective, engaged))
}

/// Fits the map of `score` to the labelled rows; `None` when one class is missing.
pub fn fit(score: &[f32], labels: &[Option<bool>]) -> Result<Option<Platt>> {
    let rows: Vec<(f64, f64)> = score
        .iter()
        .zip(labels)
        .filter_map(|(&x, l)| l.map(|y| (x as f64, y as u8 as f64)))
        .collect();
    let n = rows.len();
    let n_positive = rows.iter().filter(|r| r.1 == 1.0).count();
    if n_positive == 0 || n_positive == n {
        return Ok(None);
    }
    let mean = rows.iter().map(|r| r.0).sum::<f64>() / n as f64;
    let var = rows.iter().map(|r| (r.0 - mean).powi(2)).sum::<f64>() / n as f64;
    let scale = if var > 1e-24 { var.sqrt() } else { 0.0 };
    let x: Vec<f64> = rows
        .iter()
        .map(|r| {
            if scale > 0.0 {
                (r.0 - mean) / scale
            } else {
                0.0
            }
        })
        .collect();
    let y: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let fitted = logistic::fit(&x, &y, 1, L2, "calibration")?;
    Ok(Some(Platt {
        intercept: fitted.intercept,
        slope: fitted.coefficients[0],
        mean,
        scale,
        n_pairs: n as u64,
        n_positive: n_positive as u64,
    }))
}

/// The calibrated probability of every pair, or 0 everywhere when no map could be fitted.
pub fn apply(platt: Option<&Platt>, score: &[f32]) -> Vec<f32> {
    match platt {
        Some(p) => score.iter().map(|&x| p.probability(x)).collect(),
        None => vec![0.0; score.len()],
    }
}

/// Fits and applies in one go, logging the map; `what` names the column in the log.
pub fn calibrate(score: &[f32], labels: &[Option<bool>], what: &str) -> Result<Vec<f32>> {
    let platt = fit(score, labels)?;
    match &platt {
        Some(p) => tracing::info!(
            "calibration of {what}: {} valid pairs, {} positive; p = sigmoid({:.4} + {:.4} \
             (x - {:.4}) / {:.4})",
            p.n_pairs,
            p.n_positive,
            p.intercept,
            p.slope,
            p.mean,
            p.scale
        ),
        None => tracing::warn!(
            "calibration of {what}: the valid split has no positive (or no negative) \
             labelled pair; its probability is 0 for every pair, so it drops out of the score"
        ),
    }
    Ok(apply(platt.as_ref(), score))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(y: &[u8]) -> Vec<Option<bool>> {
        y.iter().map(|&v| Some(v == 1)).collect()
    }

    #[test]
    fn calibration_is_monotone_and_follows_the_label_rate() {
        // Positives grow with the score: 0/4 at 0.1, 2/4 at 0.5, 4/4 at 0.9.
        let x = [0.1, 0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9];
        let y = labels(&[0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1]);
        let p = apply(fit(&x, &y).unwrap().as_ref(), &x);
        assert!(p[0] < p[4] && p[4] < p[8], "{p:?}");
        // Symmetric data: the middle score gets one half.
        assert!((p[4] - 0.5).abs() < 1e-4, "{p:?}");
    }

    #[test]
    fn equal_scores_get_equal_probabilities() {
        let x = [0.3, 0.7, 0.3, 0.7, 0.3];
        let y = labels(&[0, 1, 1, 0, 0]);
        let p = apply(fit(&x, &y).unwrap().as_ref(), &x);
        assert_eq!(p[0], p[2]);
        assert_eq!(p[0], p[4]);
        assert_eq!(p[1], p[3]);
    }

    #[test]
    fn a_model_without_signal_gets_the_flat_base_rate() {
        // Constant scores: probability = positive share, 1 of 4.
        let p = apply(
            fit(&[0.2; 4], &labels(&[1, 0, 0, 0])).unwrap().as_ref(),
            &[0.2, 5.0],
        );
        assert!((p[0] - 0.25).abs() < 1e-6 && p[0] == p[1], "{p:?}");
        // Scores unrelated to the labels (same rate at each score): flat as well.
        let x = [0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9];
        let y = labels(&[1, 0, 1, 0, 0, 0, 0, 0]);
        let p = apply(fit(&x, &y).unwrap().as_ref(), &x);
        assert!(
            (p[0] - p[2]).abs() < 1e-6 && (p[0] - 0.25).abs() < 1e-6,
            "{p:?}"
        );
    }

    #[test]
    fn no_positive_pair_falls_back_to_zero() {
        let y = labels(&[0, 0, 0]);
        assert_eq!(fit(&[0.1, 0.2, 0.3], &y).unwrap(), None);
        assert_eq!(calibrate(&[0.1, 0.2, 0.3], &y, "t").unwrap(), vec![0.0; 3]);
        // Unlabelled rows do not count as negatives either.
        assert_eq!(fit(&[0.1, 0.2], &[None, Some(true)]).unwrap(), None);
    }

    #[test]
    fn a_strong_model_outranks_a_weak_models_top_scores() {
        // Model A separates the labels, model B barely does; B's top score maps below A's.
        let y = labels(&[0, 0, 0, 1, 0, 0, 0, 1]);
        let a = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let b = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0];
        let pa = apply(fit(&a, &y).unwrap().as_ref(), &a);
        let pb = apply(fit(&b, &y).unwrap().as_ref(), &b);
        assert!(pa[3] > pb[1] + 0.2, "{pa:?} {pb:?}");
    }

    #[test]
    fn pair_labels_by_source_and_candidate() {
        let truth = Truth {
            sources: vec![2, 5],
            engaged: vec![vec![1, 3], vec![0]],
            objectives: vec![],
            disliked: vec![vec![], vec![]],
        };
        let l = pair_labels(&truth, &truth.engaged, &[2, 2, 4, 5], &[3, 4, 1, 0]);
        assert_eq!(l, vec![Some(true), Some(false), None, Some(true)]);
    }
}

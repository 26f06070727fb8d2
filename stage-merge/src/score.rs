//! Step 2: the terms of the final score of every candidate pair.
//!
//! Reads the percentile-scaled similarities of each objective (`scale`), the percentile of
//! the co-visitation score and the factors a_k w_k; writes nothing. Used by stage-merge to
//! rank and by stage-eval to rebuild the same rankings, so both compute one formula:
//!
//! score = sum_k f_k t_k + f_0 c
//!
//! - s_k: the objective's similarity. `max` (default, the spec's rule) takes the larger of
//!   the two percentiles; `calibrated_max` the larger of the two calibrated probabilities
//!   (`calibrate`: the columns passed in are then probabilities, and so is c); `blend` takes
//!   (1 - nonlinear_share) CDF_linear + nonlinear_share CDF_nonlinear. With `max`, a pair
//!   lands near 1 whenever either model ranks it high, so a weak model's top percentile
//!   counts as much as a strong one's; calibration fixes that scale, but its map is global
//!   while lists are per source, and on MovieLens it did not beat `max` (data/*.toml).
//! - t_k = s_k for an objective with f_k = a_k w_k >= 0. For a negative objective (dislike)
//!   under `negative_similarity = "excess"` (default), s_k is read against r, the mean s_j of
//!   the positive objectives: the part up to r is evidence that the videos are related (the
//!   users who disliked the candidate had watched the source), only the excess over r is
//!   evidence that the candidate is disliked more than it is liked. So
//!   t_k = max(0, s_k - r) - min(s_k, r), and f_k t_k = |f_k| min(s_k, r) -
//!   |f_k| max(0, s_k - r): a tent that rises with s_k up to r and falls after. `raw` subtracts |f_k| s_k, which removes
//!   relatedness itself (Star Wars then loses Return of the Jedi on MovieLens).
//! - c: the percentile of the co-visitation score of stage 1 among all candidate pairs, the
//!   strongest single relatedness signal, with f_0 = covisitation_weight x (sum of the
//!   positive f_k), so the setting reads as a share of the objectives' total weight.

use serde::{Deserialize, Serialize};

/// How an objective's two model percentiles become one similarity s_k.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// The larger of the two percentiles.
    Max,
    /// The larger of the two calibrated probabilities (`calibrate`); the co-visitation term
    /// is then its calibrated probability too.
    CalibratedMax,
    /// (1 - nonlinear_share) linear + nonlinear_share non-linear.
    Blend,
}

/// How the similarity of an objective with a negative factor enters the score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NegativeSimilarity {
    /// f_k s_k: the whole similarity is penalised.
    Raw,
    /// Up to the positive objectives' mean similarity it counts as relatedness, the excess
    /// over it is penalised.
    Excess,
}

/// The checked settings of the score formula.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoreSettings {
    pub combine: Combine,
    /// Weight of the non-linear percentile under `blend`, in [0, 1].
    pub nonlinear_share: f64,
    /// f_0 / (sum of the positive factors), >= 0.
    pub covisitation_weight: f64,
    pub negative_similarity: NegativeSimilarity,
    /// Window of the valid-split truth that `calibrated_max` is fitted on; None = no window.
    pub calibration_window_ms: Option<i64>,
}

impl ScoreSettings {
    /// The formula of the first merge: max of percentiles, raw negative similarity, no
    /// co-visitation term. stage-eval reports it next to the current one.
    pub const PREVIOUS: ScoreSettings = ScoreSettings {
        combine: Combine::Max,
        nonlinear_share: 0.5,
        covisitation_weight: 0.0,
        negative_similarity: NegativeSimilarity::Raw,
        calibration_window_ms: None,
    };

    /// True when the columns given to `similarity` and `terms` must be calibrated
    /// probabilities (`calibrate`) rather than percentiles.
    pub fn calibrated(&self) -> bool {
        self.combine == Combine::CalibratedMax
    }

    /// s_k of every pair from the two models' percentiles, or from their calibrated
    /// probabilities under `calibrated_max`.
    pub fn similarity(&self, linear_cdf: &[f32], nonlinear_cdf: &[f32]) -> Vec<f32> {
        match self.combine {
            Combine::Max | Combine::CalibratedMax => {
                common::scale::combine_max(linear_cdf, nonlinear_cdf)
            }
            Combine::Blend => {
                let m = self.nonlinear_share;
                linear_cdf
                    .iter()
                    .zip(nonlinear_cdf)
                    .map(|(&l, &n)| ((1.0 - m) * l as f64 + m * n as f64) as f32)
                    .collect()
            }
        }
    }

    /// The factor f_0 of the co-visitation percentile.
    pub fn covisitation_factor(&self, factors: &[f64]) -> f64 {
        self.covisitation_weight * factors.iter().filter(|&&f| f > 0.0).sum::<f64>()
    }

    /// The terms t_k of every objective (see the module notes); `None` where t_k = s_k, so
    /// that positive objectives are not copied.
    pub fn negative_terms(
        &self,
        similarity: &[Vec<f32>],
        factors: &[f64],
    ) -> Vec<Option<Vec<f32>>> {
        let positive: Vec<usize> = (0..factors.len()).filter(|&k| factors[k] > 0.0).collect();
        factors
            .iter()
            .enumerate()
            .map(|(k, &f)| {
                if f >= 0.0 || self.negative_similarity == NegativeSimilarity::Raw {
                    return None;
                }
                let terms = (0..similarity[k].len())
                    .map(|row| {
                        let s = similarity[k][row] as f64;
                        // Without a positive objective r = 0, and t_k = s_k (raw).
                        let r = if positive.is_empty() {
                            0.0
                        } else {
                            positive
                                .iter()
                                .map(|&j| similarity[j][row] as f64)
                                .sum::<f64>()
                                / positive.len() as f64
                        };
                        ((s - r).max(0.0) - s.min(r)) as f32
                    })
                    .collect();
                Some(terms)
            })
            .collect()
    }
}

/// Every score term of the pairs and its factor, in output order: one per objective, then
/// the co-visitation percentile.
#[derive(Debug, Clone)]
pub struct Terms<'a> {
    pub columns: Vec<&'a [f32]>,
    pub factors: Vec<f64>,
}

/// The terms of `score = sum_k f_k t_k + f_0 c` over borrowed columns; `negative` is
/// `ScoreSettings::negative_terms` of the same similarities and factors.
pub fn terms<'a>(
    similarity: &'a [Vec<f32>],
    negative: &'a [Option<Vec<f32>>],
    covisitation_cdf: &'a [f32],
    factors: &[f64],
    settings: &ScoreSettings,
) -> Terms<'a> {
    let mut columns: Vec<&[f32]> = similarity
        .iter()
        .zip(negative)
        .map(|(s, t)| t.as_deref().unwrap_or(s))
        .collect();
    columns.push(covisitation_cdf);
    let mut all = factors.to_vec();
    all.push(settings.covisitation_factor(factors));
    Terms {
        columns,
        factors: all,
    }
}

/// sum_k f_k t_k of one pair, in f64 in term order, stored as f32: the merge's arithmetic.
pub fn pair_score(terms: &Terms, row: usize) -> f32 {
    let total: f64 = terms
        .factors
        .iter()
        .zip(&terms.columns)
        .map(|(f, t)| f * t[row] as f64)
        .sum();
    total as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(negative: NegativeSimilarity) -> ScoreSettings {
        ScoreSettings {
            combine: Combine::Blend,
            nonlinear_share: 1.0,
            covisitation_weight: 0.5,
            negative_similarity: negative,
            calibration_window_ms: None,
        }
    }

    #[test]
    fn blend_weights_the_two_percentiles() {
        let s = ScoreSettings {
            nonlinear_share: 0.75,
            ..settings(NegativeSimilarity::Raw)
        };
        assert_eq!(s.similarity(&[0.0, 1.0], &[1.0, 0.0]), vec![0.75, 0.25]);
    }

    #[test]
    fn max_takes_the_larger_percentile() {
        let s = ScoreSettings::PREVIOUS;
        assert_eq!(s.similarity(&[0.2, 0.9], &[0.6, 0.1]), vec![0.6, 0.9]);
    }

    #[test]
    fn covisitation_factor_is_a_share_of_the_positive_factors() {
        let s = settings(NegativeSimilarity::Excess);
        assert_eq!(s.covisitation_factor(&[1.0, 3.0, -2.0]), 2.0);
    }

    #[test]
    fn excess_dislike_counts_as_relatedness_up_to_the_positive_mean() {
        // Objectives: like (f = 1), watch (f = 1), dislike (f = -1). r = mean(like, watch).
        let similarity = vec![vec![0.8, 0.8], vec![0.6, 0.6], vec![0.5, 0.9]];
        let factors = [1.0, 1.0, -1.0];
        let t = settings(NegativeSimilarity::Excess).negative_terms(&similarity, &factors);
        assert!(t[0].is_none() && t[1].is_none());
        let dislike = t[2].as_ref().unwrap();
        // r = 0.7. s = 0.5 <= r: t = -0.5, so -1 * t = +0.5 (relatedness).
        // s = 0.9 > r: t = 0.2 - 0.7 = -0.5 as well: the tent is symmetric around r.
        assert!((dislike[0] + 0.5).abs() < 1e-6, "{dislike:?}");
        assert!((dislike[1] + 0.5).abs() < 1e-6, "{dislike:?}");
    }

    #[test]
    fn excess_penalises_only_the_part_above_the_positive_mean() {
        let similarity = vec![vec![0.2, 0.2], vec![0.3, 0.95]];
        let t = settings(NegativeSimilarity::Excess).negative_terms(&similarity, &[1.0, -1.0]);
        let dislike = t[1].as_ref().unwrap();
        // r = 0.2: s = 0.3 -> 0.1 - 0.2 = -0.1; s = 0.95 -> 0.75 - 0.2 = 0.55.
        assert!((dislike[0] + 0.1).abs() < 1e-6);
        assert!((dislike[1] - 0.55).abs() < 1e-6);
    }

    #[test]
    fn raw_mode_and_no_positive_objective_keep_the_similarity() {
        let similarity = vec![vec![0.4], vec![0.9]];
        let raw = settings(NegativeSimilarity::Raw).negative_terms(&similarity, &[1.0, -1.0]);
        assert!(raw.iter().all(Option::is_none));
        let alone = settings(NegativeSimilarity::Excess).negative_terms(&similarity, &[-1.0, -1.0]);
        assert_eq!(alone[1].as_deref(), Some(&[0.9f32][..]));
    }

    #[test]
    fn score_sums_every_term_with_its_factor() {
        let similarity = vec![vec![0.5], vec![0.9]];
        let factors = [2.0, -1.0];
        let s = settings(NegativeSimilarity::Excess);
        let negative = s.negative_terms(&similarity, &factors);
        let covisitation = [0.8f32];
        let t = terms(&similarity, &negative, &covisitation, &factors, &s);
        // 2 * 0.5 + (-1) * (0.4 - 0.5) + (0.5 * 2) * 0.8 = 1 + 0.1 + 0.8.
        assert!((pair_score(&t, 0) - 1.9).abs() < 1e-6);
        assert_eq!(t.factors, vec![2.0, -1.0, 1.0]);
    }
}

//! Step 2: every compared ranking, as one list per evaluated source.
//!
//! Reads the candidate pairs and their score columns; writes nothing. Every list is cut to
//! `top_n` (the merge's list length) and equal scores are ordered by candidate index, as
//! the merge orders them:
//! - `popularity`: the videos with the most train rows, the same for every source minus
//!   the source itself; a baseline that needs no model;
//! - `covisitation`: candidates.parquet in its own rank order (the co-visitation score);
//! - `als_<obj>` / `twotower_<obj>`: the candidates re-ranked by one model's score (ALS's
//!   linear score, the two-tower cosine);
//! - `als_mean`: by the mean over objectives of the ALS percentiles (the linear scores of
//!   different objectives are not on one scale); `twotower_mean`: by the mean two-tower
//!   cosine (cosines share one scale);
//! - `merged_equal`, `merged_manual`, `full`: the merge's score (`stage_merge::score`) with
//!   factors f_k = 1, a_k and a_k w_k, computed by stage-merge's own code, so `full` is
//!   related.parquet's order;
//! - `full_previous`: the factors a_k w_k under the first merge's rule (max of the two
//!   percentiles, the whole dislike similarity subtracted, no co-visitation term), kept to
//!   show what the current rule changes;
//! - `full_max`, `full_calibrated_max`, `full_blend`: the factors a_k w_k and the configured
//!   settings under each `combine` rule other than the configured one (`full` is that one),
//!   so every report compares the three; `full_calibrated_max` needs a valid-split truth
//!   and is left out without one. Under `calibrated_max` the columns given to
//!   `merged_score` are the calibrated probabilities (`stage_merge::calibrate`) instead of
//!   the percentiles.
//!
//! A source with no candidate gets an empty list (a miss), including sources never seen in
//! train, which no candidate-based ranking can serve.

use rayon::prelude::*;

use stage_merge::score::{self, ScoreSettings};

use crate::inputs::Candidates;

/// One ranking's lists, aligned with the evaluated sources.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    pub name: String,
    pub lists: Vec<Vec<u32>>,
}

/// The most engaged train videos, minus the source, for every source.
pub fn popularity(train_counts: &[u64], sources: &[u32], top_n: usize) -> Vec<Vec<u32>> {
    let mut videos: Vec<u32> = (0..train_counts.len() as u32)
        .filter(|&v| train_counts[v as usize] > 0)
        .collect();
    videos.sort_unstable_by(|&a, &b| {
        train_counts[b as usize]
            .cmp(&train_counts[a as usize])
            .then(a.cmp(&b))
    });
    videos.truncate(top_n + 1);
    sources
        .iter()
        .map(|&s| {
            videos
                .iter()
                .copied()
                .filter(|&v| v != s)
                .take(top_n)
                .collect()
        })
        .collect()
}

/// The candidates of each source in candidates.parquet's rank order.
pub fn by_file_rank(candidates: &Candidates, sources: &[u32], top_n: usize) -> Vec<Vec<u32>> {
    sources
        .par_iter()
        .map(|&s| {
            let mut rows: Vec<usize> = candidates.rows_of(s).collect();
            rows.sort_unstable_by_key(|&r| (candidates.rank[r], candidates.candidate_idx[r]));
            rows.truncate(top_n);
            rows.iter().map(|&r| candidates.candidate_idx[r]).collect()
        })
        .collect()
}

/// The candidates of each source by descending score, ties by candidate index.
pub fn by_score(
    candidates: &Candidates,
    score: &[f32],
    sources: &[u32],
    top_n: usize,
) -> Vec<Vec<u32>> {
    sources
        .par_iter()
        .map(|&s| {
            let mut rows: Vec<usize> = candidates.rows_of(s).collect();
            rows.sort_unstable_by(|&a, &b| {
                score[b]
                    .total_cmp(&score[a])
                    .then(candidates.candidate_idx[a].cmp(&candidates.candidate_idx[b]))
            });
            rows.truncate(top_n);
            rows.iter().map(|&r| candidates.candidate_idx[r]).collect()
        })
        .collect()
}

/// The merge's score of every pair under `settings`, from the two models' percentiles of
/// each objective and the co-visitation percentile (their calibrated probabilities under
/// `calibrated_max`).
pub fn merged_score(
    linear_cdf: &[Vec<f32>],
    nonlinear_cdf: &[Vec<f32>],
    covisitation_cdf: &[f32],
    factors: &[f64],
    settings: &ScoreSettings,
) -> Vec<f32> {
    let similarity: Vec<Vec<f32>> = linear_cdf
        .iter()
        .zip(nonlinear_cdf)
        .map(|(l, n)| settings.similarity(l, n))
        .collect();
    let negative = settings.negative_terms(&similarity, factors);
    let terms = score::terms(&similarity, &negative, covisitation_cdf, factors, settings);
    (0..covisitation_cdf.len())
        .into_par_iter()
        .map(|row| score::pair_score(&terms, row))
        .collect()
}

/// sum_k factor_k s_k of every pair, summed in f64 in column order and stored as f32.
pub fn weighted_sum(scaled: &[Vec<f32>], factors: &[f64]) -> Vec<f32> {
    let n = scaled.first().map_or(0, Vec::len);
    (0..n)
        .into_par_iter()
        .map(|row| {
            let total: f64 = factors
                .iter()
                .zip(scaled)
                .map(|(f, s)| f * s[row] as f64)
                .sum();
            total as f32
        })
        .collect()
}

/// A weighted sum of score columns built one column at a time, so that the columns need not
/// all be in memory at once (14 columns of 36M pairs are 2 GB at 20M log rows). Each pair's
/// additions happen in the order of `weighted_sum`'s, from the same -0.0 start as `f64`'s
/// `Sum`, so `finish` returns exactly its numbers.
pub struct ColumnSum {
    total: Vec<f64>,
}

impl ColumnSum {
    /// A sum over `n` pairs, empty so far.
    pub fn new(n: usize) -> ColumnSum {
        ColumnSum {
            total: vec![-0.0; n],
        }
    }

    /// Adds `factor` times `column` (one value per pair).
    pub fn add(&mut self, column: &[f32], factor: f64) {
        assert_eq!(column.len(), self.total.len(), "score column length");
        self.total
            .par_iter_mut()
            .zip(column)
            .for_each(|(total, &score)| *total += factor * score as f64);
    }

    /// The sums, pair by pair.
    pub fn finish(self) -> Vec<f32> {
        self.total.into_iter().map(|total| total as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(source_idx: Vec<u32>, candidate_idx: Vec<u32>, rank: Vec<u32>) -> Candidates {
        let n_videos = 10;
        let mut groups = vec![0..0; n_videos];
        let mut start = 0;
        for row in 1..=source_idx.len() {
            if row == source_idx.len() || source_idx[row] != source_idx[start] {
                groups[source_idx[start] as usize] = start..row;
                start = row;
            }
        }
        Candidates {
            path: "c".into(),
            source_idx,
            score: vec![0.0; candidate_idx.len()],
            candidate_idx,
            rank,
            groups,
        }
    }

    #[test]
    fn equal_scores_are_ordered_by_candidate_index() {
        let c = candidates(vec![1, 1, 1, 1], vec![9, 2, 5, 4], vec![1, 2, 3, 4]);
        let lists = by_score(&c, &[0.5, 0.5, 0.9, 0.5], &[1], 3);
        assert_eq!(lists, vec![vec![5, 2, 4]]);
    }

    #[test]
    fn sources_without_candidates_get_empty_lists() {
        let c = candidates(vec![1, 1], vec![2, 3], vec![2, 1]);
        assert_eq!(by_file_rank(&c, &[1, 7], 5), vec![vec![3, 2], vec![]]);
        assert_eq!(by_score(&c, &[0.0, 1.0], &[7], 5), vec![Vec::<u32>::new()]);
    }

    #[test]
    fn popularity_skips_the_source_and_unseen_videos() {
        // Counts: video 3 most, then 0 and 5 tied (index order), video 1 never in train.
        let counts = [4, 0, 1, 9, 0, 4];
        let lists = popularity(&counts, &[3, 1], 3);
        assert_eq!(lists, vec![vec![0, 5, 2], vec![3, 0, 5]]);
    }

    #[test]
    fn weighted_sum_and_mean_by_hand() {
        let scaled = vec![vec![0.5, 1.0], vec![0.25, 0.0]];
        assert_eq!(weighted_sum(&scaled, &[2.0, -4.0]), vec![0.0, 2.0]);
        let mut mean = ColumnSum::new(2);
        for column in &scaled {
            mean.add(column, 0.5);
        }
        assert_eq!(mean.finish(), vec![0.375, 0.5]);
    }

    #[test]
    fn column_sum_matches_weighted_sum_bit_for_bit() {
        let columns = vec![
            vec![0.1f32, -0.0, 0.3, 1e-8, -2.5],
            vec![0.7, -0.0, -0.3, 3.0, 0.125],
            vec![0.2, -0.0, 0.9, -1e8, 1.0 / 3.0],
        ];
        let factors = [0.37, 1.0 / 3.0, -1.25];
        let mut sum = ColumnSum::new(5);
        for (column, &factor) in columns.iter().zip(&factors) {
            sum.add(column, factor);
        }
        let expected = weighted_sum(&columns, &factors);
        let got = sum.finish();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&expected));
    }
}

//! The linear score of every candidate pair (source video i, candidate video j) under the
//! fitted factors: `[als] similarity`.
//!
//! - `audience` (default): q_i . y_j, where q_i is the mean user factor of i's audience, the
//!   users with a training cell on i (every routed train row of i, whatever its label).
//!   It is the model's own prediction of how i's audience scores j: the "people who
//!   watched this also..." question a related-video list answers. Unlike a cosine it keeps
//!   the length of y_j, which grows with the evidence for j.
//! - `cosine`: the cosine of y_i and y_j. The length of both factors is dropped, so a video
//!   seen by a handful of users can match anything as well as a video with thousands of
//!   viewers; on the valid splits of the shipped logs it ranked worse (data/*.toml).
//!
//! A pair scores 0 when it cannot be scored: the candidate has no factor, or (audience)
//! the source has no audience with a factor, or (cosine) the source has no factor or
//! either factor is zero. Scores are never NaN.

use rayon::prelude::*;
use serde::Serialize;

use crate::fit::Factors;
use crate::metrics::dot_f32;

/// How a candidate pair's linear score is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Similarity {
    /// The mean factor of the source's audience, dotted with the candidate's factor.
    Audience,
    /// The cosine of the two videos' factors.
    Cosine,
}

/// The user indices of each video's training cells: the columns of a user-major sparsity
/// pattern (`indptr`, `indices`), grouped by video, users ascending within a video.
pub fn audience_of_videos(indptr: &[usize], indices: &[u32], n_videos: usize) -> Vec<Vec<u32>> {
    let mut audience = vec![Vec::new(); n_videos];
    for user in 0..indptr.len().saturating_sub(1) {
        for &video in &indices[indptr[user]..indptr[user + 1]] {
            audience[video as usize].push(user as u32);
        }
    }
    audience
}

/// q_i for every video: the mean factor of its audience's users that have a factor; None
/// for a video without any. Summed in f64 in user order, so the result does not depend on
/// the thread count.
pub fn audience_factors(audience: &[Vec<u32>], users: &Factors) -> Vec<Option<Vec<f32>>> {
    let k = users.n_factors;
    audience
        .par_iter()
        .map(|viewers| {
            let mut sum = vec![0.0f64; k];
            let mut n = 0usize;
            for row in viewers.iter().filter_map(|&u| users.row(u as usize)) {
                for (s, &x) in sum.iter_mut().zip(row) {
                    *s += x as f64;
                }
                n += 1;
            }
            (n > 0).then(|| sum.iter().map(|&s| (s / n as f64) as f32).collect())
        })
        .collect()
}

/// The linear score of every pair, and how many pairs could not be scored (see the module
/// notes). `pattern` is the user-major sparsity pattern of the training matrix.
pub fn scores(
    similarity: Similarity,
    sources: &[u32],
    candidates: &[u32],
    pattern: (&[usize], &[u32]),
    users: &Factors,
    videos: &Factors,
) -> (Vec<f32>, usize) {
    let scored: Vec<Option<f32>> = match similarity {
        Similarity::Cosine => cosine(sources, candidates, videos),
        Similarity::Audience => {
            let (indptr, indices) = pattern;
            let audience = audience_of_videos(indptr, indices, videos.len());
            let profiles = audience_factors(&audience, users);
            sources
                .par_iter()
                .zip(candidates)
                .map(|(&s, &c)| {
                    let profile = profiles[s as usize].as_deref()?;
                    Some(dot_f32(profile, videos.row(c as usize)?) as f32)
                })
                .collect()
        }
    };
    let unscored = scored.iter().filter(|s| s.is_none()).count();
    (
        scored.into_iter().map(|s| s.unwrap_or(0.0)).collect(),
        unscored,
    )
}

/// The cosine of the two videos' factors; None where either has no factor or a zero one.
fn cosine(sources: &[u32], candidates: &[u32], videos: &Factors) -> Vec<Option<f32>> {
    let norms: Vec<f64> = (0..videos.len())
        .map(|i| videos.row(i).map_or(0.0, |f| dot_f32(f, f).sqrt()))
        .collect();
    sources
        .par_iter()
        .zip(candidates)
        .map(|(&s, &c)| {
            let (s, c) = (s as usize, c as usize);
            let denominator = norms[s] * norms[c];
            let (a, b) = (videos.row(s)?, videos.row(c)?);
            // Rounding can push |cos| a hair past 1.
            (denominator > 0.0).then(|| (dot_f32(a, b) / denominator).clamp(-1.0, 1.0) as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn videos() -> Factors {
        Factors {
            n_factors: 2,
            values: vec![1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 0.0, 0.0],
            present: vec![true, true, true, false],
        }
    }

    fn users() -> Factors {
        Factors {
            n_factors: 2,
            values: vec![1.0, 3.0, 3.0, 1.0, 9.0, 9.0],
            present: vec![true, true, false],
        }
    }

    /// Users 0, 1, 2 with cells on videos {0, 1}, {0}, {0, 2}.
    fn pattern() -> (Vec<usize>, Vec<u32>) {
        (vec![0, 2, 3, 5], vec![0, 1, 0, 0, 2])
    }

    #[test]
    fn cosine_is_zero_for_missing_or_zero_factors_and_never_nan() {
        let (indptr, indices) = pattern();
        let (scores, unscored) = scores(
            Similarity::Cosine,
            &[0, 0, 0, 1, 2],
            &[2, 1, 3, 1, 2],
            (&indptr, &indices),
            &users(),
            &videos(),
        );
        let half_sqrt2 = std::f32::consts::FRAC_1_SQRT_2;
        assert!((scores[0] - half_sqrt2).abs() < 1e-6);
        assert_eq!(&scores[1..4], &[0.0, 0.0, 0.0]);
        assert!((scores[4] - 1.0).abs() < 1e-6);
        assert_eq!(unscored, 3);
    }

    #[test]
    fn audience_is_grouped_by_video_in_user_order() {
        let (indptr, indices) = pattern();
        assert_eq!(
            audience_of_videos(&indptr, &indices, 4),
            vec![vec![0, 1, 2], vec![0], vec![2], vec![]]
        );
    }

    #[test]
    fn audience_score_by_hand() {
        // Video 0's audience with a factor: users 0 and 1, mean (2, 2). Video 1's: user 0,
        // (1, 3). Video 2's only user has no factor, video 3 has no audience.
        let (indptr, indices) = pattern();
        let (scores, unscored) = scores(
            Similarity::Audience,
            &[0, 0, 1, 1, 2, 3, 0],
            &[2, 0, 2, 1, 0, 0, 3],
            (&indptr, &indices),
            &users(),
            &videos(),
        );
        // (2,2).(2,2) = 8; (2,2).(1,0) = 2; (1,3).(2,2) = 8; (1,3).(0,0) = 0 (a zero
        // factor still scores); no profile for 2 and 3; candidate 3 has no factor.
        assert_eq!(scores, vec![8.0, 2.0, 8.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(unscored, 3);
    }

    #[test]
    fn audience_score_is_asymmetric() {
        let (indptr, indices) = pattern();
        let (scores, _) = scores(
            Similarity::Audience,
            &[0, 2],
            &[2, 0],
            (&indptr, &indices),
            &users(),
            &videos(),
        );
        // 0 -> 2 uses video 0's audience; 2 -> 0 has no audience with a factor.
        assert_eq!(scores, vec![8.0, 0.0]);
    }
}

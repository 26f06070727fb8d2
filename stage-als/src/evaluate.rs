//! Held-out quality of fitted factors as the anchor scripts of `shared/bench` measure it:
//! the rank of each test user's held-out video among every video the user has not seen in
//! train (recall and NDCG at a cut-off), and the RMSE of explicit predictions.
//!
//! Reads and writes nothing; `als-bench` calls it on the anchors' own split files.

use rayon::prelude::*;

use crate::matrix::{Cell, Csr};

/// Test users scored together: their score rows (users x videos, f32) share one pass over
/// the video factors, which is what bounds the scoring's memory traffic.
const USERS_PER_BATCH: usize = 64;

/// Videos per transposed panel of the scoring kernel (two AVX2 registers of f32).
const PANEL: usize = 16;

/// Ranking quality over the test users.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankingQuality {
    /// Test rows whose user has a factor (the others are skipped, as by the anchors).
    pub n_test: usize,
    /// Of which the held-out video has no factor (never seen in train): a miss.
    pub n_cold_item: usize,
    /// Share of test rows whose video ranks within the cut-off (one relevant video per
    /// user, so this is also the hit rate).
    pub recall: f64,
    /// Mean of 1 / log2(rank + 1) over hits at 1-based rank <= cut-off, 0 for misses.
    pub ndcg: f64,
}

/// 0-based rank of each test video among all videos with a factor that are not in the
/// user's train row, by descending `x_u · y_i` computed in f32; a tie goes to the lower
/// video index. `None` for a video without factor or one that is in the user's train row
/// (the anchors' "filter already liked items" removes it, so it is a miss there too).
/// `users`/`videos` are row-major n x k; `user_items` holds the train rows.
pub fn test_ranks<C: Cell>(
    user_items: &Csr<C>,
    users: &[f32],
    videos: &[f32],
    videos_present: &[bool],
    k: usize,
    test: &[(u32, u32)],
) -> Vec<Option<u32>> {
    let n_videos = user_items.n_cols;
    let panels = transpose_panels(videos, videos_present, n_videos, k);
    let fma = crate::kernels::fma_available();
    test.par_chunks(USERS_PER_BATCH)
        .flat_map_iter(|batch| {
            let mut scores = vec![0.0f32; batch.len() * n_videos];
            let mut x = vec![0.0f32; batch.len() * k];
            for (row, &(u, _)) in x.chunks_exact_mut(k).zip(batch) {
                row.copy_from_slice(&users[u as usize * k..(u as usize + 1) * k]);
            }
            if fma {
                // SAFETY: the CPU supports AVX2 and FMA (checked by `fma_available`).
                unsafe { score_batch_fma(&x, &panels, k, n_videos, &mut scores) }
            } else {
                score_batch::<false>(&x, &panels, k, n_videos, &mut scores)
            }
            batch
                .iter()
                .zip(scores.chunks_exact(n_videos))
                .map(|(&(u, target), row)| {
                    rank_in_row(row, user_items.row(u as usize).0, videos_present, target)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Recall and NDCG at `cutoff` from `test_ranks` output.
pub fn ranking_quality(ranks: &[Option<u32>], n_cold_item: usize, cutoff: u32) -> RankingQuality {
    let mut hits = 0usize;
    let mut gain = 0.0f64;
    for &rank in ranks {
        if let Some(r) = rank.filter(|&r| r < cutoff) {
            hits += 1;
            gain += 1.0 / (r as f64 + 2.0).log2();
        }
    }
    let n = ranks.len().max(1) as f64;
    RankingQuality {
        n_test: ranks.len(),
        n_cold_item,
        recall: hits as f64 / n,
        ndcg: gain / n,
    }
}

/// Root mean squared error of `x_u · y_i` (f64) against the given ratings.
pub fn rmse(users: &[f32], videos: &[f32], k: usize, test: &[(u32, u32, f32)]) -> f64 {
    let squared: f64 = test
        .iter()
        .map(|&(u, i, r)| {
            let x = &users[u as usize * k..(u as usize + 1) * k];
            let y = &videos[i as usize * k..(i as usize + 1) * k];
            let prediction = crate::metrics::dot_f32(x, y);
            (prediction - r as f64).powi(2)
        })
        .sum();
    (squared / test.len().max(1) as f64).sqrt()
}

/// Video factors in panels of `PANEL` videos, each stored k x PANEL (feature-major), so
/// that one user's scores for a panel are `PANEL`-wide multiply-adds with no horizontal
/// sums. Videos without factor and the padding of the last panel score 0.
fn transpose_panels(videos: &[f32], present: &[bool], n_videos: usize, k: usize) -> Vec<f32> {
    let n_panels = n_videos.div_ceil(PANEL);
    let mut panels = vec![0.0f32; n_panels * k * PANEL];
    for i in (0..n_videos).filter(|&i| present[i]) {
        let (panel, lane) = (i / PANEL, i % PANEL);
        for f in 0..k {
            panels[panel * k * PANEL + f * PANEL + lane] = videos[i * k + f];
        }
    }
    panels
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn score_batch_fma(x: &[f32], panels: &[f32], k: usize, n: usize, out: &mut [f32]) {
    score_batch::<true>(x, panels, k, n, out)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn score_batch_fma(x: &[f32], panels: &[f32], k: usize, n: usize, out: &mut [f32]) {
    score_batch::<false>(x, panels, k, n, out)
}

/// `out[u][i] = x_u · y_i` for the batch's users and every video, four users by one panel
/// at a time (eight accumulator registers).
#[inline(always)]
fn score_batch<const FMA: bool>(x: &[f32], panels: &[f32], k: usize, n: usize, out: &mut [f32]) {
    let n_users = x.len() / k;
    for (p, panel) in panels.chunks_exact(k * PANEL).enumerate() {
        let first = p * PANEL;
        let width = PANEL.min(n - first);
        let mut start = 0;
        while start < n_users {
            let group = (n_users - start).min(4);
            let mut acc = [[0.0f32; PANEL]; 4];
            for f in 0..k {
                let column = &panel[f * PANEL..(f + 1) * PANEL];
                for (t, lanes) in acc.iter_mut().enumerate().take(group) {
                    let xf = x[(start + t) * k + f];
                    for (a, &y) in lanes.iter_mut().zip(column) {
                        *a = if FMA { xf.mul_add(y, *a) } else { xf * y + *a };
                    }
                }
            }
            for (t, lanes) in acc.iter().enumerate().take(group) {
                let row = &mut out[(start + t) * n + first..(start + t) * n + first + width];
                row.copy_from_slice(&lanes[..width]);
            }
            start += group;
        }
    }
}

/// Rank of `target` in one user's score row, leaving out the user's train videos and
/// videos without factor.
fn rank_in_row(row: &[f32], seen: &[u32], present: &[bool], target: u32) -> Option<u32> {
    let t = target as usize;
    if !present[t] || seen.binary_search(&target).is_ok() {
        return None;
    }
    let s = row[t];
    let above = |i: usize, v: f32| present[i] && (v > s || (v == s && i < t));
    let mut count = row
        .iter()
        .enumerate()
        .filter(|&(i, &v)| above(i, v))
        .count();
    count -= seen
        .iter()
        .filter(|&&i| above(i as usize, row[i as usize]))
        .count();
    Some(count as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::RatingsCsr;

    #[test]
    fn ranks_skip_train_videos_and_break_ties_by_index() {
        // One factor; user 0 scores videos by their factor: 3, 5, 5, 1, 4, and has seen
        // video 1. Unseen order: 2 (5), 4 (4), 0 (3), 3 (1).
        let videos = [3.0, 5.0, 5.0, 1.0, 4.0];
        let train = RatingsCsr::from_triples(1, 5, &[0], &[1], &[1.0]).unwrap();
        let present = [true; 5];
        let test = [(0, 2), (0, 4), (0, 0), (0, 3), (0, 1)];
        let ranks = test_ranks(&train, &[1.0], &videos, &present, 1, &test);
        assert_eq!(ranks, vec![Some(0), Some(1), Some(2), Some(3), None]);

        // Without the seen video, the tie between videos 1 and 2 goes to video 1.
        let empty = RatingsCsr::from_triples(1, 5, &[], &[], &[]).unwrap();
        let ranks = test_ranks(&empty, &[1.0], &videos, &present, 1, &[(0, 2), (0, 1)]);
        assert_eq!(ranks, vec![Some(1), Some(0)]);
    }

    #[test]
    fn ranks_over_many_panels_match_a_plain_sort() {
        let (n_users, n_videos, k) = (9usize, 53usize, 5usize);
        let users: Vec<f32> = (0..n_users * k)
            .map(|i| ((i * 7) % 13) as f32 - 6.0)
            .collect();
        let videos: Vec<f32> = (0..n_videos * k)
            .map(|i| ((i * 11) % 17) as f32 / 4.0 - 2.0)
            .collect();
        let mut present = vec![true; n_videos];
        present[7] = false;
        let seen_rows: Vec<u32> = (0..n_users as u32).collect();
        let seen_cols: Vec<u32> = (0..n_users as u32).map(|u| (u * 5 + 3) % 53).collect();
        let train =
            RatingsCsr::from_triples(n_users, n_videos, &seen_rows, &seen_cols, &[1.0; 9]).unwrap();
        let test: Vec<(u32, u32)> = (0..n_users as u32)
            .map(|u| (u, (u * 13 + 1) % 53))
            .collect();
        let ranks = test_ranks(&train, &users, &videos, &present, k, &test);
        for (&(u, t), rank) in test.iter().zip(&ranks) {
            let score = |i: usize| -> f32 {
                (0..k)
                    .map(|f| users[u as usize * k + f] * videos[i * k + f])
                    .sum()
            };
            let mut order: Vec<usize> = (0..n_videos)
                .filter(|&i| present[i] && i as u32 != seen_cols[u as usize])
                .collect();
            order.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
            let want = order
                .iter()
                .position(|&i| i == t as usize)
                .map(|p| p as u32);
            assert_eq!(*rank, want, "user {u}");
        }
    }

    #[test]
    fn recall_and_ndcg_count_hits_within_the_cutoff() {
        let q = ranking_quality(&[Some(0), Some(1), Some(20), None], 1, 20);
        assert_eq!(q.n_test, 4);
        assert_eq!(q.recall, 0.5);
        assert!((q.ndcg - (1.0 + 1.0 / 3f64.log2()) / 4.0).abs() < 1e-12);
    }

    #[test]
    fn rmse_of_exact_predictions_is_zero_and_of_offsets_is_their_size() {
        let users = [1.0, 2.0];
        let videos = [3.0, 0.5];
        assert_eq!(rmse(&users, &videos, 1, &[(0, 0, 3.0), (1, 1, 1.0)]), 0.0);
        assert!((rmse(&users, &videos, 1, &[(0, 0, 4.0), (1, 1, 0.0)]) - 1.0).abs() < 1e-12);
    }
}

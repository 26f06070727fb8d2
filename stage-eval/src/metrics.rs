//! Step 3: the ranking metrics, per list and averaged over sources.
//!
//! Reads ranked lists (one per evaluated source, possibly empty) and the truth lists
//! (ascending); writes nothing. Definitions, with rel the relevant set of a source and
//! L its list (at most `[merge] top_n` long):
//! - hit_rate@K: 1 when some relevant video is in the top K of L, else 0;
//! - recall@K: |rel ∩ top K| / min(|rel|, K). Dividing by min(|rel|, K) rather than |rel|
//!   makes a perfect list score 1 even when a source has more relevant videos than K, so
//!   the figure does not shrink with K for busy sources;
//! - ndcg@K: binary gains, DCG = sum over relevant positions r <= K of 1 / log2(r + 1),
//!   divided by the ideal DCG of min(|rel|, K) relevant videos on top;
//! - mrr: 1 / (position of the first relevant video in the whole list), 0 when none; its
//!   row carries k = top_n, the length every list is cut to.
//!
//! Each is averaged over the sources whose truth is non-empty (the row's `support`); a
//! source without a list, or with an empty one, scores 0 and is never skipped. Two
//! list-only metrics complete the picture:
//! - coverage@K: distinct videos in the top K over all evaluated sources / n_videos;
//! - dislike_share@K: pooled over sources, among the top-K videos that a user who engaged
//!   the source engaged later (its engagement truth), the share that were disliked later
//!   (its dislike truth). Listed videos nobody watched after the source say nothing about
//!   dislikes, so they are left out of the denominator. Lower is better; no value (null)
//!   when no listed video was engaged at all.

use std::collections::HashSet;

/// One line of eval.parquet.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub ranking: String,
    pub objective: String,
    pub metric: String,
    pub k: u32,
    /// None when no source supports the figure.
    pub value: Option<f64>,
    pub support: u64,
    pub pairs: u64,
}

fn is_relevant(relevant: &[u32], video: u32) -> bool {
    relevant.binary_search(&video).is_ok()
}

/// Relevant videos among the first `k` of `list`.
pub fn hits(list: &[u32], relevant: &[u32], k: usize) -> usize {
    list.iter()
        .take(k)
        .filter(|&&v| is_relevant(relevant, v))
        .count()
}

/// 1 when a relevant video is in the top `k`.
pub fn hit_rate(list: &[u32], relevant: &[u32], k: usize) -> f64 {
    if hits(list, relevant, k) > 0 {
        1.0
    } else {
        0.0
    }
}

/// |rel ∩ top k| / min(|rel|, k); 0 for an empty truth.
pub fn recall(list: &[u32], relevant: &[u32], k: usize) -> f64 {
    let best = relevant.len().min(k);
    if best == 0 {
        return 0.0;
    }
    hits(list, relevant, k) as f64 / best as f64
}

/// Binary-gain NDCG at `k`; 0 for an empty truth.
pub fn ndcg(list: &[u32], relevant: &[u32], k: usize) -> f64 {
    let discount = |position: usize| 1.0 / ((position + 2) as f64).log2();
    let ideal: f64 = (0..relevant.len().min(k)).map(discount).sum();
    if ideal == 0.0 {
        return 0.0;
    }
    let dcg: f64 = list
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, &v)| is_relevant(relevant, v))
        .map(|(p, _)| discount(p))
        .sum();
    dcg / ideal + 0.0
}

/// 1 / rank of the first relevant video in the whole list; 0 when there is none.
pub fn reciprocal_rank(list: &[u32], relevant: &[u32]) -> f64 {
    list.iter()
        .position(|&v| is_relevant(relevant, v))
        .map_or(0.0, |p| 1.0 / (p + 1) as f64)
}

/// hit_rate, recall, ndcg at each K and mrr, averaged over the sources with a non-empty
/// truth. `lists[s]` and `truth[s]` belong to the same source.
pub fn relevance_rows(
    ranking: &str,
    objective: &str,
    lists: &[Vec<u32>],
    truth: &[Vec<u32>],
    ks: &[usize],
    top_n: usize,
) -> Vec<MetricRow> {
    let evaluated: Vec<usize> = (0..truth.len()).filter(|&s| !truth[s].is_empty()).collect();
    let support = evaluated.len() as u64;
    let pairs: u64 = evaluated.iter().map(|&s| truth[s].len() as u64).sum();
    let mean = |f: &dyn Fn(&[u32], &[u32]) -> f64| -> Option<f64> {
        if evaluated.is_empty() {
            return None;
        }
        // Summed in source order: the same figure whatever the thread count.
        let total: f64 = evaluated.iter().map(|&s| f(&lists[s], &truth[s])).sum();
        // An empty f64 sum is -0.0; + 0.0 keeps a zero mean from printing as "-0".
        Some(total / evaluated.len() as f64 + 0.0)
    };
    let row = |metric: &str, k: usize, value: Option<f64>| MetricRow {
        ranking: ranking.to_string(),
        objective: objective.to_string(),
        metric: metric.to_string(),
        k: k as u32,
        value,
        support,
        pairs,
    };
    let mut rows = Vec::new();
    for &k in ks {
        rows.push(row("hit_rate", k, mean(&|l, r| hit_rate(l, r, k))));
        rows.push(row("recall", k, mean(&|l, r| recall(l, r, k))));
        rows.push(row("ndcg", k, mean(&|l, r| ndcg(l, r, k))));
    }
    rows.push(row("mrr", top_n, mean(&|l, r| reciprocal_rank(l, r))));
    rows
}

/// coverage@K and dislike_share@K of one ranking (objective "all").
pub fn list_rows(
    ranking: &str,
    lists: &[Vec<u32>],
    engaged: &[Vec<u32>],
    disliked: &[Vec<u32>],
    ks: &[usize],
    n_videos: usize,
) -> Vec<MetricRow> {
    let mut rows = Vec::new();
    for &k in ks {
        let mut seen = HashSet::new();
        let mut listed = 0u64;
        for list in lists {
            for &v in list.iter().take(k) {
                seen.insert(v);
                listed += 1;
            }
        }
        rows.push(MetricRow {
            ranking: ranking.to_string(),
            objective: "all".to_string(),
            metric: "coverage".to_string(),
            k: k as u32,
            value: Some(seen.len() as f64 / n_videos.max(1) as f64),
            support: lists.len() as u64,
            pairs: listed,
        });

        let (mut watched, mut bad, mut sources) = (0u64, 0u64, 0u64);
        for ((list, e), d) in lists.iter().zip(engaged).zip(disliked) {
            let w = hits(list, e, k) as u64;
            watched += w;
            bad += hits(list, d, k) as u64;
            sources += (w > 0) as u64;
        }
        rows.push(MetricRow {
            ranking: ranking.to_string(),
            objective: "all".to_string(),
            metric: "dislike_share".to_string(),
            k: k as u32,
            value: (watched > 0).then(|| bad as f64 / watched as f64),
            support: sources,
            pairs: watched,
        });
    }
    rows
}

/// NDCG@`k` of ranking `a` minus that of ranking `b`, source by source over the sources
/// with a non-empty truth: (mean difference, its standard error, number of sources).
/// Both rankings are scored on the same sources, so the standard error of the paired
/// difference is much smaller than that of either mean; it says whether a gap between two
/// rankings is larger than the source-to-source noise. None with fewer than two sources,
/// which give no standard error.
pub fn paired_ndcg_difference(
    a: &[Vec<u32>],
    b: &[Vec<u32>],
    truth: &[Vec<u32>],
    k: usize,
) -> Option<(f64, f64, u64)> {
    let differences: Vec<f64> = (0..truth.len())
        .filter(|&s| !truth[s].is_empty())
        .map(|s| ndcg(&a[s], &truth[s], k) - ndcg(&b[s], &truth[s], k))
        .collect();
    // One source has no standard error; a difference without one must not pass for sure.
    let n = differences.len();
    if n < 2 {
        return None;
    }
    let mean = differences.iter().sum::<f64>() / n as f64;
    let variance = differences
        .iter()
        .map(|d| (d - mean) * (d - mean))
        .sum::<f64>()
        / (n - 1) as f64;
    let se = (variance / n as f64).sqrt();
    Some((mean + 0.0, se, n as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn paired_difference_by_hand() {
        // Source 0: a hits at 1 (NDCG 1), b misses (0). Source 1: both hit at 1. Source 2 has
        // no truth and is left out. Differences 1, 0: mean 0.5, sd sqrt(0.5), se 0.5.
        let a = vec![vec![1], vec![2], vec![3]];
        let b = vec![vec![9], vec![2], vec![]];
        let truth = vec![vec![1], vec![2], vec![]];
        let (mean, se, n) = paired_ndcg_difference(&a, &b, &truth, 10).unwrap();
        assert!(close(mean, 0.5) && close(se, 0.5), "{mean} {se}");
        assert_eq!(n, 2);
        assert!(paired_ndcg_difference(&a, &b, &[vec![], vec![], vec![]], 10).is_none());
        assert!(paired_ndcg_difference(&a, &b, &[vec![1], vec![], vec![]], 10).is_none());
    }

    #[test]
    fn ndcg_by_hand() {
        // Relevant {2, 4}; list 1 2 3 4: DCG = 1/log2(3) + 1/log2(5),
        // IDCG = 1 + 1/log2(3).
        let want = (1.0 / 3f64.log2() + 1.0 / 5f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!(close(ndcg(&[1, 2, 3, 4], &[2, 4], 4), want));
        // At K = 2 only 2 counts and the ideal is still two relevant videos.
        assert!(close(
            ndcg(&[1, 2, 3, 4], &[2, 4], 2),
            (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2())
        ));
        assert_eq!(ndcg(&[2, 4], &[2, 4], 10), 1.0);
    }

    #[test]
    fn k_beyond_the_list_scores_what_the_list_has() {
        // Three relevant, a list of two with one hit, K = 50: ideal over 3 positions.
        let want = 1.0 / (1.0 + 1.0 / 3f64.log2() + 0.5);
        assert!(close(ndcg(&[7, 9], &[1, 2, 7], 50), want));
        assert!(close(recall(&[7, 9], &[1, 2, 7], 50), 1.0 / 3.0));
        assert_eq!(hit_rate(&[7, 9], &[1, 2, 7], 50), 1.0);
    }

    #[test]
    fn recall_divides_by_the_smaller_of_truth_and_k() {
        // Five relevant, K = 2, both top-2 relevant: recall 1, not 2/5.
        assert_eq!(recall(&[1, 2, 9], &[1, 2, 3, 4, 5], 2), 1.0);
        assert!(close(recall(&[1, 9, 2], &[1, 2, 3, 4, 5], 3), 2.0 / 3.0));
    }

    #[test]
    fn reciprocal_rank_uses_the_whole_list() {
        assert_eq!(reciprocal_rank(&[5, 6, 7, 8], &[8]), 0.25);
        assert_eq!(reciprocal_rank(&[5, 6], &[8]), 0.0);
        assert_eq!(reciprocal_rank(&[], &[8]), 0.0);
    }

    #[test]
    fn empty_lists_are_misses_and_empty_truths_are_not_counted() {
        let lists = vec![vec![1, 2], vec![], vec![3]];
        let truth = vec![vec![2], vec![5], vec![]];
        let rows = relevance_rows("r", "all", &lists, &truth, &[1, 2], 10);
        let get = |m: &str, k: u32| {
            rows.iter()
                .find(|r| r.metric == m && r.k == k)
                .unwrap()
                .clone()
        };
        // Source 0: hit at position 2; source 1: no list (0); source 2: no truth (skipped).
        assert_eq!(get("hit_rate", 1).value, Some(0.0));
        assert_eq!(get("hit_rate", 2).value, Some(0.5));
        assert_eq!(get("recall", 2).value, Some(0.5));
        assert!(close(
            get("ndcg", 2).value.unwrap(),
            0.5 * (1.0 / 3f64.log2())
        ));
        assert_eq!(get("mrr", 10).value, Some(0.25));
        assert_eq!((get("mrr", 10).support, get("mrr", 10).pairs), (2, 2));
    }

    #[test]
    fn no_supported_source_gives_no_value() {
        let rows = relevance_rows("r", "like", &[vec![1]], &[vec![]], &[5], 10);
        assert!(rows.iter().all(|r| r.value.is_none() && r.support == 0));
    }

    #[test]
    fn coverage_and_dislike_share_by_hand() {
        // Two sources; n_videos = 10.
        let lists = vec![vec![1, 2, 3], vec![1, 4]];
        let engaged = vec![vec![1, 2, 8], vec![4]];
        let disliked = vec![vec![2], vec![]];
        let rows = list_rows("r", &lists, &engaged, &disliked, &[1, 3], 10);
        let get = |m: &str, k: u32| {
            rows.iter()
                .find(|r| r.metric == m && r.k == k)
                .unwrap()
                .clone()
        };
        // Top 1: {1}; top 3: {1, 2, 3, 4}.
        assert_eq!(get("coverage", 1).value, Some(0.1));
        assert_eq!(get("coverage", 3).value, Some(0.4));
        assert_eq!(get("coverage", 3).pairs, 5);
        // Top 1: engaged listed = 1 (source 0) + 0 (source 1 lists 1, not engaged) -> 0/1.
        assert_eq!(get("dislike_share", 1).value, Some(0.0));
        // Top 3: engaged listed {1, 2} + {4} = 3, disliked {2} = 1.
        assert!(close(get("dislike_share", 3).value.unwrap(), 1.0 / 3.0));
        assert_eq!(
            (
                get("dislike_share", 3).support,
                get("dislike_share", 3).pairs
            ),
            (2, 3)
        );
    }

    #[test]
    fn dislike_share_without_any_engaged_listed_video_has_no_value() {
        let rows = list_rows("r", &[vec![1]], &[vec![2]], &[vec![2]], &[1], 5);
        let share = rows.iter().find(|r| r.metric == "dislike_share").unwrap();
        assert_eq!(share.value, None);
    }
}

//! Ranking metrics.

/// Area under the ROC curve of `scores` against `labels`: the probability that a random
/// positive scores above a random negative, ties counting one half. `None` when either class
/// is absent, since the AUC is undefined then.
///
/// Computed from ranks (Mann-Whitney U) in O(n log n); tied scores share their average rank.
pub fn auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), labels.len(), "one label per score");
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }

    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| scores[a as usize].total_cmp(&scores[b as usize]));

    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0f64;
    let mut start = 0;
    while start < order.len() {
        let score = scores[order[start] as usize];
        let mut end = start + 1;
        while end < order.len() && scores[order[end] as usize].total_cmp(&score).is_eq() {
            end += 1;
        }
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let positives = order[start..end]
            .iter()
            .filter(|&&i| labels[i as usize])
            .count();
        rank_sum += average_rank * positives as f64;
        start = end;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_reversed_rankings() {
        let labels = [false, false, true, true];
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
    }

    #[test]
    fn ties_count_one_half() {
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), Some(0.5));
    }

    #[test]
    fn matches_pairwise_count() {
        // 3 positives, 3 negatives: pairs won by the positive, ties as 0.5, over 9 pairs.
        let scores = [0.3, 0.7, 0.7, 0.1, 0.9, 0.3];
        let labels = [true, true, false, false, true, false];
        let mut wins = 0.0;
        for (i, &li) in labels.iter().enumerate() {
            for (j, &lj) in labels.iter().enumerate() {
                if li && !lj {
                    wins += if scores[i] > scores[j] {
                        1.0
                    } else if scores[i] == scores[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((auc(&scores, &labels).unwrap() - wins / 9.0).abs() < 1e-12);
    }

    #[test]
    fn undefined_with_one_class() {
        assert_eq!(auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(auc(&[], &[]), None);
    }
}

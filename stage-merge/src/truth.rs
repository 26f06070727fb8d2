//! The ground truth of every source video: what its viewers engaged next in one split.
//!
//! Shared by stage-merge (the valid split, to calibrate the max-merge: `calibrate`) and
//! stage-eval (the valid or test split, to score the rankings), so both use one definition.
//! Reads the rows of one split (user, video, time and one flag per objective, plus a dislike
//! flag that stage-eval sets; `read_rows` loads them from interactions.parquet); writes
//! nothing. A video j is relevant to a source i when some user engaged i in the split and
//! then engaged j (j != i) strictly later and at most `window` later, also in the split:
//! that is the "watched next" signal a related-video list tries to anticipate.
//! Same-time rows are not "after" one another, since their order in the log is arbitrary.
//! For an objective, j counts only when that later row carries the objective's label; the
//! dislike truth likewise uses the dislike flag. A pair seen through several users or
//! several engagements of i counts once, with the union of its flags.

use std::path::{Path, PathBuf};

use anyhow::Result;
use common::{Interactions, LabelRule, Split};
use rayon::prelude::*;

/// The rows of one split that the truth is built from, one entry per row.
#[derive(Debug, Clone, Default)]
pub struct TestRows {
    pub user: Vec<u32>,
    pub video: Vec<u32>,
    pub ts_ms: Vec<i64>,
    /// Bit k set: the row is a positive of objective k; bit `n_objectives`: a dislike.
    pub flags: Vec<u64>,
}

/// Relevant videos of every source, each list ascending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Truth {
    /// Sources with a non-empty engagement truth, ascending.
    pub sources: Vec<u32>,
    /// Per source: every video engaged after it.
    pub engaged: Vec<Vec<u32>>,
    /// Per objective, per source: the videos engaged after it with the objective's label.
    pub objectives: Vec<Vec<Vec<u32>>>,
    /// Per source: the videos disliked after it.
    pub disliked: Vec<Vec<u32>>,
}

impl Truth {
    /// Keeps only the sources at the given positions (ascending), e.g. a sample.
    pub fn select(&self, positions: &[usize]) -> Truth {
        Truth {
            sources: positions.iter().map(|&p| self.sources[p]).collect(),
            engaged: positions.iter().map(|&p| self.engaged[p].clone()).collect(),
            objectives: self
                .objectives
                .iter()
                .map(|o| positions.iter().map(|&p| o[p].clone()).collect())
                .collect(),
            disliked: positions
                .iter()
                .map(|&p| self.disliked[p].clone())
                .collect(),
        }
    }

    /// Number of (source, relevant video) pairs of one list family.
    pub fn n_pairs(lists: &[Vec<u32>]) -> u64 {
        lists.iter().map(|l| l.len() as u64).sum()
    }
}

/// The rows of one split of `dir`/interactions.parquet with their flags (bit k: `labels[k]`
/// is positive), and the file read. Labels are evaluated on the split's rows only, so
/// stage-merge, which asks for the valid split, never looks at a test row's label. The
/// dislike bit is left unset: only stage-eval scores a dislike truth, with its own rule.
pub fn read_rows(dir: &Path, labels: &[LabelRule], split: Split) -> Result<(PathBuf, TestRows)> {
    let mut signals: Vec<&str> = labels.iter().map(|l| l.signal.as_str()).collect();
    signals.sort_unstable();
    signals.dedup();
    let log = Interactions::load(dir, &signals)?;
    let values: Vec<&[f32]> = labels.iter().map(|l| log.signal(&l.signal)).collect();
    let mut rows = TestRows::default();
    for row in (0..log.len()).filter(|&r| log.split[r] == split) {
        rows.user.push(log.user_idx[row]);
        rows.video.push(log.video_idx[row]);
        rows.ts_ms.push(log.ts_ms[row]);
        let positive = |k: usize| labels[k].apply(values[k][row]) == Some(true);
        rows.flags.push(
            (0..labels.len())
                .filter(|&k| positive(k))
                .fold(0u64, |f, k| f | (1 << k)),
        );
    }
    Ok((log.path.clone(), rows))
}

/// Builds the truth; `window_ms` None means no upper bound on the gap.
pub fn build(rows: &TestRows, n_objectives: usize, window_ms: Option<i64>) -> Truth {
    // Rows of one user in time order; the video index only makes the order total.
    let mut order: Vec<usize> = (0..rows.user.len()).collect();
    order.par_sort_unstable_by_key(|&r| (rows.user[r], rows.ts_ms[r], rows.video[r], r));
    let mut groups = Vec::new();
    let mut start = 0;
    for end in 1..=order.len() {
        if end == order.len() || rows.user[order[end]] != rows.user[order[start]] {
            groups.push(start..end);
            start = end;
        }
    }

    let mut pairs: Vec<(u32, u32, u64)> = groups
        .into_par_iter()
        .flat_map_iter(|group| {
            let order = &order;
            let mut out = Vec::new();
            for a in group.clone() {
                let (ra, ta) = (order[a], rows.ts_ms[order[a]]);
                for &rb in &order[a + 1..group.end] {
                    let gap = rows.ts_ms[rb] - ta;
                    if window_ms.is_some_and(|w| gap > w) {
                        break;
                    }
                    if gap > 0 && rows.video[rb] != rows.video[ra] {
                        out.push((rows.video[ra], rows.video[rb], rows.flags[rb]));
                    }
                }
            }
            out
        })
        .collect();
    pairs.par_sort_unstable();

    let dislike_bit = 1u64 << n_objectives;
    let mut truth = Truth {
        objectives: vec![Vec::new(); n_objectives],
        ..Default::default()
    };
    let mut i = 0;
    while i < pairs.len() {
        let source = pairs[i].0;
        let mut engaged = Vec::new();
        let mut per_objective = vec![Vec::new(); n_objectives];
        let mut disliked = Vec::new();
        while i < pairs.len() && pairs[i].0 == source {
            let target = pairs[i].1;
            let mut flags = 0u64;
            while i < pairs.len() && pairs[i].0 == source && pairs[i].1 == target {
                flags |= pairs[i].2;
                i += 1;
            }
            engaged.push(target);
            for (k, list) in per_objective.iter_mut().enumerate() {
                if flags & (1 << k) != 0 {
                    list.push(target);
                }
            }
            if flags & dislike_bit != 0 {
                disliked.push(target);
            }
        }
        truth.sources.push(source);
        truth.engaged.push(engaged);
        for (k, list) in per_objective.into_iter().enumerate() {
            truth.objectives[k].push(list);
        }
        truth.disliked.push(disliked);
    }
    truth
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    /// (user, video, hour, flags)
    fn rows(list: &[(u32, u32, i64, u64)]) -> TestRows {
        TestRows {
            user: list.iter().map(|r| r.0).collect(),
            video: list.iter().map(|r| r.1).collect(),
            ts_ms: list.iter().map(|r| r.2 * H).collect(),
            flags: list.iter().map(|r| r.3).collect(),
        }
    }

    #[test]
    fn window_edge_is_inclusive_and_beyond_is_excluded() {
        let t = build(
            &rows(&[(0, 1, 0, 0), (0, 2, 24, 0), (0, 3, 25, 0)]),
            0,
            Some(24 * H),
        );
        assert_eq!(t.sources, vec![1, 2]);
        assert_eq!(t.engaged, vec![vec![2], vec![3]]);
    }

    #[test]
    fn only_later_rows_of_the_same_user_count() {
        // User 0 sees 5 then 6; user 1 sees 7 then 5. Source 5's truth is 6 only: 7 came
        // before it, and user 1's later rows are not user 0's.
        let t = build(
            &rows(&[(0, 5, 10, 0), (0, 6, 11, 0), (1, 7, 10, 0), (1, 5, 11, 0)]),
            0,
            Some(24 * H),
        );
        assert_eq!(t.sources, vec![5, 7]);
        assert_eq!(t.engaged, vec![vec![6], vec![5]]);
    }

    #[test]
    fn same_time_rows_and_the_source_itself_are_not_relevant() {
        let t = build(
            &rows(&[(0, 1, 0, 0), (0, 2, 0, 0), (0, 1, 1, 0)]),
            0,
            Some(24 * H),
        );
        // 1 at hour 0 -> (2 same time: no) (1 itself: no); 2 at hour 0 -> 1 at hour 1.
        assert_eq!(t.sources, vec![2]);
        assert_eq!(t.engaged, vec![vec![1]]);
    }

    #[test]
    fn objective_and_dislike_truths_follow_the_later_row_flags() {
        // One objective (bit 0), dislike is bit 1.
        let t = build(
            &rows(&[(0, 1, 0, 1), (0, 2, 1, 0), (0, 3, 2, 1), (0, 4, 3, 2)]),
            1,
            Some(24 * H),
        );
        assert_eq!(t.sources, vec![1, 2, 3]);
        assert_eq!(t.engaged[0], vec![2, 3, 4]);
        assert_eq!(t.objectives[0][0], vec![3]);
        assert_eq!(t.disliked[0], vec![4]);
        assert_eq!(t.objectives[0][2], Vec::<u32>::new());
    }

    #[test]
    fn flags_of_one_pair_seen_twice_are_united() {
        // Two users go 1 -> 2; only the second likes 2.
        let t = build(
            &rows(&[(0, 1, 0, 0), (0, 2, 1, 0), (1, 1, 0, 0), (1, 2, 1, 1)]),
            1,
            Some(24 * H),
        );
        assert_eq!(t.engaged, vec![vec![2]]);
        assert_eq!(t.objectives[0], vec![vec![2]]);
    }

    #[test]
    fn no_window_reaches_the_end_of_the_split() {
        let t = build(&rows(&[(0, 1, 0, 0), (0, 2, 1000, 0)]), 0, None);
        assert_eq!(t.engaged, vec![vec![2]]);
    }
}

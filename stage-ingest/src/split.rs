//! The time split: two cut times at quantiles of all events' timestamps.
//!
//! With n events sorted by time, the test split starts at the event of position
//! n - round(n * test_fraction) and the validation split round(n * valid_fraction) events
//! earlier; a cut time is the timestamp of that event. An event goes to test when its time
//! is at or after the test cut, else to valid when at or after the valid cut, else to
//! train. Ties at a cut therefore all go to the later split, which keeps "no valid row
//! before a train row, no test row before a valid row" true at the cost of a split a few
//! rows larger than its fraction when many events share the cut time.

use common::Split;
use serde::Serialize;

use crate::config::SplitConfig;

/// The two cut times; `i64::MAX` when a split is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SplitCuts {
    /// Events at or after this time (ms) are valid or test.
    pub valid_from_ms: i64,
    /// Events at or after this time (ms) are test.
    pub test_from_ms: i64,
}

/// Positions, in time order, of the first valid and the first test event of `n` events.
pub fn cut_positions(n: u64, config: &SplitConfig) -> (u64, u64) {
    let n_test = ((n as f64) * config.test_fraction).round() as u64;
    let n_valid = ((n as f64) * config.valid_fraction).round() as u64;
    let test_at = n.saturating_sub(n_test);
    (test_at.saturating_sub(n_valid), test_at)
}

impl SplitCuts {
    /// Cuts of events whose timestamps are given in ascending order.
    pub fn from_sorted(sorted_ts: &[i64], config: &SplitConfig) -> SplitCuts {
        let (valid_at, test_at) = cut_positions(sorted_ts.len() as u64, config);
        let at = |position: u64| {
            sorted_ts
                .get(position as usize)
                .copied()
                .unwrap_or(i64::MAX)
        };
        SplitCuts {
            valid_from_ms: at(valid_at),
            test_from_ms: at(test_at),
        }
    }

    /// The split of an event at `ts_ms`.
    pub fn assign(&self, ts_ms: i64) -> Split {
        if ts_ms >= self.test_from_ms {
            Split::Test
        } else if ts_ms >= self.valid_from_ms {
            Split::Valid
        } else {
            Split::Train
        }
    }
}

/// Finds the bucket holding the event of rank `position` (0-based, time order) from counts
/// per time bucket; returns the bucket and the rank of that event inside it.
pub fn locate_in_histogram(counts: &[u64], position: u64) -> Option<(usize, u64)> {
    let mut before = 0u64;
    for (bucket, &count) in counts.iter().enumerate() {
        if position < before + count {
            return Some((bucket, position - before));
        }
        before += count;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(valid: f64, test: f64) -> SplitConfig {
        SplitConfig {
            valid_fraction: valid,
            test_fraction: test,
        }
    }

    #[test]
    fn ten_events_split_eight_one_one() {
        let ts: Vec<i64> = (0..10).collect();
        let cuts = SplitCuts::from_sorted(&ts, &config(0.1, 0.1));
        assert_eq!(
            cuts,
            SplitCuts {
                valid_from_ms: 8,
                test_from_ms: 9
            }
        );
        let splits: Vec<Split> = ts.iter().map(|&t| cuts.assign(t)).collect();
        assert_eq!(splits.iter().filter(|&&s| s == Split::Train).count(), 8);
        assert_eq!(splits[8], Split::Valid);
        assert_eq!(splits[9], Split::Test);
    }

    #[test]
    fn ties_at_a_cut_go_to_the_later_split() {
        let ts = [1, 2, 3, 3, 3, 3, 3, 3, 3, 4];
        let cuts = SplitCuts::from_sorted(&ts, &config(0.1, 0.1));
        assert_eq!(
            cuts,
            SplitCuts {
                valid_from_ms: 3,
                test_from_ms: 4
            }
        );
        assert_eq!(cuts.assign(3), Split::Valid);
        assert_eq!(cuts.assign(2), Split::Train);
    }

    #[test]
    fn zero_fractions_leave_splits_empty() {
        let ts: Vec<i64> = (0..5).collect();
        let cuts = SplitCuts::from_sorted(&ts, &config(0.0, 0.0));
        assert_eq!(
            cuts,
            SplitCuts {
                valid_from_ms: i64::MAX,
                test_from_ms: i64::MAX
            }
        );
        assert!(ts.iter().all(|&t| cuts.assign(t) == Split::Train));
        let only_test = SplitCuts::from_sorted(&ts, &config(0.0, 0.4));
        assert_eq!(only_test.valid_from_ms, only_test.test_from_ms);
    }

    #[test]
    fn histogram_locates_rank_inside_bucket() {
        let counts = [2, 0, 3, 1];
        assert_eq!(locate_in_histogram(&counts, 0), Some((0, 0)));
        assert_eq!(locate_in_histogram(&counts, 2), Some((2, 0)));
        assert_eq!(locate_in_histogram(&counts, 4), Some((2, 2)));
        assert_eq!(locate_in_histogram(&counts, 5), Some((3, 0)));
        assert_eq!(locate_in_histogram(&counts, 6), None);
    }
}

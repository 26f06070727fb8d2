//! Step 1: each user's capped, time-ordered history of engaged events, and the inverted
//! index from a video to the events that hold it.
//!
//! Reads the dense columns of `interactions.parquet` (already loaded); writes nothing.
//! Both structures are flat arrays with offsets (CSR), so memory is a few words per kept
//! event whatever the number of users or videos. The layout serves the counting step,
//! whose cost is about one cache miss per posting: an event carries its user and time next
//! to its video (the struct's padding has room for the user), so finding a posting's user,
//! its window and the videos to count all read the same few cache lines.

use common::Split;
use rayon::slice::ParallelSliceMut;

/// One kept event of a user's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Epoch milliseconds.
    pub ts_ms: i64,
    pub video: u32,
    pub user: u32,
}

/// Capped histories (rows = users) and their inverted index (rows = videos).
#[derive(Debug, Clone, Default)]
pub struct Histories {
    /// User `u`'s events are `events[user_start[u]..user_start[u + 1]]`, oldest first;
    /// equal timestamps keep the input's row order.
    pub user_start: Vec<usize>,
    pub events: Vec<Event>,
    /// Video `v`'s postings are `postings[video_start[v]..video_start[v + 1]]`: indices
    /// into `events`, ascending, hence grouped by user.
    pub video_start: Vec<usize>,
    pub postings: Vec<usize>,
    /// c_i: distinct users whose capped history holds video `i`.
    pub video_users: Vec<u32>,
    /// Rows that passed the split and engagement filters, before the cap.
    pub n_selected_rows: u64,
}

impl Histories {
    /// Number of users (rows of the user index).
    pub fn n_users(&self) -> usize {
        self.user_start.len().saturating_sub(1)
    }

    /// Number of videos (rows of the inverted index).
    pub fn n_videos(&self) -> usize {
        self.video_start.len().saturating_sub(1)
    }

    /// Number of events kept after the cap.
    pub fn n_events(&self) -> usize {
        self.events.len()
    }

    /// Users with at least one kept event.
    pub fn n_active_users(&self) -> usize {
        self.user_start.windows(2).filter(|w| w[1] > w[0]).count()
    }

    /// The capped history of one user.
    pub fn events_of(&self, user: u32) -> &[Event] {
        let u = user as usize;
        &self.events[self.user_start[u]..self.user_start[u + 1]]
    }

    /// The postings (event indices) of one video.
    pub fn postings_of(&self, video: u32) -> &[usize] {
        let v = video as usize;
        &self.postings[self.video_start[v]..self.video_start[v + 1]]
    }
}

/// The columns of the interaction log that histories are built from, in file order.
pub struct EventLog<'a> {
    pub user_idx: &'a [u32],
    pub video_idx: &'a [u32],
    pub ts_ms: &'a [i64],
    pub split: &'a [Split],
    /// Per-row engagement label (1 engaged, 0 not, -1 signal missing); `None` = all engaged.
    pub engaged: Option<&'a [i8]>,
    pub n_users: usize,
    pub n_videos: usize,
}

/// Builds each user's most recent `max_history` engaged events of the given splits.
pub fn build(log: &EventLog, splits: &[Split], max_history: usize) -> Histories {
    let n_rows = log.user_idx.len();
    let mut rows: Vec<usize> = (0..n_rows)
        .filter(|&r| splits.contains(&log.split[r]))
        .filter(|&r| log.engaged.is_none_or(|labels| labels[r] == 1))
        .collect();
    let n_selected_rows = rows.len() as u64;

    // The contract sorts the log by (user, ts, video) already; sorting is only needed for a
    // log written otherwise. The row number keeps equal timestamps in input order.
    let key = |r: usize| (log.user_idx[r], log.ts_ms[r]);
    if !rows.windows(2).all(|w| key(w[0]) <= key(w[1])) {
        rows.par_sort_unstable_by_key(|&r| (log.user_idx[r], log.ts_ms[r], r));
    }

    // Keep the tail of each user's run of rows.
    let mut events = Vec::with_capacity(rows.len());
    let mut counts = vec![0usize; log.n_users];
    let mut start = 0;
    while start < rows.len() {
        let user = log.user_idx[rows[start]];
        let mut end = start + 1;
        while end < rows.len() && log.user_idx[rows[end]] == user {
            end += 1;
        }
        let first = start.max(end.saturating_sub(max_history));
        events.extend(rows[first..end].iter().map(|&r| Event {
            ts_ms: log.ts_ms[r],
            video: log.video_idx[r],
            user,
        }));
        counts[user as usize] = end - first;
        start = end;
    }
    drop(rows);

    let user_start = offsets(&counts);
    let (video_start, postings) = invert(&events, log.n_videos);
    let video_users = (0..log.n_videos)
        .map(|v| {
            let postings = &postings[video_start[v]..video_start[v + 1]];
            count_runs(postings.iter().map(|&p| events[p].user))
        })
        .collect();

    Histories {
        user_start,
        events,
        video_start,
        postings,
        video_users,
        n_selected_rows,
    }
}

/// Prefix sums: `offsets[k]..offsets[k + 1]` is bucket `k`.
fn offsets(counts: &[usize]) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(counts.len() + 1);
    let mut total = 0;
    offsets.push(0);
    for &count in counts {
        total += count;
        offsets.push(total);
    }
    offsets
}

/// Counting sort of the event indices by video; each bucket stays ascending.
fn invert(events: &[Event], n_videos: usize) -> (Vec<usize>, Vec<usize>) {
    let mut counts = vec![0usize; n_videos];
    for event in events {
        counts[event.video as usize] += 1;
    }
    let start = offsets(&counts);
    let mut next = start[..n_videos].to_vec();
    let mut postings = vec![0usize; events.len()];
    for (index, event) in events.iter().enumerate() {
        let slot = &mut next[event.video as usize];
        postings[*slot] = index;
        *slot += 1;
    }
    (start, postings)
}

/// Number of runs of equal values (distinct values of a grouped sequence).
fn count_runs(values: impl Iterator<Item = u32>) -> u32 {
    let mut runs = 0;
    let mut last = None;
    for value in values {
        if last != Some(value) {
            runs += 1;
            last = Some(value);
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log<'a>(
        user_idx: &'a [u32],
        video_idx: &'a [u32],
        ts_ms: &'a [i64],
        split: &'a [Split],
    ) -> EventLog<'a> {
        EventLog {
            user_idx,
            video_idx,
            ts_ms,
            split,
            engaged: None,
            n_users: 3,
            n_videos: 4,
        }
    }

    fn videos(events: &[Event]) -> Vec<u32> {
        events.iter().map(|e| e.video).collect()
    }

    #[test]
    fn keeps_the_most_recent_events_per_user() {
        let split = [Split::Train; 5];
        let events = log(&[0, 0, 0, 2, 2], &[0, 1, 2, 3, 3], &[1, 2, 3, 5, 6], &split);
        let h = build(&events, &split[..1], 2);
        assert_eq!(h.user_start, vec![0, 2, 2, 4]);
        assert_eq!(videos(&h.events), vec![1, 2, 3, 3]);
        assert_eq!(h.video_users, vec![0, 1, 1, 1]);
        assert_eq!(h.postings_of(3), &[2, 3]);
        let last = Event {
            ts_ms: 6,
            video: 3,
            user: 2,
        };
        assert_eq!(h.events_of(2)[1], last);
        assert_eq!(h.n_active_users(), 2);
    }

    #[test]
    fn unsorted_log_is_ordered_by_user_then_time_then_row() {
        let split = [Split::Train; 4];
        let events = log(&[1, 0, 1, 1], &[0, 1, 2, 3], &[9, 4, 2, 9], &split);
        let h = build(&events, &split[..1], 10);
        assert_eq!(videos(&h.events), vec![1, 2, 0, 3]);
        let times: Vec<i64> = h.events.iter().map(|e| e.ts_ms).collect();
        assert_eq!(times, vec![4, 2, 9, 9]);
    }

    #[test]
    fn filters_splits_and_unengaged_rows_before_the_cap() {
        let split = [Split::Train, Split::Train, Split::Test, Split::Train];
        let labels = [1i8, -1, 1, 0];
        let mut events = log(&[0, 0, 0, 0], &[0, 1, 2, 3], &[1, 2, 3, 4], &split);
        events.engaged = Some(&labels);
        let h = build(&events, &[Split::Train], 1);
        assert_eq!(videos(&h.events), vec![0]);
        assert_eq!(h.n_selected_rows, 1);
    }
}

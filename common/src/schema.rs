//! Column names and file names of the data contract that every stage reads and writes.
//!
//! Indices (`*_idx`) are dense `u32` assigned by `stage-ingest`; ids (`*_id`) are the source's
//! original identifiers, kept as Int64 when every id in the source is a canonical 64-bit
//! integer and as Utf8 otherwise.

/// Dense user index (UInt32).
pub const USER_IDX: &str = "user_idx";
/// Dense video index (UInt32).
pub const VIDEO_IDX: &str = "video_idx";
/// Original user id (Int64 or Utf8).
pub const USER_ID: &str = "user_id";
/// Original video id (Int64 or Utf8).
pub const VIDEO_ID: &str = "video_id";
/// Event time: Timestamp(ms, UTC).
pub const TS: &str = "ts";
/// Which split a row is in: Utf8 "train", "valid" or "test".
pub const SPLIT: &str = "split";

/// Source video of a candidate pair (dense index and original id).
pub const SOURCE_IDX: &str = "source_idx";
pub const SOURCE_ID: &str = "source_id";
/// Candidate video of a pair (dense index and original id).
pub const CANDIDATE_IDX: &str = "candidate_idx";
pub const CANDIDATE_ID: &str = "candidate_id";

/// Feedback signals an interaction may carry. Booleans are stored as Boolean, quantities
/// as Float32; every signal is nullable because no source has all of them.
pub const BOOL_SIGNALS: &[&str] = &[
    "click",
    "long_view",
    "like",
    "comment",
    "forward",
    "follow",
    "dislike",
];
pub const NUMERIC_SIGNALS: &[&str] = &["play_time_ms", "duration_ms", "rating"];

/// True when `name` is one of the feedback signals of the contract.
pub fn is_signal(name: &str) -> bool {
    BOOL_SIGNALS.contains(&name) || NUMERIC_SIGNALS.contains(&name)
}

/// The three time-ordered splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Split {
    Train = 0,
    Valid = 1,
    Test = 2,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Valid, Split::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Split> {
        Split::ALL.into_iter().find(|split| split.as_str() == text)
    }
}

/// File names inside a dataset's output folder (`data/<dataset>/`).
pub mod files {
    pub const INTERACTIONS: &str = "interactions.parquet";
    pub const USERS: &str = "users.parquet";
    pub const VIDEOS: &str = "videos.parquet";
    pub const CANDIDATES: &str = "candidates.parquet";
    pub const ROUTING: &str = "routing.parquet";
    pub const RELATED: &str = "related.parquet";
    pub const WEIGHTS: &str = "weights.parquet";
}

/// Descriptive entity columns that are not model features (free text, one value per row).
pub const NON_FEATURE_COLUMNS: &[&str] = &["title"];

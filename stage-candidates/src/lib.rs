//! `stage-candidates`: item-item co-visitation candidates for every video.
//!
//! Reads `interactions.parquet` (`user_idx` UInt32, `video_idx` UInt32, `ts`
//! Timestamp(ms), `split` Utf8, and the signal of the `engaged` rule if one is set) and
//! `videos.parquet` (`video_idx`, `video_id`); writes `candidates.parquet`, sorted by
//! (`source_idx`, `rank`): `source_idx` UInt32, `source_id` (Int64 or Utf8, as in
//! videos.parquet), `candidate_idx` UInt32, `candidate_id`, `co_count` UInt32, `score`
//! Float32, `rank` UInt32 (1 = best).
//!
//! Definitions. A user's *capped history* is their `max_history` most recent events of the
//! chosen `splits` that satisfy the `engaged` rule (time order, equal times in file order).
//! - c_i = number of distinct users whose capped history holds video i;
//! - c_ij = number of distinct users whose capped history holds an event of i and an event
//!   of j at most `window_hours` apart (any two events when the window is 0), i != j;
//! - score = c_ij / sqrt(c_i c_j) ("cosine") or c_ij / (c_i c_j) ("product"), in f64.
//!
//! Each source keeps its `top_n` best candidates with c_ij >= `min_co_count`, ordered by
//! score, then higher c_ij, then lower `candidate_idx`. A video with no such candidate has
//! no rows. c_ij is symmetric; the lists are not, since each is cut at its own top N.
//!
//! `--anchor-compat` (or `anchor_compat = true`) reproduces `shared/bench/anchor_cooc.py`:
//! no window, cosine, min co-count 1, 200 most recent train events, top 50, ties by
//! original video id. Its lists equal the anchor's row for row when the anchor is given the
//! same train rows (`make bench` checks it on the anchors' 5M synthetic log: 1,000,000 rows,
//! identical). They can differ where a user's 200-event cap cuts between events with the
//! same timestamp, or through a repeated (user, video, time) row: ingest orders equal times
//! by video and merges repeats, where the anchor orders them by input row and counts each.
//! On MovieLens 100K (whole-second ratings, many ties) and the KuaiRand subset they differ.
//!
//! Scale. Memory is bounded whatever the popularity of a video or the activity of a user:
//! the log is read in projected batches, each user's history is capped at `max_history`
//! events (so one source visits at most c_i x `max_history` events, and the whole run at
//! most sum over users of min(events, cap)^2), counters are one dense slot per video per
//! thread, a source keeps only its `top_n` best, and lists are written block by block
//! (`BLOCK_SOURCES` sources) into row groups of at most 2^20 rows. Counts are u32 (a count
//! is at most the number of users, itself a u32 index); work totals are u64.
//!
//! Not done here: no popularity damping beyond the normalisation, no time decay inside the
//! window, no cap on a single user's weight other than counting each user once per pair.

pub mod args;
pub mod config;
pub mod covisit;
pub mod history;
pub mod write;

use std::time::Instant;

use anyhow::Result;
use common::schema::{files, VIDEO_ID, VIDEO_IDX};
use common::{AtomicParquetWriter, IdColumn, Interactions, ParquetInput, Summary};

pub use config::Config;

use crate::covisit::CountParams;
use crate::history::EventLog;

/// Stage name in logs, summaries and file metadata.
pub const STAGE: &str = "stage-candidates";

/// Sources per block: bounds the lists held in memory before they are written
/// (about `BLOCK_SOURCES * top_n * 16` bytes).
const BLOCK_SOURCES: u32 = 16_384;

/// Builds the candidate lists of every video and writes `candidates.parquet`.
pub fn run(config: &Config) -> Result<Summary> {
    let started = Instant::now();
    let dir = &config.dir;
    tracing::info!("{STAGE}: settings {}", config.to_json());

    // 1. Read the ids and the log; only the engagement signal is loaded beyond the keys.
    let videos_path = dir.join(files::VIDEOS);
    let video_ids = IdColumn::read(&ParquetInput::open(&videos_path)?, VIDEO_IDX, VIDEO_ID)?;
    let signals: Vec<&str> = config
        .engaged
        .iter()
        .map(|rule| rule.signal.as_str())
        .collect();
    let log = Interactions::load(dir, &signals)?;
    if log.is_empty() {
        return Err(common::Error::Empty {
            path: log.path.clone(),
            what: "no interactions".into(),
        }
        .into());
    }
    let load_s = started.elapsed().as_secs_f64();
    tracing::info!(
        "read {} interactions of {} users and {} videos in {load_s:.1}s",
        log.len(),
        log.n_users,
        log.n_videos
    );

    // 2. Capped histories and the inverted index; the full log is no longer needed after.
    let labels = config.engaged.as_ref().map(|rule| log.labels(rule));
    let events = EventLog {
        user_idx: &log.user_idx,
        video_idx: &log.video_idx,
        ts_ms: &log.ts_ms,
        split: &log.split,
        engaged: labels.as_deref(),
        n_users: log.n_users as usize,
        n_videos: log.n_videos as usize,
    };
    let histories = history::build(&events, &config.splits, config.max_history);
    let (n_log_rows, log_path) = (log.len(), log.path.clone());
    drop(labels);
    drop(log);
    if histories.n_events() == 0 {
        let splits: Vec<&str> = config.splits.iter().map(|s| s.as_str()).collect();
        let rule = config
            .engaged
            .as_ref()
            .map_or("every row counts".to_string(), config::describe_rule);
        return Err(common::Error::Empty {
            path: log_path,
            what: format!("no rows of splits {splits:?} are engaged ({rule}); nothing to count"),
        }
        .into());
    }
    tracing::info!(
        "histories: {} of {} selected events kept for {} users (cap {})",
        histories.n_events(),
        histories.n_selected_rows,
        histories.n_active_users(),
        config.max_history
    );

    // 3. Count, rank and write block by block.
    let id_rank = config.anchor_compat.then(|| covisit::id_ranks(&video_ids));
    let params = CountParams {
        window_ms: config.window_ms,
        normalisation: config.normalisation,
        min_co_count: config.min_co_count,
        top_n: config.top_n,
        tie_break: config.tie_break,
        id_rank: id_rank.as_deref(),
    };
    let out_path = dir.join(files::CANDIDATES);
    // The output folder is left out of the files' metadata (the summary still has it), so
    // the same inputs and seed give the same bytes wherever the dataset folder lies, as
    // every other stage's outputs do.
    let mut in_files = config.to_json();
    if let Some(map) = in_files.as_object_mut() {
        map.remove("dir");
    }
    let meta = common::stage_meta(STAGE, env!("CARGO_PKG_VERSION"), config.seed, in_files);
    let mut writer =
        AtomicParquetWriter::create(&out_path, write::schema(video_ids.data_type()), &meta)?;
    let n_videos = histories.n_videos() as u32;
    let bar = common::progress::bar(n_videos as u64, "sources");
    let count_started = Instant::now();
    let mut totals = Totals::default();
    let mut first = 0u32;
    while first < n_videos {
        let last = first.saturating_add(BLOCK_SOURCES).min(n_videos);
        let lists = covisit::block_lists(&histories, first..last, &params);
        totals.add(&lists);
        totals.rows += write::write_block(&mut writer, &video_ids, first, &lists)?;
        bar.inc((last - first) as u64);
        tracing::info!(
            "sources {last}/{n_videos}: {} pairs written, {} triples visited",
            totals.rows,
            totals.triples
        );
        first = last;
    }
    bar.finish_and_clear();
    let rows = writer.finish()?;
    if rows == 0 {
        tracing::warn!(
            "no pair reaches min_co_count = {}: candidates.parquet is empty (lower min_co_count \
             or widen window_hours)",
            config.min_co_count
        );
    }
    let count_s = count_started.elapsed().as_secs_f64();

    // 4. Summary.
    let mut summary = Summary::new(STAGE, config.seed, config.to_json());
    summary.input(&log_path, n_log_rows as u64);
    summary.input(&videos_path, video_ids.len() as u64);
    summary.output(&out_path, rows);
    summary.metric("n_selected_rows", histories.n_selected_rows);
    summary.metric("n_history_events", histories.n_events());
    summary.metric("n_users_with_history", histories.n_active_users());
    summary.metric(
        "n_videos_in_history",
        histories.video_users.iter().filter(|&&c| c > 0).count(),
    );
    summary.metric("sources_with_candidates", totals.sources_with_candidates);
    summary.metric("sources_with_covisits", totals.sources_with_covisits);
    summary.metric("sources_below_min_co_count", totals.sources_below_min);
    summary.metric("pairs_written", rows);
    let mean = rows as f64 / totals.sources_with_candidates.max(1) as f64;
    summary.metric("mean_list_length", (mean * 1000.0).round() / 1000.0);
    summary.metric("triples_visited", totals.triples);
    summary.metric("load_s", (load_s * 1000.0).round() / 1000.0);
    summary.metric("count_s", (count_s * 1000.0).round() / 1000.0);
    Ok(summary.finish(started))
}

/// Counters over all blocks, for the summary.
#[derive(Debug, Default)]
struct Totals {
    rows: u64,
    triples: u64,
    sources_with_candidates: u64,
    sources_with_covisits: u64,
    /// Sources with co-visits of which none reaches `min_co_count`.
    sources_below_min: u64,
}

impl Totals {
    fn add(&mut self, lists: &[covisit::SourceList]) {
        for list in lists {
            self.triples += list.triples;
            let has_list = !list.candidates.is_empty();
            let has_covisits = list.n_partners > 0;
            self.sources_with_candidates += has_list as u64;
            self.sources_with_covisits += has_covisits as u64;
            self.sources_below_min += (has_covisits && !has_list) as u64;
        }
    }
}

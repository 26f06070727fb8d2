//! `stage-ingest`: reads a raw interaction log and writes the canonical tables of the
//! relvid data contract into `--dir`.
//!
//! # Outputs
//! - `users.parquet`: `user_idx` UInt32 (0..n in row order), `user_id` Int64 or Utf8
//!   (original), the source's user features, `n_train_interactions` Float32.
//! - `videos.parquet`: `video_idx` UInt32, `video_id` Int64 or Utf8, `title` Utf8 (MovieLens
//!   only; not a feature), the source's video features (`duration_ms` Float32, `category`
//!   Utf8, ...), `n_train_interactions` Float32.
//! - `interactions.parquet`, written last and renamed into place last (make's marker of
//!   all three): `user_idx` UInt32, `video_idx` UInt32, `ts` Timestamp(ms, "UTC"), `split`
//!   Utf8, then every signal, null where the source lacks it: Boolean `click, long_view,
//!   like, comment, forward, follow, dislike`; Float32 `play_time_ms, duration_ms, rating`.
//!   Rows are sorted by (user_idx, ts, video_idx).
//!
//! # Ids and indices
//! An id column whose every kept value is a canonical 64-bit integer (no sign, padding or
//! leading zero) is stored as Int64, else as Utf8; ids are read from text as text, never
//! through a float. Users and videos that have at least one kept row get dense indices in
//! sorted order of their original id (numeric for Int64, bytewise for Utf8). When a source
//! has several files, an id column that holds only integers in one file and text in
//! another is an error naming both files. Nothing is sized by the largest id value.
//!
//! # Duplicates
//! Rows with the same (user, video, ts) are one event recorded twice: they are merged
//! into one row (Boolean signals OR, numeric signals max, nulls ignored) and counted as
//! `duplicates_merged`. The same (user, video) pair at different times stays as separate
//! events: co-visitation counts every event, and ALS aggregates per pair itself.
//!
//! # Validation
//! - a missing required column: error naming the file and the column;
//! - a null or empty user or video id: error naming the file, the column and the row;
//! - an unparsable number, flag or timestamp: error naming the file, column and row;
//! - a NaN, infinite or negative `play_time_ms`, a NaN, infinite or negative
//!   `duration_ms`, a NaN `rating`: the row is dropped (`rows_dropped_bad_signal`);
//! - a timestamp before 1990-01-01 or more than one day after now: the row is dropped
//!   (`rows_dropped_bad_timestamp`); `rows_dropped` gives the count of every reason;
//! - a log with no rows (header only, an empty file, a Parquet file without row groups),
//!   or whose every row was dropped: error naming the file.
//!
//! # Split
//! By time, at quantiles of all events' timestamps: see [`split`]. Every valid row is at or
//! after every train row, every test row at or after every valid row; ties at a cut go to
//! the later split.
//!
//! # Sources (`[dataset] format`)
//! - `kuairand`: see [`kuairand`].
//! - `movielens`: see [`movielens`].
//! - `generic`: a Parquet or CSV file (Parquet is recognised by its `PAR1` magic bytes)
//!   with a column mapping, see [`generic`]. Example:
//!
//!   ```toml
//!   [dataset]
//!   name = "shop"
//!   format = "generic"
//!
//!   [dataset.columns]
//!   user = "customer"          # id column: integers or text
//!   video = "item"             # id column: integers or text
//!   timestamp = "event_time"   # a Parquet Timestamp, or numbers/text in timestamp_unit
//!   timestamp_unit = "s"       # "s" or "ms"
//!   like = "liked"             # signals: click long_view like comment forward follow
//!   play_time_ms = "watch_ms"  #   dislike (0/1 or Boolean), play_time_ms duration_ms
//!   rating = "stars"           #   rating (numbers); unmapped signals are null
//!   ```
//! - `synthetic`: the built-in generator, see [`synthetic`]; settings (all optional):
//!
//!   ```toml
//!   [dataset.synthetic]
//!   rows = 200000         # about this many interactions (--rows overrides)
//!   categories = 20       # interest clusters
//!   weeks = 4             # weeks of activity, retention decided week by week
//!   zipf_exponent = 1.0   # video popularity ~ rank^-s
//!   rows_per_user = 40    # users = rows / rows_per_user (at least 20)
//!   rows_per_video = 100  # videos = rows / rows_per_video (at least 50)
//!   ```
//!
//! # Memory
//! A file source is read in projected record batches (only the mapped columns), but the
//! whole log is held in memory until it is sorted and split: about 45 to 65 bytes per raw
//! row (4.85M generic Parquet rows peaked at 225 MiB; a 20M-row log needs about 1.3 GB),
//! well inside an 8 GiB machine but linear in the log. The outputs are written in row
//! groups of at most 2^20 rows, so later stages read them one group at a time.
//!
//! # Environment
//! `RELVID_THREADS` sets `--threads`; the tests read `RELVID_SHARED_DATA` (the folder of
//! the real logs) and skip the real-data checks without it.
//!
//! # Not done
//! A file source is held in memory to be sorted (about 65 bytes per raw row: the 5M-row
//! test log peaked at 320 MB), so the full KuaiRand-27K log (~320M rows) needs a machine
//! with some 20 GB; MovieLens 1M/10M `.dat` files (`::`-separated) are not read;
//! KuaiRand's `video_features_statistic_*` files are ignored; text is parsed on one
//! thread.

pub mod args;
pub mod canonical;
pub mod config;
pub mod events;
pub mod fields;
pub mod generic;
pub mod intern;
pub mod kuairand;
pub mod log;
pub mod movielens;
pub mod output;
pub mod report;
pub mod side;
pub mod source;
pub mod split;
pub mod synthetic;
pub mod text;
pub mod write;

use std::time::Instant;

use anyhow::Result;
use common::Summary;

use crate::config::{Config, Source};
use crate::log::TimeWindow;

/// Stage name in summaries, errors and file metadata.
pub const STAGE: &str = "stage-ingest";

/// Runs the stage: reads (or generates) the log and writes the three tables.
pub fn run(config: &Config) -> Result<Summary> {
    let started = Instant::now();
    let effective = config.to_json();
    tracing::info!("{STAGE} {}", effective);
    // The output folder is left out of the file metadata: where a file is written must
    // not change its bytes.
    let mut in_files = effective.clone();
    if let Some(map) = in_files.as_object_mut() {
        map.remove("dir");
    }
    let meta = common::stage_meta(STAGE, env!("CARGO_PKG_VERSION"), config.seed, in_files);
    let mut summary = Summary::new(STAGE, config.seed, effective);

    let window = TimeWindow::now();
    let (report, written) = match &config.source {
        Source::Synthetic { settings } => {
            synthetic::generate(settings, &config.split, config.seed, &config.dir, &meta)?
        }
        file_source => {
            let data = match file_source {
                Source::Kuairand { raw } => kuairand::read(raw, config.row_limit, window)?,
                Source::Movielens { raw } => movielens::read(raw, config.row_limit, window)?,
                Source::Generic { raw, columns } => {
                    generic::read(raw, columns, config.row_limit, window)?
                }
                Source::Synthetic { .. } => unreachable!("matched above"),
            };
            output::ingest(data, &config.split, &config.dir, &meta)?
        }
    };

    for file in written.inputs {
        summary.inputs.push(file);
    }
    for file in written.outputs {
        summary.outputs.push(file);
    }
    tracing::info!(
        "{} rows read, {} written ({} train, {} valid, {} test), {} users, {} videos",
        report.rows_read,
        report.rows_written,
        report.rows_train,
        report.rows_valid,
        report.rows_test,
        report.n_users,
        report.n_videos
    );
    summary.metrics = report.into_metrics();
    Ok(summary.finish(started))
}

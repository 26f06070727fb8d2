//! Command line of `stage-eval`: clap arguments and their conversion into a checked
//! `Config` (the `[eval]` section, `[merge] top_n` and the objectives, flags laid over).

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use common::cli::CommonArgs;
use common::Split;

use crate::config::{self, Config};

/// Offline evaluation of every related-video ranking on the test split.
///
/// Reads DIR/interactions.parquet (user_idx, video_idx, ts, split and the signals of the
/// objectives' labels), DIR/users.parquet and DIR/videos.parquet (row counts),
/// DIR/candidates.parquet, DIR/related.parquet, DIR/weights.parquet and, per objective,
/// DIR/als_<objective>.parquet and DIR/twotower_<objective>.parquet. Writes
/// DIR/eval.parquet (ranking, objective, metric, k, value, support, pairs) and
/// DIR/report.md (with --split valid: DIR/eval_valid.parquet and DIR/report_valid.md).
///
/// Ground truth of a source video i: the videos j != i that a user who engaged i in the
/// test split engaged strictly after i and at most window_hours later, also in the test
/// split; per objective, those of j's rows that carry the objective's label. Rankings:
/// popularity, covisitation, als_<obj>, twotower_<obj>, als_mean, twotower_mean,
/// merged_equal, merged_manual, full (the merge's score, [merge] settings) and
/// full_previous (the same weights under the first merge's rule: max of the two
/// percentiles, raw dislike similarity, no co-visitation term), full_<rule> (the other
/// combine rules), and full with one part of its formula left out (full_without_linear,
/// full_without_nonlinear, full_without_negative, full_without_covisitation,
/// full_only_<obj>), each cut to [merge] top_n.
/// Settings come from the [eval] section:
///
///   k = [10, 20, 50]          cut-offs of the @K metrics, each >= 1
///   window_hours = 24.0       ground-truth window after the source, >= 0 (0 = none)
///   max_sources = 0           evaluate at most this many sources (0 = all)
#[derive(Debug, Parser)]
#[command(name = "stage-eval", version, about, long_about, verbatim_doc_comment)]
pub struct Args {
    /// Dataset configuration (TOML)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Dataset folder: inputs are read from it and the outputs written to it
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// Override [eval] k: comma-separated cut-offs, e.g. 10,20,50
    #[arg(
        long,
        value_name = "K,...",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub k: Option<Vec<i64>>,

    /// Override [eval] window_hours
    #[arg(long, value_name = "HOURS", allow_negative_numbers = true)]
    pub window_hours: Option<f64>,

    /// Override [eval] max_sources
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_sources: Option<i64>,

    /// Split whose rows are the ground truth: test (writes eval.parquet, report.md) or
    /// valid (writes eval_valid.parquet, report_valid.md; for choosing settings without
    /// touching the test split)
    #[arg(long, value_name = "SPLIT", default_value = "test")]
    pub split: String,

    #[command(flatten)]
    pub common: CommonArgs,
}

impl Args {
    /// Loads the configuration, lays the flags over `[eval]` and checks every value.
    pub fn into_config(self) -> Result<Config> {
        let (pipeline, mut section, merge) = config::load(&self.config)?;
        if let Some(k) = self.k {
            section.k = k;
        }
        section.window_hours = self.window_hours.unwrap_or(section.window_hours);
        section.max_sources = self.max_sources.unwrap_or(section.max_sources);
        let split = Split::parse(&self.split).ok_or_else(|| {
            common::error::param_error("split", &self.split, "must be valid or test")
        })?;
        Ok(Config::new(
            &section,
            &merge,
            &pipeline.objectives,
            self.dir,
            self.common.seed,
            split,
        )?)
    }
}

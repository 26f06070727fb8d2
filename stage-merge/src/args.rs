//! Command line of `stage-merge`: clap arguments and their conversion into a checked
//! `Config` (the `[merge]` section and the objectives of the TOML, with flags laid over).

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use common::cli::CommonArgs;
use common::PipelineConfig;

use crate::config::{Config, MergeSection};

/// Merge the per-objective similarities into one ranked related-video list per video.
///
/// Reads DIR/candidates.parquet, DIR/routing.parquet (user_idx, ts, split, p_<objective>;
/// train and valid rows) and, for every configured objective, DIR/als_<objective>.parquet
/// (linear_score) and DIR/twotower_<objective>.parquet (nonlinear_score), one row per
/// candidate row in the same order. Writes DIR/weights.parquet (the learned objective weights), then
/// DIR/related.parquet (source_idx, source_id, rank, candidate_idx, candidate_id, score,
/// s_<objective>, contrib_<objective>, s_covisitation, contrib_covisitation), sorted by
/// (source_idx, rank); a row's contributions add up to its score.
///
/// score = sum_k a_k w_k t_k + f_0 c. s_k blends the ALS and two-tower percentiles of the
/// pair (or takes the larger); t_k = s_k, except for a negative objective under
/// negative_similarity = "excess": up to r, the mean s_j of the positive objectives, its
/// similarity counts as relatedness, above r it is penalised (t_k = max(0, s_k - r) -
/// min(s_k, r)). c is the percentile of candidates.parquet's co-visitation score and f_0 =
/// covisitation_weight x (sum of the positive a_k w_k). a_k is the objective's manual
/// weight, w_k its learned weight from a next-week retention model (1 when the log cannot
/// support one). Settings come from the [merge] section:
///
///   top_n = 50                related videos kept per source
///   l2 = 1.0                  L2 penalty of the retention model (> 0)
///   holdout_fraction = 0.2    share of users held out for the AUC, in [0, 1)
///   min_user_weeks = 20       fewer labelled user-weeks: w_k = 1
///   min_class_weeks = 10      fewer user-weeks of the rarer label: w_k = 1
///   min_auc = 0.55            lower held-out AUC (or not above chance): w_k = 1
///   combine = "max"           s_k: "max" of the two percentiles, "calibrated_max" (max of
///                             probabilities fitted on the valid split) or "blend"
///   calibration_window_hours = 24.0  calibrated_max: "engaged after" window, >= 0
///   nonlinear_share = 1.0     weight of the two-tower percentile in the blend, [0, 1]
///   covisitation_weight = 1.0 co-visitation factor / sum of positive a_k w_k, >= 0
///   negative_similarity = "excess"  negative objectives: "excess" over r, or "raw"
#[derive(Debug, Parser)]
#[command(name = "stage-merge", version, about, long_about, verbatim_doc_comment)]
pub struct Args {
    /// Dataset configuration (TOML)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Dataset folder: inputs are read from it and the outputs written to it
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// Override [merge] top_n: related videos kept per source
    #[arg(long, value_name = "N")]
    pub top_n: Option<i64>,

    #[command(flatten)]
    pub common: CommonArgs,
}

impl Args {
    /// Loads the configuration, lays the flags over `[merge]` and checks every value.
    pub fn into_config(self) -> Result<Config> {
        let pipeline = PipelineConfig::load(&self.config)?;
        let mut section: MergeSection = pipeline.section("merge")?;
        section.top_n = self.top_n.unwrap_or(section.top_n);
        Ok(Config::new(
            &section,
            &pipeline.objectives,
            self.dir,
            self.common.seed,
        )?)
    }
}

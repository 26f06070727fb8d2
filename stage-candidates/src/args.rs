//! Command line of `stage-candidates`: clap arguments and their conversion into a checked
//! `Config` (the `[candidates]` section of the TOML, with the flags laid over it).

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use common::cli::CommonArgs;
use common::PipelineConfig;

use crate::config::{CandidatesSection, Config, ANCHOR_MAX_HISTORY, ANCHOR_TOP_N};

/// Item-item co-visitation candidates.
///
/// Reads DIR/interactions.parquet (user_idx, video_idx, ts, split and the `engaged`
/// signal) and DIR/videos.parquet (video_id); writes DIR/candidates.parquet with columns
/// source_idx, source_id, candidate_idx, candidate_id, co_count, score, rank, sorted by
/// (source_idx, rank). Settings come from the [candidates] section of the config:
///
///   window_hours = 24.0       co-visit window; 0 = any two events of the capped history
///   normalisation = "cosine"  c_ij / sqrt(c_i c_j); "product" = c_ij / (c_i c_j)
///   min_co_count = 2          pairs seen by fewer distinct users are dropped
///   max_history = 200         each user's most recent engaged events used
///   top_n = 200               candidates kept per source
///   engaged = "click"         optional label rule; unset = every row counts
///   splits = ["train"]        splits whose rows are used
///   anchor_compat = false     same as --anchor-compat
#[derive(Debug, Parser)]
#[command(
    name = "stage-candidates",
    version,
    about,
    long_about,
    verbatim_doc_comment
)]
pub struct Args {
    /// Dataset configuration (TOML)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Dataset folder: inputs are read from it and candidates.parquet written to it
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// Basket co-occurrence as the common scipy/polars recipe computes it (for side-by-side
    /// benchmarks): no window, cosine, no minimum co-count, each user's 200 most recent
    /// events as one basket, top 50, ties by original video id
    #[arg(long, conflicts_with_all = ["top_n", "window_hours", "min_co_count"])]
    pub anchor_compat: bool,

    /// Override [candidates] top_n: candidates kept per source video
    #[arg(long, value_name = "N")]
    pub top_n: Option<i64>,

    /// Override [candidates] window_hours (0 = no window)
    #[arg(long, value_name = "HOURS")]
    pub window_hours: Option<f64>,

    /// Override [candidates] min_co_count
    #[arg(long, value_name = "N")]
    pub min_co_count: Option<i64>,

    #[command(flatten)]
    pub common: CommonArgs,
}

impl Args {
    /// Loads the configuration, lays the flags over `[candidates]` and checks every value.
    pub fn into_config(self) -> Result<Config> {
        let pipeline = PipelineConfig::load(&self.config)?;
        let mut section: CandidatesSection = pipeline.section("candidates")?;
        section.top_n = self.top_n.unwrap_or(section.top_n);
        section.window_hours = self.window_hours.unwrap_or(section.window_hours);
        section.min_co_count = self.min_co_count.unwrap_or(section.min_co_count);
        section.anchor_compat |= self.anchor_compat;

        let config = Config::new(&section, self.dir, self.common.seed)?;
        if config.anchor_compat {
            for ignored in anchor_overrides(&section) {
                tracing::warn!("anchor-compat mode ignores [candidates] {ignored}");
            }
        }
        Ok(config)
    }
}

/// The section's settings that anchor-compat mode replaces by the anchor's. A value equal
/// to the key's default is taken as unset, so a plain config draws no warning.
fn anchor_overrides(section: &CandidatesSection) -> Vec<String> {
    let defaults = CandidatesSection::default();
    let mut ignored = Vec::new();
    if section.window_hours != 0.0 && section.window_hours != defaults.window_hours {
        ignored.push(format!(
            "window_hours = {} (uses no window)",
            section.window_hours
        ));
    }
    if section.normalisation != "cosine" {
        ignored.push(format!(
            "normalisation = \"{}\" (uses cosine)",
            section.normalisation
        ));
    }
    if section.min_co_count != 1 && section.min_co_count != defaults.min_co_count {
        ignored.push(format!("min_co_count = {} (uses 1)", section.min_co_count));
    }
    if section.max_history != ANCHOR_MAX_HISTORY as i64 {
        ignored.push(format!(
            "max_history = {} (uses {ANCHOR_MAX_HISTORY})",
            section.max_history
        ));
    }
    if section.top_n != ANCHOR_TOP_N as i64 && section.top_n != defaults.top_n {
        ignored.push(format!("top_n = {} (uses {ANCHOR_TOP_N})", section.top_n));
    }
    if let Some(rule) = &section.engaged {
        ignored.push(format!("engaged = \"{rule}\" (every row counts)"));
    }
    if section.splits != defaults.splits {
        ignored.push(format!("splits = {:?} (uses [\"train\"])", section.splits));
    }
    ignored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_flag_conflicts_with_top_n_override() {
        let parsed = Args::try_parse_from([
            "stage-candidates",
            "--config",
            "c.toml",
            "--dir",
            "d",
            "--anchor-compat",
            "--top-n",
            "5",
        ]);
        assert!(parsed.is_err());
    }

    #[test]
    fn anchor_overrides_name_the_ignored_keys() {
        let section = CandidatesSection {
            engaged: Some("click".into()),
            normalisation: "product".into(),
            window_hours: 3.0,
            ..Default::default()
        };
        let ignored = anchor_overrides(&section).join("; ");
        assert!(ignored.contains("window_hours = 3"), "{ignored}");
        assert!(ignored.contains("normalisation = \"product\""), "{ignored}");
        assert!(ignored.contains("engaged = \"click\""), "{ignored}");
        assert!(!ignored.contains("top_n"), "{ignored}");
        assert!(anchor_overrides(&CandidatesSection::default()).is_empty());
    }
}

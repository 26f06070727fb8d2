//! Command line of `stage-twotower`: clap arguments and their conversion into a checked
//! `Config` (the `[twotower]` section with the objective's overrides and the flags laid
//! over it).

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use common::cli::CommonArgs;
use common::PipelineConfig;
use relvid_nn::DeviceKind;

use crate::config::{Config, TwoTowerSection};

/// Two-tower video embeddings for one objective, and the non-linear score of every
/// candidate pair.
///
/// Reads DIR/interactions.parquet (user_idx, video_idx, ts, split), DIR/users.parquet (row
/// count only), DIR/routing.parquet
/// (routed_<objective>), DIR/videos.parquet (video_id and side features) and
/// DIR/candidates.parquet (source_idx, candidate_idx). Trains a query tower and a candidate
/// tower on pairs (a, b) of videos a user engaged with, b within window_hours after a and
/// routed to the objective, against popularity-sampled negatives. Writes
/// DIR/twotower_<objective>.parquet (source_idx, source_id, candidate_idx, candidate_id,
/// nonlinear_score: one row per candidates.parquet row, same order),
/// DIR/twotower_<objective>_videos.parquet (video_idx, video_id, query_embedding,
/// candidate_embedding) and DIR/twotower_<objective>.safetensors. Settings come from the
/// [twotower] section of the config and the objective's `twotower = { ... }` overrides.
#[derive(Debug, Parser)]
#[command(name = "stage-twotower", version, about, long_about)]
pub struct Args {
    /// Dataset configuration (TOML)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Dataset folder: inputs are read from it and outputs written to it
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// Objective to train for (a name from the config's [[objective]] entries)
    #[arg(long, value_name = "NAME")]
    pub objective: String,

    /// Where to train: cpu, or cuda (needs a build with `--features cuda`)
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,

    /// Override [twotower] epochs
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,

    /// Override [twotower] learning_rate
    #[arg(long, value_name = "RATE")]
    pub learning_rate: Option<f64>,

    /// Override [twotower] batch_size
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,

    /// Override [twotower] max_train_pairs (train pairs per epoch, 0 = all)
    #[arg(long, value_name = "N")]
    pub max_train_pairs: Option<usize>,

    #[command(flatten)]
    pub common: CommonArgs,
}

impl Args {
    /// Loads the configuration, lays the overrides over `[twotower]` and checks every value.
    pub fn into_config(self) -> Result<Config> {
        let pipeline = PipelineConfig::load(&self.config)?;
        let objective = pipeline.objective(&self.objective)?.clone();
        let mut section: TwoTowerSection =
            pipeline.objective_section("twotower", &self.objective)?;
        section.epochs = self.epochs.unwrap_or(section.epochs);
        section.learning_rate = self.learning_rate.unwrap_or(section.learning_rate);
        section.batch_size = self.batch_size.unwrap_or(section.batch_size);
        section.max_train_pairs = self.max_train_pairs.unwrap_or(section.max_train_pairs);
        section.validate()?;
        Ok(Config {
            dir: self.dir,
            device: self.device,
            seed: self.common.seed,
            objective,
            section,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &std::path::Path) -> PathBuf {
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "[dataset]\nname = \"t\"\nformat = \"synthetic\"\n[twotower]\nepochs = 3\n\
             [[objective]]\nname = \"like\"\nlabel = \"like\"\nweight = 1.0\n",
        )
        .unwrap();
        path
    }

    fn parse(config: &std::path::Path, extra: &[&str]) -> Args {
        let mut argv = vec![
            "stage-twotower",
            "--config",
            config.to_str().unwrap(),
            "--dir",
            "d",
        ];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn flags_override_the_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path());
        let args = parse(
            &path,
            &[
                "--objective",
                "like",
                "--epochs",
                "9",
                "--batch-size",
                "64",
                "--max-train-pairs",
                "0",
            ],
        );
        let config = args.into_config().unwrap();
        assert_eq!((config.section.epochs, config.section.batch_size), (9, 64));
        assert_eq!(config.section.max_train_pairs, 0);
        assert_eq!(config.objective.name, "like");
    }

    #[test]
    fn unknown_objective_lists_the_configured_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path());
        let error = parse(&path, &["--objective", "share"])
            .into_config()
            .unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains("unknown objective \"share\"") && message.contains("like"),
            "{message}"
        );
    }

    #[test]
    fn invalid_override_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path());
        let error = parse(&path, &["--objective", "like", "--learning-rate", "0"])
            .into_config()
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("invalid parameter learning_rate"),
            "{error:#}"
        );
    }

    #[test]
    fn objective_is_required() {
        assert!(Args::try_parse_from(["stage-twotower", "--config", "c", "--dir", "d"]).is_err());
    }
}

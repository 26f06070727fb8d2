//! Command line of `stage-coordinate`: clap arguments and their conversion into a checked
//! `Config` (the `[coordinate]` section of the TOML with the flags laid over it).

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use common::cli::CommonArgs;
use common::PipelineConfig;
use relvid_nn::DeviceKind;

use crate::config::{Config, CoordinateSection};

/// Coordinating Network: per-interaction objective probabilities and routing.
///
/// Reads DIR/interactions.parquet (user_idx, video_idx, ts, split and the signals the
/// objectives' labels use), DIR/users.parquet and DIR/videos.parquet (ids and side
/// features). Trains an MLP over user, video and context features (never the signals) with
/// one sigmoid output per objective, then writes DIR/routing.parquet (user_idx, video_idx,
/// ts, split, then p_<objective> Float32 and routed_<objective> Boolean for every
/// objective, one row per interaction in file order) and DIR/coordinate.safetensors.
/// Settings come from the [coordinate] section of the config.
#[derive(Debug, Parser)]
#[command(name = "stage-coordinate", version, about, long_about)]
pub struct Args {
    /// Dataset configuration (TOML)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Dataset folder: inputs are read from it and outputs written to it
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// Where to train: cpu, or cuda (needs a build with `--features cuda`)
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,

    /// Override [coordinate] epochs
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,

    /// Override [coordinate] learning_rate
    #[arg(long, value_name = "RATE")]
    pub learning_rate: Option<f64>,

    /// Override [coordinate] max_train_rows (train rows per epoch, 0 = all)
    #[arg(long, value_name = "N")]
    pub max_train_rows: Option<usize>,

    #[command(flatten)]
    pub common: CommonArgs,
}

impl Args {
    /// Loads the configuration, lays the flags over `[coordinate]` and checks every value.
    pub fn into_config(self) -> Result<Config> {
        let pipeline = PipelineConfig::load(&self.config)?;
        let mut section: CoordinateSection = pipeline.section("coordinate")?;
        section.epochs = self.epochs.unwrap_or(section.epochs);
        section.learning_rate = self.learning_rate.unwrap_or(section.learning_rate);
        section.max_train_rows = self.max_train_rows.unwrap_or(section.max_train_rows);
        section.validate()?;
        Ok(Config {
            dir: self.dir,
            device: self.device,
            seed: self.common.seed,
            section,
            objectives: pipeline.objectives.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str], config: &std::path::Path) -> Args {
        let mut argv = vec![
            "stage-coordinate",
            "--config",
            config.to_str().unwrap(),
            "--dir",
            "d",
        ];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    fn write_config(dir: &std::path::Path, section: &str) -> PathBuf {
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            format!(
                "[dataset]\nname = \"t\"\nformat = \"synthetic\"\n[coordinate]\n{section}\n\
                 [[objective]]\nname = \"like\"\nlabel = \"like\"\nweight = 1.0\n"
            ),
        )
        .unwrap();
        path
    }

    #[test]
    fn flags_override_the_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "epochs = 3");
        let flags = [
            "--epochs",
            "7",
            "--learning-rate",
            "0.01",
            "--max-train-rows",
            "0",
        ];
        let config = args(&flags, &path).into_config().unwrap();
        assert_eq!(config.section.epochs, 7);
        assert_eq!(config.section.max_train_rows, 0);
        assert_eq!(config.section.learning_rate, 0.01);
        assert_eq!(config.objectives.len(), 1);
    }

    #[test]
    fn an_invalid_override_is_rejected_before_reading_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "");
        let error = args(&["--epochs", "0"], &path).into_config().unwrap_err();
        assert!(
            format!("{error:#}").contains("invalid parameter epochs"),
            "{error:#}"
        );
    }

    #[test]
    fn an_invalid_section_value_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "threshold = 1.2");
        let error = args(&[], &path).into_config().unwrap_err();
        assert!(
            format!("{error:#}").contains("invalid parameter threshold"),
            "{error:#}"
        );
    }

    #[test]
    fn device_flag_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "");
        assert_eq!(args(&["--device", "cuda"], &path).device, DeviceKind::Cuda);
        assert!(Args::try_parse_from([
            "stage-coordinate",
            "--config",
            "c",
            "--dir",
            "d",
            "--device",
            "tpu"
        ])
        .is_err());
    }
}

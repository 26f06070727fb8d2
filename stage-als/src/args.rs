//! The command line of `stage-als` and its conversion into a checked `Config`.
//!
//! `into_config` reads only the TOML configuration: the objective must exist and every
//! `[als]` value (after the objective's overrides and the command-line overrides) must pass
//! its rule before any data file is opened.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use common::cli::CommonArgs;
use common::{Objective, PipelineConfig};

use crate::params::{AlsParams, AlsSection};

/// Train ALS factors for one objective and score every candidate pair: by default the mean
/// factor of the source's audience (its users with a training row) dotted with the
/// candidate's factor, or the cosine of the two videos' factors (`[als] similarity`).
///
/// Reads, in --dir: interactions.parquet (split, the objective's label signal and the
/// `value` signal), routing.parquet (routed_<objective>, same rows and order),
/// users.parquet and videos.parquet (ids), candidates.parquet (source_idx, candidate_idx).
/// Trains on the train-split rows routed to the objective; validation rows give the
/// per-iteration validation metric.
///
/// Writes, in --dir: als_<objective>_users.parquet and als_<objective>_videos.parquet
/// (index, original id, `factors` FixedSizeList<Float32, k>, null for an entity with no
/// factor), then als_<objective>.parquet (one row per candidates row, same order:
/// source_idx, source_id, candidate_idx, candidate_id, linear_score Float32).
///
/// Settings: the [als] section of --config with the objective's `als = { ... }` overrides;
/// the flags below override both.
#[derive(Debug, Parser)]
#[command(name = "stage-als", version, about, long_about)]
pub struct Args {
    /// Dataset configuration (TOML), for example data/kuairand.toml
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Dataset folder holding the inputs; outputs are written there
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// Objective to train, as named in an [[objective]] entry
    #[arg(long, value_name = "NAME")]
    pub objective: String,

    /// Override [als] factors (latent dimension, 1..=1024)
    #[arg(long, value_name = "K")]
    pub factors: Option<usize>,

    /// Override [als] iterations (alternating sweeps, >= 1)
    #[arg(long, value_name = "N")]
    pub iterations: Option<usize>,

    /// Override [als] regularization (lambda, >= 0)
    #[arg(long, value_name = "LAMBDA", allow_negative_numbers = true)]
    pub regularization: Option<f64>,

    /// Override [als] solver ("auto", "cholesky" or "cg")
    #[arg(long, value_name = "NAME")]
    pub solver: Option<String>,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// Everything a run needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub config_path: PathBuf,
    pub dir: PathBuf,
    pub objective: Objective,
    /// The effective `[als]` section, as written to the summary and file metadata.
    pub section: AlsSection,
    pub params: AlsParams,
    pub seed: u64,
}

impl Config {
    /// The effective configuration as JSON (summary and Parquet metadata).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "objective": self.objective.name,
            "label": self.objective.label,
            "als": self.section,
        })
    }
}

impl Args {
    /// Loads the TOML configuration, applies the overrides and validates every parameter.
    pub fn into_config(self) -> Result<Config> {
        let pipeline = PipelineConfig::load(&self.config)?;
        let objective = pipeline.objective(&self.objective)?.clone();
        let mut section: AlsSection = pipeline.objective_section("als", &self.objective)?;
        if let Some(factors) = self.factors {
            section.factors = factors;
        }
        if let Some(iterations) = self.iterations {
            section.iterations = iterations;
        }
        if let Some(regularization) = self.regularization {
            section.regularization = regularization;
        }
        if let Some(solver) = self.solver {
            section.solver = solver;
        }
        let params = section.validate(self.common.seed).map_err(|e| {
            anyhow::anyhow!(
                "{e} (in [als] for objective \"{}\" of {})",
                self.objective,
                self.config.display()
            )
        })?;
        Ok(Config {
            config_path: self.config,
            dir: self.dir,
            objective,
            section,
            params,
            seed: self.common.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Mode;

    const CONFIG: &str = r#"
        [dataset]
        name = "t"
        format = "synthetic"
        [als]
        factors = 8
        [[objective]]
        name = "like"
        label = "like"
        weight = 1.0
        als = { mode = "implicit", alpha = 5.0 }
        [[objective]]
        name = "click"
        label = "click"
        weight = 0.5
    "#;

    fn args(extra: &[&str]) -> (tempfile::TempDir, Args) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, CONFIG).unwrap();
        let mut argv = vec![
            "stage-als".to_string(),
            "--config".to_string(),
            path.display().to_string(),
            "--dir".to_string(),
            dir.path().join("missing").display().to_string(),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        (dir, Args::parse_from(argv))
    }

    #[test]
    fn objective_overrides_and_flags_are_applied() {
        let (_dir, parsed) = args(&[
            "--objective",
            "like",
            "--factors",
            "16",
            "--iterations",
            "3",
        ]);
        let config = parsed.into_config().unwrap();
        assert_eq!(config.params.mode, Mode::Implicit);
        assert_eq!(config.params.alpha, 5.0);
        assert_eq!(config.params.fit.factors, 16);
        assert_eq!(config.params.fit.iterations, 3);
        assert_eq!(config.section.factors, 16);
    }

    #[test]
    fn other_objective_keeps_the_global_section() {
        let (_dir, parsed) = args(&["--objective", "click"]);
        let config = parsed.into_config().unwrap();
        assert_eq!(config.params.mode, Mode::Explicit);
        assert_eq!(config.params.fit.factors, 8);
    }

    #[test]
    fn unknown_objective_lists_the_configured_ones() {
        let (_dir, parsed) = args(&["--objective", "share"]);
        let message = format!("{:#}", parsed.into_config().unwrap_err());
        assert!(message.contains("unknown objective \"share\"") && message.contains("like, click"));
    }

    #[test]
    fn flag_values_are_validated_like_the_file() {
        let (_dir, parsed) = args(&["--objective", "like", "--regularization", "-1"]);
        let message = format!("{:#}", parsed.into_config().unwrap_err());
        assert!(
            message.contains("invalid parameter regularization = -1"),
            "{message}"
        );
    }
}

//! The command line of `stage-ingest` and its conversion into a checked [`Config`].

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use common::cli::CommonArgs;
use common::PipelineConfig;

use crate::config::Config;

const LONG_ABOUT: &str = "\
Reads a raw interaction log and writes the canonical tables of the relvid data contract.

Sources ([dataset] format in the config):
  kuairand   RAW = a log file, or a folder of log*.csv / log*.tsv (+ user_features*.csv,
             video_features_basic*.csv)
  movielens  RAW = a folder with u.data (+ u.user, u.item) or ratings.csv (+ movies.csv)
  generic    RAW = a Parquet or CSV file, columns mapped in [dataset.columns]
  synthetic  no RAW: a deterministic generated log of about `rows` rows
             ([dataset.synthetic] rows, or --rows; default 200000)

Writes into DIR: users.parquet, videos.parquet, then interactions.parquet (renamed into
place last, so its presence marks all three). Users and videos get dense indices in sorted
order of their original ids; rows are sorted by (user_idx, ts, video_idx) and split by time
([split] valid_fraction, test_fraction). Rows with the same (user, video, ts) are merged;
rows with a NaN/negative play time or duration, a NaN rating, or a timestamp before 1990 or
after tomorrow are dropped and counted. The last stdout line is a JSON summary.";

/// Reads a raw interaction log (KuaiRand, MovieLens, generic Parquet/CSV, or the synthetic
/// generator) and writes users.parquet, videos.parquet and interactions.parquet into --dir
#[derive(Debug, Clone, Parser)]
#[command(name = "stage-ingest", version, long_about = LONG_ABOUT)]
pub struct Args {
    /// Dataset configuration (TOML): [dataset] and [split] are read
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Output folder of the dataset (created when absent)
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// Raw log: a file or a folder (kuairand, movielens, generic); not for synthetic
    #[arg(long, value_name = "PATH")]
    pub raw: Option<PathBuf>,

    /// Synthetic: rows to generate (overrides [dataset.synthetic] rows); other formats:
    /// read at most N raw rows
    #[arg(long, value_name = "N")]
    pub rows: Option<u64>,

    #[command(flatten)]
    pub common: CommonArgs,
}

impl Args {
    /// Loads the configuration file and checks every setting; reads no data.
    pub fn into_config(self) -> Result<Config> {
        let pipeline = PipelineConfig::load(&self.config)?;
        Config::from_parts(&pipeline, self.dir, self.raw, self.rows, self.common.seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_command_line() {
        let args = Args::try_parse_from([
            "stage-ingest",
            "--config",
            "data/k.toml",
            "--dir",
            "data/k",
            "--raw",
            "raw",
            "--rows",
            "10",
            "--seed",
            "7",
        ])
        .unwrap();
        assert_eq!(args.raw, Some(PathBuf::from("raw")));
        assert_eq!((args.rows, args.common.seed), (Some(10), 7));
    }

    #[test]
    fn config_and_dir_are_required() {
        assert!(Args::try_parse_from(["stage-ingest", "--dir", "d"]).is_err());
        assert!(Args::try_parse_from(["stage-ingest", "--config", "c"]).is_err());
    }

    #[test]
    fn missing_config_file_is_an_error_naming_it() {
        let args = Args::try_parse_from([
            "stage-ingest",
            "--config",
            "/nonexistent/x.toml",
            "--dir",
            "d",
        ])
        .unwrap();
        let message = format!("{:#}", args.into_config().unwrap_err());
        assert!(message.contains("/nonexistent/x.toml"), "{message}");
    }
}

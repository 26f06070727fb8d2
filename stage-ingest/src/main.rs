//! `stage-ingest`: raw log → users.parquet, videos.parquet, interactions.parquet.
//! Parses the command line, sets up logging and threads, runs the library, prints the
//! summary line (or the error) through `common::cli::run_stage`.

use std::process::ExitCode;

use clap::Parser;
use stage_ingest::args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    args.common.init();
    common::cli::run_stage("stage-ingest", || stage_ingest::run(&args.into_config()?))
}

//! `stage-ingest`: raw log → users.parquet, videos.parquet, interactions.parquet.
//! Parses the command line, sets up logging and threads, runs the library, prints the
//! summary line (or the error) through `common::cli::run_stage`.

use std::process::ExitCode;

use clap::Parser;
use stage_ingest::args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    args.common.init();
    let check_only = args.common.check_config;
    common::cli::run_stage_checked(
        "stage-ingest",
        check_only,
        || args.into_config(),
        |config| stage_ingest::run(&config),
    )
}

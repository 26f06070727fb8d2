//! `stage-merge` binary: parses the command line and runs the library's `run`.
//! Reads DIR/candidates.parquet, DIR/routing.parquet and the per-objective score files;
//! writes DIR/weights.parquet and DIR/related.parquet.

use std::process::ExitCode;

use clap::Parser;
use stage_merge::args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    args.common.init();
    let check_only = args.common.check_config;
    common::cli::run_stage_checked(
        stage_merge::STAGE,
        check_only,
        || args.into_config(),
        |config| stage_merge::run(&config),
    )
}

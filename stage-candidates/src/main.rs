//! `stage-candidates` binary: parses the command line and runs the library's `run`.
//! Reads DIR/interactions.parquet and DIR/videos.parquet; writes DIR/candidates.parquet.

use std::process::ExitCode;

use clap::Parser;
use stage_candidates::args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    args.common.init();
    let check_only = args.common.check_config;
    common::cli::run_stage_checked(
        stage_candidates::STAGE,
        check_only,
        || args.into_config(),
        |config| stage_candidates::run(&config),
    )
}

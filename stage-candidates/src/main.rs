//! `stage-candidates` binary: parses the command line and runs the library's `run`.
//! Reads DIR/interactions.parquet and DIR/videos.parquet; writes DIR/candidates.parquet.

use std::process::ExitCode;

use clap::Parser;
use stage_candidates::args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    args.common.init();
    common::cli::run_stage(stage_candidates::STAGE, || {
        let config = args.into_config()?;
        stage_candidates::run(&config)
    })
}

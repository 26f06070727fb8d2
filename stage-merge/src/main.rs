//! `stage-merge` binary: parses the command line and runs the library's `run`.
//! Reads DIR/candidates.parquet, DIR/routing.parquet and the per-objective score files;
//! writes DIR/weights.parquet and DIR/related.parquet.

use std::process::ExitCode;

use clap::Parser;
use stage_merge::args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    args.common.init();
    common::cli::run_stage(stage_merge::STAGE, || {
        let config = args.into_config()?;
        stage_merge::run(&config)
    })
}

//! `stage-eval` binary: parses the command line and runs the library's `run`.
//! Reads the test split of DIR/interactions.parquet and every ranking input of the pipeline;
//! writes DIR/eval.parquet and DIR/report.md.

use std::process::ExitCode;

use clap::Parser;
use stage_eval::args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    args.common.init();
    let check_only = args.common.check_config;
    common::cli::run_stage_checked(
        stage_eval::STAGE,
        check_only,
        || args.into_config(),
        |config| stage_eval::run(&config),
    )
}

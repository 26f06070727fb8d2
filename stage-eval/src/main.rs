//! `stage-eval` binary: parses the command line and runs the library's `run`.
//! Reads the test split of DIR/interactions.parquet and every ranking input of the pipeline;
//! writes DIR/eval.parquet and DIR/report.md.

use std::process::ExitCode;

use clap::Parser;
use stage_eval::args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    args.common.init();
    common::cli::run_stage(stage_eval::STAGE, || {
        let config = args.into_config()?;
        stage_eval::run(&config)
    })
}

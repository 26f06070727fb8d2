//! `stage-coordinate`: trains the Coordinating Network and writes routing.parquet.
//! See `stage-coordinate --help` and the library docs for inputs and outputs.

use std::process::ExitCode;

use clap::Parser;
use stage_coordinate::args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    relvid_nn::device::configure_process(args.common.threads);
    args.common.init();
    common::cli::run_stage("stage-coordinate", || {
        stage_coordinate::run(&args.into_config()?)
    })
}

//! `stage-coordinate`: trains the Coordinating Network and writes routing.parquet.
//! See `stage-coordinate --help` and the library docs for inputs and outputs.

use std::process::ExitCode;

use clap::Parser;
use stage_coordinate::args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    relvid_nn::device::configure_process(args.common.threads);
    args.common.init();
    let check_only = args.common.check_config;
    common::cli::run_stage_checked(
        "stage-coordinate",
        check_only,
        || args.into_config(),
        |config| stage_coordinate::run(&config),
    )
}

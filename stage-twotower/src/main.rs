//! `stage-twotower`: trains the two towers for one objective and scores the candidate pairs.
//! See `stage-twotower --help` and the library docs for inputs and outputs.

use std::process::ExitCode;

use clap::Parser;
use stage_twotower::args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    relvid_nn::device::configure_process(args.common.threads);
    args.common.init();
    let check_only = args.common.check_config;
    common::cli::run_stage_checked(
        "stage-twotower",
        check_only,
        || args.into_config(),
        |config| stage_twotower::run(&config),
    )
}

//! `stage-als` binary: parses the command line, sets up logging and threads, validates the
//! settings, runs the stage and prints its one-line JSON summary (see the library docs).

use std::process::ExitCode;

use clap::Parser;
use stage_als::{run, Args, STAGE};

fn main() -> ExitCode {
    let args = Args::parse();
    args.common.init();
    let check_only = args.common.check_config;
    common::cli::run_stage_checked(
        STAGE,
        check_only,
        || args.into_config(),
        |config| run(&config),
    )
}

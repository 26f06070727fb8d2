//! `twotower-bench`: the PyTorch anchor's two-tower protocol run through the stage's own
//! model and batch loop; prints one JSON line. See `twotower-bench --help` and
//! `stage_twotower::bench`.

use std::process::ExitCode;

use clap::Parser;
use stage_twotower::bench::{run, BenchArgs};

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    relvid_nn::device::configure_process(args.threads);
    let common = common::cli::CommonArgs {
        seed: args.seed,
        threads: args.threads,
        verbose: 0,
        quiet: false,
        no_progress: false,
        check_config: false,
    };
    common.init();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("twotower-bench: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

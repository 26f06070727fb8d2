//! What every stage binary shares on its command line and in `main`: seed, threads,
//! verbosity, progress, logging set-up, and printing the summary or the error.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use crate::summary::Summary;

/// Options every stage takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Seed of every random choice the stage makes
    #[arg(long, default_value_t = 42, value_name = "N")]
    pub seed: u64,

    /// Worker threads (0 = one per core)
    #[arg(long, default_value_t = 0, value_name = "N", env = "RELVID_THREADS")]
    pub threads: usize,

    /// Log more (-v: debug, -vv: trace)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log only warnings and errors; hides progress bars
    #[arg(short, long)]
    pub quiet: bool,

    /// Never draw progress bars (a plain log line per step is printed instead)
    #[arg(long)]
    pub no_progress: bool,

    /// Only check the settings (config file and flags), read and write no data, and exit
    #[arg(long)]
    pub check_config: bool,
}

impl CommonArgs {
    /// Sets up logging to stderr and the global rayon pool.
    pub fn init(&self) {
        let level = match (self.quiet, self.verbose) {
            (true, _) => tracing::Level::WARN,
            (false, 0) => tracing::Level::INFO,
            (false, 1) => tracing::Level::DEBUG,
            (false, _) => tracing::Level::TRACE,
        };
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(level)
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init();
        if self.quiet || self.no_progress {
            crate::progress::disable_bars();
        }
        // Building the pool fails only when it already exists (tests calling twice).
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build_global();
    }
}

/// Checks a stage's settings and runs it: with `check_only` (`--check-config`) it stops
/// after `settings` and prints `<stage>: settings ok` on stdout, so that make can check
/// every stage's section before the first stage reads any data; otherwise as `run_stage`.
pub fn run_stage_checked<C>(
    stage: &str,
    check_only: bool,
    settings: impl FnOnce() -> anyhow::Result<C>,
    body: impl FnOnce(C) -> anyhow::Result<Summary>,
) -> ExitCode {
    if !check_only {
        return run_stage(stage, || body(settings()?));
    }
    match settings() {
        Ok(_) => {
            println!("{stage}: settings ok");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{stage}: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a stage's body: prints the summary as the last stdout line on success, or
/// `<stage>: error: <chain>` on stderr and exits 1 on failure.
pub fn run_stage(stage: &str, body: impl FnOnce() -> anyhow::Result<Summary>) -> ExitCode {
    match body() {
        Ok(summary) => {
            // A reader that closed the pipe early (`| head`) has what it wanted: not an error.
            let written = writeln!(std::io::stdout().lock(), "{}", summary.to_line());
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{stage}: error: writing the summary to stdout: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(error) => {
            eprintln!("{stage}: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

//! `relvid-bench-shell`: a drop-in `/bin/sh` for make (`make SHELL=.../relvid-bench-shell`)
//! and for the bench script that times each command it runs.
//!
//! Reads `RELVID_BENCH_LOG` (results file), `RELVID_BENCH_TAG`, `RELVID_BENCH_ROWS` and
//! `RELVID_BENCH_MATCH` (only commands containing this text are measured; default: all).
//! Settings checks (`--check-config`, run by make before the first stage) are never
//! measured: they read no data and would count as extra runs of every stage.
//! A measured command's stdout passes through unchanged and one record is appended to the
//! results file; any other command is handed to /bin/sh by exec, untouched. The exit code
//! is the command's.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use relvid_bench::{measure, record};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.last().cloned().unwrap_or_default();
    let log = std::env::var_os("RELVID_BENCH_LOG").map(PathBuf::from);
    let wanted = !command.contains("--check-config")
        && std::env::var("RELVID_BENCH_MATCH").map_or(true, |m| command.contains(&m));
    let Some(log) = log.filter(|_| wanted) else {
        let err = Command::new(measure::SHELL).args(&args).exec();
        eprintln!("relvid-bench-shell: cannot run {}: {err}", measure::SHELL);
        return ExitCode::from(127);
    };

    let measured = match measure::run(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("relvid-bench-shell: {e:#}");
            return ExitCode::from(127);
        }
    };
    let tag = std::env::var("RELVID_BENCH_TAG").unwrap_or_else(|_| "untagged".into());
    let rows = std::env::var("RELVID_BENCH_ROWS")
        .ok()
        .and_then(|r| r.parse().ok());
    let status = measured.status;
    let rec = measure::to_record(&tag, rows, &command, measured);
    if let Err(e) = record::append(&log, &rec) {
        eprintln!("relvid-bench-shell: {e:#}");
    }
    ExitCode::from(status.clamp(0, 255) as u8)
}

//! `relvid-bench`: builds the benchmark report from a results file, compares two
//! co-visitation list files, or records a skipped tool. `scripts/bench/run.sh` drives it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use relvid_bench::{lists, measure, record, report};

/// Benchmark report of relvid (run by `make bench`)
#[derive(Debug, Parser)]
#[command(name = "relvid-bench", version, about)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write bench.md, the Parquet tables and the charts from a results file
    Report {
        /// Results file written by relvid-bench-shell (JSON lines)
        #[arg(long, value_name = "FILE")]
        results: PathBuf,
        /// Folder for bench.md, *.parquet and *.png
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Text put under the title (machine, date, commit)
        #[arg(long, default_value = "")]
        header: String,
    },
    /// Compare anchor_cooc.py --out lists with candidates.parquet row for row (exit 1 if
    /// they differ); prints one JSON line
    CompareLists {
        #[arg(long, value_name = "FILE")]
        anchor: PathBuf,
        #[arg(long, value_name = "FILE")]
        relvid: PathBuf,
    },
    /// Record that a tool was not run, and why, so the report says so
    Skip {
        #[arg(long, value_name = "FILE")]
        results: PathBuf,
        #[arg(long)]
        tag: String,
        #[arg(long)]
        reason: String,
    },
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("relvid-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Cmd::Report {
            results,
            out,
            header,
        } => {
            let outcome = report::write(&results, &out, &header)?;
            for w in &outcome.warnings {
                eprintln!("relvid-bench: warning: {w}");
            }
            for f in &outcome.files {
                eprintln!("wrote {}", f.display());
            }
            if outcome.too_slow.is_empty() {
                eprintln!("scaling: every judged stage grows at most about linearly with rows");
            }
            for s in &outcome.too_slow {
                eprintln!("scaling: slower than linear: {s}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CompareLists { anchor, relvid } => {
            let c = lists::compare(&anchor, &relvid)?;
            println!("{}", serde_json::to_string(&c)?);
            Ok(if c.identical {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Skip {
            results,
            tag,
            reason,
        } => {
            let m = measure::Measured {
                status: 0,
                wall_s: 0.0,
                user_s: 0.0,
                sys_s: 0.0,
                max_rss_mib: 0.0,
                load1: measure::load1(),
                started_unix_s: 0,
                last_line: Some(serde_json::json!({ "missing": reason }).to_string()),
            };
            record::append(&results, &measure::to_record(&tag, None, "skipped", m))?;
            eprintln!("relvid-bench: {tag} skipped: {reason}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! `relvid-config`: checks a dataset configuration and writes the stamp files the Makefile
//! uses to re-run only the stages whose settings changed.
//!
//! `relvid-config stamps --config data/kuairand.toml --out data/kuairand/config` writes one
//! small JSON file per stage (and per objective for ALS and the two-tower) holding the
//! effective settings of that stage, rewriting a file only when its content changes, plus
//! `objectives.mk` with the list of objectives for make.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use relvid_common::PipelineConfig;

#[derive(Parser)]
#[command(
    name = "relvid-config",
    version,
    about = "Check a relvid configuration and write make stamps"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and check a configuration; print its objectives, one per line
    Check {
        /// Dataset configuration (TOML)
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Write per-stage stamp files that change only when that stage's settings change
    Stamps {
        /// Dataset configuration (TOML)
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Folder for the stamps and objectives.mk
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Check { config } => check(&config),
        Command::Stamps { config, out } => stamps(&config, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("relvid-config: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &Path) -> Result<()> {
    let config = PipelineConfig::load(path)?;
    for name in config.objective_names() {
        println!("{name}");
    }
    Ok(())
}

fn stamps(path: &Path, out: &Path) -> Result<()> {
    let config = PipelineConfig::load(path)?;
    let objectives = serde_json::to_string_pretty(&config.objectives)?;
    // The manual weights a_k matter only to merge and eval: the learning stages see the
    // objectives' names, labels and routing thresholds, so a weight change re-runs nothing
    // upstream of the merge.
    let learning_view: Vec<serde_json::Value> = config
        .objectives
        .iter()
        .map(|o| serde_json::json!({ "name": o.name, "label": o.label, "threshold": o.threshold }))
        .collect();
    let learning_view = serde_json::to_string_pretty(&learning_view)?;
    let section = |name: &str| config.section_fingerprint(name, None);

    // What each stage's output depends on, besides its input files.
    let mut stamps: Vec<(String, String)> = vec![
        (
            "ingest".into(),
            format!(
                "{}\n{}",
                serde_json::to_string_pretty(&config.dataset)?,
                section("split")?
            ),
        ),
        ("candidates".into(), section("candidates")?),
        (
            "coordinate".into(),
            format!("{}\n{learning_view}", section("coordinate")?),
        ),
        (
            "merge".into(),
            format!("{}\n{objectives}", section("merge")?),
        ),
        (
            "eval".into(),
            format!("{}\n{}\n{objectives}", section("eval")?, section("merge")?),
        ),
    ];
    for objective in &config.objectives {
        let label = serde_json::to_string_pretty(
            &serde_json::json!({ "name": objective.name, "label": objective.label }),
        )?;
        for stage in ["als", "twotower"] {
            let settings = config.section_fingerprint(stage, Some(&objective.name))?;
            stamps.push((
                format!("{stage}-{}", objective.name),
                format!("{settings}\n{label}"),
            ));
        }
    }

    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (name, content) in stamps {
        write_if_changed(&out.join(format!("{name}.json")), &content)?;
    }
    let names = config.objective_names().join(" ");
    write_if_changed(
        &out.join("objectives.mk"),
        &format!("OBJECTIVES := {names}\n"),
    )?;
    Ok(())
}

/// Leaves the file (and its mtime) alone when the content is unchanged, so make does not
/// re-run the stages that depend on it.
fn write_if_changed(path: &Path, content: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    relvid_common::io::write_atomic(path, content.as_bytes())
}

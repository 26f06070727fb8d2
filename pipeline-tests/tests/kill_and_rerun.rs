//! Case 11 of the bad-input issue: a stage killed with SIGKILL mid-run leaves no file under
//! its final name, and a re-run finishes with outputs byte-identical to a clean run's (in
//! another folder, which also checks that the stage metadata is folder-independent).
//!
//! Runs on a small synthetic log that stage-ingest generates from its seed; needs no data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The stage binaries sit next to the test's own `deps/` folder.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

fn stage_command(stage: &str, args: &[&str]) -> Command {
    let mut command = Command::new(bin_dir().join(stage));
    command.args(args).args(["--no-progress", "--threads", "2"]);
    command
}

fn run_stage(stage: &str, args: &[&str]) {
    let output = stage_command(stage, args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {stage}: {e} (is it built?)"));
    assert!(
        output.status.success(),
        "{stage} {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const CONFIG: &str = r#"
[dataset]
name = "synthetic"
format = "synthetic"

[dataset.synthetic]
rows = 20000

[split]
valid_fraction = 0.1
test_fraction = 0.1

[candidates]
window_hours = 24.0
min_co_count = 1
top_n = 50

[coordinate]
threshold_mode = "recall"
target_recall = 0.9

[als]
mode = "implicit"
factors = 8
iterations = 3

[[objective]]
name = "click"
label = "click"
weight = 0.5

[[objective]]
name = "like"
label = "like"
weight = 1.0
"#;

/// Every regular file of the folder, by name (the config file excluded).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .filter(|path| path.file_name().is_some_and(|n| n != "relvid.toml"))
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect()
}

/// Ingest, candidates and coordinate into `dir`, with the config written inside it.
fn prepare(dir: &Path) -> PathBuf {
    let config = dir.join("relvid.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let base = [
        "--config",
        config.to_str().unwrap(),
        "--dir",
        dir.to_str().unwrap(),
    ];
    run_stage("stage-ingest", &base);
    run_stage("stage-candidates", &base);
    run_stage("stage-coordinate", &base);
    config
}

#[test]
fn killed_twotower_leaves_no_final_file_and_rerun_matches_a_clean_run() {
    let killed = tempfile::tempdir().unwrap();
    let clean = tempfile::tempdir().unwrap();
    let killed_config = prepare(killed.path());
    let clean_config = prepare(clean.path());

    // The upstream stages are deterministic and folder-independent.
    assert_eq!(
        files(killed.path()),
        files(clean.path()),
        "upstream outputs differ"
    );

    let objective = "click";
    let final_name = format!("twotower_{objective}.parquet");
    let args = |config: &Path, dir: &Path| -> Vec<String> {
        vec![
            "--config".into(),
            config.to_str().unwrap().into(),
            "--dir".into(),
            dir.to_str().unwrap().into(),
            "--objective".into(),
            objective.into(),
        ]
    };

    // Start, then SIGKILL mid-write.
    let killed_args = args(&killed_config, killed.path());
    let killed_refs: Vec<&str> = killed_args.iter().map(String::as_str).collect();
    let before = files(killed.path());
    let mut child = stage_command("stage-twotower", &killed_refs)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start stage-twotower");
    // Kill as soon as the stage has started writing (a `.tmp` file appears), so the kill
    // lands mid-write; give up waiting after 60 s and kill anyway.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        let writing = std::fs::read_dir(killed.path())
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp"));
        if writing {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let finished_before_kill = matches!(child.try_wait(), Ok(Some(status)) if status.success());
    let _ = child.kill(); // SIGKILL on unix; an error only means it had already exited
    child.wait().unwrap();

    let after = files(killed.path());
    let new_files: Vec<&String> = after.keys().filter(|n| !before.contains_key(*n)).collect();
    eprintln!("finished before kill: {finished_before_kill}; new files after kill: {new_files:?}");
    if !finished_before_kill {
        assert!(
            !after.contains_key(&final_name),
            "{final_name} exists after the stage was killed mid-run"
        );
    } else {
        eprintln!("stage-twotower finished before the kill; checking the rerun only");
    }

    // Re-run to completion in the killed folder; clean run in the other folder.
    run_stage("stage-twotower", &killed_refs);
    let clean_args = args(&clean_config, clean.path());
    let clean_refs: Vec<&str> = clean_args.iter().map(String::as_str).collect();
    run_stage("stage-twotower", &clean_refs);

    let rerun_files = files(killed.path());
    let clean_files = files(clean.path());
    // A file the killed run did leave under a final name (the stage writes the model and the
    // embeddings before the scores, each renamed from `.tmp` when complete) must be whole:
    // byte-identical to the clean run's, never a partial write.
    for name in after
        .keys()
        .filter(|n| !before.contains_key(*n) && !n.ends_with(".tmp"))
    {
        assert!(
            after[name] == clean_files[name],
            "killed run left a partial final-named file {name}"
        );
    }
    assert!(rerun_files.contains_key(&final_name));
    // Any .tmp left by the kill must have been consumed (renamed) by the re-run.
    let leftovers: Vec<&String> = rerun_files.keys().filter(|n| n.ends_with(".tmp")).collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left after re-run: {leftovers:?}"
    );
    assert_eq!(
        rerun_files.keys().collect::<Vec<_>>(),
        clean_files.keys().collect::<Vec<_>>(),
        "re-run and clean run wrote different file sets"
    );
    for (name, bytes) in &rerun_files {
        assert!(
            bytes == &clean_files[name],
            "{name} differs between the re-run after a kill and a clean run"
        );
    }
}

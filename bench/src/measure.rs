//! Runs one shell command and measures it: wall time, user and system CPU, peak resident
//! memory (wait4(2) on the shell, which covers every process it waited for), and the last
//! line of its stdout, which is passed through unchanged as it arrives.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::record::Record;

/// The shell that runs the command, as make would without the wrapper.
pub const SHELL: &str = "/bin/sh";

/// What one command cost, and its last stdout line.
#[derive(Debug, Clone)]
pub struct Measured {
    pub status: i32,
    pub wall_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    pub max_rss_mib: f64,
    pub load1: f64,
    pub started_unix_s: u64,
    pub last_line: Option<String>,
}

/// Runs `SHELL <shell_args...>` (e.g. `-c "cmd"`), copying its stdout to ours line by line.
pub fn run(shell_args: &[String]) -> Result<Measured> {
    let load1 = load1();
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let started = Instant::now();
    let mut child = Command::new(SHELL)
        .args(shell_args)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {SHELL}"))?;

    // Pass stdout through as it comes, keeping the last non-empty line.
    let mut last_line = None;
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).split(b'\n') {
        let line = line.context("reading the command's stdout")?;
        // A closed stdout on our side (`| head`) must not stop the command being measured.
        let _ = out.write_all(&line).and_then(|_| out.write_all(b"\n"));
        let _ = out.flush();
        if !line.iter().all(u8::is_ascii_whitespace) {
            last_line = Some(String::from_utf8_lossy(&line).into_owned());
        }
    }

    // The child is reaped here with wait4, not through std, to get its resource usage.
    let (status, usage) = wait4(child.id() as libc::pid_t)?;
    let wall_s = started.elapsed().as_secs_f64();
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Measured {
        status,
        wall_s,
        user_s: seconds(usage.ru_utime),
        sys_s: seconds(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        max_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        load1,
        started_unix_s,
        last_line,
    })
}

fn wait4(pid: libc::pid_t) -> Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; zeroed is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child, not yet reaped; both pointers are valid for writes.
        let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if got == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("waiting for the command");
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok((code, usage))
}

/// The 1-minute load average, 0 where /proc is not available.
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Builds the record of a measured command; `command` is the text the shell ran.
pub fn to_record(tag: &str, rows: Option<u64>, command: &str, m: Measured) -> Record {
    let mut words = command.split_whitespace();
    let program = words
        .next()
        .map(|w| w.rsplit('/').next().unwrap_or(w).to_string())
        .unwrap_or_default();
    let objective = command
        .split_whitespace()
        .skip_while(|w| *w != "--objective")
        .nth(1)
        .map(str::to_string);
    let output = m
        .last_line
        .as_deref()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(serde_json::Value::is_object);
    Record {
        tag: tag.to_string(),
        rows,
        program,
        objective,
        command: command.to_string(),
        status: m.status,
        wall_s: round3(m.wall_s),
        user_s: round3(m.user_s),
        sys_s: round3(m.sys_s),
        max_rss_mib: round3(m.max_rss_mib),
        load1: m.load1,
        started_unix_s: m.started_unix_s,
        output,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(cmd: &str) -> Measured {
        run(&["-c".to_string(), cmd.to_string()]).unwrap()
    }

    #[test]
    fn exit_code_and_last_json_line_are_kept() {
        let m = sh("echo first; echo '{\"a\": 1}'; echo; exit 3");
        assert_eq!(m.status, 3);
        assert_eq!(m.last_line.as_deref(), Some("{\"a\": 1}"));
        let r = to_record(
            "t",
            Some(7),
            "target/release/stage-als --objective like -q",
            m,
        );
        assert_eq!(r.program, "stage-als");
        assert_eq!(r.objective.as_deref(), Some("like"));
        assert_eq!(r.output, Some(serde_json::json!({"a": 1})));
    }

    #[test]
    fn cpu_time_and_memory_of_a_busy_child_are_measured() {
        // Busy for about 0.3 s of CPU and holding ~64 MiB, in a grandchild of the wrapper.
        let m = sh("python3 -c 'import time; b = bytearray(64 << 20); t = time.process_time()\nwhile time.process_time() - t < 0.3: pass'");
        assert_eq!(m.status, 0);
        assert!(m.user_s + m.sys_s >= 0.25, "{m:?}");
        assert!(m.max_rss_mib >= 60.0, "{m:?}");
        assert!(m.wall_s >= 0.25, "{m:?}");
    }

    #[test]
    fn a_signal_gives_128_plus_its_number() {
        assert_eq!(sh("kill -9 $$").status, 128 + 9);
    }

    #[test]
    fn non_json_output_gives_no_output_record() {
        let r = to_record("t", None, "echo hi", sh("echo hi"));
        assert_eq!((r.program.as_str(), r.output), ("echo", None));
    }
}

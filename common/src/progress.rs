//! Progress bars for long loops. Bars draw on stderr and are hidden when stderr is not a
//! terminal or `--no-progress` is given; stages then log one plain line per step instead.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static BARS_ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns bars off for the rest of the process (`--no-progress`, `-q`).
pub fn disable_bars() {
    BARS_ENABLED.store(false, Ordering::Relaxed);
}

/// True when bars are drawn; when false, log a line per step instead.
pub fn bars_visible() -> bool {
    BARS_ENABLED.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// A bar of `len` steps labelled `what` (for example "epochs" or "ALS sweeps").
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if !bars_visible() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

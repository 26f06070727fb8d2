//! Atomic PNG output: plotters writes `<file>.tmp.png` (its encoder picks the format from the
//! extension), which is renamed onto the target only after the whole chart was encoded.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The temporary file a chart for `path` is drawn into.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp.png");
    path.with_file_name(name)
}

/// Runs `draw` on the temporary path, then renames it onto `path`; removes the temporary
/// file when drawing or the rename fails.
pub(crate) fn write_atomically(path: &Path, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    crate::font::ensure_registered()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = tmp_path(path);
    if let Err(e) = draw(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("drawing {}", path.display())));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("renaming {} to {}", tmp.display(), path.display()))
    })
}

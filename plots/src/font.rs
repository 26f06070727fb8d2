//! Finds a TrueType font and registers it with plotters once per process. Looks in
//! `RELVID_FONT` first, then a list of common system paths; reads only the chosen file.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::style::{register_font, FontStyle};

/// Environment variable that names a `.ttf` file to use instead of the system paths.
pub const FONT_ENV: &str = "RELVID_FONT";

/// Family name under which the font is registered and drawn.
pub(crate) const FAMILY: &str = "relvid-sans";

/// Sans-serif fonts of common Linux and macOS installs, tried in order.
pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// The font file [`ensure_registered`] would use: `RELVID_FONT` when set (it must exist),
/// otherwise the first of [`FONT_PATHS`] that exists.
pub fn find_font() -> Result<PathBuf> {
    find_in(std::env::var_os(FONT_ENV), FONT_PATHS)
}

fn find_in(env: Option<std::ffi::OsString>, paths: &[&str]) -> Result<PathBuf> {
    if let Some(path) = env.filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(anyhow!(
            "{FONT_ENV}={} is not a readable file; point it at a .ttf font",
            path.display()
        ));
    }
    paths
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            anyhow!(
                "no TrueType font found for chart text; searched {}; set {FONT_ENV} to a .ttf file \
                 (Debian: apt-get install fonts-dejavu-core)",
                paths.join(", ")
            )
        })
}

/// Reads and registers the font on first use; later calls return the first outcome.
pub(crate) fn ensure_registered() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| register().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn register() -> Result<()> {
    let path = find_font()?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading font {}", path.display()))?;

    // plotters keeps the font for the life of the process and wants 'static bytes; this runs
    // once per process, so leaking one font file is the intended lifetime, not a leak per call.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font(FAMILY, FontStyle::Normal, bytes).map_err(|_| {
        anyhow!(
            "{} is not a TrueType font plotters can read",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_font_error_names_every_path_searched() {
        let err = find_in(None, &["/nonexistent/a.ttf", "/nonexistent/b.ttf"]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("/nonexistent/a.ttf") && msg.contains("/nonexistent/b.ttf"),
            "{msg}"
        );
        assert!(msg.contains(FONT_ENV), "{msg}");
    }

    #[test]
    fn env_font_that_does_not_exist_is_an_error() {
        let err = find_in(Some("/nonexistent/x.ttf".into()), FONT_PATHS).unwrap_err();
        assert!(
            format!("{err}").contains("RELVID_FONT=/nonexistent/x.ttf"),
            "{err}"
        );
    }

    #[test]
    fn env_font_wins_over_the_system_paths() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mine.ttf");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(
            find_in(Some(file.clone().into()), FONT_PATHS).unwrap(),
            file
        );
    }

    #[test]
    fn first_existing_path_is_chosen() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.ttf");
        std::fs::write(&file, b"x").unwrap();
        let paths = ["/nonexistent/a.ttf", file.to_str().unwrap()];
        assert_eq!(find_in(None, &paths).unwrap(), file);
    }
}

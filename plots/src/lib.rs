//! PNG charts for relvid's reports: a line chart (optionally log-log) and a grouped bar
//! chart. Reads one TrueType font at run time (see [`font`]); writes one PNG per call,
//! atomically (`<file>.tmp.png`, then renamed), so a failed call leaves no partial chart.
//!
//! Text is drawn with ab_glyph from a font file rather than through the system's
//! freetype/fontconfig, which keeps the build free of C libraries. When no font is found
//! the functions return an error that lists the paths searched; callers that treat the chart
//! as optional can warn and go on.

pub mod font;

mod bar;
mod line;
mod output;
mod validate;

pub use bar::bar_chart;
pub use line::line_chart;

/// One named line of a [`line_chart`]: `(x, y)` points, drawn in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points of the line; every coordinate finite (and positive on a log axis).
    pub points: Vec<(f64, f64)>,
}

/// Width and height of every chart, in pixels.
pub const SIZE: (u32, u32) = (1024, 640);

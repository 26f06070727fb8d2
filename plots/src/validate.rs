//! Input checks shared by both charts: no empty data, lengths that agree, finite values,
//! positive values on a log axis. Each failure names the series and the point.

use anyhow::{bail, Result};

use crate::Series;

/// Checks the series of a line chart before anything is drawn.
pub(crate) fn line_series(series: &[Series], log_x: bool, log_y: bool) -> Result<()> {
    if series.is_empty() {
        bail!("line chart: no series to draw");
    }
    for s in series {
        if s.points.is_empty() {
            bail!("line chart: series \"{}\" has no points", s.name);
        }
        for (i, &(x, y)) in s.points.iter().enumerate() {
            if !x.is_finite() || !y.is_finite() {
                bail!(
                    "line chart: series \"{}\" point {i} is not finite: ({x}, {y})",
                    s.name
                );
            }
            if log_x && x <= 0.0 {
                bail!(
                    "line chart: series \"{}\" point {i}: x = {x} on a log axis must be > 0",
                    s.name
                );
            }
            if log_y && y <= 0.0 {
                bail!(
                    "line chart: series \"{}\" point {i}: y = {y} on a log axis must be > 0",
                    s.name
                );
            }
        }
    }
    Ok(())
}

/// Checks the categories and series of a bar chart before anything is drawn.
pub(crate) fn bar_series(categories: &[String], series: &[(String, Vec<f64>)]) -> Result<()> {
    if categories.is_empty() {
        bail!("bar chart: no categories");
    }
    if series.is_empty() {
        bail!("bar chart: no series to draw");
    }
    for (name, values) in series {
        if values.len() != categories.len() {
            bail!(
                "bar chart: series \"{name}\" has {} values for {} categories",
                values.len(),
                categories.len()
            );
        }
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            bail!(
                "bar chart: series \"{name}\" value for \"{}\" is not finite: {v}",
                categories[i]
            );
        }
    }
    Ok(())
}

/// `[lo, hi]` of all values, widened so that a single value still spans a visible range.
pub(crate) fn span(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if log {
        // One decade-fraction of margin on each side, in log space.
        let (lo, hi) = if lo == hi {
            (lo / 2.0, hi * 2.0)
        } else {
            (lo, hi)
        };
        (lo / 1.25, hi * 1.25)
    } else {
        let pad = if lo == hi {
            lo.abs().max(1.0) * 0.5
        } else {
            (hi - lo) * 0.05
        };
        (lo - pad, hi + pad)
    }
}

/// Short tick text: 20000000 -> "20M", 1500 -> "1.5k", 0.25 -> "0.25", -0.0 -> "0".
pub(crate) fn compact(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = match a {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e4 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    // Four significant digits at most, trailing zeros dropped.
    let digits = (4 - (scaled.abs().max(1e-12).log10().floor() as i32 + 1)).clamp(0, 6) as usize;
    let text = format!("{scaled:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    let text = if text == "-0" { "0".to_string() } else { text };
    format!("{text}{suffix}")
}

/// Tick text on a log axis: only 1, 2 and 5 times a power of ten are labelled, so the
/// ticks plotters places at every integer multiple do not overlap.
pub(crate) fn log_tick(v: f64) -> String {
    let mantissa = v / 10f64.powf(v.log10().floor());
    if [1.0, 2.0, 5.0, 10.0]
        .iter()
        .any(|m| (mantissa - m).abs() < 1e-6)
    {
        compact(v)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_shortens_large_and_small_numbers() {
        assert_eq!(compact(20_000_000.0), "20M");
        assert_eq!(compact(1_500_000.0), "1.5M");
        assert_eq!(compact(50_000.0), "50k");
        assert_eq!(compact(1500.0), "1500");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(-0.0), "0");
        assert_eq!(compact(-0.05), "-0.05");
        assert_eq!(compact(3.0), "3");
    }

    #[test]
    fn log_ticks_label_only_one_two_five() {
        assert_eq!(log_tick(1e6), "1M");
        assert_eq!(log_tick(2e6), "2M");
        assert_eq!(log_tick(5.0), "5");
        assert_eq!(log_tick(3e6), "");
        assert_eq!(log_tick(0.7), "");
    }
}

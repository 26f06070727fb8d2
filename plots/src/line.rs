//! Line chart with a marker on every point, one line per series, linear or log10 axes.

use std::path::Path;

use anyhow::Result;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::font::FAMILY;
use crate::validate::{compact, line_series, log_tick, span};
use crate::{output, Series, SIZE};

/// Draws `series` as lines with markers into the PNG `path`, with log10 x and/or y axes on
/// request.
///
/// Errors, before anything is written: no series, a series without points, a non-finite
/// coordinate, a value <= 0 on a log axis; no font found ([`crate::font::find_font`]); a
/// file that cannot be written. The PNG is written to `<path>.tmp.png` and renamed.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
    log_y: bool,
) -> Result<()> {
    line_series(series, log_x, log_y)?;
    let points = || series.iter().flat_map(|s| s.points.iter().copied());
    let (x0, x1) = span(points().map(|p| p.0), log_x);
    let (y0, y1) = span(points().map(|p| p.1), log_y);
    let text = Text {
        title,
        x_label,
        y_label,
        log_x,
        log_y,
    };

    // Each axis is either a plain or a log range, which are different types in plotters.
    output::write_atomically(path, |tmp| match (log_x, log_y) {
        (false, false) => draw(tmp, &text, series, x0..x1, y0..y1),
        (true, false) => draw(tmp, &text, series, (x0..x1).log_scale(), y0..y1),
        (false, true) => draw(tmp, &text, series, x0..x1, (y0..y1).log_scale()),
        (true, true) => draw(
            tmp,
            &text,
            series,
            (x0..x1).log_scale(),
            (y0..y1).log_scale(),
        ),
    })
}

struct Text<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    log_x: bool,
    log_y: bool,
}

fn draw<X, Y>(tmp: &Path, text: &Text, series: &[Series], x: X, y: Y) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let root = BitMapBackend::new(tmp, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(text.title, (FAMILY, 24))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)?;
    let tick = |log: bool| if log { log_tick } else { compact };
    let (x_tick, y_tick) = (tick(text.log_x), tick(text.log_y));
    chart
        .configure_mesh()
        .x_label_formatter(&|v| x_tick(*v))
        .y_label_formatter(&|v| y_tick(*v))
        .light_line_style(BLACK.mix(0.04))
        .x_desc(text.x_label)
        .y_desc(text.y_label)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()?;

    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 14))
        .draw()?;
    root.present()?;
    Ok(())
}

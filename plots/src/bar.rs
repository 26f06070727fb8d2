//! Grouped bar chart: one group per category, one bar per series inside each group; values
//! may be negative (bars then hang below the zero line).

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use crate::font::FAMILY;
use crate::validate::{bar_series, compact, span};
use crate::{output, SIZE};

/// Share of a category's slot taken by its group of bars (the rest is the gap).
const GROUP_WIDTH: f64 = 0.8;

/// Draws one group of bars per category, one bar per `(series name, values)` into the PNG
/// `path`; `values[i]` belongs to `categories[i]`.
///
/// Errors, before anything is written: no categories, no series, a series whose length
/// differs from the number of categories, a non-finite value; no font found; a file that
/// cannot be written. The PNG is written to `<path>.tmp.png` and renamed.
pub fn bar_chart(
    path: &Path,
    title: &str,
    categories: &[String],
    y_label: &str,
    series: &[(String, Vec<f64>)],
) -> Result<()> {
    bar_series(categories, series)?;

    // The zero line is always in view, so the bars' lengths compare honestly.
    let values = || series.iter().flat_map(|(_, v)| v.iter().copied());
    let (y0, y1) = span(values().chain([0.0]), false);
    let (y0, y1) = (y0.min(0.0), y1.max(0.0));
    let n = categories.len();

    output::write_atomically(path, |tmp| {
        let root = BitMapBackend::new(tmp, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 24))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, y0..y1)?;

        // Category i sits at x = i; tick labels elsewhere stay blank.
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                categories[i as usize].clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_label_formatter(&|v| compact(*v))
            .light_line_style(BLACK.mix(0.04))
            .y_desc(y_label)
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .draw()?;

        let width = GROUP_WIDTH / series.len() as f64;
        for (j, (name, values)) in series.iter().enumerate() {
            let color = Palette99::pick(j).to_rgba();
            let left = |i: usize| i as f64 - GROUP_WIDTH / 2.0 + j as f64 * width;
            let bars = values.iter().enumerate().map(move |(i, &v)| {
                Rectangle::new([(left(i), 0.0), (left(i) + width, v)], color.filled())
            });
            chart
                .draw_series(bars)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                });
        }
        chart.draw_series(std::iter::once(PathElement::new(
            [(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
            BLACK.stroke_width(1),
        )))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FAMILY, 14))
            .draw()?;
        root.present()?;
        Ok(())
    })
}

//! Draws one line chart (log-log) and one bar chart into the folder given as the first
//! argument (default: the current folder), to look at the charts' layout.

use std::path::PathBuf;

use relvid_plots::{bar_chart, line_chart, Series};

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    let series = vec![
        Series {
            name: "ingest".into(),
            points: vec![(1e6, 0.9), (5e6, 4.3), (2e7, 18.0)],
        },
        Series {
            name: "candidates".into(),
            points: vec![(1e6, 0.5), (5e6, 2.4), (2e7, 11.0)],
        },
    ];
    line_chart(
        &dir.join("demo_line.png"),
        "seconds per stage",
        "rows",
        "seconds",
        &series,
        true,
        true,
    )?;
    let categories = vec!["click".to_string(), "like".into(), "dislike".into()];
    let bars = vec![
        ("als".to_string(), vec![0.2, 0.35, -0.1]),
        ("two-tower".to_string(), vec![0.25, 0.3, -0.05]),
    ];
    bar_chart(
        &dir.join("demo_bar.png"),
        "NDCG@20 minus popularity",
        &categories,
        "delta",
        &bars,
    )?;
    println!("wrote {}/demo_line.png and demo_bar.png", dir.display());
    Ok(())
}

//! Draws real charts into a temp dir and checks the PNG files; checks the input errors.
//! The drawing tests need a font (RELVID_FONT or a system path); without one they say so
//! on stderr and return, since the charts are optional output for their callers.

use std::path::Path;

use relvid_plots::{bar_chart, font::find_font, line_chart, Series};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

fn have_font() -> bool {
    match find_font() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping: {e:#}");
            false
        }
    }
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(PNG_MAGIC),
        "{} is not a PNG",
        path.display()
    );
    // A blank 1024x640 PNG compresses to a few kB; axes, text and lines take far more.
    assert!(
        bytes.len() > 10_000,
        "{} has only {} bytes",
        path.display(),
        bytes.len()
    );
    let tmp = path.with_file_name(format!(
        "{}.tmp.png",
        path.file_name().unwrap().to_str().unwrap()
    ));
    assert!(
        !tmp.exists(),
        "temporary file {} left behind",
        tmp.display()
    );
}

fn scaling_series() -> Vec<Series> {
    vec![
        Series {
            name: "ingest".into(),
            points: vec![(1e6, 0.9), (5e6, 4.3), (2e7, 18.0)],
        },
        Series {
            name: "candidates".into(),
            points: vec![(1e6, 0.5), (5e6, 2.4), (2e7, 11.0)],
        },
    ]
}

#[test]
fn line_chart_writes_a_png_with_linear_and_log_axes() {
    if !have_font() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (log_x, log_y) in [(false, false), (true, false), (false, true), (true, true)] {
        let path = dir.path().join(format!("line_{log_x}_{log_y}.png"));
        line_chart(
            &path,
            "stage time",
            "rows",
            "seconds",
            &scaling_series(),
            log_x,
            log_y,
        )
        .unwrap();
        assert_png(&path);
    }
}

#[test]
fn line_chart_accepts_a_single_point() {
    if !have_font() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.png");
    let series = [Series {
        name: "one".into(),
        points: vec![(5e6, 3.0)],
    }];
    line_chart(&path, "one point", "rows", "s", &series, true, true).unwrap();
    assert_png(&path);
}

#[test]
fn bar_chart_writes_a_png_with_negative_values() {
    if !have_font() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/bars.png");
    let categories = vec!["click".to_string(), "like".into(), "dislike".into()];
    let series = vec![
        ("als".to_string(), vec![0.2, 0.35, -0.1]),
        ("two-tower".to_string(), vec![0.25, 0.3, -0.05]),
    ];
    bar_chart(
        &path,
        "NDCG@20 minus popularity",
        &categories,
        "delta",
        &series,
    )
    .unwrap();
    assert_png(&path);
}

#[test]
fn line_chart_rejects_no_series() {
    let err = line_chart(
        Path::new("/nonexistent/x.png"),
        "t",
        "x",
        "y",
        &[],
        false,
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no series"), "{err}");
}

#[test]
fn line_chart_rejects_a_series_without_points() {
    let series = [Series {
        name: "empty".into(),
        points: vec![],
    }];
    let err = line_chart(
        Path::new("/nonexistent/x.png"),
        "t",
        "x",
        "y",
        &series,
        false,
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("\"empty\" has no points"), "{err}");
}

#[test]
fn line_chart_rejects_non_finite_points() {
    let series = [Series {
        name: "s".into(),
        points: vec![(1.0, 2.0), (2.0, f64::NAN)],
    }];
    let err = line_chart(
        Path::new("/nonexistent/x.png"),
        "t",
        "x",
        "y",
        &series,
        false,
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("point 1 is not finite"), "{err}");
}

#[test]
fn line_chart_rejects_non_positive_values_on_a_log_axis() {
    let series = [Series {
        name: "s".into(),
        points: vec![(1.0, 0.0)],
    }];
    let err = line_chart(
        Path::new("/nonexistent/x.png"),
        "t",
        "x",
        "y",
        &series,
        false,
        true,
    )
    .unwrap_err();
    assert!(err.to_string().contains("log axis must be > 0"), "{err}");
    let series = [Series {
        name: "s".into(),
        points: vec![(-1.0, 1.0)],
    }];
    let err = line_chart(
        Path::new("/nonexistent/x.png"),
        "t",
        "x",
        "y",
        &series,
        true,
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("x = -1 on a log axis"), "{err}");
}

#[test]
fn bar_chart_rejects_mismatched_lengths() {
    let categories = vec!["a".to_string(), "b".into()];
    let series = vec![("s".to_string(), vec![1.0])];
    let err = bar_chart(
        Path::new("/nonexistent/x.png"),
        "t",
        &categories,
        "y",
        &series,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("has 1 values for 2 categories"),
        "{err}"
    );
}

#[test]
fn bar_chart_rejects_empty_input() {
    let series = vec![("s".to_string(), vec![])];
    let err = bar_chart(Path::new("/nonexistent/x.png"), "t", &[], "y", &series).unwrap_err();
    assert!(err.to_string().contains("no categories"), "{err}");
    let err = bar_chart(
        Path::new("/nonexistent/x.png"),
        "t",
        &["a".into()],
        "y",
        &[],
    )
    .unwrap_err();
    assert!(err.to_string().contains("no series"), "{err}");
}

#[test]
fn bar_chart_rejects_non_finite_values() {
    let series = vec![("s".to_string(), vec![1.0, f64::INFINITY])];
    let categories = vec!["a".to_string(), "b".into()];
    let err = bar_chart(
        Path::new("/nonexistent/x.png"),
        "t",
        &categories,
        "y",
        &series,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("value for \"b\" is not finite"),
        "{err}"
    );
}

#[test]
fn failed_write_leaves_no_file() {
    if !have_font() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A directory where the PNG should go makes the final rename fail.
    let path = dir.path().join("taken.png");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("keep"), b"x").unwrap();
    let err = line_chart(&path, "t", "x", "y", &scaling_series(), false, false).unwrap_err();
    assert!(format!("{err:#}").contains("taken.png"), "{err:#}");
    assert!(!dir.path().join("taken.png.tmp.png").exists());
}

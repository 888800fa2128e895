//! PNG rendering shared by the stages: stamp galleries, overlaid histograms, line charts
//! (linear or log axes) and confusion matrices.
//!
//! Text uses the bundled DejaVu Sans (registered once as `sans-serif`), so plots render the
//! same on machines without system fonts. Every PNG is drawn into a temporary file beside its
//! destination and renamed into place, so a failed plot never leaves half an image behind.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

/// Side of a stamp in pixels; each gallery channel holds `STAMP_SIDE²` values, row-major.
const STAMP_SIDE: usize = 21;

/// The drawing surface handed to [`save_png`]'s callback.
pub type Canvas<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Drawing failed; `message` is what plotters or the caller reported.
    #[error("{path}: cannot draw: {message}")]
    Render { path: PathBuf, message: String },
    /// The temporary file could not be created (names the directory).
    #[error(transparent)]
    Core(#[from] hits_core::CoreError),
    /// Raised inside a drawing callback, which does not know the file; [`save_png`] turns it
    /// into [`PlotError::Render`] with the path.
    #[error("cannot draw: {0}")]
    Draw(String),
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(error: DrawingAreaErrorKind<E>) -> Self {
        PlotError::Draw(error.to_string())
    }
}

pub type Result<T> = std::result::Result<T, PlotError>;

static FONT: Once = Once::new();

fn register_bundled_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        for family in ["sans-serif", "DejaVu Sans"] {
            // The bytes are a valid TrueType font checked in with the crate.
            let parsed = plotters::style::register_font(family, FontStyle::Normal, bytes).is_ok();
            assert!(parsed, "the bundled DejaVu Sans does not parse");
        }
    });
}

/// Render a `width` x `height` PNG at `path`: `draw` paints on a white canvas in a temporary
/// file in the same directory, which is renamed over `path` only if drawing succeeds.
pub fn save_png(
    path: &Path,
    width: u32,
    height: u32,
    draw: impl FnOnce(Canvas<'_>) -> Result<()>,
) -> Result<()> {
    register_bundled_font();
    let io_error = |source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    };
    // The `.png` suffix makes plotters choose the PNG encoder.
    let temp = hits_core::io::temp_file_beside(path, ".tmp.png")?;
    let with_path = |e: PlotError| match e {
        PlotError::Draw(message) => PlotError::Render {
            path: path.to_path_buf(),
            message,
        },
        other => other,
    };
    {
        let root = BitMapBackend::new(temp.path(), (width, height)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(PlotError::from)
            .map_err(with_path)?;
        draw(root.clone()).map_err(with_path)?;
        root.present().map_err(PlotError::from).map_err(with_path)?;
        // `root` drops here, before `temp` can be deleted on an error path above.
    }
    temp.persist(path).map_err(|e| io_error(e.error))?;
    Ok(())
}

/// One row of a [`stamp_gallery`]: a caption and four 21x21 images (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct StampPanel {
    pub caption: String,
    pub channels: [Vec<f32>; 4],
}

/// Pixels per stamp pixel, margins and caption height of a gallery.
const ZOOM: u32 = 6;
const GAP: u32 = 10;
const CAPTION: u32 = 18;
const TITLE: u32 = 56;

/// One row per panel, four grey-scale stamps per row, each stretched between its own 1st and
/// 99th percentile so a single hot pixel or masked sentinel does not flatten the image.
/// Non-finite pixels are drawn red.
pub fn stamp_gallery(
    path: &Path,
    title: &str,
    channel_names: [&str; 4],
    panels: &[StampPanel],
) -> Result<()> {
    for panel in panels {
        if let Some(bad) = panel
            .channels
            .iter()
            .find(|c| c.len() != STAMP_SIDE * STAMP_SIDE)
        {
            return Err(PlotError::Render {
                path: path.to_path_buf(),
                message: format!(
                    "panel '{}' has a channel of {} values, expected 441",
                    panel.caption,
                    bad.len()
                ),
            });
        }
    }
    let cell = STAMP_SIDE as u32 * ZOOM;
    let width = GAP + 4 * (cell + GAP);
    let row_height = CAPTION + cell + GAP;
    let height = TITLE + row_height * panels.len().max(1) as u32;
    save_png(path, width, height, |root| {
        root.draw(&Text::new(
            title.to_string(),
            (GAP as i32, 6),
            ("sans-serif", 20).into_font(),
        ))?;
        for (c, name) in channel_names.iter().enumerate() {
            let x = (GAP + c as u32 * (cell + GAP)) as i32;
            root.draw(&Text::new(
                name.to_string(),
                (x, 34),
                ("sans-serif", 15).into_font(),
            ))?;
        }
        for (row, panel) in panels.iter().enumerate() {
            let top = (TITLE + row as u32 * row_height) as i32;
            root.draw(&Text::new(
                panel.caption.clone(),
                (GAP as i32, top + 2),
                ("sans-serif", 13).into_font(),
            ))?;
            for (c, pixels) in panel.channels.iter().enumerate() {
                let left = (GAP + c as u32 * (cell + GAP)) as i32;
                draw_stamp(&root, pixels, left, top + CAPTION as i32)?;
            }
        }
        Ok(())
    })
}

fn draw_stamp(root: &Canvas<'_>, pixels: &[f32], left: i32, top: i32) -> Result<()> {
    let (low, high) = robust_range(pixels);
    let zoom = ZOOM as i32;
    for (i, &v) in pixels.iter().enumerate() {
        let (y, x) = ((i / STAMP_SIDE) as i32, (i % STAMP_SIDE) as i32);
        let colour = if v.is_finite() {
            let level = (((v - low) / (high - low)).clamp(0.0, 1.0) * 255.0).round() as u8;
            RGBColor(level, level, level)
        } else {
            RGBColor(220, 30, 30)
        };
        let corner = (left + x * zoom, top + y * zoom);
        root.draw(&Rectangle::new(
            [corner, (corner.0 + zoom, corner.1 + zoom)],
            colour.filled(),
        ))?;
    }
    Ok(())
}

/// 1st and 99th percentile of the finite values, widened so `high > low` always holds.
fn robust_range(values: &[f32]) -> (f32, f32) {
    let mut finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return (0.0, 1.0);
    }
    finite.sort_by(f32::total_cmp);
    let at = |q: f32| finite[((finite.len() - 1) as f32 * q).round() as usize];
    let (low, high) = (at(0.01), at(0.99));
    if high > low {
        (low, high)
    } else {
        (low - 0.5, low + 0.5)
    }
}

/// A confusion matrix as a heatmap: `counts[true class][predicted class]`, each cell shaded by
/// its share of the true class (so a rare class's errors stay visible) and labelled with the
/// count and that share.
pub fn confusion_matrix(
    path: &Path,
    title: &str,
    classes: [&str; 2],
    counts: [[usize; 2]; 2],
) -> Result<()> {
    const CELL: i32 = 170;
    const LEFT: i32 = 150;
    const TOP: i32 = 90;
    let width = (LEFT + 2 * CELL + 30) as u32;
    let height = (TOP + 2 * CELL + 60) as u32;
    save_png(path, width, height, |root| {
        let font = |size| ("sans-serif", size).into_font();
        root.draw(&Text::new(title.to_string(), (12, 10), font(20)))?;
        root.draw(&Text::new("predicted", (LEFT + CELL - 35, 40), font(15)))?;
        root.draw(&Text::new("true", (12, TOP + CELL - 8), font(15)))?;
        for (i, class) in classes.iter().enumerate() {
            let offset = i as i32 * CELL;
            root.draw(&Text::new(
                class.to_string(),
                (LEFT + offset + CELL / 2 - 20, 64),
                font(15),
            ))?;
            root.draw(&Text::new(
                class.to_string(),
                (64, TOP + offset + CELL / 2 - 8),
                font(15),
            ))?;
        }
        for (t, row) in counts.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (p, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                // White (0) to dark blue (1); text turns white on dark cells.
                let shade = |full: f64| (255.0 - share * (255.0 - full)).round() as u8;
                let fill = RGBColor(shade(20.0), shade(60.0), shade(140.0));
                let ink = if share > 0.5 { WHITE } else { BLACK };
                let (x, y) = (LEFT + p as i32 * CELL, TOP + t as i32 * CELL);
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL, y + CELL)],
                    fill.filled(),
                ))?;
                root.draw(&Rectangle::new([(x, y), (x + CELL, y + CELL)], BLACK))?;
                let style = font(24).color(&ink);
                root.draw(&Text::new(
                    count.to_string(),
                    (x + 20, y + CELL / 2 - 26),
                    style,
                ))?;
                let style = font(16).color(&ink);
                let text = format!("{:.2}% of {}", share * 100.0, classes[t]);
                root.draw(&Text::new(text, (x + 20, y + CELL / 2 + 8), style))?;
            }
        }
        Ok(())
    })
}

/// Overlaid histograms of several series over shared bins spanning all their finite values.
pub fn histograms(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[(&str, &[f64])],
    bins: usize,
    log_y: bool,
) -> Result<()> {
    let bins = bins.max(1);
    let finite = || {
        series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
    };
    let low = finite().fold(f64::INFINITY, f64::min);
    let high = finite().fold(f64::NEG_INFINITY, f64::max);
    let (low, high) = if low.is_finite() && high > low {
        (low, high)
    } else if low.is_finite() {
        (low - 0.5, low + 0.5)
    } else {
        (0.0, 1.0)
    };
    let width = (high - low) / bins as f64;
    // Each histogram becomes a step outline, so overlapping series stay readable.
    let outlines: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, values)| {
            let mut counts = vec![0usize; bins];
            for v in values.iter().filter(|v| v.is_finite()) {
                counts[(((v - low) / width) as usize).min(bins - 1)] += 1;
            }
            let floor = if log_y { 0.5 } else { 0.0 };
            let mut steps = vec![(low, floor)];
            for (b, &n) in counts.iter().enumerate() {
                let y = if log_y {
                    (n as f64).max(floor)
                } else {
                    n as f64
                };
                steps.push((low + b as f64 * width, y));
                steps.push((low + (b + 1) as f64 * width, y));
            }
            steps.push((high, floor));
            (*name, steps)
        })
        .collect();
    let top = outlines
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    save_png(path, 900, 600, |root| {
        if log_y {
            xy_chart(
                &root,
                title,
                x_label,
                "count",
                low..high,
                (0.5..top * 2.0).log_scale(),
                &outlines,
            )
        } else {
            xy_chart(
                &root,
                title,
                x_label,
                "count",
                low..high,
                0.0..top * 1.1,
                &outlines,
            )
        }
    })
}

/// Lines through `(x, y)` points, one per series; non-finite points (and non-positive ones on a
/// log axis) are skipped.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, &[(f64, f64)])],
    log_x: bool,
    log_y: bool,
) -> Result<()> {
    let usable = |&(x, y): &(f64, f64)| {
        x.is_finite() && y.is_finite() && (!log_x || x > 0.0) && (!log_y || y > 0.0)
    };
    let lines: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, points)| (*name, points.iter().copied().filter(usable).collect()))
        .collect();
    let all = || lines.iter().flat_map(|(_, p)| p.iter().copied());
    let span = |values: Vec<f64>, log: bool| {
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        match (low.is_finite(), high > low, log) {
            (true, true, _) => (low, high),
            (true, false, true) => (low / 2.0, low * 2.0),
            (true, false, false) => (low - 0.5, low + 0.5),
            (false, _, true) => (0.1, 1.0),
            (false, _, false) => (0.0, 1.0),
        }
    };
    let (x0, x1) = span(all().map(|p| p.0).collect(), log_x);
    let (y0, y1) = span(all().map(|p| p.1).collect(), log_y);
    save_png(path, 900, 600, |root| match (log_x, log_y) {
        (false, false) => xy_chart(&root, title, x_label, y_label, x0..x1, y0..y1, &lines),
        (true, false) => xy_chart(
            &root,
            title,
            x_label,
            y_label,
            (x0..x1).log_scale(),
            y0..y1,
            &lines,
        ),
        (false, true) => xy_chart(
            &root,
            title,
            x_label,
            y_label,
            x0..x1,
            (y0..y1).log_scale(),
            &lines,
        ),
        (true, true) => xy_chart(
            &root,
            title,
            x_label,
            y_label,
            (x0..x1).log_scale(),
            (y0..y1).log_scale(),
            &lines,
        ),
    })
}

/// A titled chart with a mesh, one coloured line per series and a legend.
fn xy_chart<X, Y>(
    root: &Canvas<'_>,
    title: &str,
    x_label: &str,
    y_label: &str,
    x: X,
    y: Y,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

    fn assert_png(path: &Path, width: u32, height: u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(bytes[..8], PNG_SIGNATURE, "{} is not a PNG", path.display());
        // IHDR holds the width and height as big-endian u32 at bytes 16..24.
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((w, h), (width, height));
        assert!(
            bytes.len() > 1000,
            "suspiciously small PNG: {} bytes",
            bytes.len()
        );
    }

    fn only_file(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn gallery_writes_png_of_expected_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/gallery.png");
        let gradient: Vec<f32> = (0..441).map(|i| i as f32).collect();
        let mut odd = vec![5.0f32; 441];
        odd[3] = f32::NAN;
        odd[7] = 1e8;
        let panel = |caption: &str| StampPanel {
            caption: caption.into(),
            channels: [
                gradient.clone(),
                vec![3.0; 441],
                odd.clone(),
                vec![f32::INFINITY; 441],
            ],
        };
        stamp_gallery(
            &path,
            "test gallery",
            ["t", "s", "d", "snr"],
            &[panel("a"), panel("b")],
        )
        .unwrap();
        let cell = 21 * ZOOM;
        assert_png(
            &path,
            GAP + 4 * (cell + GAP),
            TITLE + 2 * (CAPTION + cell + GAP),
        );
    }

    #[test]
    fn gallery_refuses_wrong_stamp_size_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.png");
        let panel = StampPanel {
            caption: "x".into(),
            channels: [
                vec![0.0; 441],
                vec![0.0; 440],
                vec![0.0; 441],
                vec![0.0; 441],
            ],
        };
        let err = stamp_gallery(&path, "t", ["a", "b", "c", "d"], &[panel])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.png") && err.contains("440"), "{err}");
        assert!(only_file(dir.path()).is_empty());
    }

    #[test]
    fn histograms_write_png_linear_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let a: Vec<f64> = (0..500).map(|i| (i as f64 * 0.37).sin() * 3.0).collect();
        let b: Vec<f64> = (0..300)
            .map(|i| (i as f64 * 0.11).cos() + 1.0)
            .chain([f64::NAN])
            .collect();
        for log_y in [false, true] {
            let path = dir.path().join(format!("hist-{log_y}.png"));
            histograms(
                &path,
                "two series",
                "value",
                &[("a", &a), ("b", &b)],
                30,
                log_y,
            )
            .unwrap();
            assert_png(&path, 900, 600);
        }
        let path = dir.path().join("empty.png");
        histograms(&path, "empty", "value", &[("none", &[])], 10, true).unwrap();
        assert_png(&path, 900, 600);
    }

    #[test]
    fn line_chart_writes_png_on_all_axis_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let curve: Vec<(f64, f64)> = (1..50)
            .map(|i| (i as f64, 1.0 / i as f64))
            .chain([(0.0, 1.0), (f64::NAN, 2.0)])
            .collect();
        for (log_x, log_y) in [(false, false), (true, false), (false, true), (true, true)] {
            let path = dir.path().join(format!("line-{log_x}-{log_y}.png"));
            line_chart(
                &path,
                "curve",
                "x",
                "y",
                &[("1/x", &curve), ("single", &[(2.0, 0.5)])],
                log_x,
                log_y,
            )
            .unwrap();
            assert_png(&path, 900, 600);
        }
    }

    #[test]
    fn confusion_matrix_writes_png_even_with_an_empty_class() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confusion.png");
        confusion_matrix(&path, "test", ["bogus", "real"], [[90, 10], [0, 0]]).unwrap();
        assert_png(&path, 150 + 2 * 170 + 30, 90 + 2 * 170 + 60);
    }

    #[test]
    fn failing_draw_leaves_no_file_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.png");
        let err = save_png(&path, 100, 100, |root| {
            root.fill(&RED)?;
            Err(PlotError::Draw("deliberate".into()))
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("broken.png") && err.contains("deliberate"),
            "{err}"
        );
        assert!(
            only_file(dir.path()).is_empty(),
            "left behind: {:?}",
            only_file(dir.path())
        );
    }

    #[test]
    fn robust_range_ignores_outliers_and_handles_constants() {
        let mut values: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        values[0] = -9999.0;
        values[1] = 1e8;
        let (low, high) = robust_range(&values);
        assert!(low > 0.0 && high < 1000.0, "{low} {high}");
        assert_eq!(robust_range(&[2.0; 10]), (1.5, 2.5));
        assert_eq!(robust_range(&[f32::NAN; 3]), (0.0, 1.0));
    }
}

//! The figure of a simulation: load (when known), replicas and each metric against its thresholds
//! over time, every run on the same panels, as SVG or PNG (by the file's extension).
//!
//! Text is drawn with the font embedded from `assets/fonts/` (plotters' `ab_glyph` renderer), never
//! a system font, so a PNG is the same on every machine. A long run is drawn with at most
//! [`MAX_POINTS`] points per line, each the highest value of its stretch of time (peaks matter).

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::error::SimulateError;
use super::png_text::PngBackend;
use super::report::Run;
use crate::decide::Reading;

/// The font of every text in the figure: Open Sans Regular (Apache-2.0, see
/// `assets/fonts/LICENSE-OpenSans.txt`).
static FONT: &[u8] = include_bytes!("../../assets/fonts/OpenSans-Regular.ttf");
const FAMILY: &str = "sans-serif";

/// The most points a line is drawn with.
pub const MAX_POINTS: usize = 1500;

const WIDTH: u32 = 1400;
const TITLE_HEIGHT: u32 = 70;
const PANEL_HEIGHT: u32 = 270;
const LEGEND_WIDTH: u32 = 260;

const LOAD_COLOR: RGBColor = RGBColor(60, 60, 60);
const RUN_COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
const SCALE_OUT_COLOR: RGBColor = RGBColor(214, 39, 40);
const SCALE_IN_COLOR: RGBColor = RGBColor(44, 160, 44);
const TARGET_COLOR: RGBColor = RGBColor(100, 100, 100);

/// What a horizontal reference line stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    ScaleOut,
    ScaleIn,
    Target,
    /// A target of the run with this index (drawn in its color).
    RunTarget(usize),
    Slo,
}

/// A horizontal reference line.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub label: String,
    pub value: f64,
    pub kind: LineKind,
}

/// One metric's panel.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricPanel {
    /// The metric's name in the runs' observations.
    pub name: String,
    /// The panel's title, with the unit.
    pub title: String,
    pub references: Vec<Reference>,
}

/// Everything the figure shows.
#[derive(Clone, Debug)]
pub struct Figure<'a> {
    pub title: String,
    pub subtitle: String,
    pub runs: Vec<&'a Run>,
    pub metrics: Vec<MetricPanel>,
    /// Requests per second per ready replica, in trace mode: draws each run's capacity on the
    /// load panel and its ready replicas on the replicas panel.
    pub capacity: Option<f64>,
    pub max_replicas: i32,
    /// The time the x axis counts from.
    pub start: i64,
    /// The time the x axis ends at.
    pub end: i64,
}

impl Figure<'_> {
    /// Whether any run knows its load (a backtest knows it only from a `requestRate` metric).
    fn has_load(&self) -> bool {
        self.runs
            .iter()
            .any(|run| run.rows.iter().any(|r| r.load.is_some()))
    }
}

/// Draws `figure` into `path`: SVG for `.svg`, PNG for `.png`.
pub fn write(path: &Path, figure: &Figure<'_>) -> Result<(), SimulateError> {
    let name = path.display().to_string();
    let failed = |message: String| SimulateError::Plot {
        path: name.clone(),
        message,
    };
    let bytes = render(
        figure,
        format_of(path)
            .ok_or_else(|| failed("the plot's file name must end in .svg or .png".into()))?,
    )
    .map_err(failed)?;
    std::fs::write(path, bytes).map_err(|source| SimulateError::Write {
        path: name.clone(),
        source,
    })
}

/// An image format of [`render`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

/// The format a file name asks for.
pub fn format_of(path: &Path) -> Option<Format> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => Some(Format::Svg),
        Some("png") => Some(Format::Png),
        _ => None,
    }
}

/// The figure's bytes in `format`.
pub fn render(figure: &Figure<'_>, format: Format) -> Result<Vec<u8>, String> {
    register_font()?;
    let panels = u32::from(figure.has_load()) + 1 + figure.metrics.len() as u32;
    let size = (WIDTH, TITLE_HEIGHT + PANEL_HEIGHT * panels);
    match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                draw(&root, figure)?;
                root.present().map_err(|e| e.to_string())?;
            }
            Ok(svg.into_bytes())
        }
        Format::Png => {
            let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
            let font = ab_glyph::FontRef::try_from_slice(FONT)
                .map_err(|_| "the embedded font cannot be read".to_owned())?;
            {
                let backend = PngBackend::new(BitMapBackend::with_buffer(&mut rgb, size), font);
                let root = backend.into_drawing_area();
                draw(&root, figure)?;
                root.present().map_err(|e| e.to_string())?;
            }
            encode_png(&rgb, size)
        }
    }
}

fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err("the embedded font cannot be read".into())
    }
}

/// PNG with fixed settings, so the same pixels give the same bytes.
fn encode_png(rgb: &[u8], (width, height): (u32, u32)) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Balanced);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(rgb).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// One line of a panel: points (x, y), `None` for a gap.
struct Line {
    label: String,
    color: RGBColor,
    width: u32,
    dashed: bool,
    points: Vec<(f64, Option<f64>)>,
}

fn draw<DB>(root: &DrawingArea<DB, Shift>, figure: &Figure<'_>) -> Result<(), String>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (title, body) = root.split_vertically(TITLE_HEIGHT);
    title
        .draw(&Text::new(
            figure.title.clone(),
            (20, 12),
            (FAMILY, 26).into_font().color(&BLACK),
        ))
        .map_err(e)?;
    title
        .draw(&Text::new(
            figure.subtitle.clone(),
            (20, 44),
            (FAMILY, 16).into_font().color(&LOAD_COLOR),
        ))
        .map_err(e)?;

    let span = (figure.end - figure.start).max(1);
    let (unit, unit_name) = if span > 3 * 3600 {
        (3600.0, "hours")
    } else {
        (60.0, "minutes")
    };
    let x_of = |t: i64| (t - figure.start) as f64 / unit;
    let x_max = span as f64 / unit;
    let x_desc = format!("{unit_name} since the start");
    let color = |i: usize| RUN_COLORS[i % RUN_COLORS.len()];

    let with_load = figure.has_load();
    let panels = body.split_evenly((usize::from(with_load) + 1 + figure.metrics.len(), 1));
    let mut panels = panels.iter();

    // Load, and what each run's ready replicas could serve.
    if with_load && let Some(area) = panels.next() {
        let mut lines = vec![Line {
            label: "load".into(),
            color: LOAD_COLOR,
            width: 2,
            dashed: false,
            points: figure
                .runs
                .first()
                .map(|run| run.rows.iter().map(|r| (x_of(r.time), r.load)).collect())
                .unwrap_or_default(),
        }];
        if let Some(capacity) = figure.capacity {
            for (i, run) in figure.runs.iter().enumerate() {
                lines.push(Line {
                    label: format!("{}: capacity of ready replicas", run.label),
                    color: color(i),
                    width: 1,
                    dashed: true,
                    points: run
                        .rows
                        .iter()
                        .map(|r| (x_of(r.time), Some(f64::from(r.ready) * capacity)))
                        .collect(),
                });
            }
        }
        panel(
            area,
            "Load (requests per second)",
            &x_desc,
            x_max,
            &lines,
            &[],
        )?;
    }

    // Replicas: desired (what the autoscaler set) and ready (serving).
    if let Some(area) = panels.next() {
        let mut lines = Vec::new();
        for (i, run) in figure.runs.iter().enumerate() {
            lines.push(Line {
                label: format!("{}: desired", run.label),
                color: color(i),
                width: 2,
                dashed: false,
                points: steps(
                    run.rows
                        .iter()
                        .map(|r| (x_of(r.time), f64::from(r.desired))),
                ),
            });
            if figure.capacity.is_none() {
                // A backtest has no model: no replica is ever starting.
                continue;
            }
            lines.push(Line {
                label: format!("{}: ready", run.label),
                color: color(i),
                width: 1,
                dashed: true,
                points: steps(run.rows.iter().map(|r| (x_of(r.time), f64::from(r.ready)))),
            });
        }
        let max = Reference {
            label: format!("maxReplicas {}", figure.max_replicas),
            value: f64::from(figure.max_replicas),
            kind: LineKind::ScaleOut,
        };
        panel(area, "Replicas", &x_desc, x_max, &lines, &[max])?;
    }

    for (metric, area) in figure.metrics.iter().zip(panels) {
        let lines: Vec<Line> = figure
            .runs
            .iter()
            .enumerate()
            .map(|(i, run)| Line {
                label: run.label.clone(),
                color: color(i),
                width: 2,
                dashed: false,
                points: run
                    .rows
                    .iter()
                    .map(|r| {
                        let value = r
                            .observations
                            .iter()
                            .find(|o| o.name == metric.name)
                            .and_then(|o| match o.reading {
                                Reading::Value(v) => Some(v),
                                Reading::Failed { .. } => None,
                            });
                        (x_of(r.time), value)
                    })
                    .collect(),
            })
            .collect();
        panel(
            area,
            &metric.title,
            &x_desc,
            x_max,
            &lines,
            &metric.references,
        )?;
    }
    Ok(())
}

/// A step function: each value holds until the next point.
fn steps(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, Option<f64>)> {
    let mut out: Vec<(f64, Option<f64>)> = Vec::new();
    for (x, y) in points {
        if let Some(&(_, Some(previous))) = out.last()
            && previous != y
        {
            out.push((x, Some(previous)));
        }
        out.push((x, Some(y)));
    }
    out
}

/// At most [`MAX_POINTS`] points: each the highest value of its stretch of the line (a gap when
/// the whole stretch is one).
fn thin(points: &[(f64, Option<f64>)]) -> Vec<(f64, Option<f64>)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let per = points.len().div_ceil(MAX_POINTS);
    points
        .chunks(per)
        .map(|chunk| {
            let x = chunk.first().map_or(0.0, |p| p.0);
            let y = chunk
                .iter()
                .filter_map(|p| p.1)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
            (x, y)
        })
        .collect()
}

/// One panel: its lines, its reference lines, and a legend on the right.
fn panel<DB>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    x_max: f64,
    lines: &[Line],
    references: &[Reference],
) -> Result<(), String>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let (plot_area, legend_area) = area.split_horizontally(WIDTH - LEGEND_WIDTH);
    let lines: Vec<Line> = lines
        .iter()
        .map(|l| Line {
            label: l.label.clone(),
            color: l.color,
            width: l.width,
            dashed: l.dashed,
            points: thin(&l.points),
        })
        .collect();
    let highest = lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|p| p.1))
        .chain(references.iter().map(|r| r.value))
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let y_max = if highest > 0.0 { highest * 1.12 } else { 1.0 };
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, (FAMILY, 19).into_font())
        .margin_left(10)
        .margin_right(20)
        .margin_top(6)
        .margin_bottom(6)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max.max(f64::EPSILON), 0.0..y_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .label_style((FAMILY, 14).into_font())
        .axis_desc_style((FAMILY, 14).into_font())
        .x_labels(12)
        .y_labels(6)
        .y_label_formatter(&|v| axis_number(*v))
        .x_label_formatter(&|v| axis_number(*v))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(e)?;
    for r in references {
        let color = reference_color(r.kind);
        let style = ShapeStyle {
            color: color.to_rgba(),
            filled: false,
            stroke_width: 2,
        };
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, r.value), (x_max, r.value)],
                8,
                6,
                style,
            ))
            .map_err(e)?;
    }
    // The first run (the policy) is drawn last, on top of the baseline where they overlap.
    for line in lines.iter().rev() {
        let style = ShapeStyle {
            color: line.color.to_rgba(),
            filled: false,
            stroke_width: line.width,
        };
        for segment in segments(&line.points) {
            if line.dashed {
                chart
                    .draw_series(DashedLineSeries::new(segment, 6, 4, style))
                    .map_err(e)?;
            } else {
                chart
                    .draw_series(LineSeries::new(segment, style))
                    .map_err(e)?;
            }
        }
    }

    // The legend, beside the plot so it never hides data.
    let font = (FAMILY, 14).into_font().color(&BLACK);
    let mut y = 40;
    let entries = lines
        .iter()
        .map(|l| (l.label.clone(), l.color, l.width, l.dashed))
        .chain(
            references
                .iter()
                .map(|r| (r.label.clone(), reference_color(r.kind), 2, true)),
        );
    for (label, color, width, dashed) in entries {
        let style = ShapeStyle {
            color: color.to_rgba(),
            filled: false,
            stroke_width: width.max(2),
        };
        if dashed {
            legend_area
                .draw(&PathElement::new(vec![(4, y), (12, y)], style))
                .map_err(e)?;
            legend_area
                .draw(&PathElement::new(vec![(18, y), (28, y)], style))
                .map_err(e)?;
        } else {
            legend_area
                .draw(&PathElement::new(vec![(4, y), (28, y)], style))
                .map_err(e)?;
        }
        legend_area
            .draw(&Text::new(label, (36, y - 9), font.clone()))
            .map_err(e)?;
        y += 24;
    }
    Ok(())
}

fn reference_color(kind: LineKind) -> RGBColor {
    match kind {
        LineKind::ScaleOut => SCALE_OUT_COLOR,
        LineKind::ScaleIn => SCALE_IN_COLOR,
        LineKind::Target => TARGET_COLOR,
        LineKind::RunTarget(i) => RUN_COLORS[i % RUN_COLORS.len()],
        LineKind::Slo => RGBColor(0, 0, 0),
    }
}

/// The unbroken stretches of a line.
fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for &(x, y) in points {
        match y {
            Some(y) if y.is_finite() => current.push((x, y)),
            _ => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Axis labels: no needless decimals.
fn axis_number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        super::hpa::num((v * 10.0).round() / 10.0)
    } else if a >= 0.1 {
        super::hpa::num((v * 100.0).round() / 100.0)
    } else {
        super::hpa::num(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_line_holds_each_value_until_the_next_point() {
        assert_eq!(
            steps([(0.0, 2.0), (1.0, 2.0), (2.0, 4.0)].into_iter()),
            vec![
                (0.0, Some(2.0)),
                (1.0, Some(2.0)),
                (2.0, Some(2.0)),
                (2.0, Some(4.0))
            ]
        );
    }

    #[test]
    fn long_lines_keep_the_peak_of_each_stretch() {
        let points: Vec<(f64, Option<f64>)> = (0..3000)
            .map(|i| (f64::from(i), Some(if i == 1001 { 9.0 } else { 1.0 })))
            .collect();
        let thinned = thin(&points);
        assert_eq!(thinned.len(), 1500);
        assert_eq!(thinned[500], (1000.0, Some(9.0)));
    }

    #[test]
    fn gaps_split_a_line() {
        let s = segments(&[
            (0.0, Some(1.0)),
            (1.0, None),
            (2.0, Some(2.0)),
            (3.0, Some(3.0)),
        ]);
        assert_eq!(s, vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]);
    }

    #[test]
    fn the_file_name_chooses_the_format() {
        assert_eq!(format_of(Path::new("a/out.svg")), Some(Format::Svg));
        assert_eq!(format_of(Path::new("OUT.PNG")), Some(Format::Png));
        assert_eq!(format_of(Path::new("out.pdf")), None);
    }
}

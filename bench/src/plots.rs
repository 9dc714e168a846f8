//! SVG plots of a run, written next to its JSON: plain SVG, no plotting
//! library, readable in any browser and on GitHub.
//!
//! A chart has categorical x positions (connection counts, instance counts,
//! workloads) and a linear or logarithmic y axis, with a legend.

use std::fmt::Write as _;

/// Series colors, in legend order (colorblind-safe Okabe–Ito).
const COLORS: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000",
];

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 110.0;

/// One line (or one color of bars): a value per x position, if measured.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) values: Vec<Option<f64>>,
}

/// What a chart shows.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    pub(crate) title: String,
    pub(crate) x_label: String,
    pub(crate) y_label: String,
    pub(crate) x: Vec<String>,
    pub(crate) series: Vec<Series>,
    /// A logarithmic y axis (for values over several orders of magnitude).
    pub(crate) log_y: bool,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A short label for a tick value.
fn tick_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else if v >= 1.0 || v == 0.0 {
        format!("{v}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

/// The y axis: its range and ticks.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<f64>,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, log: bool) -> Self {
        let values: Vec<f64> = values
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
            .collect();
        let max = values.iter().copied().fold(f64::MIN, f64::max);
        if log {
            let min = values.iter().copied().fold(f64::MAX, f64::min);
            let (lo, hi) = if values.is_empty() {
                (0.0, 1.0)
            } else {
                (
                    min.log10().floor(),
                    max.log10().ceil().max(min.log10().floor() + 1.0),
                )
            };
            let ticks = (lo as i32..=hi as i32).map(|e| 10f64.powi(e)).collect();
            Self { lo, hi, log, ticks }
        } else {
            let max = if values.is_empty() || max <= 0.0 {
                1.0
            } else {
                max
            };
            // 1, 2 or 5 times a power of ten, about five ticks.
            let raw = max / 5.0;
            let power = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * power)
                .find(|s| *s >= raw)
                .unwrap_or(power * 10.0);
            let hi = (max / step).ceil() * step;
            let ticks = (0..=((hi / step).round() as usize))
                .map(|i| i as f64 * step)
                .collect();
            Self {
                lo: 0.0,
                hi,
                log,
                ticks,
            }
        }
    }

    /// The fraction of the plot's height at which `v` lies (0 at the bottom).
    fn at(&self, v: f64) -> f64 {
        let v = if self.log { v.max(1e-12).log10() } else { v };
        ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
    }
}

/// The frame of a chart: background, title, axes, ticks, x labels and the
/// legend; returns the SVG so far and the y axis.
fn frame(chart: &Chart, svg: &mut String) -> Axis {
    let axis = Axis::new(
        chart
            .series
            .iter()
            .flat_map(|s| s.values.iter().flatten().copied()),
        chart.log_y,
    );
    let plot_h = HEIGHT - TOP - BOTTOM;
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="{}" y="22" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"##,
        WIDTH / 2.0,
        escape(&chart.title)
    );
    for t in &axis.ticks {
        let y = TOP + plot_h * (1.0 - axis.at(*t));
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#dddddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            tick_label(*t)
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{}" stroke="#333333"/><line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="#333333"/>"##,
        TOP + plot_h,
        WIDTH - RIGHT,
        TOP + plot_h,
        TOP + plot_h
    );
    let _ = write!(
        svg,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        escape(&chart.y_label)
    );
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        TOP + plot_h + 34.0,
        escape(&chart.x_label)
    );
    for (i, s) in chart.series.iter().enumerate() {
        let (col, row) = (i % 2, i / 2);
        let x = LEFT + col as f64 * 240.0;
        let y = HEIGHT - BOTTOM + 52.0 + row as f64 * 16.0;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{:.1}" width="12" height="8" fill="{}"/><text x="{}" y="{y:.1}">{}</text>"#,
            y - 8.0,
            COLORS[i % COLORS.len()],
            x + 16.0,
            escape(&s.name)
        );
    }
    axis
}

/// The x center of category `i` of `n`.
fn x_center(i: usize, n: usize) -> f64 {
    let band = (WIDTH - LEFT - RIGHT) / n.max(1) as f64;
    LEFT + band * (i as f64 + 0.5)
}

fn x_labels(chart: &Chart, svg: &mut String) {
    let y = HEIGHT - BOTTOM + 16.0;
    for (i, label) in chart.x.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{y}" text-anchor="middle">{}</text>"#,
            x_center(i, chart.x.len()),
            escape(label)
        );
    }
}

/// A line per series over the x categories, with a dot per measured point.
pub(crate) fn lines(chart: &Chart) -> String {
    let mut svg = String::new();
    let axis = frame(chart, &mut svg);
    x_labels(chart, &mut svg);
    let plot_h = HEIGHT - TOP - BOTTOM;
    for (i, s) in chart.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(j, v)| {
                v.map(|v| {
                    (
                        x_center(j, chart.x.len()),
                        TOP + plot_h * (1.0 - axis.at(v)),
                    )
                })
            })
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (x, y) in points {
            let _ = write!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{color}"/>"#
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// Bars grouped by x category, a color per series.
pub(crate) fn bars(chart: &Chart) -> String {
    let mut svg = String::new();
    let axis = frame(chart, &mut svg);
    x_labels(chart, &mut svg);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let band = (WIDTH - LEFT - RIGHT) / chart.x.len().max(1) as f64;
    let width = band * 0.8 / chart.series.len().max(1) as f64;
    for (i, s) in chart.series.iter().enumerate() {
        for (j, v) in s.values.iter().enumerate() {
            let Some(v) = v else { continue };
            let top = TOP + plot_h * (1.0 - axis.at(*v));
            let x = LEFT + band * j as f64 + band * 0.1 + width * i as f64;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                width.max(1.0),
                (TOP + plot_h - top).max(0.5),
                COLORS[i % COLORS.len()],
                escape(&s.name),
                tick_label((v * 10.0).round() / 10.0)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// `charts` side by side, `columns` to a row, as one SVG.
pub(crate) fn grid(charts: &[String], columns: usize) -> String {
    let columns = columns.max(1);
    let rows = charts.len().div_ceil(columns);
    let (w, h) = (
        WIDTH * columns.min(charts.len()) as f64,
        HEIGHT * rows as f64,
    );
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#
    );
    for (i, chart) in charts.iter().enumerate() {
        let (x, y) = (WIDTH * (i % columns) as f64, HEIGHT * (i / columns) as f64);
        svg.push_str(
            &chart
                .trim_end()
                .replacen("<svg ", &format!(r#"<svg x="{x}" y="{y}" "#), 1),
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(log_y: bool) -> Chart {
        Chart {
            title: "p99 <latency>".into(),
            x_label: "connections".into(),
            y_label: "ms".into(),
            x: vec!["1".into(), "10".into(), "50".into()],
            series: vec![
                Series {
                    name: "floe".into(),
                    values: vec![Some(0.2), Some(0.9), Some(1.5)],
                },
                Series {
                    name: "wasmtime serve".into(),
                    values: vec![Some(0.4), None, Some(8.5)],
                },
            ],
            log_y,
        }
    }

    #[test]
    fn a_line_chart_has_a_line_and_dots_per_series_and_escapes_text() {
        let svg = lines(&chart(true));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        // Five measured points, one missing.
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("p99 &lt;latency&gt;"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn bars_skip_what_was_not_measured() {
        let svg = bars(&chart(false));
        assert_eq!(svg.matches("<rect x=").count(), 5 + 2);
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn a_grid_places_each_chart() {
        let one = lines(&chart(true));
        let svg = grid(&[one.clone(), one.clone(), one], 2);
        assert_eq!(svg.matches("<svg").count(), 4);
        assert!(svg.contains(r#"<svg x="560" y="0" "#));
        assert!(svg.contains(r#"<svg x="0" y="340" "#));
    }

    #[test]
    fn axes_cover_the_values() {
        let log = Axis::new([0.2, 8.5].into_iter(), true);
        assert_eq!(log.ticks, vec![0.1, 1.0, 10.0]);
        assert!((log.at(0.1) - 0.0).abs() < 1e-9 && (log.at(10.0) - 1.0).abs() < 1e-9);
        let linear = Axis::new([3.0, 72.0].into_iter(), false);
        assert_eq!(linear.hi, 80.0);
        assert_eq!(linear.ticks.len(), 5);
        assert_eq!(tick_label(20_000.0), "20k");
        assert_eq!(tick_label(0.25), "0.25");
    }
}

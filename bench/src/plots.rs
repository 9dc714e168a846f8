//! SVG plots of a run, written next to its JSON, drawn with `plotters`' SVG
//! backend: readable in any browser and on GitHub.
//!
//! A chart has categorical x positions (connection counts, instance counts,
//! workloads) and a linear or logarithmic y axis, with a legend.

use std::ops::Range;

use anyhow::Context as _;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

/// Series colors, in legend order (colorblind-safe Okabe–Ito).
const COLORS: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x00, 0x00),
];
const GRID: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);
const AXIS: RGBColor = RGBColor(0x33, 0x33, 0x33);

/// The size of one chart; a grid of charts is a multiple of it.
const WIDTH: u32 = 560;
const HEIGHT: u32 = 340;
/// The legend, under the plot: two entries to a row.
const LEGEND_COLUMNS: usize = 2;
const LEGEND_ROW: u32 = 16;
/// The gap between the x axis' description and the legend.
const LEGEND_TOP: u32 = 6;
const LEGEND_LEFT: i32 = 70;
const LEGEND_COLUMN_WIDTH: i32 = 240;

/// Font sizes as `plotters` takes them (its SVG backend writes size / 1.24).
const TITLE_SIZE: f64 = 16.0;
const TEXT_SIZE: f64 = 13.5;
const FONT: &str = "sans-serif";

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

/// How a chart draws its series.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A line per series, with a dot per measured point.
    Lines,
    /// Bars grouped by x category, a color per series.
    Bars,
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

/// An axis for `plotters`: its range (in log10 units when logarithmic) and
/// the values at which it has a tick and a grid line.
///
/// The y axis is linear from 0 or logarithmic over whole decades; the x
/// axis is a row of categories, category `i` centred at `i + 0.5`.
#[derive(Debug, Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<f64>,
}

impl Axis {
    /// A y axis that covers `values` (the non-finite ones, and those not
    /// above 0 on a log axis, are left out).
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

    /// The x axis of `n` categories.
    fn categories(n: usize) -> Self {
        Self {
            lo: 0.0,
            hi: n.max(1) as f64,
            log: false,
            ticks: (0..n).map(|i| i as f64 + 0.5).collect(),
        }
    }

    /// The lowest value on the axis: where bars start.
    fn bottom(&self) -> f64 {
        if self.log {
            10f64.powf(self.lo)
        } else {
            self.lo
        }
    }

    /// The fraction of the axis' length at which `v` lies (0 at its start).
    fn at(&self, v: f64) -> f64 {
        let v = if self.log { v.max(1e-12).log10() } else { v };
        ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        limit.0 + (self.at(*value) * f64::from(limit.1 - limit.0)).round() as i32
    }

    /// Every tick is a bold grid line; there are no light ones.
    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        if self.log {
            10f64.powf(self.lo)..10f64.powf(self.hi)
        } else {
            self.lo..self.hi
        }
    }
}

/// `charts` drawn as `kind`, `columns` to a row, as one SVG document.
fn render(charts: &[Chart], columns: usize, kind: Kind) -> anyhow::Result<String> {
    let columns = columns.clamp(1, charts.len().max(1));
    let rows = charts.len().div_ceil(columns).max(1);
    let size = (WIDTH * columns as u32, HEIGHT * rows as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        for (area, chart) in root.split_evenly((rows, columns)).iter().zip(charts) {
            draw(area, chart, kind).with_context(|| format!("drawing {:?}", chart.title))?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// One chart in `area`: title, axes with their labels, the series and,
/// under the plot, the legend.
fn draw(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    chart: &Chart,
    kind: Kind,
) -> anyhow::Result<()> {
    let legend_rows = chart.series.len().div_ceil(LEGEND_COLUMNS) as u32;
    let legend_height = if legend_rows == 0 {
        0
    } else {
        LEGEND_TOP + legend_rows * LEGEND_ROW + 4
    };
    let (plot_area, legend_area) = area.split_vertically(HEIGHT.saturating_sub(legend_height));

    let y = Axis::new(
        chart
            .series
            .iter()
            .flat_map(|s| s.values.iter().flatten().copied()),
        chart.log_y,
    );
    let bottom = y.bottom();
    let n = chart.x.len();
    let text = (FONT, TEXT_SIZE).into_font();
    let mut plot = ChartBuilder::on(&plot_area)
        .caption(
            &chart.title,
            (FONT, TITLE_SIZE).into_font().style(FontStyle::Bold),
        )
        .margin_top(8)
        .margin_right(20)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(Axis::categories(n), y)?;
    let x_label = |v: &f64| {
        chart
            .x
            .get(v.floor().max(0.0) as usize)
            .cloned()
            .unwrap_or_default()
    };
    let y_label = |v: &f64| tick_label(*v);
    plot.configure_mesh()
        .disable_x_mesh()
        .bold_line_style(GRID)
        .axis_style(AXIS)
        .label_style(text.clone())
        .axis_desc_style(text.clone())
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .draw()?;

    let band_width = 0.8 / chart.series.len().max(1) as f64;
    for (i, s) in chart.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let measured = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(j, v)| v.filter(|v| v.is_finite()).map(|v| (j as f64, v)));
        match kind {
            Kind::Lines => {
                // Filled, for the dots; the line takes the width.
                let style = color.filled().stroke_width(2);
                plot.draw_series(
                    LineSeries::new(measured.map(|(j, v)| (j + 0.5, v)), style).point_size(3),
                )?;
            }
            Kind::Bars => {
                plot.draw_series(measured.map(|(j, v)| {
                    let left = j + 0.1 + band_width * i as f64;
                    Rectangle::new([(left, bottom), (left + band_width, v)], color.filled())
                }))?;
            }
        }
    }

    for (i, s) in chart.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let x = LEGEND_LEFT + LEGEND_COLUMN_WIDTH * (i % LEGEND_COLUMNS) as i32;
        let y = (LEGEND_TOP + LEGEND_ROW * (i / LEGEND_COLUMNS) as u32) as i32;
        legend_area.draw(&Rectangle::new(
            [(x, y + 2), (x + 12, y + 10)],
            color.filled(),
        ))?;
        legend_area.draw(&Text::new(s.name.as_str(), (x + 16, y), text.clone()))?;
    }
    Ok(())
}

/// A line per series over the x categories, with a dot per measured point;
/// `charts` side by side, `columns` to a row, as one SVG.
pub(crate) fn lines(charts: &[Chart], columns: usize) -> anyhow::Result<String> {
    render(charts, columns, Kind::Lines)
}

/// Bars grouped by x category, a color per series.
pub(crate) fn bars(chart: &Chart) -> anyhow::Result<String> {
    render(std::slice::from_ref(chart), 1, Kind::Bars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(log_y: bool) -> Chart {
        Chart {
            title: "p99 <latency> & more".into(),
            x_label: "connections".into(),
            y_label: "ms".into(),
            x: vec!["1".into(), "10".into(), "50".into()],
            series: vec![
                Series {
                    name: "floe".into(),
                    values: vec![Some(0.2), Some(0.9), Some(1.5)],
                },
                Series {
                    name: "wasmtime <serve> & co".into(),
                    values: vec![Some(0.4), None, Some(8.5)],
                },
            ],
            log_y,
        }
    }

    /// The SVG parsed as XML: it must be well formed.
    fn parse(svg: &str) -> roxmltree::Document<'_> {
        match roxmltree::Document::parse(svg) {
            Ok(doc) => doc,
            Err(e) => panic!("not well-formed SVG: {e}\n{svg}"),
        }
    }

    /// The texts of the document, as a reader sees them (unescaped, trimmed).
    fn texts(doc: &roxmltree::Document<'_>) -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(|t| t.trim().to_owned())
            .collect()
    }

    /// The elements named `tag` filled with series color `i`.
    fn filled<'a>(
        doc: &'a roxmltree::Document<'a>,
        tag: &str,
        i: usize,
    ) -> Vec<roxmltree::Node<'a, 'a>> {
        let RGBColor(r, g, b) = COLORS[i];
        let color = format!("#{r:02X}{g:02X}{b:02X}");
        doc.descendants()
            .filter(|n| n.has_tag_name(tag))
            .filter(|n| {
                n.attribute("fill")
                    .is_some_and(|f| f.eq_ignore_ascii_case(&color))
            })
            .collect()
    }

    fn attr(node: &roxmltree::Node<'_, '_>, name: &str) -> f64 {
        node.attribute(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn a_line_chart_is_well_formed_svg_with_title_labels_and_legend() {
        let svg = lines(&[chart(true)], 1).unwrap();
        let doc = parse(&svg);
        let root = doc.root_element();
        assert!(root.has_tag_name(("http://www.w3.org/2000/svg", "svg")));
        assert_eq!(root.attribute("width"), Some("560"));
        assert_eq!(root.attribute("height"), Some("340"));
        let texts = texts(&doc);
        for expected in [
            "p99 <latency> & more",
            "floe",
            "wasmtime <serve> & co",
            "connections",
            "ms",
            "1",
            "10",
            "50",
        ] {
            assert!(
                texts.iter().any(|t| t == expected),
                "{expected:?} missing from {texts:?}"
            );
        }
        assert!(svg.contains("p99 &lt;latency&gt; &amp; more"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn a_line_chart_skips_what_was_not_measured() {
        let svg = lines(&[chart(true)], 1).unwrap();
        let doc = parse(&svg);
        // A dot per measured point: three, then two (one missing), plus the
        // legend's swatch of each color.
        assert_eq!(filled(&doc, "circle", 0).len(), 3);
        assert_eq!(filled(&doc, "circle", 1).len(), 2);
        assert_eq!(filled(&doc, "rect", 0).len(), 1);
        assert_eq!(filled(&doc, "rect", 1).len(), 1);
        // A line per series, through its measured points only.
        let lines: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter(|n| {
                n.attribute("stroke")
                    .is_some_and(|s| s.eq_ignore_ascii_case("#E69F00"))
            })
            .collect();
        assert_eq!(lines.len(), 1);
        let points = lines[0].attribute("points").unwrap_or_default();
        assert_eq!(points.split_whitespace().count(), 2, "{points}");
    }

    #[test]
    fn a_log_axis_spaces_decades_evenly_over_orders_of_magnitude() {
        let mut wide = chart(true);
        wide.series[0].values = vec![Some(0.5), Some(5.0), Some(50_000.0)];
        let svg = lines(&[wide], 1).unwrap();
        let doc = parse(&svg);
        let texts = texts(&doc);
        for tick in ["0.1", "1", "10", "100", "1k", "10k", "100k"] {
            assert!(texts.iter().any(|t| t == tick), "{tick} missing: {texts:?}");
        }
        // 0.5 -> 5 -> 50,000: one decade, then four, up the page.
        let ys: Vec<f64> = filled(&doc, "circle", 0)
            .iter()
            .map(|c| attr(c, "cy"))
            .collect();
        assert_eq!(ys.len(), 3);
        let (first, rest) = (ys[0] - ys[1], ys[1] - ys[2]);
        assert!(first > 0.0 && rest > 0.0, "{ys:?}");
        assert!((rest / first - 4.0).abs() < 0.1, "{ys:?}");
    }

    #[test]
    fn bars_skip_what_was_not_measured_and_stand_on_the_axis() {
        let svg = bars(&chart(false)).unwrap();
        let doc = parse(&svg);
        // Three bars and a legend swatch, then two bars and a swatch.
        let floe = filled(&doc, "rect", 0);
        assert_eq!(floe.len(), 3 + 1);
        assert_eq!(filled(&doc, "rect", 1).len(), 2 + 1);
        // The bars end on the same baseline; taller values, taller bars.
        let bars = &floe[..3];
        let bottoms: Vec<f64> = bars
            .iter()
            .map(|r| attr(r, "y") + attr(r, "height"))
            .collect();
        assert!(
            bottoms.iter().all(|b| (b - bottoms[0]).abs() <= 1.0),
            "{bottoms:?}"
        );
        let heights: Vec<f64> = bars.iter().map(|r| attr(r, "height")).collect();
        assert!(
            heights[0] < heights[1] && heights[1] < heights[2],
            "{heights:?}"
        );
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn a_grid_places_each_chart() {
        let svg = lines(&[chart(true), chart(false), chart(true)], 2).unwrap();
        let doc = parse(&svg);
        let root = doc.root_element();
        assert_eq!(root.attribute("width"), Some("1120"));
        assert_eq!(root.attribute("height"), Some("680"));
        let titles = texts(&doc)
            .into_iter()
            .filter(|t| t == "p99 <latency> & more")
            .count();
        assert_eq!(titles, 3);
        // The third chart's dots are in the second row.
        let ys: Vec<f64> = filled(&doc, "circle", 0)
            .iter()
            .map(|c| attr(c, "cy"))
            .collect();
        assert_eq!(ys.len(), 9);
        assert!(ys[..6].iter().all(|y| *y < 340.0) && ys[6..].iter().all(|y| *y > 340.0));
    }

    #[test]
    fn axes_cover_the_values() {
        let log = Axis::new([0.2, 8.5].into_iter(), true);
        assert_eq!(log.ticks, vec![0.1, 1.0, 10.0]);
        assert!((log.at(0.1) - 0.0).abs() < 1e-9 && (log.at(10.0) - 1.0).abs() < 1e-9);
        assert_eq!(log.map(&1.0, (300, 0)), 150);
        let linear = Axis::new([3.0, 72.0].into_iter(), false);
        assert_eq!(linear.hi, 80.0);
        assert_eq!(linear.ticks.len(), 5);
        let x = Axis::categories(3);
        assert_eq!(x.ticks, vec![0.5, 1.5, 2.5]);
        assert_eq!(x.map(&1.5, (0, 300)), 150);
        assert_eq!(tick_label(20_000.0), "20k");
        assert_eq!(tick_label(0.25), "0.25");
    }
}

//! The memory-over-time chart: tracked heap bytes (and RSS) against time since start, as a
//! static SVG.
//!
//! The SVG uses presentation attributes only — no `<style>`, no ids, no script — so it can
//! be inlined into the HTML report without its styles or ids leaking into the page.

use std::fmt::Write as _;

use super::flamegraph::xml_escape;
use super::text::{sanitize_line, truncate_chars};
use super::units::{human_bytes, human_duration};
use crate::format::TimelinePoint;
use crate::report::Report;

const WIDTH: f64 = 1200.0;
const HEIGHT: f64 = 360.0;
/// Room left of the plot for byte labels, above it for the title and legend, below it for
/// time labels.
const LEFT: f64 = 90.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = 45.0;
/// Longest title drawn, in characters; a hostile command line cannot push the chart away.
const TITLE_CHARS: usize = 140;
/// A `memory.max` more than this many times the highest drawn value would flatten the
/// curves into the x axis, so it is only named in the legend then, not drawn.
const LIMIT_MAX_RATIO: u64 = 4;

const HEAP_COLOR: &str = "#d9480f";
const RSS_COLOR: &str = "#1c7ed6";
const LIMIT_COLOR: &str = "#c92a2a";
const GRID_COLOR: &str = "#e9ecef";
const AXIS_COLOR: &str = "#868e96";
const TEXT_COLOR: &str = "#212529";

/// Draws `report.timeline` as a self-contained SVG line chart, 1200×360.
///
/// * the tracked heap bytes as an orange line over a light area, and the RSS as a blue
///   line when any point carries an RSS (points with 0, i.e. unknown, RSS are skipped);
/// * x axis: time since the start of profiling, ticks at 1-2-5 steps in one unit chosen
///   from the length of the run (`0 s`, `0.5 s`, `1 s`…);
/// * y axis: bytes, ticks at power-of-two steps (`0 B`, `256 MiB`, `512 MiB`…) so the
///   labels read as round binary sizes;
/// * the peak as a dot with a dashed drop line, labelled `peak 1.23 GiB at 4.50 s` from
///   `report.peak_bytes` and `report.peak_time_s` (the recorder's exact peak, which the
///   bounded timeline may only approximate);
/// * `report.cgroup_limit_bytes` as a dashed red line labelled `memory.max 2.00 GiB`, unless
///   it is more than 4× the highest drawn value, in which case it is only named in the
///   legend (drawing it would squash the curves);
///
/// `title` is untrusted (it usually carries the command line): it is sanitized, shortened
/// and XML-escaped. An empty timeline gives a small valid SVG that says so.
pub fn timeline_svg(report: &Report, title: &str) -> String {
    let title = xml_escape(&truncate_chars(&sanitize_line(title), TITLE_CHARS));
    let mut points = report.timeline.clone();
    if points.is_empty() {
        return empty(&title);
    }
    // The recorder writes points in time order; sort anyway so a bad file cannot make
    // the line zig-zag backwards.
    points.sort_by_key(|p| p.time_ns);

    let peak_time = report
        .peak_time_s
        .is_finite()
        .then(|| report.peak_time_s.max(0.0));
    let last_time_s = points.last().map_or(0, |p| p.time_ns) as f64 / 1e9;
    let x_max = last_time_s.max(peak_time.unwrap_or(0.0));
    let time_axis = TimeAxis::new(x_max);

    let has_rss = points.iter().any(|p| p.rss_bytes > 0);
    let data_max = points
        .iter()
        .map(|p| p.bytes.max(p.rss_bytes))
        .max()
        .unwrap_or(0)
        .max(report.peak_bytes);
    let limit = report.cgroup_limit_bytes;
    let limit_drawn = limit.filter(|&l| l <= data_max.saturating_mul(LIMIT_MAX_RATIO));
    let byte_axis = ByteAxis::new(data_max.max(limit_drawn.unwrap_or(0)));

    let plot = Plot {
        x_max: time_axis.top,
        y_max: byte_axis.top as f64,
    };

    let mut svg = String::new();
    header(&mut svg, &title);

    // Grid and tick labels first, so the curves draw over them.
    for &(value, ref label) in &byte_axis.ticks {
        let y = plot.y(value as f64);
        let _ = writeln!(
            svg,
            r#"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="{GRID_COLOR}"/>"#,
            LEFT,
            WIDTH - RIGHT
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end" font-size="12" fill="{TEXT_COLOR}">{}</text>"#,
            LEFT - 8.0,
            y + 4.0,
            label
        );
    }
    for &(value, ref label) in &time_axis.ticks {
        let x = plot.x(value);
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="{GRID_COLOR}"/>"#,
            TOP,
            HEIGHT - BOTTOM
        );
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle" font-size="12" fill="{TEXT_COLOR}">{}</text>"#,
            HEIGHT - BOTTOM + 18.0,
            label
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="12" fill="{AXIS_COLOR}">time since start</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 6.0
    );
    let _ = writeln!(
        svg,
        r#"<polyline points="{LEFT},{TOP} {LEFT},{} {},{}" fill="none" stroke="{AXIS_COLOR}"/>"#,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM
    );

    // Heap: a filled area under the line makes "how much, for how long" readable at a glance.
    let width_ns = interval_ns(&points);
    let heap = steps(&points, |p| p.bytes, |p| p.last_bytes, width_ns, &plot);
    let line = coords(&heap);
    let (first_x, last_x) = (heap[0].0, heap[heap.len() - 1].0);
    let base = HEIGHT - BOTTOM;
    let _ = writeln!(
        svg,
        r#"<polygon points="{first_x:.1},{base:.1} {line} {last_x:.1},{base:.1}" fill="{HEAP_COLOR}" fill-opacity="0.15" stroke="none"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<polyline points="{line}" fill="none" stroke="{HEAP_COLOR}" stroke-width="2" stroke-linejoin="round"/>"#
    );
    if has_rss {
        let known: Vec<TimelinePoint> =
            points.iter().filter(|p| p.rss_bytes > 0).copied().collect();
        let rss = steps(&known, |p| p.rss_bytes, |p| p.rss_bytes, width_ns, &plot);
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{RSS_COLOR}" stroke-width="2" stroke-linejoin="round"/>"#,
            coords(&rss)
        );
    }

    if let Some(l) = limit_drawn {
        let y = plot.y(l as f64);
        let _ = writeln!(
            svg,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="{LIMIT_COLOR}" stroke-width="1.5" stroke-dasharray="6 4"/>"#,
            WIDTH - RIGHT
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end" font-size="12" fill="{LIMIT_COLOR}">memory.max {}</text>"#,
            WIDTH - RIGHT - 4.0,
            y - 5.0,
            human_bytes(l)
        );
    }

    let at = peak_time.map(|t| dot_time(&points, report.peak_bytes, t, width_ns));
    peak_marker(&mut svg, &plot, report.peak_bytes, peak_time, at);
    legend(&mut svg, has_rss, limit, limit_drawn.is_some());
    svg.push_str("</svg>\n");
    svg
}

/// Maps data values to SVG coordinates inside the plot area.
struct Plot {
    x_max: f64,
    y_max: f64,
}

impl Plot {
    fn x(&self, secs: f64) -> f64 {
        LEFT + (WIDTH - LEFT - RIGHT) * (secs / self.x_max).clamp(0.0, 1.0)
    }

    fn y(&self, bytes: f64) -> f64 {
        let top = HEIGHT - BOTTOM - TOP;
        HEIGHT - BOTTOM - top * (bytes / self.y_max).clamp(0.0, 1.0)
    }
}

/// The width of one timeline interval: points sit at the ends of equal intervals, and
/// the smallest gap between two of them is one interval (the whole span for one point).
fn interval_ns(points: &[TimelinePoint]) -> u64 {
    points
        .windows(2)
        .map(|w| w[1].time_ns.saturating_sub(w[0].time_ns))
        .filter(|&d| d > 0)
        .min()
        .unwrap_or_else(|| points.first().map_or(1, |p| p.time_ns))
        .max(1)
}

/// The chart coordinates of a series as steps. Each point is the maximum of the interval
/// that ends at its time, so it is drawn level across that interval only; across a gap
/// (no allocation activity) the level is what the previous interval ended with (`carry`).
/// A straight line from point to point would draw a quiet stretch as a ramp that never
/// happened, and carrying the maximum would draw a freed peak as still held.
fn steps(
    points: &[TimelinePoint],
    level: impl Fn(&TimelinePoint) -> u64,
    carry: impl Fn(&TimelinePoint) -> u64,
    width_ns: u64,
    plot: &Plot,
) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 4);
    let mut prev: Option<(f64, f64)> = None;
    for p in points {
        let start_s = p.time_ns.saturating_sub(width_ns) as f64 / 1e9;
        let (x0, x1) = (plot.x(start_s), plot.x(p.time_ns as f64 / 1e9));
        let y = plot.y(level(p) as f64);
        let x0 = match prev {
            Some((px, carried)) if x0 > px => {
                out.push((px, carried));
                out.push((x0, carried));
                x0
            }
            Some((px, _)) => px,
            None => x0,
        };
        out.push((x0, y));
        out.push((x1, y));
        prev = Some((x1, plot.y(carry(p) as f64)));
    }
    if let Some((px, carried)) = prev {
        out.push((px, carried));
    }
    out
}

/// Where the peak dot goes: at the exact peak time, kept inside the interval whose maximum
/// is the peak (events are timed with a clock coarser than the peak's own).
fn dot_time(points: &[TimelinePoint], peak_bytes: u64, peak_time: f64, width_ns: u64) -> f64 {
    match points.iter().find(|p| p.bytes >= peak_bytes) {
        Some(p) => {
            let end = p.time_ns as f64 / 1e9;
            let start = p.time_ns.saturating_sub(width_ns) as f64 / 1e9;
            peak_time.clamp(start, end)
        }
        None => peak_time,
    }
}

fn coords(points: &[(f64, f64)]) -> String {
    points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn header(svg: &mut String, title: &str) {
    frame(svg, title, HEIGHT, 24.0);
}

/// The `<svg>` element of a chart `height` high: white background and the title.
fn frame(svg: &mut String, title: &str, height: f64, title_y: f64) {
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" role="img" aria-label="{title}">"#
    );
    let _ = writeln!(svg, "<title>{title}</title>");
    let _ = writeln!(
        svg,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{title_y}" text-anchor="middle" font-size="17" fill="{TEXT_COLOR}">{title}</text>"#,
        WIDTH / 2.0
    );
}

/// The dot at the exact peak, a dashed drop line to the time axis, and the label, placed
/// left of the dot when the peak is near the right edge so it stays inside the chart.
fn peak_marker(
    svg: &mut String,
    plot: &Plot,
    peak_bytes: u64,
    peak_time: Option<f64>,
    at: Option<f64>,
) {
    let y = plot.y(peak_bytes as f64);
    let label = match peak_time {
        Some(t) => format!("peak {} at {}", human_bytes(peak_bytes), human_duration(t)),
        None => format!("peak {}", human_bytes(peak_bytes)),
    };
    let Some(t) = at else {
        // No trustworthy time: name the peak at the left edge without a position.
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" font-size="13" font-weight="bold" fill="{TEXT_COLOR}">{label}</text>"#,
            LEFT + 6.0,
            TOP - 6.0
        );
        return;
    };
    let x = plot.x(t);
    let _ = writeln!(
        svg,
        r#"<line x1="{x:.1}" y1="{y:.1}" x2="{x:.1}" y2="{}" stroke="{TEXT_COLOR}" stroke-width="1" stroke-dasharray="3 3"/>"#,
        HEIGHT - BOTTOM
    );
    let _ = writeln!(
        svg,
        r##"<circle cx="{x:.1}" cy="{y:.1}" r="4.5" fill="{TEXT_COLOR}" stroke="#ffffff" stroke-width="1.5"/>"##
    );
    let (anchor, dx) = if x > LEFT + (WIDTH - LEFT - RIGHT) * 0.7 {
        ("end", -8.0)
    } else {
        ("start", 8.0)
    };
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}" font-size="13" font-weight="bold" fill="{TEXT_COLOR}">{label}</text>"#,
        x + dx,
        (y - 8.0).max(TOP - 4.0)
    );
}

/// One row under the title: a swatch and a name per drawn series.
fn legend(svg: &mut String, has_rss: bool, limit: Option<u64>, limit_drawn: bool) {
    let mut entries: Vec<(String, &str, &str)> = vec![("tracked heap".to_string(), HEAP_COLOR, "")];
    if has_rss {
        entries.push(("RSS".to_string(), RSS_COLOR, ""));
    }
    if let Some(l) = limit {
        let text = if limit_drawn {
            format!("memory.max {}", human_bytes(l))
        } else {
            format!("memory.max {} (far above, not drawn)", human_bytes(l))
        };
        entries.push((text, LIMIT_COLOR, r#" stroke-dasharray="6 4""#));
    }
    let mut x = LEFT;
    let y = 48.0;
    for (text, color, dash) in entries {
        let _ = writeln!(
            svg,
            r#"<line x1="{x}" y1="{}" x2="{}" y2="{}" stroke="{color}" stroke-width="2.5"{dash}/>"#,
            y - 4.0,
            x + 22.0,
            y - 4.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{y}" font-size="12" fill="{TEXT_COLOR}">{text}</text>"#,
            x + 28.0
        );
        // Enough for the label at ~7 px per character, plus a gap.
        x += 28.0 + 7.0 * text.chars().count() as f64 + 24.0;
    }
}

fn empty(title: &str) -> String {
    let mut svg = String::new();
    frame(&mut svg, title, 90.0, 30.0);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="60" text-anchor="middle" font-size="13" fill="{AXIS_COLOR}">No memory timeline was recorded for this process.</text>"#,
        WIDTH / 2.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// Byte ticks at a power-of-two step, chosen so there are 3 to 6 intervals.
struct ByteAxis {
    /// The value at the top of the axis (a multiple of the step).
    top: u128,
    ticks: Vec<(u128, String)>,
}

impl ByteAxis {
    fn new(max: u64) -> ByteAxis {
        // u128 so the last tick above a value near u64::MAX cannot overflow.
        let max = u128::from(max.max(1));
        let step = max.div_ceil(6).next_power_of_two();
        let top = max.div_ceil(step) * step;
        let ticks = (0..=top / step)
            .map(|i| {
                let v = i * step;
                (v, human_bytes(u64::try_from(v).unwrap_or(u64::MAX)))
            })
            .collect();
        ByteAxis { top, ticks }
    }
}

/// Time ticks at a 1-2-5 step, labelled in one unit picked from the axis length so the
/// labels are short and comparable (`0 s`, `0.5 s`, `1 s`, `1.5 s`).
struct TimeAxis {
    /// The end of the axis in seconds (a multiple of the step).
    top: f64,
    ticks: Vec<(f64, String)>,
}

impl TimeAxis {
    fn new(max_secs: f64) -> TimeAxis {
        let max = if max_secs.is_finite() && max_secs > 0.0 {
            max_secs
        } else {
            1.0
        };
        let (unit, name) = match max {
            m if m < 1e-3 => (1e-6, "µs"),
            m if m < 1.0 => (1e-3, "ms"),
            m if m < 180.0 => (1.0, "s"),
            m if m < 3.0 * 3600.0 => (60.0, "min"),
            _ => (3600.0, "h"),
        };
        let in_unit = max / unit;
        let step = nice_step(in_unit / 8.0);
        let intervals = (in_unit / step - 1e-9).ceil().max(1.0) as u64;
        let decimals = if step >= 1.0 {
            0
        } else {
            (-step.log10().floor()) as usize
        };
        let ticks = (0..=intervals)
            .map(|i| {
                let v = i as f64 * step;
                (v * unit, format!("{} {name}", trim_number(v, decimals)))
            })
            .collect();
        TimeAxis {
            top: intervals as f64 * step * unit,
            ticks,
        }
    }
}

/// The smallest of 1, 2, 5 × 10ⁿ that is at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// `v` with at most `decimals` decimals and no trailing zeros: `1.50` → `1.5`, `2.0` → `2`.
fn trim_number(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels<T>(ticks: &[(T, String)]) -> Vec<&str> {
        ticks.iter().map(|(_, l)| l.as_str()).collect()
    }

    #[test]
    fn byte_ticks_are_round_binary_sizes() {
        let a = ByteAxis::new(1_300_000_000);
        assert_eq!(
            labels(&a.ticks),
            ["0 B", "256 MiB", "512 MiB", "768 MiB", "1.00 GiB", "1.25 GiB"]
        );
        assert_eq!(a.top, 1280 << 20);
        assert_eq!(
            labels(&ByteAxis::new(100).ticks),
            ["0 B", "32 B", "64 B", "96 B", "128 B"]
        );
        assert_eq!(labels(&ByteAxis::new(0).ticks), ["0 B", "1 B"]);
        let huge = ByteAxis::new(u64::MAX);
        assert_eq!(huge.ticks.last().unwrap().1, "16.0 EiB");
    }

    #[test]
    fn time_ticks_use_one_unit() {
        assert_eq!(
            labels(&TimeAxis::new(4.5).ticks),
            ["0 s", "1 s", "2 s", "3 s", "4 s", "5 s"]
        );
        assert_eq!(
            labels(&TimeAxis::new(0.35).ticks),
            ["0 ms", "50 ms", "100 ms", "150 ms", "200 ms", "250 ms", "300 ms", "350 ms"]
        );
        assert_eq!(
            labels(&TimeAxis::new(600.0).ticks),
            ["0 min", "2 min", "4 min", "6 min", "8 min", "10 min"]
        );
        assert_eq!(labels(&TimeAxis::new(0.0).ticks)[..2], ["0 s", "0.2 s"]);
        assert_eq!(TimeAxis::new(f64::NAN).top, 1.0);
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(1.0), 1.0);
        assert_eq!(nice_step(1.1), 2.0);
        assert_eq!(nice_step(6.0), 10.0);
        assert_eq!(trim_number(1.5, 2), "1.5");
        assert_eq!(trim_number(20.0, 0), "20");
    }
}

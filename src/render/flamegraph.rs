//! The flame graph of the heap at the peak, as an interactive SVG drawn by inferno.

use anyhow::Context as _;
use inferno::flamegraph::{self, color::BasicPalette, color::Palette, Direction};

use super::empty_peak::empty_peak_message;
use super::folded::folded;
use super::shell::shell_quote_command;
use super::stacks::{bound_stacks, total_bytes};
use super::text::{sanitize_line, truncate_chars};
use super::units::{group_digits, human_bytes, human_duration};
use crate::report::{Report, SymStack};

/// The default share of the snapshot below which a call path is folded into a
/// `[N small allocation paths]` frame: 0.1 %, which keeps at most about a thousand
/// visible paths per depth level, and is already narrower than a pixel at default width.
pub const DEFAULT_MIN_SHARE: f64 = 0.001;

/// How long the shell-quoted command may get in the title before it is cut with `…`.
const TITLE_COMMAND_CHARS: usize = 100;

/// Options for [`flamegraph_svg`].
#[derive(Debug, Clone, PartialEq)]
pub struct FlameOptions {
    /// Draw callee first: allocation sites at the top, their callers below, so memory
    /// allocated from one place through many paths adds up into one wide frame.
    pub reversed: bool,
    /// Replaces the generated title (`Peak heap: 12.3 MiB — ./prog args`) when set.
    pub title: Option<String>,
    /// Replaces the generated subtitle (which describes the heap *at the peak*) when set,
    /// for graphs of other snapshots such as what was left at exit.
    pub subtitle: Option<String>,
    /// Call paths holding less than this share of the drawn bytes (at least 1 byte) are
    /// folded together; see [`super::bound_stacks`]. `0.0` draws every path.
    pub min_share: f64,
}

impl Default for FlameOptions {
    fn default() -> Self {
        FlameOptions {
            reversed: false,
            title: None,
            subtitle: None,
            min_share: DEFAULT_MIN_SHARE,
        }
    }
}

/// Draws `stacks` (normally `report.at_peak`) as an SVG icicle graph: the root (`main`, or
/// the allocation site when [`FlameOptions::reversed`]) on top and callees growing
/// downwards, widths proportional to bytes live at the peak. Icicle rather than flame
/// because the title and subtitle sit on top and a profile is read from its entry point
/// down; every graph peakprof draws uses the same direction.
///
/// Colors come from inferno's memory palette, hashed from the frame name, so the same
/// function has the same color in every graph and the output is byte-for-byte
/// reproducible. Small paths are folded first (see [`FlameOptions::min_share`]) so the
/// SVG stays small however many distinct stacks the program had. Frame names, title and
/// subtitle are sanitized ([`super::text`], [`super::sanitize_frame`]) and then
/// XML-escaped by inferno.
///
/// A snapshot with no live bytes renders a small SVG that says so instead of failing.
pub fn flamegraph_svg(
    report: &Report,
    stacks: &[SymStack],
    opts: &FlameOptions,
) -> anyhow::Result<Vec<u8>> {
    let title = sanitize_line(&match &opts.title {
        Some(t) => t.clone(),
        None => default_title(report, opts.reversed),
    });

    let total = total_bytes(stacks);
    if total == 0 {
        return Ok(empty_svg(&title, &empty_peak_message(report, " ")));
    }

    let threshold = ((total as f64 * opts.min_share.max(0.0)) as u64).max(1);
    let oriented: Vec<SymStack>;
    let to_bound: &[SymStack] = if opts.reversed {
        // Reverse before folding (rather than letting inferno reverse afterwards) so the
        // small paths fold into their common *allocation-site* prefix.
        oriented = stacks
            .iter()
            .map(|s| SymStack {
                frames: s.frames.iter().rev().cloned().collect(),
                ..s.clone()
            })
            .collect();
        &oriented
    } else {
        stacks
    };
    let (bounded, folded_away) = bound_stacks(to_bound, threshold);
    let text = folded(&bounded);

    let mut options = flamegraph::Options::default();
    options.title = title;
    options.subtitle = Some(sanitize_line(&match &opts.subtitle {
        Some(s) => s.clone(),
        None => subtitle(report, stacks, folded_away),
    }));
    options.count_name = "bytes".to_string();
    options.colors = Palette::Basic(BasicPalette::Mem);
    options.deterministic = true;
    options.direction = Direction::Inverted;

    let mut svg = Vec::new();
    flamegraph::from_lines(&mut options, text.lines(), &mut svg)
        .context("drawing the flame graph")?;
    Ok(svg)
}

/// `Peak heap: 12.3 MiB — ./prog args`, the command shell-quoted and cut to ~100 chars.
fn default_title(report: &Report, reversed: bool) -> String {
    let command = truncate_chars(&shell_quote_command(&report.argv), TITLE_COMMAND_CHARS);
    let order = if reversed {
        " (allocation sites first)"
    } else {
        ""
    };
    let mut title = format!("Peak heap: {}{order}", human_bytes(report.peak_bytes));
    if !command.is_empty() {
        title.push_str(" — ");
        title.push_str(&command);
    }
    title
}

/// `live heap at the peak, reached after 1.24 s · peak RSS 40.0 MiB · 1,234 allocations live`
fn subtitle(report: &Report, stacks: &[SymStack], folded_away: usize) -> String {
    let live: u64 = super::stacks::total_count(stacks);
    let mut parts = vec![
        format!(
            "live heap at the peak, reached after {}",
            human_duration(report.peak_time_s)
        ),
        format!("peak RSS {}", human_bytes(report.peak_rss_bytes)),
        // Sampled, only the sampled blocks are counted: not the live set's size.
        if report.sample_rate != 0 {
            super::units::count_of(live, "sampled allocation")
        } else {
            format!("{} live", super::units::count_of(live, "allocation"))
        },
    ];
    if report.sample_rate != 0 {
        parts.push(format!(
            "sampled every {} (sizes are estimates)",
            human_bytes(report.sample_rate)
        ));
    }
    if folded_away > 0 {
        parts.push(format!(
            "{} small paths folded",
            group_digits(folded_away as u64)
        ));
    }
    parts.join(" · ")
}

/// A minimal stand-alone SVG for a snapshot with nothing to draw; inferno refuses empty
/// input, and a missing file would look like a crash to the user.
pub(crate) fn empty_svg(title: &str, message: &str) -> Vec<u8> {
    format!(
        concat!(
            "<?xml version=\"1.0\" standalone=\"no\"?>\n",
            "<svg version=\"1.1\" width=\"1200\" height=\"90\" viewBox=\"0 0 1200 90\" ",
            "xmlns=\"http://www.w3.org/2000/svg\">\n",
            "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#eef2ee\"/>\n",
            "<text x=\"50%\" y=\"30\" text-anchor=\"middle\" font-family=\"monospace\" ",
            "font-size=\"17\">{}</text>\n",
            "<text x=\"50%\" y=\"60\" text-anchor=\"middle\" font-family=\"monospace\" ",
            "font-size=\"12\">{}</text>\n",
            "</svg>\n"
        ),
        xml_escape(title),
        xml_escape(message)
    )
    .into_bytes()
}

pub(crate) fn xml_escape(s: &str) -> String {
    // Copies the runs between special characters whole: the report page escapes two whole
    // flamegraphs this way, and a push per character was a tenth of a short run's report.
    let mut out = String::with_capacity(s.len() + s.len() / 16);
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&apos;",
            _ => continue,
        };
        // ASCII bytes are always character boundaries.
        out.push_str(&s[start..i]);
        out.push_str(entity);
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(argv: &[&str]) -> Report {
        Report {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            peak_bytes: 12_900_000,
            peak_time_s: 1.2449,
            peak_rss_bytes: 40 << 20,
            ..Report::default()
        }
    }

    #[test]
    fn title_names_the_peak_and_the_command() {
        let r = report(&["./prog", "a b"]);
        assert_eq!(
            default_title(&r, false),
            "Peak heap: 12.3 MiB — ./prog 'a b'"
        );
        assert_eq!(
            default_title(&r, true),
            "Peak heap: 12.3 MiB (allocation sites first) — ./prog 'a b'"
        );
        assert_eq!(default_title(&report(&[]), false), "Peak heap: 12.3 MiB");
        let long = "x".repeat(300);
        let t = default_title(&report(&["./prog", &long]), false);
        assert_eq!(
            t.chars().count(),
            "Peak heap: 12.3 MiB — ".chars().count() + 100
        );
        assert!(t.ends_with('…'));
    }

    #[test]
    fn subtitle_uses_report_fields() {
        let stacks = [
            SymStack {
                frames: vec!["a".into()],
                bytes: 1,
                count: 1000,
            },
            SymStack {
                frames: vec!["b".into()],
                bytes: 1,
                count: 234,
            },
        ];
        assert_eq!(
            subtitle(&report(&[]), &stacks, 0),
            "live heap at the peak, reached after 1.24 s · peak RSS 40.0 MiB · 1,234 allocations live"
        );
        let mut sampled = report(&[]);
        sampled.sample_rate = 512 * 1024;
        assert_eq!(
            subtitle(&sampled, &stacks, 3000),
            "live heap at the peak, reached after 1.24 s · peak RSS 40.0 MiB · 1,234 sampled \
             allocations · sampled every 512 KiB (sizes are estimates) · 3,000 small paths folded"
        );
    }

    #[test]
    fn xml_escape_covers_markup() {
        assert_eq!(
            xml_escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
        assert_eq!(
            xml_escape("é<ü>ß"),
            "é&lt;ü&gt;ß",
            "multi-byte text around markup"
        );
        assert_eq!(xml_escape(""), "");
        assert_eq!(xml_escape("plain"), "plain");
    }
}

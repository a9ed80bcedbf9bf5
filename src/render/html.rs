//! The offline HTML report (`index.html`): one page with the numbers, the timeline, both
//! flame graphs, the largest call paths and the process list.
//!
//! Everything is inline — no CDN, no fetch — so the page can be mailed or attached to a
//! ticket. The page itself has no script; the flame graphs bring inferno's.
//!
//! # Why the flame graphs are in `<iframe srcdoc>` and not inlined
//!
//! inferno's SVG script is written for a standalone document: it declares its functions
//! and state as globals (`init`, `search`, `zoom`, `details`…), looks elements up by fixed
//! ids (`frames`, `details`, `search`, `matched`, `unzoom`), takes
//! `document.getElementsByTagName("svg")[0]` as *its* SVG, and listens for clicks and
//! keys on `window`. Two graphs inlined in one page would overwrite each other's
//! functions, share ids, and the first graph would grab the timeline chart as its SVG.
//! Each graph therefore gets its own document in an `<iframe srcdoc>`; the SVG is
//! otherwise unmodified. srcdoc (rather than a `data:` URI) keeps the frame same-origin,
//! so the search's `prompt()` is allowed, and needs only attribute escaping.
//!
//! Frame names are XML-escaped by inferno inside the SVG, and the whole document is
//! attribute-escaped again for `srcdoc`, so a name reaches the frame's parser as text.
//!
//! The page is also well-formed XML (self-closed void elements, every attribute quoted,
//! no raw `&`), which lets the tests parse it strictly.

use std::fmt::Write as _;

use super::empty_peak::empty_peak_message;
use super::flamegraph::xml_escape;
use super::shell::shell_quote_command;
use super::stacks::{merge_identical, total_bytes};
use super::terminal::{compact_path, exit_text};
use super::text::{sanitize_line, truncate_chars};
use super::units::{group_digits, human_bytes, human_duration};
use crate::report::Report;

/// How many call paths the table lists.
const TOP_PATHS: usize = 25;
/// How many callers a table row shows before `… N more`.
const MAX_CALLERS: usize = 12;
/// How many warnings are listed before the rest are only counted.
const MAX_WARNINGS: usize = 50;
/// Longest command line shown, in characters.
const COMMAND_CHARS: usize = 2000;

/// One row of the process list, for runs where the program started child processes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessRow {
    pub pid: u32,
    pub ppid: u32,
    /// The command line, shell-quoted on one line (untrusted; escaped when rendered).
    pub command: String,
    pub peak_bytes: u64,
    pub peak_rss_bytes: u64,
    /// How the process ended, already worded (`exit code 0`, `killed by SIGKILL`).
    pub exit: String,
    /// The process's report directory, relative to the page; linked as `DIR/index.html`.
    /// `None` when its reports were not rendered (see `peakprof run --all-processes`).
    pub dir: Option<String>,
}

/// Renders the self-contained HTML report of one process.
///
/// * `flame` and `flame_reversed` are the SVGs from [`super::flamegraph_svg`] (normal and
///   [`super::FlameOptions::reversed`]); each is shown in its own `<iframe srcdoc>` (see the
///   module documentation for why) sized to the graph's height;
/// * `timeline` is the SVG from [`super::timeline_svg`], inlined (it has no script, style or
///   ids, so it cannot clash with the page);
/// * `processes` is listed as a table when it has more than one row.
///
/// The header shows the command, how the process ended, peak heap (and when), peak RSS,
/// and a note on why RSS differs from the heap peak; then warnings, the timeline, the two
/// graphs, and a table of the largest call paths at the peak (share, bytes, allocations,
/// allocation site, callers). All text from the profiled program is sanitized and
/// escaped.
pub fn index_html(
    report: &Report,
    processes: &[ProcessRow],
    flame: &str,
    flame_reversed: &str,
    timeline: &str,
) -> String {
    let mut h = String::with_capacity(flame.len() * 2 + flame_reversed.len() * 2 + 16_384);
    let command = shell_quote_command(&report.argv);
    let short = truncate_chars(&command, 80);
    let _ = write!(
        h,
        concat!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n",
            "<title>peakprof: {}</title>\n<style>{}</style>\n</head>\n<body>\n<main>\n"
        ),
        esc(if short.is_empty() { "report" } else { &short }),
        CSS
    );

    header(&mut h, report, &command);
    warnings(&mut h, &report.warnings);

    let _ = write!(
        h,
        "<section>\n<h2>Memory over time</h2>\n<div class=\"chart\">{}</div>\n</section>\n",
        strip_prolog(timeline)
    );
    let _ = write!(
        h,
        concat!(
            "<section>\n<h2>Live heap at the peak</h2>\n",
            "<p class=\"hint\">Callers above callees; width is bytes live at the peak. ",
            "Click a frame to zoom, Ctrl-F or <em>Search</em> (top right) to highlight functions.</p>\n",
            "{}</section>\n",
            "<section>\n<h2>Allocation sites first</h2>\n",
            "<p class=\"hint\">The same snapshot upside down: each allocation site on top, ",
            "so memory allocated from one place through many paths adds up.</p>\n",
            "{}</section>\n"
        ),
        flame_frame(flame, "Flame graph of the heap at the peak"),
        flame_frame(flame_reversed, "Flame graph by allocation site"),
    );

    top_paths(&mut h, report);
    if processes.len() > 1 {
        process_table(&mut h, processes);
    }
    h.push_str(concat!(
        "<footer>Generated by peakprof. This page is self-contained and works offline.</footer>\n",
        "</main>\n</body>\n</html>\n"
    ));
    h
}

/// Escapes untrusted text for HTML text and double- or single-quoted attributes, after
/// replacing control characters (which HTML forbids or would render oddly).
fn esc(s: &str) -> String {
    xml_escape(&sanitize_line(s))
}

fn header(h: &mut String, r: &Report, command: &str) {
    let _ = write!(
        h,
        "<header>\n<h1>peakprof report</h1>\n<p class=\"command\"><code>{}</code></p>\n<dl class=\"facts\">\n",
        esc(&truncate_chars(
            if command.is_empty() { "?" } else { command },
            COMMAND_CHARS
        ))
    );
    let mut fact = |name: &str, value: String, detail: String| {
        let _ = writeln!(
            h,
            "<div><dt>{name}</dt><dd>{value}<span>{detail}</span></dd></div>"
        );
    };
    fact(
        "Peak heap",
        human_bytes(r.peak_bytes),
        format!("after {}", human_duration(r.peak_time_s)),
    );
    fact(
        "Peak RSS",
        human_bytes(r.peak_rss_bytes),
        "resident set, whole process".to_string(),
    );
    if r.still_running() {
        // Its live files say neither how long it has run nor how it will end.
        fact(
            "Status",
            "still running".to_string(),
            "its state when this report was made".to_string(),
        );
    } else {
        fact(
            "Ended",
            esc(&exit_text(r.exit)),
            esc(&end_text(&r.end, r.duration_s)),
        );
    }
    let leaked = r.leaked_bytes();
    let count = super::leaks::leaked_count_words(r);
    match super::leaks::not_an_exit(r) {
        Some(_) if r.still_running() => fact(
            "Live now",
            human_bytes(leaked),
            format!("{count}, when this report was made"),
        ),
        Some(when) => fact(
            "Live at the end",
            human_bytes(leaked),
            format!("{count}, {when}"),
        ),
        None => fact("Left at exit", human_bytes(leaked), count),
    }
    fact(
        "Allocated in total",
        human_bytes(r.total_alloc_bytes),
        super::units::count_of(r.total_allocs, "allocation"),
    );
    if let Some(limit) = r.cgroup_limit_bytes {
        fact("memory.max", human_bytes(limit), "cgroup limit".to_string());
    }
    fact(
        "Process",
        format!("pid {}", r.pid),
        format!("parent {}", r.ppid),
    );
    h.push_str("</dl>\n");

    let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(&rss_note(r)));
    if r.sample_rate != 0 {
        let _ = writeln!(
            h,
            "<p class=\"note\">Sampled every {} of allocation: sizes are estimates.</p>",
            human_bytes(r.sample_rate)
        );
    }
    h.push_str("</header>\n");
}

/// `after 3.00 s` plus what the end reason means when it is not a plain exit.
fn end_text(end: &str, duration_s: f64) -> String {
    let after = format!("after {}", human_duration(duration_s));
    let why = match end {
        "" | "exit" => return after,
        "fast-exit" => "called _exit".to_string(),
        "signal" => "died of a signal".to_string(),
        "killed" => "killed without a final profile (SIGKILL or OOM killer)".to_string(),
        "exec" => "replaced itself with exec".to_string(),
        "snapshot" => "snapshot of a running process".to_string(),
        "limit-stop" => "stopped when its heap exceeded the --limit".to_string(),
        other => other.to_string(),
    };
    format!("{after}, {why}")
}

/// Why peak RSS and peak heap differ, with the actual gap, so the two numbers in the
/// header are not read as a contradiction.
fn rss_note(r: &Report) -> String {
    let (heap, rss) = (r.peak_bytes, r.peak_rss_bytes);
    if rss == 0 {
        return "The peak RSS was not measured.".to_string();
    }
    if rss >= heap {
        format!(
            "Peak RSS is {} above the peak heap. The heap counts only the bytes the program \
             asked for (malloc, new, …); RSS is all the memory the kernel kept resident for \
             the process: allocator overhead and fragmentation, freed memory the allocator \
             has not returned to the OS, and memory that is not heap at all — thread stacks, \
             the code and data of the program and its libraries, file mappings. The two \
             peaks need not happen at the same moment.",
            human_bytes(rss - heap)
        )
    } else {
        format!(
            "Peak RSS is {} below the peak heap: memory that was allocated but never \
             written is not resident yet, so it does not count in RSS.",
            human_bytes(heap - rss)
        )
    }
}

fn warnings(h: &mut String, warnings: &[String]) {
    if warnings.is_empty() {
        return;
    }
    h.push_str("<section class=\"warnings\">\n<h2>Warnings</h2>\n<ul>\n");
    for w in warnings.iter().take(MAX_WARNINGS) {
        let _ = writeln!(h, "<li>{}</li>", esc(w));
    }
    if warnings.len() > MAX_WARNINGS {
        let _ = writeln!(h, "<li>… and {} more</li>", warnings.len() - MAX_WARNINGS);
    }
    h.push_str("</ul>\n</section>\n");
}

/// Drops an XML declaration or doctype before the root `<svg`, which would be stray text
/// (or a quirks-mode trigger) inside HTML.
fn strip_prolog(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

/// The graph's own height, from the `height="N"` of its root element, so the frame needs
/// no scroll bar.
fn svg_height(svg: &str) -> Option<u32> {
    let root = strip_prolog(svg);
    let tag = &root[..root.find('>')?];
    let start = tag.find(" height=\"")? + " height=\"".len();
    let end = start + tag[start..].find('"')?;
    tag[start..end].parse::<f64>().ok().map(|h| h.ceil() as u32)
}

/// A script placed before the graph in its frame. inferno records zoom and search in the
/// page URL with `history.replaceState`; a srcdoc document (`about:srcdoc`) may not
/// change its URL, so the call throws — and it sits in the middle of inferno's search and
/// reset handlers, which would then stop half-way. This makes it a no-op when refused.
/// (No `<` or `&` in it: the frame document stays well-formed XML.)
const REPLACE_STATE_SHIM: &str = "(function () { var h = window.history, r = h.replaceState; \
h.replaceState = function () { try { return r.apply(h, arguments); } catch (e) { return undefined; } }; })();";

/// An `<iframe srcdoc>` holding one inferno SVG in a minimal HTML document.
fn flame_frame(svg: &str, title: &str) -> String {
    let height = svg_height(svg).unwrap_or(400) + 4;
    let doc = format!(
        concat!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"/>",
            "<style>html, body {{ margin: 0; padding: 0; background: #fff; }} svg {{ display: block; width: 100%; }}</style>",
            "<script>{}</script></head><body>{}</body></html>"
        ),
        REPLACE_STATE_SHIM,
        strip_prolog(svg)
    );
    format!(
        "<iframe class=\"flame\" title=\"{}\" style=\"height: {height}px\" srcdoc=\"{}\"></iframe>\n",
        esc(title),
        // Not `esc`: the SVG's own whitespace (newlines in its script) must survive.
        xml_escape(&doc)
    )
}

fn top_paths(h: &mut String, r: &Report) {
    let paths = merge_identical(&r.at_peak);
    h.push_str("<section>\n<h2>Largest call paths at the peak</h2>\n");
    if paths.is_empty() {
        let _ = writeln!(h, "<p>{}</p>\n</section>", esc(&empty_peak_message(r, " ")));
        return;
    }
    let total = total_bytes(&paths);
    // Sampled, a path's count is of its sampled blocks, not of all it held.
    let counts = if r.sample_rate != 0 {
        "Samples"
    } else {
        "Allocations"
    };
    let _ = write!(
        h,
        concat!(
            "<table class=\"paths\">\n<thead><tr><th class=\"num\">Share</th><th class=\"num\">Bytes</th>",
            "<th class=\"num\">{}</th><th>Allocation site</th><th>Called from</th></tr></thead>\n<tbody>\n"
        ),
        counts
    );
    for s in paths.iter().take(TOP_PATHS) {
        let share = 100.0 * s.bytes as f64 / total as f64;
        let (leaf, callers) = match super::sites::up_to_site(&s.frames).split_last() {
            Some((leaf, callers)) => (&**leaf, callers),
            None => ("[unknown]", &[][..]),
        };
        let _ = writeln!(
            h,
            concat!(
                "<tr><td class=\"num share\" style=\"--share: {:.1}%\">{:.1}%</td>",
                "<td class=\"num\" title=\"{} bytes\">{}</td><td class=\"num\">{}</td>",
                "<td class=\"site\"><code>{}</code></td><td class=\"callers\">{}</td></tr>"
            ),
            share,
            share,
            group_digits(s.bytes),
            human_bytes(s.bytes),
            group_digits(s.count),
            esc(leaf),
            callers_html(callers)
        );
    }
    h.push_str("</tbody>\n</table>\n");
    if paths.len() > TOP_PATHS {
        let rest = &paths[TOP_PATHS..];
        let _ = writeln!(
            h,
            "<p class=\"hint\">… {} more paths hold {}.</p>",
            group_digits(rest.len() as u64),
            human_bytes(total_bytes(rest))
        );
    }
    h.push_str("</section>\n");
}

/// Callers nearest first, as the terminal summary words them (locations dropped, repeated
/// recursive frames as `name ×N`), at most [`MAX_CALLERS`].
fn callers_html<S: AsRef<str>>(callers: &[S]) -> String {
    if callers.is_empty() {
        return "<span class=\"dim\">(root)</span>".to_string();
    }
    // `compact_path` treats its last frame as the leaf and keeps its location; give it a
    // placeholder leaf so every real caller is worded alike, then drop the placeholder.
    let mut frames: Vec<&str> = callers.iter().map(AsRef::as_ref).collect();
    frames.push("");
    let compact = compact_path(&frames);
    let parts: Vec<&str> = compact.split(" ← ").skip(1).collect();
    let mut out: Vec<String> = parts
        .iter()
        .take(MAX_CALLERS)
        .map(|p| format!("<code>{}</code>", esc(p)))
        .collect();
    if parts.len() > MAX_CALLERS {
        out.push(format!(
            "<span class=\"dim\">… {} more</span>",
            parts.len() - MAX_CALLERS
        ));
    }
    out.join(" <span class=\"dim\">←</span> ")
}

fn process_table(h: &mut String, processes: &[ProcessRow]) {
    h.push_str(concat!(
        "<section>\n<h2>Processes</h2>\n<table class=\"procs\">\n<thead><tr><th class=\"num\">PID</th>",
        "<th class=\"num\">Parent</th><th>Command</th><th class=\"num\">Peak heap</th>",
        "<th class=\"num\">Peak RSS</th><th>Ended</th><th>Report</th></tr></thead>\n<tbody>\n"
    ));
    for p in processes.iter().take(MAX_PROCESS_ROWS) {
        let link = match &p.dir {
            Some(dir) => format!("<a href=\"{}\">{}</a>", esc(&dir_href(dir)), esc(dir)),
            None => "not rendered".to_string(),
        };
        let _ = writeln!(
            h,
            concat!(
                "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td><code>{}</code></td>",
                "<td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td>",
                "<td>{}</td></tr>"
            ),
            p.pid,
            p.ppid,
            esc(&truncate_chars(&p.command, 200)),
            human_bytes(p.peak_bytes),
            human_bytes(p.peak_rss_bytes),
            esc(&p.exit),
            link
        );
    }
    if processes.len() > MAX_PROCESS_ROWS {
        let _ = writeln!(
            h,
            "<tr><td colspan=\"7\">… {} more processes with smaller peaks: all are listed in summary.json</td></tr>",
            processes.len() - MAX_PROCESS_ROWS
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// Rows of the page's process table (largest peaks first); the rest are counted. A tree of
/// thousands of processes would otherwise make the page grow without bound.
const MAX_PROCESS_ROWS: usize = 200;

/// A relative link to a process's report. The directory name can carry the program's
/// name, so anything that could read as a URL scheme (`javascript:`) is made a path with
/// `./`, and `#`/`?` are percent-encoded so they stay part of the path.
fn dir_href(dir: &str) -> String {
    let dir = dir.trim_end_matches('/');
    let path = dir
        .replace('%', "%25")
        .replace('#', "%23")
        .replace('?', "%3F");
    let needs_dot = match path.find([':', '/']) {
        Some(i) => path[i..].starts_with(':'),
        None => false,
    };
    let prefix = if needs_dot { "./" } else { "" };
    format!("{prefix}{path}/index.html")
}

/// The page style: system fonts, a 1240 px column, quiet tables. No `&` or `<` so the
/// page stays well-formed XML.
const CSS: &str = r#"
:root { color-scheme: light; --fg: #212529; --dim: #6c757d; --line: #dee2e6; --accent: #d9480f; }
* { box-sizing: border-box; }
body { margin: 0; background: #f8f9fa; color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 20px 40px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 8px; }
section, header { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 16px 20px; margin: 0 0 18px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.command code { display: block; white-space: pre-wrap; word-break: break-all;
  background: #f1f3f5; padding: 8px 10px; border-radius: 6px; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr));
  gap: 10px; margin: 14px 0; }
.facts div { border-left: 3px solid var(--accent); padding: 2px 10px; }
.facts dt { color: var(--dim); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.facts dd { margin: 0; font-size: 20px; font-weight: 600; }
.facts dd span { display: block; font-size: 12px; font-weight: 400; color: var(--dim); }
.note, .hint { color: var(--dim); font-size: 13px; margin: 6px 0; max-width: 110ch; }
.warnings { border-color: #ffd43b; background: #fff9db; }
.warnings ul { margin: 0; padding-left: 20px; }
.chart svg { display: block; width: 100%; height: auto; }
iframe.flame { display: block; width: 100%; border: 0; }
table { width: 100%; border-collapse: collapse; font-size: 14px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--dim); font-weight: 600; }
.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.share { min-width: 70px;
  background: linear-gradient(to right, #ffe8cc var(--share), transparent var(--share)); }
.site code { word-break: break-all; }
.callers { font-size: 12px; color: var(--fg); }
.callers code { font-size: 12px; }
.dim { color: var(--dim); }
footer { color: var(--dim); font-size: 12px; text-align: center; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_cannot_become_schemes() {
        assert_eq!(dir_href("pid-12"), "pid-12/index.html");
        assert_eq!(dir_href("a/b/"), "a/b/index.html");
        assert_eq!(
            dir_href("javascript:alert(1)"),
            "./javascript:alert(1)/index.html"
        );
        assert_eq!(dir_href("x/y:z"), "x/y:z/index.html");
        assert_eq!(dir_href("a#b?c%"), "a%23b%3Fc%25/index.html");
    }

    #[test]
    fn svg_heights() {
        assert_eq!(
            svg_height(
                r#"<?xml?><!DOCTYPE svg><svg version="1.1" width="1200" height="162" onload="x">"#
            ),
            Some(162)
        );
        assert_eq!(svg_height(r#"<svg width="1" viewBox="0 0 1 1">"#), None);
        assert_eq!(svg_height("garbage"), None);
    }

    #[test]
    fn rss_notes() {
        let mut r = Report {
            peak_bytes: 10 << 20,
            peak_rss_bytes: 30 << 20,
            ..Report::default()
        };
        assert!(rss_note(&r).starts_with("Peak RSS is 20.0 MiB above the peak heap."));
        r.peak_rss_bytes = 4 << 20;
        assert!(rss_note(&r).starts_with("Peak RSS is 6.00 MiB below the peak heap"));
        r.peak_rss_bytes = 0;
        assert_eq!(rss_note(&r), "The peak RSS was not measured.");
    }

    #[test]
    fn callers_are_compacted_nearest_first() {
        let frames: Vec<String> = [
            "main (m.rs:1)",
            "rec (r.rs:2)",
            "rec (r.rs:3)",
            "f (f.rs:4)",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            callers_html(&frames),
            "<code>f</code> <span class=\"dim\">←</span> <code>rec ×2</code> \
             <span class=\"dim\">←</span> <code>main</code>"
        );
        assert_eq!(
            callers_html::<&str>(&[]),
            "<span class=\"dim\">(root)</span>"
        );
    }
}

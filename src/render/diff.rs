//! Comparing two runs: which call paths held more or less memory at the peak.
//!
//! Call paths are matched by their frame names, so the comparison survives rebuilds (the
//! addresses move, the names do not) but a renamed function or a moved line shows up as
//! one path shrinking and another growing.

use crate::fast_map::FastMap;
use std::fmt::Write as _;

use anyhow::Context as _;
use inferno::flamegraph::{self, Direction};
use serde_json::{json, Value};

use super::flamegraph::empty_svg;
use super::folded::folded_frames;
use super::stacks::total_bytes;
use super::terminal::compact_path;
use super::text::{sanitize_line, truncate_chars};
use super::units::human_bytes;
use crate::report::{FrameName, Report, SymStack};

/// Paths holding less than this share of the larger of the two snapshots, in both, are
/// drawn as one `[N small allocation paths]` frame so the SVG stays small.
const MIN_SHARE: f64 = 0.001;
/// Width of the text summary's lines.
const WIDTH: usize = 100;

/// Renders the inferno differential folded format, one line per call path:
/// `root;...;leaf OLD_BYTES NEW_BYTES`.
///
/// Frames are sanitized exactly as in [`super::folded`] (so a hostile name cannot add a
/// frame, a line or a third count); paths identical after sanitizing are merged; paths
/// with 0 bytes in both are dropped; lines are sorted.
pub fn diff_folded(old: &[SymStack], new: &[SymStack]) -> String {
    let mut merged: FastMap<String, [u64; 2]> = FastMap::default();
    for (i, stacks) in [old, new].into_iter().enumerate() {
        for s in stacks {
            let v = merged.entry(folded_frames(&s.frames)).or_insert([0, 0]);
            v[i] = v[i].saturating_add(s.bytes);
        }
    }
    let mut lines: Vec<String> = merged
        .into_iter()
        .filter(|(_, v)| *v != [0, 0])
        .map(|(frames, [a, b])| format!("{frames} {a} {b}\n"))
        .collect();
    lines.sort_unstable();
    lines.concat()
}

/// Draws a differential flame graph (icicle, like [`super::flamegraph_svg`]) of
/// `new.at_peak` against `old.at_peak`: frame widths are the bytes in `new`, the color is
/// the change — red grew, blue shrank, the deeper the larger the change. A path that
/// vanished has no width in `new`; [`diff_summary`] lists it.
///
/// The title is `Peak heap: 100 MiB -> 140 MiB (+40.0%)`. Paths under 0.1 % of the
/// larger snapshot in both runs are folded into one `[N small allocation paths]` root
/// frame. When neither run held anything at its peak, a small SVG says so.
pub fn diff_svg(old: &Report, new: &Report) -> anyhow::Result<Vec<u8>> {
    let title = diff_title(old.peak_bytes, new.peak_bytes);
    let max_total = total_bytes(&old.at_peak).max(total_bytes(&new.at_peak));
    if max_total == 0 {
        return Ok(empty_svg(
            &title,
            "Neither run had heap allocations live at its peak.",
        ));
    }
    let threshold = ((max_total as f64 * MIN_SHARE) as u64).max(1);
    let text = fold_small(&diff_folded(&old.at_peak, &new.at_peak), threshold);

    let mut options = flamegraph::Options::default();
    options.title = sanitize_line(&title);
    options.subtitle = Some(sanitize_line(&format!(
        "widths: the new run · red grew, blue shrank · peak RSS {} -> {}",
        human_bytes(old.peak_rss_bytes),
        human_bytes(new.peak_rss_bytes)
    )));
    options.count_name = "bytes".to_string();
    options.deterministic = true;
    options.direction = Direction::Inverted;
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut options, text.lines(), &mut svg)
        .context("drawing the differential flame graph")?;
    Ok(svg)
}

/// `Peak heap: 100 MiB -> 140 MiB (+40.0%)`.
fn diff_title(old: u64, new: u64) -> String {
    format!(
        "Peak heap: {} -> {} ({})",
        human_bytes(old),
        human_bytes(new),
        percent(old, new)
    )
}

/// The relative change, `+40.0%` / `-12.5%` / `±0.0%`, or `new` when there was nothing before.
fn percent(old: u64, new: u64) -> String {
    if old == 0 {
        return if new == 0 { "±0.0%" } else { "new" }.to_string();
    }
    let p = (new as f64 - old as f64) / old as f64 * 100.0;
    if format!("{:.1}", p.abs()) == "0.0" {
        "±0.0%".to_string()
    } else {
        format!("{p:+.1}%")
    }
}

/// Replaces the differential lines whose counts are both below `threshold` by one root
/// line `[N small allocation paths] OLD NEW`; with fewer than two such lines nothing
/// changes.
fn fold_small(text: &str, threshold: u64) -> String {
    let mut kept = String::new();
    let (mut n, mut sum_old, mut sum_new) = (0usize, 0u64, 0u64);
    let mut small = String::new();
    for line in text.lines() {
        let mut counts = line.rsplitn(3, ' ');
        let b: u64 = counts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        let a: u64 = counts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        if a < threshold && b < threshold {
            n += 1;
            sum_old = sum_old.saturating_add(a);
            sum_new = sum_new.saturating_add(b);
            small.push_str(line);
            small.push('\n');
        } else {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    if n < 2 {
        kept.push_str(&small);
    } else {
        let _ = writeln!(kept, "[{n} small allocation paths] {sum_old} {sum_new}");
    }
    let mut lines: Vec<&str> = kept.lines().collect();
    lines.sort_unstable();
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// One call path's bytes at the peak in both runs.
struct Change<'a> {
    frames: &'a [FrameName],
    old: u64,
    new: u64,
}

impl Change<'_> {
    fn delta(&self) -> i128 {
        i128::from(self.new) - i128::from(self.old)
    }
}

/// Every path of either run's `at_peak` whose bytes differ, largest change first (ties by
/// frames), matched by exact frame names.
fn changes<'a>(old: &'a [SymStack], new: &'a [SymStack]) -> Vec<Change<'a>> {
    let mut by_path: FastMap<&'a [FrameName], [u64; 2]> = FastMap::default();
    for (i, stacks) in [old, new].into_iter().enumerate() {
        for s in stacks {
            let v = by_path.entry(s.frames.as_slice()).or_insert([0, 0]);
            v[i] = v[i].saturating_add(s.bytes);
        }
    }
    let mut out: Vec<Change> = by_path
        .into_iter()
        .filter(|(_, [a, b])| a != b)
        .map(|(frames, [old, new])| Change { frames, old, new })
        .collect();
    out.sort_by(|a, b| {
        b.delta()
            .abs()
            .cmp(&a.delta().abs())
            .then_with(|| a.frames.cmp(b.frames))
    });
    out
}

/// `+40.0 MiB`, `-512 KiB`, `0 B`.
fn signed_bytes(delta: i128) -> String {
    let magnitude = human_bytes(u64::try_from(delta.unsigned_abs()).unwrap_or(u64::MAX));
    match delta.signum() {
        1 => format!("+{magnitude}"),
        -1 => format!("-{magnitude}"),
        _ => magnitude,
    }
}

/// A line saying that per-path differences include sampling noise, when either run was
/// sampled (their totals are exact either way).
fn sampling_note(old: &Report, new: &Report) -> Option<String> {
    let mode = |r: &Report| match r.sample_rate {
        0 => "exact".to_string(),
        rate => format!("sampled every {}", human_bytes(rate)),
    };
    (old.sample_rate != 0 || new.sample_rate != 0).then(|| {
        format!(
            "Paths: OLD {}, NEW {}: per-path differences include sampling noise (the totals are exact)\n",
            mode(old),
            mode(new)
        )
    })
}

/// A plain-text comparison: the change in peak heap and peak RSS, then up to `top` call
/// paths that grew most and up to `top` that shrank most at the peak, each as
/// `+40.0 MiB  100 MiB -> 140 MiB  leaf (file:line) ← caller ← caller`, cut to 100
/// columns. Names are sanitized like the terminal summary.
pub fn diff_summary(old: &Report, new: &Report, top: usize) -> String {
    let mut out = String::new();
    let line = |label: &str, a: u64, b: u64| {
        format!(
            "{label}{} -> {} ({}, {})\n",
            human_bytes(a),
            human_bytes(b),
            signed_bytes(i128::from(b) - i128::from(a)),
            percent(a, b)
        )
    };
    out.push_str(&line("Peak heap  ", old.peak_bytes, new.peak_bytes));
    out.push_str(&line("Peak RSS   ", old.peak_rss_bytes, new.peak_rss_bytes));
    if let Some(note) = sampling_note(old, new) {
        out.push_str(&note);
    }

    let all = changes(&old.at_peak, &new.at_peak);
    if all.is_empty() {
        out.push_str("\nNo call path changed its bytes at the peak.\n");
        return out;
    }
    for (heading, grew) in [("grew", true), ("shrank", false)] {
        let picked: Vec<&Change> = all
            .iter()
            .filter(|c| (c.delta() > 0) == grew)
            .take(top)
            .collect();
        if picked.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\nCall paths that {heading} most at the peak:");
        for c in picked {
            let prefix = format!(
                "  {:>10}  {:>9} -> {:<9}  ",
                signed_bytes(c.delta()),
                human_bytes(c.old),
                human_bytes(c.new)
            );
            let room = WIDTH.saturating_sub(prefix.chars().count());
            let _ = writeln!(
                out,
                "{prefix}{}",
                truncate_chars(&compact_path(c.frames), room)
            );
        }
    }
    out
}

/// The comparison as JSON: `old_peak_bytes`, `new_peak_bytes`, `delta_bytes` (new − old),
/// `old_peak_rss_bytes`, `new_peak_rss_bytes`, and `changes`, every call path whose bytes
/// at the peak differ, largest change first:
/// `{"frames": [root, …, leaf], "old_bytes", "new_bytes", "delta"}`. Frame names are
/// verbatim (JSON escaping makes them safe). Deltas beyond the range of `i64` are clamped.
pub fn diff_json(old: &Report, new: &Report) -> Value {
    let clamp = |d: i128| i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX });
    let changes: Vec<Value> = changes(&old.at_peak, &new.at_peak)
        .iter()
        .map(|c| {
            json!({
                "frames": c.frames,
                "old_bytes": c.old,
                "new_bytes": c.new,
                "delta": clamp(c.delta()),
            })
        })
        .collect();
    json!({
        "old_peak_bytes": old.peak_bytes,
        "new_peak_bytes": new.peak_bytes,
        "delta_bytes": clamp(i128::from(new.peak_bytes) - i128::from(old.peak_bytes)),
        "old_peak_rss_bytes": old.peak_rss_bytes,
        "new_peak_rss_bytes": new.peak_rss_bytes,
        "old_sample_rate": old.sample_rate,
        "new_sample_rate": new.sample_rate,
        "changes": changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_percentages() {
        assert_eq!(
            diff_title(100 << 20, 140 << 20),
            "Peak heap: 100 MiB -> 140 MiB (+40.0%)"
        );
        assert_eq!(percent(8, 7), "-12.5%");
        assert_eq!(percent(0, 5), "new");
        assert_eq!(percent(0, 0), "±0.0%");
        assert_eq!(percent(100_000, 100_001), "±0.0%");
    }

    #[test]
    fn a_sampled_side_is_named() {
        let exact = Report::default();
        let sampled = Report {
            sample_rate: 512 * 1024,
            ..Report::default()
        };
        assert_eq!(sampling_note(&exact, &exact), None);
        let note = diff_summary(&exact, &sampled, 5);
        assert!(
            note.contains("Paths: OLD exact, NEW sampled every 512 KiB: per-path differences include sampling noise"),
            "{note}"
        );
        assert!(!diff_summary(&exact, &exact, 5).contains("sampling noise"));
    }

    #[test]
    fn signed() {
        assert_eq!(signed_bytes(40 << 20), "+40.0 MiB");
        assert_eq!(signed_bytes(-512 * 1024), "-512 KiB");
        assert_eq!(signed_bytes(0), "0 B");
    }

    #[test]
    fn small_lines_fold_into_one_root_frame() {
        let text = "a 100 200\nb 1 0\nc 0 2\nd;e 3 3\n";
        assert_eq!(
            fold_small(text, 10),
            "[3 small allocation paths] 4 5\na 100 200\n"
        );
        assert_eq!(fold_small("a 100 200\nb 1 0\n", 10), "a 100 200\nb 1 0\n");
    }
}

//! The short human summary printed when a profiled run ends.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::empty_peak::{empty_peak_message, suggested_rate};
use super::shell::shell_quote_command;
use super::stacks::{merge_identical, total_bytes};
use super::text::{sanitize_line, truncate_chars};
use super::units::{count_of, group_digits, human_bytes, human_duration};
use crate::report::{ExitStatus, Report};

/// Lines are kept within this many characters so the summary reads in a default terminal.
const WIDTH: usize = 100;
/// How many call paths the summary lists.
const TOP_PATHS: usize = 5;
/// How many warnings are listed before the rest are only counted.
const MAX_WARNINGS: usize = 5;
/// Sampled mode: fewer expected samples at the peak than this get a hint.
const FEW_SAMPLES: u64 = 100;

/// Renders a short plain-text summary (no colors): the command and how it ended, the peak
/// heap and when it was reached, peak RSS, the five largest call paths at the peak with
/// their share and bytes, what was still live at exit, warnings, and the files written.
///
/// Each call path is shown leaf first — the allocating frame with its location, then its
/// callers as `← caller ← caller` without locations, repeated recursive callers collapsed
/// to `name ×N` — and cut with `…` to fit 100 columns. Frame names, arguments and
/// paths are sanitized first so a hostile name cannot move the cursor or recolor the
/// terminal (see [`super::text`]).
pub fn terminal_summary(report: &Report, files: &[(&str, PathBuf)]) -> String {
    let mut out = String::new();
    let command = truncate_chars(&shell_quote_command(&report.argv), WIDTH - 30);
    let status = if report.still_running() {
        "still running".to_string()
    } else {
        exit_text(report.exit)
    };
    let _ = writeln!(
        out,
        "peakprof: {} ({status})",
        if command.is_empty() { "?" } else { &command },
    );
    // A process that left only its live files (killed, or replaced by exec) has no
    // recorded duration: say nothing rather than "of 0 s".
    let of = if report.duration_s > 0.0 && report.duration_s >= report.peak_time_s {
        format!(" (of {})", human_duration(report.duration_s))
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "  peak heap  {} after {}{of}",
        human_bytes(report.peak_bytes),
        human_duration(report.peak_time_s),
    );
    let _ = writeln!(out, "  peak RSS   {}", human_bytes(report.peak_rss_bytes));
    let sampled = report.sample_rate != 0;
    if sampled {
        let _ = writeln!(
            out,
            "  sampled every {}: sizes are estimates",
            human_bytes(report.sample_rate)
        );
        let expected = report.peak_bytes / report.sample_rate;
        if expected < FEW_SAMPLES && report.peak_bytes > 0 {
            let _ = writeln!(
                out,
                "  {} expected at a peak this small: paths are rough (try --sample-rate {})",
                if expected == 0 {
                    "under 1 sample".to_string()
                } else {
                    format!("~{expected} samples")
                },
                suggested_rate(report.peak_bytes)
            );
        }
    }

    let at_peak = merge_identical(&report.at_peak);
    let total = total_bytes(&at_peak);
    if at_peak.is_empty() {
        // Its second line, if any, fits the width.
        let _ = writeln!(out, "\n{}", empty_peak_message(report, "\n"));
    } else {
        // Counted over every stack: zero-byte allocations (`malloc(0)`) are live too.
        let live = super::stacks::total_count(&report.at_peak);
        let paths = count_of(at_peak.len() as u64, "path");
        // Sampled, the count is of the sampled blocks only: said so, not as the live set.
        let counted = if sampled {
            format!("{paths}, from {}", count_of(live, "sampled allocation"))
        } else {
            format!("{} live in {paths}", count_of(live, "allocation"))
        };
        let _ = writeln!(out, "\nLargest call paths at the peak ({counted}):");
        for s in at_peak.iter().take(TOP_PATHS) {
            let prefix = format!(
                "  {:>5.1}%  {:>9}  ",
                100.0 * s.bytes as f64 / total as f64,
                human_bytes(s.bytes)
            );
            let room = WIDTH.saturating_sub(prefix.chars().count());
            let _ = writeln!(
                out,
                "{prefix}{}",
                truncate_chars(&compact_path(&s.frames), room)
            );
        }
        if at_peak.len() > TOP_PATHS {
            let rest = &at_peak[TOP_PATHS..];
            let _ = writeln!(
                out,
                "  … {} more paths hold {}",
                group_digits(rest.len() as u64),
                human_bytes(total_bytes(rest))
            );
        }
    }

    let leaked = report.leaked_bytes();
    if leaked == 0 {
        let _ = writeln!(out, "\n{}", super::leaks::nothing_left(report));
    } else {
        let what = super::leaks::end_label(report, "Leaked at exit");
        let _ = writeln!(
            out,
            "\n{what}: {} {}",
            human_bytes(leaked),
            super::leaks::leaked_count_text(report)
        );
    }

    if !report.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings:");
        for w in report.warnings.iter().take(MAX_WARNINGS) {
            let _ = writeln!(out, "  {}", truncate_chars(&sanitize_line(w), WIDTH - 2));
        }
        if report.warnings.len() > MAX_WARNINGS {
            let _ = writeln!(out, "  … and {} more", report.warnings.len() - MAX_WARNINGS);
        }
    }

    if !files.is_empty() {
        let _ = writeln!(out, "\nWrote:");
        let name_width = files
            .iter()
            .map(|(n, _)| n.chars().count())
            .max()
            .unwrap_or(0);
        for (name, path) in files {
            let _ = writeln!(
                out,
                "  {:<name_width$}  {}",
                sanitize_line(name),
                sanitize_line(&path.to_string_lossy())
            );
        }
    }
    out
}

pub(crate) fn exit_text(exit: ExitStatus) -> String {
    match (exit.code, exit.signal) {
        (_, Some(sig)) => match signal_name(sig) {
            Some(name) => format!("killed by {name}"),
            None => format!("killed by signal {sig}"),
        },
        (Some(code), None) => format!("exit code {code}"),
        (None, None) => "exit status unknown".to_string(),
    }
}

/// Names for the signals that commonly end a profiled run (Linux numbering).
fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

/// `leaf (file:line) ← caller ← caller ×3 ← main`: leaf first, callers without locations.
pub(crate) fn compact_path<S: AsRef<str>>(frames: &[S]) -> String {
    let frames = super::sites::up_to_site(frames);
    let Some((leaf, callers)) = frames.split_last() else {
        return "[unknown]".to_string();
    };
    let mut parts = vec![sanitize_line(leaf.as_ref())];
    let mut previous: Option<(String, usize)> = None;
    for caller in callers.iter().rev() {
        let name = sanitize_line(strip_location(caller.as_ref()));
        match &mut previous {
            Some((prev, n)) if *prev == name => *n += 1,
            _ => {
                if let Some(done) = previous.take() {
                    parts.push(repeat_text(done));
                }
                previous = Some((name, 1));
            }
        }
    }
    if let Some(done) = previous {
        parts.push(repeat_text(done));
    }
    parts.join(" ← ")
}

fn repeat_text((name, n): (String, usize)) -> String {
    if n == 1 {
        name
    } else {
        format!("{name} ×{n}")
    }
}

/// Drops a trailing ` (file:line)` so callers take little room; anything that does not
/// end like a location (e.g. a Rust tuple type) is left alone.
pub(crate) fn strip_location(frame: &str) -> &str {
    let Some(open) = frame.rfind(" (") else {
        return frame;
    };
    let inner = &frame[open + 2..];
    let Some(inner) = inner.strip_suffix(')') else {
        return frame;
    };
    match inner.rsplit_once(':') {
        Some((file, line))
            if !file.is_empty() && !line.is_empty() && line.chars().all(|c| c.is_ascii_digit()) =>
        {
            &frame[..open]
        }
        _ => frame,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::st;

    #[test]
    fn full_summary() {
        let report = Report {
            argv: vec!["./prog".into(), "--n".into(), "a b".into()],
            exit: ExitStatus {
                code: Some(0),
                signal: None,
            },
            peak_bytes: 3 << 20,
            peak_time_s: 1.2449,
            peak_rss_bytes: 40 << 20,
            duration_s: 3.5,
            at_peak: vec![
                st(
                    &[
                        "main (src/main.rs:30)",
                        "build (src/lib.rs:9)",
                        "alloc_big (src/lib.rs:12)",
                    ],
                    2 << 20,
                    1,
                ),
                st(
                    &[
                        "main (src/main.rs:31)",
                        "rec (src/r.rs:1)",
                        "rec (src/r.rs:2)",
                        "rec (src/r.rs:3)",
                        "leaf",
                    ],
                    1 << 20,
                    100,
                ),
                st(&["main", "tiny1"], 10, 1),
                st(&["main", "tiny2"], 9, 1),
                st(&["main", "tiny3"], 8, 1),
                st(&["main", "tiny4"], 7, 1),
                st(&["main", "tiny5"], 6, 1),
                st(&["main", "malloc0"], 0, 4),
            ],
            at_exit: vec![st(&["main", "x"], 1536, 3)],
            warnings: vec!["no symbols for\u{1b}[31m libfoo.so".into()],
            ..Report::default()
        };
        let files = [
            ("flamegraph", PathBuf::from("/tmp/p/peak.svg")),
            ("json", PathBuf::from("/tmp/p/summary.json")),
        ];
        let want = "\
peakprof: ./prog --n 'a b' (exit code 0)
  peak heap  3.00 MiB after 1.24 s (of 3.50 s)
  peak RSS   40.0 MiB

Largest call paths at the peak (110 allocations live in 7 paths):
   66.7%   2.00 MiB  alloc_big (src/lib.rs:12) ← build ← main
   33.3%   1.00 MiB  leaf ← rec ×3 ← main
    0.0%       10 B  tiny1 ← main
    0.0%        9 B  tiny2 ← main
    0.0%        8 B  tiny3 ← main
  … 2 more paths hold 13 B

Leaked at exit: 1.50 KiB in 3 allocations

Warnings:
  no symbols for [31m libfoo.so

Wrote:
  flamegraph  /tmp/p/peak.svg
  json        /tmp/p/summary.json
";
        assert_eq!(terminal_summary(&report, &files), want);
    }

    #[test]
    fn empty_report() {
        let report = Report {
            exit: ExitStatus {
                code: None,
                signal: Some(9),
            },
            ..Report::default()
        };
        let want = "\
peakprof: ? (killed by SIGKILL)
  peak heap  0 B after 0 s
  peak RSS   0 B

No heap allocations were live at the peak.

Nothing was left allocated at exit.
";
        assert_eq!(terminal_summary(&report, &[]), want);
    }

    /// Blocks live when a process was killed or stopped are what it held then, not leaks.
    #[test]
    fn what_was_live_at_an_end_that_was_not_an_exit_is_not_called_a_leak() {
        let held = vec![st(&["main", "x"], 2048, 2)];
        for (end, line) in [
            (
                "killed",
                "\nLive when it was killed: 2.00 KiB in 2 allocations\n",
            ),
            (
                "limit-stop",
                "\nLive when it was stopped at the --limit: 2.00 KiB in 2 allocations\n",
            ),
            (
                "signal",
                "\nLive when a signal ended it: 2.00 KiB in 2 allocations\n",
            ),
            ("exit", "\nLeaked at exit: 2.00 KiB in 2 allocations\n"),
            ("fast-exit", "\nLeaked at exit: 2.00 KiB in 2 allocations\n"),
        ] {
            let report = Report {
                end: end.into(),
                at_exit: held.clone(),
                ..Report::default()
            };
            let text = terminal_summary(&report, &[]);
            assert!(text.contains(line), "{end}: {text}");
            assert_eq!(
                text.contains("Leaked"),
                end.ends_with("exit"),
                "{end}: {text}"
            );
        }
        let nothing = Report {
            end: "killed".into(),
            ..Report::default()
        };
        assert!(
            terminal_summary(&nothing, &[]).contains("\nNothing was live when it was killed.\n")
        );
    }

    #[test]
    fn a_sampled_peak_too_small_for_its_rate_says_what_to_do() {
        let report = Report {
            peak_bytes: 278 * 1024,
            sample_rate: 512 * 1024,
            ..Report::default()
        };
        let text = terminal_summary(&report, &[]);
        assert!(
            text.contains(
                "under 1 sample expected at a peak this small: paths are rough (try --sample-rate 256)"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "No sampled allocation was live at the peak:\nrun with a smaller --sample-rate \
                 (e.g. 256) or without it to see the call paths.\n"
            ),
            "{text}"
        );
        assert!(!text.contains("No heap allocations"), "{text}");
        // Enough samples: no hint; the paths' count is of samples, not of the live set.
        let big = Report {
            peak_bytes: 1 << 30,
            sample_rate: 512 * 1024,
            at_peak: vec![st(&["main"], 1 << 30, 1), st(&["main", "f"], 1 << 20, 2)],
            ..Report::default()
        };
        let text = terminal_summary(&big, &[]);
        assert!(!text.contains("samples expected"), "{text}");
        assert!(
            text.contains("Largest call paths at the peak (2 paths, from 3 sampled allocations):"),
            "{text}"
        );
    }

    #[test]
    fn long_paths_are_cut_to_the_width() {
        let long = "f".repeat(300);
        let report = Report {
            at_peak: vec![st(&["main", &long], 1, 1)],
            ..Report::default()
        };
        let text = terminal_summary(&report, &[]);
        let line = text.lines().find(|l| l.contains("fff")).unwrap();
        assert_eq!(line.chars().count(), WIDTH);
        assert!(line.ends_with('…'));
    }

    #[test]
    fn locations_are_stripped_only_when_they_look_like_one() {
        assert_eq!(strip_location("f (src/a.rs:12)"), "f");
        assert_eq!(strip_location("f"), "f");
        assert_eq!(
            strip_location("<impl T for (A, B)>::f"),
            "<impl T for (A, B)>::f"
        );
        assert_eq!(strip_location("g (a, b)"), "g (a, b)");
        assert_eq!(strip_location("h (x:y)"), "h (x:y)");
    }

    #[test]
    fn exit_texts() {
        let e = |code, signal| exit_text(ExitStatus { code, signal });
        assert_eq!(e(Some(2), None), "exit code 2");
        assert_eq!(e(None, Some(11)), "killed by SIGSEGV");
        assert_eq!(e(None, Some(64)), "killed by signal 64");
        assert_eq!(e(None, None), "exit status unknown");
    }
}

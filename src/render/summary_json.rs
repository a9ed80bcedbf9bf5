//! The machine-readable summary written next to the flame graph (`summary.json`).

use crate::fast_map::{FastMap, FastSet};
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::shell::shell_quote_command;
use super::stacks::{merge_identical, total_bytes};
use super::terminal::strip_location;
use crate::report::Report;

/// The version of the field set below; bumped when a field changes meaning or goes away
/// (adding fields does not bump it).
pub const SUMMARY_VERSION: u64 = 1;

/// How many of the largest call paths `top` lists.
const TOP_STACKS: usize = 20;
/// How many functions `functions` lists.
const TOP_FUNCTIONS: usize = 50;

/// Builds the JSON summary of one profiled process. The field names are an interface
/// that scripts depend on:
///
/// | field | type | meaning |
/// |---|---|---|
/// | `version` | int | [`SUMMARY_VERSION`] |
/// | `command` | string | the command line, shell-quoted on one line |
/// | `argv` | array of strings | the command line as run |
/// | `pid`, `ppid` | int | process and parent process id |
/// | `exit_code` | int or null | exit code; null when killed by a signal or unknown |
/// | `signal` | int or null | the signal that killed the process, if any |
/// | `peak_bytes` | int | live heap bytes at the peak |
/// | `peak_time_s` | number | seconds from start to the peak |
/// | `peak_rss_bytes` | int | highest resident set size |
/// | `duration_s` | number | seconds the process ran |
/// | `total_allocations` | int | allocations over the whole run |
/// | `total_allocated_bytes` | int | bytes allocated over the whole run |
/// | `sample_rate` | int | 0 when exact, else the sampling interval in bytes |
/// | `live_allocations` | int or null | allocations live at the peak (sum over `at_peak`); null in sampled mode, where only sampled blocks are counted |
/// | `top` | array | up to 20 largest call paths at the peak, largest first: `{"bytes", "count", "share", "frames"}`; `frames` is root first; `count` is, in sampled mode, of the sampled allocations only; `share` is the fraction of the bytes of all paths at the peak, rounded to 4 decimals |
/// | `functions` | array | up to 50 functions by inclusive bytes at the peak, largest first: `{"function", "bytes"}`; `function` is the frame name without its `(file:line)`; its bytes are the sum over the paths containing it, each path counted once even under recursion or several call lines |
/// | `leaked_bytes` | int | bytes still live when the process ended (exact; in exact mode the sum over `at_exit`): leaks when `end` is `exit` or `fast-exit`, what it held when killed or stopped otherwise, or now when `end` is `running` |
/// | `leaked_allocations` | int or null | allocations still live when the process ended; null in sampled mode, as `live_allocations` |
/// | `warnings` | array of strings | problems met while symbolizing |
/// | `files` | object | output name → path of every file written |
///
/// Identical paths are merged and zero-byte paths skipped; ties are broken by frames /
/// name so the output is deterministic. Strings are emitted verbatim (JSON escaping makes
/// them safe), unlike the terminal and SVG renderers.
pub fn summary_json(report: &Report, files: &[(&str, PathBuf)]) -> Value {
    let at_peak = merge_identical(&report.at_peak);
    let peak_total = total_bytes(&at_peak);

    let top: Vec<Value> = at_peak
        .iter()
        .take(TOP_STACKS)
        .map(|s| {
            json!({
                "bytes": s.bytes,
                "count": s.count,
                "share": share(s.bytes, peak_total),
                "frames": s.frames,
            })
        })
        .collect();

    let mut inclusive: FastMap<&str, u64> = FastMap::default();
    for s in &at_peak {
        // Per function, not per call line: `main (a.c:10)` and `main (a.c:12)` are one
        // function, and a path through it counts once.
        let distinct: FastSet<&str> = s.frames.iter().map(|f| strip_location(f)).collect();
        for f in distinct {
            let bytes = inclusive.entry(f).or_insert(0);
            *bytes = bytes.saturating_add(s.bytes);
        }
    }
    let mut functions: Vec<(&str, u64)> = inclusive.into_iter().collect();
    functions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let functions: Vec<Value> = functions
        .into_iter()
        .take(TOP_FUNCTIONS)
        .map(|(f, bytes)| json!({ "function": f, "bytes": bytes }))
        .collect();

    let files: Map<String, Value> = files
        .iter()
        .map(|(name, path)| {
            (
                name.to_string(),
                Value::from(path.to_string_lossy().into_owned()),
            )
        })
        .collect();

    json!({
        "version": SUMMARY_VERSION,
        "command": shell_quote_command(&report.argv),
        "argv": report.argv,
        "pid": report.pid,
        "ppid": report.ppid,
        "exit_code": report.exit.code,
        "signal": report.exit.signal,
        "peak_bytes": report.peak_bytes,
        "peak_time_s": report.peak_time_s,
        "peak_rss_bytes": report.peak_rss_bytes,
        "duration_s": report.duration_s,
        "total_allocations": report.total_allocs,
        "total_allocated_bytes": report.total_alloc_bytes,
        "sample_rate": report.sample_rate,
        "live_allocations": (report.sample_rate == 0)
            .then(|| super::stacks::total_count(&report.at_peak)),
        "top": top,
        "functions": functions,
        "leaked_bytes": report.leaked_bytes(),
        "leaked_allocations": report.leaked_count(),
        "warnings": report.warnings,
        "files": files,
    })
}

/// `part / whole` rounded to 4 decimals, so shares read cleanly and compare exactly.
fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ExitStatus;

    use crate::report::st;

    fn sample() -> Report {
        Report {
            argv: vec!["./prog".into(), "two words".into()],
            pid: 42,
            ppid: 1,
            exit: ExitStatus {
                code: Some(3),
                signal: None,
            },
            peak_bytes: 1000,
            peak_time_s: 0.5,
            peak_rss_bytes: 4096,
            duration_s: 2.0,
            total_allocs: 10,
            total_alloc_bytes: 5000,
            sample_rate: 0,
            at_peak: vec![
                st(&["main", "a", "rec", "rec"], 600, 2),
                st(&["main", "b"], 300, 1),
                st(&["main", "a", "c"], 100, 4),
                st(&["main", "z"], 0, 1),
            ],
            at_exit: vec![st(&["main", "b"], 300, 1), st(&["main", "a"], 7, 2)],
            warnings: vec!["no debug info for libfoo.so".into()],
            ..Report::default()
        }
    }

    #[test]
    fn full_document() {
        let files = [("flamegraph", PathBuf::from("/tmp/out/peak.svg"))];
        let got = summary_json(&sample(), &files);
        let want = json!({
            "version": 1,
            "command": "./prog 'two words'",
            "argv": ["./prog", "two words"],
            "pid": 42,
            "ppid": 1,
            "exit_code": 3,
            "signal": null,
            "peak_bytes": 1000,
            "peak_time_s": 0.5,
            "peak_rss_bytes": 4096,
            "duration_s": 2.0,
            "total_allocations": 10,
            "total_allocated_bytes": 5000,
            "sample_rate": 0,
            "live_allocations": 8,
            "top": [
                {"bytes": 600, "count": 2, "share": 0.6, "frames": ["main", "a", "rec", "rec"]},
                {"bytes": 300, "count": 1, "share": 0.3, "frames": ["main", "b"]},
                {"bytes": 100, "count": 4, "share": 0.1, "frames": ["main", "a", "c"]},
            ],
            "functions": [
                {"function": "main", "bytes": 1000},
                {"function": "a", "bytes": 700},
                {"function": "rec", "bytes": 600},
                {"function": "b", "bytes": 300},
                {"function": "c", "bytes": 100},
            ],
            "leaked_bytes": 307,
            "leaked_allocations": 3,
            "warnings": ["no debug info for libfoo.so"],
            "files": {"flamegraph": "/tmp/out/peak.svg"},
        });
        assert_eq!(got, want);
    }

    #[test]
    fn killed_by_signal_and_empty() {
        let r = Report {
            exit: ExitStatus {
                code: None,
                signal: Some(9),
            },
            ..Report::default()
        };
        let got = summary_json(&r, &[]);
        assert_eq!(got["exit_code"], Value::Null);
        assert_eq!(got["signal"], 9);
        assert_eq!(got["top"], json!([]));
        assert_eq!(got["functions"], json!([]));
        assert_eq!(got["files"], json!({}));
        assert_eq!(got["command"], "");
    }

    #[test]
    fn lists_are_capped() {
        let r = Report {
            at_peak: (0..100u64)
                .map(|i| st(&[&format!("f{i:03}")], 100 + i, 1))
                .collect(),
            ..Report::default()
        };
        let got = summary_json(&r, &[]);
        let top = got["top"].as_array().unwrap();
        assert_eq!(top.len(), 20);
        assert_eq!(top[0]["frames"], json!(["f099"]));
        let functions = got["functions"].as_array().unwrap();
        assert_eq!(functions.len(), 50);
        assert_eq!(functions[49]["function"], "f050");
    }

    #[test]
    fn non_finite_times_become_null() {
        let r = Report {
            peak_time_s: f64::NAN,
            duration_s: f64::INFINITY,
            ..Report::default()
        };
        let got = summary_json(&r, &[]);
        assert_eq!(got["peak_time_s"], Value::Null);
        assert_eq!(got["duration_s"], Value::Null);
        assert!(serde_json::to_string(&got).is_ok());
    }

    #[test]
    fn share_rounds() {
        assert_eq!(share(1, 3), 0.3333);
        assert_eq!(share(0, 0), 0.0);
        assert_eq!(share(5, 5), 1.0);
    }
}

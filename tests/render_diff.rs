//! Comparing two runs: the differential folded text, the summary and JSON with exact
//! values, and the differential flame graph's title, colors and escaping.
#![cfg(feature = "cli")]

#[path = "render_common.rs"]
mod common;

use common::{check_golden, parse_xml, sample_report, st, HOSTILE, KIB, MIB};
use peakprof::render::{diff_folded, diff_json, diff_summary, diff_svg};
use peakprof::report::Report;
use serde_json::json;

/// The sample run after a change: `alloc_big` grew, `grow` shrank, `load_config` vanished
/// and `cache_fill` is new.
fn new_report() -> Report {
    let mut r = sample_report();
    r.peak_bytes = 3 * MIB + 256 * KIB;
    r.peak_rss_bytes = 6 * MIB;
    r.at_peak = vec![
        st(
            &[
                "main (src/main.rs:40)",
                "build_index (src/index.rs:88)",
                "alloc_big (src/main.rs:12)",
            ],
            3 * MIB,
            1,
        ),
        st(
            &[
                "main (src/main.rs:40)",
                "build_index (src/index.rs:88)",
                "grow (src/index.rs:101)",
            ],
            128 * KIB,
            1,
        ),
        st(
            &["main (src/main.rs:43)", "cache_fill (src/cache.rs:3)"],
            128 * KIB,
            2,
        ),
    ];
    r
}

#[test]
fn folded_lines_carry_both_counts() {
    let got = diff_folded(&sample_report().at_peak, &new_report().at_peak);
    assert_eq!(
        got,
        "main (src/main.rs:40);build_index (src/index.rs:88);alloc_big (src/main.rs:12) 2097152 3145728\n\
         main (src/main.rs:40);build_index (src/index.rs:88);grow (src/index.rs:101) 524288 131072\n\
         main (src/main.rs:41);load_config (src/config.rs:7) 4096 0\n\
         main (src/main.rs:43);cache_fill (src/cache.rs:3) 0 131072\n"
    );
    check_golden("diff_small.folded", got.as_bytes());
}

#[test]
fn folded_sanitizes_hostile_frames() {
    let got = diff_folded(
        &[st(&["a;b", "x\ny 12"], 5, 1)],
        &[st(&["a;b", "x\ny 12"], 7, 1)],
    );
    assert_eq!(got, "a:b;x y\u{a0}12 5 7\n");
    assert_eq!(diff_folded(&[st(&["a"], 0, 1)], &[]), "");
}

#[test]
fn summary_lists_grown_and_shrunk_paths() {
    let got = diff_summary(&sample_report(), &new_report(), 5);
    let want = "\
Peak heap  2.50 MiB -> 3.25 MiB (+764 KiB, +29.8%)
Peak RSS   5.00 MiB -> 6.00 MiB (+1.00 MiB, +20.0%)

Call paths that grew most at the peak:
   +1.00 MiB   2.00 MiB -> 3.00 MiB   alloc_big (src/main.rs:12) ← build_index ← main
    +128 KiB        0 B -> 128 KiB    cache_fill (src/cache.rs:3) ← main

Call paths that shrank most at the peak:
    -384 KiB    512 KiB -> 128 KiB    grow (src/index.rs:101) ← build_index ← main
   -4.00 KiB   4.00 KiB -> 0 B        load_config (src/config.rs:7) ← main
";
    assert_eq!(got, want, "\n{got}");

    let got = diff_summary(&sample_report(), &new_report(), 1);
    assert_eq!(got.lines().filter(|l| l.starts_with("   ")).count(), 2);

    let same = diff_summary(&sample_report(), &sample_report(), 5);
    assert!(
        same.ends_with("\nNo call path changed its bytes at the peak.\n"),
        "{same}"
    );
}

#[test]
fn json_has_exact_changes() {
    let got = diff_json(&sample_report(), &new_report());
    let main40 = "main (src/main.rs:40)";
    let bi = "build_index (src/index.rs:88)";
    assert_eq!(
        got,
        json!({
            "old_peak_bytes": 2 * MIB + 516 * KIB,
            "new_peak_bytes": 3 * MIB + 256 * KIB,
            "delta_bytes": 764 * KIB,
            "old_peak_rss_bytes": 5 * MIB,
            "new_peak_rss_bytes": 6 * MIB,
            "old_sample_rate": 0,
            "new_sample_rate": 0,
            "changes": [
                {"frames": [main40, bi, "alloc_big (src/main.rs:12)"],
                 "old_bytes": 2 * MIB, "new_bytes": 3 * MIB, "delta": MIB},
                {"frames": [main40, bi, "grow (src/index.rs:101)"],
                 "old_bytes": 512 * KIB, "new_bytes": 128 * KIB, "delta": -384 * KIB as i64},
                {"frames": ["main (src/main.rs:43)", "cache_fill (src/cache.rs:3)"],
                 "old_bytes": 0, "new_bytes": 128 * KIB, "delta": 128 * KIB},
                {"frames": ["main (src/main.rs:41)", "load_config (src/config.rs:7)"],
                 "old_bytes": 4 * KIB, "new_bytes": 0, "delta": -4096},
            ],
        })
    );
}

#[test]
fn svg_title_colors_and_escaping() {
    let svg = diff_svg(&sample_report(), &new_report()).unwrap();
    let svg = String::from_utf8(svg).unwrap();
    check_golden("diff_small.svg", svg.as_bytes());
    let (texts, _) = parse_xml(&svg);
    assert!(texts.contains(&"Peak heap: 2.50 MiB -> 3.25 MiB (+29.8%)".to_string()));
    // inferno's differential tooltips carry the change; red for growth, blue for shrinking.
    assert!(
        texts.iter().any(
            |t| t.starts_with("alloc_big (src/main.rs:12) (3,145,728 bytes") && t.ends_with("%)")
        ),
        "{texts:#?}"
    );
    assert!(svg.contains("fill=\"rgb(255,"), "a red frame");
    assert!(svg.contains(",255)\""), "a blue frame");

    let mut old = sample_report();
    let mut new = new_report();
    old.at_peak = HOSTILE.iter().map(|h| st(&["main", h], 10, 1)).collect();
    new.at_peak = HOSTILE.iter().map(|h| st(&["main", h], 20, 1)).collect();
    let svg = String::from_utf8(diff_svg(&old, &new).unwrap()).unwrap();
    let (texts, _) = parse_xml(&svg);
    assert!(!svg.contains("<img") && !svg.contains("<script>alert"));
    assert!(texts
        .iter()
        .any(|t| t.starts_with("</script><img src=x onerror=alert(1)> (20 bytes")));
}

#[test]
fn svg_of_two_empty_runs() {
    let svg = diff_svg(&Report::default(), &Report::default()).unwrap();
    let (texts, _) = parse_xml(std::str::from_utf8(&svg).unwrap());
    assert!(texts.contains(&"Peak heap: 0 B -> 0 B (±0.0%)".to_string()));
    assert!(texts.contains(&"Neither run had heap allocations live at its peak.".to_string()));
}

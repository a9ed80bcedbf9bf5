//! The SVG flame graph: a golden file, proof that hostile names cannot break the XML,
//! the empty snapshot, and the size bound on huge profiles.
#![cfg(feature = "cli")]

#[path = "render_common.rs"]
mod common;

use common::{check_golden, parse_xml, sample_report, st};
use peakprof::render::{flamegraph_svg, FlameOptions};
use peakprof::report::{Report, SymStack};

/// The shared sample report as the flame graph golden file was made from: only the peak
/// snapshot, with its own peak time, peak RSS and duration.
fn small_report() -> Report {
    let sample = sample_report();
    Report {
        argv: sample.argv,
        pid: sample.pid,
        ppid: sample.ppid,
        exit: sample.exit,
        peak_bytes: sample.peak_bytes,
        peak_time_s: 1.2449,
        peak_rss_bytes: 40 << 20,
        duration_s: 3.5,
        total_allocs: sample.total_allocs,
        total_alloc_bytes: sample.total_alloc_bytes,
        sample_rate: 0,
        at_peak: sample.at_peak,
        at_exit: vec![],
        warnings: vec![],
        ..Report::default()
    }
}

/// Parses `svg` strictly as XML (see [`parse_xml`]) and returns the text of every element
/// (entities resolved), in document order of the closing tags.
fn parse_svg(svg: &[u8]) -> Vec<String> {
    parse_xml(std::str::from_utf8(svg).expect("SVG is UTF-8")).0
}

#[test]
fn golden_small_svg() {
    let report = small_report();
    let svg = flamegraph_svg(&report, &report.at_peak, &FlameOptions::default()).unwrap();
    check_golden("flamegraph_small.svg", &svg);

    let texts = parse_svg(&svg);
    let has = |s: &str| texts.iter().any(|t| t == s);
    assert!(has("Peak heap: 2.50 MiB — ./prog --size 12"), "{texts:#?}");
    assert!(has(
        "live heap at the peak, reached after 1.24 s · peak RSS 40.0 MiB · 16 allocations live"
    ));
    assert!(has("all (2,625,536 bytes, 100%)"), "{texts:#?}");
    assert!(has("alloc_big (src/main.rs:12) (2,097,152 bytes, 79.88%)"));
    assert!(has("grow (src/index.rs:101) (524,288 bytes, 19.97%)"));
    assert!(has(
        "build_index (src/index.rs:88) (2,621,440 bytes, 99.84%)"
    ));
    assert!(has("load_config (src/config.rs:7) (4,096 bytes, 0.16%)"));
}

#[test]
fn output_is_deterministic() {
    let report = small_report();
    let opts = FlameOptions::default();
    let a = flamegraph_svg(&report, &report.at_peak, &opts).unwrap();
    let b = flamegraph_svg(&report, &report.at_peak, &opts).unwrap();
    assert!(a == b);
}

#[test]
fn reversed_puts_allocation_sites_at_the_root() {
    let report = small_report();
    let opts = FlameOptions {
        reversed: true,
        ..FlameOptions::default()
    };
    let svg = flamegraph_svg(&report, &report.at_peak, &opts).unwrap();
    let texts = parse_svg(&svg);
    let has = |s: &str| texts.iter().any(|t| t == s);
    assert!(has(
        "Peak heap: 2.50 MiB (allocation sites first) — ./prog --size 12"
    ));
    // `main (src/main.rs:40)` is now a leaf under two allocation sites, so it appears
    // twice with the bytes of each.
    assert!(has("main (src/main.rs:40) (2,097,152 bytes, 79.88%)"));
    assert!(has("main (src/main.rs:40) (524,288 bytes, 19.97%)"));
}

#[test]
fn hostile_names_are_escaped_and_sanitized() {
    let evil = "foo<script>alert(1)</script>&\"'";
    let mut report = small_report();
    report.argv = vec!["./prog".into(), "<b>&amp;\n".into()];
    report.at_peak = vec![
        st(&["main", evil], 1000, 1),
        st(&["main", "bell\u{7}\u{FFFF}\u{0}; x"], 500, 1),
    ];
    let svg = flamegraph_svg(&report, &report.at_peak, &FlameOptions::default()).unwrap();
    let raw = String::from_utf8(svg.clone()).unwrap();
    assert!(!raw.contains("<script>"), "raw <script> in the SVG");
    assert!(!raw.contains("<b>"));
    let texts = parse_svg(&svg);
    let has = |s: &str| texts.iter().any(|t| t == s);
    assert!(has(&format!("{evil} (1,000 bytes, 66.67%)")), "{texts:#?}");
    assert!(has("bell   : x (500 bytes, 33.33%)"), "{texts:#?}");
    assert!(
        has("Peak heap: 2.50 MiB — ./prog $'<b>&amp;\\n'"),
        "{texts:#?}"
    );

    let opts = FlameOptions {
        title: Some("</text><script>x</script>\u{1b}".into()),
        ..FlameOptions::default()
    };
    let svg = flamegraph_svg(&report, &report.at_peak, &opts).unwrap();
    assert!(!String::from_utf8(svg.clone())
        .unwrap()
        .contains("<script>x"));
    assert!(parse_svg(&svg)
        .iter()
        .any(|t| t == "</text><script>x</script> "));
}

#[test]
fn empty_snapshot_renders_a_message() {
    let report = Report {
        argv: vec!["./idle".into(), "<&>".into()],
        ..Report::default()
    };
    for stacks in [vec![], vec![st(&["main", "freed"], 0, 0)]] {
        let svg = flamegraph_svg(&report, &stacks, &FlameOptions::default()).unwrap();
        let texts = parse_svg(&svg);
        assert!(
            texts.iter().any(|t| t == "Peak heap: 0 B — ./idle '<&>'"),
            "{texts:#?}"
        );
        assert!(texts
            .iter()
            .any(|t| t == "No heap allocations were live at the peak."));
    }
    // Sampled: the peak was not empty, only too small for the rate; the picture says so.
    let sampled = Report {
        peak_bytes: 300_000,
        sample_rate: 524_288,
        ..report
    };
    let svg = flamegraph_svg(&sampled, &[], &FlameOptions::default()).unwrap();
    let texts = parse_svg(&svg);
    assert!(
        texts.iter().any(|t| t.starts_with(
            "No sampled allocation was live at the peak: run with a smaller --sample-rate (e.g. 256)"
        )),
        "{texts:#?}"
    );
}

#[test]
fn a_hundred_thousand_stacks_render_small() {
    let stacks: Vec<SymStack> = (0..100_000u64)
        .map(|i| {
            let worker = format!("worker_{} (src/w.rs:{})", i % 50, i % 50);
            let leaf = format!("alloc_{i} (src/a.rs:{i})");
            st(&["main (src/main.rs:1)", &worker, &leaf], 16 + i % 64, 1)
        })
        .chain(std::iter::once(st(
            &["main (src/main.rs:1)", "big"],
            10 << 20,
            1,
        )))
        .collect();
    let report = Report {
        argv: vec!["./many".into()],
        peak_bytes: stacks.iter().map(|s| s.bytes).sum(),
        ..Report::default()
    };
    let svg = flamegraph_svg(&report, &stacks, &FlameOptions::default()).unwrap();
    assert!(svg.len() < 200_000, "SVG is {} bytes", svg.len());
    let texts = parse_svg(&svg);
    assert!(texts
        .iter()
        .any(|t| t.starts_with("[2000 small allocation paths] (")));
    assert!(texts
        .iter()
        .any(|t| t.contains("100,000 small paths folded")));
}

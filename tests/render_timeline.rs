//! The memory-over-time chart: a golden file, well-formed XML whatever the title, and the
//! special cases (no points, no RSS, a far-away memory.max, unknown peak time).
#![cfg(feature = "cli")]

#[path = "render_common.rs"]
mod common;

use common::{check_golden, parse_xml, sample_report, HOSTILE, MIB};
use peakprof::format::TimelinePoint;
use peakprof::render::timeline_svg;

fn texts(svg: &str) -> Vec<String> {
    parse_xml(svg).0
}

#[test]
fn golden_sample_chart() {
    let svg = timeline_svg(&sample_report(), "Memory over time — ./prog --size 12");
    check_golden("timeline_small.svg", svg.as_bytes());

    let t = texts(&svg);
    let has = |s: &str| t.iter().any(|x| x == s);
    assert!(has("Memory over time — ./prog --size 12"), "{t:#?}");
    assert!(has("peak 2.50 MiB at 1.50 s"), "{t:#?}");
    assert!(has("memory.max 8.00 MiB"), "{t:#?}");
    assert!(has("tracked heap") && has("RSS"), "{t:#?}");
    for tick in ["0 B", "2.00 MiB", "4.00 MiB", "6.00 MiB", "8.00 MiB"] {
        assert!(has(tick), "byte tick {tick}: {t:#?}");
    }
    for tick in ["0 s", "0.5 s", "1 s", "1.5 s", "2 s", "2.5 s", "3 s"] {
        assert!(has(tick), "time tick {tick}: {t:#?}");
    }
    // No script, style or id: the chart is inlined into the HTML report as is.
    assert!(!svg.contains("<script") && !svg.contains("<style") && !svg.contains(" id="));
    assert!(
        svg.starts_with("<svg "),
        "no XML prolog, so it can be inlined"
    );
}

#[test]
fn peak_dot_sits_at_the_peak() {
    let svg = timeline_svg(&sample_report(), "t");
    // Plot area: x 90..1170 over 0..3 s, y 315..70 over 0..8 MiB.
    let x = 90.0 + 1080.0 * 1.5 / 3.0;
    let y = 315.0 - 245.0 * (2.0 * MIB as f64 + 516.0 * 1024.0) / (8.0 * MIB as f64);
    assert!(
        svg.contains(&format!(r#"<circle cx="{x:.1}" cy="{y:.1}""#)),
        "{svg}"
    );
}

#[test]
fn hostile_titles_stay_text() {
    for h in HOSTILE {
        let svg = timeline_svg(&sample_report(), h);
        let (t, attrs) = parse_xml(&svg);
        let cleaned = peakprof::render::text::sanitize_line(h);
        assert!(t.contains(&cleaned), "{h:?} not shown as text: {t:#?}");
        assert!(attrs.contains(&cleaned), "{h:?} not in aria-label");
        assert!(!svg.contains("<script") && !svg.contains("<img"));
    }
}

#[test]
fn empty_timeline_says_so() {
    let mut r = sample_report();
    r.timeline.clear();
    let svg = timeline_svg(&r, "Memory <over> time");
    let t = texts(&svg);
    assert!(t.contains(&"Memory <over> time".to_string()));
    assert!(t.contains(&"No memory timeline was recorded for this process.".to_string()));
}

#[test]
fn special_cases() {
    // No RSS anywhere: no RSS line or legend entry.
    let mut r = sample_report();
    for p in &mut r.timeline {
        p.rss_bytes = 0;
    }
    r.cgroup_limit_bytes = None;
    let svg = timeline_svg(&r, "t");
    let t = texts(&svg);
    assert!(!t.contains(&"RSS".to_string()));
    assert!(!t.iter().any(|s| s.starts_with("memory.max")));
    assert_eq!(svg.matches("<polyline").count(), 2, "axes and heap only");

    // A limit far above the data is named, not drawn.
    r.cgroup_limit_bytes = Some(64 << 30);
    let t = texts(&timeline_svg(&r, "t"));
    assert!(t.contains(&"memory.max 64.0 GiB (far above, not drawn)".to_string()));
    assert!(
        t.contains(&"2.50 MiB".to_string()),
        "scale follows the data"
    );

    // Unknown peak time: labelled without a position; a single point still draws.
    r.peak_time_s = f64::NAN;
    r.timeline = vec![TimelinePoint {
        time_ns: 0,
        bytes: 10,
        rss_bytes: 0,
        last_bytes: 10,
    }];
    let svg = timeline_svg(&r, "t");
    assert!(texts(&svg).contains(&format!(
        "peak {}",
        peakprof::render::human_bytes(r.peak_bytes)
    )));
    assert!(!svg.contains("<circle"));
}

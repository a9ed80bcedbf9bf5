//! The SVG flame graph: a golden file, proof that hostile names cannot break the XML,
//! the empty snapshot, and the size bound on huge profiles.
#![cfg(feature = "cli")]

use std::path::PathBuf;

use peakprof::render::{flamegraph_svg, FlameOptions};
use peakprof::report::{ExitStatus, Report, SymStack};
use quick_xml::events::Event;
use quick_xml::Reader;

fn st(frames: &[&str], bytes: u64, count: u64) -> SymStack {
    SymStack {
        frames: frames.iter().map(|s| s.to_string()).collect(),
        bytes,
        count,
    }
}

fn small_report() -> Report {
    Report {
        argv: vec!["./prog".into(), "--size".into(), "12".into()],
        pid: 1234,
        ppid: 1,
        exit: ExitStatus {
            code: Some(0),
            signal: None,
        },
        peak_bytes: (2 << 20) + (512 << 10) + 4096,
        peak_time_s: 1.2449,
        peak_rss_bytes: 40 << 20,
        duration_s: 3.5,
        total_allocs: 5000,
        total_alloc_bytes: 9 << 20,
        sample_rate: 0,
        at_peak: vec![
            st(
                &[
                    "main (src/main.rs:40)",
                    "build_index (src/index.rs:88)",
                    "alloc_big (src/main.rs:12)",
                ],
                2 << 20,
                1,
            ),
            st(
                &[
                    "main (src/main.rs:40)",
                    "build_index (src/index.rs:88)",
                    "grow (src/index.rs:101)",
                ],
                512 << 10,
                3,
            ),
            st(
                &["main (src/main.rs:41)", "load_config (src/config.rs:7)"],
                4096,
                12,
            ),
        ],
        at_exit: vec![],
        warnings: vec![],
        ..Report::default()
    }
}

/// Parses `svg` as XML, failing on anything ill-formed, and returns the text of every
/// element (entities resolved), in document order of the closing tags.
fn parse_svg(svg: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(svg).expect("SVG is UTF-8");
    for c in text.chars() {
        let allowed = matches!(c, '\t' | '\n' | '\r')
            || (c >= ' '
                && c != '\u{FFFE}'
                && c != '\u{FFFF}'
                && !('\u{7f}'..='\u{9f}').contains(&c));
        assert!(allowed, "character {c:?} is not allowed in XML 1.0 output");
    }
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    reader.config_mut().check_comments = true;
    let mut open: Vec<String> = Vec::new();
    let mut done = Vec::new();
    let mut depth = 0usize;
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(_) => {
                depth += 1;
                open.push(String::new());
            }
            Event::End(_) => {
                depth = depth.checked_sub(1).expect("balanced tags");
                done.push(open.pop().unwrap());
            }
            Event::Text(t) => {
                let s = t.decode().expect("text decodes");
                assert!(
                    !s.contains('<') && !s.contains('&'),
                    "raw markup in text: {s:?}"
                );
                if let Some(top) = open.last_mut() {
                    top.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().expect("valid char ref") {
                    Some(c) => c.to_string(),
                    None => match &*r.decode().unwrap() {
                        "amp" => "&".to_string(),
                        "lt" => "<".to_string(),
                        "gt" => ">".to_string(),
                        "quot" => "\"".to_string(),
                        "apos" => "'".to_string(),
                        other => panic!("undefined entity &{other};"),
                    },
                };
                if let Some(top) = open.last_mut() {
                    top.push_str(&resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "unclosed elements");
    done
}

fn check_golden(name: &str, actual: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the output; run with UPDATE_GOLDEN=1 to accept the change",
        path.display()
    );
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
            .any(|t| t == "No heap allocations were tracked at the peak."));
    }
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

//! Helpers shared by the `render_*` tests (flame graph, folded, timeline, pprof, HTML, diff,
//! leaks), included with `#[path]`. Cargo also builds this file as a test target of its own, with
//! no tests in it.
#![allow(dead_code)]
#![cfg(feature = "cli")]

use std::path::PathBuf;

use peakprof::format::TimelinePoint;
use peakprof::report::{ExitStatus, Report, SymStack};
use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};

#[path = "common/xml_ref.rs"]
mod xml_ref;

pub const MIB: u64 = 1 << 20;
pub const KIB: u64 = 1 << 10;

pub fn st(frames: &[&str], bytes: u64, count: u64) -> SymStack {
    SymStack {
        frames: frames.iter().map(|&s| s.into()).collect(),
        bytes,
        count,
    }
}

/// A small, fully populated report with round numbers, so expected values are exact.
pub fn sample_report() -> Report {
    Report {
        argv: vec!["./prog".into(), "--size".into(), "12".into()],
        pid: 1234,
        ppid: 1,
        exit: ExitStatus {
            code: Some(0),
            signal: None,
        },
        peak_bytes: 2 * MIB + 512 * KIB + 4 * KIB,
        peak_time_s: 1.5,
        peak_rss_bytes: 5 * MIB,
        duration_s: 3.0,
        total_allocs: 5000,
        total_alloc_bytes: 9 * MIB,
        sample_rate: 0,
        at_peak: vec![
            st(
                &[
                    "main (src/main.rs:40)",
                    "build_index (src/index.rs:88)",
                    "alloc_big (src/main.rs:12)",
                ],
                2 * MIB,
                1,
            ),
            st(
                &[
                    "main (src/main.rs:40)",
                    "build_index (src/index.rs:88)",
                    "grow (src/index.rs:101)",
                ],
                512 * KIB,
                3,
            ),
            st(
                &["main (src/main.rs:41)", "load_config (src/config.rs:7)"],
                4 * KIB,
                12,
            ),
        ],
        at_exit: vec![st(
            &["main (src/main.rs:41)", "load_config (src/config.rs:7)"],
            4 * KIB,
            12,
        )],
        final_bytes: 4 * KIB,
        allocated: vec![
            st(
                &[
                    "main (src/main.rs:40)",
                    "build_index (src/index.rs:88)",
                    "alloc_big (src/main.rs:12)",
                ],
                6 * MIB,
                3,
            ),
            st(
                &[
                    "main (src/main.rs:40)",
                    "build_index (src/index.rs:88)",
                    "grow (src/index.rs:101)",
                ],
                MIB,
                10,
            ),
            st(
                &[
                    "main (src/main.rs:42)",
                    "libfoo.so+0x1a2b",
                    "0x7f0000001000",
                ],
                2 * MIB,
                4987,
            ),
        ],
        timeline: [
            (0, 0, 0),
            (500, 1, 3),
            (1000, 2, 4),
            (1500, 2, 5),
            (3000, 0, 4),
        ]
        .into_iter()
        .map(|(ms, mib, rss_mib)| TimelinePoint {
            time_ns: ms * 1_000_000,
            bytes: if ms == 1500 {
                2 * MIB + 516 * KIB
            } else {
                mib * MIB
            },
            rss_bytes: rss_mib * MIB,
            last_bytes: mib * MIB,
        })
        .collect(),
        modules: vec![peakprof::format::Module {
            path: "/usr/lib/libfoo.so".into(),
            build_id: vec![0xde, 0xad, 0xbe, 0xef],
            bias: 0x7f00_0000_0000,
            ranges: vec![(0x7f00_0000_0000, 0x7f00_0000_4000)],
        }],
        end: "exit".into(),
        cgroup_limit_bytes: Some(8 * MIB),
        warnings: vec![],
    }
}

/// Names that try to break out of every context the renderers write into.
pub const HOSTILE: &[&str] = &[
    "</script><img src=x onerror=alert(1)>",
    "a & b \"quoted\" 'single'",
    "ctl\u{1}\u{1b}[31m\nline\u{7f}\u{85}",
    "]]><script>alert(2)</script>",
    "</iframe><script>alert(3)</script>",
    "javascript:alert(4)",
];

/// Compares `actual` with `tests/golden/<name>`, rewriting the file instead when
/// `UPDATE_GOLDEN=1` so an intended change is one command away.
pub fn check_golden(name: &str, actual: &[u8]) {
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

/// Parses `xml` strictly, failing on anything ill-formed or any character XML 1.0 forbids,
/// and returns the text content of every element (entities resolved, in order of the
/// closing tags) followed by every attribute value (normalized, in document order).
pub fn parse_xml(xml: &str) -> (Vec<String>, Vec<String>) {
    for c in xml.chars() {
        let allowed = matches!(c, '\t' | '\n' | '\r')
            || (c >= ' '
                && c != '\u{FFFE}'
                && c != '\u{FFFF}'
                && !('\u{7f}'..='\u{9f}').contains(&c));
        assert!(allowed, "character {c:?} is not allowed in XML 1.0 output");
    }
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    reader.config_mut().check_comments = true;
    let mut open: Vec<String> = Vec::new();
    let mut texts = Vec::new();
    let mut attrs = Vec::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => {
                collect_attrs(&e, &mut attrs);
                open.push(String::new());
            }
            Event::Empty(e) => {
                collect_attrs(&e, &mut attrs);
                texts.push(String::new());
            }
            Event::End(_) => texts.push(open.pop().expect("balanced tags")),
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
                let resolved = xml_ref::resolve(&r, "XML");
                if let Some(top) = open.last_mut() {
                    top.push_str(&resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(open.is_empty(), "unclosed elements");
    (texts, attrs)
}

fn collect_attrs(e: &quick_xml::events::BytesStart, attrs: &mut Vec<String>) {
    for a in e.attributes() {
        let a = a.expect("well-formed attribute");
        attrs.push(
            a.normalized_value(XmlVersion::Implicit1_0)
                .expect("attribute value decodes")
                .into_owned(),
        );
    }
}

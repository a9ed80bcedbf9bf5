//! The HTML report: parsed strictly (the page is well-formed XML by design), checked for
//! escaping with hostile names everywhere, and for two independently working flame graphs.
#![cfg(feature = "cli")]

#[path = "render_common.rs"]
mod common;

use common::{check_golden, parse_xml, sample_report, st, HOSTILE, MIB};
use peakprof::render::text::sanitize_line;
use peakprof::render::{flamegraph_svg, index_html, timeline_svg, FlameOptions, ProcessRow};
use peakprof::report::Report;

fn page(report: &Report, processes: &[ProcessRow]) -> String {
    let flame = flamegraph_svg(report, &report.at_peak, &FlameOptions::default()).unwrap();
    let reversed = flamegraph_svg(
        report,
        &report.at_peak,
        &FlameOptions {
            reversed: true,
            ..FlameOptions::default()
        },
    )
    .unwrap();
    let timeline = timeline_svg(report, "Memory over time");
    index_html(
        report,
        processes,
        std::str::from_utf8(&flame).unwrap(),
        std::str::from_utf8(&reversed).unwrap(),
        &timeline,
    )
}

fn processes() -> Vec<ProcessRow> {
    vec![
        ProcessRow {
            pid: 1234,
            ppid: 1,
            command: "./prog --size 12".into(),
            peak_bytes: 2 * MIB,
            peak_rss_bytes: 5 * MIB,
            exit: "exit code 0".into(),
            dir: Some("pid-1234".into()),
        },
        ProcessRow {
            pid: 1240,
            ppid: 1234,
            command: "sh -c 'echo hi'".into(),
            peak_bytes: 4096,
            peak_rss_bytes: MIB,
            exit: "killed by SIGKILL".into(),
            dir: Some("pid-1240".into()),
        },
    ]
}

/// The documents embedded with `srcdoc`, unescaped exactly as an HTML parser would
/// (the XML parser would also normalize newlines in attribute values).
fn frames(html: &str) -> Vec<String> {
    html.split(" srcdoc=\"")
        .skip(1)
        .map(|rest| {
            let raw = &rest[..rest.find('"').expect("closing quote")];
            assert!(!raw.contains('<'), "unescaped markup in srcdoc");
            raw.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}

/// `doc` without the content of its `<script>` elements, so ids named in code comments
/// are not counted.
fn without_scripts(doc: &str) -> String {
    let mut out = String::new();
    let mut rest = doc;
    while let Some(start) = rest.find("<script") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("</script>").expect("closed script") + start;
        rest = &rest[end + "</script>".len()..];
    }
    out.push_str(rest);
    out
}

#[test]
fn golden_sample_page() {
    let html = page(&sample_report(), &processes());
    check_golden("index_small.html", html.as_bytes());
    let (texts, _) = parse_xml(&html);
    let has = |s: &str| texts.iter().any(|t| t == s);
    for want in [
        "./prog --size 12",
        "2.50 MiB",
        "after 1.50 s",
        "5.00 MiB",
        "exit code 0",
        "memory.max",
        "8.00 MiB",
        "Largest call paths at the peak",
        "alloc_big (src/main.rs:12)",
        "build_index",
        "79.9%",
        "Processes",
        "sh -c 'echo hi'",
        "killed by SIGKILL",
    ] {
        assert!(has(want), "{want:?} missing: {texts:#?}");
    }
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("Peak RSS is 2.50 MiB above the peak heap.")),
        "{texts:#?}"
    );
    assert!(html.contains(r#"<a href="pid-1240/index.html">pid-1240</a>"#));
}

#[test]
fn the_page_is_self_contained() {
    let html = page(&sample_report(), &processes());
    // Outside the frames (whose SVG namespaces and inferno's comment are URLs but are
    // never fetched), nothing refers to the network.
    let mut outside = html.clone();
    for f in frames(&html) {
        outside = outside.replace(&escape_attr(&f), "");
    }
    for needle in ["<link", " src=\"", "@import", "url(", "https://", "<script"] {
        assert!(!outside.contains(needle), "{needle} in the page");
    }
    assert_eq!(
        outside.matches("http://").count(),
        1,
        "only the SVG namespace"
    );
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[test]
fn each_flame_graph_has_its_own_document() {
    let html = page(&sample_report(), &processes());
    let docs = frames(&html);
    assert_eq!(docs.len(), 2, "two flame graph frames");
    for doc in &docs {
        // Parses strictly, so the frame's parser sees exactly this structure.
        let (texts, _) = parse_xml(doc);
        // One graph (its root svg carries the onload; `frames` is a nested svg).
        assert_eq!(doc.matches("onload=\"init(evt)\"").count(), 1);
        for id in ["frames", "details", "search", "matched", "unzoom", "title"] {
            let markup = without_scripts(doc);
            assert_eq!(
                markup.matches(&format!(" id=\"{id}\"")).count(),
                1,
                "id {id}"
            );
        }
        assert!(doc.contains("function search(term)"));
        assert!(doc.contains("function search_prompt()"));
        // The shim that keeps search working in about:srcdoc comes before inferno's script.
        let shim = doc.find("h.replaceState = function").unwrap();
        assert!(shim < doc.find("<svg ").unwrap());
        assert!(!doc.contains("<?xml") && !doc.contains("<!DOCTYPE svg"));
        assert!(texts.iter().any(|t| t.starts_with("Peak heap: 2.50 MiB")));
    }
    assert!(docs[1].contains("(allocation sites first)"));
    assert!(
        html.contains(r#"style="height: 166px""#),
        "sized to the graph"
    );
}

#[test]
fn hostile_text_is_escaped_everywhere() {
    let mut r = sample_report();
    r.argv = HOSTILE.iter().map(|s| s.to_string()).collect();
    r.at_peak = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, h)| st(&[h, h], 10 + i as u64, 1))
        .collect();
    r.warnings = HOSTILE.iter().map(|s| s.to_string()).collect();
    r.end = "<b>weird</b>".into();
    let procs: Vec<ProcessRow> = HOSTILE
        .iter()
        .map(|h| ProcessRow {
            command: h.to_string(),
            exit: h.to_string(),
            dir: Some(h.to_string()),
            ..ProcessRow::default()
        })
        .collect();
    let html = page(&r, &procs);

    // Strict parsing fails on any raw `<`/`&` or control character that got through.
    let (texts, attrs) = parse_xml(&html);
    for h in HOSTILE {
        let clean = sanitize_line(h);
        assert!(texts.contains(&clean), "{h:?} shown as text");
    }
    assert!(!html.contains("<img") && !html.contains("<script") && !html.contains("<b>"));
    assert!(!html.contains("</iframe><"));
    assert!(
        attrs.iter().all(|a| !a.starts_with("javascript:")),
        "no javascript: links"
    );
    assert!(attrs.contains(&"./javascript:alert(4)/index.html".to_string()));

    // Inside each frame the names are still escaped once more, by inferno.
    for doc in frames(&html) {
        let (texts, _) = parse_xml(&doc);
        assert!(!doc.contains("<img") && !doc.contains("<script>alert"));
        assert!(texts
            .iter()
            .any(|t| t.starts_with("</script><img src=x onerror=alert(1)>")));
    }
}

#[test]
fn single_process_and_empty_report() {
    let html = page(&Report::default(), &processes()[..1]);
    let (texts, _) = parse_xml(&html);
    assert!(!texts.contains(&"Processes".to_string()));
    assert!(texts.contains(&"No heap allocations were live at the peak.".to_string()));
    assert!(texts.contains(&"The peak RSS was not measured.".to_string()));
    assert_eq!(frames(&html).len(), 2);
}

/// A process still running when the report was made says so, and neither when nor how it
/// "ended"; a killed one keeps its end.
#[test]
fn a_running_process_has_a_status_not_an_end() {
    let mut report = sample_report();
    report.end = "running".into();
    report.exit = Default::default();
    let (texts, _) = parse_xml(&page(&report, &processes()[..1]));
    for expected in [
        "Status",
        "still running",
        "its state when this report was made",
        "Live now",
    ] {
        assert!(
            texts.iter().any(|t| t == expected),
            "{expected:?} in {texts:?}"
        );
    }
    for absent in ["Ended", "Live at the end", "Left at exit"] {
        assert!(
            !texts.iter().any(|t| t == absent),
            "{absent:?} in {texts:?}"
        );
    }
    report.end = "killed".into();
    let (texts, _) = parse_xml(&page(&report, &processes()[..1]));
    assert!(texts.iter().any(|t| t == "Ended"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "Live at the end"), "{texts:?}");
}

/// A process without rendered reports is listed without a link; a table of hundreds of
/// processes is cut at 200 rows, the rest counted.
#[test]
fn process_table_without_reports_and_beyond_its_rows() {
    let mut procs = processes();
    procs[1].dir = None;
    let html = page(&sample_report(), &procs);
    let (texts, _) = parse_xml(&html);
    assert!(texts.contains(&"not rendered".to_string()), "{texts:#?}");
    assert!(html.contains("href=\"pid-1234/index.html\""));
    assert!(!html.contains("pid-1240"));

    let many: Vec<ProcessRow> = (0..250u32)
        .map(|i| ProcessRow {
            pid: 10_000 + i,
            peak_bytes: u64::from(1000 - i),
            dir: Some(format!("pid-{}", 10_000 + i)),
            ..ProcessRow::default()
        })
        .collect();
    let html = page(&sample_report(), &many);
    assert!(html.contains("pid-10199/index.html"));
    assert!(!html.contains("pid-10200/index.html"));
    assert!(
        html.contains("… 50 more processes with smaller peaks: all are listed in summary.json"),
        "the cut is counted"
    );
}

/// The paths table counts allocations in exact mode; sampled, only the sampled blocks are
/// counted, and its header says so.
#[test]
fn a_sampled_table_counts_samples() {
    let exact = sample_report();
    let (texts, _) = parse_xml(&page(&exact, &processes()));
    assert!(texts.contains(&"Allocations".to_string()));
    assert!(!texts.contains(&"Samples".to_string()));
    let sampled = Report {
        sample_rate: 512 * 1024,
        ..sample_report()
    };
    let (texts, _) = parse_xml(&page(&sampled, &processes()));
    assert!(texts.contains(&"Samples".to_string()));
    assert!(!texts.contains(&"Allocations".to_string()));
}

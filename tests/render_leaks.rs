//! The leaks graph: the peak renderer with a title and subtitle about the end of the run.
#![cfg(feature = "cli")]

#[path = "render_common.rs"]
mod common;

use common::{parse_xml, sample_report, st, HOSTILE};
use peakprof::render::{leaks_svg, leaks_title};
use peakprof::report::Report;

#[test]
fn title_and_subtitle_describe_the_exit() {
    let r = sample_report();
    assert_eq!(
        leaks_title(&r),
        "Left allocated at exit: 4.00 KiB in 12 allocations — ./prog --size 12"
    );
    for reversed in [false, true] {
        let svg = String::from_utf8(leaks_svg(&r, reversed).unwrap()).unwrap();
        let (texts, _) = parse_xml(&svg);
        assert!(texts.contains(&leaks_title(&r)), "{texts:#?}");
        assert!(texts
            .iter()
            .any(|t| t.starts_with("still allocated when the process ended, after 3.00 s")));
        assert!(
            !svg.contains("at the peak"),
            "no peak wording in the leaks graph"
        );
        assert!(texts
            .iter()
            .any(|t| t.starts_with("load_config (src/config.rs:7) (4,096 bytes")));
    }
}

/// A process stopped at the --limit (or killed) did not leak what it held: the graph says
/// when it was taken and drops the advice about leaks.
#[test]
fn an_end_that_was_not_an_exit_is_not_called_a_leak() {
    let mut r = sample_report();
    r.end = "limit-stop".into();
    assert_eq!(
        leaks_title(&r),
        "Live when it was stopped at the --limit: 4.00 KiB in 12 allocations — ./prog --size 12"
    );
    let svg = String::from_utf8(leaks_svg(&r, false).unwrap()).unwrap();
    let (texts, _) = parse_xml(&svg);
    assert!(texts.contains(&leaks_title(&r)), "{texts:#?}");
    assert!(
        texts
            .iter()
            .any(|t| t == "still allocated when it was stopped at the --limit, after 3.00 s"),
        "{texts:#?}"
    );
    assert!(!svg.contains("leak"), "no leak wording: {texts:#?}");

    r.end = "killed".into();
    r.at_exit.clear();
    let svg = String::from_utf8(leaks_svg(&r, false).unwrap()).unwrap();
    let (texts, _) = parse_xml(&svg);
    assert!(
        texts.contains(&"Nothing was live when it was killed.".to_string()),
        "{texts:#?}"
    );
}

#[test]
fn nothing_left_and_hostile_names() {
    let svg = leaks_svg(&Report::default(), false).unwrap();
    let (texts, _) = parse_xml(std::str::from_utf8(&svg).unwrap());
    assert!(texts.contains(&"Nothing was left allocated at exit.".to_string()));
    assert_eq!(
        leaks_title(&Report::default()),
        "Left allocated at exit: 0 B in 0 allocations"
    );

    let mut r = sample_report();
    r.argv = vec![HOSTILE[0].to_string()];
    r.at_exit = HOSTILE.iter().map(|h| st(&["main", h], 10, 1)).collect();
    let svg = String::from_utf8(leaks_svg(&r, false).unwrap()).unwrap();
    let (texts, _) = parse_xml(&svg);
    assert!(!svg.contains("<img"));
    assert!(texts
        .iter()
        .any(|t| t.starts_with("Left allocated at exit: 60 B in 6 allocations — '</script><img")));
}

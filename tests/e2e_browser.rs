//! End-to-end: the report page (index.html) in a real browser, headless Chromium.
//!
//! No DevTools client is needed: the test writes a copy of the page with a small script
//! added at the end of its body (`browser-test.html`, next to index.html). After the page
//! and its frames have loaded, the script inspects both flame graph frames (which are
//! same-origin `<iframe srcdoc>` documents), runs inferno's own `search()` in them,
//! clicks a frame, and writes what it saw as JSON into a `<pre>`; `chromium --dump-dom`
//! prints the resulting DOM, and the test reads the JSON back. Console messages come
//! through `--enable-logging=stderr`, so script errors in the page fail the test too.
//! A screenshot of the untouched index.html is saved under target/tmp for people to look at.
//!
//! Needs /usr/bin/chromium (Debian package `chromium`, installed by
//! .ci/install-test-deps.sh); without it every test prints `SKIPPED: ...` and passes.

mod common;
#[path = "common/reports.rs"]
mod reports;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::*;
use reports::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// peak_c.c's exact peak (its header); hold_a holds 100000 of it (25.05%).
const PEAK_C: u64 = 399_152;
/// An argument that would inject an element if the page did not escape the command line.
const HOSTILE_ARG: &str = r#"<b id="pwned">&amp;'x'</b>"#;

/// Whether Chromium is there; prints a visible SKIPPED line for `test` when not.
fn have_chromium(test: &str) -> bool {
    let ok = Path::new(CHROMIUM).is_file();
    if !ok {
        eprintln!("SKIPPED: {test}: {CHROMIUM} is missing (apt-get install chromium)");
    }
    ok
}

/// Runs headless Chromium with `args` after the common flags, in a fresh profile directory
/// (removed afterwards). One browser at a time: the machine is small and shared.
fn chromium(args: &[&OsStr]) -> Output {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let profile = fresh_dir("browser", "chromium-profile");
    let out = run_command(
        Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            // Anything Chromium keeps outside the profile stays in the scratch directory.
            .env("HOME", &profile)
            .env("XDG_CONFIG_HOME", profile.join("config"))
            .env("XDG_CACHE_HOME", profile.join("cache")),
        Duration::from_secs(120),
    );
    let _ = std::fs::remove_dir_all(&profile);
    out
}

fn file_url(path: &Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap();
    let mut url = String::from("file://");
    for c in abs.to_str().expect("UTF-8 path").chars() {
        match c {
            ' ' => url.push_str("%20"),
            '#' => url.push_str("%23"),
            '?' => url.push_str("%3F"),
            '%' => url.push_str("%25"),
            c => url.push(c),
        }
    }
    url
}

/// peak_c profiled with a hostile argument: the page under test.
fn page_run() -> &'static Run {
    static RUN: OnceLock<Result<Run, String>> = OnceLock::new();
    shared(&RUN, || {
        let run = peakprof_run(&c_example("peak_c.c"), &[HOSTILE_ARG]);
        assert_eq!(run.code(), Some(3), "{}", run.describe());
        assert!(run.path("index.html").is_file(), "{}", run.describe());
        run
    })
}

/// The script added to the test copy of the page. It waits for the page's `load` (which
/// comes after the frames' own loads), lets inferno's deferred set-up run, then records:
/// the page's title, command text and timeline; per flame graph, whether inferno's
/// `init` ran, the size of the graph against its frame, what `search("hold_a")` matched
/// and highlighted, and what a click on hold_a's box did.
const PROBE: &str = r##"
(function () {
  var TERM = "hold_a";
  var out = { loaded: true };
  function finish() {
    var pre = document.createElement("pre");
    pre.id = "peakprof-browser-test";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  function graph(frame) {
    var w = frame.contentWindow, d = frame.contentDocument, g = {};
    g.title = frame.getAttribute("title");
    g.has_details_element = !!d.getElementById("details");
    /* init() sets the globals `details` (a text node) and `total_samples`. */
    g.init_ran = !!(w.details && w.details.nodeType === 3) && typeof w.total_samples === "number";
    g.total_samples = w.total_samples;
    g.pwned = !!d.getElementById("pwned");
    var svg = d.querySelector("svg");
    g.frame_width = frame.clientWidth;
    g.graph_width = svg.getBoundingClientRect().width;
    w.search(TERM);
    g.matched = d.getElementById("matched").textContent;
    g.highlighted = [];
    var groups = d.querySelectorAll("#frames > g");
    for (var i = 0; i < groups.length; i++) {
      if (groups[i].querySelector("rect").getAttribute("fill") === w.searchcolor)
        g.highlighted.push(groups[i].querySelector("title").textContent);
    }
    w.search_prompt(); /* while a search is shown this resets it, without a prompt */
    var target = null;
    for (var j = 0; j < groups.length; j++) {
      if (groups[j].querySelector("title").textContent.indexOf(TERM + " (") === 0) {
        target = groups[j];
        break;
      }
    }
    g.found_target = !!target;
    g.frames_total = groups.length;
    if (target) {
      var rect = target.querySelector("rect");
      g.width_before = rect.getAttribute("width");
      g.unzoom_hidden_before = d.getElementById("unzoom").classList.contains("hide");
      rect.dispatchEvent(new w.MouseEvent("click", { bubbles: true, cancelable: true, view: w }));
      g.width_after = rect.getAttribute("width");
      g.unzoom_hidden_after = d.getElementById("unzoom").classList.contains("hide");
      g.hidden_after = d.querySelectorAll("#frames > g.hide").length;
    }
    return g;
  }
  function run() {
    try {
      out.title = document.title;
      var code = document.querySelector(".command code");
      out.command = code ? code.textContent : null;
      out.pwned = !!document.getElementById("pwned");
      var chart = document.querySelector(".chart svg");
      out.timeline_text = chart ? chart.textContent : null;
      var frames = document.querySelectorAll("iframe.flame");
      out.iframes = frames.length;
      out.graphs = [];
      for (var i = 0; i < frames.length; i++) out.graphs.push(graph(frames[i]));
    } catch (e) {
      out.error = String((e && e.stack) || e);
    }
    finish();
  }
  window.addEventListener("load", function () { setTimeout(run, 300); });
})();
"##;

/// What the probe saw, and Chromium's stderr (console messages).
struct Probe {
    result: Value,
    console: String,
    page: PathBuf,
}

fn probe() -> Option<&'static Probe> {
    static PROBE_RESULT: OnceLock<Result<Probe, String>> = OnceLock::new();
    if !Path::new(CHROMIUM).is_file() {
        return None;
    }
    Some(shared(&PROBE_RESULT, || {
        let run = page_run();
        let html = std::fs::read_to_string(run.path("index.html")).unwrap();
        assert_eq!(
            html.matches("</body>").count(),
            1,
            "one </body> in index.html"
        );
        let page = run.path("browser-test.html");
        std::fs::write(
            &page,
            html.replace("</body>", &format!("<script>{PROBE}</script>\n</body>")),
        )
        .unwrap();
        let out = chromium(&[
            OsStr::new("--window-size=1280,2000"),
            OsStr::new("--virtual-time-budget=10000"),
            OsStr::new("--dump-dom"),
            OsStr::new(&file_url(&page)),
        ]);
        assert!(
            out.status.success(),
            "chromium --dump-dom failed\n{}",
            out.describe()
        );
        let open = r#"<pre id="peakprof-browser-test">"#;
        let start = out.stdout.find(open).unwrap_or_else(|| {
            panic!(
                "the probe did not report (page not loaded, or no load event within the time \
                 budget)\n{}",
                out.describe()
            )
        }) + open.len();
        let end = start + out.stdout[start..].find("</pre>").expect("</pre>");
        let json = out.stdout[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&nbsp;", "\u{a0}")
            .replace("&amp;", "&");
        let result: Value =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("probe output {json:?}: {e}"));
        Probe {
            result,
            console: out.stderr,
            page,
        }
    }))
}

fn graphs(p: &Probe) -> &Vec<Value> {
    p.result["graphs"]
        .as_array()
        .unwrap_or_else(|| panic!("no graphs in {}", p.result))
}

/// What the probe saw, for `test`; it must have run without an error. None (after a visible
/// SKIPPED line) when Chromium is missing.
fn probe_for(test: &str) -> Option<&'static Probe> {
    if !have_chromium(test) {
        return None;
    }
    let p = probe().unwrap();
    assert!(
        p.result.get("error").is_none(),
        "the probe failed: {}",
        p.result["error"]
    );
    Some(p)
}

#[test]
fn report_page_loads_in_chromium() {
    let Some(p) = probe_for("report_page_loads_in_chromium") else {
        return;
    };
    let r = &p.result;
    assert_eq!(r["loaded"], true);
    let summary = page_run().summary();
    let command = summary["command"].as_str().unwrap();
    // The command line is shown as text, exactly, and injected no element.
    assert_eq!(r["command"].as_str(), Some(command), "{r}");
    assert_eq!(
        r["pwned"], false,
        "markup from the command line became an element"
    );
    assert!(
        r["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("peakprof: ")),
        "{r}"
    );
    assert!(
        r["timeline_text"]
            .as_str()
            .is_some_and(|t| t.contains("peak 390 KiB at ")),
        "timeline in the page: {r}"
    );
    assert_eq!(r["iframes"], 2, "two flame graph frames: {r}");
    // No script error, in the page or in its frames.
    let errors: Vec<&str> = p
        .console
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("Uncaught") || l.contains("Error")))
        .collect();
    assert!(
        errors.is_empty(),
        "console errors in {}:\n{}",
        p.page.display(),
        errors.join("\n")
    );
}

#[test]
fn flame_graphs_initialize_in_their_frames() {
    let Some(p) = probe_for("flame_graphs_initialize_in_their_frames") else {
        return;
    };
    let g = graphs(p);
    assert_eq!(g.len(), 2);
    for graph in g {
        assert_eq!(graph["has_details_element"], true, "{graph}");
        assert_eq!(
            graph["init_ran"], true,
            "inferno's init() did not run: {graph}"
        );
        assert_eq!(
            graph["total_samples"], PEAK_C,
            "the graph is of the peak: {graph}"
        );
        assert_eq!(
            graph["pwned"], false,
            "markup from the command line in {graph}"
        );
    }
}

#[test]
fn flame_graph_search_marks_matches() {
    let Some(p) = probe_for("flame_graph_search_marks_matches") else {
        return;
    };
    for graph in graphs(p) {
        // hold_a holds 100000 of 399152 bytes: 25.05%, shown with one decimal.
        assert_eq!(graph["matched"], "Matched: 25.1%", "{graph}");
        let highlighted: Vec<&str> = graph["highlighted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        assert_eq!(highlighted.len(), 1, "one box matches hold_a: {graph}");
        assert!(
            highlighted[0].starts_with("hold_a (") && highlighted[0].contains("100,000 bytes"),
            "{graph}"
        );
    }
}

#[test]
fn flame_graph_click_zooms() {
    let Some(p) = probe_for("flame_graph_click_zooms") else {
        return;
    };
    for graph in graphs(p) {
        assert_eq!(graph["found_target"], true, "{graph}");
        assert_eq!(graph["width_before"], "25.0531%", "{graph}");
        assert_eq!(graph["unzoom_hidden_before"], true, "{graph}");
        // The clicked box fills the width; `Reset Zoom` appears; every box off its path is
        // hidden (the path is all, main, hold_a in both directions).
        assert_eq!(graph["width_after"], "100.0000%", "{graph}");
        assert_eq!(graph["unzoom_hidden_after"], false, "{graph}");
        let total = graph["frames_total"].as_u64().unwrap();
        assert_eq!(graph["hidden_after"].as_u64(), Some(total - 3), "{graph}");
    }
}

#[test]
fn flame_graphs_use_the_width_of_their_frame() {
    let Some(p) = probe_for("flame_graphs_use_the_width_of_their_frame") else {
        return;
    };
    for graph in graphs(p) {
        let frame = graph["frame_width"].as_f64().unwrap();
        let drawn = graph["graph_width"].as_f64().unwrap();
        assert!(
            frame > 600.0,
            "the frame should span the page (1280 px window): {graph}"
        );
        assert!(
            drawn >= 0.9 * frame,
            "the flame graph is drawn {drawn} px wide in a {frame} px frame: inferno's script \
             removes the SVG's width and viewBox (fluid drawing), so unless the frame's \
             document sizes the <svg> (e.g. `svg {{ width: 100% }}`) it falls back to \
             300 px\n{graph}"
        );
    }
}

#[test]
fn screenshot_of_the_report_page() {
    if !have_chromium("screenshot_of_the_report_page") {
        return;
    }
    let run = page_run();
    let dir = fresh_dir("browser", "screenshot");
    let png = dir.join("index.png");
    let out = chromium(&[
        OsStr::new("--window-size=1280,2000"),
        OsStr::new("--virtual-time-budget=10000"),
        OsStr::new(&format!("--screenshot={}", png.display())),
        OsStr::new(&file_url(&run.path("index.html"))),
    ]);
    assert!(
        out.status.success(),
        "chromium --screenshot failed\n{}",
        out.describe()
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {}: {e}\n{}",
            png.display(),
            out.describe()
        )
    });
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        png.display()
    );
    assert!(
        bytes.len() > 20 * 1024,
        "{} is only {} bytes: a blank page?",
        png.display(),
        bytes.len()
    );
    eprintln!("screenshot of the report page: {}", png.display());
}

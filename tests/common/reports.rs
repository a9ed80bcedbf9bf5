//! Helpers for the report tests (tests/e2e_reports.rs, tests/e2e_browser.rs): running the
//! other subcommands and external tools with a time limit, a small strict XML reader for
//! the SVG and HTML outputs, and the pprof decoder.
//!
//! Included next to `tests/common/mod.rs` with `#[path = "common/reports.rs"] mod reports;`.
#![allow(dead_code)] // each test file uses its own subset

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::common::{run_in_group, tmp_root, unique_dir};

#[path = "xml_ref.rs"]
mod xml_ref;

/// A fresh, empty directory `CARGO_TARGET_TMPDIR/<group>/<name>-<pid>-<n>`. Kept after the
/// test for inspection (target/tmp is cargo's scratch space).
pub fn fresh_dir(group: &str, name: &str) -> PathBuf {
    unique_dir(&tmp_root().join(group), name)
}

/// What a command run by [`run_command`] did.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn describe(&self) -> String {
        format!(
            "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` in a process group of its own with stdin closed and both outputs captured;
/// after `timeout` the whole group is killed and the test fails (a hang must not block the
/// suite, and nothing it started may outlive the test).
pub fn run_command(cmd: &mut Command, timeout: Duration) -> Output {
    let shown = format!("{cmd:?}");
    let f = run_in_group(cmd, timeout, &shown);
    Output {
        status: f.status,
        stdout: String::from_utf8_lossy(&f.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&f.stderr).into_owned(),
    }
}

/// `peakprof ARGS...` (another subcommand than `run`: `diff`, `report`).
pub fn peakprof(args: &[&std::ffi::OsStr]) -> Output {
    run_command(
        Command::new(env!("CARGO_BIN_EXE_peakprof")).args(args),
        Duration::from_secs(120),
    )
}

/// The one raw profile (`raw/*.ppf`) of a single-process run directory.
pub fn raw_profile(run_dir: &Path) -> PathBuf {
    let raw = run_dir.join("raw");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&raw)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", raw.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ppf"))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one .ppf in {}: {found:?}",
        raw.display()
    );
    found.pop().unwrap()
}

/// Whether `program` can be found on PATH.
pub fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------
// A strict XML reader
// ---------------------------------------------------------------------------------------

/// One element of a parsed XML document.
#[derive(Debug, Clone)]
pub struct Elem {
    /// The qualified name as written (`svg`, `text`, `fg:x` for attributes…).
    pub name: String,
    /// Attributes in document order, values with entities resolved.
    pub attrs: Vec<(String, String)>,
    /// All text inside the element (its own and its descendants'), entities resolved.
    pub text: String,
    /// How many elements enclose it (0 for the root).
    pub depth: usize,
}

impl Elem {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A numeric attribute, panicking with the element when absent or not a number.
    pub fn num(&self, name: &str) -> f64 {
        self.attr(name)
            .and_then(|v| v.trim_end_matches('%').parse().ok())
            .unwrap_or_else(|| panic!("<{}> has no numeric `{name}`: {self:?}", self.name))
    }

    pub fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_whitespace().any(|x| x == class))
    }
}

/// Parses `xml` strictly (well-formed, matching end tags, only characters XML 1.0 allows,
/// only the predefined entities) and returns its elements in document order. Panics with
/// `what` and the position on any error.
pub fn parse_xml(xml: &str, what: &str) -> Vec<Elem> {
    if let Some((i, c)) = xml.char_indices().find(|&(_, c)| {
        !(matches!(c, '\t' | '\n' | '\r')
            || (c >= ' '
                && c != '\u{FFFE}'
                && c != '\u{FFFF}'
                && !('\u{7f}'..='\u{9f}').contains(&c)))
    }) {
        panic!("{what}: character {c:?} at byte {i} is not allowed in XML 1.0");
    }
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    reader.config_mut().check_comments = true;
    let mut elems: Vec<Elem> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut roots = 0;
    let fail = |reader: &Reader<&[u8]>, e: &dyn std::fmt::Display| -> ! {
        let pos = reader.buffer_position() as usize;
        let from = pos.saturating_sub(120);
        let context: String = xml
            .get(from..(pos + 40).min(xml.len()))
            .unwrap_or("")
            .to_string();
        panic!("{what} is not well-formed XML at byte {pos}: {e}\n…{context}…")
    };
    let append = |elems: &mut Vec<Elem>, open: &[usize], s: &str| {
        for &i in open {
            elems[i].text.push_str(s);
        }
    };
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => fail(&reader, &e),
        };
        match event {
            Event::Start(e) => {
                if open.is_empty() {
                    roots += 1;
                }
                let el = element(&e, open.len(), what);
                open.push(elems.len());
                elems.push(el);
            }
            Event::Empty(e) => {
                if open.is_empty() {
                    roots += 1;
                }
                elems.push(element(&e, open.len(), what));
            }
            Event::End(_) => {
                open.pop()
                    .unwrap_or_else(|| panic!("{what}: end tag without a start tag"));
            }
            Event::Text(t) => {
                let s = t
                    .decode()
                    .unwrap_or_else(|e| panic!("{what}: undecodable text: {e}"));
                append(&mut elems, &open, &s);
            }
            Event::CData(t) => {
                let s = String::from_utf8_lossy(&t).into_owned();
                append(&mut elems, &open, &s);
            }
            Event::GeneralRef(r) => {
                let resolved = xml_ref::resolve(&r, what);
                append(&mut elems, &open, &resolved);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(open.is_empty(), "{what}: {} unclosed elements", open.len());
    assert_eq!(
        roots, 1,
        "{what}: an XML document has exactly one root element"
    );
    elems
}

fn element(e: &BytesStart, depth: usize, what: &str) -> Elem {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.unwrap_or_else(|err| panic!("{what}: bad attribute in <{name}>: {err}"));
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .unwrap_or_else(|err| panic!("{what}: bad value of {key} in <{name}>: {err}"))
            .into_owned();
        attrs.push((key, value));
    }
    Elem {
        name,
        attrs,
        text: String::new(),
        depth,
    }
}

/// The elements inside `elems[i]` (its descendants, in document order).
pub fn descendants(elems: &[Elem], i: usize) -> &[Elem] {
    let depth = elems[i].depth;
    let end = elems[i + 1..]
        .iter()
        .position(|e| e.depth <= depth)
        .map_or(elems.len(), |n| i + 1 + n);
    &elems[i + 1..end]
}

/// The XML escaping every output uses for text and attribute values.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// `"512 KiB"`, `"0 B"`, `"1.50 MiB"` → bytes (as f64: labels are rounded).
pub fn parse_human_bytes(s: &str) -> Option<f64> {
    let (num, unit) = s.trim().split_once(' ')?;
    let n: f64 = num.parse().ok()?;
    let mult = match unit {
        "B" => 1u64,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    Some(n * mult as f64)
}

/// The points of a `points="x,y x,y …"` attribute.
pub fn parse_points(points: &str) -> Vec<(f64, f64)> {
    points
        .split_whitespace()
        .map(|p| {
            let (x, y) = p
                .split_once(',')
                .unwrap_or_else(|| panic!("bad point {p:?}"));
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

/// Every `src`/`href` value (any namespace prefix, any case) in an HTML or SVG text, and
/// every `url(...)` in its styles, that points off the page: `http:`, `https:`, or
/// protocol-relative `//`. Works on text that is not well-formed XML too.
pub fn external_references(doc: &str) -> Vec<String> {
    let lower = doc.to_ascii_lowercase();
    let mut found = Vec::new();
    for attr in ["src", "href"] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(attr) {
            let at = from + i;
            from = at + attr.len();
            // An attribute name: preceded by whitespace or a namespace colon.
            let before = lower[..at].chars().next_back();
            if !matches!(before, Some(c) if c.is_whitespace() || c == ':') {
                continue;
            }
            let rest = lower[from..].trim_start();
            let Some(rest) = rest.strip_prefix('=') else {
                continue;
            };
            let value = rest.trim_start().trim_start_matches(['"', '\'']);
            if is_external(value) {
                found.push(doc[at..(at + 80).min(doc.len())].to_string());
            }
        }
    }
    let mut from = 0;
    while let Some(i) = lower[from..].find("url(") {
        let at = from + i;
        from = at + 4;
        let value = lower[from..].trim_start().trim_start_matches(['"', '\'']);
        if is_external(value) {
            found.push(doc[at..(at + 80).min(doc.len())].to_string());
        }
    }
    if lower.contains("@import") {
        found.push("@import".to_string());
    }
    found
}

fn is_external(value: &str) -> bool {
    value.starts_with("http:") || value.starts_with("https:") || value.starts_with("//")
}

/// The documents of the `srcdoc` attributes in `elems` (already attribute-unescaped).
pub fn srcdocs(elems: &[Elem]) -> Vec<String> {
    elems
        .iter()
        .filter(|e| e.name == "iframe")
        .filter_map(|e| e.attr("srcdoc").map(str::to_string))
        .collect()
}

// ---------------------------------------------------------------------------------------
// pprof
// ---------------------------------------------------------------------------------------

/// Reads and decodes a gzipped pprof profile.
pub fn read_pprof(path: &Path) -> peakprof::render::pprof::Profile {
    use prost::Message as _;
    let gz = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(&gz[..2], b"\x1f\x8b", "{} is not gzip", path.display());
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{}: bad gzip: {e}", path.display()));
    peakprof::render::pprof::Profile::decode(raw.as_slice())
        .unwrap_or_else(|e| panic!("{}: not a pprof Profile: {e}", path.display()))
}

/// A pprof sample in readable form: function names leaf first, and the values by type name.
#[derive(Debug, Clone)]
pub struct PprofSample {
    pub functions: Vec<String>,
    pub values: std::collections::BTreeMap<String, i64>,
}

pub fn pprof_samples(p: &peakprof::render::pprof::Profile) -> Vec<PprofSample> {
    let s = |i: i64| p.string_table[i as usize].clone();
    let types: Vec<String> = p.sample_type.iter().map(|t| s(t.r#type)).collect();
    p.sample
        .iter()
        .map(|sample| {
            let functions = sample
                .location_id
                .iter()
                .map(|&id| {
                    let loc = p
                        .location
                        .iter()
                        .find(|l| l.id == id)
                        .unwrap_or_else(|| panic!("sample names unknown location {id}"));
                    let line = loc.line.first().expect("location has a line");
                    let f = p
                        .function
                        .iter()
                        .find(|f| f.id == line.function_id)
                        .unwrap_or_else(|| panic!("unknown function {}", line.function_id));
                    s(f.name)
                })
                .collect();
            assert_eq!(sample.value.len(), types.len(), "one value per sample type");
            PprofSample {
                functions,
                values: types
                    .iter()
                    .cloned()
                    .zip(sample.value.iter().copied())
                    .collect(),
            }
        })
        .collect()
}

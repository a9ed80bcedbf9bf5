//! The pprof export: decode our own output and check every value, then (when Go is
//! installed) let `go tool pprof` read it as the real consumer.
#![cfg(feature = "cli")]

#[path = "render_common.rs"]
mod common;

use std::io::Read as _;
use std::process::Command;

use common::{sample_report, st, KIB, MIB};
use peakprof::render::pprof::{Profile, SAMPLE_TYPES};
use peakprof::render::pprof_gz;
use prost::Message as _;

fn decode(gz: &[u8]) -> Profile {
    assert_eq!(&gz[..2], b"\x1f\x8b", "gzip magic");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .expect("valid gzip");
    Profile::decode(raw.as_slice()).expect("valid Profile message")
}

/// One sample as (leaf-first `function file:line` names, values), for readable asserts.
fn samples(p: &Profile) -> Vec<(Vec<String>, Vec<i64>)> {
    let s = |i: i64| p.string_table[i as usize].clone();
    let mut out: Vec<_> = p
        .sample
        .iter()
        .map(|sample| {
            let names = sample
                .location_id
                .iter()
                .map(|&id| {
                    let loc = &p.location[id as usize - 1];
                    assert_eq!(loc.id, id, "location ids are their 1-based index");
                    assert_eq!(loc.line.len(), 1);
                    let f = &p.function[loc.line[0].function_id as usize - 1];
                    format!("{} {}:{}", s(f.name), s(f.filename), loc.line[0].line)
                })
                .collect();
            (names, sample.value.clone())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_value_decodes_back() {
    let report = sample_report();
    let p = decode(&pprof_gz(&report).unwrap());
    let s = |i: i64| p.string_table[i as usize].as_str();

    assert_eq!(p.string_table[0], "");
    let types: Vec<(&str, &str)> = p
        .sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
        .collect();
    assert_eq!(types, SAMPLE_TYPES);
    assert_eq!(s(p.default_sample_type), "inuse_space");
    let period = p.period_type.as_ref().unwrap();
    assert_eq!((s(period.r#type), s(period.unit)), ("space", "bytes"));
    assert_eq!(p.period, 1);
    assert_eq!(p.duration_nanos, 3_000_000_000);
    let comments: Vec<&str> = p.comment.iter().map(|&c| s(c)).collect();
    assert_eq!(
        comments,
        [
            "peakprof: ./prog --size 12",
            "peak heap 2.50 MiB at 1.50 s, peak RSS 5.00 MiB"
        ]
    );

    let mib = MIB as i64;
    let kib = KIB as i64;
    let v = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        samples(&p),
        vec![
            (
                v(&[
                    "0x7f0000001000 :0",
                    "libfoo.so+0x1a2b :0",
                    "main src/main.rs:42"
                ]),
                vec![0, 0, 2 * mib, 4987]
            ),
            (
                v(&[
                    "alloc_big src/main.rs:12",
                    "build_index src/index.rs:88",
                    "main src/main.rs:40"
                ]),
                vec![2 * mib, 1, 6 * mib, 3]
            ),
            (
                v(&[
                    "grow src/index.rs:101",
                    "build_index src/index.rs:88",
                    "main src/main.rs:40"
                ]),
                vec![512 * kib, 3, mib, 10]
            ),
            (
                v(&["load_config src/config.rs:7", "main src/main.rs:41"]),
                vec![4 * kib, 12, 0, 0]
            ),
        ]
    );

    // One function per (name, file), one location per frame.
    let main_functions = p.function.iter().filter(|f| s(f.name) == "main").count();
    assert_eq!(main_functions, 1);
    assert_eq!(p.location.len(), 9);

    assert_eq!(p.mapping.len(), 1);
    let m = &p.mapping[0];
    assert_eq!(
        (m.id, m.memory_start, m.memory_limit),
        (1, 0x7f00_0000_0000, 0x7f00_0000_4000)
    );
    assert_eq!(
        (s(m.filename), s(m.build_id)),
        ("/usr/lib/libfoo.so", "deadbeef")
    );
    let addressed: Vec<(u64, u64)> = p
        .location
        .iter()
        .filter(|l| l.address != 0)
        .map(|l| (l.address, l.mapping_id))
        .collect();
    assert_eq!(
        addressed,
        [(0x7f00_0000_1000, 1), (0x7f00_0000_1a2b, 1)],
        "unresolved frames keep their address"
    );
}

#[test]
fn output_is_deterministic_and_sampling_is_noted() {
    let mut report = sample_report();
    assert_eq!(pprof_gz(&report).unwrap(), pprof_gz(&report).unwrap());
    report.sample_rate = 512 * KIB;
    let p = decode(&pprof_gz(&report).unwrap());
    assert_eq!(p.period, 512 * KIB as i64);
    let last = *p.comment.last().unwrap();
    assert_eq!(
        p.string_table[last as usize],
        "sampled every 512 KiB: values are estimates"
    );
}

#[test]
fn empty_and_hostile_reports_encode() {
    let p = decode(&pprof_gz(&peakprof::report::Report::default()).unwrap());
    assert!(p.sample.is_empty());
    assert_eq!(p.string_table[0], "");

    let mut at_peak: Vec<_> = common::HOSTILE
        .iter()
        .map(|h| st(&["main", h], 10, 1))
        .collect();
    at_peak.push(st(&[], 5, 1));
    let report = peakprof::report::Report {
        at_peak,
        ..Default::default()
    };
    let p = decode(&pprof_gz(&report).unwrap());
    let names: Vec<&str> = p
        .function
        .iter()
        .map(|f| p.string_table[f.name as usize].as_str())
        .collect();
    for h in common::HOSTILE {
        assert!(names.contains(h), "{h:?} kept verbatim");
    }
    assert!(names.contains(&"[unknown]"), "a stack with no frames");
}

/// `go tool pprof` is the reference reader: if it accepts the file and prints the
/// expected functions and totals, every other pprof consumer should too.
#[test]
fn go_tool_pprof_reads_it() {
    if Command::new("go").arg("version").output().is_err() {
        eprintln!(
            "SKIPPED go_tool_pprof_reads_it: `go` is not installed (apt-get install golang-go)"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("peakprof-pprof-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("heap.pb.gz");
    std::fs::write(&file, pprof_gz(&sample_report()).unwrap()).unwrap();

    let run = |index: &str| {
        let out = Command::new("go")
            .args(["tool", "pprof", "-top", &format!("-sample_index={index}")])
            .arg(&file)
            .env("PPROF_TMPDIR", &dir)
            .env("HOME", &dir)
            .output()
            .expect("go tool pprof runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "pprof failed:\n{stdout}\n{stderr}");
        stdout
    };
    let inuse = run("inuse_space");
    assert!(inuse.contains("Type: inuse_space"), "{inuse}");
    assert!(inuse.contains("peakprof: ./prog --size 12"), "{inuse}");
    assert!(inuse.contains("Total samples = 2564kB"), "{inuse}");
    assert_eq!(row(&inuse, "alloc_big"), ["2048kB", "2048kB"]);
    assert_eq!(row(&inuse, "grow"), ["512kB", "512kB"]);
    assert_eq!(row(&inuse, "build_index"), ["0", "2560kB"]);
    assert_eq!(row(&inuse, "main"), ["0", "2564kB"]);

    let alloc = run("alloc_space");
    assert!(alloc.contains("Total samples = 9MB"), "{alloc}");
    assert_eq!(row(&alloc, "alloc_big"), ["6MB", "6MB"]);
    assert_eq!(row(&alloc, "0x7f0000001000"), ["2MB", "2MB"]);
    assert_eq!(row(&alloc, "libfoo.so+0x1a2b"), ["0", "2MB"]);
    assert_eq!(row(&alloc, "main"), ["0", "9MB"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The flat and cumulative columns of `function`'s row in `pprof -top` output.
fn row(top: &str, function: &str) -> [String; 2] {
    let line = top
        .lines()
        .find(|l| l.split_whitespace().last() == Some(function))
        .unwrap_or_else(|| panic!("no row for {function} in:\n{top}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    [cols[0].to_string(), cols[3].to_string()]
}

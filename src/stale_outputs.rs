//! Reports an earlier rendering left in an output directory that this one does not write.
//!
//! A run directory is rendered again by `peakprof report`, and `-o DIR` may name an earlier
//! run's directory. Files this rendering writes are replaced, but one it does not write would
//! stay and be read as part of it: an `oom.svg` of an earlier `--limit` run, the `pid-N/`
//! reports of processes an earlier run had (or rendered with `--all-processes`). Only what
//! peakprof itself writes is removed: a `pid-N` directory holding anything else is left.

use std::path::{Path, PathBuf};

/// The files a process's report set consists of (see `outputs::write_reports`).
pub const REPORT_FILES: [&str; 9] = [
    "peak.svg",
    "peak-reversed.svg",
    "peak.folded",
    "leaks.svg",
    "timeline.svg",
    "peak.pb.gz",
    "oom.svg",
    "index.html",
    "summary.json",
];

/// Whether `name` is a process report directory's (`pid-N` or `pid-N-M`).
fn is_process_dir_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("pid-") else {
        return false;
    };
    let mut parts = rest.split('-');
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    parts.next().is_some_and(digits) && parts.next().is_none_or(digits) && parts.next().is_none()
}

/// Removes from `dir` the `pid-N` report directories not in `written` (the ones this
/// rendering writes) that hold only report files. Errors are ignored: what cannot be
/// removed stays, as it did before.
pub fn remove_process_dirs(dir: &Path, written: &[PathBuf]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let stale = entry.file_name().to_str().is_some_and(is_process_dir_name)
            && entry.file_type().is_ok_and(|t| t.is_dir())
            && !written.contains(&path)
            && only_report_files(&path);
        if stale {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Whether every entry of `dir` is a regular file named as a report file.
fn only_report_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.into_iter().all(|e| {
        e.is_ok_and(|e| {
            e.file_type().is_ok_and(|t| t.is_file())
                && e.file_name()
                    .to_str()
                    .is_some_and(|n| REPORT_FILES.contains(&n))
        })
    })
}

/// Removes `dir/oom.svg`, for a report set written without one, when the report set it
/// replaces says it wrote it (its summary.json has an `oom`): a file of the user's by that
/// name stays. Call before the new summary.json is written.
pub fn remove_oom(dir: &Path) {
    let ours = std::fs::read(dir.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("oom").is_some());
    if ours {
        let _ = std::fs::remove_file(dir.join("oom.svg"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_dir_names() {
        for yes in ["pid-1", "pid-4242", "pid-12-2", "pid-12-10"] {
            assert!(is_process_dir_name(yes), "{yes}");
        }
        for no in [
            "pid-",
            "pid-x",
            "pid-1-",
            "pid-1-2-3",
            "pid-1a",
            "pids-1",
            "raw",
            "pid--1",
        ] {
            assert!(!is_process_dir_name(no), "{no}");
        }
    }

    #[test]
    fn only_stale_report_dirs_go() {
        let base = std::env::temp_dir().join(format!("peakprof-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let mk = |d: &str, files: &[&str]| {
            let d = base.join(d);
            std::fs::create_dir_all(&d).unwrap();
            for f in files {
                std::fs::write(d.join(f), b"x").unwrap();
            }
            d
        };
        let kept = mk("pid-1", &["index.html", "summary.json"]);
        let stale = mk("pid-2", &["index.html", "summary.json", "oom.svg"]);
        let stale_empty = mk("pid-3-2", &[]);
        let users = mk("pid-4", &["index.html", "notes.txt"]);
        let not_ours = mk("pid-x", &["index.html"]);
        let raw = mk("raw", &["1-2.ppf"]);
        remove_process_dirs(&base, std::slice::from_ref(&kept));
        assert!(kept.exists(), "written by this rendering");
        assert!(!stale.exists() && !stale_empty.exists());
        assert!(users.exists(), "holds a file peakprof does not write");
        assert!(not_ours.exists() && raw.exists());
        std::fs::write(base.join("oom.svg"), b"x").unwrap();
        remove_oom(&base);
        assert!(
            base.join("oom.svg").exists(),
            "no summary says it is peakprof's"
        );
        std::fs::write(base.join("summary.json"), br#"{"peak_bytes": 1}"#).unwrap();
        remove_oom(&base);
        assert!(base.join("oom.svg").exists(), "the summary has no oom");
        std::fs::write(base.join("summary.json"), br#"{"oom": {"limit_bytes": 1}}"#).unwrap();
        remove_oom(&base);
        assert!(!base.join("oom.svg").exists());
        remove_oom(&base); // none: nothing to do, no error
        std::fs::remove_dir_all(&base).unwrap();
    }
}

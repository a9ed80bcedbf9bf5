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

/// Whether `name` is a report file's, or what a killed rendering left of one: the hidden
/// file it was being written to (`outputs::partial_name`), with the writer's pid.
fn is_report_file_name(name: &str) -> bool {
    REPORT_FILES.contains(&name) || partial_of(name).is_some()
}

/// For a report file's partial name (`.NAME.partial-PID`): the pid that wrote it.
fn partial_of(name: &str) -> Option<u32> {
    let (file, pid) = crate::outputs::partial_parts(name)?;
    REPORT_FILES.contains(&file).then_some(pid)
}

/// Removes from `dir` the partial report files (see `is_report_file_name`) of
/// renderings no longer running: a killed one's leftovers, which would otherwise keep its
/// `pid-N` directory from ever being cleaned up.
pub fn remove_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(partial_of) else {
            continue;
        };
        let running = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !running && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

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
                && e.file_name().to_str().is_some_and(is_report_file_name)
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
    fn partial_report_names() {
        assert_eq!(partial_of(".index.html.partial-42"), Some(42));
        assert_eq!(partial_of(".peak.pb.gz.partial-7"), Some(7));
        for no in [
            "index.html.partial-42",
            ".index.html.partial-",
            ".index.html.partial-+4",
            ".notes.txt.partial-42",
            ".index.html.partial-4x",
        ] {
            assert_eq!(partial_of(no), None, "{no}");
        }
        assert!(is_report_file_name("summary.json"));
        assert!(is_report_file_name(".summary.json.partial-3"));
        assert!(!is_report_file_name(".notes.partial-3"));
    }

    /// A killed rendering's partial file is swept, and no longer keeps its directory from
    /// being cleaned up; a live writer's (this process's) stays.
    #[test]
    fn partials_of_ended_renderings_go() {
        let base = std::env::temp_dir().join(format!("peakprof-partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("pid-9");
        std::fs::create_dir_all(&dir).unwrap();
        // A pid that cannot be running: above the kernel's pid limit (2^22).
        let dead = dir.join(".index.html.partial-4194305");
        let mine = dir.join(format!(".index.html.partial-{}", std::process::id()));
        std::fs::write(&dead, b"x").unwrap();
        std::fs::write(&mine, b"x").unwrap();
        std::fs::write(dir.join("summary.json"), b"{}").unwrap();
        remove_partials(&dir);
        assert!(!dead.exists() && mine.exists());
        assert!(only_report_files(&dir), "a partial is a report file");
        remove_process_dirs(&base, &[]);
        assert!(!dir.exists());
        std::fs::remove_dir_all(&base).unwrap();
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

//! Where reports go and what is written there.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::format::{self, live, Profile, WriteReason};
use crate::render::{self, FlameOptions, ProcessRow};
use crate::report::Report;

/// Name of the subdirectory holding the raw profiles of a run.
pub const RAW_DIR: &str = "raw";
/// File in `raw/` recording how the root process ended, for `peakprof report`.
pub const ROOT_STATUS_FILE: &str = "root.json";
/// File written and removed in `raw/` to prove it is writable before the run.
const WRITE_TEST_FILE: &str = ".write-test";

/// The stem and extension of a process image's file in `raw/`: `<pid>-<start ns>.<ext>`,
/// as the preload names them (see `preload/src/state.rs`).
fn image_file(name: &str) -> Option<(&str, &str)> {
    let (stem, ext) = name.split_once('.')?;
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (pid, start) = stem.split_once('-')?;
    (number(pid) && number(start)).then_some((stem, ext))
}

/// Whether peakprof writes a file of this name in `raw/`: the files of a process image
/// ([`image_file`]), with `.tmp` added while a profile is written; [`ROOT_STATUS_FILE`];
/// [`WRITE_TEST_FILE`]. `-o` may name a directory of the user's: anything else in `raw/`
/// is theirs.
fn written_by_peakprof(name: &str) -> bool {
    if name == ROOT_STATUS_FILE || name == WRITE_TEST_FILE {
        return true;
    }
    let Some((_, ext)) = image_file(name) else {
        return false;
    };
    let ext = ext
        .strip_suffix(format::TEMP_EXTENSION)
        .and_then(|e| e.strip_suffix('.'))
        .unwrap_or(ext);
    [
        format::EXTENSION,
        format::OOM_EXTENSION,
        live::LIVE_EXTENSION,
        live::LOG_EXTENSION,
    ]
    .contains(&ext)
}

/// Creates `./peakprof-<program>-<n>` with the smallest `n` not taken. `create_dir` fails on
/// an existing directory, so two runs started at once still get distinct directories and an
/// earlier run is never overwritten.
pub fn new_run_dir(base: &Path, program: &str) -> Result<PathBuf> {
    for n in 1..100_000 {
        let dir = base.join(format!("peakprof-{program}-{n}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create output directory {}", dir.display()))
            }
        }
    }
    anyhow::bail!("too many earlier runs in {}", base.display())
}

/// Makes `dir/raw` ready for the preload to write into, and proves `dir` is writable now
/// rather than after a long run. Leftover profiles of an earlier run in the same directory
/// are removed so they cannot mix with this one; other files are left alone.
pub fn prepare_run_dir(dir: &Path) -> Result<PathBuf> {
    let fail = |e: std::io::Error| {
        anyhow::anyhow!("cannot write to output directory {}: {e}", dir.display())
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let raw = dir.join(RAW_DIR);
    // Not through a symbolic link: files there named like peakprof's would be removed, in
    // a directory that is not the run's.
    if std::fs::symlink_metadata(&raw).is_ok_and(|m| m.file_type().is_symlink()) {
        anyhow::bail!(
            "cannot write to output directory {}: {} is a symbolic link",
            dir.display(),
            raw.display()
        );
    }
    std::fs::create_dir_all(&raw).map_err(fail)?;
    for entry in std::fs::read_dir(&raw).map_err(fail)?.flatten() {
        let ours = entry.file_name().to_str().is_some_and(written_by_peakprof);
        if ours && entry.file_type().is_ok_and(|t| !t.is_dir()) {
            std::fs::remove_file(entry.path()).map_err(fail)?;
        }
    }
    let probe = raw.join(WRITE_TEST_FILE);
    std::fs::write(&probe, b"").map_err(fail)?;
    let _ = std::fs::remove_file(&probe);
    std::fs::canonicalize(&raw).map_err(fail)
}

/// Reads one raw profile, naming the file in the error.
pub fn read_profile(path: &Path) -> Result<Profile> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read profile {}", path.display()))?;
    format::decode(&bytes).with_context(|| format!("cannot read profile {}", path.display()))
}

/// The final profiles in `raw` (not live files, not ones being written), by path.
pub fn final_profiles(raw: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(raw) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(image_file)
                .is_some_and(|(_, ext)| ext == format::EXTENSION)
        })
        .map(|e| e.path())
        .collect()
}

/// Raw profiles that were read, each with its file.
pub type Profiles = Vec<(PathBuf, Profile)>;

/// The profile of one process image from its files: the final `.ppf` when it wrote one,
/// else what its live files say (it was killed, crashed, or replaced itself with exec). A
/// snapshot `.ppf` is older than the live files of a process that went on running. With
/// the profile, what the live files missed, if it came from them and they did.
fn read_image(dir: &Path, stem: &str) -> Result<(PathBuf, Profile, Option<String>)> {
    let ppf = dir.join(format!("{stem}.{}", format::EXTENSION));
    let live = dir.join(format!("{stem}.{}", live::LIVE_EXTENSION));
    let log = dir.join(format!("{stem}.{}", live::LOG_EXTENSION));
    let snapshot = if ppf.exists() {
        let p = read_profile(&ppf)?;
        if p.meta.reason != WriteReason::Snapshot || !live.exists() {
            return Ok((ppf, p, None));
        }
        Some(p)
    } else {
        None
    };
    if !live.exists() && log.exists() {
        return Err(not_written(dir, &log, stem));
    }
    let recovered = (|| -> Result<(Profile, Option<String>)> {
        let l = std::fs::read(&live).with_context(|| format!("cannot read {}", live.display()))?;
        let g = std::fs::read(&log).with_context(|| format!("cannot read {}", log.display()))?;
        let p = format::live::recover(&l, &g)
            .with_context(|| format!("cannot recover the profile in {}", live.display()))?;
        Ok((p, format::live::recovery_gaps(&l, &g)))
    })();
    match (recovered, snapshot) {
        (Ok((p, gaps)), _) => Ok((live, p, gaps)),
        (Err(_), Some(s)) => Ok((ppf, s, None)),
        (Err(e), None) => Err(e),
    }
}

/// A process image that left only its log: it kept its counters in memory (its live file
/// could not be made) and could not write its final profile either, or was killed.
fn not_written(dir: &Path, log: &Path, stem: &str) -> anyhow::Error {
    let facts = std::fs::read(log)
        .ok()
        .and_then(|g| format::live::log_facts(&g));
    let pid = stem.split('-').next().unwrap_or(stem);
    let running = facts
        .as_ref()
        .is_some_and(crate::still_running::still_running);
    let who = match facts.filter(|m| !m.argv.is_empty()) {
        Some(m) => format!("pid {pid} ({})", render::shell_quote_command(&m.argv)),
        None => format!("pid {pid}"),
    };
    // Its live file was refused (a full disk): a running process keeps its counters in
    // memory, where nothing outside it can read them until it writes its profile.
    if running {
        return anyhow::anyhow!(
            "no profile of {who} yet: it is still running, with its counters in memory only (its live file could not be made){}",
            low_space_note(dir)
        );
    }
    anyhow::anyhow!(
        "no profile of {who}: it ended without writing one, and its counters were not in a live file{}",
        low_space_note(dir)
    )
}

/// Below this much free space in the raw directory, a missing or incomplete profile is
/// put down to it: a live file takes a few hundred KiB, a final profile up to a few MiB.
const LOW_SPACE: u64 = 1 << 20;

/// `"; DIR has only N free"` when the filesystem of `dir` is (nearly) full, else nothing.
pub fn low_space_note(dir: &Path) -> String {
    let Ok(fs) = rustix::fs::statvfs(dir) else {
        return String::new();
    };
    let free = fs.f_bavail.saturating_mul(fs.f_frsize);
    if free < LOW_SPACE || (fs.f_favail == 0 && fs.f_files > 0) {
        let what = if free < LOW_SPACE {
            format!("{} free", render::human_bytes(free))
        } else {
            "no free inodes".to_string()
        };
        format!(" (the filesystem of {} has {what})", dir.display())
    } else {
        String::new()
    }
}

/// Every process image profiled in `raw`, in file-name order, with the problems met: the
/// files that could not be read, images that left no profile, profiles recovered
/// incomplete (which are read all the same). An image that left only live files and whose
/// pid started a later image replaced itself with `exec`; one whose process is still
/// running is `Running`.
pub fn read_profiles(raw: &Path) -> Result<(Profiles, Vec<anyhow::Error>)> {
    let mut stems: Vec<String> = std::fs::read_dir(raw)
        .with_context(|| format!("cannot read {}", raw.display()))?
        .flatten()
        .filter_map(|e| {
            // Only the preload's files: others (a user's, in a directory given with -o)
            // are not profiles of this run. A log alone is an image that left no profile.
            let name = e.file_name().to_str()?.to_owned();
            let (stem, ext) = image_file(&name)?;
            [format::EXTENSION, live::LIVE_EXTENSION, live::LOG_EXTENSION]
                .contains(&ext)
                .then(|| stem.to_string())
        })
        .collect();
    stems.sort();
    stems.dedup();
    let mut ok: Profiles = Vec::new();
    let mut bad = Vec::new();
    for stem in &stems {
        match read_image(raw, stem) {
            Ok((path, p, gaps)) => {
                if let Some(gaps) = gaps {
                    bad.push(anyhow::anyhow!(
                        "the profile of pid {} is incomplete: {gaps}{}",
                        p.meta.pid,
                        low_space_note(raw)
                    ));
                }
                ok.push((path, p));
            }
            Err(e) => bad.push(e),
        }
    }
    if ok.is_empty() && bad.is_empty() {
        let note = low_space_note(raw);
        if !note.is_empty() {
            bad.push(anyhow::anyhow!("no profile was written{note}"));
        }
    }
    let images: Vec<(u32, u64)> = ok
        .iter()
        .map(|(_, p)| (p.meta.pid, p.meta.start_unix_ns))
        .collect();
    for (_, p) in &mut ok {
        let replaced = images
            .iter()
            .any(|&(pid, start)| pid == p.meta.pid && start > p.meta.start_unix_ns);
        if replaced && p.meta.reason == WriteReason::Killed {
            p.meta.reason = WriteReason::Exec;
        }
        // Live files without a final profile: killed, or still running (a report made
        // while the run goes on), whose live counters are then its current state.
        if p.meta.reason == WriteReason::Killed && crate::still_running::still_running(&p.meta) {
            p.meta.reason = WriteReason::Running;
        }
    }
    Ok((ok, bad))
}

/// Index of the root process among `profiles`: the one with `pid` when given (the last
/// image, if it exec'd), else the earliest one whose parent is not among them.
pub fn root_index(profiles: &[(PathBuf, Profile)], pid: Option<u32>) -> Option<usize> {
    let by_start = |i: &usize| profiles[*i].1.meta.start_unix_ns;
    if let Some(pid) = pid {
        if let Some(i) = (0..profiles.len())
            .filter(|&i| profiles[i].1.meta.pid == pid)
            .max_by_key(by_start)
        {
            return Some(i);
        }
    }
    let pids: Vec<u32> = profiles.iter().map(|(_, p)| p.meta.pid).collect();
    (0..profiles.len())
        .filter(|&i| !pids.contains(&profiles[i].1.meta.ppid))
        .min_by_key(by_start)
}

/// How a process ended, in words.
pub fn exit_words(r: &Report) -> String {
    match (r.exit.code, r.exit.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        // A child's own exit status is seen only by its parent, not by peakprof.
        (None, None) => match r.end.as_str() {
            "exit" => "exited".to_string(),
            "fast-exit" => "exited (_exit)".to_string(),
            "exec" => "replaced itself (exec)".to_string(),
            "killed" => "ended without writing its profile (killed)".to_string(),
            "limit-stop" => "stopped at the --limit".to_string(),
            "running" => "still running".to_string(),
            other => format!("ended ({other})"),
        },
    }
}

/// One row per process: largest peak first. `dir` is relative to the root's directory.
pub fn process_rows(reports: &[(Option<PathBuf>, &Report)], root_dir: &Path) -> Vec<ProcessRow> {
    let mut rows: Vec<ProcessRow> = reports
        .iter()
        .map(|(dir, r)| ProcessRow {
            pid: r.pid,
            ppid: r.ppid,
            command: render::shell_quote_command(&r.argv),
            peak_bytes: r.peak_bytes,
            peak_rss_bytes: r.peak_rss_bytes,
            exit: exit_words(r),
            dir: dir.as_ref().map(|dir| {
                dir.strip_prefix(root_dir)
                    .ok()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map_or_else(|| ".".to_string(), |d| d.display().to_string())
            }),
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.peak_bytes));
    rows
}

/// The `processes` array of `summary.json` (`dir` is null for a process whose reports were
/// not rendered).
pub fn process_list(reports: &[(Option<PathBuf>, &Report)]) -> Vec<Value> {
    let mut v: Vec<(u64, Value)> = reports
        .iter()
        .map(|(dir, r)| {
            (
                r.peak_bytes,
                json!({
                    "pid": r.pid,
                    "ppid": r.ppid,
                    "command": render::shell_quote_command(&r.argv),
                    "peak_bytes": r.peak_bytes,
                    "peak_rss_bytes": r.peak_rss_bytes,
                    "exit_code": r.exit.code,
                    "signal": r.exit.signal,
                    "end": r.end,
                    // Lossy: serde refuses a path that is not UTF-8 (a directory's name
                    // need not be).
                    "dir": dir.as_ref().map(|d| d.to_string_lossy()),
                }),
            )
        })
        .collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.0));
    v.into_iter().map(|(_, j)| j).collect()
}

/// What was live when a `--limit` was first exceeded.
pub struct OomReport {
    pub report: Report,
    pub limit_bytes: u64,
    pub action: &'static str,
}

/// Everything written for one process.
pub struct ReportSet<'a> {
    pub report: &'a Report,
    /// The process list of the run (shown on the root's page when there are several).
    pub processes: &'a [ProcessRow],
    /// Extra `summary.json` fields.
    pub extra: Vec<(&'static str, Value)>,
    pub oom: Option<&'a OomReport>,
}

fn oom_json(oom: &OomReport, files: &[(&str, PathBuf)]) -> Value {
    let s = render::summary_json(&oom.report, files);
    json!({
        "limit_bytes": oom.limit_bytes,
        "action": oom.action,
        "time_s": oom.report.peak_time_s,
        "live_bytes": oom.report.peak_bytes,
        "top": s.get("top").cloned().unwrap_or(Value::Null),
        "functions": s.get("functions").cloned().unwrap_or(Value::Null),
    })
}

/// Writes `bytes` to `path` whole or not at all: into a hidden file beside it ([`partial_name`],
/// created new, so nothing planted there is followed), renamed over `path` once complete. A
/// full or failing filesystem then leaves the earlier file (or none), never a truncated
/// report that reads as a real one. `path` becomes a new regular file (a symbolic link
/// there is replaced, not written through). Not synced: an error that only `close` or a
/// later writeback would report (NFS) goes unseen, which a report is not worth an `fsync`
/// per file for.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let partial = path.with_file_name(partial_name(&name, std::process::id()));
    // One left by a killed earlier run of this pid, if any.
    let _ = std::fs::remove_file(&partial);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&partial, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// The hidden name [`write_atomically`] writes `name` under first, in process `pid`.
pub fn partial_name(name: &str, pid: u32) -> String {
    format!(".{name}.partial-{pid}")
}

/// The file name and pid a [`partial_name`] was made of, if `name` is one.
pub fn partial_parts(name: &str) -> Option<(&str, u32)> {
    let (file, pid) = name.strip_prefix('.')?.rsplit_once(".partial-")?;
    let all_digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    Some((file, pid.parse().ok().filter(|_| all_digits)?))
}

/// The rendered reports of one process, not yet written: what takes the time (symbol
/// names aside), so that a child's can be made while the rest of the run goes on (see
/// [`crate::early_render`]). Nothing in them depends on the directory they go to.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    flame: Vec<u8>,
    flame_reversed: Vec<u8>,
    folded: String,
    leaks: Vec<u8>,
    timeline: String,
    pprof: Vec<u8>,
    oom: Option<Vec<u8>>,
    page: String,
}

/// Writes the reports of one process into `dir`; returns the files written, by name:
/// `peak.svg`, `peak-reversed.svg`, `peak.folded`, `leaks.svg`, `timeline.svg`,
/// `peak.pb.gz`, `oom.svg` (with `--limit`), `index.html` and `summary.json`.
pub fn write_reports(dir: &Path, set: &ReportSet<'_>) -> Result<Vec<(&'static str, PathBuf)>> {
    write_rendered(dir, set, &render_reports(set)?)
}

/// Renders the reports of one process (see [`Rendered`]).
pub fn render_reports(set: &ReportSet<'_>) -> Result<Rendered> {
    let report = set.report;
    // The renders are independent: half of them on a second thread (a short run's report
    // time is mostly rendering, and the machine that ran the program has cores to spare).
    let reversed = FlameOptions {
        reversed: true,
        ..FlameOptions::default()
    };
    let first_half = || -> Result<_> {
        Ok((
            render::flamegraph_svg(report, &report.at_peak, &FlameOptions::default())?,
            render::folded(&report.at_peak),
            render::leaks_svg(report, false)?,
        ))
    };
    let (flame, folded, leaks, flame_reversed, timeline, pprof) = std::thread::scope(|s| {
        // No second thread (a process limit, say): the same work, one after the other.
        let other = std::thread::Builder::new().spawn_scoped(s, first_half).ok();
        let title = format!("Tracked heap over time, pid {}", report.pid);
        let here = (
            render::flamegraph_svg(report, &report.at_peak, &reversed),
            render::timeline_svg(report, &title),
            render::pprof_gz(report),
        );
        let (flame, folded, leaks) = match other.map(|t| t.join()) {
            Some(Ok(r)) => r?,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => first_half()?,
        };
        anyhow::Ok((flame, folded, leaks, here.0?, here.1, here.2?))
    })?;
    let oom = match set.oom {
        Some(oom) => {
            let opts = FlameOptions {
                title: Some(format!(
                    "Live heap when the limit of {} was exceeded: {}",
                    render::human_bytes(oom.limit_bytes),
                    render::human_bytes(oom.report.peak_bytes)
                )),
                ..FlameOptions::default()
            };
            Some(render::flamegraph_svg(
                &oom.report,
                &oom.report.at_peak,
                &opts,
            )?)
        }
        None => None,
    };
    let page = render::index_html(
        report,
        set.processes,
        &String::from_utf8_lossy(&flame),
        &String::from_utf8_lossy(&flame_reversed),
        &timeline,
    );
    Ok(Rendered {
        flame,
        flame_reversed,
        folded,
        leaks,
        timeline,
        pprof,
        oom,
        page,
    })
}

/// Writes what [`render_reports`] made of `set` into `dir` (created if missing), with
/// `summary.json` (which names the files written); returns the files, by name.
pub fn write_rendered(
    dir: &Path,
    set: &ReportSet<'_>,
    r: &Rendered,
) -> Result<Vec<(&'static str, PathBuf)>> {
    let report = set.report;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot write to output directory {}", dir.display()))?;
    crate::stale_outputs::remove_partials(dir);
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf> {
        let p = dir.join(name);
        write_atomically(&p, bytes).with_context(|| format!("cannot write {}", p.display()))?;
        Ok(p)
    };
    let mut files = vec![
        ("flamegraph", write("peak.svg", &r.flame)?),
        (
            "flamegraph_reversed",
            write("peak-reversed.svg", &r.flame_reversed)?,
        ),
        ("folded", write("peak.folded", r.folded.as_bytes())?),
        ("leaks", write("leaks.svg", &r.leaks)?),
        ("timeline", write("timeline.svg", r.timeline.as_bytes())?),
        ("pprof", write("peak.pb.gz", &r.pprof)?),
    ];
    if let Some(svg) = &r.oom {
        files.push(("oom", write("oom.svg", svg)?));
    } else {
        // An earlier rendering's, in a directory used again: not this run's.
        crate::stale_outputs::remove_oom(dir);
    }
    files.push(("report", write("index.html", r.page.as_bytes())?));
    let summary_path = dir.join("summary.json");
    files.push(("summary", summary_path));
    let mut summary = render::summary_json(report, &files);
    if let Some(obj) = summary.as_object_mut() {
        obj.insert("end".into(), json!(report.end));
        obj.insert(
            "cgroup_limit_bytes".into(),
            json!(report.cgroup_limit_bytes),
        );
        if let Some(oom) = set.oom {
            obj.insert("oom".into(), oom_json(oom, &files));
        }
        for (k, v) in &set.extra {
            obj.insert((*k).to_string(), v.clone());
        }
    }
    let text = serde_json::to_string_pretty(&summary)?;
    write("summary.json", text.as_bytes())?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that fails (here the rename: the target is a directory) leaves nothing
    /// partial behind; one that succeeds replaces the file, a planted link at the partial
    /// name included (it is removed, not followed).
    #[test]
    fn atomic_writes_leave_nothing_partial() {
        let base = std::env::temp_dir().join(format!("peakprof-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("index.html")).unwrap();
        let names = || {
            let mut n: Vec<String> = std::fs::read_dir(&base)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        assert!(write_atomically(&base.join("index.html"), b"page").is_err());
        assert_eq!(names(), ["index.html"]);
        let target = base.join("elsewhere");
        std::fs::write(&target, b"keep").unwrap();
        let name = partial_name("summary.json", std::process::id());
        assert_eq!(
            partial_parts(&name),
            Some(("summary.json", std::process::id()))
        );
        let partial = base.join(name);
        std::os::unix::fs::symlink(&target, &partial).unwrap();
        write_atomically(&base.join("summary.json"), b"{}").unwrap();
        assert_eq!(std::fs::read(base.join("summary.json")).unwrap(), b"{}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert_eq!(names(), ["elsewhere", "index.html", "summary.json"]);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn only_the_files_peakprof_writes_in_raw_are_its_own() {
        for ours in [
            "1234-1700000000123456789.ppf",
            "1-2.live",
            "1-2.log",
            "1-2.oom",
            "1-2.ppf.tmp",
            "1-2.oom.tmp",
            "root.json",
            ".write-test",
        ] {
            assert!(written_by_peakprof(ours), "{ours}");
        }
        // A user's files in a directory given with -o: same extensions, other names.
        for theirs in [
            "config.json",
            "server.log",
            "data.tmp",
            "notes.ppf",
            "1-2.json",
            "1-2.tmp",
            "1-2.live.bak",
            "1-.ppf",
            "-2.ppf",
            "1-2-3.ppf",
            "a-2.log",
            "1-2",
            "root.json.bak",
        ] {
            assert!(!written_by_peakprof(theirs), "{theirs}");
        }
    }
}

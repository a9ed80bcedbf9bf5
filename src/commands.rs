//! The subcommands: `run`, `report` and `diff`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use crate::analyze::{build_report, facts_report, status_from_profile};
use crate::cli::{DiffArgs, LimitAction, ReportArgs, RunArgs};
use crate::early_render::{self, Early, EarlyRenders};
use crate::exit_codes::{refuse, BUDGET_EXCEEDED, TOOL_FAILED};
use crate::format::{self, Profile, WriteReason};
use crate::launch::{self, Launch};
use crate::outputs::{self, OomReport, ReportSet, RAW_DIR, ROOT_STATUS_FILE};
use crate::render;
use crate::report::{ExitStatus, Report};
use crate::stderr::{say, say_line, say_lines};
use crate::symbolize::{SymbolCache, Symbolizer};
use crate::{cgroup, preload_lib, progress, stale_outputs, target};

/// `peakprof run`: returns the exit code peakprof should end with.
pub fn run(args: &RunArgs) -> Result<u8> {
    let argv = &args.command;
    let start = target::start(target::resolve(&argv[0])?, argv)?;
    let preload = preload_lib::path()?;
    let (dir, created) = match &args.output {
        Some(d) => (d.clone(), !d.exists()),
        None => {
            let cwd = std::env::current_dir().context("cannot find the current directory")?;
            (
                outputs::new_run_dir(&cwd, &launch::program_name(&argv[0]))?,
                true,
            )
        }
    };
    let cleanup = |e: anyhow::Error| {
        // Nothing ran: leave no empty report directory behind.
        if created {
            let _ = std::fs::remove_dir_all(&dir);
        }
        e
    };
    let raw = outputs::prepare_run_dir(&dir).map_err(cleanup)?;
    let action = match args.limit_action {
        LimitAction::Stop => "stop",
        LimitAction::Report => "report",
    };
    let limit = args.limit.map(|l| (l, action));
    // Children's reports made while the run goes on, on a spare core (none with one CPU,
    // and no children without their profiles).
    let spare_core = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    let early = (spare_core && !args.no_children).then(|| {
        let settings = early_render::Settings {
            limit,
            cgroup_limit: cgroup::memory_limit(),
            system_lines: args.system_lines,
            all: args.all_processes,
        };
        EarlyRenders::start(&raw, settings)
    });
    let mut env = vec![("PEAKPROF_SAMPLE_RATE", args.sample_rate.to_string())];
    if let Some((bytes, action)) = limit {
        env.push(("PEAKPROF_LIMIT", bytes.to_string()));
        env.push(("PEAKPROF_LIMIT_ACTION", action.to_string()));
    }
    let finished = launch::run(&Launch {
        program: &start.program,
        argv: &start.argv,
        preload: &preload,
        raw_dir: &raw,
        children: !args.no_children,
        quiet: args.quiet,
        env,
    })
    .map_err(cleanup)?;
    let early = Early::stopping(early);
    let code = launch::exit_code(finished.status);
    let status = json!({
        "pid": finished.pid,
        "exit_code": finished.status.code,
        "signal": finished.status.signal,
        "limit_bytes": args.limit,
        "limit_action": action,
    });
    let _ = std::fs::write(raw.join(ROOT_STATUS_FILE), status.to_string());
    let budget = args.fail_above;
    let root = RootStatus {
        pid: finished.pid,
        status: finished.status,
        limit,
    };
    let files = SymbolCache::with_system_lines(args.system_lines);
    let shown = (args.quiet, args.all_processes);
    let result = outputs::read_profiles(&raw)
        .and_then(|read| render_run(&dir, read, Some(root), shown, (budget, early), &files));
    match result {
        Ok(largest_peak) => {
            if args.open {
                open_in_browser(&dir.join("index.html"));
            }
            match budget {
                Some(b) if largest_peak > b && code == 0 => {
                    let (peak, budget) = distinct_sizes(largest_peak, b);
                    say_line(&format!(
                        "peakprof: peak {peak} exceeds the budget of {budget} (--fail-above): exit code {BUDGET_EXCEEDED}"
                    ));
                    Ok(BUDGET_EXCEEDED)
                }
                _ => Ok(code),
            }
        }
        Err(e) => {
            say_line(&format!("peakprof: error: {e:#}"));
            Ok(if code == 0 { TOOL_FAILED } else { code })
        }
    }
}

/// `peakprof report`.
pub fn report(args: &ReportArgs) -> Result<u8> {
    let input = &args.input;
    if input.is_dir() {
        let raw = input.join(RAW_DIR);
        if !raw.is_dir() {
            return Err(refuse(
                TOOL_FAILED,
                format!(
                    "{} is not a peakprof run directory (no {RAW_DIR}/ inside)",
                    input.display()
                ),
            ));
        }
        let read = outputs::read_profiles(&raw)?;
        let root = read_root_status(&raw);
        let out = args.output.clone().unwrap_or_else(|| input.clone());
        // Until the run has written its own report (and root.json), that report still has
        // to come into its directory: a report of the run still going must not race it or
        // leave its state behind there (`-o` naming that directory too). Processes still
        // running after it (left behind when a Ctrl-C ended its wait) do not count.
        let running = read
            .0
            .iter()
            .find(|(_, p)| p.meta.reason == WriteReason::Running);
        if let Some((_, p)) = running.filter(|_| root.is_none() && same_dir(&out, input)) {
            return Err(refuse(
                TOOL_FAILED,
                format!(
                    "the run in {} is still going (pid {} is running): pass -o DIR to write this report elsewhere",
                    input.display(),
                    p.meta.pid
                ),
            ));
        }
        let files = SymbolCache::with_system_lines(args.system_lines);
        let shown = (args.quiet, args.all_processes);
        render_run(&out, read, root, shown, (None, Early::none()), &files)?;
        return Ok(0);
    }
    let profile = outputs::read_profile(input)?;
    let out = match &args.output {
        Some(o) => o.clone(),
        None => {
            let parent = input.parent().unwrap_or(Path::new("."));
            if parent.file_name().is_some_and(|n| n == RAW_DIR) {
                parent.parent().unwrap_or(Path::new(".")).to_path_buf()
            } else {
                parent.to_path_buf()
            }
        }
    };
    let status = status_from_profile(&profile);
    let files = SymbolCache::with_system_lines(args.system_lines);
    let report = build_report(
        &profile,
        status,
        Symbolizer::with_cache(&profile.modules, &files),
    );
    let set = ReportSet {
        report: &report,
        processes: &[],
        extra: Vec::new(),
        oom: None,
    };
    let files = outputs::write_reports(&out, &set)?;
    if !args.quiet {
        say(&render::terminal_summary(&report, &files));
    }
    Ok(0)
}

/// The root process's report of a run directory or a raw profile.
fn load_report(input: &Path) -> Result<Report> {
    let (profile, status) = if input.is_dir() {
        let raw = input.join(RAW_DIR);
        let (profiles, mut bad) = outputs::read_profiles(&raw)
            .with_context(|| format!("{} is not a peakprof run directory", input.display()))?;
        let root = read_root_status(&raw);
        let Some(i) = outputs::root_index(&profiles, root.as_ref().map(|r| r.pid)) else {
            return Err(if bad.is_empty() {
                anyhow::anyhow!("{} holds no profile", input.display())
            } else {
                bad.swap_remove(0)
            });
        };
        let p = profiles
            .into_iter()
            .nth(i)
            .map(|(_, p)| p)
            .expect("index in range");
        let status = root
            .map(|r| r.status)
            .unwrap_or_else(|| status_from_profile(&p));
        (p, status)
    } else {
        let p = outputs::read_profile(input)?;
        let status = status_from_profile(&p);
        (p, status)
    };
    Ok(build_report(
        &profile,
        status,
        Symbolizer::new(&profile.modules),
    ))
}

/// `peakprof diff OLD NEW`.
pub fn diff(args: &DiffArgs) -> Result<u8> {
    let old = load_report(&args.old)?;
    let new = load_report(&args.new)?;
    let dir = match &args.output {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("cannot write to output directory {}", d.display()))?;
            d.clone()
        }
        None => {
            let cwd = std::env::current_dir().context("cannot find the current directory")?;
            outputs::new_run_dir(&cwd, "diff")?
        }
    };
    let svg = dir.join("diff.svg");
    let write = |path: &Path, bytes: &[u8]| {
        outputs::write_atomically(path, bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    };
    write(&svg, &render::diff_svg(&old, &new)?)?;
    let folded = dir.join("diff.folded");
    write(
        &folded,
        render::diff_folded(&old.at_peak, &new.at_peak).as_bytes(),
    )?;
    let json_path = dir.join("diff.json");
    let mut j = render::diff_json(&old, &new);
    if let Some(o) = j.as_object_mut() {
        o.insert(
            "files".into(),
            json!({"flamegraph": svg.to_string_lossy(), "folded": folded.to_string_lossy()}),
        );
    }
    write(&json_path, serde_json::to_string_pretty(&j)?.as_bytes())?;
    if !args.quiet {
        say(&render::diff_summary(&old, &new, 10));
        say_lines(&format!(
            "Wrote:\n  {}\n  {}\n  {}",
            svg.display(),
            folded.display(),
            json_path.display()
        ));
    }
    Ok(0)
}

/// How the root process of a run ended, and the run's `--limit`.
struct RootStatus {
    pid: u32,
    status: ExitStatus,
    limit: Option<(u64, &'static str)>,
}

fn read_root_status(raw: &Path) -> Option<RootStatus> {
    let text = std::fs::read_to_string(raw.join(ROOT_STATUS_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let int = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_i64())
            .and_then(|x| i32::try_from(x).ok())
    };
    let action = match v.get("limit_action").and_then(|a| a.as_str()) {
        Some("report") => "report",
        _ => "stop",
    };
    Some(RootStatus {
        pid: u32::try_from(v.get("pid")?.as_u64()?).ok()?,
        status: ExitStatus {
            code: int("exit_code"),
            signal: int("signal"),
        },
        limit: v
            .get("limit_bytes")
            .and_then(|l| l.as_u64())
            .map(|l| (l, action)),
    })
}

/// Whether `a` and `b` name the same directory (`b` exists; `a` may not yet).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `a` and `b` written for a person, in bytes where the short forms would read the same
/// ("peak 192 KiB exceeds the budget of 192 KiB").
fn distinct_sizes(a: u64, b: u64) -> (String, String) {
    let (ha, hb) = (render::human_bytes(a), render::human_bytes(b));
    if ha == hb && a != b {
        (format!("{a} bytes"), format!("{b} bytes"))
    } else {
        (ha, hb)
    }
}

/// Directory for a non-root process's reports.
fn child_dir(dir: &Path, p: &Profile, taken: &mut Vec<PathBuf>) -> PathBuf {
    let mut d = dir.join(format!("pid-{}", p.meta.pid));
    let mut n = 2;
    while taken.contains(&d) {
        d = dir.join(format!("pid-{}-{n}", p.meta.pid));
        n += 1;
    }
    taken.push(d.clone());
    d
}

/// The reports of a process that is rendered (its call paths symbolized), and its state at
/// the `--limit` if it reached it.
pub(crate) fn process_report(
    path: &Path,
    p: &Profile,
    status: ExitStatus,
    (limit, cgroup_limit): (Option<(u64, &'static str)>, Option<u64>),
    files: &SymbolCache,
) -> (Report, Option<OomReport>) {
    let mut report = build_report(p, status, Symbolizer::with_cache(&p.modules, files));
    report.cgroup_limit_bytes = cgroup_limit;
    (report, oom_report(path, limit))
}

/// The `--limit` report a process left beside its profile, if any.
fn oom_report(profile_path: &Path, limit: Option<(u64, &'static str)>) -> Option<OomReport> {
    let (limit_bytes, action) = limit?;
    let stem = profile_path.file_stem()?;
    let path = profile_path.with_file_name(format!(
        "{}.{}",
        stem.to_string_lossy(),
        format::OOM_EXTENSION
    ));
    let profile = format::decode(&std::fs::read(&path).ok()?).ok()?;
    let report = build_report(
        &profile,
        ExitStatus::default(),
        Symbolizer::new(&profile.modules),
    );
    Some(OomReport {
        report,
        limit_bytes,
        action,
    })
}

/// Processes whose reports a run renders by default: the root and the largest peaks of the
/// others. Every process is still listed (summary.json, the page's table) and keeps its
/// raw profile; a tree of a thousand forked workers would otherwise write a thousand
/// report sets (~130 KiB each).
pub const RENDERED_PROCESSES: usize = 32;

/// Symbolizes and renders the profiles of a run (as [`outputs::read_profiles`] read them,
/// with the files that could not be read): the root process at the top of `dir` and the
/// others under `dir/pid-N/` (only the [`RENDERED_PROCESSES`] largest unless `all`).
/// Returns the largest peak of any process.
fn render_run(
    dir: &Path,
    (profiles, mut bad): (outputs::Profiles, Vec<anyhow::Error>),
    root: Option<RootStatus>,
    (quiet, all): (bool, bool),
    (budget, mut early): (Option<u64>, Early),
    files: &SymbolCache,
) -> Result<u64> {
    let Some(root_idx) = outputs::root_index(&profiles, root.as_ref().map(|r| r.pid)) else {
        if !bad.is_empty() {
            return Err(bad.swap_remove(0));
        }
        return Err(refuse(
            TOOL_FAILED,
            "the program left no profile: it ended before the profiler started, or it does not use the dynamic loader",
        ));
    };
    for e in &bad {
        say_line(&format!("peakprof: warning: {e:#}"));
    }
    let limit = cgroup::memory_limit();
    let peaks: Vec<u64> = profiles.iter().map(|(_, p)| p.meta.peak_bytes).collect();
    let rendered = rendered_processes(&peaks, root_idx, all);
    let spinner = progress::Spinner::start(quiet, rendered.iter().filter(|&&r| r).count());
    let mut taken = Vec::new();
    let mut reports: Vec<(PathBuf, Report, Option<OomReport>)> = Vec::with_capacity(profiles.len());
    // Reports made while the run went on (children only: the root's has the run's status
    // and the process list), by process.
    let mut made: Vec<Option<outputs::Rendered>> = Vec::with_capacity(profiles.len());
    for (i, (path, p)) in profiles.iter().enumerate() {
        let (out, status) = if i == root_idx {
            let status = root
                .as_ref()
                .map_or_else(|| status_from_profile(p), |r| r.status);
            (dir.to_path_buf(), status)
        } else {
            (child_dir(dir, p, &mut taken), status_from_profile(p))
        };
        // Only a rendered process's call paths (and state at the --limit) are ever
        // shown: the others are listed from their facts, without symbolizing (a big
        // tree's many small workers).
        let pre = (rendered[i] && i != root_idx)
            .then(|| early.take(path, p, limit))
            .flatten();
        let (report, oom) = if let Some(e) = pre {
            made.push(Some(e.outputs));
            spinner.tick();
            (e.report, e.oom)
        } else if rendered[i] {
            made.push(None);
            let limits = (root.as_ref().and_then(|r| r.limit), limit);
            let built = process_report(path, p, status, limits, files);
            spinner.tick();
            built
        } else {
            made.push(None);
            let mut facts = facts_report(p, status);
            facts.cgroup_limit_bytes = limit;
            (facts, None)
        };
        reports.push((out, report, oom));
    }
    // What was made early and not taken (processes not rendered after all).
    drop(early);
    let listed: Vec<(Option<PathBuf>, &Report)> = reports
        .iter()
        .enumerate()
        .map(|(i, (d, r, _))| (rendered[i].then(|| d.clone()), r))
        .collect();
    let processes = outputs::process_list(&listed);
    let all_rows = outputs::process_rows(&listed, dir);
    let largest_peak = reports
        .iter()
        .map(|(_, r, _)| r.peak_bytes)
        .max()
        .unwrap_or(0);
    let written: Vec<PathBuf> = reports
        .iter()
        .zip(&rendered)
        .filter(|(_, &r)| r)
        .map(|((d, _, _), _)| d.clone())
        .collect();
    stale_outputs::remove_process_dirs(dir, &written);
    let mut root_files = Vec::new();
    for (i, (out, report, oom)) in reports.iter().enumerate() {
        if !rendered[i] {
            continue;
        }
        let is_root = i == root_idx;
        let mut extra = Vec::new();
        let rows: &[render::ProcessRow] = if is_root { &all_rows } else { &[] };
        if is_root {
            extra.push(("processes", serde_json::Value::Array(processes.clone())));
            if let Some(b) = budget {
                extra.push((
                    "budget",
                    json!({"fail_above_bytes": b, "largest_peak_bytes": largest_peak, "exceeded": largest_peak > b}),
                ));
            }
        }
        let set = ReportSet {
            report,
            processes: rows,
            extra,
            oom: oom.as_ref(),
        };
        let files = match made[i].take() {
            Some(r) => outputs::write_rendered(out, &set, &r)?,
            None => outputs::write_reports(out, &set)?,
        };
        if is_root {
            root_files = files;
        }
        spinner.tick();
    }
    drop(spinner);
    if !quiet {
        let root_report = &reports[root_idx].1;
        say(&render::terminal_summary(root_report, &root_files));
        // The first process to reach the limit (of those rendered): named, with the path
        // of its oom.svg, as it may be a child's.
        let reached = reports
            .iter()
            .zip(&profiles)
            .filter_map(|((d, r, o), (_, p))| {
                let o = o.as_ref()?;
                let at_s = p.meta.start_unix_ns as f64 / 1e9 + o.report.peak_time_s;
                Some((at_s, (d, r.pid, o)))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, first)| first);
        if let Some((oom_dir, pid, oom)) = reached {
            say_line(&format!(
                "Limit: pid {pid}'s tracked heap first exceeded {} after {} ({} live); see {}",
                render::human_bytes(oom.limit_bytes),
                render::human_duration(oom.report.peak_time_s),
                render::human_bytes(oom.report.peak_bytes),
                oom_dir.join("oom.svg").display(),
            ));
        }
        if let Some(l) = limit {
            say_line(&format!(
                "cgroup memory.max: {} (peak heap is {:.0}% of it)",
                render::human_bytes(l),
                100.0 * reports[root_idx].1.peak_bytes as f64 / l as f64
            ));
        }
        if reports.len() > 1 {
            say_lines(&process_table(&listed));
        }
    }
    Ok(largest_peak)
}

/// Which processes to render, given each one's peak: all, or the root and the largest
/// other peaks.
fn rendered_processes(peaks: &[u64], root_idx: usize, all: bool) -> Vec<bool> {
    let mut order: Vec<usize> = (0..peaks.len()).filter(|&i| i != root_idx).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(peaks[i]));
    let mut rendered = vec![all; peaks.len()];
    rendered[root_idx] = true;
    for &i in order.iter().take(RENDERED_PROCESSES - 1) {
        rendered[i] = true;
    }
    rendered
}

/// Lines of the terminal's process table (largest peaks first); the rest are counted.
const TERMINAL_PROCESS_ROWS: usize = 20;

fn process_table(reports: &[(Option<PathBuf>, &Report)]) -> String {
    let mut rows: Vec<&(Option<PathBuf>, &Report)> = reports.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.peak_bytes));
    let mut s = format!("{} processes (largest peak first):\n", rows.len());
    let more = rows.len().saturating_sub(TERMINAL_PROCESS_ROWS);
    for (dir, r) in rows.into_iter().take(TERMINAL_PROCESS_ROWS) {
        let dir = dir
            .as_ref()
            .map_or_else(|| "not rendered".to_string(), |d| d.display().to_string());
        let cmd = render::text::truncate_chars(
            &render::text::sanitize_line(&render::shell_quote_command(&r.argv)),
            60,
        );
        let running = if r.still_running() {
            "  (still running)"
        } else {
            ""
        };
        s.push_str(&format!(
            "  pid {:>7}  ppid {:>7}  peak {:>10}  {}  [{}]{running}\n",
            r.pid,
            r.ppid,
            render::human_bytes(r.peak_bytes),
            cmd,
            dir
        ));
    }
    if more > 0 {
        s.push_str(&format!(
            "  … {more} more with smaller peaks (all in summary.json)\n"
        ));
    }
    let unrendered = reports.iter().filter(|(d, _)| d.is_none()).count();
    if unrendered > 0 {
        s.push_str(&format!(
            "Reports were rendered for the {} largest peaks; --all-processes renders all {}.\n",
            reports.len() - unrendered,
            reports.len()
        ));
    }
    s
}

/// Opens `page` with the desktop's opener when a display is there; says so otherwise.
fn open_in_browser(page: &Path) {
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    if !display {
        say_line(&format!(
            "peakprof: no display to open {} on",
            page.display()
        ));
        return;
    }
    let opened = std::process::Command::new("xdg-open")
        .arg(page)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok();
    if !opened {
        say_line(&format!(
            "peakprof: could not run xdg-open for {}",
            page.display()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::early_render::tests::child;
    use crate::early_render::{render_child, Prerendered};

    /// The run's report writes a child's early reports when they were made of the profile
    /// it read (marked here by a command line of their own), and makes its own otherwise;
    /// never the root's.
    #[test]
    fn a_run_writes_the_early_reports_made_of_the_profile_it_read() {
        let dir = std::env::temp_dir().join(format!("peakprof-take-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut root = child(10, 500, WriteReason::Exit);
        root.meta.ppid = 1;
        let mut kid = child(11, 700, WriteReason::Exit);
        kid.meta.ppid = 10;
        let mut other = child(12, 900, WriteReason::Exit);
        other.meta.ppid = 10;
        let path = |p: &Profile| dir.join(format!("raw/{}-17.ppf", p.meta.pid));
        let files = SymbolCache::new();
        let limit = cgroup::memory_limit();
        let marked = |p: &Profile, made_of: &Profile| {
            let status = status_from_profile(p);
            let (mut report, oom) = process_report(&path(p), p, status, (None, limit), &files);
            report.argv = vec![format!("EARLY-{}", p.meta.pid)];
            let outputs = render_child(&report, oom.as_ref()).unwrap();
            (
                path(p),
                Prerendered {
                    profile: made_of.clone(),
                    report,
                    oom,
                    outputs,
                },
            )
        };
        let mut changed = other.clone();
        changed.meta.total_allocs += 1;
        let made = [
            marked(&kid, &kid),
            marked(&other, &changed),
            marked(&root, &root),
        ];
        let profiles: outputs::Profiles = [&root, &kid, &other]
            .iter()
            .map(|p| (path(p), (*p).clone()))
            .collect();
        let status = RootStatus {
            pid: 10,
            status: ExitStatus::default(),
            limit: None,
        };
        let early = Early::made(made.into_iter().collect());
        render_run(
            &dir,
            (profiles, Vec::new()),
            Some(status),
            (true, false),
            (None, early),
            &files,
        )
        .unwrap();
        let command = |sub: &str| {
            read_json(&dir.join(sub).join("summary.json"))["command"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(command("pid-11"), "EARLY-11");
        assert!(std::fs::read_to_string(dir.join("pid-11/index.html"))
            .unwrap()
            .contains("EARLY-11"));
        assert_eq!(
            command("pid-12"),
            "./child '<12>'",
            "made of another profile"
        );
        assert_eq!(command(""), "./child '<10>'", "the root's own");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn read_json(path: &Path) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn sizes_that_read_the_same_are_written_in_bytes() {
        assert_eq!(
            distinct_sizes(196_400, 196_399),
            ("196400 bytes".to_string(), "196399 bytes".to_string())
        );
        let (a, b) = distinct_sizes(3 << 20, 1 << 20);
        assert_ne!(a, b);
        assert!(!a.contains("bytes") && a.contains("MiB"), "{a}");
        assert_eq!(distinct_sizes(5, 5).0, distinct_sizes(5, 5).1);
    }
}

//! The subcommands: `run` and `report`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use crate::analyze::{build_report, status_from_profile};
use crate::cli::{ReportArgs, RunArgs};
use crate::exit_codes::{refuse, TOOL_FAILED};
use crate::format::Profile;
use crate::launch::{self, Launch};
use crate::outputs::{self, RAW_DIR};
use crate::render;
use crate::report::{ExitStatus, Report};
use crate::symbolize::Symbolizer;
use crate::{preload_lib, target};

/// File in `raw/` recording how the root process ended, for `peakprof report`.
const ROOT_STATUS_FILE: &str = "root.json";

/// `peakprof run`: returns the exit code peakprof should end with.
pub fn run(args: &RunArgs) -> Result<u8> {
    let argv = &args.command;
    let program = target::resolve(&argv[0])?;
    target::check_preloadable(&program)?;
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
    let raw = match outputs::prepare_run_dir(&dir) {
        Ok(raw) => raw,
        Err(e) => {
            if created {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(e);
        }
    };
    let launched = launch::run(&Launch {
        program: &program,
        argv,
        preload: &preload,
        raw_dir: &raw,
        children: !args.no_children,
    });
    let finished = match launched {
        Ok(f) => f,
        Err(e) => {
            // Nothing ran: leave no empty report directory behind.
            if created {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(e);
        }
    };
    let code = launch::exit_code(finished.status);
    let status = json!({
        "pid": finished.pid,
        "exit_code": finished.status.code,
        "signal": finished.status.signal,
    });
    let _ = std::fs::write(raw.join(ROOT_STATUS_FILE), status.to_string());
    match render_run(
        &dir,
        &raw,
        Some((finished.pid, finished.status)),
        args.quiet,
    ) {
        Ok(()) => Ok(code),
        Err(e) => {
            eprintln!("peakprof: error: {e:#}");
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
        let out = args.output.clone().unwrap_or_else(|| input.clone());
        let root = read_root_status(&raw);
        render_run(&out, &raw, root, args.quiet)?;
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
    let report = build_report(&profile, status, Symbolizer::new(&profile.modules));
    let files = outputs::write_reports(&out, &report, &[])?;
    if !args.quiet {
        eprint!("{}", render::terminal_summary(&report, &files));
    }
    Ok(0)
}

fn read_root_status(raw: &Path) -> Option<(u32, ExitStatus)> {
    let text = std::fs::read_to_string(raw.join(ROOT_STATUS_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let int = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_i64())
            .and_then(|x| i32::try_from(x).ok())
    };
    Some((
        u32::try_from(v.get("pid")?.as_u64()?).ok()?,
        ExitStatus {
            code: int("exit_code"),
            signal: int("signal"),
        },
    ))
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

/// Symbolizes and renders every profile of a run: the root process at the top of `dir`,
/// the others under `dir/pid-N/`.
fn render_run(dir: &Path, raw: &Path, root: Option<(u32, ExitStatus)>, quiet: bool) -> Result<()> {
    let (profiles, mut bad) = outputs::read_profiles(raw)?;
    let Some(root_idx) = outputs::root_index(&profiles, root.map(|r| r.0)) else {
        if !bad.is_empty() {
            return Err(bad.swap_remove(0));
        }
        return Err(refuse(
            TOOL_FAILED,
            "the program left no profile: it ended before the profiler started, or it does not use the dynamic loader",
        ));
    };
    for e in &bad {
        eprintln!("peakprof: warning: {e:#}");
    }
    let mut taken = Vec::new();
    let mut reports: Vec<(PathBuf, Report)> = Vec::with_capacity(profiles.len());
    for (i, (_, p)) in profiles.iter().enumerate() {
        let (out, status) = if i == root_idx {
            let status = root.map(|r| r.1).unwrap_or_else(|| status_from_profile(p));
            (dir.to_path_buf(), status)
        } else {
            (child_dir(dir, p, &mut taken), status_from_profile(p))
        };
        reports.push((out, build_report(p, status, Symbolizer::new(&p.modules))));
    }
    let listed: Vec<(PathBuf, &Report)> = reports.iter().map(|(d, r)| (d.clone(), r)).collect();
    let processes = outputs::process_list(&listed);
    let mut root_files = Vec::new();
    for (i, (out, report)) in reports.iter().enumerate() {
        let extra = if i == root_idx {
            vec![("processes", serde_json::Value::Array(processes.clone()))]
        } else {
            Vec::new()
        };
        let files = outputs::write_reports(out, report, &extra)?;
        if i == root_idx {
            root_files = files;
        }
    }
    if !quiet {
        let root_report = &reports[root_idx].1;
        eprint!("{}", render::terminal_summary(root_report, &root_files));
        if reports.len() > 1 {
            eprintln!("{}", process_table(&listed));
        }
    }
    Ok(())
}

fn process_table(reports: &[(PathBuf, &Report)]) -> String {
    let mut rows: Vec<&(PathBuf, &Report)> = reports.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.peak_bytes));
    let mut s = format!("{} processes (largest peak first):\n", rows.len());
    for (dir, r) in rows {
        let cmd = render::text::truncate_chars(
            &render::text::sanitize_line(&render::shell_quote_command(&r.argv)),
            60,
        );
        s.push_str(&format!(
            "  pid {:>7}  ppid {:>7}  peak {:>10}  {}  [{}]\n",
            r.pid,
            r.ppid,
            render::human_bytes(r.peak_bytes),
            cmd,
            dir.display()
        ));
    }
    s
}

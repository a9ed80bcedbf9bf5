//! Helpers of the robustness tests (e2e_robust, e2e_real_programs, e2e_refusals), on top of
//! `common/mod.rs`: running commands with a deadline, spawning `peakprof run` to act on the
//! program while it runs, reading the per-process list of summary.json, and skipping
//! visibly when a tool is missing.
//!
//! Included by each test file with `#[path = "common/robust.rs"] mod robust;` after
//! `mod common;`.
#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    drain_pipes, json_opt_i64, json_str, json_u64, kill_group, remove_stale, tmp_root, unique_dir,
    wait_until, Finished, Value, PEAKPROF,
};

/// Prints the line that makes a skipped test visible in `cargo test` output (run with
/// `--nocapture` to see it; it is in the captured output of the test otherwise).
pub fn skip(why: &str) {
    eprintln!("SKIPPED: {why}");
}

/// A fresh, empty directory under `CARGO_TARGET_TMPDIR/robust/`, unique to this process and
/// call. Kept after the test for inspection (the whole tree is disposable).
pub fn fresh_dir(name: &str) -> PathBuf {
    let root = tmp_root().join("robust");
    remove_stale(&root);
    unique_dir(&root, name)
}

/// The full path of `program` found on `PATH`, if any.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt as _;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
}

/// Starts `cmd` in a process group of its own (so [`wait_deadline`] can kill all it
/// started), with stdin closed and both outputs piped.
pub fn spawn(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// Waits for a child started by [`spawn`], draining its pipes; kills its process group (the
/// child and whatever it started: a shell's background job, peakprof's program) and returns
/// `Err` when it outlives `timeout`.
pub fn wait_deadline(mut child: Child, timeout: Duration) -> Result<Finished, String> {
    let started = Instant::now();
    let (out_reader, err_reader) = drain_pipes(&mut child);
    let Some(status) = wait_until(&mut child, started, timeout, Duration::from_millis(10)) else {
        kill_group(&mut child);
        // The pipes may be held open by grandchildren: do not wait for the readers.
        return Err(format!("did not finish within {timeout:?} (killed)"));
    };
    Ok(Finished {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
        elapsed: started.elapsed(),
    })
}

/// Runs `cmd` to completion with a deadline; a hang fails the test.
pub fn run_deadline(cmd: &mut Command, timeout: Duration) -> Finished {
    let shown = format!("{cmd:?}");
    wait_deadline(spawn(cmd), timeout).unwrap_or_else(|e| panic!("{shown}: {e}"))
}

/// `peakprof run [options] -o out_dir -- argv...` as a Command (not started), working in `cwd`.
/// Every capture the memo shortens is checked against a full walk (PEAKPROF_CHECK_UNWIND):
/// a difference aborts the program, which these tests would report.
pub fn peakprof_command(out_dir: &Path, options: &[&str], argv: &[&str], cwd: &Path) -> Command {
    let mut cmd = Command::new(PEAKPROF);
    cmd.env("PEAKPROF_CHECK_UNWIND", "1")
        .arg("run")
        .arg("-o")
        .arg(out_dir)
        .args(options)
        .arg("--")
        .args(argv)
        .current_dir(cwd);
    cmd
}

/// Reads and parses a JSON file, panicking with its path.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// One entry of summary.json's `processes`.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u64,
    pub ppid: u64,
    pub command: String,
    pub peak_bytes: u64,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    /// As written (relative to peakprof's working directory, or absolute); `None` for a
    /// process whose reports were not rendered (only the largest peaks of a big tree are).
    pub dir: Option<String>,
}

impl Process {
    /// The basename of the program: the first word of `command`.
    pub fn program(&self) -> String {
        let first = self.command.split_whitespace().next().unwrap_or("");
        let first = first.trim_matches('\'');
        Path::new(first)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The directory of this process's reports, resolved against `cwd` (peakprof's working
    /// directory) when relative.
    pub fn dir_in(&self, cwd: &Path) -> PathBuf {
        let d = Path::new(
            self.dir
                .as_deref()
                .unwrap_or_else(|| panic!("pid {}: reports not rendered", self.pid)),
        );
        if d.is_absolute() {
            d.to_path_buf()
        } else {
            cwd.join(d)
        }
    }
}

/// The parent of process `pid` (read as peakprof reads it); 0 when it cannot be read.
pub fn parent_of(pid: u32) -> u32 {
    peakprof::proc_stat::of(pid).map_or(0, |s| s.ppid)
}

/// Whether this test process ignores signal number `signal` (`SigIgn` in
/// /proc/self/status, read as peakprof reads it): inherited when the test run is a
/// background job.
pub fn inherited_ignored(signal: i32) -> bool {
    peakprof::launch::ignored_signals() & (1 << (signal - 1)) != 0
}

/// summary.json's `processes`.
pub fn processes(summary: &Value) -> Vec<Process> {
    let list = summary
        .get("processes")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("summary.json: `processes` is not an array: {summary}"));
    list.iter()
        .map(|p| Process {
            pid: json_u64(p, "pid"),
            ppid: json_u64(p, "ppid"),
            command: json_str(p, "command").to_string(),
            peak_bytes: json_u64(p, "peak_bytes"),
            exit_code: json_opt_i64(p, "exit_code"),
            signal: json_opt_i64(p, "signal"),
            dir: p["dir"].as_str().map(str::to_string),
        })
        .collect()
}

/// The process of `procs` that is not the run's root (`summary`'s pid): a run's one child.
pub fn child_of_root<'a>(summary: &Value, procs: &'a [Process]) -> &'a Process {
    let root_pid = json_u64(summary, "pid");
    procs
        .iter()
        .find(|p| p.pid != root_pid)
        .unwrap_or_else(|| panic!("no child listed\n{}", show_processes(procs)))
}

/// Whether `p` is the copy of its parent made by fork (same command as the listed process
/// whose pid is its ppid), as opposed to a program image started by exec.
pub fn is_fork_copy(p: &Process, all: &[Process]) -> bool {
    all.iter()
        .any(|q| q.pid == p.ppid && q.command == p.command && q.pid != p.pid)
}

/// Every listed process has its own directory holding a summary.json that describes that
/// process (same pid and peak); no two processes share a directory.
pub fn check_process_dirs(procs: &[Process], cwd: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    for p in procs {
        let dir = p.dir_in(cwd);
        if let Some(other) = seen.insert(dir.clone(), p.pid) {
            problems.push(format!(
                "pid {} and pid {other} share the directory {}",
                p.pid,
                dir.display()
            ));
        }
        let file = dir.join("summary.json");
        let Ok(text) = std::fs::read_to_string(&file) else {
            problems.push(format!(
                "pid {} ({}): no {}",
                p.pid,
                p.command,
                file.display()
            ));
            continue;
        };
        let Ok(s) = serde_json::from_str::<Value>(&text) else {
            problems.push(format!("{} is not JSON", file.display()));
            continue;
        };
        let pid = s.get("pid").and_then(Value::as_u64);
        let peak = s.get("peak_bytes").and_then(Value::as_u64);
        if pid != Some(p.pid) || peak != Some(p.peak_bytes) {
            problems.push(format!(
                "{} says pid {pid:?} peak {peak:?}, the process list says pid {} peak {}",
                file.display(),
                p.pid,
                p.peak_bytes
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The process list as text, for failure messages.
pub fn show_processes(procs: &[Process]) -> String {
    procs
        .iter()
        .map(|p| {
            format!(
                "  pid {:>7} ppid {:>7} peak {:>10} exit {:?} signal {:?} [{}] {}\n",
                p.pid,
                p.ppid,
                p.peak_bytes,
                p.exit_code,
                p.signal,
                p.dir.as_deref().unwrap_or("not rendered"),
                p.command.chars().take(100).collect::<String>()
            )
        })
        .collect()
}

/// The stderr of a refusal: exactly one line, starting `peakprof: error:`.
pub fn assert_one_error_line(stderr: &str, context: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("peakprof: error:"),
        "{context}: stderr should be exactly one line starting `peakprof: error:`, got {} line(s):\n{stderr}",
        lines.len()
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{context}: peakprof panicked:\n{stderr}"
    );
    lines[0].to_string()
}

/// Waits until `path` exists (polling), or panics after `timeout` with `context`.
pub fn wait_for_path(path: &Path, timeout: Duration, context: impl Fn() -> String) {
    let started = Instant::now();
    while !path.exists() {
        if started.elapsed() > timeout {
            panic!(
                "{} did not appear within {timeout:?}\n{}",
                path.display(),
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Writes `contents` to `path` with mode 755.
pub fn write_executable(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
    use std::os::unix::fs::PermissionsExt as _;
    let path = path.as_ref();
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Files in `dir` whose name ends with `suffix`, sorted.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Sends `sig` to `pid`: the tests only ever signal processes they started themselves, by
/// their pid.
pub fn send_signal(pid: u32, sig: rustix::process::Signal) {
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .unwrap_or_else(|| panic!("bad pid {pid}"));
    rustix::process::kill_process(target, sig)
        .unwrap_or_else(|e| panic!("kill({pid}, {sig:?}): {e}"));
}

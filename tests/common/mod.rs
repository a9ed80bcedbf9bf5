//! Helpers shared by the end-to-end tests: build the example programs of `examples/`, run them
//! under `peakprof run`, and read what peakprof wrote.
//!
//! The C and C++ examples are compiled with the system gcc/g++ into `CARGO_TARGET_TMPDIR`;
//! the Rust example is the one cargo builds into `target/<profile>/examples/`.
#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeSet;
use std::io::Read;
use std::ops::Deref;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use serde_json::Value;

/// The peakprof binary under test.
pub const PEAKPROF: &str = env!("CARGO_BIN_EXE_peakprof");

/// How long one profiled run may take before the test gives up (and kills it): generous,
/// because the machine is shared, but a hang must fail rather than block the suite.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn tmp_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// A fresh, empty directory `base/<name>-<pid>-<n>`, unique to this process and call. Kept
/// after the test for inspection (target/tmp is cargo's scratch space).
pub fn unique_dir(base: &Path, name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = base.join(format!(
        "{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Directories kept for inspection are removed from `base` once older than a day (once per
/// test process and `base`), so that they do not pile up.
pub fn remove_stale(base: &Path) {
    static CLEANED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    let mut cleaned = CLEANED.lock().unwrap_or_else(|e| e.into_inner());
    if !cleaned.insert(base.to_path_buf()) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(24 * 3600));
        if old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Page size assumed by the examples' ground truth (x86_64).
pub const PAGE: u64 = 4096;

pub fn page_up(n: u64) -> u64 {
    n.div_ceil(PAGE) * PAGE
}

/// Computes a value once per test process and shares it between tests (a profiled run that
/// several tests inspect). A failure is remembered too: the other tests then fail at once with
/// the same message instead of each redoing (and re-waiting for) the failing work.
pub fn shared<T: Send + Sync>(
    cell: &'static OnceLock<Result<T, String>>,
    make: impl FnOnce() -> T,
) -> &'static T {
    let result = cell.get_or_init(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(make)).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".to_string())
        })
    });
    match result {
        Ok(v) => v,
        Err(msg) => panic!("(shared setup failed) {msg}"),
    }
}

// ---------------------------------------------------------------------------------------
// Building the examples
// ---------------------------------------------------------------------------------------

/// Compiles `examples/<source>` with `compiler` and `flags` into `CARGO_TARGET_TMPDIR` and
/// returns the binary. The binary's name encodes the flags, so different builds of one source
/// coexist. It is rebuilt only when missing or older than the source.
///
/// Tests run in parallel threads and possibly in several test binaries at once: the compiler
/// writes to a name unique to this process and thread, which is then renamed into place
/// (atomic), so nobody ever runs a half-written binary.
pub fn compile(compiler: &str, source: &str, flags: &[&str]) -> PathBuf {
    let src = repo_root().join("examples").join(source);
    assert!(src.exists(), "missing example source {}", src.display());
    let stem = Path::new(source)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let tag: String = flags
        .iter()
        .map(|f| {
            f.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("_");
    let dir = tmp_root().join("examples");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{stem}.{tag}"));

    // The source's time, or a header's of examples/ when newer (one the source includes).
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let headers = std::fs::read_dir(src.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "h"));
    let src_time = headers
        .filter_map(|h| modified(&h))
        .chain(modified(&src))
        .max()
        .unwrap();
    let fresh = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= src_time)
    };
    // One compile at a time in this test binary, so parallel tests wanting the same binary
    // build it once.
    static COMPILING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = COMPILING.lock().unwrap_or_else(|e| e.into_inner());
    if fresh(&out) {
        return out;
    }

    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let partial = dir.join(format!(
        ".{stem}.{tag}.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = Command::new(compiler)
        .args(flags)
        .arg("-o")
        .arg(&partial)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        result.status.success(),
        "{compiler} {flags:?} {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    // Never replace a fresh binary that another test placed meanwhile: a test may be running
    // it, and the profile would then name a "(deleted)" executable. A missing binary is
    // placed with a hard link (fails if someone got there first); a stale one is renamed over.
    if fresh(&out) {
        let _ = std::fs::remove_file(&partial);
        return out;
    }
    match std::fs::hard_link(&partial, &out) {
        Ok(()) => std::fs::remove_file(&partial).unwrap(),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && fresh(&out) => {
            std::fs::remove_file(&partial).unwrap()
        }
        Err(_) => std::fs::rename(&partial, &out).unwrap(),
    }
    out
}

/// A C example built the way the tests' ground truth assumes: `gcc -g -O0 -pthread`.
pub fn c_example(source: &str) -> PathBuf {
    compile("gcc", source, &["-g", "-O0", "-pthread"])
}

/// A C example built with other flags (e.g. `-O2`).
pub fn c_example_with(source: &str, flags: &[&str]) -> PathBuf {
    compile("gcc", source, flags)
}

/// A C++ example: `g++ -g -O0`.
pub fn cpp_example(source: &str) -> PathBuf {
    compile("g++", source, &["-g", "-O0"])
}

/// A Rust example built by cargo: `target/<profile>/examples/<name>`, found next to this
/// test binary (`target/<profile>/deps/<test>-<hash>`).
///
/// `cargo test` builds the examples before running the tests; when the binary is missing
/// (e.g. `cargo test --test e2e_peak` builds only that target), the test says how to get it
/// rather than invoking cargo from inside cargo.
pub fn rust_example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test` (which builds the examples) or `cargo build --example {name}` first",
        path.display()
    );
    path
}

// ---------------------------------------------------------------------------------------
// Running peakprof
// ---------------------------------------------------------------------------------------

/// What a finished command left: status, both outputs, time taken.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl Finished {
    /// The exit code (for peakprof: it exits with the program's status, 128+N for signal N).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    pub fn describe(&self) -> String {
        format!(
            "status {:?} after {:.1}s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.elapsed.as_secs_f64(),
            self.stdout_str(),
            self.stderr_str()
        )
    }
}

/// One `peakprof run` and everything it left behind. Derefs to its [`Finished`] (status,
/// outputs, time taken).
#[derive(Debug)]
pub struct Run {
    /// The `-o` directory: peak.folded, summary.json, peak.svg, peak-reversed.svg.
    pub out_dir: PathBuf,
    pub finished: Finished,
}

impl Deref for Run {
    type Target = Finished;

    fn deref(&self) -> &Finished {
        &self.finished
    }
}

impl Run {
    pub fn path(&self, file: &str) -> PathBuf {
        self.out_dir.join(file)
    }

    /// `summary.json`, parsed. Panics (with peakprof's stderr) when it is missing or invalid.
    pub fn summary(&self) -> Value {
        let path = self.path("summary.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}\n{}", path.display(), self.describe()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", path.display()))
    }

    /// The text of `peak.folded`.
    pub fn folded_text(&self) -> String {
        let path = self.path("peak.folded");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}\n{}", path.display(), self.describe()))
    }

    /// `peak.folded`, parsed: (frames root first, bytes) per line.
    pub fn folded(&self) -> Folded {
        parse_folded(&self.folded_text()).unwrap_or_else(|e| panic!("peak.folded: {e}"))
    }

    /// What a failing assertion should show about this run.
    pub fn describe(&self) -> String {
        let listing = std::fs::read_dir(&self.out_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|e| format!("(unreadable: {e})"));
        format!(
            "peakprof run: status {:?}, {:.1}s\nout dir {} holds: [{}]\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.elapsed.as_secs_f64(),
            self.out_dir.display(),
            listing,
            self.stdout_str(),
            self.stderr_str()
        )
    }
}

/// Runs `peakprof run -o <fresh dir> -- program args...`, capturing stdout and stderr.
///
/// The output directory is created empty under `CARGO_TARGET_TMPDIR/runs/` with a name unique
/// to this process and call; the program runs with that directory's parent as its working
/// directory, so nothing (a core file, say) lands in the repository.
pub fn peakprof_run(program: &Path, args: &[&str]) -> Run {
    peakprof_run_with(program, args, &[])
}

/// Like [`peakprof_run`], with extra `peakprof run` options placed before `--`.
pub fn peakprof_run_with(program: &Path, args: &[&str], options: &[&str]) -> Run {
    peakprof_run_env(program, args, options, &[])
}

/// Like [`peakprof_run_with`], with extra environment variables for peakprof (and so for
/// the program and the preloaded library).
pub fn peakprof_run_env(
    program: &Path,
    args: &[&str],
    options: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let name = program.file_name().unwrap().to_string_lossy().into_owned();
    let base = tmp_root().join("runs");
    remove_stale(&base);
    let out_dir = unique_dir(&base, &name);
    let finished = run_in_group(
        Command::new(PEAKPROF)
            // Every memo-shortened stack capture is checked against a full walk; a
            // difference aborts the program (and fails the test's status check).
            .env("PEAKPROF_CHECK_UNWIND", "1")
            .envs(env.iter().copied())
            .arg("run")
            .arg("-o")
            .arg(&out_dir)
            .args(options)
            .arg("--")
            .arg(program)
            .args(args)
            .current_dir(&base),
        RUN_TIMEOUT,
        &format!("peakprof run -- {} {args:?}", program.display()),
    );
    Run { out_dir, finished }
}

/// Runs `cmd` in a process group of its own with stdin closed and both outputs captured;
/// after `timeout` the whole group is killed and the test fails (a hang must not block the
/// suite, and nothing it started may outlive the test). `what` names the command in panics.
pub fn run_in_group(cmd: &mut Command, timeout: Duration, what: &str) -> Finished {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let (out_reader, err_reader) = drain_pipes(&mut child);
    let Some(status) = wait_until(&mut child, started, timeout, Duration::from_millis(20)) else {
        kill_group(&mut child);
        panic!("{what} did not finish within {timeout:?}");
    };
    let elapsed = started.elapsed();
    Finished {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
        elapsed,
    }
}

/// Kills the process group of `child`, which leads it (started with `process_group(0)`:
/// the group's id is its pid): the command and everything it started. Reaps the child.
pub fn kill_group(child: &mut Child) {
    if let Some(group) = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads the piped stdout and stderr of `child` to their end, each on a thread of its own: a
/// full pipe must not stall the child.
pub fn drain_pipes(child: &mut Child) -> (JoinHandle<Vec<u8>>, JoinHandle<Vec<u8>>) {
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = pipe.read_to_end(&mut v);
            v
        })
    };
    (
        drain(Box::new(child.stdout.take().unwrap())),
        drain(Box::new(child.stderr.take().unwrap())),
    )
}

/// Polls `child` every `poll` until it exits (its status), or until `timeout` has passed
/// since `started` (None; the child is left running for the caller to deal with).
pub fn wait_until(
    child: &mut Child,
    started: Instant,
    timeout: Duration,
    poll: Duration,
) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if started.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(poll);
    }
}

// ---------------------------------------------------------------------------------------
// summary.json
// ---------------------------------------------------------------------------------------

/// `summary[key]` as u64, with a readable panic when absent or of another type.
pub fn json_u64(summary: &Value, key: &str) -> u64 {
    summary
        .get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("summary.json: `{key}` is not an unsigned integer: {summary}"))
}

/// `v[key]` as a number; absent or another type panics.
pub fn json_f64(v: &Value, key: &str) -> f64 {
    v.get(key)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("`{key}` is not a number in {v}"))
}

/// `v[key]` as a string; absent or another type panics.
pub fn json_str<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("`{key}` is not a string in {v}"))
}

/// `summary[key]` as Option<i64>: `null` is None; absent or another type panics, because the
/// format says the field is always there (int or null).
pub fn json_opt_i64(summary: &Value, key: &str) -> Option<i64> {
    match summary.get(key) {
        Some(Value::Null) => None,
        Some(v) if v.is_i64() => v.as_i64(),
        other => panic!("summary.json: `{key}` should be an integer or null, found {other:?}"),
    }
}

/// The `functions` array of summary.json as (function, bytes).
pub fn summary_functions(summary: &Value) -> Vec<(String, u64)> {
    summary
        .get("functions")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("summary.json: `functions` is not an array"))
        .iter()
        .map(|f| {
            let name = f.get("function").and_then(Value::as_str);
            let bytes = f.get("bytes").and_then(Value::as_u64);
            match (name, bytes) {
                (Some(n), Some(b)) => (n.to_string(), b),
                _ => panic!("summary.json: bad `functions` entry {f}"),
            }
        })
        .collect()
}

/// The entries of summary.json's `functions` for the function named `name` (compared with
/// [`function_name`], so an entry may carry a location or not). A per-function table has at
/// most one; more than one means the table is keyed by something finer (e.g. call line).
pub fn summary_function_entries(summary: &Value, name: &str) -> Vec<(String, u64)> {
    summary_functions(summary)
        .into_iter()
        .filter(|(f, _)| function_name(f) == name)
        .collect()
}

/// One entry of summary.json's `top`.
#[derive(Debug, Clone)]
pub struct TopEntry {
    pub bytes: u64,
    pub count: u64,
    /// Root first, leaf last.
    pub frames: Vec<String>,
}

pub fn summary_top(summary: &Value) -> Vec<TopEntry> {
    summary
        .get("top")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("summary.json: `top` is not an array"))
        .iter()
        .map(|t| {
            let frames = t.get("frames").and_then(Value::as_array).map(|a| {
                a.iter()
                    .map(|f| f.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            });
            match (
                t.get("bytes").and_then(Value::as_u64),
                t.get("count").and_then(Value::as_u64),
                frames,
            ) {
                (Some(bytes), Some(count), Some(Some(frames))) => TopEntry {
                    bytes,
                    count,
                    frames,
                },
                _ => panic!("summary.json: bad `top` entry {t}"),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// peak.folded
// ---------------------------------------------------------------------------------------

/// Parsed `peak.folded`: one (frames root first, bytes) per line.
pub type Folded = Vec<(Vec<String>, u64)>;

/// Parses folded-stack text. Every non-empty line must be `frame;...;frame BYTES` with BYTES a
/// positive integer; the first malformed line is an error.
pub fn parse_folded(text: &str) -> Result<Folded, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let (stack, bytes) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("line {}: no `stack bytes` separator: {line:?}", i + 1))?;
        let bytes: u64 = bytes
            .parse()
            .map_err(|_| format!("line {}: does not end in an integer: {line:?}", i + 1))?;
        if bytes == 0 {
            return Err(format!("line {}: zero bytes: {line:?}", i + 1));
        }
        if stack.is_empty() {
            return Err(format!("line {}: empty stack: {line:?}", i + 1));
        }
        out.push((stack.split(';').map(str::to_string).collect(), bytes));
    }
    Ok(out)
}

pub fn folded_total(folded: &Folded) -> u64 {
    folded.iter().map(|(_, b)| b).sum()
}

/// The function part of a frame name: frames are `function (file:line)`, `function`, or
/// `module+0xoffset`. The location is the last ` (` group when it closes the frame and holds
/// a `:` (so C++ parameter lists such as `f(int) (a.cpp:3)` keep their parentheses).
pub fn function_name(frame: &str) -> &str {
    if frame.ends_with(')') {
        if let Some((func, loc)) = frame.rsplit_once(" (") {
            if loc.contains(':') && !func.is_empty() {
                return func;
            }
        }
    }
    frame
}

/// Inclusive bytes at the peak of the function named exactly `name`: the bytes of every stack
/// holding at least one frame of that function, each stack counted once (recursion does not
/// count twice).
pub fn function_bytes(folded: &Folded, name: &str) -> u64 {
    function_bytes_where(folded, |f| f == name)
}

/// Inclusive bytes of a C++ function given without its parameter list: matches the frame
/// function `name` exactly or `name(...)` (demanglers differ on showing parameters).
pub fn cpp_function_bytes(folded: &Folded, name: &str) -> u64 {
    function_bytes_where(folded, |f| {
        f == name || (f.starts_with(name) && f[name.len()..].starts_with('('))
    })
}

/// Inclusive bytes of the stacks with a frame whose function name satisfies `pred`.
pub fn function_bytes_where(folded: &Folded, pred: impl Fn(&str) -> bool) -> u64 {
    folded
        .iter()
        .filter(|(frames, _)| frames.iter().any(|f| pred(function_name(f))))
        .map(|(_, b)| b)
        .sum()
}

/// Whether any stack has a frame of the function `name`.
pub fn mentions_function(folded: &Folded, name: &str) -> bool {
    folded
        .iter()
        .any(|(frames, _)| frames.iter().any(|f| function_name(f) == name))
}

/// Asserts the inclusive bytes at the peak of each named function, as `bytes_of` counts them
/// (e.g. [`function_bytes`]). A failure lists every mismatch, after `context` unless it is
/// empty, and the profile.
pub fn assert_functions_by(
    folded: &Folded,
    expected: &[(&str, u64)],
    bytes_of: impl Fn(&Folded, &str) -> u64,
    context: &str,
) {
    let mismatches: Vec<String> = expected
        .iter()
        .filter_map(|&(name, want)| {
            let got = bytes_of(folded, name);
            (got != want).then(|| format!("{name}: expected {want} bytes at the peak, got {got}"))
        })
        .collect();
    let context = if context.is_empty() {
        String::new()
    } else {
        format!("{context}\n")
    };
    assert!(
        mismatches.is_empty(),
        "{context}{}\n--- peak.folded (largest first) ---\n{}",
        mismatches.join("\n"),
        show_folded(folded, 40)
    );
}

/// Asserts summary.json's `peak_bytes`, showing the difference and the profile on failure.
pub fn assert_peak_bytes(run: &Run, expected: u64) {
    let got = json_u64(&run.summary(), "peak_bytes");
    assert_eq!(
        got,
        expected,
        "peak_bytes: expected {expected}, got {got} (difference {})\n--- peak.folded ---\n{}",
        got as i64 - expected as i64,
        show_folded(&run.folded(), 40)
    );
}

/// All distinct function names in the profile (for failure messages).
pub fn all_functions(folded: &Folded) -> BTreeSet<String> {
    folded
        .iter()
        .flat_map(|(frames, _)| frames.iter().map(|f| function_name(f).to_string()))
        .collect()
}

/// The profile as text for failure messages, largest stacks first, at most `limit` lines.
pub fn show_folded(folded: &Folded, limit: usize) -> String {
    let mut v: Vec<_> = folded.iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    let mut s: String = v
        .iter()
        .take(limit)
        .map(|(frames, b)| format!("{b:>10} {}\n", frames.join(";")))
        .collect();
    if v.len() > limit {
        s.push_str(&format!("... and {} more stacks\n", v.len() - limit));
    }
    s
}

// ---------------------------------------------------------------------------------------
// Flame graphs
// ---------------------------------------------------------------------------------------

/// The texts of the `<title>` elements of an SVG, XML entities decoded. inferno titles a
/// frame's box as `frame (N bytes, P%)`.
pub fn svg_titles(svg: &str) -> Vec<String> {
    let mut titles = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find("<title>") {
        rest = &rest[start + "<title>".len()..];
        let Some(end) = rest.find("</title>") else {
            break;
        };
        titles.push(xml_unescape(&rest[..end]));
        rest = &rest[end..];
    }
    titles
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Whether one of the titles is a box of the function `name`: the title starts with the
/// function name followed by ` (` (its location or the byte count) or is exactly the name.
pub fn svg_names_function(titles: &[String], name: &str) -> bool {
    let prefix = format!("{name} (");
    titles.iter().any(|t| t == name || t.starts_with(&prefix))
}

// ---------------------------------------------------------------------------------------
// Checks every profile must pass
// ---------------------------------------------------------------------------------------

/// The invariants of any complete run: summary.json, peak.folded and both flame graphs exist;
/// every folded line ends in a positive integer; the lines sum to `peak_bytes`.
pub fn check_outputs_consistent(run: &Run) {
    for file in [
        "summary.json",
        "peak.folded",
        "peak.svg",
        "peak-reversed.svg",
    ] {
        assert!(
            run.path(file).is_file(),
            "{file} was not written\n{}",
            run.describe()
        );
    }
    let summary = run.summary();
    let text = run.folded_text();
    let folded = parse_folded(&text).unwrap_or_else(|e| panic!("peak.folded: {e}\n{text}"));
    let peak = json_u64(&summary, "peak_bytes");
    assert_eq!(
        folded_total(&folded),
        peak,
        "peak.folded lines must sum to peak_bytes\n{}",
        show_folded(&folded, 40)
    );
}

/// Reads /proc/self/auxv: the value of auxiliary vector entry `key`, if present.
pub fn auxv(key: u64) -> Option<u64> {
    let data = std::fs::read("/proc/self/auxv").ok()?;
    data.chunks_exact(16).find_map(|c| {
        let k = u64::from_ne_bytes(c[..8].try_into().unwrap());
        let v = u64::from_ne_bytes(c[8..].try_into().unwrap());
        (k == key).then_some(v)
    })
}

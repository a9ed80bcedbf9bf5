//! End-to-end on real programs: python3, gcc (driver -> cc1 -> as), a shell pipeline, and
//! `make -j2` of a small generated project.
//!
//! For each: the program's stdout and exit status are the same with and without peakprof;
//! every process it started has a profile (checked against `strace -f` when available, else
//! against the processes the program is known to start); and each process's peak heap is
//! plausible against the maximum RSS `/usr/bin/time -f %M` measures for the same command
//! (a heap that is resident cannot exceed it by much; 0 would mean nothing was recorded).
//!
//! A missing program skips its test with a visible `SKIPPED:` line
//! (`.ci/install-test-deps.sh` installs them).

mod common;
#[path = "common/robust.rs"]
mod robust;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use robust::*;

/// A heap block is at most its pages; RSS may undercount pages never touched (and the
/// allocator's own structures), hence the factor and the slack.
const RSS_FACTOR: f64 = 1.1;
const RSS_SLACK: u64 = 2 << 20;

/// The command run natively: stdout, status, and max RSS (KiB) when /usr/bin/time exists.
struct Native {
    run: Finished,
    max_rss_kib: Option<u64>,
}

/// Runs `argv` in `cwd` without peakprof, under `/usr/bin/time -f %M` when available.
fn native(argv: &[&str], cwd: &Path) -> Native {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        skip("/usr/bin/time is missing (package `time`): no max-RSS plausibility check");
        let run = run_deadline(
            Command::new(argv[0]).args(&argv[1..]).current_dir(cwd),
            RUN_TIMEOUT,
        );
        return Native {
            run,
            max_rss_kib: None,
        };
    }
    let rss_file = cwd.join(".max_rss");
    let run = run_deadline(
        Command::new(time)
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&rss_file)
            .args(argv)
            .current_dir(cwd),
        RUN_TIMEOUT,
    );
    // time(1) writes "Command exited with non-zero status N" before the format line.
    let text = std::fs::read_to_string(&rss_file).unwrap_or_default();
    let max_rss_kib = text.lines().last().and_then(|l| l.trim().parse().ok());
    let _ = std::fs::remove_file(&rss_file);
    assert!(max_rss_kib.is_some(), "/usr/bin/time wrote {text:?}");
    Native { run, max_rss_kib }
}

/// The programs `argv` execs (itself included), as basenames of argv[0] with counts, from
/// `strace -f`; None when strace is missing or not permitted here.
fn traced_execs(argv: &[&str], cwd: &Path) -> Option<BTreeMap<String, usize>> {
    let strace = which("strace")?;
    let dir = fresh_dir("strace");
    let prefix = dir.join("t");
    let f = run_deadline(
        Command::new(strace)
            .args(["-f", "-ff", "-qq", "-s", "4096", "-e", "trace=execve", "-o"])
            .arg(&prefix)
            .args(argv)
            .current_dir(cwd),
        RUN_TIMEOUT,
    );
    if f.stderr_str().contains("ptrace") || files_ending(&dir, "").is_empty() {
        skip(&format!(
            "strace cannot trace here: {}",
            f.stderr_str().trim()
        ));
        return None;
    }
    let mut execs = BTreeMap::new();
    for file in files_ending(&dir, "") {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for line in text.lines() {
            // execve("/usr/bin/as", ["as", "--64", ...], 0x... /* 30 vars */) = 0
            if !line.starts_with("execve(") || !line.trim_end().ends_with("= 0") {
                continue;
            }
            let Some(rest) = line.split_once("[\"").map(|(_, r)| r) else {
                continue;
            };
            let argv0 = rest.split('"').next().unwrap_or("");
            let base = Path::new(argv0)
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            *execs.entry(base).or_insert(0) += 1;
        }
    }
    Some(execs)
}

fn counts(names: &[&str]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for n in names {
        *m.entry(n.to_string()).or_insert(0) += 1;
    }
    m
}

/// Runs `argv` in `cwd` with and without peakprof and checks everything this file promises.
/// `expected_execs`: the programs the command is known to exec (basenames of argv[0]), used
/// when strace is not available. Returns the peakprof run.
fn check_real_program(name: &str, argv: &[&str], cwd: &Path, expected_execs: &[&str]) -> Run {
    let base = native(argv, cwd);
    let out_dir = fresh_dir(&format!("{name}-out")).join("out");
    let f = run_deadline(&mut peakprof_command(&out_dir, &[], argv, cwd), RUN_TIMEOUT);
    let run = Run {
        out_dir: out_dir.clone(),
        finished: f,
    };

    // Same stdout, same status.
    assert_eq!(
        run.code(),
        base.run.code(),
        "{name}: exit status with and without peakprof\n{}",
        run.describe()
    );
    assert_eq!(
        run.stdout_str(),
        base.run.stdout_str(),
        "{name}: stdout with and without peakprof"
    );
    let summary = run.summary();
    assert_eq!(
        json_opt_i64(&summary, "exit_code"),
        base.run.code().map(i64::from),
        "{name}: summary.json exit_code"
    );
    check_outputs_consistent(&run);

    // A profile for every process.
    let procs = processes(&summary);
    check_process_dirs(&procs, cwd)
        .unwrap_or_else(|e| panic!("{name}: {e}\n{}", show_processes(&procs)));
    let root_pid = json_u64(&summary, "pid");
    assert!(
        procs
            .iter()
            .any(|p| p.pid == root_pid && p.ppid == json_u64(&summary, "ppid")),
        "{name}: the root process is not in the list\n{}",
        show_processes(&procs)
    );
    let listed: Vec<String> = procs
        .iter()
        .filter(|p| !is_fork_copy(p, &procs))
        .map(Process::program)
        .collect();
    let listed = counts(&listed.iter().map(String::as_str).collect::<Vec<_>>());
    let expected = traced_execs(argv, cwd).unwrap_or_else(|| counts(expected_execs));
    assert_eq!(
        listed,
        expected,
        "{name}: programs profiled (left) vs programs the command executed (right)\n{}",
        show_processes(&procs)
    );

    // Plausible peaks.
    for p in &procs {
        assert!(
            p.peak_bytes > 0,
            "{name}: pid {} ({}) has a zero peak: nothing recorded\n{}",
            p.pid,
            p.command,
            show_processes(&procs)
        );
    }
    if let Some(kib) = base.max_rss_kib {
        let limit = (kib as f64 * 1024.0 * RSS_FACTOR) as u64 + RSS_SLACK;
        for p in &procs {
            assert!(
                p.peak_bytes <= limit,
                "{name}: pid {} ({}) peak heap {} bytes, more than the command's max RSS {} KiB \
                 (x{RSS_FACTOR} + {RSS_SLACK} bytes = {limit})\n{}",
                p.pid,
                p.command,
                p.peak_bytes,
                kib,
                show_processes(&procs)
            );
        }
    }
    run
}

/// The real python3 executable (not a pyenv shim or wrapper script), or None.
fn python3() -> Option<PathBuf> {
    let py = which("python3")?;
    let out = Command::new(py)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let exe = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    exe.is_file().then_some(exe)
}

// ---------------------------------------------------------------------------------------

const ALLOC_SCRIPT: &str = r#"
xs = ["item-%d-%s" % (i, "x" * (i % 50)) for i in range(200000)]
d = {s: i for i, s in enumerate(xs)}
total = sum(len(s) for s in xs) + len(d)
del d
del xs
print("total", total)
"#;

#[test]
fn python_allocation_heavy_script() {
    let Some(py) = python3() else {
        skip("python3 not found");
        return;
    };
    let dir = fresh_dir("python");
    std::fs::write(dir.join("alloc.py"), ALLOC_SCRIPT).unwrap();
    let run = check_real_program(
        "python",
        &[py.to_str().unwrap(), "alloc.py"],
        &dir,
        &[py.file_name().unwrap().to_str().unwrap()],
    );
    assert!(run.stdout_str().starts_with("total "), "{}", run.describe());
    // 200k strings of ~50-100 bytes and a dict of them were live together: tens of MB.
    let peak = json_u64(&run.summary(), "peak_bytes");
    assert!(
        peak > 20 << 20,
        "python's peak heap {peak} is too small for 200000 live strings and a dict"
    );
    // They were freed before the end.
    let leaked = json_u64(&run.summary(), "leaked_bytes");
    assert!(leaked < peak / 2, "leaked {leaked} of peak {peak}");
}

#[test]
fn python_sigint_still_raises_keyboard_interrupt() {
    // Python installs its SIGINT handler (KeyboardInterrupt) only where the disposition is
    // still the default one: a profiler must not change what the program sees.
    let Some(py) = python3() else {
        skip("python3 not found");
        return;
    };
    let dir = fresh_dir("python-sigint");
    std::fs::write(
        dir.join("sigint.py"),
        "import os, signal\n\
         print(signal.getsignal(signal.SIGINT))\n\
         try:\n    os.kill(os.getpid(), signal.SIGINT)\n    import time; time.sleep(1)\n    \
         print('no KeyboardInterrupt')\n\
         except KeyboardInterrupt:\n    print('KeyboardInterrupt caught')\n",
    )
    .unwrap();
    let argv = [py.to_str().unwrap(), "sigint.py"];
    let base = run_deadline(
        Command::new(argv[0]).args(&argv[1..]).current_dir(&dir),
        RUN_TIMEOUT,
    );
    if inherited_ignored(2) {
        // This test run inherited SIGINT ignored (a job started in the background by a
        // non-interactive shell), so python installs no handler with or without peakprof.
        // The runs must still agree.
        skip("SIGINT is ignored in this test run's environment: python raises no KeyboardInterrupt even alone");
    } else {
        assert!(
            base.stdout_str().contains("KeyboardInterrupt caught"),
            "{}",
            base.describe()
        );
    }
    let out = dir.join("out");
    let f = run_deadline(
        &mut peakprof_command(&out, &["-q"], &argv, &dir),
        RUN_TIMEOUT,
    );
    assert_eq!(
        (f.code(), f.stdout_str()),
        (base.code(), base.stdout_str()),
        "python under peakprof: (status, stdout) differ from the run without it\n{}",
        f.describe()
    );
}

/// A C file big enough that cc1 does real work (its peak is megabytes).
fn generated_c() -> String {
    let mut s = String::from("#include <stdlib.h>\n#include <string.h>\n");
    for i in 0..40 {
        let table: Vec<String> = (0..64)
            .map(|j| ((i * 7 + j * 13) % 97).to_string())
            .collect();
        s.push_str(&format!(
            "static int table{i}[64] = {{ {} }};\n\
             int func{i}(int n) {{\n\
             \x20   int acc = 0;\n\
             \x20   for (int k = 0; k < n; k++) acc += table{i}[k % 64] * (k ^ {i});\n\
             \x20   char *buf = malloc(n + 1);\n\
             \x20   if (!buf) return -1;\n\
             \x20   memset(buf, 'a' + {}, n);\n\
             \x20   buf[n] = 0;\n\
             \x20   acc += (int)strlen(buf);\n\
             \x20   free(buf);\n\
             \x20   return acc;\n\
             }}\n",
            table.join(", "),
            i % 26
        ));
    }
    s
}

#[test]
fn gcc_compile_profiles_driver_cc1_and_as() {
    let Some(gcc) = which("gcc") else {
        skip("gcc not found");
        return;
    };
    let dir = fresh_dir("gcc");
    std::fs::write(dir.join("gen.c"), generated_c()).unwrap();
    let gcc = gcc.to_str().unwrap();
    // The object written without peakprof, kept to compare.
    let native_obj = dir.join("native.o");
    let st = Command::new(gcc)
        .args(["-O2", "-c", "gen.c", "-o"])
        .arg(&native_obj)
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let run = check_real_program(
        "gcc",
        &[gcc, "-O2", "-c", "gen.c", "-o", "gen.o"],
        &dir,
        &["gcc", "cc1", "as"],
    );
    let procs = processes(&run.summary());
    assert!(procs.len() >= 3, "{}", show_processes(&procs));
    let cc1 = procs
        .iter()
        .find(|p| p.program() == "cc1")
        .unwrap_or_else(|| panic!("no cc1 among the processes\n{}", show_processes(&procs)));
    assert!(
        procs.iter().any(|p| p.program() == "as"),
        "{}",
        show_processes(&procs)
    );
    // cc1 parses and optimizes 40 functions: it is the one with the largest heap, and its
    // peak is megabytes (the GC'd heap lives in anonymous mmaps, which count).
    assert_eq!(
        procs.iter().max_by_key(|p| p.peak_bytes).map(|p| p.pid),
        Some(cc1.pid),
        "{}",
        show_processes(&procs)
    );
    assert!(cc1.peak_bytes > 1 << 20, "{}", show_processes(&procs));
    // The program's real output is unchanged.
    assert_eq!(
        std::fs::read(dir.join("gen.o")).unwrap(),
        std::fs::read(&native_obj).unwrap(),
        "gen.o differs with and without peakprof"
    );
}

#[test]
fn shell_pipeline_python_into_wc() {
    let Some(py) = python3() else {
        skip("python3 not found");
        return;
    };
    let Some(sh) = which("sh") else {
        skip("sh not found");
        return;
    };
    let dir = fresh_dir("pipeline");
    let script = format!(
        "{} -c 'print(\"x\" * 100000); print(len([str(i) for i in range(50000)]))' | wc -c",
        py.display()
    );
    let run = check_real_program(
        "pipeline",
        &[sh.to_str().unwrap(), "-c", &script],
        &dir,
        &["sh", py.file_name().unwrap().to_str().unwrap(), "wc"],
    );
    assert_eq!(run.stdout_str().trim(), "100007");
}

const MAKEFILE: &str = "OBJS = main.o m1.o m2.o m3.o\n\
prog: $(OBJS)\n\tgcc -o $@ $(OBJS)\n\
%.o: %.c\n\tgcc -O2 -c $< -o $@\n";

#[test]
fn make_j2_small_project() {
    let (Some(make), Some(_)) = (which("make"), which("gcc")) else {
        skip("make or gcc not found");
        return;
    };
    let dir = fresh_dir("make");
    for i in 1..=3 {
        std::fs::write(
            dir.join(format!("m{i}.c")),
            format!(
                "#include <stdlib.h>\n#include <string.h>\n\
                 int f{i}(int n) {{ char *p = malloc(n); memset(p, {i}, n); \
                 int s = p[n / 2]; free(p); return s + {i}; }}\n"
            ),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("main.c"),
        "#include <stdio.h>\nint f1(int), f2(int), f3(int);\n\
         int main(void) { printf(\"sum=%d\\n\", f1(10) + f2(20) + f3(30)); return 0; }\n",
    )
    .unwrap();
    std::fs::write(dir.join("Makefile"), MAKEFILE).unwrap();
    let prog_output = || {
        Command::new(dir.join("prog"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    // -B: every run (native, traced, profiled) rebuilds everything.
    let run = check_real_program(
        "make",
        &[make.to_str().unwrap(), "-B", "-j2", "-s"],
        &dir,
        &[
            // make runs gcc 5 times (4 compiles, 1 link); each compile runs cc1 and as, the
            // link runs collect2, which runs ld.
            "make", "gcc", "gcc", "gcc", "gcc", "gcc", "cc1", "cc1", "cc1", "cc1", "as", "as", "as",
            "as", "collect2", "ld",
        ],
    );
    let procs = processes(&run.summary());
    let n = |prog: &str| procs.iter().filter(|p| p.program() == prog).count();
    assert_eq!(
        (n("cc1"), n("as"), n("ld")),
        (4, 4, 1),
        "one cc1 and one as per source file, one ld\n{}",
        show_processes(&procs)
    );
    // The program built under peakprof works.
    assert_eq!(prog_output(), "sum=12\n");
}

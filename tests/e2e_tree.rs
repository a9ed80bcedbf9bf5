//! `peakprof run` waits for the whole process tree: a child left running in the background
//! by the root is still profiled to its end, exactly.

use std::path::PathBuf;
use std::process::Command;

/// Compiles the C program `source` as `dir/name` with `opt`; `None` (after saying so) when
/// there is no C compiler.
fn compile(dir: &std::path::Path, name: &str, source: &str, opt: &str) -> Option<PathBuf> {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let exe = dir.join(name);
    let cc = Command::new("cc")
        .arg(opt)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status();
    if !cc.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: no C compiler");
        return None;
    }
    Some(exe)
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tree-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_background_child_that_outlives_the_root_is_waited_for_and_profiled() {
    let dir = scratch("bg");
    // Sleeps first, so the shell has long exited when it allocates: only a peakprof that
    // waits for orphaned descendants sees its allocation and its end.
    let Some(exe) = compile(
        &dir,
        "late",
        r#"#include <stdlib.h>
#include <string.h>
#include <unistd.h>
__attribute__((noinline)) static void *late_hold(size_t n) { void *p = malloc(n); memset(p, 1, n); return p; }
int main(void) { usleep(300000); void *p = late_hold(777777); free(p); return 0; }
"#,
        "-O0",
    ) else {
        return;
    };
    let out = dir.join("out");
    let script = format!("{} & exit 0", exe.display());
    let status = Command::new(env!("CARGO_BIN_EXE_peakprof"))
        .args(["run", "-q", "-o"])
        .arg(&out)
        .args(["--", "sh", "-c", &script])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let procs = summary["processes"].as_array().unwrap();
    let late = procs
        .iter()
        .find(|p| p["command"].as_str().unwrap().contains("late"))
        .unwrap_or_else(|| panic!("the background child is missing: {procs:?}"));
    assert_eq!(late["peak_bytes"], 777777, "{late}");
    assert_eq!(late["end"], "exit", "it ran to its end: {late}");
    let dir_of_late = PathBuf::from(late["dir"].as_str().unwrap());
    let child: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir_of_late.join("summary.json")).unwrap())
            .unwrap();
    let holds = child["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == "late_hold")
        .map(|f| f["bytes"].clone());
    assert_eq!(holds, Some(serde_json::json!(777777)));
}

/// A signal handler calling `_exit` (async-signal-safe, and common) can interrupt the
/// program inside one of peakprof's hooks, while it holds the profiler's lock: writing the
/// final profile there would deadlock. The run must end with the program's code, every time.
#[test]
fn underscore_exit_from_a_signal_handler_during_allocation_does_not_hang() {
    let dir = scratch("sigexit");
    let Some(exe) = compile(
        &dir,
        "sigexit",
        r#"#include <signal.h>
#include <stdlib.h>
#include <sys/time.h>
#include <unistd.h>
static void on_alarm(int s) { (void)s; _exit(9); }
int main(void) {
    signal(SIGALRM, on_alarm);
    struct itimerval t = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &t, 0);
    for (;;) { void *p = malloc(100); free(p); }
}
"#,
        "-O1",
    ) else {
        return;
    };
    for round in 0..8 {
        let out = dir.join(format!("out{round}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_peakprof"))
            .args(["run", "-q", "-o"])
            .arg(&out)
            .arg("--")
            .arg(&exe)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = Command::new("pkill").arg("-9").arg("-f").arg(&exe).status();
                panic!("round {round}: peakprof run hung");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(9), "round {round}");
        assert!(
            out.join("summary.json").exists(),
            "round {round}: no report"
        );
    }
}

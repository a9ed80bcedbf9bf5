//! End-to-end: what peakprof refuses, and how. A refusal is one line on stderr starting
//! `peakprof: error:` that says why, an exit code following the shell's convention (127: not
//! found, 126: found but cannot be run, 125: peakprof itself failed, e.g. its output
//! directory), and no half-made output directory left behind. Damaged profiles are reported
//! the same way, never with a panic.

mod common;
#[path = "common/robust.rs"]
mod robust;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use robust::*;

/// `peakprof run -o <base>/out -- argv` in `base`.
fn refused_run(base: &Path, argv: &[&str]) -> (Finished, PathBuf) {
    let out = base.join("out");
    let f = run_deadline(&mut peakprof_command(&out, &[], argv, base), RUN_TIMEOUT);
    (f, out)
}

/// The refusal contract: exit `code`, one error line mentioning each of `reasons`
/// (case-insensitive), nothing on stdout, and no output directory created.
fn check_refusal(base: &Path, argv: &[&str], code: i32, reasons: &[&str]) {
    let (f, out) = refused_run(base, argv);
    let context = format!("peakprof run -- {argv:?}");
    assert_eq!(
        f.code(),
        Some(code),
        "{context}: exit status\n{}",
        f.describe()
    );
    let line = assert_one_error_line(&f.stderr_str(), &context);
    for r in reasons {
        assert!(
            line.to_lowercase().contains(&r.to_lowercase()),
            "{context}: the error should say `{r}`: {line}"
        );
    }
    assert!(f.stdout.is_empty(), "{context}: stdout: {}", f.stdout_str());
    assert!(
        !out.exists(),
        "{context}: the refused run left {} behind (holding {:?})",
        out.display(),
        files_ending(&out, "")
    );
}

fn copy_of(exe: &Path, dir: &Path, name: &str, mode: u32) -> PathBuf {
    let dest = dir.join(name);
    std::fs::copy(exe, &dest).unwrap();
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).unwrap();
    dest
}

#[test]
fn command_not_found() {
    let base = fresh_dir("refuse-notfound");
    check_refusal(
        &base,
        &["peakprof-no-such-command-xyz"],
        127,
        &["not found", "peakprof-no-such-command-xyz"],
    );
}

/// `peakprof run -- argv` in `base` with `PATH` set to `path`.
fn run_with_path(base: &Path, path: &str, argv: &[&str]) -> (Finished, PathBuf) {
    let out = base.join("out");
    let mut cmd = peakprof_command(&out, &[], argv, base);
    cmd.env("PATH", path);
    (run_deadline(&mut cmd, RUN_TIMEOUT), out)
}

/// A bare name is looked up as execvp does: a match that cannot be run is passed over for
/// a later one that can; when there is none, the refusal says why (126), not "not found".
#[test]
fn bare_name_on_path_that_cannot_run() {
    let base = fresh_dir("refuse-path-noexec");
    let exe = c_example("exit_with.c");
    let (first, second) = (base.join("first"), base.join("second"));
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    copy_of(&exe, &first, "pp-tool", 0o644);
    let path = format!("{}:/usr/bin:/bin", first.display());
    let (f, out) = run_with_path(&base, &path, &["pp-tool", "3"]);
    assert_eq!(f.code(), Some(126), "{}", f.describe());
    let line = assert_one_error_line(&f.stderr_str(), "pp-tool not executable on PATH");
    assert!(line.contains("permission denied"), "{line}");
    assert!(
        line.contains(&first.join("pp-tool").display().to_string()),
        "{line}"
    );
    assert!(!out.exists());

    // A FIFO with execute bits is not a program: passed over (opening it to read a header
    // would block forever), so the name is not found at all.
    let fifo = first.join("pp-fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (f, _) = run_with_path(&base, &path, &["pp-fifo"]);
    assert_eq!(f.code(), Some(127), "{}", f.describe());

    // An executable one later on PATH is the one run (its exit code comes through).
    copy_of(&exe, &second, "pp-tool", 0o755);
    let path = format!("{}:{}:/usr/bin:/bin", first.display(), second.display());
    let (f, out) = run_with_path(&base, &path, &["pp-tool", "3"]);
    assert_eq!(f.code(), Some(3), "{}", f.describe());
    assert!(out.join("summary.json").is_file(), "{}", f.describe());
}

/// An empty PATH entry is the current directory, as in execvp and shells.
#[test]
fn empty_path_entry_is_the_current_directory() {
    let base = fresh_dir("refuse-path-empty");
    copy_of(&c_example("exit_with.c"), &base, "pp-here", 0o755);
    let (f, out) = run_with_path(&base, "/usr/bin::/bin", &["pp-here", "4"]);
    assert_eq!(f.code(), Some(4), "{}", f.describe());
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["exit_code"], 4, "{summary}");
    // Without the empty entry, the same name is not found.
    let (f, _) = run_with_path(&base, "/usr/bin:/bin", &["pp-here", "4"]);
    assert_eq!(f.code(), Some(127), "{}", f.describe());
}

#[test]
fn path_not_found() {
    let base = fresh_dir("refuse-nopath");
    check_refusal(&base, &["./missing/program"], 127, &["not found"]);
}

#[test]
fn directory_is_not_a_program() {
    let base = fresh_dir("refuse-dir");
    std::fs::create_dir(base.join("adir")).unwrap();
    check_refusal(&base, &["./adir"], 126, &["directory"]);
}

#[test]
fn file_without_execute_permission() {
    let base = fresh_dir("refuse-noexec");
    copy_of(&c_example("exit_with.c"), &base, "noexec", 0o644);
    check_refusal(&base, &["./noexec", "0"], 126, &["not executable"]);
}

#[test]
fn statically_linked_program() {
    let base = fresh_dir("refuse-static");
    let src = repo_root().join("examples/exit_with.c");
    let exe = base.join("static_prog");
    let built = Command::new("gcc")
        .arg("-static")
        .arg("-O0")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("gcc");
    if !built.status.success() {
        skip(&format!(
            "gcc -static failed (libc.a missing? install libc6-dev): {}",
            String::from_utf8_lossy(&built.stderr)
                .lines()
                .next()
                .unwrap_or("")
        ));
        return;
    }
    // It runs fine without peakprof: the refusal is about LD_PRELOAD, not the program.
    let st = Command::new(&exe).arg("3").status().unwrap();
    assert_eq!(st.code(), Some(3));
    check_refusal(&base, &["./static_prog", "0"], 126, &["statically linked"]);
    // A script run by it: the loader never starts, so the script would run unprofiled and
    // leave no profile. Refused up front, naming the script and why.
    let script = base.join("static_script");
    write_executable(&script, format!("#!{}\n", exe.display()));
    check_refusal(
        &base,
        &["./static_script"],
        126,
        &["./static_script", "interpreter", "statically linked"],
    );
}

#[test]
fn script_whose_interpreter_is_a_script_with_a_missing_interpreter() {
    // The kernel follows #! lines through scripts: the missing file two levels down is
    // what the error (and its shell code, 127) must name.
    let base = fresh_dir("refuse-interp-chain");
    let inner = base.join("inner");
    write_executable(&inner, "#!/nonexistent/interpreter\n");
    let outer = base.join("outer");
    write_executable(&outer, format!("#!{}\necho hi\n", inner.display()));
    check_refusal(
        &base,
        &["./outer"],
        127,
        &["./outer", "/nonexistent/interpreter"],
    );
}

#[test]
fn setuid_program() {
    let base = fresh_dir("refuse-setuid");
    copy_of(&c_example("exit_with.c"), &base, "suid_prog", 0o4755);
    check_refusal(&base, &["./suid_prog", "0"], 126, &["set-user-ID"]);
}

/// A FIFO (with execute bits) named by a path: refused before anything opens it, which
/// would block until a writer comes, that is forever. As a `#!` interpreter too.
#[test]
fn fifo_is_not_a_program() {
    let base = fresh_dir("refuse-fifo");
    let fifo = base.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o755)).unwrap();
    check_refusal(
        &base,
        &["./fifo"],
        126,
        &["./fifo is a FIFO", "not a program"],
    );
    write_executable(base.join("script"), format!("#!{}\n", fifo.display()));
    check_refusal(
        &base,
        &["./script"],
        126,
        &["./script: its #! interpreter", "is a FIFO"],
    );
}

/// `setpriv` arguments that run a command as nobody, without root's groups.
const AS_NOBODY: [&str; 3] = ["--reuid=65534", "--regid=65534", "--clear-groups"];

/// A program with file capabilities runs in the loader's secure mode when a user other
/// than root starts it: LD_PRELOAD is ignored, so it is refused like a set-user-ID one.
/// Root gains nothing by them, and is not refused. Needs root (setcap, and setpriv to run
/// peakprof as nobody): skipped otherwise.
#[test]
fn program_with_file_capabilities() {
    if !rustix::process::geteuid().is_root() {
        skip("not root: cannot setcap a program or run peakprof as another user");
        return;
    }
    let base = fresh_dir("refuse-filecaps");
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    let prog = copy_of(&c_example("exit_with.c"), &base, "capprog", 0o755);
    let set = Command::new("setcap")
        .arg("cap_net_raw+ep")
        .arg(&prog)
        .output();
    if !set.as_ref().is_ok_and(|o| o.status.success()) {
        skip(&format!("setcap cap_net_raw+ep failed: {set:?}"));
        return;
    }
    // nobody must reach peakprof and the program through the directories above them.
    let reachable = Command::new("setpriv")
        .args(AS_NOBODY)
        .args(["test", "-x", PEAKPROF, "-a", "-x"])
        .arg(&prog)
        .status();
    if !reachable.is_ok_and(|s| s.success()) {
        skip("setpriv missing, or nobody cannot reach peakprof and the test program");
        return;
    }
    let out = base.join("out");
    let mut as_nobody = Command::new("setpriv");
    as_nobody
        .args(AS_NOBODY)
        .arg(PEAKPROF)
        .args(["run", "-o"])
        .arg(&out)
        .args(["--", "./capprog", "3"])
        .current_dir(&base);
    let f = run_deadline(&mut as_nobody, RUN_TIMEOUT);
    assert_eq!(f.code(), Some(126), "{}", f.describe());
    let line = assert_one_error_line(&f.stderr_str(), "file capabilities, as nobody");
    assert!(
        line.contains("./capprog has file capabilities") && line.contains("LD_PRELOAD"),
        "{line}"
    );
    assert!(!out.exists());
    // Root: profiled, the program's code comes through.
    let (f, out) = refused_run(&base, &["./capprog", "3"]);
    assert_eq!(f.code(), Some(3), "{}", f.describe());
    assert!(out.join("summary.json").is_file(), "{}", f.describe());
}

#[test]
fn setgid_program() {
    let base = fresh_dir("refuse-setgid");
    copy_of(&c_example("exit_with.c"), &base, "sgid_prog", 0o2755);
    check_refusal(&base, &["./sgid_prog", "0"], 126, &["set-group-ID"]);
}

#[test]
fn executable_that_is_not_a_program() {
    // Executable bits on bytes the kernel cannot run (ENOEXEC): found, but cannot be run.
    let base = fresh_dir("refuse-enoexec");
    let f = base.join("garbage");
    write_executable(&f, b"\x01\x02\x03 this is not a program\n");
    check_refusal(&base, &["./garbage"], 126, &["./garbage"]);
}

#[test]
fn truncated_elf_is_refused() {
    // ELF magic but no header behind it: not a script either, so it must not go to /bin/sh
    // (which runs executable text without #!); the kernel's ENOEXEC is the reason.
    let base = fresh_dir("refuse-trunc-elf");
    write_executable(base.join("trunc"), b"\x7fELF\x02\x01\x01\n");
    check_refusal(
        &base,
        &["./trunc"],
        126,
        &["cannot start ./trunc: exec format error"],
    );
}

#[test]
fn symbolic_link_loop() {
    // The file exists (as a link to itself): "not found" would be the wrong lead.
    let base = fresh_dir("refuse-eloop");
    std::os::unix::fs::symlink("loop", base.join("loop")).unwrap();
    check_refusal(
        &base,
        &["./loop"],
        126,
        &["cannot run ./loop: too many levels of symbolic links"],
    );
}

#[test]
fn path_through_a_file() {
    let base = fresh_dir("refuse-enotdir");
    std::fs::write(base.join("afile"), b"").unwrap();
    check_refusal(
        &base,
        &["./afile/prog"],
        126,
        &["cannot run ./afile/prog: not a directory"],
    );
}

#[test]
fn path_through_a_directory_without_search_permission() {
    if rustix::process::geteuid().is_root() {
        // root searches any directory: metadata() and execve() would both succeed.
        skip("running as root: directory permissions do not apply");
        return;
    }
    let base = fresh_dir("refuse-eacces");
    let locked = base.join("locked");
    std::fs::create_dir(&locked).unwrap();
    copy_of(&c_example("exit_with.c"), &locked, "prog", 0o755);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o600)).unwrap();
    let result = std::panic::catch_unwind(|| {
        check_refusal(
            &base,
            &["./locked/prog", "0"],
            126,
            &["cannot run ./locked/prog: permission denied"],
        )
    });
    // Searchable again, pass or fail, so the stale-directory cleanup can remove it.
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn script_with_missing_interpreter() {
    // The script exists; its interpreter does not. Shells report this as 127 and name the
    // interpreter; "./script: No such file or directory" would point at the wrong file.
    let base = fresh_dir("refuse-interp");
    let f = base.join("script");
    write_executable(&f, "#!/nonexistent/interpreter\necho hi\n");
    check_refusal(&base, &["./script"], 127, &["/nonexistent/interpreter"]);
}

#[test]
fn unwritable_output_dir() {
    let exe = c_example("exit_with.c");
    for out in ["/proc/peakprof-test", "/dev/null/x"] {
        let f = run_deadline(
            Command::new(PEAKPROF)
                .args(["run", "-o", out, "--"])
                .arg(&exe)
                .arg("0"),
            RUN_TIMEOUT,
        );
        let context = format!("peakprof run -o {out}");
        assert_eq!(f.code(), Some(125), "{context}\n{}", f.describe());
        let line = assert_one_error_line(&f.stderr_str(), &context);
        assert!(
            line.contains(out),
            "{context}: the error should name it: {line}"
        );
        assert!(line.contains("output directory"), "{context}: {line}");
        assert!(!Path::new(out).exists());
    }
}

#[test]
fn output_path_is_a_file() {
    let base = fresh_dir("refuse-outfile");
    let file = base.join("afile");
    std::fs::write(&file, b"keep me").unwrap();
    let exe = c_example("exit_with.c");
    let f = run_deadline(
        &mut peakprof_command(&file, &[], &[exe.to_str().unwrap(), "0"], &base),
        RUN_TIMEOUT,
    );
    assert_eq!(f.code(), Some(125), "{}", f.describe());
    let line = assert_one_error_line(&f.stderr_str(), "-o FILE");
    assert!(line.contains("output directory"), "{line}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

/// Command-line mistakes: one error line naming the mistake and where help is, exit 125
/// (clap's own is several lines and 2, which a script cannot tell from the program's), and
/// the program never runs. An unknown option before the program is a mistake, not a
/// program to look for.
#[test]
fn usage_errors_are_one_line_and_run_nothing() {
    let base = fresh_dir("refuse-usage");
    let marker = base.join("ran");
    let touch = ["--", "touch", marker.to_str().unwrap()];
    let cases: &[(&[&str], &[&str])] = &[
        // 0 would silently mean "no limit" to the profiler.
        (
            &["run", "--limit", "0"],
            &["--limit", "at least 1 byte", "run --help"],
        ),
        (&["run", "--sample-rate", "abc"], &["--sample-rate", "abc"]),
        (&["run", "--bogus"], &["unexpected argument '--bogus'"]),
        (&["run", "--limit-action", "report"], &["--limit <SIZE>"]),
        (
            &["report"],
            &["not provided", "<DIR_OR_PROFILE>", "report --help"],
        ),
        (
            &["bogus"],
            &["unrecognized subcommand 'bogus'", "peakprof --help"],
        ),
        (&[], &["no command given", "peakprof --help"]),
        // clap's tip ("use '-- -1'") would make the value the program: not repeated.
        (
            &["run", "--fail-above", "-1"],
            &["unexpected argument '-1'"],
        ),
    ];
    for (args, words) in cases {
        let mut argv = args.to_vec();
        if args.first() == Some(&"run") {
            argv.extend(touch);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_peakprof"))
            .args(&argv)
            .current_dir(&base)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{argv:?}: {stderr}");
        let line = assert_one_error_line(&stderr, &format!("{argv:?}"));
        for w in *words {
            assert!(line.contains(w), "{argv:?}: {w:?} missing from {line}");
        }
        assert!(!line.contains("tip:"), "{argv:?}: {line}");
        assert!(!marker.exists(), "{argv:?} ran the program");
    }
}

/// What an error quotes (here a command name) cannot break its line or reach the
/// terminal as an escape sequence.
#[test]
fn error_lines_carry_no_control_characters() {
    let base = fresh_dir("refuse-control");
    let (f, _) = refused_run(&base, &["nosuch\u{1b}[31mRED\nsecond"]);
    assert_eq!(f.code(), Some(127), "{}", f.describe());
    let line = assert_one_error_line(&f.stderr_str(), "a name with ESC and a newline");
    assert!(!line.contains('\u{1b}'), "{line:?}");
    assert!(
        line.contains("nosuch") && line.contains("second"),
        "{line:?}"
    );
}

#[test]
fn empty_command() {
    let base = fresh_dir("refuse-empty");
    check_refusal(&base, &[""], 127, &["empty command"]);
}

// ---------------------------------------------------------------------------------------
// Damaged profiles
// ---------------------------------------------------------------------------------------

/// A good raw profile (.ppf) from a real run.
fn good_profile() -> Vec<u8> {
    let run = peakprof_run(&c_example("exit_with.c"), &["0"]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let ppf = files_ending(&run.out_dir.join("raw"), ".ppf");
    assert_eq!(ppf.len(), 1, "{ppf:?}");
    std::fs::read(&ppf[0]).unwrap()
}

/// `peakprof report FILE -o OUT` on `bytes`: fails with one error line containing one of
/// `words`, no panic, no report written.
fn check_bad_profile(name: &str, bytes: &[u8], words: &[&str]) {
    let base = fresh_dir(&format!("badppf-{name}"));
    let file = base.join(format!("{name}.ppf"));
    std::fs::write(&file, bytes).unwrap();
    let out = base.join("report");
    let f = run_deadline(
        Command::new(PEAKPROF)
            .arg("report")
            .arg(&file)
            .arg("-o")
            .arg(&out),
        RUN_TIMEOUT,
    );
    let context = format!("peakprof report on a {name} profile");
    assert_ne!(f.code(), Some(0), "{context}\n{}", f.describe());
    assert!(
        f.code().is_some(),
        "{context}: killed by a signal\n{}",
        f.describe()
    );
    let line = assert_one_error_line(&f.stderr_str(), &context);
    assert!(
        words.iter().any(|w| line.contains(w)),
        "{context}: the error should say one of {words:?}: {line}"
    );
    assert!(
        !out.join("summary.json").exists(),
        "{context}: a report was written"
    );
}

#[test]
fn report_on_truncated_profile() {
    let good = good_profile();
    for keep in [0, 4, 12, good.len() / 2, good.len() - 1] {
        check_bad_profile(
            &format!("truncated-{keep}"),
            &good[..keep],
            &["truncated", "corrupt"],
        );
    }
}

#[test]
fn report_on_garbage_profile() {
    let mut x: u32 = 0x1234_5678;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    check_bad_profile("garbage", &garbage, &["corrupt", "not a peakprof profile"]);
}

#[test]
fn report_on_profile_with_flipped_bytes() {
    let good = good_profile();
    for at in [20, good.len() / 3, good.len() / 2, good.len() - 8] {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        check_bad_profile(&format!("flipped-{at}"), &bad, &["corrupt", "truncated"]);
    }
}

#[test]
fn report_on_missing_profile() {
    check_bad_profile_path(Path::new("/nonexistent/peakprof/x.ppf"), &["No such file"]);
}

fn check_bad_profile_path(path: &Path, words: &[&str]) {
    let f = run_deadline(Command::new(PEAKPROF).arg("report").arg(path), RUN_TIMEOUT);
    assert_ne!(f.code(), Some(0), "{}", f.describe());
    let line = assert_one_error_line(&f.stderr_str(), "report on a missing file");
    assert!(words.iter().any(|w| line.contains(w)), "{line}");
}

#[test]
fn report_on_run_dir_with_damaged_live_file() {
    // A run killed by SIGKILL leaves live files, which `peakprof report DIR` recovers from;
    // damaged ones must give one clear error, not a panic or a duplicated message.
    let base = fresh_dir("damaged-live");
    let out = base.join("out");
    let exe = c_example("die_by_signal.c");
    let first = run_deadline(
        &mut peakprof_command(&out, &["-q"], &[exe.to_str().unwrap(), "SIGKILL"], &base),
        RUN_TIMEOUT,
    );
    assert_eq!(first.code(), Some(137), "{}", first.describe());
    let live = files_ending(&out.join("raw"), ".live");
    assert_eq!(live.len(), 1, "{:?}", files_ending(&out.join("raw"), ""));
    // Cut the live file short.
    let bytes = std::fs::read(&live[0]).unwrap();
    std::fs::write(&live[0], &bytes[..100.min(bytes.len())]).unwrap();
    for f in [
        "summary.json",
        "peak.folded",
        "peak.svg",
        "peak-reversed.svg",
    ] {
        let _ = std::fs::remove_file(out.join(f));
    }
    let f = run_deadline(Command::new(PEAKPROF).arg("report").arg(&out), RUN_TIMEOUT);
    assert_ne!(f.code(), Some(0), "{}", f.describe());
    assert!(f.code().is_some(), "killed by a signal\n{}", f.describe());
    let line = assert_one_error_line(&f.stderr_str(), "report on a damaged live file");
    assert!(
        line.contains("truncated") || line.contains("corrupt"),
        "{line}"
    );
    assert!(!out.join("summary.json").exists());
}

#[test]
fn report_on_directory_that_is_not_a_run() {
    let base = fresh_dir("not-a-run");
    let f = run_deadline(Command::new(PEAKPROF).arg("report").arg(&base), RUN_TIMEOUT);
    assert_eq!(f.code(), Some(125), "{}", f.describe());
    let line = assert_one_error_line(&f.stderr_str(), "report on a plain directory");
    assert!(line.contains("not a peakprof run directory"), "{line}");
}

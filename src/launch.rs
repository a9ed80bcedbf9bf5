//! Running the target: environment for the preload, spawning, waiting, and the exit status.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;

use crate::ignored_signals::{CAUGHT, RESTORED, SIGPIPE};
use crate::report::ExitStatus;
use crate::stderr::say_line;

/// Environment variable naming the directory the preload writes raw profiles into.
pub const ENV_OUT_DIR: &str = "PEAKPROF_OUT_DIR";
/// Set to `1` to profile only the root process.
pub const ENV_NO_CHILDREN: &str = "PEAKPROF_NO_CHILDREN";

/// What to run and how.
pub struct Launch<'a> {
    pub program: &'a Path,
    pub argv: &'a [OsString],
    pub preload: &'a Path,
    pub raw_dir: &'a Path,
    pub children: bool,
    /// No progress or waiting notices on the terminal.
    pub quiet: bool,
    /// Further settings for the preload (`PEAKPROF_*`).
    pub env: Vec<(&'static str, String)>,
}

/// How the run ended, and the pid of the root process.
pub struct Finished {
    pub status: ExitStatus,
    pub pid: u32,
}

/// `LD_PRELOAD` with our library first, so our malloc is found before any allocator the
/// user preloads (which then becomes our "next" malloc). The path of ours holds no
/// character the loader splits the list on (`preload_lib::path` makes sure of it): split,
/// it would name no library, and the program would run unprofiled.
fn ld_preload(ours: &Path, existing: Option<OsString>) -> OsString {
    debug_assert_eq!(crate::preload_lib::ld_preload_breaker(ours), None);
    let mut v = OsString::from(ours);
    if let Some(e) = existing.filter(|e| !e.is_empty()) {
        v.push(":");
        v.push(e);
    }
    v
}

/// Whether peakprof passes a signal it received on to the program.
///
/// SIGTERM and SIGHUP always: peakprof must survive them to write the report, and the
/// program may not have received them (a `kill` of peakprof's pid).
///
/// SIGINT and SIGQUIT only when a process sent them to peakprof with kill(), sigqueue() or
/// tgkill() (si_code SI_USER, SI_QUEUE, SI_TKILL): `kill -INT <peakprof's pid>` is how a
/// script or supervisor interrupts a run, and only peakprof gets it. Ctrl-C and Ctrl-\ at
/// a terminal come from the kernel (SI_KERNEL) to the whole foreground process group, so
/// the program already has its own copy; passing ours on would deliver them twice (a
/// second Ctrl-C often means "stop cleaning up, quit now"). Known imperfection: a signal
/// sent with kill() to the whole group (`kill -INT -PGID`, or `timeout -s INT`, which
/// signals its group) also arrives here as SI_USER, so the program then gets it twice:
/// si_code cannot tell a kill() of the group from a kill() of our pid alone.
fn forwards(signal: i32, cause: Cause) -> bool {
    match signal {
        SIGTERM | SIGHUP => true,
        SIGINT | SIGQUIT => matches!(cause, Cause::Sent(_)),
        _ => false,
    }
}

/// Environment variable with the signals peakprof inherited ignored and its program would
/// not inherit ignored from it ([`RESTORED`]), for its program only
/// ([`crate::ignored_signals`]). Catching a signal resets it to the default action in the
/// program (exec keeps an ignored signal ignored but resets a handled one), and Rust's
/// process spawning gives the program SIGPIPE's default action; so the preload sets these
/// back to ignored before `main`: the program starts as it would without peakprof (`nohup`
/// ignores SIGHUP, a non-interactive shell's background jobs ignore SIGINT and SIGQUIT, a
/// daemon ignores SIGCHLD so that the kernel reaps its children, systemd starts services
/// with SIGPIPE ignored), and one passed on then does what it would do to the program
/// directly: nothing, or the program's own handler if it installed one.
pub const ENV_IGNORED_SIGNALS: &str = "PEAKPROF_IGNORED_SIGNALS";

/// Set by `sigpipe_at_start.c` before Rust's runtime starts (which ignores SIGPIPE): to
/// `ignored` when peakprof was started with SIGPIPE ignored. Not passed on.
const ENV_SIGPIPE_AT_START: &str = "PEAKPROF_SIGPIPE_AT_START";

/// The part of `ignored` (a mask, bit `n - 1` for signal `n`) that the program would not
/// inherit ignored from peakprof.
fn to_restore(ignored: u64) -> u64 {
    RESTORED
        .iter()
        .map(|&s| 1u64 << (s - 1))
        .filter(|bit| ignored & bit != 0)
        .sum()
}

/// The signals peakprof was started with ignored: what the kernel reports now, but for
/// SIGPIPE, which Rust's runtime ignores before `main`, what it was before that.
fn ignored_at_start() -> u64 {
    let pipe = 1 << (SIGPIPE - 1);
    let was_ignored = std::env::var_os(ENV_SIGPIPE_AT_START).is_some_and(|v| v == "ignored");
    ignored_signals() & !pipe | if was_ignored { pipe } else { 0 }
}

/// The signals this process ignores, as the kernel reports them (`SigIgn` in
/// `/proc/self/status`, a hex mask with bit `n - 1` for signal `n`); none when unreadable.
pub fn ignored_signals() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| sig_ign_mask(&s))
        .unwrap_or(0)
}

/// The `SigIgn` mask of a `/proc/<pid>/status` text.
fn sig_ign_mask(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Runs the program to completion, and waits for what it left running unless a signal
/// says not to (`wait_for_descendants`). SIGINT and SIGQUIT are caught, so peakprof
/// survives Ctrl-C and Ctrl-\ (which reach the program from the terminal) to write the
/// report; which signals are passed on to the program while it runs: `forwards`.
pub fn run(l: &Launch<'_>) -> Result<Finished> {
    let mut cmd = Command::new(l.program);
    cmd.arg0(
        l.argv
            .first()
            .map_or(l.program.as_os_str(), OsString::as_os_str),
    )
    .args(l.argv.iter().skip(1))
    .env(
        "LD_PRELOAD",
        ld_preload(l.preload, std::env::var_os("LD_PRELOAD")),
    )
    .env(ENV_OUT_DIR, l.raw_dir);
    if l.children {
        cmd.env_remove(ENV_NO_CHILDREN);
    } else {
        cmd.env(ENV_NO_CHILDREN, "1");
    }
    cmd.env_remove(ENV_SIGPIPE_AT_START);
    match to_restore(ignored_at_start()) {
        0 => cmd.env_remove(ENV_IGNORED_SIGNALS),
        mask => cmd.env(
            ENV_IGNORED_SIGNALS,
            crate::ignored_signals::encode(mask, std::process::id()),
        ),
    };
    for (k, v) in &l.env {
        cmd.env(k, v);
    }
    // Orphaned descendants (a background job, a daemonized child) are re-parented to us
    // rather than to init, so we can wait for the whole tree: their profiles are only
    // complete once they have ended.
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    // The four passed on ([`forwards`]), and SIGCHLD, which only needs to be anything but
    // ignored: a SIGCHLD inherited ignored makes the kernel reap peakprof's children
    // itself, so waiting for the program would fail ("No child processes") instead of
    // giving its exit status.
    let mut signals =
        SignalsInfo::<WithOrigin>::new(CAUGHT).context("installing signal handlers")?;
    let handle = signals.handle();
    let mut child = cmd.spawn().map_err(|e| {
        let code = match e.kind() {
            std::io::ErrorKind::NotFound => crate::exit_codes::NOT_FOUND,
            _ => crate::exit_codes::CANNOT_RUN,
        };
        crate::exit_codes::refuse(code, format!("cannot start {}: {e}", l.program.display()))
    })?;
    let pid = child.id();
    let target = Target::of(pid);
    // Any of the signals peakprof passes on, whenever it comes, also means "do not wait
    // for what the program leaves running": a supervisor sends one SIGTERM and then
    // SIGKILL, and a closed terminal sends one SIGHUP. Once the program has ended there is
    // nobody to pass them to.
    let program_ended = Arc::new(AtomicBool::new(false));
    let stop_waiting = Arc::new(AtomicBool::new(false));
    let forwarder = {
        let (ended, stop) = (program_ended.clone(), stop_waiting.clone());
        std::thread::spawn(move || {
            for origin in signals.forever() {
                if origin.signal == SIGCHLD {
                    continue;
                }
                stop.store(true, Ordering::Release);
                if !ended.load(Ordering::Acquire) && forwards(origin.signal, origin.cause) {
                    target.forward(origin.signal);
                }
            }
        })
    };
    let status = child.wait().context("waiting for the program")?;
    program_ended.store(true, Ordering::Release);
    wait_for_descendants(&stop_waiting, l.quiet);
    handle.close();
    let _ = forwarder.join();
    Ok(Finished {
        status: ExitStatus {
            code: status.code(),
            signal: status.signal(),
        },
        pid,
    })
}

/// How long the program's leftover processes may run before peakprof says it is waiting
/// for them.
const LEFTOVER_NOTICE: Duration = Duration::from_secs(2);

/// How long peakprof still waits for leftovers once told to stop: a Ctrl-C reaches the
/// whole foreground group, and children that clean up on it (a Python `KeyboardInterrupt`
/// handler) then end within moments, with a complete profile and exit code.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Reaps every remaining descendant (re-parented to us as their subreaper) until none is
/// left, or until [`STOP_GRACE`] after a signal set `stop` (Ctrl-C, a `kill`, now or while
/// the program ran): a daemon the program started may never end, and its profile is then
/// reported from its live files, as still running. After [`LEFTOVER_NOTICE`] of waiting
/// it names them, and what it stops waiting for (unless `quiet`).
fn wait_for_descendants(stop: &AtomicBool, quiet: bool) {
    let started = Instant::now();
    let mut told = quiet;
    let mut stopping: Option<Instant> = None;
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::NOHANG) {
            Ok(Some(_)) | Err(rustix::io::Errno::INTR) => continue,
            // Some left, none ended yet.
            Ok(None) => {
                if stopping.is_none() && stop.load(Ordering::Acquire) {
                    stopping = Some(Instant::now());
                }
                if stopping.is_some_and(|at| at.elapsed() >= STOP_GRACE) {
                    if !quiet {
                        let left = crate::proc_stat::children_of(std::process::id());
                        say_line(&leftover_notice(&left, false));
                    }
                    break;
                }
                if !told && stopping.is_none() && started.elapsed() >= LEFTOVER_NOTICE {
                    told = true;
                    say_line(&leftover_notice(
                        &crate::proc_stat::children_of(std::process::id()),
                        true,
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // ECHILD: nobody left to wait for.
            Err(_) => break,
        }
    }
}

/// What peakprof says about processes the program left running: that it waits for them
/// (`waiting`), or that it reports without them.
fn leftover_notice(left: &[(u32, String)], waiting: bool) -> String {
    const SHOWN: usize = 5;
    let mut named: Vec<String> = left
        .iter()
        .take(SHOWN)
        .map(|(pid, name)| format!("{pid} {}", crate::render::text::sanitize_line(name)))
        .collect();
    if left.len() > SHOWN {
        named.push(format!("{} more", left.len() - SHOWN));
    }
    let named = if named.is_empty() {
        "processes".to_string()
    } else {
        named.join(", ")
    };
    if waiting {
        format!(
            "peakprof: the program ended; waiting for what it left running ({named}). Ctrl-C or `kill {}` reports without waiting",
            std::process::id()
        )
    } else {
        format!("peakprof: not waiting for what the program left running ({named}): reported as still running")
    }
}

/// Where passed-on signals go: the program through a pidfd, which names that process and
/// no other, so a signal arriving after it was reaped (between `wait` and the forwarder's
/// end) cannot reach a process that reused its pid; by pid where the kernel has no pidfds
/// (before Linux 5.3).
enum Target {
    Pidfd(std::os::fd::OwnedFd, rustix::process::Pid),
    Pid(Option<rustix::process::Pid>),
}

impl Target {
    /// The program with `pid`, not yet waited for (so the pid is still its own).
    fn of(pid: u32) -> Self {
        let pid = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        let fd = pid.map(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()));
        match (pid, fd) {
            (Some(pid), Some(Ok(fd))) => Target::Pidfd(fd, pid),
            _ => Target::Pid(pid),
        }
    }

    fn forward(&self, sig: i32) {
        let Some(sig) = rustix::process::Signal::from_named_raw(sig) else {
            return;
        };
        let _ = match self {
            // Only a sandbox that allows pidfd_open but not pidfd_send_signal says ENOSYS;
            // ESRCH (the program was reaped) must not fall back to the pid.
            Target::Pidfd(fd, pid) => match rustix::process::pidfd_send_signal(fd, sig) {
                Err(rustix::io::Errno::NOSYS) => rustix::process::kill_process(*pid, sig),
                sent => sent,
            },
            Target::Pid(Some(pid)) => rustix::process::kill_process(*pid, sig),
            Target::Pid(None) => Ok(()),
        };
    }
}

/// The exit code peakprof itself returns for a program that ended with `status`.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code, status.signal) {
        (Some(c), _) => (c & 0xff) as u8,
        (None, Some(s)) => (128 + s).clamp(0, 255) as u8,
        (None, None) => crate::exit_codes::TOOL_FAILED,
    }
}

/// Bytes of the program name kept in a default directory name: with `peakprof-` and
/// `-<n>` around it, the name stays far below the 255 bytes a file name may have.
const PROGRAM_NAME_MAX: usize = 64;

/// The program name for default directory names: the file name of `argv[0]`, shortened
/// to `PROGRAM_NAME_MAX` bytes.
pub fn program_name(cmd: &OsStr) -> String {
    let name = Path::new(cmd)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "program".into());
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = if clean.is_empty() || clean.starts_with('.') {
        format!("program{clean}")
    } else {
        clean
    };
    // Every character is ASCII by now, so any byte count is a character boundary.
    name.truncate(PROGRAM_NAME_MAX);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_library_comes_first_in_ld_preload() {
        let v = ld_preload(Path::new("/c/libpp.so"), Some("libjemalloc.so".into()));
        assert_eq!(v, "/c/libpp.so:libjemalloc.so");
        assert_eq!(
            ld_preload(Path::new("/c/libpp.so"), Some("".into())),
            "/c/libpp.so"
        );
    }

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(
            exit_code(ExitStatus {
                code: Some(3),
                signal: None
            }),
            3
        );
        assert_eq!(
            exit_code(ExitStatus {
                code: None,
                signal: Some(9)
            }),
            137
        );
    }

    #[test]
    fn interrupt_and_quit_are_forwarded_only_when_a_process_sent_them() {
        use signal_hook::low_level::siginfo::Sent;
        for sig in [SIGINT, SIGQUIT] {
            assert!(forwards(sig, Cause::Sent(Sent::User)), "kill() {sig}");
            assert!(forwards(sig, Cause::Sent(Sent::Queue)), "sigqueue() {sig}");
            // The terminal's Ctrl-C / Ctrl-\: the program has its own copy.
            assert!(!forwards(sig, Cause::Kernel), "terminal {sig}");
        }
        for sig in [SIGTERM, SIGHUP] {
            assert!(forwards(sig, Cause::Sent(Sent::User)));
            assert!(forwards(sig, Cause::Kernel));
        }
    }

    #[test]
    fn signals_inherited_ignored_are_named_to_the_preload() {
        let status = "Name:\tsh\nSigPnd:\t0000000000000000\nSigBlk:\t0000000000000000\n\
                      SigIgn:\t0000000000000006\nSigCgt:\t0000000000010000\n";
        let ignored = sig_ign_mask(status).unwrap();
        // Bits 1 and 2: SIGINT (2) and SIGQUIT (3), as a background job of `sh -c` has them.
        assert_eq!(ignored, 0b110);
        assert_eq!(to_restore(ignored), 0b110);
        // nohup: SIGHUP (1); SIGUSR1 (10) is not peakprof's business (the program inherits
        // it ignored as it is), SIGPIPE (13) is (Rust's spawning resets it).
        assert_eq!(to_restore(1 | 1 << 12 | 1 << 9), 1 | 1 << 12);
        assert_eq!(to_restore(1 << 14), 1 << 14, "SIGTERM");
        assert_eq!(to_restore(1 << 16), 1 << 16, "SIGCHLD");
        assert_eq!(to_restore(0), 0);
        // The shared list, in signal_hook's (libc's) numbers.
        let mut caught = CAUGHT;
        caught.sort_unstable();
        assert_eq!(caught, [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGCHLD]);
        assert_eq!(SIGPIPE, signal_hook::consts::SIGPIPE);
        let mut restored = RESTORED.to_vec();
        restored.retain(|s| !CAUGHT.contains(s));
        assert_eq!(restored, [SIGPIPE]);
        assert_eq!(sig_ign_mask("Name:\tx\n"), None);
        assert_eq!(sig_ign_mask("SigIgn:\tzz\n"), None);
    }

    #[test]
    fn leftover_processes_are_named() {
        let left: Vec<(u32, String)> = (1..=7).map(|i| (100 + i, format!("d{i}"))).collect();
        assert_eq!(
            leftover_notice(&left[..2], true),
            format!(
                "peakprof: the program ended; waiting for what it left running (101 d1, 102 d2). \
                 Ctrl-C or `kill {}` reports without waiting",
                std::process::id()
            )
        );
        assert!(leftover_notice(&left, true)
            .contains("(101 d1, 102 d2, 103 d3, 104 d4, 105 d5, 2 more)"));
        assert_eq!(
            leftover_notice(&left[..1], false),
            "peakprof: not waiting for what the program left running (101 d1): \
             reported as still running"
        );
        assert!(leftover_notice(&[(9, "a\u{1b}[2Jb".to_string())], true).contains("(9 a"));
        assert!(!leftover_notice(&[(9, "a\u{1b}[2Jb".to_string())], true).contains('\u{1b}'));
    }

    #[test]
    fn program_names_are_safe_directory_names() {
        assert_eq!(program_name(OsStr::new("/usr/bin/python3")), "python3");
        assert_eq!(program_name(OsStr::new("./a b;c")), "a_b_c");
        assert_eq!(program_name(OsStr::new("..")), "program");
        assert_eq!(program_name(OsStr::new(".hidden")), "program.hidden");
        // A name as long as a file name may be: `peakprof-<name>-<n>` must still fit.
        let long = "a".repeat(250);
        assert_eq!(
            program_name(OsStr::new(&long)),
            "a".repeat(PROGRAM_NAME_MAX)
        );
        let long = format!(".{}", "é".repeat(120));
        let short = program_name(OsStr::new(&long));
        assert_eq!(short.len(), PROGRAM_NAME_MAX);
        assert!(short.starts_with("program._"), "{short}");
    }
}

//! The exec family. An image that execs never writes its final profile: the new program
//! takes the process over, and it may not be profiled at all (a static or set-user-ID
//! binary, or an environment without `LD_PRELOAD`). Each call marks the image's live file
//! before the real exec and takes the mark back if the exec fails, so its files read as
//! "replaced itself (exec)" rather than "killed".
//!
//! Each call also completes the new program's environment when it lacks the profiler's
//! settings ([`child_env`]): a child given an environment of its own is profiled too.
//! `posix_spawn` is not interposed for the same: glibc exports two versions of it (the
//! old one runs a script without `#!` through `/bin/sh`), and a definition here would
//! serve callers of both with the new one's behaviour, even under `--no-children`.
//!
//! glibc's own exec functions call its internal `execve`, not ours, so every entry point a
//! program may use is interposed: `execl`, `execlp` and `execle` too, which are variadic,
//! and built in `exec.c` (stable Rust cannot define a variadic function) behind the naked
//! trampolines below.

use core::ffi::{c_char, c_int};

use crate::real::Argv;
use crate::{child_env, environ, real, state};

/// Runs the real exec `call` between the mark and, when it returns (it failed), the
/// mark's removal.
fn marked(call: impl FnOnce() -> c_int) -> c_int {
    let mark = state::exec_starting();
    let r = call();
    if let Some(word) = mark {
        state::exec_failed(word);
    }
    r
}

/// Interposed `execve(2)`.
///
/// # Safety
/// As `execve(2)`.
#[no_mangle]
pub unsafe extern "C" fn execve(path: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: forwarding the caller's arguments to the real function, the environment
    // completed if it lacks the profiler's settings.
    marked(|| unsafe { child_env::with_completed(envp, |env| real::execve(path, argv, env)) })
}

/// Interposed `execv(3)`.
///
/// # Safety
/// As `execv(3)`.
#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: Argv) -> c_int {
    // SAFETY: forwarding the caller's arguments to the real function; with `environ`
    // completed, to `execve`, which is what `execv` is.
    marked(|| unsafe {
        child_env::completed(
            environ::array(),
            || real::execv(path, argv),
            |env| real::execve(path, argv, env),
        )
    })
}

/// Interposed `execvp(3)`.
///
/// # Safety
/// As `execvp(3)`.
#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: Argv) -> c_int {
    // SAFETY: forwarding the caller's arguments to the real function; with `environ`
    // completed, to `execvpe`, which is what `execvp` is.
    marked(|| unsafe {
        child_env::completed(
            environ::array(),
            || real::execvp(file, argv),
            |env| real::execvpe(file, argv, env),
        )
    })
}

/// Interposed `execvpe(3)`.
///
/// # Safety
/// As `execvpe(3)`.
#[no_mangle]
pub unsafe extern "C" fn execvpe(file: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: as in `execve`.
    marked(|| unsafe { child_env::with_completed(envp, |env| real::execvpe(file, argv, env)) })
}

/// Interposed `fexecve(3)`.
///
/// # Safety
/// As `fexecve(3)`.
#[no_mangle]
pub unsafe extern "C" fn fexecve(fd: c_int, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: as in `execve`.
    marked(|| unsafe { child_env::with_completed(envp, |env| real::fexecve(fd, argv, env)) })
}

/// Interposed `execveat(2)`.
///
/// # Safety
/// As `execveat(2)`.
#[no_mangle]
pub unsafe extern "C" fn execveat(
    dirfd: c_int,
    path: *const c_char,
    argv: Argv,
    envp: Argv,
    flags: c_int,
) -> c_int {
    // SAFETY: as in `execve`.
    marked(|| unsafe {
        child_env::with_completed(envp, |env| real::execveat(dirfd, path, argv, env, flags))
    })
}

extern "C" {
    /// exec.c: collect the variadic arguments into an argv and call `execve` or `execvp`
    /// above (through the internal names below).
    fn peakprof_execl(path: *const c_char, arg: *const c_char, ...) -> c_int;
    fn peakprof_execlp(file: *const c_char, arg: *const c_char, ...) -> c_int;
    fn peakprof_execle(path: *const c_char, arg: *const c_char, ...) -> c_int;
}

/// `execve` for exec.c, which cannot name this library's `execve` without risking a
/// binding to glibc's.
#[no_mangle]
extern "C" fn peakprof_execve_marked(path: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: exec.c passes its caller's path and environment and an argv it built.
    unsafe { execve(path, argv, envp) }
}

/// `execvp` for exec.c, as [`peakprof_execve_marked`].
#[no_mangle]
extern "C" fn peakprof_execvp_marked(file: *const c_char, argv: Argv) -> c_int {
    // SAFETY: as in `peakprof_execve_marked`.
    unsafe { execvp(file, argv) }
}

// The variadic entry points: a jump, so the C function receives the caller's registers
// and stack exactly as the caller left them (where a variadic callee looks for them).
macro_rules! variadic_trampoline {
    ($(#[$doc:meta])* $name:ident => $target:ident) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// As the C function of the same name.
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name() {
            // With an unwind entry, as the allocation hooks' trampolines.
            core::arch::naked_asm!(".cfi_startproc", "jmp {}", ".cfi_endproc", sym $target)
        }
    };
}

variadic_trampoline!(
    /// Interposed `execl(3)`.
    execl => peakprof_execl
);
variadic_trampoline!(
    /// Interposed `execlp(3)`.
    execlp => peakprof_execlp
);
variadic_trampoline!(
    /// Interposed `execle(3)`.
    execle => peakprof_execle
);

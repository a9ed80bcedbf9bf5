//! Signal handlers: a fatal signal is noted in the live file before the process dies of it
//! (the counters there are already current), and SIGUSR2 asks for a snapshot.
//!
//! Handlers are installed only where the program left the default action, so a program's
//! own handlers and ignored signals behave as before; a handler installed by the program
//! later simply replaces ours.

use core::ffi::c_int;

use crate::state;

/// Signals whose default action ends the process.
const FATAL: &[c_int] = &[
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGPIPE,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGALRM,
];

extern "C" fn on_fatal(sig: c_int) {
    state::mark_signal(sig);
    // SA_RESETHAND restored the default action; the re-raised signal is delivered when
    // this handler returns (a faulting instruction simply faults again), and the process
    // dies of the same signal as it would have without us.
    // SAFETY: raise is async-signal-safe.
    unsafe { libc::raise(sig) };
}

extern "C" fn on_snapshot(_sig: c_int) {
    state::request_snapshot();
}

fn install_if_default(sig: c_int, handler: extern "C" fn(c_int), flags: c_int) {
    // SAFETY: sigaction with valid pointers to zero-initialized plain C structs.
    unsafe {
        let mut old: libc::sigaction = core::mem::zeroed();
        if libc::sigaction(sig, core::ptr::null(), &mut old) != 0
            || old.sa_sigaction != libc::SIG_DFL
        {
            return;
        }
        let mut new: libc::sigaction = core::mem::zeroed();
        new.sa_sigaction = handler as usize;
        new.sa_flags = flags;
        libc::sigemptyset(&mut new.sa_mask);
        libc::sigaction(sig, &new, core::ptr::null_mut());
    }
}

/// Installs the handlers (from the constructor).
pub fn install() {
    for &sig in FATAL {
        install_if_default(sig, on_fatal, libc::SA_RESETHAND | libc::SA_ONSTACK);
    }
    install_if_default(libc::SIGUSR2, on_snapshot, libc::SA_RESTART);
}

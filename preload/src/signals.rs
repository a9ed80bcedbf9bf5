//! The program's signal dispositions: what it inherited, given back.
//!
//! No handlers of ours: a handler changes what the program sees and does (Python only
//! turns Ctrl-C into KeyboardInterrupt when SIGINT has its default action; Rust's runtime
//! skips its stack-overflow report when SIGSEGV has a handler; a signal whose default
//! action ends the program would no longer end it). None is needed either: the live
//! counters are current at every instant, so a crash needs no last-moment work, and a
//! running process is read from its live files (`peakprof report DIR -o NOW`) without
//! a signal. SIGUSR2 used to ask for a snapshot, which took its default action away.

use core::ffi::c_int;

/// Sets back to ignored the signals `peakprof run` inherited ignored (`mask`, bit `n - 1`
/// for signal `n`, from `PEAKPROF_IGNORED_SIGNALS`) and its program would not: those it
/// catches (four to survive and pass them on, SIGCHLD to be able to wait for its child),
/// which exec reset to the default action in this process, and SIGPIPE, which its process
/// spawning reset ([`peakprof::ignored_signals::RESTORED`]). Only where the action is still
/// the default (from start-up, before main): the program starts as without peakprof.
pub fn restore_ignored(mask: u64) {
    for sig in peakprof::ignored_signals::RESTORED {
        if mask & (1 << (sig - 1)) != 0 {
            ignore_if_default(sig);
        }
    }
}

/// Ignores `sig` if it still has the default action: whatever the program set stays.
fn ignore_if_default(sig: c_int) {
    // SAFETY: sigaction with valid pointers to zero-initialized plain C structs; the new
    // action is SIG_IGN, no handler.
    unsafe {
        let mut old: libc::sigaction = core::mem::zeroed();
        if libc::sigaction(sig, core::ptr::null(), &mut old) != 0
            || old.sa_sigaction != libc::SIG_DFL
        {
            return;
        }
        let mut new: libc::sigaction = core::mem::zeroed();
        new.sa_sigaction = libc::SIG_IGN;
        libc::sigemptyset(&mut new.sa_mask);
        libc::sigaction(sig, &new, core::ptr::null_mut());
    }
}

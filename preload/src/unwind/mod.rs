//! Stack capture: return addresses of the current thread, innermost first, without the
//! profiler's own frames.
//!
//! The fast path ([`fast`]) steps through frames with unwind rules cached per return
//! address; when it meets a frame it cannot handle it hands the whole capture to libgcc's
//! general unwinder ([`libgcc`]), so speed never costs correctness.

mod fast;
mod libgcc;
mod memo;
mod modules;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use modules::{forget_modules, fork_child, fork_parent, fork_prepare};

/// Deepest stack kept; deeper ones end with [`peakprof::format::TRUNCATED_FRAME`].
pub const MAX_DEPTH: usize = 128;

/// Runtime address range of this library's code, whose frames are skipped.
static SELF_START: AtomicU64 = AtomicU64::new(0);
static SELF_END: AtomicU64 = AtomicU64::new(0);

/// Remembers where this library's code lives.
pub fn set_self_range(start: u64, end: u64) {
    SELF_START.store(start, Ordering::Relaxed);
    SELF_END.store(end, Ordering::Relaxed);
}

#[inline]
fn self_range() -> (u64, u64) {
    (
        SELF_START.load(Ordering::Relaxed),
        SELF_END.load(Ordering::Relaxed),
    )
}

/// Checks every memo-assisted capture against a full walk (`PEAKPROF_CHECK_UNWIND=1`, for
/// tests): a difference aborts the program with a message.
static CHECK_MEMO: AtomicBool = AtomicBool::new(false);

/// Turns on [`CHECK_MEMO`].
pub fn set_check_memo(on: bool) {
    CHECK_MEMO.store(on, Ordering::Relaxed);
}

/// Fills `out` with the calling thread's return addresses (innermost first) and returns how
/// many were written. A stack deeper than `MAX_DEPTH` ends with the truncation marker.
#[inline(never)]
pub fn capture(out: &mut [u64; MAX_DEPTH + 1]) -> usize {
    let n = match fast::capture(out, true) {
        Some(n) => n,
        None => libgcc::capture(out),
    };
    if CHECK_MEMO.load(Ordering::Relaxed) {
        check_against_full_walk(&out[..n]);
    }
    n
}

#[cold]
#[inline(never)]
fn check_against_full_walk(got: &[u64]) {
    let mut full = [0u64; MAX_DEPTH + 1];
    let n = capture_with(Method::CachedNoMemo, &mut full);
    // Both walks skip this library's frames, so they agree word for word.
    if got != &full[..n] {
        const MSG: &[u8] =
            b"peakprof: PEAKPROF_CHECK_UNWIND: a memoized stack differs from a full walk\n";
        // SAFETY: writes a static buffer to stderr, then aborts (the check's whole point is
        // to fail loudly); neither allocates.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::abort();
        }
    }
}

/// Which unwinder [`capture_with`] uses (for the stack-capture benchmark).
#[derive(Clone, Copy)]
pub enum Method {
    /// Cached rules, memo of the previous capture, libgcc fallback (what the profiler uses).
    Cached,
    /// libgcc's `_Unwind_Backtrace` on every capture.
    Libgcc,
    /// Cached rules without the memo (every frame walked).
    CachedNoMemo,
}

/// Captures with a chosen method.
#[inline(never)]
pub fn capture_with(method: Method, out: &mut [u64; MAX_DEPTH + 1]) -> usize {
    match method {
        Method::Cached => capture(out),
        Method::Libgcc => libgcc::capture(out),
        Method::CachedNoMemo => fast::capture(out, false).unwrap_or_else(|| libgcc::capture(out)),
    }
}

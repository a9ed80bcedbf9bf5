//! Stack capture: return addresses of the current thread, innermost first, without the
//! profiler's own frames.
//!
//! The fast path ([`fast`]) steps through frames with unwind rules cached per return
//! address; when it meets a frame it cannot handle it hands the whole capture to libgcc's
//! general unwinder ([`libgcc`]), so speed never costs correctness.

mod fast;
mod libgcc;
mod modules;

use core::sync::atomic::{AtomicU64, Ordering};

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

/// Fills `out` with the calling thread's return addresses (innermost first) and returns how
/// many were written. A stack deeper than `MAX_DEPTH` ends with the truncation marker.
#[inline(never)]
pub fn capture(out: &mut [u64; MAX_DEPTH + 1]) -> usize {
    match fast::capture(out) {
        Some(n) => n,
        None => libgcc::capture(out),
    }
}

/// Which unwinder [`capture_with`] uses (for the stack-capture benchmark).
#[derive(Clone, Copy)]
pub enum Method {
    /// Cached rules with libgcc fallback (what the profiler uses).
    Cached,
    /// libgcc's `_Unwind_Backtrace` on every capture.
    Libgcc,
}

/// Captures with a chosen method.
#[inline(never)]
pub fn capture_with(method: Method, out: &mut [u64; MAX_DEPTH + 1]) -> usize {
    match method {
        Method::Cached => capture(out),
        Method::Libgcc => libgcc::capture(out),
    }
}

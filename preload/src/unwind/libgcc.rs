//! The general unwinder: libgcc's `_Unwind_Backtrace`, which interprets DWARF CFI for every
//! frame. Slow (microseconds per stack) but handles everything the fast path does not.

use core::ffi::{c_int, c_void};

use peakprof::format::TRUNCATED_FRAME;

use super::{self_range, Frames, MAX_DEPTH};

#[repr(C)]
struct UnwindContext {
    _private: [u8; 0],
}

type TraceFn = extern "C" fn(*mut UnwindContext, *mut c_void) -> c_int;

extern "C" {
    fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> c_int;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
}

const URC_NO_REASON: c_int = 0;
const URC_END_OF_STACK: c_int = 5;

struct Walk<'a> {
    out: &'a mut Frames,
    skip_lo: u64,
    skip_hi: u64,
    truncated: bool,
}

extern "C" fn step(ctx: *mut UnwindContext, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Walk` that `capture` passed to _Unwind_Backtrace, alive and
    // exclusively ours for the duration of the walk.
    let walk = unsafe { &mut *(arg as *mut Walk<'_>) };
    // SAFETY: `ctx` is the context the unwinder handed to this callback.
    let ip = unsafe { _Unwind_GetIP(ctx) } as u64;
    if ip == 0 {
        return URC_END_OF_STACK;
    }
    // Our own frames sit at the top of every stack: drop them until the first foreign one.
    if walk.out.len() == 0 && ip >= walk.skip_lo && ip < walk.skip_hi {
        return URC_NO_REASON;
    }
    if walk.out.len() == MAX_DEPTH {
        walk.truncated = true;
        return URC_END_OF_STACK;
    }
    walk.out.push(ip);
    URC_NO_REASON
}

/// Fills `out` with the calling thread's return addresses (innermost first) and returns how
/// many were written. A stack deeper than [`MAX_DEPTH`] ends with [`TRUNCATED_FRAME`].
#[inline(never)]
pub fn capture(out: &mut Frames) -> usize {
    out.clear();
    let (skip_lo, skip_hi) = self_range();
    let mut walk = Walk {
        out,
        skip_lo,
        skip_hi,
        truncated: false,
    };
    // SAFETY: `step` matches the callback ABI, and `walk` outlives the call.
    unsafe { _Unwind_Backtrace(step, (&mut walk as *mut Walk<'_>).cast()) };
    if walk.truncated {
        walk.out.push(TRUNCATED_FRAME);
    }
    walk.out.len()
}

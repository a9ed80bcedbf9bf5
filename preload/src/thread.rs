//! The hot per-thread state: tls.c's `struct peakprof_thread`, reached with one call per
//! hook and then read and written in place. Calls across the C boundary are not inlined,
//! and a hook used to make four (guard in and out, the sampling decision, the periodic
//! tick); one call and plain field accesses are measurably cheaper on `churn`.

use core::sync::atomic::{compiler_fence, Ordering};

/// Layout shared with tls.c.
#[repr(C)]
struct ThreadState {
    in_hook: i32,
    ticks_left: u32,
    sample_left: i64,
    sample_rng: u64,
}

extern "C" {
    fn peakprof_thread() -> *mut ThreadState;
    fn peakprof_should_sample(size: u64, rate: u64) -> i32;
}

/// Events between two periodic ticks of a thread.
const TICK_EVERY: u32 = 64;

/// The calling thread's state.
#[derive(Clone, Copy)]
pub struct Thread(*mut ThreadState);

impl Thread {
    /// The calling thread's state.
    #[inline]
    pub fn current() -> Thread {
        // SAFETY: returns the address of an initial-exec thread-local: valid for the
        // thread's life, reached without allocating.
        Thread(unsafe { peakprof_thread() })
    }

    /// Whether this thread is inside the profiler.
    #[inline]
    pub fn in_hook(self) -> bool {
        // SAFETY: `self.0` is this thread's state (a `Thread` is never sent elsewhere);
        // volatile because a signal handler on this thread reads it between our accesses.
        unsafe { core::ptr::read_volatile(&raw const (*self.0).in_hook) != 0 }
    }

    /// Marks this thread as inside the profiler or not. The fences keep the compiler from
    /// moving the profiler's work across the mark, which a signal handler relies on.
    #[inline]
    pub fn set_in_hook(self, inside: bool) {
        compiler_fence(Ordering::SeqCst);
        // SAFETY: as in `in_hook`.
        unsafe { core::ptr::write_volatile(&raw mut (*self.0).in_hook, i32::from(inside)) };
        compiler_fence(Ordering::SeqCst);
    }

    /// Sampled mode: whether an allocation of `size` bytes is sampled (Poisson by bytes,
    /// mean interval `rate`). The countdown is decided here; drawing the next interval is
    /// C's (it owns the random state).
    #[inline]
    pub fn should_sample(self, size: u64, rate: u64) -> bool {
        let s = size.min(i64::MAX as u64) as i64;
        // SAFETY: as in `in_hook`; only this thread touches its countdown.
        unsafe {
            let left = &raw mut (*self.0).sample_left;
            if *left > s {
                *left -= s;
                return false;
            }
            peakprof_should_sample(size, rate) != 0
        }
    }

    /// True once every [`TICK_EVERY`] calls on this thread: time for periodic work.
    #[inline]
    pub fn tick(self) -> bool {
        // SAFETY: as in `should_sample`.
        unsafe {
            let left = &raw mut (*self.0).ticks_left;
            if *left != 0 {
                *left -= 1;
                return false;
            }
            *left = TICK_EVERY - 1;
            true
        }
    }
}

//! The hot per-thread state: tls.c's `struct peakprof_thread`, reached from the thread
//! pointer (see [`TLS_OFFSET`]) and then read and written in place. Calls across the C
//! boundary are not inlined, and a hook used to make four (guard in and out, the sampling
//! decision, the periodic tick); no call and plain field accesses are measurably cheaper
//! on `churn` (sampled: 1.55x -> 1.35x together with the size tables' single pass).

use core::sync::atomic::{compiler_fence, AtomicUsize, Ordering};

/// Layout shared with tls.c.
#[repr(C)]
struct ThreadState {
    in_hook: i32,
    ticks_left: u32,
    sample_left: i64,
    sample_rng: u64,
    lane: u32,
    bias_serial: u32,
    stack_lo: usize,
    stack_hi: usize,
    memo_set: *mut crate::unwind::MemoSet,
    memo_policy: [u32; 2],
}

extern "C" {
    fn peakprof_thread() -> *mut ThreadState;
    fn peakprof_should_sample(size: u64, rate: u64) -> i32;
}

/// Where a thread's state lies relative to its thread pointer; 0 until first asked.
/// The state is an initial-exec thread-local of this library, so it sits at the same offset
/// from every thread's pointer (that is what initial-exec means): after one call into C,
/// hooks reach it with one load of `%fs:0` and an add, as C code itself would.
static TLS_OFFSET: AtomicUsize = AtomicUsize::new(0);

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn thread_pointer() -> usize {
    let tp: usize;
    // SAFETY: on x86-64 Linux the first word of the thread control block, at %fs:0, holds
    // the thread pointer itself (the TLS ABI requires it); reading it has no side effects.
    unsafe {
        core::arch::asm!(
            "mov {}, qword ptr fs:[0]",
            out(reg) tp,
            options(nostack, readonly, preserves_flags, pure)
        );
    }
    tp
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
        #[cfg(target_arch = "x86_64")]
        {
            let off = TLS_OFFSET.load(Ordering::Relaxed);
            if off != 0 {
                return Thread(thread_pointer().wrapping_add(off) as *mut ThreadState);
            }
        }
        Self::current_from_c()
    }

    #[cold]
    fn current_from_c() -> Thread {
        // SAFETY: returns the address of an initial-exec thread-local: valid for the
        // thread's life, reached without allocating.
        let p = unsafe { peakprof_thread() };
        #[cfg(target_arch = "x86_64")]
        TLS_OFFSET.store(
            (p as usize).wrapping_sub(thread_pointer()),
            Ordering::Relaxed,
        );
        Thread(p)
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

    /// This thread's lane word (see `crate::lanes`).
    #[inline(always)]
    pub fn lane(self) -> u32 {
        // SAFETY: as in `should_sample`.
        unsafe { (*self.0).lane }
    }

    /// Sets this thread's lane word.
    #[inline]
    pub fn set_lane(self, lane: u32) {
        // SAFETY: as in `should_sample`.
        unsafe { (*self.0).lane = lane }
    }

    /// This thread's serial for biased locks, or 0 before [`Self::bias_serial`] gave it
    /// one.
    #[inline(always)]
    pub fn bias_serial_if_any(self) -> u32 {
        // SAFETY: as in `should_sample`.
        unsafe { (*self.0).bias_serial }
    }

    /// This thread's serial for biased locks (see `crate::biased`), given on first use.
    #[inline]
    pub fn bias_serial(self) -> u32 {
        let serial = self.bias_serial_if_any();
        if serial != 0 {
            return serial;
        }
        let serial = crate::biased::new_serial();
        // SAFETY: as in `should_sample`.
        unsafe { (*self.0).bias_serial = serial };
        serial
    }

    /// The bounds of this thread's stack: 0/0 until known, 1/1 when they cannot be known
    /// (see `crate::unwind`).
    #[inline(always)]
    pub fn stack_bounds(self) -> (usize, usize) {
        // SAFETY: as in `should_sample`.
        unsafe { ((*self.0).stack_lo, (*self.0).stack_hi) }
    }

    /// Sets the bounds of this thread's stack.
    #[inline]
    pub fn set_stack_bounds(self, lo: usize, hi: usize) {
        // SAFETY: as in `should_sample`.
        unsafe { ((*self.0).stack_lo, (*self.0).stack_hi) = (lo, hi) }
    }

    /// This thread's memo set, null until tls.c hands one out (`peakprof_memos`).
    #[inline(always)]
    pub fn memo_set(self) -> *mut crate::unwind::MemoSet {
        // SAFETY: as in `should_sample`.
        unsafe { (*self.0).memo_set }
    }

    /// This thread's memo policy words (see `crate::unwind`'s memo).
    #[inline(always)]
    pub fn memo_policy(self) -> *mut [u32; 2] {
        // SAFETY: as in `should_sample`; a pointer, not a reference: the caller decides
        // how long its access lasts.
        unsafe { &raw mut (*self.0).memo_policy }
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

/// The natural logarithm for tls.c's sampling intervals, so that the library needs no
/// libm (see the `libm` dependency).
#[no_mangle]
extern "C" fn peakprof_ln(x: f64) -> f64 {
    libm::log(x)
}

#[cfg(test)]
mod tests {
    use super::ThreadState;

    extern "C" {
        fn peakprof_thread_layout(memo_policy_offset: *mut u64) -> u64;
    }

    #[test]
    fn thread_state_is_laid_out_as_in_tls_c() {
        let mut policy_offset = 0;
        // SAFETY: a valid out-pointer; the C side writes it and returns a size.
        let size = unsafe { peakprof_thread_layout(&mut policy_offset) };
        assert_eq!(size, core::mem::size_of::<ThreadState>() as u64);
        assert_eq!(
            policy_offset,
            core::mem::offset_of!(ThreadState, memo_policy) as u64
        );
    }
}

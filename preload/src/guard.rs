//! Reentrancy guard and errno preservation.
//!
//! The guard is set while a thread is inside a hook *and* while it calls the real allocator,
//! so that allocations made by the profiler itself, or mmaps an allocator makes internally,
//! pass straight through instead of being counted twice (or recursing forever).

use core::ffi::c_int;

use crate::thread::Thread;

/// Held while the current thread is inside the profiler.
pub struct Guard(Thread);

impl Guard {
    /// Enters the profiler, or returns `None` when this thread already is inside it.
    #[inline]
    pub fn enter() -> Option<Guard> {
        let t = Thread::current();
        if t.in_hook() {
            return None;
        }
        t.set_in_hook(true);
        Some(Guard(t))
    }

    /// The thread's state, for the hook's other per-thread decisions.
    #[inline]
    pub fn thread(&self) -> Thread {
        self.0
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        self.0.set_in_hook(false);
    }
}

/// The calling thread's errno.
#[inline]
pub fn errno() -> c_int {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's errno.
#[inline]
pub fn set_errno(e: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = e }
}

/// Runs `f` and leaves errno as it was before: the program must see the errno of the real
/// function it called, never one from the profiler's own bookkeeping.
#[inline]
pub fn keep_errno<R>(f: impl FnOnce() -> R) -> R {
    let e = errno();
    let r = f();
    set_errno(e);
    r
}

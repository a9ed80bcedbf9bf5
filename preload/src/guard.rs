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

/// Holds off thread cancellation while it lives. The profiler's own I/O (open, read,
/// write, close: cancellation points) runs inside hooks, often with the profiler's lock
/// held: a `pthread_cancel` acted on there would unwind the thread out of the hook and
/// leave the lock held, and every other thread would wait for it forever. A cancellation
/// requested meanwhile stays pending and is acted on at the program's next cancellation
/// point. Only on the rare paths that do I/O: two calls into libc each.
pub struct NoCancel(c_int);

/// glibc's `PTHREAD_CANCEL_DISABLE` (the libc crate does not export the call on Linux).
const PTHREAD_CANCEL_DISABLE: c_int = 1;

extern "C" {
    fn pthread_setcancelstate(state: c_int, oldstate: *mut c_int) -> c_int;
}

impl NoCancel {
    /// Disables cancellation until dropped (then restores the state found).
    pub fn new() -> NoCancel {
        let mut old = 0;
        // SAFETY: sets this thread's cancellation state; `old` receives the previous one.
        unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old) };
        NoCancel(old)
    }
}

impl Drop for NoCancel {
    fn drop(&mut self) {
        let mut ignored = 0;
        // SAFETY: restores the state `new` found.
        unsafe { pthread_setcancelstate(self.0, &mut ignored) };
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
/// function it called, never one from the profiler's own bookkeeping. errno's address is
/// asked once (it is the thread's for good): the compiler cannot merge the two calls that
/// [`errno`] and [`set_errno`] would make (sqlite3: ~0.3% of the profiled run was in
/// `__errno_location`).
#[inline]
pub fn keep_errno<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno,
    // which stays valid while the thread runs.
    let at = unsafe { libc::__errno_location() };
    // SAFETY: as above.
    let e = unsafe { *at };
    let r = f();
    // SAFETY: as above (the same thread: `f` runs on it).
    unsafe { *at = e };
    r
}

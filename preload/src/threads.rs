//! Whether the process has a single thread, as glibc itself tracks it.
//!
//! `__libc_single_threaded` (glibc 2.32+) is true until the first `pthread_create` and never
//! becomes true again in that process. glibc's own malloc skips its arena locks on the same
//! flag, so relying on it costs no generality: a program that makes threads behind glibc's
//! back already breaks glibc's malloc. While it holds, the profiler's lock and the ordering
//! rules that exist only for other threads can be skipped.

use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

/// Address of `__libc_single_threaded`; null when this glibc does not have it (then every
/// process counts as multi-threaded).
static FLAG: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());

/// Finds the flag (start-up, before any hook records).
pub fn init() {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name; it returns the symbol's
    // address or null.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr()) };
    FLAG.store(p.cast(), Ordering::Release);
}

/// True only while no second thread has ever been created. When this returns true on a
/// thread, no other thread exists, and none can appear before this thread itself calls
/// `pthread_create`.
#[inline(always)]
pub fn single() -> bool {
    let p = FLAG.load(Ordering::Relaxed);
    if p.is_null() {
        return false;
    }
    // SAFETY: `p` is the address of glibc's `char __libc_single_threaded`, valid and
    // aligned for the life of the process; only glibc writes it (false, when a thread is
    // created, before the new thread runs), so a relaxed atomic byte load is sound.
    unsafe { AtomicU8::from_ptr(p) }.load(Ordering::Relaxed) != 0
}

//! A futex mutex that never allocates and can be reset in a forked child.
//!
//! `std::sync::Mutex` cannot be forcibly released, and a child forked while another thread
//! held the lock would deadlock on its first allocation.
//!
//! `Lock<T, true>` is a spin lock instead (yielding the CPU when spinning fails, then
//! sleeping briefly) for locks
//! that are almost never contended: its release is a plain store, where the futex lock's
//! must swap to learn whether to wake a sleeper. On x86 that is one locked instruction
//! fewer per critical section (sampled mode's size tables take one per malloc and free).

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
/// Locked, and another thread may be asleep waiting for it.
const CONTENDED: u32 = 2;

/// A value behind a futex lock (`SPIN`: a spin lock, see the module's comment).
pub struct Lock<T, const SPIN: bool = false> {
    state: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` only happens through a `LockGuard`, and at most one guard
// exists at a time (the state machine below admits one owner).
unsafe impl<T: Send, const SPIN: bool> Sync for Lock<T, SPIN> {}

/// Exclusive access to the locked value.
pub struct LockGuard<'a, T, const SPIN: bool = false> {
    lock: &'a Lock<T, SPIN>,
    /// Whether the lock word was taken (not when the process had one thread).
    taken: bool,
}

fn futex(word: &AtomicU32, op: libc::c_int, val: u32) {
    // SAFETY: `word` is a valid, aligned 32-bit atomic for the duration of the call; the
    // private futex ops only compare and wait on / wake that word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op | libc::FUTEX_PRIVATE_FLAG,
            val,
            core::ptr::null::<libc::timespec>(),
        );
    }
}

impl<T, const SPIN: bool> Lock<T, SPIN> {
    /// An unlocked lock.
    pub const fn new(value: T) -> Self {
        Self {
            state: AtomicU32::new(UNLOCKED),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, sleeping while another thread holds it. In a single-threaded
    /// process the lock word is left alone: two atomic read-modify-writes per event are a
    /// measurable part of a hook's cost, and with no other thread there is nothing to
    /// exclude (this thread cannot create one while it holds the guard, and the hooks'
    /// reentrancy guard keeps signal handlers out).
    #[inline]
    pub fn lock(&self) -> LockGuard<'_, T, SPIN> {
        self.lock_knowing(crate::threads::single())
    }

    /// [`Self::lock`] for a caller that already asked [`crate::threads::single`] during
    /// this hook (the answer cannot change while the hook runs).
    #[inline]
    pub fn lock_knowing(&self, single: bool) -> LockGuard<'_, T, SPIN> {
        if single {
            return self.guard(false);
        }
        if !take(&self.state) {
            self.lock_slow();
        }
        self.guard(true)
    }

    /// Takes the lock if it is free right now, else `None` (never waits).
    #[inline]
    pub fn try_lock(&self) -> Option<LockGuard<'_, T, SPIN>> {
        if crate::threads::single() {
            return Some(self.guard(false));
        }
        // Not `then_some(self.guard(true))`: that builds the guard even when the lock is
        // someone else's, and dropping it would release their lock.
        take(&self.state).then(|| self.guard(true))
    }

    /// The guard of a lock this thread now owns (`taken`: whether it holds the lock word).
    #[inline]
    fn guard(&self, taken: bool) -> LockGuard<'_, T, SPIN> {
        LockGuard { lock: self, taken }
    }

    #[cold]
    fn lock_slow(&self) {
        if SPIN {
            return spin_lock_slow(&self.state);
        }
        if spin_until(|| try_take(&self.state)) {
            return;
        }
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            futex(&self.state, libc::FUTEX_WAIT, CONTENDED);
        }
    }

    /// Marks the lock free without a guard. Only for a freshly forked child, where the
    /// thread that held it no longer exists.
    pub fn reset_after_fork(&self) {
        self.state.store(UNLOCKED, Ordering::Release);
    }

    /// Releases a lock whose guard was forgotten (fork's prepare/parent handlers).
    #[inline]
    pub fn force_unlock(&self) {
        if SPIN {
            // Nobody sleeps on a spin lock: nothing to wake, so no need to read the word.
            self.state.store(UNLOCKED, Ordering::Release);
        } else if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            futex(&self.state, libc::FUTEX_WAKE, 1);
        }
    }
}

/// Takes a spin-lock word (0 free, 1 held; released by storing 0), as `Lock<T, true>`
/// does (`crate::biased` keeps a word of its own).
#[inline]
pub fn spin_lock(word: &AtomicU32) {
    if !take(word) {
        spin_lock_slow(word);
    }
}

/// [`spin_lock`] when the word was held: spins, then yields and sleeps.
#[cold]
fn spin_lock_slow(word: &AtomicU32) {
    wait_until(|| try_take(word));
}

/// Takes the lock word if it is free right now (one compare-and-swap).
#[inline(always)]
fn take(word: &AtomicU32) -> bool {
    word.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

/// [`take`] for a waiter: reads the word first, so that waiters do not write its line.
fn try_take(word: &AtomicU32) -> bool {
    word.load(Ordering::Relaxed) == UNLOCKED && take(word)
}

/// Spins briefly until `done` (critical sections are short); true when it came.
fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        core::hint::spin_loop();
        if done() {
            return true;
        }
    }
    false
}

/// Waits until `done` for another thread to let go: spins, then yields and sleeps between
/// spins (see [`back_off`]).
#[cold]
pub fn wait_until(mut done: impl FnMut() -> bool) {
    let mut rounds = 0u32;
    while !spin_until(&mut done) {
        back_off(&mut rounds);
    }
}

/// One round of waiting for another thread (called again while still waiting; `rounds`
/// counts them): a yield at first, then short sleeps.
fn back_off(rounds: &mut u32) {
    *rounds = rounds.saturating_add(1);
    if *rounds < 64 {
        // The holder may be waiting for this CPU (more threads than cores).
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
        return;
    }
    // Still held: the holder may be a lower-priority thread that a yield never lets run
    // (real-time threads on one core). A short sleep does: the raw system call, as
    // `nanosleep(3)` is a cancellation point (a thread cancelled here would unwind
    // through the hooks holding locks), and with errno kept (the hooks' lock-free paths
    // promise to keep it).
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: 50_000,
    };
    crate::guard::keep_errno(|| {
        // SAFETY: a valid timespec; the remainder pointer may be null.
        unsafe {
            libc::syscall(
                libc::SYS_nanosleep,
                &pause as *const libc::timespec,
                core::ptr::null_mut::<libc::timespec>(),
            )
        }
    });
}

impl<T, const SPIN: bool> Drop for LockGuard<'_, T, SPIN> {
    #[inline]
    fn drop(&mut self) {
        if self.taken {
            self.lock.force_unlock();
        }
    }
}

impl<T, const SPIN: bool> Deref for LockGuard<'_, T, SPIN> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves exclusive ownership of the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T, const SPIN: bool> DerefMut for LockGuard<'_, T, SPIN> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves exclusive ownership of the lock.
        unsafe { &mut *self.lock.value.get() }
    }
}

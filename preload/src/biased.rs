//! A lock its one regular user takes without a locked instruction.
//!
//! Sampled mode's size tables are sharded by arena, so nearly every shard is only ever
//! taken by one thread; yet each malloc and free paid a compare-and-swap for its shard
//! (perf, 4-thread churn: 38-45% of the two table paths' samples on that instruction,
//! though much of that was the tables' own cache misses waiting behind it: without it,
//! interleaved runs went 1.312x -> 1.288x, CPU time 1.288x -> 1.275x).
//! A biased lock has an *owner*, the first thread that takes it once threads exist. The
//! owner enters by raising a flag of its own (`busy`, a plain store) and checking that it
//! still owns the lock; everyone else takes the ordinary spin lock and then makes sure the
//! owner is out: it withdraws the bias, forces a full memory barrier onto every thread of
//! the process (`membarrier(2)`, private expedited: the barrier the owner's store and load
//! lack) and waits for the owner's flag to drop. This is the asymmetric Dekker handshake
//! that userspace RCU and folly's asymmetric barriers rest on: after the barrier, either the
//! owner's flag is visible to the other thread, or the owner's check sees the bias gone.
//!
//! A lock that a second thread took is *revoked*: an ordinary lock again, until its first
//! owner has taken it [`REBIAS_AFTER`] times in a row, which then owns it again. Threads do
//! touch each other's arenas now and then (each new thread of 4-thread churn made an
//! allocation or two in the main arena and in a sibling's before settling in its own); a
//! block freed by another thread than its allocator's every time must not cost a system
//! call each. Only the first owner, never another thread: `busy` must have one writer. An
//! owner that read "mine" and was then preempted before raising its flag still raises and
//! lowers it when it resumes; had the bias gone to another thread meanwhile, that lowering
//! would clear the new owner's flag while it is inside (a reviewer's interleaving).
//! Holders of every lock at once (fork, making sampled mode's total exact, writing a
//! profile) only *pause* the owners and restore them when they let go. Revocations cost
//! one `membarrier` each; pauses one per batch.
//!
//! Without `membarrier` (old kernels, seccomp filters) nothing becomes an owner and each
//! lock is the plain spin lock it was.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{compiler_fence, fence, AtomicBool, AtomicU32, Ordering};

use crate::lock::{spin_lock, wait_until};
use crate::thread::Thread;

/// Set on the owner's serial while a holder of every lock keeps the owner out.
const PAUSED: u32 = 1 << 31;
/// No owner yet. Not 0, the serial of a thread that has none yet, so that the owner's
/// check needs no other test.
const NONE: u32 = PAUSED - 1;
/// Owned no more: an ordinary lock, until a streak (see [`REBIAS_AFTER`]).
const REVOKED: u32 = PAUSED - 2;
/// Thread serials run from 1 to this.
const MAX_SERIAL: u32 = PAUSED - 3;
/// Takes of a revoked lock in a row by its first owner that make it that thread's again. A
/// revocation costs a `membarrier` (microseconds: interrupts to the CPUs running the
/// process's other threads), so threads that take turns at a lock pay at most this share
/// of one per take.
const REBIAS_AFTER: u32 = 1024;

const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// Locks may become owned: `membarrier` works in this process.
static ON: AtomicBool = AtomicBool::new(false);
/// The next thread serial.
static NEXT_SERIAL: AtomicU32 = AtomicU32::new(1);

/// `membarrier(cmd, 0, 0)`: its result (a bit set for the query, else 0 on success).
fn membarrier(cmd: libc::c_long) -> libc::c_long {
    // SAFETY: membarrier takes no pointers; an unknown or refused command only fails.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    }
}

/// Lets locks become owned when this process can force barriers onto its threads (at
/// start-up; the registration carries over `fork`). Returns whether they may.
pub fn enable() -> bool {
    let supported = membarrier(MEMBARRIER_CMD_QUERY);
    let on = supported > 0
        && supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED != 0
        && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
    ON.store(on, Ordering::Relaxed);
    on
}

/// A new thread serial (see [`Thread::bias_serial`]); 0, which owns nothing, once 2^31
/// threads have had one.
#[cold]
pub fn new_serial() -> u32 {
    NEXT_SERIAL
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, serial_after)
        .unwrap_or(0)
}

/// What [`NEXT_SERIAL`] holds after handing out `n`; `None` once serials ran out.
fn serial_after(n: u32) -> Option<u32> {
    // Not `then_some(n + 1)`: that adds before it tests, and overflows at u32::MAX.
    if n <= MAX_SERIAL {
        Some(n + 1)
    } else {
        None
    }
}

/// A full memory barrier on every running thread of the process (and this one).
#[cold]
fn barrier_on_every_thread() {
    // The caller's store to `owner` comes before the barrier (the system call would keep
    // it there anyway, being opaque to the compiler; this says so, at no cost here).
    fence(Ordering::SeqCst);
    crate::guard::keep_errno(|| {
        // The global command needs no registration (slower; only if the expedited one
        // were ever refused after registering, which the kernel does not do).
        if membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0
            && membarrier(MEMBARRIER_CMD_GLOBAL) != 0
        {
            crate::unwind::check_failed(b"membarrier failed after registering");
        }
    });
}

/// A value behind a biased spin lock (see the module's comment), on a cache line of its
/// own: its owner writes the line on every entry.
#[repr(align(64))]
pub struct BiasedLock<T> {
    /// The spin-lock word of everyone but the owner (0 free, 1 held).
    word: AtomicU32,
    /// The owner is inside (entered without `word`).
    busy: AtomicU32,
    /// [`NONE`], the owner's serial (with [`PAUSED`] while paused), or [`REVOKED`].
    /// Changed only with `word` held.
    owner: AtomicU32,
    /// The lock's first owner (0 while it has had none): the one thread that ever writes
    /// `busy`, and the only one a revoked lock goes back to. Changed only with `word` held.
    first_owner: AtomicU32,
    /// How many times in a row the first owner took the revoked lock (`word` held).
    streak: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is only reached through a guard, and at most one guard exists at a
// time: the word admits one holder, the owner enters only while its flag is up and its
// bias stands, and a holder of the word ends or pauses the bias and waits for the flag
// before it goes on (see the module's comment).
unsafe impl<T: Send> Sync for BiasedLock<T> {}

/// Exclusive access to a biased lock's value.
pub struct BiasedGuard<'a, T> {
    lock: &'a BiasedLock<T>,
    /// The word to store 0 in when done: the lock's `busy` (the owner) or `word`; none
    /// when the process had one thread.
    release: Option<&'a AtomicU32>,
}

impl<T> BiasedLock<T> {
    /// An unlocked lock with no owner.
    pub const fn new(value: T) -> Self {
        Self {
            word: AtomicU32::new(0),
            busy: AtomicU32::new(0),
            owner: AtomicU32::new(NONE),
            first_owner: AtomicU32::new(0),
            streak: AtomicU32::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock on thread `t`, which may know that it is the process's only thread
    /// (`single`: nothing to exclude, as in `Lock::lock_knowing`).
    #[inline]
    pub fn lock(&self, t: Thread, single: bool) -> BiasedGuard<'_, T> {
        if single {
            return self.lock_alone();
        }
        let me = t.bias_serial_if_any();
        if self.owner.load(Ordering::Relaxed) == me {
            self.busy.store(1, Ordering::Relaxed);
            // No fence between the flag and the check: the thread that takes the bias away
            // makes one for this thread with `membarrier`. The compiler must not reorder
            // them either. Acquire: a pause's end publishes what its holder wrote.
            compiler_fence(Ordering::SeqCst);
            if self.owner.load(Ordering::Acquire) == me {
                return self.guard(Some(&self.busy));
            }
            self.busy.store(0, Ordering::Release);
        }
        self.lock_by_word(t.bias_serial())
    }

    /// [`Self::lock`] for a caller that knows the process has no other thread: nothing to
    /// exclude, so neither word nor flag is touched.
    #[inline]
    pub fn lock_alone(&self) -> BiasedGuard<'_, T> {
        self.guard(None)
    }

    /// [`Self::lock`] through the word: takes the bias when there is no owner (or, as the
    /// first owner, after a streak), ends another thread's.
    #[inline(never)]
    fn lock_by_word(&self, me: u32) -> BiasedGuard<'_, T> {
        spin_lock(&self.word);
        let may_own = me != 0 && ON.load(Ordering::Relaxed);
        match self.owner.load(Ordering::Relaxed) {
            NONE => {
                if may_own {
                    self.first_owner.store(me, Ordering::Relaxed);
                    self.owner.store(me, Ordering::Relaxed);
                }
            }
            REVOKED => {
                if may_own && self.count_streak(me) >= REBIAS_AFTER {
                    self.owner.store(me, Ordering::Relaxed);
                }
            }
            owner if owner == me => {}
            _ => {
                // Pauses end before their holder lets the word go, so this is a live
                // bias (or a dead thread's): withdraw it.
                self.owner.store(REVOKED, Ordering::Relaxed);
                barrier_on_every_thread();
                self.wait_for_owner();
                self.streak.store(0, Ordering::Relaxed);
            }
        }
        self.guard(Some(&self.word))
    }

    /// Counts a take of the revoked lock by `me` (the word held): how many times in a row
    /// the first owner took it (0 when `me` is another thread, which breaks the streak).
    fn count_streak(&self, me: u32) -> u32 {
        let n = if self.first_owner.load(Ordering::Relaxed) == me {
            self.streak.load(Ordering::Relaxed).saturating_add(1)
        } else {
            0
        };
        self.streak.store(n, Ordering::Relaxed);
        n
    }

    /// Waits until the owner is not inside (after withdrawing or pausing its bias and a
    /// barrier on every thread).
    fn wait_for_owner(&self) {
        if self.busy.load(Ordering::Acquire) != 0 {
            wait_until(|| self.busy.load(Ordering::Acquire) == 0);
        }
    }

    #[inline]
    fn guard<'a>(&'a self, release: Option<&'a AtomicU32>) -> BiasedGuard<'a, T> {
        BiasedGuard {
            lock: self,
            release,
        }
    }

    /// Ends a pause (the word held).
    fn resume_owner(&self) {
        let owner = self.owner.load(Ordering::Relaxed);
        if owner & PAUSED != 0 {
            self.owner.store(owner & !PAUSED, Ordering::Release);
        }
    }

    /// In a freshly forked child, where only the forking thread is left: the lock is free
    /// and has had no owner (the next thread to take it owns it, this one included).
    pub fn reset_after_fork(&self) {
        self.word.store(0, Ordering::Relaxed);
        self.owner.store(NONE, Ordering::Relaxed);
        self.first_owner.store(0, Ordering::Relaxed);
        self.busy.store(0, Ordering::Relaxed);
        self.streak.store(0, Ordering::Relaxed);
    }

    #[cfg(test)]
    fn owner(&self) -> u32 {
        self.owner.load(Ordering::Relaxed)
    }
}

/// Every lock of an array held (see [`lock_all`]).
pub struct AllLocked<'a, T, const N: usize> {
    locks: &'a [BiasedLock<T>; N],
    /// The words were taken (the process had threads).
    taken: bool,
}

/// Takes every lock of `locks`, in order, on thread `t`: their owners are paused (one
/// barrier for all) until the result goes.
pub fn lock_all<T, const N: usize>(locks: &[BiasedLock<T>; N], t: Thread) -> AllLocked<'_, T, N> {
    let taken = !crate::threads::single();
    if taken {
        let me = t.bias_serial_if_any();
        let mut paused = false;
        for l in locks {
            spin_lock(&l.word);
            let owner = l.owner.load(Ordering::Relaxed);
            if owner != NONE && owner != REVOKED && owner != me {
                l.owner.store(owner | PAUSED, Ordering::Relaxed);
                paused = true;
            }
        }
        if paused {
            barrier_on_every_thread();
            for l in locks {
                if l.owner.load(Ordering::Relaxed) & PAUSED != 0 {
                    l.wait_for_owner();
                }
            }
        }
    }
    AllLocked { locks, taken }
}

impl<'a, T, const N: usize> AllLocked<'a, T, N> {
    /// The locked values, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        // SAFETY: every lock is held while `self` lives (see `lock_all`).
        self.locks.iter().map(|l| unsafe { &*l.value.get() })
    }

    /// The locked values, in order, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        // SAFETY: as in `iter`; `&mut self` makes these the only references.
        self.locks.iter().map(|l| unsafe { &mut *l.value.get() })
    }

    /// Lets go of every lock without this value (fork's parent handler, after the
    /// prepare handler forgot it): owners resume, words are released.
    pub fn release_forgotten(locks: &[BiasedLock<T>; N]) {
        for l in locks {
            l.resume_owner();
            l.word.store(0, Ordering::Release);
        }
    }
}

impl<T, const N: usize> Drop for AllLocked<'_, T, N> {
    fn drop(&mut self) {
        if self.taken {
            Self::release_forgotten(self.locks);
        }
    }
}

impl<T> Drop for BiasedGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if let Some(word) = self.release {
            word.store(0, Ordering::Release);
        }
    }
}

impl<T> Deref for BiasedGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard proves exclusive access (see `BiasedLock`'s Sync).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for BiasedGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`.
        unsafe { &mut *self.lock.value.get() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    /// A read-modify-write with room for another thread to come between the read and
    /// the write, so that two threads inside at once lose an increment.
    fn slow_increment(v: &mut u64) {
        let old = black_box(*v);
        for _ in 0..black_box(20) {
            core::hint::spin_loop();
        }
        *v = old + 1;
    }

    const ROUNDS: u64 = 200_000;

    #[test]
    fn owners_and_a_holder_of_every_lock_exclude_each_other() {
        assert!(enable(), "membarrier is not available here");
        let locks: [BiasedLock<u64>; 2] = [BiasedLock::new(0), BiasedLock::new(0)];
        let batches = 2_000;
        let owners = std::thread::scope(|s| {
            let users: Vec<_> = (0..2)
                .map(|i| {
                    let locks = &locks;
                    s.spawn(move || {
                        let t = Thread::current();
                        for _ in 0..ROUNDS {
                            slow_increment(&mut locks[i].lock(t, false));
                        }
                        t.bias_serial()
                    })
                })
                .collect();
            s.spawn(|| {
                for _ in 0..batches {
                    let mut all = lock_all(&locks, Thread::current());
                    for v in all.iter_mut() {
                        slow_increment(v);
                    }
                }
            });
            users
                .into_iter()
                .map(|u| u.join().unwrap())
                .collect::<Vec<_>>()
        });
        // Pauses end: each lock is still its first user's (a holder of every lock takes
        // no bias).
        assert_eq!(vec![locks[0].owner(), locks[1].owner()], owners);
        let t = Thread::current();
        for l in &locks {
            assert_eq!(*l.lock(t, false), ROUNDS + batches);
        }
    }

    /// Whether `lock`'s guard for `t` entered by the owner's flag.
    fn enters_by_flag(lock: &BiasedLock<u64>, t: Thread) -> bool {
        core::ptr::eq(lock.lock(t, false).release.unwrap(), &lock.busy)
    }

    #[test]
    fn a_second_user_revokes_the_bias_and_only_the_first_owner_gets_it_back() {
        assert!(enable(), "membarrier is not available here");
        let lock = BiasedLock::new(0u64);
        let t = Thread::current();
        // The first user owns it, and enters by its flag from then on.
        drop(lock.lock(t, false));
        assert_eq!(lock.owner(), t.bias_serial());
        assert!(enters_by_flag(&lock, t));
        // Two more threads take it while the owner does: each take of theirs that finds
        // the bias back ends it while the owner may be inside.
        std::thread::scope(|s| {
            for _ in 0..2 {
                let lock = &lock;
                s.spawn(move || {
                    let t = Thread::current();
                    for _ in 0..ROUNDS {
                        slow_increment(&mut lock.lock(t, false));
                    }
                });
            }
            for _ in 0..ROUNDS {
                slow_increment(&mut lock.lock(t, false));
            }
        });
        assert_eq!(*lock.lock(t, false), 3 * ROUNDS);
        assert!(matches!(lock.owner(), o if o == REVOKED || o == t.bias_serial()));
        // Another thread, however often in a row: an ordinary lock for it, revoked.
        std::thread::scope(|s| {
            s.spawn(|| {
                let other = Thread::current();
                for _ in 0..2 * REBIAS_AFTER {
                    assert!(!core::ptr::eq(
                        lock.lock(other, false).release.unwrap(),
                        &lock.busy
                    ));
                }
            });
        });
        assert_eq!(lock.owner(), REVOKED);
        assert!(!enters_by_flag(&lock, t));
        // The first owner has it back after a streak.
        for _ in 0..REBIAS_AFTER {
            drop(lock.lock(t, false));
        }
        assert_eq!(lock.owner(), t.bias_serial());
        assert!(enters_by_flag(&lock, t));
    }

    #[test]
    fn a_forked_child_starts_from_no_owner() {
        let lock = BiasedLock::new(());
        for owner in [5, 5 | PAUSED, REVOKED, NONE] {
            lock.owner.store(owner, Ordering::Relaxed);
            lock.first_owner.store(5, Ordering::Relaxed);
            lock.busy.store(1, Ordering::Relaxed);
            lock.word.store(1, Ordering::Relaxed);
            lock.streak.store(7, Ordering::Relaxed);
            lock.reset_after_fork();
            let words = [&lock.busy, &lock.word, &lock.first_owner, &lock.streak];
            assert!(words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
            assert_eq!(lock.owner(), NONE);
        }
    }

    #[test]
    fn serials_never_look_like_an_owner_state() {
        let a = new_serial();
        assert!(a != 0 && a <= MAX_SERIAL);
        assert_ne!(new_serial(), a);
        for state in [NONE, REVOKED] {
            assert!(state > MAX_SERIAL && state & PAUSED == 0);
        }
        assert_ne!(NONE, REVOKED);
        // The last serial is handed out, then none: the counter stops at a value that is
        // never one (so `new_serial` answers 0 from then on).
        assert_eq!(serial_after(MAX_SERIAL), Some(MAX_SERIAL + 1));
        assert_eq!(serial_after(MAX_SERIAL + 1), None);
        assert_eq!(serial_after(u32::MAX), None);
    }
}

//! The process-wide profiler: one recorder behind one lock, and its life cycle (start, fork,
//! snapshots, writing the final profile).

use core::ffi::CStr;
use core::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use peakprof::format::{self, live, Meta, Module, WriteReason};
use peakprof::record::{slot_address, stack_hash, LiveAlloc, LiveHeap, Recorder, Region};

use crate::guard::{keep_errno, Guard};
use crate::lanes::{self, LaneSet};
use crate::livefile::{ForkSnapshot, LogFile, MappedStore};
use crate::lock::{Lock, LockGuard};
use crate::thread::Thread;
use crate::{clock, modules, procfs, sampled, threads, unwind};

struct Profiler {
    rec: Recorder<MappedStore>,
    log: LogFile,
    /// Every module seen so far, including ones unloaded since (their frames must still
    /// resolve).
    modules: Vec<Module>,
    start_mono_ns: u64,
    start_unix_ns: u64,
    out_dir: PathBuf,
    /// File stem of this process image's files: `<pid>-<start_unix_ns>`.
    stem: String,
    /// The process this profiler belongs to: set in a forked child at the fork, before it
    /// has files of its own. A vfork child shares the profiler (and all memory) with this
    /// process and must tell itself apart: its events count for this process (the memory
    /// is this process's), but it never ends or writes this process's profile.
    owner_pid: u32,
    /// Its parent: the process that started it or forked it (set in a forked child by the
    /// fork handler). Kept rather than asked again at the end, when an orphan's parent is
    /// already peakprof (the tree's subreaper).
    parent_pid: u32,
    /// Set in a forked child until it has files of its own.
    rebind_pending: bool,
    /// The log a vfork child replaced when it made its forked parent's files (the parent's
    /// first event was the vfork child's): the descriptor to close is the parent's, in a
    /// table the vfork child does not share, so the parent closes it at its next event.
    inherited_log: Option<LogFile>,
    /// The counters at the last fork, for the child (see [`MappedStore::fork_snapshot`]);
    /// kept for the next one.
    fork_snapshot: Option<ForkSnapshot>,
    /// Profile only the root process (`--no-children`).
    no_children: bool,
    written: bool,
    /// `--limit`: the byte limit, whether reaching it stops the program, whether it was hit.
    limit: Option<u64>,
    limit_stop: bool,
    limit_hit: bool,
    /// The latest event time handed out (times never go back, see [`Profiler::stamp`]).
    last_now: u64,
    /// How the live maps hand memory back as they grow (lanes' maps too).
    release: Option<peakprof::record::Release>,
}

/// Mean sampling interval in bytes; 0 records every allocation's stack.
static SAMPLE_RATE: AtomicU64 = AtomicU64::new(0);

/// Exit code of a program stopped by `--limit` (see the CLI's exit codes).
const LIMIT_EXIT_CODE: i32 = 121;

/// The frame of the stand-in stack of unsampled blocks (never shown: it holds no bytes).
const UNSAMPLED_FRAME: u64 = u64::MAX - 1;

static PROFILER: Lock<Option<Profiler>> = Lock::new(None);
type ProfilerGuard = LockGuard<'static, Option<Profiler>>;

/// Not started yet: the first hooked call (or the constructor) starts profiling.
const UNSTARTED: u8 = 0;
/// `start` is running on some thread.
const STARTING: u8 = 1;
/// Recording.
const ACTIVE: u8 = 2;
/// Not recording: not started by peakprof, a `--no-children` child, or finished.
const PASSIVE: u8 = 3;

/// Where the profiler is in its life. Profiling starts at the first allocation, not at our
/// constructor: libraries initialized before us (libstdc++'s emergency pool) allocate
/// memory that stays live for the whole run.
static PHASE: AtomicU8 = AtomicU8::new(UNSTARTED);

/// The status the process gave `exit`, `_exit` or a return from `main` (low 8 bits, as its
/// parent sees it) with the pid that gave it above them; [`NO_EXIT_STATUS`] until then. The
/// pid: a vfork child's `_exit` writes here too (it shares our memory), and its status is
/// not ours.
static EXIT_STATUS: AtomicU64 = AtomicU64::new(NO_EXIT_STATUS);
const NO_EXIT_STATUS: u64 = u64::MAX;

/// Records the status the process is exiting with, for its final profile.
pub fn set_exit_status(status: core::ffi::c_int) {
    let v = (u64::from(pid()) << 32) | u64::from((status & 0xff) as u32);
    EXIT_STATUS.store(v, Ordering::Relaxed);
}

/// The status this process is exiting with, if known.
fn exit_status() -> Option<i32> {
    let v = EXIT_STATUS.load(Ordering::Relaxed);
    (v != NO_EXIT_STATUS && (v >> 32) as u32 == pid()).then_some((v & 0xff) as i32)
}

/// The exit code a profile written for `reason` records: an exit's, when it is known.
fn exit_code_for(reason: WriteReason) -> Option<i32> {
    match reason {
        WriteReason::Exit | WriteReason::FastExit => exit_status(),
        // Stopped at --limit by the preload itself, with this code.
        WriteReason::LimitStop => Some(LIMIT_EXIT_CODE),
        _ => None,
    }
}

/// Whether the forking thread's `prepare` marked it as inside the profiler (so `parent` or
/// `child` unmarks it); written and read with the profiler's lock held across the fork.
static FORK_SET_IN_HOOK: AtomicBool = AtomicBool::new(false);

/// The process that is forking, set by `prepare` with the profiler's lock held across the
/// fork, for the child to name as its parent (see [`Profiler::parent_pid`]).
static FORKING_PID: AtomicU32 = AtomicU32::new(0);

/// The `exec` word of the live file this process writes, and the pid it belongs to (0
/// when none): set with the lock held whenever the files change, read by the exec
/// functions without it. An exec may come from a signal handler that interrupted the
/// lock's holder (a fork in progress, a hook), and from a vfork child, which shares our
/// memory but not our pid.
static EXEC_WORD: AtomicPtr<u64> = AtomicPtr::new(core::ptr::null_mut());
static EXEC_OWNER: AtomicU32 = AtomicU32::new(0);

/// Points the exec functions at the live file of process `owner` (0: at none).
fn set_exec_word(word: *mut u64, owner: u32) {
    EXEC_WORD.store(word, Ordering::Release);
    EXEC_OWNER.store(owner, Ordering::Release);
}

/// The live map's slot array (address, slots), republished under the lock whenever it
/// moves, so a hook can prefetch an address's slot before taking the lock: in a big live
/// set that slot is a cache miss, and the prefetch overlaps it with unwinding or the real
/// allocator's work. Read without synchronization: a stale pair only makes a useless hint.
static LIVE_TABLE: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// The stack table's slot array (address, slots), republished under the lock whenever a
/// new stack is interned (the only time it moves), so that a capture whose stack is not
/// known yet can prefetch where its lookup starts before the clock reading and the lock
/// ([`prefetch_stack_slot`]). Read without synchronization, as [`LIVE_TABLE`].
static STACK_SLOTS: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// Whether frees prefetch their live-map slot ([`Recorder::frees_reach_table`]),
/// republished after every event that can move it (frees, and allocations through the
/// recorder while lanes are on, which may drop a stale block). Without that prefetch
/// sqlite3's profiled CPU time read 0.015x of its unprofiled run lower (its blocks are
/// mostly freed while queued, so the line is seldom read) and jq's 0.05x higher
/// (interleaved A/B, 21 and 11 rounds).
static PREFETCH_FREES: AtomicBool = AtomicBool::new(true);

/// Starts loading the cache line where `addr`'s live-map slot is looked up first. Not in
/// sampled mode, where most blocks are in its size tables: prefetching their buckets
/// measured no gain on `churn`, whose tables stay in cache (frees in a big sampled live
/// set prefetch theirs: [`prefetch_for_free`]).
#[inline]
pub fn prefetch_slot(addr: usize) {
    if sampled::on() {
        return;
    }
    let slots = LIVE_TABLE[1].load(Ordering::Relaxed);
    if slots == 0 {
        return;
    }
    let base = LIVE_TABLE[0].load(Ordering::Relaxed);
    prefetch(base.wrapping_add(LiveHeap::home_byte_offset(addr as u64, slots)));
}

/// Before the free of `addr`: [`prefetch_slot`], or in sampled mode the block's size-table
/// bucket (single-threaded only, see [`sampled::free_lookup_address`]: with a big live
/// set, jq's, that bucket was nearly all of a sampled free's cost).
#[inline]
pub fn prefetch_for_free(addr: usize) {
    if !sampled::on() {
        if PREFETCH_FREES.load(Ordering::Relaxed) {
            prefetch_slot(addr);
        }
        return;
    }
    if let Some(line) = sampled::free_lookup_address(addr as u64) {
        prefetch(line);
    }
}

/// The hash of a captured stack that the capture could not name (`None` when it could),
/// taken before the clock reading and the lock (whose holder makes other threads wait),
/// with its lookup's slot prefetched so that the miss on it overlaps them.
#[inline(always)]
fn hash_unknown_stack(room: &unwind::Frames) -> Option<u64> {
    room.known_stack().is_none().then(|| {
        let hash = stack_hash(room.as_slice());
        prefetch_stack_slot(hash);
        hash
    })
}

/// Starts loading the stack table's slot where the lookup of a stack hashing to `hash`
/// starts: in a program with many distinct stacks that slot is often a cache miss (cc1 at
/// 1500 functions: ~7,000 stacks in 256 KiB of slots, competing with cc1's own data).
#[inline(always)]
fn prefetch_stack_slot(hash: u64) {
    let slots = STACK_SLOTS[1].load(Ordering::Relaxed);
    let base = STACK_SLOTS[0].load(Ordering::Relaxed);
    if let Some(line) = slot_address(base, slots, hash) {
        prefetch(line);
    }
}

/// Starts loading the cache line at `line`.
#[inline(always)]
pub(crate) fn prefetch(line: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(line as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = line;
}

/// Whether hooks should record right now; starts profiling on the first call.
#[inline]
pub fn active() -> bool {
    match PHASE.load(Ordering::Relaxed) {
        ACTIVE => true,
        UNSTARTED => {
            try_start(false);
            PHASE.load(Ordering::Relaxed) == ACTIVE
        }
        _ => false,
    }
}

/// Starts profiling unless another call did or is doing it. From a hook (`final_try`
/// false) a missing environment may just mean libc has not set it up yet, so the decision
/// is left to a later call; the constructor's call is final.
#[cold]
pub fn try_start(final_try: bool) {
    if PHASE
        .compare_exchange(UNSTARTED, STARTING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    // The program's errno survives: starting creates files and may meet errors.
    let next = match keep_errno(start) {
        Some(()) => ACTIVE,
        None if final_try => PASSIVE,
        None => UNSTARTED,
    };
    PHASE.store(next, Ordering::Release);
}

fn env(name: &CStr) -> Option<String> {
    crate::environ::get(name.to_bytes()).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn pid() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

fn ppid() -> u32 {
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() as u32 }
}

/// Removes our library from `LD_PRELOAD`, so programs this one starts run unprofiled.
fn stop_children_inheriting() {
    let Some(list) = crate::environ::get(b"LD_PRELOAD") else {
        return;
    };
    let kept: Vec<&[u8]> = peakprof::child_env::preload_elements(list)
        .filter(|e| !peakprof::child_env::is_ours(e))
        .collect();
    if kept.is_empty() {
        crate::environ::remove(b"LD_PRELOAD");
    } else {
        crate::environ::replace(b"LD_PRELOAD", &kept.join(&b':'));
    }
}

fn env_u64(name: &CStr) -> u64 {
    env(name).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// The live files of a new process image, with its first log records.
fn open_files(
    out_dir: &Path,
    stem: &str,
    start_unix_ns: u64,
    mods: &[Module],
) -> (MappedStore, LogFile) {
    // PEAKPROF_NO_LIVE_FILES=1 keeps the counters in anonymous memory: only to measure what
    // the file-backed mapping costs (a killed process then leaves no profile).
    let store = if env(c"PEAKPROF_NO_LIVE_FILES").is_some_and(|v| v == "1") {
        MappedStore::anonymous()
    } else {
        MappedStore::create(&out_dir.join(format!("{stem}.{}", live::LIVE_EXTENSION)))
    };
    let mut log = LogFile::create(&out_dir.join(format!("{stem}.{}", live::LOG_EXTENSION)));
    let mut first = live::log_meta(
        pid(),
        ppid(),
        &procfs::cmdline(),
        &procfs::self_exe(),
        start_unix_ns,
        SAMPLE_RATE.load(Ordering::Relaxed),
    );
    for m in mods {
        first.extend(live::log_module(m));
    }
    log.append(&first);
    (store, log)
}

/// Sets up profiling of this process; `None` when it should not be profiled (yet).
fn start() -> Option<()> {
    let _guard = Guard::enter();
    crate::real::init();
    let mods = modules::loaded_modules();
    if let Some((lo, hi)) = modules::range_of(&mods, start as *const () as usize as u64) {
        unwind::set_self_range(lo, hi);
    }
    // Without an output directory the library was not started by `peakprof run` (a test
    // binary linking it, a stray LD_PRELOAD): stay out of the way, record nothing.
    // Its bytes as they are: a directory's name need not be UTF-8.
    let out_dir = crate::environ::get(b"PEAKPROF_OUT_DIR").filter(|d| !d.is_empty())?;
    let out_dir = PathBuf::from(std::ffi::OsStr::from_bytes(out_dir));
    // For the image `peakprof run` started only (its parent is peakprof, whose pid the
    // value names); removed by any image, so that programs started later inherit
    // whatever it leaves (see `signals::restore_ignored`).
    if let Some(value) = env(c"PEAKPROF_IGNORED_SIGNALS") {
        if let Some(mask) = peakprof::ignored_signals::mask_for_child_of(&value, ppid()) {
            crate::signals::restore_ignored(mask);
        }
        crate::environ::remove(b"PEAKPROF_IGNORED_SIGNALS");
    }
    let no_children = env(c"PEAKPROF_NO_CHILDREN").is_some_and(|v| v == "1");
    if no_children {
        stop_children_inheriting();
    } else {
        crate::child_env::remember();
    }
    let sample_rate = env_u64(c"PEAKPROF_SAMPLE_RATE");
    SAMPLE_RATE.store(sample_rate, Ordering::Relaxed);
    unwind::set_check_memo(env(c"PEAKPROF_CHECK_UNWIND").is_some_and(|v| v == "1"));
    let limit = Some(env_u64(c"PEAKPROF_LIMIT")).filter(|&l| l > 0);
    let limit_stop = env(c"PEAKPROF_LIMIT_ACTION").is_none_or(|a| a != "report");
    let start_unix_ns = clock::unix_ns();
    let stem = format!("{}-{start_unix_ns}", pid());
    let (store, mut log) = open_files(&out_dir, &stem, start_unix_ns, &mods);
    let mut rec = Recorder::with_store(store);
    let release = crate::pages::usable(env(c"GLIBC_TUNABLES").as_deref())
        .then_some(crate::pages::release as peakprof::record::Release);
    if let Some(release) = release {
        rec.set_release(release);
    }
    let start_mono_ns = clock::monotonic_ns();
    clock::init();
    if sample_rate > 0 {
        let id = rec.intern(&[UNSAMPLED_FRAME]);
        log.append(&live::log_stack(id, &[UNSAMPLED_FRAME]));
        rec.set_sampling(sample_rate, id);
        // Unsampled blocks bypass the recorder: it keeps its part of the total, and the
        // whole total and peak are kept in `sampled`.
        rec.set_external_peak();
        let shared = rec.tracker().store().shared();
        sampled::activate(shared, start_mono_ns, limit, id);
        // The size tables' locks are biased (PEAKPROF_BIASED_LOCKS=0: plain, for
        // comparisons).
        if env(c"PEAKPROF_BIASED_LOCKS").is_none_or(|v| v != "0") {
            crate::biased::enable();
        }
    }
    set_exec_word(rec.tracker().store().exec_word(), pid());
    // Lanes need the exact total at every event for `--limit`, and sampled mode has its
    // own way past the lock. PEAKPROF_LANES=0 turns them off (for comparisons).
    if sample_rate == 0 && limit.is_none() && env(c"PEAKPROF_LANES").is_none_or(|v| v != "0") {
        lanes::enable();
    }
    *PROFILER.lock() = Some(Profiler {
        rec,
        log,
        modules: mods,
        start_mono_ns,
        start_unix_ns,
        out_dir,
        stem,
        owner_pid: pid(),
        parent_pid: ppid(),
        rebind_pending: false,
        inherited_log: None,
        fork_snapshot: None,
        no_children,
        written: false,
        limit,
        limit_stop,
        limit_hit: false,
        last_now: 0,
        release,
    });
    install_fork_handlers();
    Some(())
}

fn install_fork_handlers() {
    extern "C" fn prepare() {
        // The thread counts as inside the profiler until the fork is done: a signal
        // handler run meanwhile (its `_exit` or `exit`, or an allocation of another
        // library's fork handler) must not wait for the locks this thread holds.
        let t = Thread::current();
        let set_here = !t.in_hook();
        t.set_in_hook(true);
        // Hold the locks across fork so the child never inherits one mid-update. Same
        // order everywhere: the unwinder's, then the profiler's.
        unwind::fork_prepare();
        let mut g = PROFILER.lock();
        if let Some(p) = g.as_mut() {
            // Every lane absorbed: the counters are the state at the fork.
            p.now_in_order();
        }
        lanes::fork_prepare();
        // Read back by the same thread in `parent` or `child`: other forks wait for the lock.
        FORK_SET_IN_HOOK.store(set_here, Ordering::Relaxed);
        FORKING_PID.store(pid(), Ordering::Relaxed);
        sampled::fork_prepare();
        unwind::memo_fork_prepare();
        if let Some(p) = g.as_mut() {
            // Taken with every lock held, so it is the state at the fork exactly.
            if !p.no_children && !p.written {
                let previous = p.fork_snapshot.take();
                p.fork_snapshot = p.rec.tracker().store().fork_snapshot(previous);
            }
        }
        core::mem::forget(g);
    }
    extern "C" fn parent() {
        let set_here = FORK_SET_IN_HOOK.load(Ordering::Relaxed);
        unwind::memo_fork_parent();
        sampled::fork_parent();
        lanes::fork_parent();
        PROFILER.force_unlock();
        unwind::fork_parent();
        if set_here {
            Thread::current().set_in_hook(false);
        }
    }
    extern "C" fn child() {
        // The thread that held the locks is the one that forked: release them, and let the
        // child make files of its own before it records anything (lazily: most children
        // exec right away and never need them). Until then its counters are the private
        // copy taken at the fork, which the parent's later events do not change.
        let set_here = FORK_SET_IN_HOOK.load(Ordering::Relaxed);
        // The child's history starts here, not at its first event (rebind, later): its
        // times, duration and timeline count from the fork.
        let (start_mono_ns, start_unix_ns) = (clock::monotonic_ns(), clock::unix_ns());
        unwind::memo_fork_child();
        unwind::fork_child();
        sampled::fork_child(start_mono_ns);
        lanes::fork_child();
        PROFILER.reset_after_fork();
        if let Some(p) = PROFILER.lock().as_mut() {
            // The process that forked, even when it never made files of its own (it
            // forked before its first event): those are still its parent's, or further up.
            p.parent_pid = FORKING_PID.load(Ordering::Relaxed);
            p.owner_pid = pid();
            p.rebind_pending = true;
            p.start_mono_ns = start_mono_ns;
            p.start_unix_ns = start_unix_ns;
            p.last_now = 0;
            if let Some(snap) = p.fork_snapshot.take() {
                p.rec.tracker_mut().store_mut().adopt(snap);
            }
        }
        if set_here {
            Thread::current().set_in_hook(false);
        }
    }
    // SAFETY: the handlers are plain functions that live as long as the library.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

impl Profiler {
    #[inline]
    fn now(&mut self) -> u64 {
        self.stamp(clock::monotonic_coarse_ns())
    }

    /// [`Self::now`] for an event that does not go through the lanes (a mapping, a
    /// failed realloc's block put back), or a moment that needs the counters current (a
    /// profile, a fork): lanes stop holding first, so it is recorded in order with every
    /// event before it.
    fn now_in_order(&mut self) -> u64 {
        let now = self.now();
        self.rec.stop_holding(&LaneSet, now);
        now
    }

    /// The event time of a coarse clock reading taken before the lock (reading the clock
    /// is a call into the vDSO: outside, it does not lengthen the lock's hold). A thread
    /// that read the clock and then waited for the lock would be behind the one that went
    /// first, so times are kept from going back.
    #[inline]
    fn stamp(&mut self, coarse_mono_ns: u64) -> u64 {
        let t = coarse_mono_ns
            .saturating_sub(self.start_mono_ns)
            .max(self.last_now);
        self.last_now = t;
        t
    }

    /// Ready to record in this process? Makes a forked child's own files first.
    #[inline]
    fn ready(&mut self) -> bool {
        if self.rebind_pending || self.inherited_log.is_some() {
            self.settle();
        }
        !self.written
    }

    /// [`Self::ready`]'s rare work: a forked child's own files, and the descriptor of a log
    /// a vfork child replaced (closed by the process that holds it).
    #[cold]
    fn settle(&mut self) {
        if self.rebind_pending {
            self.rebind();
        }
        if pid() == self.owner_pid {
            if let Some(log) = self.inherited_log.take() {
                log.close();
            }
        }
    }

    /// A forked child takes over: its own files, a copy of the counters it inherited (its
    /// live set starts from what it inherited, which it really holds), and its own history
    /// from here on.
    #[cold]
    fn rebind(&mut self) {
        self.rebind_pending = false;
        if self.no_children {
            self.written = true;
            PHASE.store(PASSIVE, Ordering::Release);
            return;
        }
        // Times count from the fork (set by the fork handler).
        let start_unix_ns = self.start_unix_ns;
        // `parent_pid` was set at the fork, so it names the parent whether or not it is
        // still alive (a child may make its files long after an orphaning). `owner_pid`
        // too: this may run in a vfork child of the owner (its first event), whose files
        // these are not.
        self.stem = format!("{}-{start_unix_ns}", self.owner_pid);
        let store = self
            .rec
            .tracker()
            .store()
            .copy_to(&self.path(live::LIVE_EXTENSION));
        let old = core::mem::replace(self.rec.tracker_mut().store_mut(), store);
        set_exec_word(self.rec.tracker().store().exec_word(), self.owner_pid);
        old.release();
        let mut log = LogFile::create(&self.path(live::LOG_EXTENSION));
        let mut first = live::log_meta(
            self.owner_pid,
            self.parent_pid,
            &procfs::cmdline(),
            &procfs::self_exe(),
            start_unix_ns,
            SAMPLE_RATE.load(Ordering::Relaxed),
        );
        for m in &self.modules {
            first.extend(live::log_module(m));
        }
        let stacks = self.rec.stacks();
        for id in 0..stacks.len() as u32 {
            first.extend(live::log_stack(id, stacks.frames(id)));
        }
        log.append(&first);
        let old_log = core::mem::replace(&mut self.log, log);
        if pid() == self.owner_pid {
            old_log.close();
        } else {
            self.inherited_log = Some(old_log);
        }
        self.rec.reset_timeline();
        self.rec.restart_peak(0);
        let shared = self.rec.tracker().store().shared();
        sampled::rebind(shared, self.start_mono_ns, &mut self.rec);
    }

    /// Counts mapped regions taken out before a call that left them mapped again, each
    /// with its own call path.
    fn restore_regions(&mut self, taken: Vec<Region>, t: u64) {
        for r in taken {
            self.rec.restore_region(r, t);
        }
    }

    /// The id of a captured stack: the one its capture knows when it repeated an earlier
    /// walk, else interned (with `hash` when the caller has it), and kept with the walk.
    /// The first case inlined: out of line, it was a call with a 6-register prologue for
    /// a bounds test (sqlite3: 28 instructions a capture).
    #[inline(always)]
    fn intern(&mut self, room: &unwind::Frames, hash: Option<u64>) -> u32 {
        match room.known_stack() {
            Some(id) if (id as usize) < self.rec.stacks().len() && !unwind::checking() => id,
            _ => self.intern_checked(room, hash),
        }
    }

    /// [`Self::intern`] for a stack the capture did not name, or in check mode.
    #[inline(never)]
    fn intern_checked(&mut self, room: &unwind::Frames, hash: Option<u64>) -> u32 {
        // The frames are read only when the id is not known (the capture may have left
        // them in its memo: see `Frames::as_slice`).
        if let Some(id) = room.known_stack() {
            // An id this table never handed out would mean a memo the program wrote over
            // (one it did hand out cannot be told from a right one but in check mode:
            // memos live in the program's memory, like everything else of ours).
            if (id as usize) < self.rec.stacks().len() {
                if unwind::checking() && self.rec.stacks().frames(id) != room.as_slice() {
                    unwind::check_failed(b"a remembered stack id names other frames");
                }
                return id;
            }
        }
        let frames = room.as_slice();
        let (id, new) = self.rec.intern_new_hashed(frames, hash);
        if new {
            self.log.append(&live::log_stack(id, frames));
            lanes::stacks_known(self.rec.stacks().len());
            let (base, slots) = self.rec.stacks().slots();
            STACK_SLOTS[0].store(base, Ordering::Relaxed);
            STACK_SLOTS[1].store(slots, Ordering::Relaxed);
        }
        unwind::remember_stack(room, id);
        id
    }

    fn meta(&self, reason: WriteReason) -> Meta {
        Meta {
            pid: self.owner_pid,
            ppid: self.parent_pid,
            argv: procfs::cmdline(),
            exe: procfs::self_exe(),
            peak_rss_bytes: procfs::peak_rss_bytes(),
            reason,
            sample_rate: SAMPLE_RATE.load(Ordering::Relaxed),
            start_unix_ns: self.start_unix_ns,
            duration_ns: clock::monotonic_ns().saturating_sub(self.start_mono_ns),
            exit_code: exit_code_for(reason),
            ..Meta::default()
        }
    }

    fn path(&self, ext: &str) -> PathBuf {
        self.out_dir.join(format!("{}.{ext}", self.stem))
    }

    /// The profile of this process now.
    fn profile(&mut self, reason: WriteReason) -> format::Profile {
        self.now_in_order();
        if sampled::on() {
            sampled::before_locked(&mut self.rec);
        }
        let mut profile = self.rec.to_profile(self.meta(reason), self.modules.clone());
        if sampled::on() {
            sampled::complete_profile(&mut profile);
        }
        profile
    }

    /// Writes the full profile now (snapshot or final).
    fn write_profile(&mut self, reason: WriteReason) -> bool {
        let profile = self.profile(reason);
        write_atomically(&self.path(format::EXTENSION), &format::encode(&profile))
    }

    /// The process's tracked bytes now (in sampled mode with threads, an upper bound that
    /// never passes the peak: see [`sampled::bounded_total`]).
    #[inline]
    fn total(&self) -> u64 {
        if sampled::on() {
            sampled::bounded_total()
        } else {
            self.rec.total()
        }
    }

    /// After an event: the first time the total (or `seen`, a total another thread just
    /// reached without the lock) passes `--limit`, writes what is live now as
    /// `<stem>.oom`. Returns true when the program must stop.
    #[inline]
    fn check_limit(&mut self, seen: u64) -> bool {
        let Some(limit) = self.limit.filter(|_| !self.limit_hit) else {
            return false;
        };
        let total = self.total().max(seen);
        // Only the owner acts on it: a vfork child's allocations are in the owner's memory
        // and count for it, but stopping the vfork child would leave the shared profiler
        // state marked while the owner runs on unrecorded. The owner stops at its next event.
        total > limit && pid() == self.owner_pid && self.limit_reached(total)
    }

    /// The total just passed `--limit` (it is `total`): writes the `.oom` snapshot once.
    #[cold]
    #[inline(never)]
    fn limit_reached(&mut self, total: u64) -> bool {
        self.limit_hit = true;
        let now = self.now();
        let mut p = self.profile(WriteReason::Snapshot);
        p.peak = p.exit.clone();
        p.meta.peak_bytes = total;
        p.meta.peak_time_ns = now;
        write_atomically(&self.path(format::OOM_EXTENSION), &format::encode(&p));
        self.limit_stop
    }

    /// An event raised the peak. The event clock is coarse (milliseconds); early in a run a
    /// new peak deserves the precise time. Later events are stamped no earlier than it.
    #[inline]
    fn time_new_peak(&mut self) {
        let t = clock::peak_time(self.start_mono_ns, self.last_now);
        if t != self.last_now {
            self.rec.set_peak_time(t);
            self.last_now = self.last_now.max(t);
        }
    }

    /// A new timeline point: a good moment for the (comparatively slow) RSS reading.
    #[cold]
    #[inline(never)]
    fn note_rss_at_point(&mut self) {
        self.rec.note_rss(procfs::current_rss_bytes());
    }

    /// Sampled mode: a timeline point when one is due, with the RSS sampled at it.
    #[inline]
    fn observe_sampled(&mut self) {
        let now = self.now();
        if sampled::maybe_observe(&mut self.rec, now) {
            self.rec.note_rss(procfs::current_rss_bytes());
        }
    }
}

/// Runs `f` on the profiler when it is recording in this process; stops the program
/// afterwards when the event took the total past `--limit` with `--limit-action stop`.
///
/// Every allocation and free runs through here, so the work most events skip (sampled
/// mode's, a timeline point's RSS reading, a moved live table, `--limit`) is kept out of
/// line and marked cold: the hooks' hot code then packs into fewer instruction-cache lines.
/// That matters to programs whose own hot code nearly fills the L1 instruction cache
/// (sqlite3 under cachegrind: 11 M instruction-cache misses unprofiled, 29 M profiled).
#[inline]
fn with_profiler<R>(f: impl FnOnce(&mut Profiler) -> R) -> Option<R> {
    let mut g = PROFILER.lock();
    let p = g.as_mut()?;
    if !p.ready() {
        return None;
    }
    if sampled::on() {
        return with_profiler_sampled(g, f);
    }
    let peak_before = p.rec.peak();
    let r = f(p);
    if p.rec.peak() > peak_before {
        p.time_new_peak();
    }
    if p.rec.take_new_point() {
        p.note_rss_at_point();
    }
    publish_live_table(p);
    if p.limit.is_some() {
        after_event_limited(g, 0);
    }
    Some(r)
}

/// [`with_profiler`] in sampled mode, where the recorder sees only the sampled events and
/// the blocks that do not pack into the size tables.
#[cold]
#[inline(never)]
fn with_profiler_sampled<R>(mut g: ProfilerGuard, f: impl FnOnce(&mut Profiler) -> R) -> Option<R> {
    let p = g.as_mut()?;
    sampled::before_locked(&mut p.rec);
    let before = p.rec.total();
    let r = f(p);
    let delta = p.rec.total().wrapping_sub(before);
    // The total this event took the process to (other threads may have lowered it again by
    // the time the limit is checked).
    let reached = sampled::after_locked(&mut p.rec, delta);
    p.observe_sampled();
    publish_live_table(p);
    after_event_limited(g, reached);
    Some(r)
}

/// After an event, when `--limit` is set (or in sampled mode):
/// [`Profiler::check_limit`] (with `seen`, a total the event reached), then releases the
/// lock, and stops the program when the limit says so.
#[cold]
#[inline(never)]
fn after_event_limited(mut g: ProfilerGuard, seen: u64) {
    let stop = g.as_mut().is_some_and(|p| p.check_limit(seen));
    drop(g);
    if stop {
        stop_at_limit();
    }
}

/// Tells the hooks' prefetch where the recorder's live table is now (it moves when the
/// table grows).
#[inline(always)]
fn publish_live_table(p: &Profiler) {
    let (base, slots) = p.rec.live_table();
    if LIVE_TABLE[0].load(Ordering::Relaxed) != base
        || LIVE_TABLE[1].load(Ordering::Relaxed) != slots
    {
        store_live_table(base, slots);
    }
}

/// After an event that may have moved [`Recorder::frees_reach_table`] (a free, or a
/// lane allocation that dropped a stale block): tells the hooks whether frees should
/// prefetch their slot. Not after every event: a plain allocation never moves it.
#[inline(always)]
fn publish_prefetch_frees(p: &Profiler) {
    let prefetch_frees = p.rec.frees_reach_table();
    if PREFETCH_FREES.load(Ordering::Relaxed) != prefetch_frees {
        PREFETCH_FREES.store(prefetch_frees, Ordering::Relaxed);
    }
}

#[cold]
#[inline(never)]
fn store_live_table(base: usize, slots: usize) {
    LIVE_TABLE[0].store(base, Ordering::Relaxed);
    LIVE_TABLE[1].store(slots, Ordering::Relaxed);
}

/// Before an exec call: counts one more exec in progress in this image's live file (if
/// one succeeds the image writes nothing more, and its files read as ended by exec). The
/// word to give back to [`exec_failed`] when the call returns. No lock (see [`EXEC_WORD`]).
pub fn exec_starting() -> Option<&'static AtomicU64> {
    // A vfork child, or a forked child without files of its own, is not the owner.
    if EXEC_OWNER.load(Ordering::Acquire) != pid() {
        return None;
    }
    let word = EXEC_WORD.load(Ordering::Acquire);
    if word.is_null() {
        return None;
    }
    // SAFETY: the word lies in the header mapping of this process's live file, which stays
    // mapped while it is the current one (it is replaced before the old one is unmapped);
    // 8-aligned, and only ever accessed atomically by this process.
    let word = unsafe { AtomicU64::from_ptr(word) };
    word.fetch_add(1, Ordering::SeqCst);
    Some(word)
}

/// After an exec call counted by [`exec_starting`] returned: it failed, the image goes on.
/// A count rather than a flag, so one thread's failed exec does not hide another's.
pub fn exec_failed(word: &AtomicU64) {
    word.fetch_sub(1, Ordering::SeqCst);
}

/// Sampled mode, without the lock: a thread took the total to `total`, past `--limit`.
#[cold]
pub fn limit_crossed(total: u64) {
    let stop = {
        let mut g = PROFILER.lock();
        match g.as_mut() {
            Some(p) => p.ready() && p.check_limit(total),
            None => false,
        }
    };
    if stop {
        stop_at_limit();
    }
}

/// Sampled mode's periodic work for threads that record without the lock: a due timeline
/// point. Skipped when another thread holds the lock (it does the same work on its way
/// out, or the next tick will).
#[inline]
pub fn periodic() {
    if !sampled::point_due(clock::monotonic_coarse_ns()) {
        return;
    }
    let Some(mut g) = PROFILER.try_lock() else {
        return;
    };
    let Some(p) = g.as_mut() else { return };
    if !p.ready() {
        return;
    }
    p.observe_sampled();
}

/// A free (or realloc) of `addr` went to the allocator unrecorded, while profiling: a hook
/// was interrupted by a signal handler that freed, say. If the block was recorded it stays
/// counted until its address comes back; lanes then look for it in every map at a new
/// peak (see [`lanes::free_missed`]).
#[cold]
pub fn passed_through(addr: usize) {
    // Bootstrap blocks (served before the real allocator was known) are never recorded:
    // their frees are not missed ones.
    if PHASE.load(Ordering::Relaxed) == ACTIVE
        && !crate::bootstrap::contains(addr as *const core::ffi::c_void)
    {
        lanes::free_missed();
    }
}

/// A thread that had lane `i` ends: its held-back changes go in, and the lane waits for
/// the next thread (its blocks stay live in it).
pub fn lane_ended(i: usize) {
    let Some(_guard) = Guard::enter() else {
        // Inside the profiler already (cannot happen in a key destructor): leave the lane
        // claimed, which only overstates what lanes may hold back.
        return;
    };
    let mut g = PROFILER.lock();
    if let Some(p) = g.as_mut() {
        if p.ready() {
            let now = p.now();
            p.rec.release_lane(&LaneSet, i, now);
        }
    }
    lanes::unclaim(i);
}

/// Ends the program at `--limit` with `--limit-action stop` (outside the profiler's lock).
#[cold]
fn stop_at_limit() -> ! {
    finish_from_hook(WriteReason::LimitStop);
    crate::real::exit(LIMIT_EXIT_CODE)
}

/// A heap block was allocated (on thread `t`, by a hook entered at `origin`). Keeps errno
/// on the paths that could touch it (sampled mode's unsampled blocks make no system call).
///
/// Inlined into the hooks: sampled mode's common case (not sampled, into the size
/// tables) is then a few dozen instructions with no call; the rest is out of line.
#[inline(always)]
pub fn on_alloc(t: Thread, addr: usize, size: usize, origin: Option<unwind::Origin>) {
    let rate = SAMPLE_RATE.load(Ordering::Relaxed);
    if rate == 0 || t.should_sample(size as u64, rate) {
        record_with_stack(t, addr, size, origin);
    } else if !sampled::alloc(t, addr as u64, size as u64) {
        record_unsampled_alloc(addr, size);
    }
}

/// An unsampled block that does not pack into sampled mode's tables: its size counts in
/// the exact total through the recorder.
#[inline(never)]
fn record_unsampled_alloc(addr: usize, size: usize) {
    keep_errno(|| {
        with_profiler(|p| {
            let now = p.now();
            let unsampled = sampled::unsampled_stack();
            p.rec.on_alloc(addr as u64, size as u64, unsampled, now);
        })
    });
}

/// An allocation whose stack is recorded (every one in exact mode, the sampled ones in
/// sampled mode). Out of line, so that the hooks where [`on_alloc`] is inlined stay small
/// for sampled mode's common case. The capture starts at the hook's caller (`origin`), so
/// the frames between here and there cost it nothing.
#[inline(never)]
fn record_with_stack(t: Thread, addr: usize, size: usize, origin: Option<unwind::Origin>) {
    let single = threads::single();
    let in_lanes = lanes::active_knowing(single);
    if !in_lanes {
        // With lanes, blocks go to the lanes' maps: the recorder's would be a useless hint.
        prefetch_slot(addr);
    }
    keep_errno(|| {
        // Captured outside the lock (unwinding is the slow part), into a buffer the caller
        // owns, so 1 KiB of frames is never moved after the walk.
        let mut room = unwind::Frames::new();
        unwind::capture(&mut room, origin);
        let hash = hash_unknown_stack(&room);
        let clock = clock::monotonic_coarse_ns();
        if in_lanes {
            return alloc_in_lanes(t, addr, size, &room, hash, clock);
        }
        with_profiler(|p| {
            let id = p.intern(&room, hash);
            let now = p.stamp(clock);
            p.rec.on_alloc(addr as u64, size as u64, id, now);
        })
    });
}

/// Whether a `realloc` may be recorded as one event ([`resized`]): exact mode, one
/// thread, no lanes.
#[inline]
pub fn resize_in_one_event() -> bool {
    SAMPLE_RATE.load(Ordering::Relaxed) == 0 && threads::single() && !lanes::active_knowing(true)
}

/// A `realloc` of the block at `old` (tracked or not) to `new_size` bytes, which `call`
/// performs, recorded as one event: the real call first (no other thread can be handed
/// `old` before the free is recorded, as in the `free` hook), then one clock reading and
/// one entry into the profiler for the old block's free and the new block's allocation. A
/// third of sqlite3's allocations are reallocs. A failed call records nothing (the block
/// is still live), a NULL for size 0 records the free (glibc freed the block).
#[inline(never)]
pub fn resized(
    t: Thread,
    old: usize,
    new_size: Option<usize>,
    origin: Option<unwind::Origin>,
    call: impl FnOnce() -> *mut core::ffi::c_void,
) -> *mut core::ffi::c_void {
    prefetch_for_free(old);
    let q = call();
    if q.is_null() {
        if new_size == Some(0) {
            record_free::<false>(t, old);
        }
        return q;
    }
    let new = q as usize;
    prefetch_slot(new);
    keep_errno(|| {
        let mut room = unwind::Frames::new();
        unwind::capture(&mut room, origin);
        let hash = hash_unknown_stack(&room);
        let clock = clock::monotonic_coarse_ns();
        with_profiler(|p| {
            let now = p.stamp(clock);
            p.rec.on_free(old as u64, now);
            publish_prefetch_frees(p);
            let id = p.intern(&room, hash);
            p.rec
                .on_alloc(new as u64, new_size.unwrap_or(0) as u64, id, now);
        })
    });
    q
}

/// [`record_with_stack`] once the process has threads: the thread's lane alone when it
/// can, else the recorder. Out of line, so that the single-threaded path stays as it was
/// (inlined, its branches cost sqlite3 ~1% more instructions).
#[inline(never)]
fn alloc_in_lanes(
    t: Thread,
    addr: usize,
    size: usize,
    room: &unwind::Frames,
    hash: Option<u64>,
    clock: u64,
) -> Option<()> {
    if lanes::try_alloc(t, addr, size, room, hash) {
        return Some(());
    }
    with_profiler(|p| {
        let id = p.intern(room, hash);
        let now = p.stamp(clock);
        let mine = lanes::claim(t, p.release);
        // In check mode the lane also learns the stacks the unwinder remembers (see
        // `lanes::try_alloc`).
        let hash = hash.or_else(|| unwind::checking().then(|| stack_hash(room.as_slice())));
        if let (Some(i), Some(h)) = (mine, hash) {
            if unwind::checking() {
                lanes::check_cached_stack(i, h, room.as_slice(), id);
            }
            lanes::remember_stack(i, h, room.as_slice(), id);
        }
        p.rec
            .lane_alloc(&LaneSet, mine, addr as u64, size as u64, id, now);
        publish_prefetch_frees(p);
    })
}

/// A heap block is about to be freed (or, single-threaded, was just freed); returns its
/// size and stack if it was tracked, so a failed realloc can put it back. Callers start
/// [`prefetch_for_free`] for it first, as early as their ordering allows. Inlined into the
/// hooks like [`on_alloc`]: sampled mode's tables first, the recorder out of line.
#[inline(always)]
pub fn on_free(t: Thread, addr: usize) -> Option<LiveAlloc> {
    free_block::<true>(t, addr)
}

/// [`on_free`] for a caller that has no use for the block (`free` itself).
#[inline(always)]
pub fn freed(t: Thread, addr: usize) {
    free_block::<false>(t, addr);
}

/// [`on_free`]; the block only when `KEEP`, as [`record_free`].
#[inline(always)]
fn free_block<const KEEP: bool>(t: Thread, addr: usize) -> Option<LiveAlloc> {
    if sampled::on() {
        if let Some(size) = sampled::free(t, addr as u64) {
            return KEEP.then(|| LiveAlloc {
                size,
                stack: sampled::unsampled_stack(),
            });
        }
    }
    record_free::<KEEP>(t, addr)
}

/// A free the recorder handles (every one in exact mode); the block when `KEEP`, else
/// `None`. Without a use for the block, its move out of the recorder is left out: perf put
/// a third of this function's samples on it (sqlite3). With one, the block comes back as
/// plain words the closure writes, each read back at its own width, rather than as an
/// `Option` returned through `with_profiler` and `keep_errno`: copied through memory at
/// mismatched widths, that stalled store forwarding.
#[inline(never)]
fn record_free<const KEEP: bool>(t: Thread, addr: usize) -> Option<LiveAlloc> {
    let (mut found, mut size, mut stack) = (false, 0u64, 0);
    keep_errno(|| {
        let clock = clock::monotonic_coarse_ns();
        let mut keep = |block: Option<LiveAlloc>| {
            if let (true, Some(b)) = (KEEP, block) {
                (found, size, stack) = (true, b.size, b.stack);
            }
        };
        if lanes::active() {
            keep(free_in_lanes(t, addr, clock));
            return;
        }
        with_profiler(|p| {
            let now = p.stamp(clock);
            keep(p.rec.on_free(addr as u64, now));
            publish_prefetch_frees(p);
        });
    });
    found.then_some(LiveAlloc { size, stack })
}

/// [`record_free`] once the process has threads (out of line, as [`alloc_in_lanes`]).
#[inline(never)]
fn free_in_lanes(t: Thread, addr: usize, clock: u64) -> Option<LiveAlloc> {
    if let Some(block) = lanes::try_free(t, addr) {
        return Some(block);
    }
    with_profiler(|p| {
        let now = p.stamp(clock);
        let mine = lanes::claim(t, p.release);
        let block = p.rec.lane_free(&LaneSet, mine, addr as u64, now);
        publish_prefetch_frees(p);
        block
    })
    .flatten()
}

/// Puts back a block whose realloc failed (it was removed before the call).
pub fn restore(addr: usize, block: LiveAlloc) {
    if sampled::on()
        && block.stack == sampled::unsampled_stack()
        && sampled::restore(addr as u64, block.size)
    {
        return;
    }
    with_profiler(|p| {
        let t = p.now_in_order();
        p.rec.restore(addr as u64, block, t);
    });
}

/// An anonymous mapping was made.
pub fn on_mmap(addr: usize, len: usize) {
    let mut room = unwind::Frames::new();
    unwind::capture(&mut room, None);
    with_profiler(|p| {
        let id = p.intern(&room, None);
        let t = p.now_in_order();
        p.rec.on_mmap(addr as u64, len as u64, id, t);
    });
}

/// A range was unmapped (or replaced by a mapping we do not track).
pub fn on_munmap(addr: usize, len: usize) {
    // Lowers the total only: lanes may go on holding (see `Recorder::keep_room`).
    with_profiler(|p| {
        let t = p.now();
        p.rec.on_munmap(addr as u64, len as u64, t);
    });
}

/// A range is about to be unmapped, resized or moved: its tracked parts leave the live set
/// now, before the real call, so that another thread mapping the freed range at once is
/// never confused with it. Returns what was taken, for [`put_back`] should the call fail
/// (or [`after_mremap`]).
pub fn take_mapped(addr: usize, len: usize) -> Vec<Region> {
    // Lowers the total only (what comes back goes through `put_back` or `after_mremap`).
    with_profiler(|p| {
        let t = p.now();
        p.rec.take_range(addr as u64, len as u64, t)
    })
    .unwrap_or_default()
}

/// The call whose range [`take_mapped`] took failed, so the range is still mapped: the
/// pieces come back as they were (not as new allocations).
pub fn put_back(taken: Vec<Region>) {
    if taken.is_empty() {
        return;
    }
    with_profiler(|p| {
        let t = p.now_in_order();
        p.restore_regions(taken, t);
    });
}

/// The mapping [`take_mapped`] took moved to `new` (or the call failed: `None`). A tracked
/// mapping's new range is attributed to the caller of mremap (as realloc's new block is to
/// realloc's caller); after a failure the old pieces come back as they were, and so they do
/// when `old_stays` (`MREMAP_DONTUNMAP`: the pages move, the old range stays mapped).
pub fn after_mremap(moved: Option<(usize, usize)>, taken: Vec<Region>, old_stays: bool) {
    if taken.is_empty() {
        return;
    }
    let Some((new, new_len)) = moved else {
        return put_back(taken);
    };
    let mut room = unwind::Frames::new();
    unwind::capture(&mut room, None);
    with_profiler(|p| {
        let t = p.now_in_order();
        if old_stays {
            p.restore_regions(taken, t);
        }
        let id = p.intern(&room, None);
        p.rec.on_mmap(new as u64, new_len as u64, id, t);
    });
}

/// A library was loaded: log the modules that are new, so their frames resolve.
pub fn on_dlopen() {
    // Outside our lock: dl_iterate_phdr takes the loader's lock.
    let mods = modules::loaded_modules();
    with_profiler(|p| {
        for m in mods {
            let known = p
                .modules
                .iter()
                .any(|k| k.bias == m.bias && k.path == m.path && k.ranges == m.ranges);
            if !known {
                p.log.append(&live::log_module(&m));
                p.modules.push(m);
            }
        }
    });
}

/// Writes the final profile (once) and stops recording. The live files it supersedes are
/// removed; if writing fails they stay, and the CLI recovers from them.
///
/// Called from outside the profiler (exit, `_exit`). When this thread is already inside a
/// hook, a signal handler interrupted it (`_exit` from a handler is common and legal) and it
/// may hold the profiler's lock: writing would deadlock, so nothing is written — the live
/// files are current and stand in for the final profile.
pub fn finish(reason: WriteReason) {
    let Some(_guard) = Guard::enter() else { return };
    finish_locked_out(reason);
}

/// [`finish`] for a hook that knows it does not hold the profiler's lock (`--limit` stop).
fn finish_from_hook(reason: WriteReason) {
    finish_locked_out(reason);
}

fn finish_locked_out(reason: WriteReason) {
    let mods = modules::loaded_modules();
    let mut g = PROFILER.lock();
    let Some(p) = g.as_mut() else { return };
    // A vfork child shares our memory: it must not write (or stop) the owner's profile,
    // nor drop a forked owner's pending one.
    if p.owner_pid != pid() {
        return;
    }
    if p.rebind_pending && !sampled::child_rose_since_fork() {
        // A forked child that ends without an event the recorder saw (or, in sampled mode,
        // without its total going above what it inherited) held only what its parent held
        // at the fork, copy-on-write: like a child that execs right away, it leaves no
        // profile. Writing one would cost a copy of every counter and stack per fork (1000
        // forks of a program with 30000 stacks: 21 s) for a report that repeats the
        // parent's at the fork.
        p.rebind_pending = false;
        p.written = true;
        PHASE.store(PASSIVE, Ordering::Release);
        return;
    }
    if p.rebind_pending {
        p.rebind();
    }
    if p.written {
        return;
    }
    p.written = true;
    PHASE.store(PASSIVE, Ordering::Release);
    set_exec_word(core::ptr::null_mut(), 0);
    for m in mods {
        if !p
            .modules
            .iter()
            .any(|k| k.bias == m.bias && k.path == m.path)
        {
            p.modules.push(m);
        }
    }
    if env(c"PEAKPROF_CHECK_CONSISTENCY").is_some_and(|v| v == "1") {
        // For stress tests: the recorder's invariants (total = sum of live blocks, per-stack
        // counters = live set) at the very end of the process, said on stderr.
        let checked = lanes::with_all(|l| {
            p.rec.check_consistency_with(l)?;
            let held: u64 = l.iter().map(|l| l.held()).sum();
            Ok(format!(
                " (lanes: {}, events they held back: {held})",
                l.len()
            ))
        })
        .and_then(|lanes| {
            if sampled::on() {
                sampled::check_consistency(p.rec.total())
            } else {
                Ok(lanes)
            }
        });
        let msg = match checked {
            Ok(note) => format!("peakprof: recorder consistency check passed{note}\n"),
            Err(e) => format!("peakprof: recorder consistency check FAILED: {e}\n"),
        };
        // SAFETY: writing a valid buffer to stderr.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    }
    if sampled::on() {
        // The last stretch of the timeline, up to the end.
        let now = p.now();
        sampled::observe(&mut p.rec, now);
    }
    // Should the write below fail (a program that ends at its descriptor limit leaves none
    // for it), the live files still say how the process ended.
    let word = live::ended_word(reason, exit_code_for(reason));
    p.rec.tracker().store().mark_ended(word);
    // Nothing is appended from here on: the descriptor goes back to a program that may have
    // used up its limit, so that writing the profile does not fail for want of one.
    p.log.park();
    if p.write_profile(reason) {
        let _ = std::fs::remove_file(p.path(live::LIVE_EXTENSION));
        let _ = std::fs::remove_file(p.path(live::LOG_EXTENSION));
    }
}

/// Writes to a temporary name and renames, so a reader never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> bool {
    let _no_cancel = crate::guard::NoCancel::new();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".");
    tmp.push(format::TEMP_EXTENSION);
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    let Err(e) = written else {
        return true;
    };
    let _ = std::fs::remove_file(&tmp);
    let msg = format!("peakprof: cannot write profile {}: {e}\n", path.display());
    // SAFETY: writing a valid buffer to stderr.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    false
}

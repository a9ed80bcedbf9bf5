//! The process-wide profiler: one recorder behind one lock, and its life cycle (start,
//! fork, writing the profile).

use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, Ordering};

use peakprof::format::{self, Meta, WriteReason};
use peakprof::record::Recorder;

use crate::guard::Guard;
use crate::lock::Lock;
use crate::{clock, modules, procfs, unwind};

struct Profiler {
    rec: Recorder,
    start_mono_ns: u64,
    start_unix_ns: u64,
    out_dir: String,
    written: bool,
}

static PROFILER: Lock<Option<Profiler>> = Lock::new(None);

/// Whether hooks record. False until the constructor ran and after the profile was written.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether hooks should record right now.
#[inline]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

fn env(name: &CStr) -> Option<String> {
    // SAFETY: getenv with a NUL-terminated name; the result, when non-null, is a valid C
    // string that we copy before anything could change the environment.
    let v = unsafe { libc::getenv(name.as_ptr()) };
    if v.is_null() {
        return None;
    }
    // SAFETY: non-null getenv result, as above.
    Some(unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
}

/// Starts profiling this process (the library's constructor).
pub fn start() {
    let _guard = Guard::enter();
    crate::real::init();
    let mods = modules::loaded_modules();
    if let Some((lo, hi)) = modules::range_of(&mods, start as *const () as usize as u64) {
        unwind::set_self_range(lo, hi);
    }
    let out_dir = env(c"PEAKPROF_OUT_DIR").unwrap_or_else(|| ".".into());
    *PROFILER.lock() = Some(Profiler {
        rec: Recorder::new(),
        start_mono_ns: clock::monotonic_ns(),
        start_unix_ns: clock::unix_ns(),
        out_dir,
        written: false,
    });
    install_fork_handlers();
    ACTIVE.store(true, Ordering::Release);
}

fn install_fork_handlers() {
    extern "C" fn prepare() {
        // Hold the lock across fork so the child never inherits it mid-update.
        core::mem::forget(PROFILER.lock());
    }
    extern "C" fn parent() {
        PROFILER.force_unlock();
    }
    extern "C" fn child() {
        PROFILER.reset_after_fork();
    }
    // SAFETY: the handlers are plain functions that live as long as the library.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

/// Captures the caller's stack (outside the lock: unwinding is the slow part).
#[inline]
fn stack() -> ([u64; unwind::MAX_DEPTH + 1], usize) {
    let mut frames = [0u64; unwind::MAX_DEPTH + 1];
    let n = unwind::capture(&mut frames);
    (frames, n)
}

/// A heap block was allocated.
#[inline]
pub fn on_alloc(addr: usize, size: usize) {
    let (frames, n) = stack();
    let now = clock::monotonic_coarse_ns();
    if let Some(p) = PROFILER.lock().as_mut() {
        let id = p.rec.intern(&frames[..n]);
        let t = now.saturating_sub(p.start_mono_ns);
        p.rec.on_alloc(addr as u64, size as u64, id, t);
    }
}

/// A heap block is about to be freed; returns its size and stack if it was tracked, so a
/// failed realloc can put it back.
#[inline]
pub fn on_free(addr: usize) -> Option<peakprof::record::LiveAlloc> {
    let now = clock::monotonic_coarse_ns();
    let mut g = PROFILER.lock();
    let p = g.as_mut()?;
    let t = now.saturating_sub(p.start_mono_ns);
    p.rec.on_free(addr as u64, t)
}

/// Puts back a block whose realloc failed (it was removed before the call).
pub fn restore(addr: usize, block: peakprof::record::LiveAlloc) {
    let now = clock::monotonic_coarse_ns();
    if let Some(p) = PROFILER.lock().as_mut() {
        let t = now.saturating_sub(p.start_mono_ns);
        p.rec.on_alloc(addr as u64, block.size, block.stack, t);
    }
}

/// An anonymous mapping was made.
pub fn on_mmap(addr: usize, len: usize) {
    let (frames, n) = stack();
    let now = clock::monotonic_coarse_ns();
    if let Some(p) = PROFILER.lock().as_mut() {
        let id = p.rec.intern(&frames[..n]);
        let t = now.saturating_sub(p.start_mono_ns);
        p.rec.on_mmap(addr as u64, len as u64, id, t);
    }
}

/// A range is being unmapped (or replaced by a mapping we do not track).
pub fn on_munmap(addr: usize, len: usize) {
    let now = clock::monotonic_coarse_ns();
    if let Some(p) = PROFILER.lock().as_mut() {
        let t = now.saturating_sub(p.start_mono_ns);
        p.rec.on_munmap(addr as u64, len as u64, t);
    }
}

/// A mapping was resized or moved: if it was tracked, the new range replaces the old one,
/// attributed to the caller of mremap (as realloc's new block is to realloc's caller).
pub fn on_mremap(old: usize, old_len: usize, new: usize, new_len: usize) {
    let (frames, n) = stack();
    let now = clock::monotonic_coarse_ns();
    if let Some(p) = PROFILER.lock().as_mut() {
        if !p.rec.maps_overlap(old as u64, old_len as u64) {
            return;
        }
        let id = p.rec.intern(&frames[..n]);
        let t = now.saturating_sub(p.start_mono_ns);
        p.rec.on_munmap(old as u64, old_len as u64, t);
        p.rec.on_mmap(new as u64, new_len as u64, id, t);
    }
}

/// Writes the profile file (once) and stops recording.
pub fn finish(reason: WriteReason) {
    let _guard = Guard::enter();
    // Outside our lock: dl_iterate_phdr takes the loader's lock, and a thread inside dlopen
    // may be waiting for ours.
    let mods = modules::loaded_modules();
    let meta = Meta {
        // SAFETY: getpid/getppid have no preconditions.
        pid: unsafe { libc::getpid() } as u32,
        // SAFETY: as above.
        ppid: unsafe { libc::getppid() } as u32,
        argv: procfs::cmdline(),
        exe: procfs::self_exe(),
        peak_rss_bytes: procfs::peak_rss_bytes(),
        reason,
        ..Meta::default()
    };
    let now = clock::monotonic_ns();
    let (bytes, path) = {
        let mut g = PROFILER.lock();
        let Some(p) = g.as_mut() else { return };
        if p.written {
            return;
        }
        p.written = true;
        ACTIVE.store(false, Ordering::Release);
        let meta = Meta {
            start_unix_ns: p.start_unix_ns,
            duration_ns: now.saturating_sub(p.start_mono_ns),
            ..meta
        };
        let profile = p.rec.to_profile(meta, mods);
        let path = format!(
            "{}/{}-{}.{}",
            p.out_dir,
            profile.meta.pid,
            p.start_unix_ns,
            format::EXTENSION
        );
        (format::encode(&profile), path)
    };
    write_atomically(&path, &bytes);
}

/// Writes to a temporary name and renames, so a reader never sees half a file.
fn write_atomically(path: &str, bytes: &[u8]) {
    let tmp = format!("{path}.tmp");
    if std::fs::write(&tmp, bytes).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    } else {
        let _ = std::fs::remove_file(&tmp);
        let msg = format!("peakprof: cannot write profile {path}\n");
        // SAFETY: writing a valid buffer to stderr.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    }
}

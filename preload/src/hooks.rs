//! The exported allocation functions. Each one is a thin shell: call the real function,
//! then tell the recorder, with the reentrancy guard held and errno preserved. One
//! exception to the guard: glibc's own free is `free`'s tail call, outside it (see
//! [`free`]).
//!
//! Ordering under threads: a block's removal is recorded *before* the real free/realloc (so
//! another thread cannot be handed the same address and record it first), and an
//! allocation is recorded *after* the real call returns. With one thread, exact mode
//! records a free and a realloc after the real call (no other thread can be handed the
//! address in between): the free overlaps its live-map miss with glibc's work, and the
//! realloc is one event (`state::resized`).

use core::ffi::{c_int, c_void};

use crate::guard::{keep_errno, Guard};
use crate::thread::Thread;
use crate::unwind::Origin;
use peakprof::record::{mremap_refused, munmap_check, MunmapCheck};

// mremap_refused reads Linux's flag numbers, written out in the core (which has no libc).
const _: () = assert!(
    peakprof::record::MREMAP_MAYMOVE == libc::MREMAP_MAYMOVE
        && peakprof::record::MREMAP_FIXED == libc::MREMAP_FIXED
        && peakprof::record::MREMAP_DONTUNMAP == libc::MREMAP_DONTUNMAP
);

use crate::{bootstrap, real, state};

/// The two x86-64 argument registers after a function's own arguments (one to three
/// integer or pointer arguments: rdi, rsi, rdx, then rcx, r8), which carry the entry stack
/// pointer (`sp`) and frame pointer (`bp`) to the hook behind a trampoline.
macro_rules! entry_register {
    (sp; $a:ident) => {
        "rsi"
    };
    (bp; $a:ident) => {
        "rdx"
    };
    (sp; $a:ident, $b:ident) => {
        "rdx"
    };
    (bp; $a:ident, $b:ident) => {
        "rcx"
    };
    (sp; $a:ident, $b:ident, $c:ident) => {
        "rcx"
    };
    (bp; $a:ident, $b:ident, $c:ident) => {
        "r8"
    };
}

/// Exports `$name` as a trampoline into `$inner`, which takes `$name`'s arguments followed
/// by the stack pointer and frame pointer at entry (in the next two argument registers, see
/// [`entry_register`]), so that a capture starts at the caller (see [`Origin`]). A jump,
/// not a call: `$inner` returns straight to the caller, and the CPU's return predictions
/// stay paired with their calls.
macro_rules! entry_trampoline {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty => $inner:ident) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// As the C function of the same name.
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            // The CFI gives the three instructions an unwind entry (the return address
            // at the stack pointer, as on entry), for anything that unwinds from a
            // signal taken on them.
            core::arch::naked_asm!(
                ".cfi_startproc",
                concat!("mov ", entry_register!(sp; $($arg),*), ", rsp"),
                concat!("mov ", entry_register!(bp; $($arg),*), ", rbp"),
                "jmp {}",
                ".cfi_endproc",
                sym $inner,
            )
        }
    };
}

/// The entry state a trampoline passed on.
#[inline(always)]
fn origin(sp: usize, bp: usize) -> Option<Origin> {
    Some(Origin {
        sp: sp as u64,
        bp: bp as u64,
    })
}

/// The guard, when this call should be recorded.
#[inline]
fn enter() -> Option<Guard> {
    if state::active() {
        Guard::enter()
    } else {
        None
    }
}

/// Records a new block (state keeps errno on the paths that could change it).
#[inline]
fn record_alloc(g: &Guard, p: *mut c_void, size: usize, origin: Option<Origin>) {
    if !p.is_null() {
        state::on_alloc(g.thread(), p as usize, size, origin);
    }
}

entry_trampoline!(
    /// Interposed `malloc(3)`.
    fn malloc(size: usize) -> *mut c_void => malloc_from
);

/// `malloc` behind its trampoline.
unsafe extern "C" fn malloc_from(size: usize, sp: usize, bp: usize) -> *mut c_void {
    let Some(g) = enter() else {
        // SAFETY: forwarding to the real function.
        return unsafe { real::malloc(size) };
    };
    // SAFETY: forwarding to the real function.
    let p = unsafe { real::malloc(size) };
    record_alloc(&g, p, size, origin(sp, bp));
    p
}

entry_trampoline!(
    /// Interposed `calloc(3)`.
    fn calloc(n: usize, size: usize) -> *mut c_void => calloc_from
);

/// `calloc` behind its trampoline.
unsafe extern "C" fn calloc_from(n: usize, size: usize, sp: usize, bp: usize) -> *mut c_void {
    let Some(g) = enter() else {
        // SAFETY: forwarding to the real function.
        return unsafe { real::calloc(n, size) };
    };
    // SAFETY: forwarding to the real function.
    let p = unsafe { real::calloc(n, size) };
    // A successful calloc means n * size did not overflow.
    record_alloc(&g, p, n.wrapping_mul(size), origin(sp, bp));
    p
}

/// Interposed `free(3)`.
///
/// # Safety
/// As `free(3)`.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    let Some(g) = enter() else {
        state::passed_through(p as usize);
        // SAFETY: forwarding to the real function (which ignores bootstrap blocks).
        return unsafe { real::free(p) };
    };
    let t: Thread = g.thread();
    state::prefetch_for_free(p as usize);
    if crate::threads::single() && !crate::sampled::on() {
        // No other thread can be handed this address before we record the free, so the
        // real free may go first: it overlaps the live map's cache miss. (Recording first
        // and ending in a tail call, as below, measured even: sqlite3 +0.004x, churn
        // +0.009x. Sampled mode's tables seldom miss: it takes the tail call.)
        // SAFETY: as below.
        unsafe { real::free(p) };
        state::freed(t, p as usize);
        return;
    }
    state::freed(t, p as usize);
    if real::free_is_glibcs() {
        // The real free as a tail call: a call would hold one more return address in the
        // CPU's return stack, whose 32 entries are all that predicts a deep program's
        // returns; each level a hook adds there costs deep stacks a mispredicted return
        // (churn_mt, 21-41 frames: ~9% more CPU per level, most of it in the program's
        // own code). glibc's free needs no guard (see `free_is_glibcs`).
        drop(g);
    }
    // SAFETY: forwarding to the real function (which ignores bootstrap blocks).
    unsafe { real::free(p) }
}

/// Shared body of realloc and reallocarray: `call` performs the real resize.
///
/// # Safety
/// `p` must be null or a live block of this process's allocator.
unsafe fn resize(
    p: *mut c_void,
    new_size: Option<usize>,
    origin: Option<Origin>,
    call: impl FnOnce() -> *mut c_void,
) -> *mut c_void {
    let Some(g) = enter() else {
        if !p.is_null() {
            state::passed_through(p as usize);
        }
        return call();
    };
    // A block of the real heap (not a new allocation, not a bootstrap block).
    let tracked = !p.is_null() && !bootstrap::contains(p);
    if tracked && state::resize_in_one_event() {
        return state::resized(g.thread(), p as usize, new_size, origin, call);
    }
    let old = if tracked {
        state::prefetch_for_free(p as usize);
        state::on_free(g.thread(), p as usize)
    } else {
        None
    };
    let q = call();
    if !q.is_null() {
        record_alloc(&g, q, new_size.unwrap_or(0), origin);
    } else if let Some(old) = old {
        // NULL with a size means failure and `p` is still live; NULL for size 0 means
        // `p` was freed (glibc), which is not an out-of-memory condition.
        if new_size != Some(0) {
            keep_errno(|| state::restore(p as usize, old));
        }
    }
    q
}

entry_trampoline!(
    /// Interposed `realloc(3)`.
    fn realloc(p: *mut c_void, size: usize) -> *mut c_void => realloc_from
);

/// `realloc` behind its trampoline.
unsafe extern "C" fn realloc_from(
    p: *mut c_void,
    size: usize,
    sp: usize,
    bp: usize,
) -> *mut c_void {
    // SAFETY: the caller passes a valid block or null; forwarding to the real function.
    unsafe { resize(p, Some(size), origin(sp, bp), || real::realloc(p, size)) }
}

entry_trampoline!(
    /// Interposed `reallocarray(3)`.
    fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void
        => reallocarray_from
);

/// `reallocarray` behind its trampoline.
unsafe extern "C" fn reallocarray_from(
    p: *mut c_void,
    n: usize,
    size: usize,
    sp: usize,
    bp: usize,
) -> *mut c_void {
    // An overflowing size fails in the real call; `None` then restores the old block.
    // SAFETY: the caller passes a valid block or null; forwarding to the real function.
    unsafe {
        resize(p, n.checked_mul(size), origin(sp, bp), || {
            real::reallocarray(p, n, size)
        })
    }
}

entry_trampoline!(
    /// Interposed `posix_memalign(3)`.
    fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int
        => posix_memalign_from
);

/// `posix_memalign` behind its trampoline.
unsafe extern "C" fn posix_memalign_from(
    out: *mut *mut c_void,
    align: usize,
    size: usize,
    sp: usize,
    bp: usize,
) -> c_int {
    let Some(g) = enter() else {
        // SAFETY: forwarding to the real function.
        return unsafe { real::posix_memalign(out, align, size) };
    };
    // SAFETY: forwarding to the real function.
    let r = unsafe { real::posix_memalign(out, align, size) };
    if r == 0 && !out.is_null() {
        // SAFETY: on success the real function stored the block in `*out`.
        record_alloc(&g, unsafe { *out }, size, origin(sp, bp));
    }
    r
}

macro_rules! aligned_hook {
    ($(#[$doc:meta])* $name:ident($($arg:ident),*) => $real:path, size = $size:expr,
        from = $inner:ident) => {
        entry_trampoline!(
            $(#[$doc])*
            fn $name($($arg: usize),*) -> *mut c_void => $inner
        );

        /// The hook behind its trampoline.
        unsafe extern "C" fn $inner($($arg: usize,)* sp: usize, bp: usize) -> *mut c_void {
            let Some(g) = enter() else {
                // SAFETY: forwarding to the real function.
                return unsafe { $real($($arg),*) };
            };
            // SAFETY: forwarding to the real function.
            let p = unsafe { $real($($arg),*) };
            record_alloc(&g, p, $size, origin(sp, bp));
            p
        }
    };
}

aligned_hook!(
    /// Interposed `aligned_alloc(3)`.
    aligned_alloc(align, size) => real::aligned_alloc, size = size,
    from = aligned_alloc_from
);
aligned_hook!(
    /// Interposed `memalign(3)`.
    memalign(align, size) => real::memalign, size = size,
    from = memalign_from
);
aligned_hook!(
    /// Interposed `valloc(3)`.
    valloc(size) => real::valloc, size = size,
    from = valloc_from
);
aligned_hook!(
    /// Interposed `pvalloc(3)`.
    pvalloc(size) => real::pvalloc, size = size,
    from = pvalloc_from
);

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize
}

fn page_round(len: usize) -> usize {
    let page = page_size();
    len.div_ceil(page).saturating_mul(page)
}

/// Interposed `mmap(2)`: anonymous, accessible mappings count as allocations; a fixed
/// mapping of anything else over a tracked range ends what it replaces.
///
/// # Safety
/// As `mmap(2)`.
#[no_mangle]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut c_void {
    let Some(_g) = enter() else {
        // SAFETY: forwarding to the real function.
        return unsafe { real::mmap(addr, len, prot, flags, fd, off) };
    };
    // SAFETY: forwarding to the real function.
    let r = unsafe { real::mmap(addr, len, prot, flags, fd, off) };
    if r != libc::MAP_FAILED {
        let anon = flags & libc::MAP_ANONYMOUS != 0;
        if anon && prot != libc::PROT_NONE {
            keep_errno(|| state::on_mmap(r as usize, page_round(len)));
        } else if flags & libc::MAP_FIXED != 0 {
            keep_errno(|| state::on_munmap(r as usize, page_round(len)));
        }
    }
    r
}

/// Interposed `mmap64` (the same function on 64-bit Linux).
///
/// # Safety
/// As `mmap(2)`.
#[no_mangle]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut c_void {
    // SAFETY: same contract as mmap.
    unsafe { mmap(addr, len, prot, flags, fd, off) }
}

/// Interposed `munmap(2)`: the tracked part of the range ends, if the call succeeds.
///
/// # Safety
/// As `munmap(2)`.
#[no_mangle]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: usize) -> c_int {
    let Some(_g) = enter() else {
        // SAFETY: forwarding to the real function.
        return unsafe { real::munmap(addr, len) };
    };
    match munmap_check(addr as u64, len as u64, page_size() as u64) {
        // EINVAL, nothing unmapped: nothing to record.
        MunmapCheck::Invalid => {
            // SAFETY: forwarding to the real function.
            unsafe { real::munmap(addr, len) }
        }
        MunmapCheck::RecordFirst { len: rounded } => {
            let taken = keep_errno(|| state::take_mapped(addr as usize, rounded as usize));
            // SAFETY: forwarding to the real function.
            let r = unsafe { real::munmap(addr, len) };
            if r != 0 {
                // Still mapped (keep_errno: the caller reads the call's errno).
                keep_errno(|| state::put_back(taken));
            }
            r
        }
        MunmapCheck::CallFirst { len: rounded } => {
            // SAFETY: forwarding to the real function.
            let r = unsafe { real::munmap(addr, len) };
            if r == 0 {
                keep_errno(|| state::on_munmap(addr as usize, rounded as usize));
            }
            r
        }
    }
}

/// Interposed `mremap(2)`. Declared with the optional fifth argument spelled out: on the
/// 64-bit Linux ABIs a variadic pointer argument is passed exactly like a fixed one, and it
/// is only read when `MREMAP_FIXED` says it is there.
///
/// # Safety
/// As `mremap(2)`.
#[no_mangle]
pub unsafe extern "C" fn mremap(
    old: *mut c_void,
    old_len: usize,
    new_len: usize,
    flags: c_int,
    new_addr: *mut c_void,
) -> *mut c_void {
    let new_addr = if flags & libc::MREMAP_FIXED != 0 {
        new_addr
    } else {
        core::ptr::null_mut()
    };
    // Calls the kernel refuses before it looks at any mapping go through untouched.
    let refused = mremap_refused(
        old as u64,
        old_len as u64,
        new_len as u64,
        flags,
        page_size() as u64,
    );
    let guard = if refused { None } else { enter() };
    let Some(_g) = guard else {
        // SAFETY: forwarding to the real function.
        return unsafe { real::mremap(old, old_len, new_len, flags, new_addr) };
    };
    let taken = keep_errno(|| state::take_mapped(old as usize, page_round(old_len)));
    // SAFETY: forwarding to the real function.
    let r = unsafe { real::mremap(old, old_len, new_len, flags, new_addr) };
    let moved = (r != libc::MAP_FAILED).then(|| (r as usize, page_round(new_len)));
    let old_stays = flags & libc::MREMAP_DONTUNMAP != 0;
    keep_errno(|| state::after_mremap(moved, taken, old_stays));
    r
}

/// Interposed `_exit(2)`: the process skips `exit`'s handlers and our destructor, so the
/// final profile is written here.
///
/// # Safety
/// As `_exit(2)`.
#[no_mangle]
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    if state::active() {
        state::set_exit_status(status);
        state::finish(peakprof::format::WriteReason::FastExit);
    }
    real::exit(status)
}

/// Interposed `_Exit(3)`, the same as `_exit`.
///
/// # Safety
/// As `_Exit(3)`.
#[no_mangle]
pub unsafe extern "C" fn _Exit(status: c_int) -> ! {
    // SAFETY: same contract.
    unsafe { _exit(status) }
}

/// Interposed `dlopen(3)`: the module map learns about the new library.
///
/// # Safety
/// As `dlopen(3)`.
#[no_mangle]
pub unsafe extern "C" fn dlopen(file: *const core::ffi::c_char, flags: c_int) -> *mut c_void {
    // SAFETY: forwarding to the real function.
    let handle = unsafe { real::dlopen(file, flags) };
    if !handle.is_null() {
        if let Some(_g) = enter() {
            keep_errno(state::on_dlopen);
        }
    }
    handle
}

/// Interposed `dlclose(3)`: the unwinder forgets the library's tables before they are
/// unmapped (the module map keeps it, so its frames still resolve).
///
/// # Safety
/// As `dlclose(3)`.
#[no_mangle]
pub unsafe extern "C" fn dlclose(handle: *mut c_void) -> c_int {
    // SAFETY: forwarding to the real function.
    let r = unsafe { real::dlclose(handle) };
    // Forget the tables afterwards, not around the call: dlclose runs the library's
    // destructors, which may wait for threads that need the unwinder's lock. Until then a
    // lookup could only concern the unloaded library if its code were still running,
    // which would be the program's own use-after-unload.
    crate::unwind::forget_modules();
    r
}

entry_trampoline!(
    /// Captures the caller's stack with a chosen unwinder (0: cached rules, 1: libgcc,
    /// 2: cached rules without the memo) into `out`; for the stack-capture benchmark, not
    /// for programs. Behind a trampoline like the allocation hooks, so the cached methods
    /// start where theirs do.
    fn peakprof_bench_capture(method: c_int, out: *mut u64, cap: usize) -> usize
        => bench_capture_from
);

/// `peakprof_bench_capture` behind its trampoline.
///
/// # Safety
/// `out` must be valid for `cap` writes.
unsafe extern "C" fn bench_capture_from(
    method: c_int,
    out: *mut u64,
    cap: usize,
    sp: usize,
    bp: usize,
) -> usize {
    use crate::unwind::{capture_with, Frames, Method};
    let method = match method {
        1 => Method::Libgcc,
        2 => Method::CachedNoMemo,
        _ => Method::Cached,
    };
    let _g = Guard::enter();
    let mut frames = Frames::new();
    let n = capture_with(method, &mut frames, origin(sp, bp)).min(cap);
    // SAFETY: the caller guarantees `out` holds `cap` words, and n <= cap.
    unsafe { core::ptr::copy_nonoverlapping(frames.as_slice().as_ptr(), out, n) };
    n
}

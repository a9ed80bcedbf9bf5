//! Stack capture: return addresses of the current thread, innermost first, without the
//! profiler's own frames.
//!
//! The fast path ([`fast`]) steps through frames with unwind rules cached per return
//! address; when it meets a frame it cannot handle it hands the whole capture to libgcc's
//! general unwinder ([`libgcc`]), so speed never costs correctness.

mod fast;
mod libgcc;
mod memo;
mod modules;

use core::cell::{Cell, UnsafeCell};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use memo::MemoSet;
pub use memo::{
    fork_child as memo_fork_child, fork_parent as memo_fork_parent,
    fork_prepare as memo_fork_prepare, free_buffers as free_memo_buffers,
    overwrite_lengths as overwrite_memo_lengths, repeated_walks,
};
pub use modules::{forget_modules, fork_child, fork_parent, fork_prepare};

/// Deepest stack kept; deeper ones end with [`peakprof::format::TRUNCATED_FRAME`].
pub const MAX_DEPTH: usize = 128;

/// Runtime address range of this library's code, whose frames are skipped.
static SELF_START: AtomicU64 = AtomicU64::new(0);
static SELF_END: AtomicU64 = AtomicU64::new(0);

/// Remembers where this library's code lives.
pub fn set_self_range(start: u64, end: u64) {
    SELF_START.store(start, Ordering::Relaxed);
    SELF_END.store(end, Ordering::Relaxed);
}

#[inline]
fn self_range() -> (u64, u64) {
    (
        SELF_START.load(Ordering::Relaxed),
        SELF_END.load(Ordering::Relaxed),
    )
}

/// Checks every memo-assisted capture against a full walk (`PEAKPROF_CHECK_UNWIND=1`, for
/// tests): a difference aborts the program with a message.
static CHECK_MEMO: AtomicBool = AtomicBool::new(false);

/// Turns on [`CHECK_MEMO`].
pub fn set_check_memo(on: bool) {
    CHECK_MEMO.store(on, Ordering::Relaxed);
}

/// A captured stack: room for [`MAX_DEPTH`] frames and the truncation marker, of which the
/// first `len` words are written. The room is not zeroed: a capture runs on every
/// allocation, and clearing 1 KiB each time showed in profiles (cc1: 1% of its run).
pub struct Frames {
    buf: UnsafeCell<[MaybeUninit<u64>; MAX_DEPTH + 1]>,
    len: Cell<usize>,
    /// The outer frames of a capture that repeated an earlier walk whose stack id is known:
    /// the `pc`s of these levels of that walk's memo (an address and a count; 0: none),
    /// appended to `buf` when the frames are first read ([`Frames::as_slice`]). The
    /// profiler needs only the id then, so the copy (~70 instructions a capture on sqlite3,
    /// ~5% of what the profiler runs there) is left for the rare reader: check mode, a
    /// remembered id the stack table does not know.
    pending: Cell<(usize, usize)>,
    /// The id these frames were interned as, when the capture repeated an earlier one
    /// whose id is known (see [`memo`]).
    known_stack: Option<u32>,
    /// The capture's walk is this thread's newest memo, so the id its frames get can be
    /// kept with it ([`remember_stack`]).
    newest: bool,
}

impl Frames {
    /// No frames yet.
    #[inline(always)]
    pub fn new() -> Self {
        // Not `Self { buf: [MaybeUninit::uninit(); _], len: 0 }`: rustc builds that literal
        // with one memset of the whole struct (zeroing `len` and, as a refinement of
        // "uninitialized", the buffer too), which is the cost this type exists to avoid.
        let mut f = MaybeUninit::<Self>::uninit();
        // SAFETY: the fields but `buf` are written through raw pointers to them (no
        // reference to uninitialized memory is made); `buf` is an array of `MaybeUninit`,
        // valid uninitialized, so the whole value is initialized once they are.
        unsafe {
            let p = f.as_mut_ptr();
            core::ptr::addr_of_mut!((*p).len).write(Cell::new(0));
            core::ptr::addr_of_mut!((*p).pending).write(Cell::new((0, 0)));
            core::ptr::addr_of_mut!((*p).known_stack).write(None);
            core::ptr::addr_of_mut!((*p).newest).write(false);
            f.assume_init()
        }
    }

    /// The id these frames were interned as, when the capture knows it without a lookup.
    #[inline(always)]
    pub fn known_stack(&self) -> Option<u32> {
        self.known_stack
    }

    /// The frames, innermost first. Read them before this thread's next capture (which may
    /// write over the memo that pending frames are copied from).
    #[inline(always)]
    pub fn as_slice(&self) -> &[u64] {
        if self.pending.get().1 != 0 {
            self.copy_pending();
        }
        // SAFETY: `push`, `extend` and `copy_pending`, the only writers, initialize every
        // word below `len` before counting it, and `len` never passes the buffer's size
        // (they index it).
        unsafe { core::slice::from_raw_parts(self.buf.get().cast::<u64>(), self.len.get()) }
    }

    /// Appends the pending frames (see `pending`).
    #[cold]
    #[inline(never)]
    fn copy_pending(&self) {
        let (at, n) = self.pending.replace((0, 0));
        let len = self.len.get();
        // The levels lie in this thread's memo set (`defer`'s caller took them from one),
        // which no capture wrote since (`as_slice`'s contract). Out of it (never), the frames
        // stay short rather than read anything else.
        let Some(levels) = memo::levels_at(at, n) else {
            return;
        };
        // SAFETY: no reference into the buffer is live: `as_slice`, the only one to hand
        // one out, empties `pending` first, so while frames are pending none was handed out
        // since the capture (which held `&mut self`) wrote them.
        let buf = unsafe { &mut *self.buf.get() };
        // Indexed (a bug would panic, not write past the buffer): `defer`'s caller checked
        // that the frames fit.
        for (word, l) in buf[len..len + n].iter_mut().zip(levels) {
            word.write(l.pc);
        }
        self.len.set(len + n);
    }

    /// Number of frames (pending ones included).
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len.get() + self.pending.get().1
    }

    #[inline(always)]
    fn clear(&mut self) {
        self.len.set(0);
        self.pending.set((0, 0));
        self.known_stack = None;
        self.newest = false;
    }

    /// Appends a frame; panics (a bug) past the buffer's size, like any indexing.
    #[inline(always)]
    fn push(&mut self, pc: u64) {
        let len = self.len.get();
        self.buf.get_mut()[len].write(pc);
        self.len.set(len + 1);
    }

    /// Appends frames; panics (a bug) past the buffer's size, like any indexing.
    #[inline(always)]
    fn extend(&mut self, frames: impl ExactSizeIterator<Item = u64>) {
        let len = self.len.get();
        let room = &mut self.buf.get_mut()[len..len + frames.len()];
        // Count the words written, not the length the iterator claims (a safe trait that
        // could be wrong): `as_slice` relies on every counted word being written.
        let mut written = 0;
        for (word, pc) in room.iter_mut().zip(frames) {
            word.write(pc);
            written += 1;
        }
        self.len.set(len + written);
    }

    /// Leaves the `pc`s of `levels` (levels of a memo of this thread's, which fit after the
    /// frames written) to be appended when the frames are read; one call per capture, last.
    #[inline(always)]
    fn defer(&mut self, levels: &[memo::Level]) {
        // An address, not a pointer: the levels are read again from the memo set's own
        // pointer (`memo::levels_at`), as the capture's references to the set end.
        self.pending.set((levels.as_ptr() as usize, levels.len()));
    }
}

/// Where an interposed function was entered: its stack pointer at entry (which points at
/// the return address into its caller) and the frame pointer register then (the caller's).
/// A capture that knows it starts at the caller's frame, instead of stepping out of this
/// library's own frames one rule lookup at a time (three or four of them on every
/// allocation, each a link of the walk's dependent chain).
#[derive(Clone, Copy)]
pub struct Origin {
    pub sp: u64,
    pub bp: u64,
}

/// Fills `out` with the calling thread's return addresses (innermost first) and returns how
/// many were written. A stack deeper than `MAX_DEPTH` ends with the truncation marker.
/// `origin`, when known, is where the hook being served was entered.
#[inline(always)]
pub fn capture(out: &mut Frames, origin: Option<Origin>) -> usize {
    let n = match fast::capture(out, true, origin) {
        Some(n) => n,
        None => libgcc::capture(out),
    };
    if checking() {
        check_against_full_walk(out.as_slice());
    }
    n
}

/// Keeps `id`, the id `frames` were just interned as, with the walk that captured them, so
/// a later capture repeating that walk knows it without a lookup.
#[inline(always)]
pub fn remember_stack(frames: &Frames, id: u32) {
    if frames.newest {
        memo::remember_stack(id);
    }
}

/// Whether captures are checked against full walks ([`CHECK_MEMO`]): callers check the
/// ids they were handed too.
#[inline(always)]
pub fn checking() -> bool {
    CHECK_MEMO.load(Ordering::Relaxed)
}

#[cold]
#[inline(never)]
fn check_against_full_walk(got: &[u64]) {
    let mut full = Frames::new();
    capture_with(Method::CachedNoMemo, &mut full, None);
    // Both walks skip this library's frames, so they agree word for word.
    if got != full.as_slice() {
        check_failed(b"a memoized stack differs from a full walk");
    }
}

/// `PEAKPROF_CHECK_UNWIND` caught a difference: says which, then aborts (the check's whole
/// point is to fail loudly).
#[cold]
#[inline(never)]
pub fn check_failed(what: &[u8]) -> ! {
    const PREFIX: &[u8] = b"peakprof: PEAKPROF_CHECK_UNWIND: ";
    // SAFETY: writes static buffers to stderr, then aborts; none of it allocates.
    unsafe {
        libc::write(2, PREFIX.as_ptr().cast(), PREFIX.len());
        libc::write(2, what.as_ptr().cast(), what.len());
        libc::write(2, b"\n".as_ptr().cast(), 1);
        libc::abort()
    }
}

/// Which unwinder [`capture_with`] uses (for the stack-capture benchmark).
#[derive(Clone, Copy)]
pub enum Method {
    /// Cached rules, memos of recent captures, libgcc fallback (what the profiler uses).
    Cached,
    /// libgcc's `_Unwind_Backtrace` on every capture.
    Libgcc,
    /// Cached rules without the memo (every frame walked).
    CachedNoMemo,
}

/// Captures with a chosen method; the cached ones start at `origin` when given, as in the
/// hooks (libgcc's always steps out of this library's frames).
#[inline(never)]
pub fn capture_with(method: Method, out: &mut Frames, origin: Option<Origin>) -> usize {
    match method {
        Method::Cached => capture(out, origin),
        Method::Libgcc => libgcc::capture(out),
        Method::CachedNoMemo => {
            fast::capture(out, false, origin).unwrap_or_else(|| libgcc::capture(out))
        }
    }
}

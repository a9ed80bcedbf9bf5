//! A small static arena that serves allocations made while the real allocator is still
//! being looked up (`dlsym` itself may call `calloc`). Never freed: `free` recognizes and
//! ignores its pointers.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering};

const SIZE: usize = 256 * 1024;
const ALIGN: usize = 16;
/// Each block is preceded by its size, so `realloc` can copy out of it.
const HEADER: usize = 16;

#[repr(C, align(16))]
struct Arena(UnsafeCell<[u8; SIZE]>);

// SAFETY: blocks are handed out by an atomic bump pointer, so no two callers ever get
// overlapping bytes; the arena itself is never read or written here except for headers
// of blocks the caller just reserved.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; SIZE]));
static USED: AtomicUsize = AtomicUsize::new(0);

fn base() -> usize {
    ARENA.0.get() as usize
}

/// Whether `p` points into the arena.
pub fn contains(p: *const c_void) -> bool {
    let p = p as usize;
    p >= base() && p < base() + SIZE
}

/// A zeroed block of `size` bytes, or null when the arena is exhausted.
pub fn alloc(size: usize) -> *mut c_void {
    let need = match size.checked_add(HEADER + ALIGN - 1) {
        Some(n) => n & !(ALIGN - 1),
        None => return core::ptr::null_mut(),
    };
    let start = USED.fetch_add(need, Ordering::Relaxed);
    if start.checked_add(need).is_none_or(|end| end > SIZE) {
        return core::ptr::null_mut();
    }
    let block = base() + start;
    // SAFETY: [block, block + need) lies inside the arena and was reserved for this call
    // alone by the fetch_add above; the static starts zeroed and is never reused.
    unsafe {
        (block as *mut usize).write(size);
    }
    (block + HEADER) as *mut c_void
}

/// The size requested for a block from [`alloc`].
///
/// # Safety
/// `p` must have been returned by [`alloc`].
pub unsafe fn size_of(p: *const c_void) -> usize {
    // SAFETY: the caller guarantees `p` came from `alloc`, which wrote the size HEADER
    // bytes before it.
    unsafe { ((p as usize - HEADER) as *const usize).read() }
}

//! The library peakprof preloads into the profiled program.
//!
//! A thin unsafe shell: it interposes the allocation functions, captures stacks, and hands
//! `(address, size, stack)` events to the pure recorder of the `peakprof` crate, which it
//! writes as a profile file when the process ends. All the `unsafe` of the project lives
//! here, each block with the reason it is sound.

mod biased;
mod bootstrap;
mod child_env;
mod clock;
mod environ;
mod exec;
mod guard;
mod hooks;
mod lanes;
mod livefile;
mod lock;
mod modules;
mod ownfd;
mod pages;
mod procfs;
mod real;
mod sampled;
mod signals;
mod state;
mod thread;
mod threads;
mod unwind;

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, Ordering};

/// The profiler's own memory comes from the real allocator, never from the hooked one: it
/// must not be counted, and must not recurse into the recorder.
struct RealAllocator;

/// Alignment `malloc` guarantees on 64-bit glibc.
const MALLOC_ALIGN: usize = 16;

// SAFETY: forwards to the real malloc family, which satisfies GlobalAlloc's contract for
// the alignments it is asked for here (larger ones go through memalign).
unsafe impl GlobalAlloc for RealAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: plain allocation of a non-zero size (GlobalAlloc's contract).
            unsafe { real::malloc(layout.size()).cast() }
        } else {
            // SAFETY: a power-of-two alignment, as Layout guarantees.
            unsafe { real::memalign(layout.align(), layout.size()).cast() }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: plain zeroed allocation.
            unsafe { real::calloc(1, layout.size()).cast() }
        } else {
            // SAFETY: allocate, then zero the bytes we own.
            unsafe {
                let p = self.alloc(layout);
                if !p.is_null() {
                    core::ptr::write_bytes(p, 0, layout.size());
                }
                p
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator.
        unsafe { real::free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: `ptr` came from real::malloc/calloc of this allocator.
            return unsafe { real::realloc(ptr.cast(), new_size).cast() };
        }
        // SAFETY: allocate the new block, copy what both hold, free the old one.
        unsafe {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[global_allocator]
static ALLOCATOR: RealAllocator = RealAllocator;

extern "C" {
    /// glibc: like `atexit`, but the handler is given the exit status.
    fn on_exit(
        f: extern "C" fn(core::ffi::c_int, *mut core::ffi::c_void),
        arg: *mut core::ffi::c_void,
    ) -> core::ffi::c_int;
}

/// Whether [`at_exit`] is registered (it then writes the final profile, not [`on_unload`]).
static AT_EXIT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_load() {
    state::try_start(true);
    // Registered here, before the program's start-up registers the loader's destructor
    // pass: exit handlers run last-registered first, so this one runs after every
    // destructor (ours included), with the status `exit` or `main` gave.
    // SAFETY: registers a plain function that lives as long as the process.
    if unsafe { on_exit(at_exit, core::ptr::null_mut()) } == 0 {
        AT_EXIT.store(true, Ordering::Relaxed);
    }
}

extern "C" fn at_exit(status: core::ffi::c_int, _arg: *mut core::ffi::c_void) {
    state::set_exit_status(status);
    state::finish(peakprof::format::WriteReason::Exit);
}

extern "C" fn on_unload() {
    if !AT_EXIT.load(Ordering::Relaxed) {
        state::finish(peakprof::format::WriteReason::Exit);
    }
}

/// Runs when the loader maps the library, before the program's `main`.
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = on_load;

/// Runs at `exit` (after the program's atexit handlers and destructors of later objects).
#[used]
#[link_section = ".fini_array"]
static FINI: extern "C" fn() = on_unload;

/// How many unwinder memo buffers wait for a new thread in this process. For tests only
/// (`examples/fork_threads_memo.c` looks it up with `dlsym`): a fork child must get back
/// the buffers of the threads that did not come along.
#[no_mangle]
pub extern "C" fn peakprof_debug_free_memo_buffers() -> usize {
    unwind::free_memo_buffers()
}

/// How many stack captures of the calling thread repeated one of its earlier walks whole
/// (and so knew the stack's id without a lookup). For tests only
/// (`examples/rotating_sites.c` looks it up with `dlsym`).
#[no_mangle]
pub extern "C" fn peakprof_debug_repeated_walks() -> u64 {
    unwind::repeated_walks()
}

/// Writes `len` over the length field of every unwinder memo of the calling thread. For
/// tests only (`examples/rotating_sites.c overwrite` looks it up with `dlsym`): a program
/// that writes over the profiler's memory must not make a capture read past a memo.
#[no_mangle]
pub extern "C" fn peakprof_debug_overwrite_memo_lengths(len: u32) {
    unwind::overwrite_memo_lengths(len)
}

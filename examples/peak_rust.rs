//! peak_rust: a Rust program whose peak is known to the byte.
//!
//! Built by cargo as `target/<profile>/examples/peak_rust` (dev profile for the tests).
//! Exits with code 0 and prints exactly one line, "peak_rust: done\n", after the peak.
//!
//! EXPECTED PEAK: two ground truths, because std looks at the signal dispositions it starts
//! with. std's stack-overflow support (an alternate signal stack and a thread-info map) is set
//! up only if SIGSEGV or SIGBUS still has its default action when `main` starts; a preloaded
//! profiler that installs crash handlers in its constructor (peakprof does, for SIGSEGV and
//! SIGBUS among others) therefore makes std skip it. examples/signal_dispositions.c tells the
//! tests which case applies.
//!
//! - crash handlers installed before main (under peakprof): **261800** bytes;
//! - default dispositions (plain run, valgrind, heaptrack): **274636** bytes
//!   (rustc 1.95.0, glibc 2.36, x86_64, AT_MINSIGSTKSZ <= 8192).
//!
//! Either way the peak is reached by the allocation in `hold_box`. Live at that moment:
//!
//! | function (ours)            | how                                          | bytes  |
//! |----------------------------|----------------------------------------------|--------|
//! | `peak_rust::hold_vec_a`    | `Vec::<u8>::with_capacity(120_000)`          | 120000 |
//! | `peak_rust::hold_vec_b`    | `Vec::<u8>::with_capacity(64_000)`           |  64000 |
//! | `peak_rust::hold_box`      | `Box<[u64; 4096]>`                           |  32768 |
//! | `peak_rust::thread_alloc`  | `Vec::<u8>::with_capacity(45_000)` in a      |  45000 |
//! |                            | spawned thread, returned through `join`      |        |
//! | `peak_rust::spawn_worker`  | (see below: glibc's TLS-destructor record)   |     32 |
//! | subtotal                   |                                              | 261800 |
//! | only with default SIGSEGV/SIGBUS dispositions:                            |        |
//! | std runtime, before main   | the main thread's alternate signal stack:    |  12288 |
//! |                            | anonymous `mmap64` of SIGSTKSZ(8192)+1 page  |        |
//! | std runtime, before main   | stack-overflow thread-info map: a BTreeMap   |    544 |
//! |                            | leaf node, plus the Box<str> name "main"     |      4 |
//! | total                      |                                              | 274636 |
//!
//! Inclusive bytes per function at the peak (both cases): `peak_rust::main` 216800
//! (hold_vec_a + hold_vec_b + hold_box + spawn_worker's 32; the thread's block has the thread's
//! start as root, the runtime's blocks are under `std::rt::init`); `peak_rust::thread_alloc`
//! 45000; `peak_rust::spawn_worker` 32; `peak_rust::make_temporary` 0 (its 150000 bytes, more
//! than any single held block, are freed before the peak).
//!
//! What the std runtime allocates on its own (found with examples/tools/alloc_trace.c):
//! - before main, in `std::rt::init` -> `stack_overflow::init`: transient `pthread_getattr_np`
//!   buffers (a FILE, its 1024-byte buffer, a getline buffer and a 128-byte cpu set, all freed
//!   at once), then, live until exit: the alternate signal stack (`mmap64` of
//!   max(SIGSTKSZ = 8192, getauxval(AT_MINSIGSTKSZ)) + 4096 bytes = 12288 here), the thread
//!   name "main" as a `Box<str>` (4 bytes) and the `BTreeMap` leaf node (544 bytes) of the
//!   thread-info map used by the SIGSEGV handler.
//! - `std::thread::spawn` in the main thread: Thread/Packet `Arc`s and the boxed closure
//!   (0x30, 0x30, 0x28, 0x18 bytes; all freed by the end of `join`), and the first use of the
//!   `SPAWN_HOOKS` thread-local registers its destructor with glibc's
//!   `__cxa_thread_atexit_impl`, which callocs a 32-byte record that lives until the main
//!   thread exits: it is attributed to `spawn_worker` (and `peak_rust::main`).
//! - pthread_create callocs the new thread's DTV (16 * (TLS modules + 16) bytes: depends on the
//!   preloaded profiler). glibc keeps it with the thread's stack in its stack cache after the
//!   join, unless the stack is freed: the thread is given a 64 MiB stack (virtual memory only),
//!   more than glibc's 40 MiB stack cache, so glibc unmaps that stack at the join and frees
//!   the DTV with it. Nothing of the thread is then left but the Vec it returned.
//! - inside the thread: its pthread_getattr_np buffers, its TLS-destructor record and (with
//!   default dispositions) its own alternate signal stack (mmap64, munmap at thread exit): all
//!   gone before the join returns.
//! - `println!` allocates stdout's 1024-byte buffer; it is used only after the peak.
//!
//! Verified with examples/tools/alloc_trace.c + peak_from_trace.py, on the binary cargo
//! builds: 274636 with default dispositions, and 261800 (20 allocation calls, the 5 blocks
//! above) with ALLOC_TRACE_CRASH_HANDLERS=1, which installs SIGSEGV and SIGBUS handlers before
//! main as peakprof's preload does; valgrind --trace-malloc=yes (the same malloc-family calls
//! in the same order, default dispositions; valgrind does not report the mmap64) and
//! heaptrack_print (peak heap 335.05K = 262348 without the mmap, plus 72704 from the libstdc++
//! heaptrack's own library loads).
//! These numbers belong to this toolchain: a newer std may allocate differently at startup.

use std::hint::black_box;

#[inline(never)]
fn make_temporary() {
    let mut v = Vec::<u8>::with_capacity(150_000);
    v.resize(150_000, 9); // within capacity: no reallocation
    black_box(&v);
}

#[inline(never)]
fn thread_alloc() -> Vec<u8> {
    let mut v = Vec::<u8>::with_capacity(45_000);
    v.resize(45_000, 3);
    v
}

#[inline(never)]
fn spawn_worker() -> Vec<u8> {
    std::thread::Builder::new()
        // Larger than glibc's 40 MiB stack cache: the stack, and the DTV glibc keeps with
        // it, are released at the join instead of being cached.
        .stack_size(64 << 20)
        .spawn(thread_alloc)
        .expect("spawn")
        .join()
        .expect("join")
}

#[inline(never)]
fn hold_vec_a() -> Vec<u8> {
    let mut v = Vec::<u8>::with_capacity(120_000);
    v.resize(120_000, 1);
    v
}

#[inline(never)]
fn hold_vec_b() -> Vec<u8> {
    let mut v = Vec::<u8>::with_capacity(64_000);
    v.resize(64_000, 2);
    v
}

#[inline(never)]
fn hold_box() -> Box<[u64; 4096]> {
    Box::new([7u64; 4096])
}

fn main() {
    make_temporary(); //                   (runtime 12836 or 0) + 150000, then back
    let from_thread = spawn_worker(); //   + 45000 + 32 (the thread's own blocks come and go)
    let a = hold_vec_a(); //               + 120000
    let b = hold_vec_b(); //               + 64000
    let boxed = hold_box(); //             + 32768 = 274636 <- the peak
    black_box((&from_thread, &a, &b, &boxed));
    drop((from_thread, a, b, boxed));
    println!("peak_rust: done"); // stdout's buffer is allocated only now, after the peak
}

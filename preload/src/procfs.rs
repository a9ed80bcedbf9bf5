//! Facts about the process, read without the hooked allocator in the way: these run inside
//! the profiler with the guard held, so their allocations go to the real allocator.
//!
//! Per-process files are read through `/proc/thread-self`, the calling thread's view of the
//! process, not `/proc/self`, the thread-group leader's: a main thread that ended with
//! `pthread_exit` leaves the leader a zombie without a memory map, whose `exe` cannot be
//! read and whose `cmdline` and `statm` read as empty, while the other threads run on (and
//! one of them writes the final profile). `/proc/self` remains the fallback for kernels
//! before 3.17, which have no `thread-self`.

use std::io::Read;

/// Opens `/proc/thread-self/<name>`, or `/proc/self/<name>` when that does not exist.
fn open(name: &str) -> std::io::Result<std::fs::File> {
    std::fs::File::open(format!("/proc/thread-self/{name}"))
        .or_else(|_| std::fs::File::open(format!("/proc/self/{name}")))
}

/// The executable's path. When the file was replaced or removed while the program runs (a
/// rebuild during a long job), the kernel appends " (deleted)"; the path without it is what
/// the symbolizer should look at, and its build-id check refuses a file that differs.
pub fn self_exe() -> String {
    let path = std::fs::read_link("/proc/thread-self/exe")
        .or_else(|_| std::fs::read_link("/proc/self/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    match path.strip_suffix(" (deleted)") {
        Some(original) => original.to_owned(),
        None => path,
    }
}

/// The command line, one entry per argument, empty ones included (see
/// [`peakprof::format::argv_from_cmdline`]).
pub fn cmdline() -> Vec<String> {
    let _no_cancel = crate::guard::NoCancel::new();
    let mut buf = Vec::new();
    if let Ok(mut f) = open("cmdline") {
        let _ = f.read_to_end(&mut buf);
    }
    peakprof::format::argv_from_cmdline(&buf)
}

/// Peak resident set size of this process so far, in bytes.
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0 {
        (ru.ru_maxrss as u64) * 1024
    } else {
        0
    }
}

/// Resident set size right now, from `/proc/thread-self/statm` (`/proc/self/statm` before
/// Linux 3.17), without allocating; 0 when it cannot be read.
pub fn current_rss_bytes() -> u64 {
    let _no_cancel = crate::guard::NoCancel::new();
    let mut buf = [0u8; 128];
    // SAFETY: a NUL-terminated path; the descriptor is ours and closed below; `read` writes
    // at most `buf.len()` bytes into `buf`.
    let n = unsafe {
        let mut fd = libc::open(
            c"/proc/thread-self/statm".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            fd = libc::open(
                c"/proc/self/statm".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            );
        }
        if fd < 0 {
            return 0;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    if n <= 0 {
        return 0;
    }
    // "size resident shared ...", in pages.
    let text = &buf[..n as usize];
    let Some(pages) = text
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|f| core::str::from_utf8(f).ok())
        .and_then(|f| f.trim().parse::<u64>().ok())
    else {
        return 0;
    };
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    pages * page
}

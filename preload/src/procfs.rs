//! Facts about the process, read without the hooked allocator in the way: these run inside
//! the profiler with the guard held, so their allocations go to the real allocator.

use std::io::Read;

/// The executable's path.
pub fn self_exe() -> String {
    std::fs::read_link("/proc/self/exe")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The command line, one entry per argument.
pub fn cmdline() -> Vec<String> {
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open("/proc/self/cmdline") {
        let _ = f.read_to_end(&mut buf);
    }
    buf.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
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

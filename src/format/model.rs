//! The data one profiled process leaves behind: what the preload writes and the CLI reads.
//!
//! Addresses are raw runtime addresses of the target process. Nothing here is symbolized:
//! the target never pays for symbolization, and a process that dies still leaves a readable
//! profile.

/// Marks the root end of a stack that was cut at the depth limit, so its bytes are shown
/// under `[truncated]` instead of being attributed to whatever frame happened to be last.
pub const TRUNCATED_FRAME: u64 = u64::MAX;

/// Everything one process left behind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    pub meta: Meta,
    /// Loaded modules (executable, shared libraries), to map addresses back to files.
    pub modules: Vec<Module>,
    /// Call stacks referenced by `peak` and `exit`, indexed by `SiteBytes::stack`.
    pub stacks: Vec<Stack>,
    /// Bytes and allocation counts per stack that were live at the moment of the peak.
    pub peak: Vec<SiteBytes>,
    /// Bytes and allocation counts per stack still live when the profile was written.
    pub exit: Vec<SiteBytes>,
    /// Bytes and number of allocations made by each stack over the whole run.
    pub allocs: Vec<SiteBytes>,
    /// Tracked bytes over time, bounded; each point holds the maximum of its interval.
    pub timeline: Vec<TimelinePoint>,
}

/// Facts about the process and the run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    pub pid: u32,
    pub ppid: u32,
    /// The command line as the process saw it (its `cmdline` in `/proc`), empty arguments
    /// included, lossily decoded (see [`argv_from_cmdline`]).
    pub argv: Vec<String>,
    /// The executable (`/proc/self/exe`).
    pub exe: String,
    /// Wall-clock start of profiling, nanoseconds since the Unix epoch.
    pub start_unix_ns: u64,
    /// Nanoseconds from the start of profiling to the moment the profile was written.
    pub duration_ns: u64,
    /// Highest total of tracked live bytes.
    pub peak_bytes: u64,
    /// Nanoseconds from the start of profiling to the moment of the peak.
    pub peak_time_ns: u64,
    /// Highest resident set size of the process, as the kernel counted it.
    pub peak_rss_bytes: u64,
    /// Tracked live bytes when the profile was written.
    pub final_bytes: u64,
    /// Number and bytes of all allocations over the run.
    pub total_allocs: u64,
    pub total_alloc_bytes: u64,
    /// 0 in exact mode; otherwise the mean sampling interval in bytes.
    pub sample_rate: u64,
    /// Why this profile was written.
    pub reason: WriteReason,
    /// Stacks cut at the depth limit.
    pub truncated_stacks: u64,
    /// The exit code the process gave `exit`, `_exit` or a return from `main`, when it
    /// ended that way: a child's own status, which only its parent sees otherwise.
    pub exit_code: Option<i32>,
}

/// Why the profile file holds what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteReason {
    /// The process exited normally (exit, return from main).
    #[default]
    Exit,
    /// The process was dying of this signal.
    Signal(i32),
    /// A snapshot taken while the process kept running (SIGUSR2, periodic).
    Snapshot,
    /// The process called `_exit`/`_Exit` directly.
    FastExit,
    /// The process replaced itself with `exec`.
    Exec,
    /// The process ended without writing its profile (SIGKILL, the OOM killer): the profile
    /// was recovered from its live counters.
    Killed,
    /// `--limit` with `--limit-action stop`: the profiler ended the process when its heap
    /// first exceeded the limit.
    LimitStop,
    /// The process was still running when its profile was read (`peakprof report` during
    /// a run): the profile is its current state, from its live counters. Never written by
    /// the preload; the CLI tells it from `Killed` ([`crate::format::live`] cannot).
    Running,
}

/// One loaded ELF object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Module {
    /// Path of the file as the loader saw it; empty for objects with no file (vdso).
    pub path: String,
    /// GNU build-id (NT_GNU_BUILD_ID), empty when the object has none.
    pub build_id: Vec<u8>,
    /// Load bias: runtime address = file virtual address + bias.
    pub bias: u64,
    /// Runtime address ranges of its loaded (PT_LOAD) segments, `[start, end)`.
    pub ranges: Vec<(u64, u64)>,
}

impl Module {
    /// Whether the runtime address `addr` falls inside one of this module's segments.
    pub fn contains(&self, addr: u64) -> bool {
        self.ranges.iter().any(|&(s, e)| s <= addr && addr < e)
    }
}

/// The arguments in the text of `/proc/PID/cmdline`, as [`Meta::argv`] holds them. Each
/// argument ends with a NUL, so an empty argument is an empty entry, kept (`prog "" x` is
/// not `prog x`), and only the final NUL ends the list. A process that rewrote its argument
/// area may leave no NUL at the end: what follows the last NUL is then an argument too.
/// Empty entries at the end are dropped (but for `argv[0]`): a program that sets its title
/// (nginx, PostgreSQL) pads the rest of the old area with NULs, which would read as dozens
/// of empty arguments; a genuine trailing empty argument is lost with them. Invalid UTF-8
/// is replaced.
pub fn argv_from_cmdline(cmdline: &[u8]) -> Vec<String> {
    if cmdline.is_empty() {
        return Vec::new();
    }
    let mut argv: Vec<String> = cmdline
        .strip_suffix(&[0])
        .unwrap_or(cmdline)
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    while argv.len() > 1 && argv.last().is_some_and(String::is_empty) {
        argv.pop();
    }
    argv
}

/// A call stack as captured: return addresses, innermost (leaf) first. A stack cut at the
/// depth limit ends with [`TRUNCATED_FRAME`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Stack {
    pub frames: Vec<u64>,
}

/// Bytes and number of allocations attributed to one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SiteBytes {
    pub stack: u32,
    pub bytes: u64,
    pub count: u64,
}

/// One point of the timeline: the maximum tracked bytes and RSS during an interval that
/// ends at `time_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimelinePoint {
    pub time_ns: u64,
    /// The most tracked bytes during the interval.
    pub bytes: u64,
    pub rss_bytes: u64,
    /// Tracked bytes at the interval's last event: what was held across a following stretch
    /// with no activity.
    pub last_bytes: u64,
}

//! The symbolized view of one process's profile: what every renderer draws from.
//!
//! Built from a raw [`crate::format::Profile`] by the symbolizer; renderers never see raw
//! addresses, and never reach back into the recorder.

/// How the profiled process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExitStatus {
    /// Exit code when it exited; `None` when killed by a signal or unknown.
    pub code: Option<i32>,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
}

/// A frame's display name. Shared: the same few thousand names recur in every stack of
/// every list of a report, and each renderer reorders and merges those stacks, so a clone
/// must not copy the text (a cc1 profile's report spent a third of its time copying
/// strings).
pub type FrameName = std::sync::Arc<str>;

/// One call path and what it held: frames are display names, root (e.g. `main`) first,
/// allocation site last. Each name is `function (file:line)`, or `function` when no line
/// is known, or `module+0xoffset` when nothing resolves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SymStack {
    pub frames: Vec<FrameName>,
    pub bytes: u64,
    pub count: u64,
}

/// A symbolized process profile.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// The command line the process ran.
    pub argv: Vec<String>,
    pub pid: u32,
    pub ppid: u32,
    pub exit: ExitStatus,
    pub peak_bytes: u64,
    pub peak_time_s: f64,
    pub peak_rss_bytes: u64,
    pub duration_s: f64,
    pub total_allocs: u64,
    pub total_alloc_bytes: u64,
    /// 0 in exact mode; otherwise the sampling interval in bytes.
    pub sample_rate: u64,
    /// Live call paths at the peak, largest first.
    pub at_peak: Vec<SymStack>,
    /// Call paths still live at exit (leaks), largest first.
    pub at_exit: Vec<SymStack>,
    /// Tracked bytes live when the profile was written (at the end, or now): exact in both
    /// modes, where `at_exit` holds, in sampled mode, estimates for the sampled blocks only.
    pub final_bytes: u64,
    /// Bytes and counts allocated over the whole run, per call path (not only live ones).
    pub allocated: Vec<SymStack>,
    /// Tracked bytes (and RSS, 0 when unknown) over time; each point is the maximum of the
    /// interval ending at its time.
    pub timeline: Vec<crate::format::TimelinePoint>,
    /// The loaded modules of the process (for exports that carry mappings, like pprof).
    pub modules: Vec<crate::format::Module>,
    /// How the process ended, as recorded by the profiler: `exit`, `fast-exit` (`_exit`),
    /// `signal`, `killed` (no final profile: SIGKILL, OOM killer), `exec`, `snapshot`,
    /// `limit-stop` (ended by `--limit-action stop`), or `running` (not ended: still
    /// running when the report was made).
    pub end: String,
    /// The memory limit of the cgroup the process ran in (`memory.max`), when there is one.
    pub cgroup_limit_bytes: Option<u64>,
    /// Problems met while symbolizing (missing files, build-id mismatch), one line each.
    pub warnings: Vec<String>,
}

impl Report {
    /// Whether the process was still running when the report was made: it has a status
    /// rather than an end, and what it holds is live now, not left at an end.
    pub fn still_running(&self) -> bool {
        self.end == "running"
    }

    /// Bytes left live at the end (or now), exact: in sampled mode, where the leaked paths
    /// are estimates that miss every unsampled block, the recorded total.
    pub fn leaked_bytes(&self) -> u64 {
        if self.sample_rate == 0 {
            crate::render::total_bytes(&self.at_exit)
        } else {
            self.final_bytes
        }
    }

    /// The number of allocations left live, when known: in sampled mode only the sampled
    /// blocks are counted, so none is given.
    pub fn leaked_count(&self) -> Option<u64> {
        (self.sample_rate == 0).then(|| crate::render::total_count(&self.at_exit))
    }
}

/// A stack for tests: frames root first, bytes, count.
#[cfg(test)]
pub(crate) fn st(frames: &[&str], bytes: u64, count: u64) -> SymStack {
    SymStack {
        frames: frames.iter().map(|&s| s.into()).collect(),
        bytes,
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaked_bytes_are_exact_in_both_modes() {
        let exact = Report {
            at_exit: vec![st(&["main", "a"], 300, 2), st(&["main", "b"], 7, 1)],
            final_bytes: 307,
            ..Report::default()
        };
        assert_eq!((exact.leaked_bytes(), exact.leaked_count()), (307, Some(3)));
        // Sampled: one 4000-byte sample estimated at 5000; 100000 bytes were live in all.
        let sampled = Report {
            sample_rate: 65536,
            at_exit: vec![st(&["main", "a"], 5000, 1)],
            final_bytes: 100_000,
            ..Report::default()
        };
        assert_eq!(
            (sampled.leaked_bytes(), sampled.leaked_count()),
            (100_000, None)
        );
    }
}

//! From a raw profile to a symbolized [`Report`]: resolve each stack's return addresses to
//! frames, name them, and order them root first.

use crate::fast_map::FastMap;

use crate::format::{Profile, SiteBytes, WriteReason, TRUNCATED_FRAME};
use crate::report::{ExitStatus, FrameName, Report, SymStack};
use crate::symbolize::Symbolizer;

/// Root frames that every stack of a C program shares (libc's start-up code calling
/// `main`); they only push the interesting part of the graph further down. `_start` is
/// often unnamed (`prog+0x61f1`) in stripped executables, so everything root-ward of the
/// last of these is dropped, within the first few frames.
const STARTUP_FRAMES: &[&str] = &[
    "_start",
    "__libc_start_main",
    "__libc_start_main_impl",
    "__libc_start_call_main",
];
/// How deep from the root start-up frames are looked for.
const STARTUP_DEPTH: usize = 4;

/// Display name of the marker for stacks cut at the depth limit.
pub const TRUNCATED_NAME: &str = "[truncated]";

/// Whether a module is peakprof's own preload library, whose frames are never shown.
fn is_preload_module(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|f| f.starts_with("libpeakprof_preload"))
}

/// Symbolizes stacks of one profile, each distinct stack once.
struct StackNamer<'a> {
    profile: &'a Profile,
    sym: Symbolizer,
    preload_modules: Vec<usize>,
    /// Display names by stack id (formatted once per address by the symbolizer, then
    /// shared).
    cache: FastMap<u32, Vec<FrameName>>,
    /// Whether a return address is in a start-up function (asked of up to
    /// [`STARTUP_DEPTH`] root frames per stack; one symbol lookup and demangling each).
    startup: FastMap<u64, bool>,
    truncated: FrameName,
}

impl<'a> StackNamer<'a> {
    fn new(profile: &'a Profile, sym: Symbolizer) -> Self {
        let preload_modules = profile
            .modules
            .iter()
            .enumerate()
            .filter(|(_, m)| is_preload_module(&m.path))
            .map(|(i, _)| i)
            .collect();
        Self {
            profile,
            sym,
            preload_modules,
            cache: FastMap::default(),
            startup: FastMap::default(),
            truncated: TRUNCATED_NAME.into(),
        }
    }

    /// Display names of stack `id`, root first.
    fn names(&mut self, id: u32) -> Vec<FrameName> {
        if let Some(n) = self.cache.get(&id) {
            return n.clone();
        }
        let frames = &self.profile.stacks[id as usize].frames;
        // Start-up frames at the root are recognized from symbol tables alone, so that a
        // library whose only frames are those (libc, usually) never has its debug info
        // loaded; they are dropped like the display names below would be.
        let root_first: Vec<u64> = frames.iter().rev().copied().collect();
        let skip = root_first
            .iter()
            .take(STARTUP_DEPTH)
            .rposition(|&a| {
                a != TRUNCATED_FRAME
                    && *self.startup.entry(a).or_insert_with(|| {
                        self.sym
                            .symbol_name(a)
                            .is_some_and(|n| STARTUP_FRAMES.contains(&n.as_str()))
                    })
            })
            .map_or(0, |i| i + 1);
        let mut names = Vec::with_capacity(frames.len() + 4);
        for &addr in &root_first[skip..] {
            if addr == TRUNCATED_FRAME {
                names.push(self.truncated.clone());
                continue;
            }
            if self
                .sym
                .module_of(addr)
                .is_some_and(|m| self.preload_modules.contains(&m))
            {
                continue;
            }
            names.extend(self.sym.display_names(addr).iter().cloned());
        }
        let last_startup = names.iter().take(STARTUP_DEPTH).rposition(|n| {
            let function = n.split(" (").next().unwrap_or(n);
            STARTUP_FRAMES.contains(&function)
        });
        if let Some(i) = last_startup {
            names.drain(..=i);
        }
        self.cache.insert(id, names.clone());
        names
    }

    fn stacks(&mut self, sites: &[SiteBytes]) -> Vec<SymStack> {
        let mut out: Vec<SymStack> = sites
            .iter()
            .filter(|s| s.bytes > 0 || s.count > 0)
            .map(|s| SymStack {
                frames: self.names(s.stack),
                bytes: s.bytes,
                count: s.count,
            })
            .collect();
        out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.frames.cmp(&b.frames)));
        out
    }
}

/// The exit status recorded in the profile, for processes whose status the CLI did not
/// observe itself (children).
pub fn status_from_profile(p: &Profile) -> ExitStatus {
    match p.meta.reason {
        WriteReason::Signal(s) => ExitStatus {
            code: None,
            signal: Some(s),
        },
        // A stop at --limit is an exit too, with the preload's own code.
        WriteReason::Exit | WriteReason::FastExit | WriteReason::LimitStop => ExitStatus {
            code: p.meta.exit_code,
            signal: None,
        },
        _ => ExitStatus::default(),
    }
}

/// The `end` word of a report for how the profile was written.
pub fn end_name(reason: WriteReason) -> &'static str {
    match reason {
        WriteReason::Exit => "exit",
        WriteReason::FastExit => "fast-exit",
        WriteReason::Signal(_) => "signal",
        WriteReason::Snapshot => "snapshot",
        WriteReason::Exec => "exec",
        WriteReason::Killed => "killed",
        WriteReason::LimitStop => "limit-stop",
        WriteReason::Running => "running",
    }
}

/// Symbolizes `profile` into a report.
pub fn build_report(profile: &Profile, exit: ExitStatus, sym: Symbolizer) -> Report {
    let mut namer = StackNamer::new(profile, sym);
    let at_peak = namer.stacks(&profile.peak);
    let at_exit = namer.stacks(&profile.exit);
    let allocated = namer.stacks(&profile.allocs);
    let mut warnings = namer.sym.warnings().to_vec();
    warnings.extend(crate::allocator_check::warning_for(&profile.meta.exe));
    Report {
        at_peak,
        at_exit,
        allocated,
        timeline: profile.timeline.clone(),
        modules: profile.modules.clone(),
        warnings,
        ..facts_report(profile, exit)
    }
}

/// A report of `profile`'s facts (process, peak, totals, end) without its call paths,
/// timeline or modules, so nothing is symbolized: enough to list a process whose reports
/// are not rendered.
pub fn facts_report(profile: &Profile, exit: ExitStatus) -> Report {
    let m = &profile.meta;
    Report {
        argv: m.argv.clone(),
        pid: m.pid,
        ppid: m.ppid,
        exit,
        peak_bytes: m.peak_bytes,
        peak_time_s: m.peak_time_ns as f64 / 1e9,
        peak_rss_bytes: m.peak_rss_bytes,
        duration_s: m.duration_ns as f64 / 1e9,
        total_allocs: m.total_allocs,
        total_alloc_bytes: m.total_alloc_bytes,
        sample_rate: m.sample_rate,
        at_peak: Vec::new(),
        at_exit: Vec::new(),
        final_bytes: m.final_bytes,
        allocated: Vec::new(),
        timeline: Vec::new(),
        modules: Vec::new(),
        end: end_name(m.reason).to_string(),
        cgroup_limit_bytes: None,
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Meta, Stack};

    #[test]
    fn unresolved_frames_keep_their_place_and_truncation_shows_at_the_root() {
        let profile = Profile {
            meta: Meta {
                peak_bytes: 10,
                ..Meta::default()
            },
            stacks: vec![Stack {
                frames: vec![0x1234, 0x5678, TRUNCATED_FRAME],
            }],
            peak: vec![SiteBytes {
                stack: 0,
                bytes: 10,
                count: 1,
            }],
            ..Profile::default()
        };
        let r = build_report(&profile, ExitStatus::default(), Symbolizer::new(&[]));
        assert_eq!(r.at_peak.len(), 1);
        let names: Vec<&str> = r.at_peak[0].frames.iter().map(|f| &**f).collect();
        assert_eq!(names, ["[truncated]", "0x5678", "0x1234"]);
        assert_eq!(r.at_peak[0].bytes, 10);
        assert!(r.at_exit.is_empty());
    }

    #[test]
    fn preload_module_is_recognized_by_file_name() {
        assert!(is_preload_module(
            "/root/.cache/peakprof/x/libpeakprof_preload.so"
        ));
        assert!(!is_preload_module("/usr/lib/libc.so.6"));
    }
}

//! Reports of the children of a run that are made while the run goes on.
//!
//! A child that has ended has its final profile in `raw/` (written under a temporary name
//! and renamed, so one that is there is whole), and nothing in its reports depends on the
//! processes still running: they can be symbolized and rendered on a spare core before the
//! root ends. gcc's cc1 ends ~0.1 s before the driver (which still runs `as`), and its
//! reports took ~0.1 s after the run, 2% of the compile. The run's report takes what was
//! made here only for a profile equal to the one it reads itself, so an early report is
//! never a stale one.
//!
//! Only children that can still be among the rendered ones are done (fewer larger peaks
//! seen so far than the run's report renders), largest first within what one look finds,
//! and those pushed out by larger ones later are dropped: a tree of many small workers
//! costs a few renders more than it shows, and holds at most that many.
//!
//! Costs and a difference: the rendering competes with the program's own processes for
//! the CPU and counts in the process tree's memory (tens of MiB for a big child, after
//! that child is gone); with one CPU there is no spare core and nothing is done early. A
//! child's files are read when it is rendered: a binary deleted or rebuilt later in the
//! run (a configure script's test programs) is named when rendered early, and falls back
//! to `module+0xoffset` names when rendered at the end, as before.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::analyze::status_from_profile;
use crate::commands::{process_report, RENDERED_PROCESSES};
use crate::format::{Profile, WriteReason};
use crate::outputs::{self, OomReport, Rendered, ReportSet};
use crate::report::Report;
use crate::symbolize::SymbolCache;

/// How often `raw/` is looked at for profiles of children that ended.
const POLL: Duration = Duration::from_millis(10);

/// A child's reports, made from `profile`.
pub struct Prerendered {
    pub profile: Profile,
    pub report: Report,
    pub oom: Option<OomReport>,
    pub outputs: Rendered,
}

/// Early reports by the path of the profile they were made of.
pub type Prerenders = HashMap<PathBuf, Prerendered>;

/// What a child's reports depend on besides its profile: as the run's report will have it.
#[derive(Clone, Copy)]
pub struct Settings {
    /// `--limit` and its action.
    pub limit: Option<(u64, &'static str)>,
    /// The cgroup's `memory.max`.
    pub cgroup_limit: Option<u64>,
    /// `--system-lines`.
    pub system_lines: bool,
    /// `--all-processes`: every child is rendered.
    pub all: bool,
}

/// The thread making early reports; [`EarlyRenders::finish`] stops it and hands them over.
pub struct EarlyRenders {
    stop: Arc<AtomicBool>,
    looked_at: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Prerenders>>,
}

impl EarlyRenders {
    /// Starts watching `raw` (no early reports at all if no thread can be started: the run's
    /// report then makes every one itself).
    pub fn start(raw: &Path, settings: Settings) -> EarlyRenders {
        let stop = Arc::new(AtomicBool::new(false));
        let looked_at = Arc::new(AtomicUsize::new(0));
        let raw = raw.to_path_buf();
        let (stopped, looked) = (Arc::clone(&stop), Arc::clone(&looked_at));
        let thread = std::thread::Builder::new()
            .name("peakprof-early".into())
            .spawn(move || watch(&raw, settings, &stopped, &looked))
            .ok();
        EarlyRenders {
            stop,
            looked_at,
            thread,
        }
    }

    /// How many final profiles the thread has dealt with so far (made reports of, or
    /// passed over).
    pub fn looked_at(&self) -> usize {
        self.looked_at.load(Ordering::Acquire)
    }

    /// Tells the thread to stop: it starts nothing new (a report under way is finished:
    /// the run's report would make it again otherwise).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }

    /// Stops the watching and returns the reports made.
    pub fn finish(mut self) -> Prerenders {
        self.stop();
        let Some(thread) = self.thread.take() else {
            return Prerenders::new();
        };
        // A panic in there (a bug) costs only the early reports.
        thread.join().unwrap_or_default()
    }
}

/// The early reports of a run, for its report to take: the thread is told to stop when
/// the run ends, and joined only when a child's report is first asked for (the root's is
/// made meanwhile).
pub struct Early {
    thread: Option<EarlyRenders>,
    made: Prerenders,
}

impl Early {
    /// None (`peakprof report`, or a run without the thread).
    pub fn none() -> Early {
        Early {
            thread: None,
            made: Prerenders::new(),
        }
    }

    /// These reports, made already (for tests).
    #[cfg(test)]
    pub fn made(made: Prerenders) -> Early {
        Early { thread: None, made }
    }

    /// Those of `thread`, which is told to stop now.
    pub fn stopping(thread: Option<EarlyRenders>) -> Early {
        if let Some(t) = &thread {
            t.stop();
        }
        Early {
            thread,
            made: Prerenders::new(),
        }
    }

    /// The early reports of the profile at `path`, if made of `profile` (see [`take`]).
    pub fn take(
        &mut self,
        path: &Path,
        profile: &Profile,
        cgroup_limit: Option<u64>,
    ) -> Option<Prerendered> {
        if let Some(t) = self.thread.take() {
            self.made = t.finish();
        }
        take(&mut self.made, path, profile, cgroup_limit)
    }
}

impl Drop for EarlyRenders {
    /// A run that failed to start: the thread stops at its next look.
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes the reports of children as their final profiles appear, until told to stop.
fn watch(raw: &Path, settings: Settings, stop: &AtomicBool, looked: &AtomicUsize) -> Prerenders {
    let files = SymbolCache::with_system_lines(settings.system_lines);
    let mut listing = Listing::default();
    let mut largest = Largest::default();
    let mut done = Prerenders::new();
    while !stop.load(Ordering::Acquire) {
        // Read first, then render the largest peaks first: of a batch, the ones that can
        // still be shown at the end.
        let mut batch: Vec<(PathBuf, Profile)> = Vec::new();
        for path in listing.new_profiles(raw) {
            match wanted_profile(&path) {
                Some(p) => {
                    largest.add(p.meta.peak_bytes);
                    batch.push((path, p));
                }
                None => {
                    looked.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
        batch.sort_by_key(|(_, p)| std::cmp::Reverse(p.meta.peak_bytes));
        for (path, profile) in batch {
            if stop.load(Ordering::Acquire) {
                break;
            }
            if settings.all || !largest.beaten(profile.meta.peak_bytes) {
                if let Some(r) = prerender(&path, profile, settings, &files) {
                    done.insert(path, r);
                }
            }
            looked.fetch_add(1, Ordering::AcqRel);
        }
        // Ones that larger peaks seen since have pushed out of the rendered set.
        if !settings.all {
            done.retain(|_, e| !largest.beaten(e.profile.meta.peak_bytes));
        }
        std::thread::park_timeout(POLL);
    }
    done
}

/// The final profiles of `raw/` not seen before, in file-name order (as the run's report
/// reads them).
#[derive(Default)]
struct Listing {
    seen: HashSet<PathBuf>,
    /// The directory's modification time at the last listing.
    listed_at: Option<SystemTime>,
}

/// A directory unchanged for this long is not listed again until it changes: a long run
/// with many processes holds thousands of files there. (Its time may be a kernel tick
/// coarse, so a change within the tick of a listing shows only by listing again.)
const SETTLED: Duration = Duration::from_secs(1);

impl Listing {
    fn new_profiles(&mut self, raw: &Path) -> Vec<PathBuf> {
        let modified = std::fs::metadata(raw).and_then(|m| m.modified()).ok();
        let settled = modified.is_some_and(|t| {
            Some(t) == self.listed_at && t.elapsed().is_ok_and(|age| age > SETTLED)
        });
        if settled {
            return Vec::new();
        }
        self.listed_at = modified;
        let mut found = outputs::final_profiles(raw);
        found.retain(|p| !self.seen.contains(p));
        found.sort();
        self.seen.extend(found.iter().cloned());
        found
    }
}

/// The largest peaks among the children seen: the [`RENDERED_PROCESSES`] - 1 of them the
/// run's report may render (besides the root).
#[derive(Default)]
struct Largest(BinaryHeap<std::cmp::Reverse<u64>>);

impl Largest {
    fn add(&mut self, peak: u64) {
        self.0.push(std::cmp::Reverse(peak));
        if self.0.len() > RENDERED_PROCESSES - 1 {
            self.0.pop();
        }
    }

    /// Whether a child with this peak has as many larger peaks seen as can be rendered,
    /// so that it will not be (the run's report sees at least the same).
    fn beaten(&self, peak: u64) -> bool {
        self.0.len() == RENDERED_PROCESSES - 1 && self.0.peek().is_some_and(|m| m.0 > peak)
    }
}

/// The profile at `path`, if its reports can be made early: not a snapshot (which may give
/// way to the live files of a process that went on running, see
/// `outputs::read_profiles`), not the root's, and readable (else the run's report says
/// why).
fn wanted_profile(path: &Path) -> Option<Profile> {
    let profile = outputs::read_profile(path).ok()?;
    if profile.meta.reason == WriteReason::Snapshot {
        return None;
    }
    // The root (started by this process): its report has the run's exit status and the
    // process list, and its profile is written as the run ends, when this would only
    // delay the run's own report.
    if profile.meta.ppid == std::process::id() {
        return None;
    }
    Some(profile)
}

/// A child's reports, as the run's report would make them.
fn prerender(
    path: &Path,
    profile: Profile,
    settings: Settings,
    files: &SymbolCache,
) -> Option<Prerendered> {
    let status = status_from_profile(&profile);
    let limits = (settings.limit, settings.cgroup_limit);
    let (report, oom) = process_report(path, &profile, status, limits, files);
    let outputs = render_child(&report, oom.as_ref()).ok()?;
    Some(Prerendered {
        profile,
        report,
        oom,
        outputs,
    })
}

/// The rendered reports of a child: as the run's report renders every process but the
/// root, without the process list or extra summary fields.
pub(crate) fn render_child(report: &Report, oom: Option<&OomReport>) -> anyhow::Result<Rendered> {
    outputs::render_reports(&ReportSet {
        report,
        processes: &[],
        extra: Vec::new(),
        oom,
    })
}

/// The early reports of `path`, when they were made of `profile` (what the run's report
/// read) with the same cgroup limit.
pub fn take(
    early: &mut Prerenders,
    path: &Path,
    profile: &Profile,
    cgroup_limit: Option<u64>,
) -> Option<Prerendered> {
    let e = early.remove(path)?;
    (e.profile == *profile && e.report.cgroup_limit_bytes == cgroup_limit).then_some(e)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Instant;

    use super::*;
    use crate::format::{self, Meta, SiteBytes, Stack, TimelinePoint};

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("peakprof-early-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A child's profile: `peak` bytes live at its peak on a stack of its own.
    pub(crate) fn child(pid: u32, peak: u64, reason: WriteReason) -> Profile {
        Profile {
            meta: Meta {
                pid,
                ppid: 1,
                argv: vec!["./child".into(), format!("<{pid}>")],
                exe: "/nonexistent/child".into(),
                start_unix_ns: 1_700_000_000_000_000_000,
                duration_ns: 5_000_000,
                peak_bytes: peak,
                peak_time_ns: 1_000_000,
                final_bytes: 0,
                total_allocs: 2,
                total_alloc_bytes: peak + 10,
                reason,
                exit_code: Some(0),
                ..Meta::default()
            },
            stacks: vec![Stack {
                frames: vec![0x1000 + u64::from(pid), 0x2000],
            }],
            peak: vec![SiteBytes {
                stack: 0,
                bytes: peak,
                count: 1,
            }],
            allocs: vec![SiteBytes {
                stack: 0,
                bytes: peak + 10,
                count: 2,
            }],
            timeline: vec![TimelinePoint {
                time_ns: 1_000_000,
                bytes: peak,
                rss_bytes: 1 << 20,
                last_bytes: peak,
            }],
            ..Profile::default()
        }
    }

    fn put(raw: &Path, p: &Profile) -> PathBuf {
        let path = raw.join(format!("{}-{}.{}", p.meta.pid, 17, format::EXTENSION));
        std::fs::write(&path, format::encode(p)).unwrap();
        path
    }

    const SETTINGS: Settings = Settings {
        limit: None,
        cgroup_limit: Some(1 << 30),
        system_lines: false,
        all: false,
    };

    /// Waits until the thread has dealt with `n` profiles, then stops it.
    fn made_after(early: EarlyRenders, n: usize) -> Prerenders {
        let start = Instant::now();
        while early.looked_at() < n {
            assert!(start.elapsed() < Duration::from_secs(60), "stuck");
            std::thread::sleep(Duration::from_millis(5));
        }
        early.finish()
    }

    /// What the run's report makes of a child: the same report and the same bytes,
    /// written or not; a snapshot, the root's profile and files being written are left
    /// alone.
    #[test]
    fn early_reports_are_the_ones_the_run_would_make() {
        let raw = scratch("same");
        let children: Vec<Profile> = (0..3)
            .map(|i| child(100 + i, 1000 * (u64::from(i) + 1), WriteReason::Exit))
            .collect();
        let paths: Vec<PathBuf> = children.iter().map(|p| put(&raw, p)).collect();
        put(&raw, &child(200, 5000, WriteReason::Snapshot));
        let mut root = child(300, 9000, WriteReason::Exit);
        root.meta.ppid = std::process::id();
        put(&raw, &root);
        std::fs::write(raw.join("400-17.ppf.tmp"), b"half a file").unwrap();
        let early = EarlyRenders::start(&raw, SETTINGS);
        let mut made = made_after(early, 5);
        assert_eq!(made.len(), 3, "{:?}", made.keys().collect::<Vec<_>>());
        let files = SymbolCache::new();
        for (path, p) in paths.iter().zip(&children) {
            let limits = (None, SETTINGS.cgroup_limit);
            let (report, oom) = process_report(path, p, status_from_profile(p), limits, &files);
            let rendered = render_child(&report, oom.as_ref()).unwrap();
            let e = take(&mut made, path, p, SETTINGS.cgroup_limit).expect("made early");
            assert_eq!(e.report, report);
            assert_eq!(e.report.peak_bytes, p.meta.peak_bytes);
            assert!(e.oom.is_none());
            assert_eq!(e.outputs, rendered, "{}", path.display());
            // Taken once.
            assert!(take(&mut made, path, p, SETTINGS.cgroup_limit).is_none());
        }
        let _ = std::fs::remove_dir_all(&raw);
    }

    /// Early reports are given only for the profile they were made of, under the same
    /// cgroup limit.
    #[test]
    fn a_changed_profile_or_limit_gets_no_early_report() {
        let raw = scratch("changed");
        let p = child(100, 1000, WriteReason::Exit);
        let path = put(&raw, &p);
        let made = || made_after(EarlyRenders::start(&raw, SETTINGS), 1);
        let mut other = p.clone();
        other.meta.peak_bytes += 1;
        let limit = SETTINGS.cgroup_limit;
        assert!(take(&mut made(), &path, &other, limit).is_none());
        assert!(take(&mut made(), &path, &p, None).is_none());
        assert!(take(&mut made(), &raw.join("100-18.ppf"), &p, limit).is_none());
        assert!(take(&mut made(), &path, &p, limit).is_some());
        let _ = std::fs::remove_dir_all(&raw);
    }

    /// Children met in pid order with falling peaks: only the first
    /// `RENDERED_PROCESSES - 1`, the largest, can be rendered, so only they are made;
    /// with `--all-processes`, every one.
    #[test]
    fn only_children_that_can_be_rendered_are_made() {
        let raw = scratch("largest");
        let n = RENDERED_PROCESSES as u32 + 5;
        let children: Vec<Profile> = (0..n)
            .map(|i| child(1000 + i, u64::from(n - i) * 100, WriteReason::Exit))
            .collect();
        for p in &children {
            put(&raw, p);
        }
        let made = made_after(EarlyRenders::start(&raw, SETTINGS), n as usize);
        let mut pids: Vec<u32> = made.values().map(|e| e.profile.meta.pid).collect();
        pids.sort_unstable();
        let largest: Vec<u32> = (1000..1000 + RENDERED_PROCESSES as u32 - 1).collect();
        assert_eq!(pids, largest);
        let all = Settings {
            all: true,
            ..SETTINGS
        };
        let made = made_after(EarlyRenders::start(&raw, all), n as usize);
        assert_eq!(made.len(), n as usize);
        let _ = std::fs::remove_dir_all(&raw);
    }

    /// Children ending one after another with rising peaks: each is made when it ends
    /// (the largest so far), and dropped once as many larger ones have ended as can be
    /// rendered; what is left is the largest.
    #[test]
    fn children_pushed_out_by_larger_ones_are_dropped() {
        let raw = scratch("rising");
        let n = RENDERED_PROCESSES as u32 + 3;
        let early = EarlyRenders::start(&raw, SETTINGS);
        for i in 0..n {
            put(
                &raw,
                &child(1000 + i, u64::from(i + 1) * 100, WriteReason::Exit),
            );
            let start = Instant::now();
            while early.looked_at() <= i as usize {
                assert!(start.elapsed() < Duration::from_secs(60), "stuck at {i}");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let made = early.finish();
        let mut pids: Vec<u32> = made.keys().map(|p| made[p].profile.meta.pid).collect();
        pids.sort_unstable();
        let largest: Vec<u32> = (1000 + n + 1 - RENDERED_PROCESSES as u32..1000 + n).collect();
        assert_eq!(pids, largest);
        let _ = std::fs::remove_dir_all(&raw);
    }
}

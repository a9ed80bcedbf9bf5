//! The live files of a running process: what lets a profile survive SIGKILL.
//!
//! While a process runs, the preload keeps two files beside its final profile:
//! - `<id>.live`: a header with the totals, then the per-stack counters ([`Site`]), in a
//!   file-backed shared mapping. Every update is a store into the page cache, so the file
//!   is current at every instant, whatever kills the process.
//! - `<id>.log`: an append-only log of what the counters refer to: process facts, modules
//!   and stacks, each written with one `write(2)` as it appears.
//!
//! At a normal exit the final `<id>.ppf` replaces both. When a process never wrote it, the
//! CLI recovers its profile from these two files with [`recover`].

use super::wire::{put_bytes, put_u64, Cursor};
use super::{FormatError, Meta, Module, Profile, SiteBytes, Stack, WriteReason};
use crate::record::{Site, Totals};

/// First bytes of a `.live` file.
pub const LIVE_MAGIC: &[u8; 8] = b"PPLIVE01";
/// First bytes of a `.log` file.
pub const LOG_MAGIC: &[u8; 8] = b"PPLOG001";
/// Size of the `.live` header; sites start here (page-aligned, so the mapping can grow by
/// whole pages).
pub const HEADER_SIZE: usize = 4096;
/// Size of one [`Site`] in the file.
pub const SITE_SIZE: usize = core::mem::size_of::<Site>();

/// File name suffix of the live counters.
pub const LIVE_EXTENSION: &str = "live";
/// File name suffix of the log.
pub const LOG_EXTENSION: &str = "log";

/// The `.live` header as laid out in memory by the preload. All fields are native-endian
/// `u64` (the file never leaves the machine it was written on).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveHeader {
    pub magic: [u8; 8],
    pub totals: Totals,
    /// Number of the fatal signal the process was dying of, 0 if none or unknown. The
    /// preload leaves it 0 (it installs no crash handlers, see `preload/src/signals.rs`);
    /// readers honour it so a writer that knows can say so.
    pub signal: u64,
    /// Sampled mode's whole total and peak (see [`SharedTotals`]).
    pub shared: SharedTotals,
    /// Exec calls in progress: if one succeeds, this image never writes its final profile
    /// (the new program may not be profiled at all: a static or set-user-ID binary, or an
    /// environment without `LD_PRELOAD`), and its files are read as ended by exec rather
    /// than killed. A failed exec takes its count back.
    pub exec: u64,
    /// How the process ended ([`ended_word`]), stored just before it writes its final
    /// profile, 0 until then. Writing that profile takes a descriptor, and a program that
    /// ends at its descriptor limit leaves none: its live files then still say it exited,
    /// and with which code, rather than read as killed.
    pub ended: u64,
}

/// Set in a nonzero [`LiveHeader::ended`].
const ENDED: u64 = 1 << 63;
/// Set when [`LiveHeader::ended`] carries an exit code (in its low byte).
const ENDED_WITH_CODE: u64 = 1 << 62;

/// The [`LiveHeader::ended`] word for a process ending for `reason` with `exit_code`.
pub fn ended_word(reason: WriteReason, exit_code: Option<i32>) -> u64 {
    let (code, signal) = super::write::reason_code(reason);
    let status = exit_code.map_or(0, |c| ENDED_WITH_CODE | (c as u64 & 0xff));
    ENDED | status | (code & 0xff) << 8 | (signal as u64 & 0xff) << 16
}

/// The reason and exit code in a [`LiveHeader::ended`] word; `None` while not ended.
fn read_ended(word: u64) -> Option<(WriteReason, Option<i32>)> {
    if word & ENDED == 0 {
        return None;
    }
    let reason = super::read::reason((word >> 8) & 0xff, ((word >> 16) & 0xff) as i64);
    let code = (word & ENDED_WITH_CODE != 0).then_some((word & 0xff) as i32);
    Some((reason, code))
}

/// Sampled mode's whole total and peak, kept in atomics that threads update without the
/// profiler's lock (their unsampled blocks never reach the recorder). When `active`, these
/// are the process's total and peak, and [`Totals`] holds only the recorder's part of the
/// total; `peak_pending` says the peak was raised after the sites last changed, so the
/// sites' current values are their values at the peak.
/// `total`'s top bit is [`LAZY_TOTAL`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SharedTotals {
    pub active: u64,
    pub total: u64,
    pub peak: u64,
    pub peak_time_ns: u64,
    pub peak_pending: u64,
}

/// Set in [`SharedTotals::total`] while threads may hold credit: bytes already counted that
/// their blocks have not used yet (at most 128 KiB per table; the peak is still exact, see
/// `preload/src/sampled.rs`). The rest of the word is the total including that credit.
pub const LAZY_TOTAL: u64 = 1 << 63;

/// Byte offset of [`LiveHeader::shared`] in the file.
const SHARED_OFFSET: usize = core::mem::offset_of!(LiveHeader, shared);
/// Byte offset of [`LiveHeader::exec`] in the file.
const EXEC_OFFSET: usize = core::mem::offset_of!(LiveHeader, exec);
/// Byte offset of [`LiveHeader::ended`] in the file.
const ENDED_OFFSET: usize = core::mem::offset_of!(LiveHeader, ended);

const _: () = assert!(core::mem::size_of::<LiveHeader>() <= HEADER_SIZE);

const TAG_META: u8 = 1;
const TAG_MODULE: u8 = 2;
const TAG_STACK: u8 = 3;

fn record(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 6);
    out.push(tag);
    put_u64(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// The log's first record: facts about the process. Goes right after [`LOG_MAGIC`].
pub fn log_meta(
    pid: u32,
    ppid: u32,
    argv: &[String],
    exe: &str,
    start_unix_ns: u64,
    sample_rate: u64,
) -> Vec<u8> {
    let mut p = Vec::new();
    put_u64(&mut p, u64::from(pid));
    put_u64(&mut p, u64::from(ppid));
    put_u64(&mut p, argv.len() as u64);
    for a in argv {
        put_bytes(&mut p, a.as_bytes());
    }
    put_bytes(&mut p, exe.as_bytes());
    put_u64(&mut p, start_unix_ns);
    put_u64(&mut p, sample_rate);
    let mut out = LOG_MAGIC.to_vec();
    out.extend(record(TAG_META, &p));
    out
}

/// A log record for a loaded module.
pub fn log_module(m: &Module) -> Vec<u8> {
    let mut p = Vec::new();
    super::write::put_module(&mut p, m);
    record(TAG_MODULE, &p)
}

/// A log record for a newly interned stack.
pub fn log_stack(id: u32, frames: &[u64]) -> Vec<u8> {
    let mut p = Vec::with_capacity(frames.len() * 4 + 8);
    put_u64(&mut p, u64::from(id));
    super::write::put_frames(&mut p, frames);
    record(TAG_STACK, &p)
}

/// What a log holds, as far as it could be read.
#[derive(Debug, Default)]
struct LogContents {
    meta: Meta,
    modules: Vec<Module>,
    stacks: Vec<(u32, Vec<u64>)>,
}

fn parse_log(log: &[u8]) -> Result<LogContents, FormatError> {
    if !log.starts_with(LOG_MAGIC) {
        return Err(if LOG_MAGIC.starts_with(log) {
            FormatError::Truncated
        } else {
            FormatError::NotAProfile
        });
    }
    let mut c = Cursor::new(&log[LOG_MAGIC.len()..]);
    let mut out = LogContents::default();
    let mut seen_meta = false;
    // A process killed mid-write leaves a partial last record: everything before it stands.
    while c.remaining() > 0 {
        let Ok(tag) = c.take(1).map(|t| t[0]) else {
            break;
        };
        let Ok(len) = c.u64() else { break };
        let Ok(payload) = usize::try_from(len)
            .map_err(|_| FormatError::Truncated)
            .and_then(|n| c.take(n))
        else {
            break;
        };
        let mut p = Cursor::new(payload);
        match tag {
            TAG_META => {
                out.meta.pid = p.u32()?;
                out.meta.ppid = p.u32()?;
                let n = p.count(1)?;
                out.meta.argv = (0..n).map(|_| p.string()).collect::<Result<_, _>>()?;
                out.meta.exe = p.string()?;
                out.meta.start_unix_ns = p.u64()?;
                out.meta.sample_rate = p.u64()?;
                seen_meta = true;
            }
            TAG_MODULE => out.modules.push(super::read::module(&mut p)?),
            TAG_STACK => {
                let id = p.u32()?;
                out.stacks.push((id, super::read::frames(&mut p)?));
            }
            _ => {}
        }
    }
    if !seen_meta {
        return Err(FormatError::Corrupt("live log has no process record"));
    }
    Ok(out)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

fn read_shared(live: &[u8]) -> SharedTotals {
    let f = |i: usize| u64_at(live, SHARED_OFFSET + i * 8);
    SharedTotals {
        active: f(0),
        total: f(1),
        peak: f(2),
        peak_time_ns: f(3),
        peak_pending: f(4),
    }
}

fn read_totals(live: &[u8]) -> Result<(Totals, u64), FormatError> {
    if live.len() < HEADER_SIZE {
        return Err(FormatError::Truncated);
    }
    if &live[..8] != LIVE_MAGIC {
        return Err(FormatError::NotAProfile);
    }
    let f = |i: usize| u64_at(live, 8 + i * 8);
    let totals = Totals {
        total: f(0),
        live_count: f(1),
        peak: f(2),
        epoch: f(3),
        peak_time_ns: f(4),
        sites: f(5),
        peak_rss: f(6),
    };
    Ok((totals, f(7)))
}

fn read_site(live: &[u8], i: usize) -> Option<Site> {
    let off = HEADER_SIZE.checked_add(i.checked_mul(SITE_SIZE)?)?;
    let b = live.get(off..off + SITE_SIZE)?;
    let f = |k: usize| u64_at(b, k * 8);
    Some(Site {
        cur_bytes: f(0),
        cur_count: f(1),
        peak_bytes: f(2),
        peak_count: f(3),
        stamp: f(4),
        alloc_bytes: f(5),
        alloc_count: f(6),
    })
}

/// Rebuilds the profile of a process that never wrote its final profile, from its live
/// counters and its log. Stacks whose log record never made it to disk (the process was
/// killed between interning a stack and logging it) keep their bytes under an empty stack.
pub fn recover(live: &[u8], log: &[u8]) -> Result<Profile, FormatError> {
    let (mut totals, signal) = read_totals(live)?;
    let shared = read_shared(live);
    if shared.active != 0 {
        totals.total = shared.total & !LAZY_TOTAL;
        totals.peak = shared.peak;
        totals.peak_time_ns = shared.peak_time_ns;
        // A peak the sites have not seen yet: their current values are the peak's.
        totals.epoch += u64::from(shared.peak_pending != 0);
    }
    let contents = parse_log(log)?;
    let n_sites = usize::try_from(totals.sites).unwrap_or(usize::MAX);
    let n_sites = n_sites.min((live.len() - HEADER_SIZE) / SITE_SIZE);
    let mut frames_of: Vec<Option<Vec<u64>>> = vec![None; n_sites];
    for (id, frames) in contents.stacks {
        if let Some(slot) = frames_of.get_mut(id as usize) {
            *slot = Some(frames);
        }
    }
    let mut stacks = Vec::new();
    let mut index = vec![u32::MAX; n_sites];
    let mut peak = Vec::new();
    let mut exit = Vec::new();
    let mut allocs = Vec::new();
    for (i, slot) in index.iter_mut().enumerate() {
        let Some(site) = read_site(live, i) else {
            break;
        };
        let (pb, pc) = site.at_peak(totals.epoch);
        let used =
            pb > 0 || pc > 0 || site.cur_bytes > 0 || site.cur_count > 0 || site.alloc_count > 0;
        if !used {
            continue;
        }
        *slot = stacks.len() as u32;
        stacks.push(Stack {
            frames: frames_of[i].take().unwrap_or_default(),
        });
        let stack = *slot;
        if pb > 0 || pc > 0 {
            peak.push(SiteBytes {
                stack,
                bytes: pb,
                count: pc,
            });
        }
        if site.cur_bytes > 0 || site.cur_count > 0 {
            exit.push(SiteBytes {
                stack,
                bytes: site.cur_bytes,
                count: site.cur_count,
            });
        }
        if site.alloc_count > 0 {
            allocs.push(SiteBytes {
                stack,
                bytes: site.alloc_bytes,
                count: site.alloc_count,
            });
        }
    }
    let mut meta = contents.meta;
    meta.peak_bytes = totals.peak;
    meta.peak_time_ns = totals.peak_time_ns;
    meta.final_bytes = totals.total;
    meta.peak_rss_bytes = totals.peak_rss;
    meta.total_allocs = allocs.iter().map(|s| s.count).sum();
    meta.total_alloc_bytes = allocs.iter().map(|s| s.bytes).sum();
    let ended = read_ended(u64_at(live, ENDED_OFFSET));
    meta.reason = match (ended, i32::try_from(signal)) {
        (Some((reason, code)), _) => {
            meta.exit_code = code;
            reason
        }
        (None, Ok(s)) if s > 0 => WriteReason::Signal(s),
        _ if u64_at(live, EXEC_OFFSET) != 0 => WriteReason::Exec,
        _ => WriteReason::Killed,
    };
    Ok(Profile {
        meta,
        modules: contents.modules,
        stacks,
        peak,
        exit,
        allocs,
        timeline: Vec::new(),
    })
}

/// What the profile [`recover`] makes of `live` and `log` misses, in words; `None` when it
/// is whole (or the files cannot be read at all, which `recover` says). The preload keeps
/// counting in memory when the live file cannot grow (a full disk), so the call paths
/// counted after that are not in the file, and those in it stopped there; a stack whose
/// log record could not be written (the same) or never was (killed between the two) is
/// recovered without frames.
pub fn recovery_gaps(live: &[u8], log: &[u8]) -> Option<String> {
    let (totals, _) = read_totals(live).ok()?;
    let contents = parse_log(log).ok()?;
    let in_file = (live.len() - HEADER_SIZE) / SITE_SIZE;
    let counted = usize::try_from(totals.sites).unwrap_or(usize::MAX);
    let named: std::collections::HashSet<u32> = contents.stacks.iter().map(|s| s.0).collect();
    let unnamed = (0..counted.min(in_file))
        .filter(|&i| !named.contains(&(i as u32)))
        .filter_map(|i| read_site(live, i))
        .filter(|s| s.cur_count > 0 || s.peak_count > 0 || s.alloc_count > 0)
        .count();
    let mut gaps = Vec::new();
    if counted > in_file {
        gaps.push(format!(
            "its live file could not grow: it holds the counters of {in_file} of {counted} call paths, as they were then"
        ));
    }
    if unnamed > 0 {
        let s = if unnamed == 1 { "" } else { "s" };
        gaps.push(format!("{unnamed} call path{s} without frames"));
    }
    (!gaps.is_empty()).then(|| gaps.join("; "))
}

/// The process facts at the start of a log (a process that left nothing else), as far as
/// they were written.
pub fn log_facts(log: &[u8]) -> Option<Meta> {
    parse_log(log).ok().map(|c| c.meta)
}

/// The bytes of a `.live` file holding `totals`, `signal` and `sites`: what the preload's
/// mapping looks like, for tests.
pub fn live_bytes(totals: &Totals, signal: u64, sites: &[Site]) -> Vec<u8> {
    live_bytes_shared(totals, signal, &SharedTotals::default(), sites)
}

/// [`live_bytes`] of a process that was inside an exec call.
pub fn live_bytes_exec(totals: &Totals, sites: &[Site]) -> Vec<u8> {
    let mut out = live_bytes(totals, 0, sites);
    out[EXEC_OFFSET..EXEC_OFFSET + 8].copy_from_slice(&1u64.to_ne_bytes());
    out
}

/// [`live_bytes`] of a process that ended for `reason` with `exit_code` but could not
/// write its final profile.
pub fn live_bytes_ended(
    totals: &Totals,
    sites: &[Site],
    reason: WriteReason,
    exit_code: Option<i32>,
) -> Vec<u8> {
    let mut out = live_bytes(totals, 0, sites);
    out[ENDED_OFFSET..ENDED_OFFSET + 8]
        .copy_from_slice(&ended_word(reason, exit_code).to_ne_bytes());
    out
}

/// [`live_bytes`] with sampled mode's shared totals.
pub fn live_bytes_shared(
    totals: &Totals,
    signal: u64,
    shared: &SharedTotals,
    sites: &[Site],
) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_SIZE + sites.len() * SITE_SIZE];
    let s = [
        shared.active,
        shared.total,
        shared.peak,
        shared.peak_time_ns,
        shared.peak_pending,
    ];
    for (i, v) in s.iter().enumerate() {
        let off = SHARED_OFFSET + i * 8;
        out[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }
    out[..8].copy_from_slice(LIVE_MAGIC);
    let t = [
        totals.total,
        totals.live_count,
        totals.peak,
        totals.epoch,
        totals.peak_time_ns,
        totals.sites,
        totals.peak_rss,
        signal,
    ];
    for (i, v) in t.iter().enumerate() {
        out[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_ne_bytes());
    }
    for (i, s) in sites.iter().enumerate() {
        let f = [
            s.cur_bytes,
            s.cur_count,
            s.peak_bytes,
            s.peak_count,
            s.stamp,
            s.alloc_bytes,
            s.alloc_count,
        ];
        for (k, v) in f.iter().enumerate() {
            let off = HEADER_SIZE + i * SITE_SIZE + k * 8;
            out[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Recorder, SiteStore};

    /// Drives a recorder, logs as the preload would, and checks that recovery from the
    /// bytes gives the same snapshot as the recorder's own profile.
    #[test]
    fn recovery_matches_the_recorders_own_profile() {
        let mut rec = Recorder::new();
        let mut log = log_meta(7, 1, &["prog".into(), "x".into()], "/bin/prog", 99, 0);
        log.extend(log_module(&Module {
            path: "/bin/prog".into(),
            build_id: vec![1, 2],
            bias: 0x1000,
            ranges: vec![(0x1000, 0x9000)],
        }));
        let stack = |rec: &mut Recorder, log: &mut Vec<u8>, frames: &[u64]| {
            let (id, new) = rec.intern_new(frames);
            if new {
                log.extend(log_stack(id, frames));
            }
            id
        };
        let a = stack(&mut rec, &mut log, &[0x1100, 0x1200]);
        let b = stack(&mut rec, &mut log, &[0x1300]);
        rec.on_alloc(0x10, 1000, a, 5);
        rec.on_alloc(0x20, 3000, b, 6);
        rec.on_free(0x10, 7);
        rec.on_alloc(0x30, 500, a, 8);
        let t = rec.tracker();
        let live = live_bytes(t.totals(), 0, t.store().sites());
        let got = recover(&live, &log).unwrap();
        let want = rec.to_profile(Meta::default(), Vec::new());
        assert_eq!(got.meta.peak_bytes, 4000);
        assert_eq!(got.meta.peak_time_ns, 6);
        assert_eq!(got.meta.pid, 7);
        assert_eq!(got.meta.argv, vec!["prog", "x"]);
        assert_eq!(got.meta.reason, WriteReason::Killed);
        assert_eq!(got.modules.len(), 1);
        let by_frames = |p: &Profile, list: &[SiteBytes]| {
            let mut v: Vec<(Vec<u64>, u64, u64)> = list
                .iter()
                .map(|s| (p.stacks[s.stack as usize].frames.clone(), s.bytes, s.count))
                .collect();
            v.sort();
            v
        };
        assert_eq!(by_frames(&got, &got.peak), by_frames(&want, &want.peak));
        assert_eq!(by_frames(&got, &got.exit), by_frames(&want, &want.exit));
        assert_eq!(by_frames(&got, &got.allocs), by_frames(&want, &want.allocs));
    }

    #[test]
    fn recovery_gaps_name_counters_past_the_file_and_stacks_without_frames() {
        let mut log = log_meta(1, 0, &[], "", 0, 0);
        log.extend(log_stack(0, &[1, 2, 3]));
        let used = Site {
            cur_bytes: 8,
            cur_count: 1,
            alloc_bytes: 8,
            alloc_count: 1,
            ..Site::default()
        };
        let totals = |sites: u64| Totals {
            total: 8 * sites,
            live_count: sites,
            peak: 8 * sites,
            epoch: 1,
            sites,
            ..Totals::default()
        };
        // Whole: every counted site is in the file and has its stack.
        assert_eq!(
            recovery_gaps(&live_bytes(&totals(1), 0, &[used]), &log),
            None
        );
        // Site 1 counted but its stack record missing; an unused site needs none.
        let three = [used, used, Site::default()];
        assert_eq!(
            recovery_gaps(&live_bytes(&totals(3), 0, &three), &log).as_deref(),
            Some("1 call path without frames")
        );
        // Five sites counted, the file holds two (it stopped growing).
        let mut log2 = log.clone();
        log2.extend(log_stack(1, &[4]));
        assert_eq!(
            recovery_gaps(&live_bytes(&totals(5), 0, &[used, used]), &log2).as_deref(),
            Some(
                "its live file could not grow: it holds the counters of 2 of 5 call paths, \
                 as they were then"
            )
        );
    }

    #[test]
    fn a_partial_last_log_record_is_ignored_and_a_signal_is_reported() {
        let mut log = log_meta(1, 0, &[], "", 0, 0);
        log.extend(log_stack(0, &[1, 2, 3]));
        let full = log.len();
        log.extend(log_stack(1, &[4, 5, 6]));
        log.truncate(full + 3);
        let sites = [Site {
            cur_bytes: 8,
            cur_count: 1,
            alloc_bytes: 8,
            alloc_count: 1,
            ..Site::default()
        }; 2];
        let totals = Totals {
            total: 16,
            live_count: 2,
            peak: 16,
            epoch: 2,
            peak_time_ns: 1,
            sites: 2,
            peak_rss: 5 << 20,
        };
        let p = recover(&live_bytes(&totals, 11, &sites), &log).unwrap();
        assert_eq!(p.meta.reason, WriteReason::Signal(11));
        assert_eq!(p.meta.peak_rss_bytes, 5 << 20);
        assert_eq!(p.stacks.len(), 2);
        assert_eq!(p.stacks[0].frames, vec![1, 2, 3]);
        assert!(p.stacks[1].frames.is_empty()); // its record was cut
        assert_eq!(p.peak.iter().map(|s| s.bytes).sum::<u64>(), 16);
        // The same files with the exec mark: ended by exec, unless a signal is known.
        let exec = live_bytes_exec(&totals, &sites);
        assert_eq!(recover(&exec, &log).unwrap().meta.reason, WriteReason::Exec);
        assert_eq!(
            recover(&live_bytes(&totals, 0, &sites), &log)
                .unwrap()
                .meta
                .reason,
            WriteReason::Killed
        );
        // Ended, but the final profile could not be written: how, and the exit code.
        for (reason, code) in [
            (WriteReason::Exit, Some(3)),
            (WriteReason::Exit, Some(255)),
            (WriteReason::FastExit, Some(0)),
            (WriteReason::LimitStop, None),
            (WriteReason::Exit, None),
        ] {
            let ended = live_bytes_ended(&totals, &sites, reason, code);
            let p = recover(&ended, &log).unwrap();
            assert_eq!((p.meta.reason, p.meta.exit_code), (reason, code));
            assert_eq!(p.peak.iter().map(|s| s.bytes).sum::<u64>(), 16);
        }
        assert_eq!(read_ended(0), None);
        assert_eq!(
            read_ended(ended_word(WriteReason::Signal(9), None)),
            Some((WriteReason::Signal(9), None))
        );
    }

    /// Sampled mode: the total and peak come from the shared atomics, and a peak the sites
    /// have not seen yet makes their current values the peak's.
    #[test]
    fn shared_totals_stand_for_the_whole_process_in_sampled_mode() {
        let mut rec = Recorder::new();
        rec.set_external_peak();
        let log = {
            let mut l = log_meta(1, 0, &[], "", 0, 0);
            l.extend(log_stack(0, &[7]));
            l.extend(log_stack(1, &[8]));
            l
        };
        rec.on_alloc(0x10, 100, 0, 1);
        rec.mark_peak(5000, 2); // unsampled blocks (outside) took the whole to 5000
        rec.on_alloc(0x20, 300, 1, 3); // after that peak: not part of it
        let read_with = |pending: u64, total: u64| {
            let shared = SharedTotals {
                active: 1,
                total,
                peak: 5000,
                peak_time_ns: 2,
                peak_pending: pending,
            };
            let t = rec.tracker();
            let live = live_bytes_shared(t.totals(), 0, &shared, t.store().sites());
            recover(&live, &log).unwrap()
        };
        let read = |pending: u64| read_with(pending, 4800);
        let p = read(0);
        assert_eq!(
            (p.meta.peak_bytes, p.meta.final_bytes, p.meta.peak_time_ns),
            (5000, 4800, 2)
        );
        let at_peak = |p: &Profile| {
            let mut v: Vec<(u64, u64)> = p
                .peak
                .iter()
                .map(|s| (p.stacks[s.stack as usize].frames[0], s.bytes))
                .collect();
            v.sort();
            v
        };
        assert_eq!(at_peak(&p), vec![(7, 100)]);
        // Pending: a later peak (raised without the lock) saw the sites as they are now.
        assert_eq!(at_peak(&read(1)), vec![(7, 100), (8, 300)]);
        // A lazy total: the flag is not bytes.
        let lazy = read_with(0, 4800 | LAZY_TOTAL);
        assert_eq!((lazy.meta.peak_bytes, lazy.meta.final_bytes), (5000, 4800));
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let log = log_meta(1, 0, &[], "", 0, 0);
        assert_eq!(recover(&[0; 10], &log).unwrap_err(), FormatError::Truncated);
        assert_eq!(
            recover(&[0; HEADER_SIZE], &log).unwrap_err(),
            FormatError::NotAProfile
        );
        let live = live_bytes(
            &Totals {
                sites: 1_000_000,
                ..Totals::default()
            },
            0,
            &[],
        );
        assert!(recover(&live, &log).is_ok()); // more sites claimed than present: clamp
        assert!(recover(&live, b"junk").is_err());
        assert!(recover(&live, &log[..5]).is_err());
    }
}

//! Encoding a [`Profile`] into bytes. Pure: the preload hands the bytes to `write(2)`.

use super::sections::*;
use super::wire::{put_bytes, put_i64, put_u64};
use super::{Meta, Module, Profile, SiteBytes, Stack, TimelinePoint, WriteReason};

fn section(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let mut payload = Vec::new();
    body(&mut payload);
    out.push(tag);
    put_u64(out, payload.len() as u64);
    out.extend_from_slice(&payload);
}

pub(super) fn reason_code(r: WriteReason) -> (u64, i64) {
    match r {
        WriteReason::Exit => (0, 0),
        WriteReason::Signal(s) => (1, i64::from(s)),
        WriteReason::Snapshot => (2, 0),
        WriteReason::FastExit => (3, 0),
        WriteReason::Exec => (4, 0),
        WriteReason::Killed => (5, 0),
        WriteReason::LimitStop => (6, 0),
        WriteReason::Running => (7, 0),
    }
}

pub(super) fn meta(out: &mut Vec<u8>, m: &Meta) {
    put_u64(out, u64::from(m.pid));
    put_u64(out, u64::from(m.ppid));
    put_u64(out, m.argv.len() as u64);
    for a in &m.argv {
        put_bytes(out, a.as_bytes());
    }
    put_bytes(out, m.exe.as_bytes());
    for v in [
        m.start_unix_ns,
        m.duration_ns,
        m.peak_bytes,
        m.peak_time_ns,
        m.peak_rss_bytes,
        m.final_bytes,
        m.total_allocs,
        m.total_alloc_bytes,
        m.sample_rate,
    ] {
        put_u64(out, v);
    }
    let (code, sig) = reason_code(m.reason);
    put_u64(out, code);
    put_i64(out, sig);
    put_u64(out, m.truncated_stacks);
    put_i64(out, m.exit_code.map_or(-1, i64::from));
}

/// One module: path, build-id, bias, ranges as (start, length). Shared with the live log.
pub(super) fn put_module(out: &mut Vec<u8>, m: &Module) {
    put_bytes(out, m.path.as_bytes());
    put_bytes(out, &m.build_id);
    put_u64(out, m.bias);
    put_u64(out, m.ranges.len() as u64);
    for &(start, end) in &m.ranges {
        put_u64(out, start);
        put_u64(out, end.saturating_sub(start));
    }
}

fn modules(out: &mut Vec<u8>, modules: &[Module]) {
    put_u64(out, modules.len() as u64);
    for m in modules {
        put_module(out, m);
    }
}

/// One stack's frames: count, then deltas (neighbouring frames usually sit in the same
/// module, so deltas are short). Shared with the live log.
pub(super) fn put_frames(out: &mut Vec<u8>, frames: &[u64]) {
    put_u64(out, frames.len() as u64);
    let mut prev = 0u64;
    for &f in frames {
        put_i64(out, f.wrapping_sub(prev) as i64);
        prev = f;
    }
}

fn stacks(out: &mut Vec<u8>, stacks: &[Stack]) {
    put_u64(out, stacks.len() as u64);
    for s in stacks {
        put_frames(out, &s.frames);
    }
}

fn sites(out: &mut Vec<u8>, sites: &[SiteBytes]) {
    put_u64(out, sites.len() as u64);
    for s in sites {
        put_u64(out, u64::from(s.stack));
        put_u64(out, s.bytes);
        put_u64(out, s.count);
    }
}

fn timeline(out: &mut Vec<u8>, points: &[TimelinePoint]) {
    put_u64(out, points.len() as u64);
    let mut prev = 0u64;
    for p in points {
        put_u64(out, p.time_ns.saturating_sub(prev));
        prev = p.time_ns;
        put_u64(out, p.bytes);
        put_u64(out, p.rss_bytes);
        put_u64(out, p.last_bytes);
    }
}

/// The bytes of a whole profile file.
pub fn encode(p: &Profile) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    section(&mut out, TAG_META, |o| meta(o, &p.meta));
    section(&mut out, TAG_MODULES, |o| modules(o, &p.modules));
    section(&mut out, TAG_STACKS, |o| stacks(o, &p.stacks));
    section(&mut out, TAG_PEAK, |o| sites(o, &p.peak));
    section(&mut out, TAG_EXIT, |o| sites(o, &p.exit));
    section(&mut out, TAG_TIMELINE, |o| timeline(o, &p.timeline));
    section(&mut out, TAG_ALLOCS, |o| sites(o, &p.allocs));
    let crc = crc32fast::hash(&out);
    section(&mut out, TAG_END, |o| {
        o.extend_from_slice(&crc.to_le_bytes())
    });
    out
}

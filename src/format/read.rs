//! Decoding profile bytes. Never panics: every malformed input is a [`FormatError`].

use super::sections::*;
use super::wire::Cursor;
use super::{FormatError, Meta, Module, Profile, SiteBytes, Stack, TimelinePoint, WriteReason};

pub(super) fn reason(code: u64, sig: i64) -> WriteReason {
    match code {
        1 => WriteReason::Signal(i32::try_from(sig).unwrap_or(0)),
        2 => WriteReason::Snapshot,
        3 => WriteReason::FastExit,
        4 => WriteReason::Exec,
        5 => WriteReason::Killed,
        6 => WriteReason::LimitStop,
        7 => WriteReason::Running,
        _ => WriteReason::Exit,
    }
}

pub(super) fn meta(c: &mut Cursor<'_>) -> Result<Meta, FormatError> {
    let pid = c.u32()?;
    let ppid = c.u32()?;
    let argc = c.count(1)?;
    let argv = (0..argc).map(|_| c.string()).collect::<Result<_, _>>()?;
    let exe = c.string()?;
    let mut v = [0u64; 9];
    for x in &mut v {
        *x = c.u64()?;
    }
    let code = c.u64()?;
    let sig = c.i64()?;
    let truncated_stacks = c.u64()?;
    // Appended within this version: files written before it end here.
    let exit_code = if c.remaining() > 0 {
        i32::try_from(c.i64()?)
            .ok()
            .filter(|c| (0..=255).contains(c))
    } else {
        None
    };
    Ok(Meta {
        pid,
        ppid,
        argv,
        exe,
        start_unix_ns: v[0],
        duration_ns: v[1],
        peak_bytes: v[2],
        peak_time_ns: v[3],
        peak_rss_bytes: v[4],
        final_bytes: v[5],
        total_allocs: v[6],
        total_alloc_bytes: v[7],
        sample_rate: v[8],
        reason: reason(code, sig),
        truncated_stacks,
        exit_code,
    })
}

/// One module, as [`super::write`] puts it (shared with the live log).
pub(super) fn module(c: &mut Cursor<'_>) -> Result<Module, FormatError> {
    let path = c.string()?;
    let build_id = c.bytes()?.to_vec();
    let bias = c.u64()?;
    let nr = c.count(2)?;
    let mut ranges = Vec::with_capacity(nr);
    for _ in 0..nr {
        let start = c.u64()?;
        let len = c.u64()?;
        ranges.push((start, start.saturating_add(len)));
    }
    Ok(Module {
        path,
        build_id,
        bias,
        ranges,
    })
}

fn modules(c: &mut Cursor<'_>) -> Result<Vec<Module>, FormatError> {
    let n = c.count(4)?;
    (0..n).map(|_| module(c)).collect()
}

/// One stack's frames (shared with the live log).
pub(super) fn frames(c: &mut Cursor<'_>) -> Result<Vec<u64>, FormatError> {
    let nf = c.count(1)?;
    let mut frames = Vec::with_capacity(nf);
    let mut prev = 0u64;
    for _ in 0..nf {
        prev = prev.wrapping_add(c.i64()? as u64);
        frames.push(prev);
    }
    Ok(frames)
}

fn stacks(c: &mut Cursor<'_>) -> Result<Vec<Stack>, FormatError> {
    let n = c.count(1)?;
    (0..n).map(|_| Ok(Stack { frames: frames(c)? })).collect()
}

fn sites(c: &mut Cursor<'_>) -> Result<Vec<SiteBytes>, FormatError> {
    let n = c.count(3)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(SiteBytes {
            stack: c.u32()?,
            bytes: c.u64()?,
            count: c.u64()?,
        });
    }
    Ok(out)
}

fn timeline(c: &mut Cursor<'_>) -> Result<Vec<TimelinePoint>, FormatError> {
    let n = c.count(4)?;
    let mut out = Vec::with_capacity(n);
    let mut t = 0u64;
    for _ in 0..n {
        t = t.saturating_add(c.u64()?);
        out.push(TimelinePoint {
            time_ns: t,
            bytes: c.u64()?,
            rss_bytes: c.u64()?,
            last_bytes: c.u64()?,
        });
    }
    Ok(out)
}

/// Parses a whole profile file.
pub fn decode(buf: &[u8]) -> Result<Profile, FormatError> {
    if buf.len() < MAGIC.len() || &buf[..MAGIC.len()] != MAGIC {
        return Err(if buf.is_empty() || MAGIC.starts_with(buf) {
            FormatError::Truncated
        } else {
            FormatError::NotAProfile
        });
    }
    let mut c = Cursor::new(&buf[MAGIC.len()..]);
    let version = u32::from_le_bytes(c.take(4)?.try_into().expect("took 4 bytes"));
    if !(MIN_VERSION..=VERSION).contains(&version) {
        return Err(FormatError::UnsupportedVersion(version));
    }
    let mut p = Profile::default();
    let mut seen_meta = false;
    loop {
        let section_start = buf.len() - c.remaining();
        let tag = c.take(1)?[0];
        let len = usize::try_from(c.u64()?).map_err(|_| FormatError::Truncated)?;
        let payload = c.take(len)?;
        let mut s = Cursor::new(payload);
        match tag {
            TAG_META => {
                p.meta = meta(&mut s)?;
                seen_meta = true;
            }
            TAG_MODULES => p.modules = modules(&mut s)?,
            TAG_STACKS => p.stacks = stacks(&mut s)?,
            TAG_PEAK => p.peak = sites(&mut s)?,
            TAG_EXIT => p.exit = sites(&mut s)?,
            TAG_TIMELINE => p.timeline = timeline(&mut s)?,
            TAG_ALLOCS => p.allocs = sites(&mut s)?,
            TAG_END => {
                let want = u32::from_le_bytes(
                    payload
                        .get(..4)
                        .ok_or(FormatError::Corrupt("short checksum"))?
                        .try_into()
                        .expect("4 bytes"),
                );
                if crc32fast::hash(&buf[..section_start]) != want {
                    return Err(FormatError::Corrupt("checksum mismatch"));
                }
                break;
            }
            _ => {} // a section from a newer writer: skip it
        }
    }
    if !seen_meta {
        return Err(FormatError::Corrupt("no metadata section"));
    }
    let n = p.stacks.len();
    if p.peak
        .iter()
        .chain(&p.exit)
        .chain(&p.allocs)
        .any(|s| s.stack as usize >= n)
    {
        return Err(FormatError::Corrupt(
            "snapshot refers to a stack that does not exist",
        ));
    }
    Ok(p)
}

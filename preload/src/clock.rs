//! Clocks. The hot path reads the coarse monotonic clock (a few ns through the vDSO); its
//! millisecond resolution is plenty for "when did the peak happen" once a run is old
//! enough (see [`peak_time`]).

use core::sync::atomic::{AtomicU64, Ordering};

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; clock_gettime does not allocate.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    nanoseconds(&ts)
}

fn nanoseconds(ts: &libc::timespec) -> u64 {
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Monotonic nanoseconds, coarse.
#[inline]
pub fn monotonic_coarse_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC_COARSE)
}

/// Monotonic nanoseconds, precise.
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// Wall-clock nanoseconds since the Unix epoch.
pub fn unix_ns() -> u64 {
    read(libc::CLOCK_REALTIME)
}

/// From this much time after start on, the coarse clock times peaks: its resolution is
/// then at most 1/[`COARSE_SHARE`] of the time elapsed. Until [`init`] ran, never.
static COARSE_FROM_NS: AtomicU64 = AtomicU64::new(u64::MAX);

/// See [`COARSE_FROM_NS`]: from 1/64 of the elapsed time on (256 ms into a run with a 4 ms
/// tick). jq's input parsing sets a new peak at most of its allocations for its first
/// 1.4 s: with 1/256 the precise clock still timed nearly all of them.
const COARSE_SHARE: u64 = 64;

/// Learns the coarse clock's resolution (one kernel tick: 1-10 ms).
pub fn init() {
    let mut res = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `res` is a valid out-pointer; clock_getres does not allocate.
    let ok = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) } == 0;
    let ns = nanoseconds(&res);
    if ok && ns > 0 && ns < 1_000_000_000 {
        COARSE_FROM_NS.store(ns * COARSE_SHARE, Ordering::Relaxed);
    }
}

/// The time of a new peak in ns since `start_ns` (a precise reading), given this event's
/// coarse reading as time since start, `coarse_elapsed_ns`. Early in a run the coarse
/// clock's tick is a large part of it (all of a 3 ms program), so the precise clock is
/// read; later the coarse reading is already fine, and skipping a precise read matters there: a program whose total keeps
/// rising reaches a new peak at most of its allocations (jq: millions), and a precise
/// read costs four times a coarse one (~22 ns against ~5 ns here).
#[inline]
pub fn peak_time(start_ns: u64, coarse_elapsed_ns: u64) -> u64 {
    if coarse_elapsed_ns < COARSE_FROM_NS.load(Ordering::Relaxed) {
        monotonic_ns().saturating_sub(start_ns)
    } else {
        coarse_elapsed_ns
    }
}

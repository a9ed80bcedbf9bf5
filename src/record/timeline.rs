//! A bounded timeline of tracked bytes: at most `capacity` points however long the run.
//!
//! Each point covers an interval of `width` nanoseconds and keeps the maximum seen in it,
//! so the peak never falls between points. When the points run out, neighbours are merged
//! pairwise and the width doubles: O(1) amortized per event, fixed memory.

use crate::format::TimelinePoint;

/// Default number of points kept.
pub const DEFAULT_CAPACITY: usize = 2048;

/// The timeline being recorded.
#[derive(Debug, Clone)]
pub struct Timeline {
    points: Vec<TimelinePoint>,
    capacity: usize,
    width_ns: u64,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, 1_000_000)
    }
}

impl Timeline {
    /// A timeline of at most `capacity` points (at least 2), starting `initial_width_ns` wide.
    pub fn new(capacity: usize, initial_width_ns: u64) -> Self {
        Self {
            points: Vec::new(),
            capacity: capacity.max(2),
            width_ns: initial_width_ns.max(1),
        }
    }

    /// Records that `bytes` were tracked at `time_ns` (and the RSS, if known, else 0).
    /// Times must not go backwards; a time before the last point is folded into it.
    /// Returns true when this started a new point (a moment to sample the RSS).
    #[inline]
    pub fn observe(&mut self, time_ns: u64, bytes: u64, rss_bytes: u64) -> bool {
        if let Some(last) = self.points.last_mut() {
            // Most events fall in the current interval: no division on that path.
            if time_ns < last.time_ns {
                last.bytes = last.bytes.max(bytes);
                last.rss_bytes = last.rss_bytes.max(rss_bytes);
                last.last_bytes = bytes;
                return false;
            }
        }
        let bucket_end = (time_ns / self.width_ns + 1) * self.width_ns;
        if self.points.len() == self.capacity {
            self.halve();
            return self.observe(time_ns, bytes, rss_bytes);
        }
        self.points.push(TimelinePoint {
            time_ns: bucket_end,
            bytes,
            rss_bytes,
            last_bytes: bytes,
        });
        true
    }

    /// Raises the RSS of the latest point to at least `rss_bytes`.
    pub fn note_rss(&mut self, rss_bytes: u64) {
        if let Some(last) = self.points.last_mut() {
            last.rss_bytes = last.rss_bytes.max(rss_bytes);
        }
    }

    /// Doubles the interval width and merges points that now share an interval.
    fn halve(&mut self) {
        self.width_ns = self.width_ns.saturating_mul(2);
        let width = self.width_ns;
        let mut merged: Vec<TimelinePoint> = Vec::with_capacity(self.capacity);
        for p in self.points.drain(..) {
            let end = p.time_ns.div_ceil(width) * width;
            match merged.last_mut() {
                Some(last) if last.time_ns == end => {
                    last.bytes = last.bytes.max(p.bytes);
                    last.rss_bytes = last.rss_bytes.max(p.rss_bytes);
                    last.last_bytes = p.last_bytes;
                }
                _ => merged.push(TimelinePoint { time_ns: end, ..p }),
            }
        }
        self.points = merged;
    }

    /// The points so far, in time order.
    pub fn points(&self) -> &[TimelinePoint] {
        &self.points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_point_keeps_the_value_its_interval_ended_with() {
        let mut t = Timeline::new(4, 10);
        t.observe(1, 100, 0);
        t.observe(5, 900, 0);
        t.observe(8, 200, 0); // freed most of it before the interval ended
        t.observe(55, 300, 0); // a quiet stretch, then a new interval
        let p = t.points();
        assert_eq!((p[0].bytes, p[0].last_bytes), (900, 200));
        assert_eq!((p[1].bytes, p[1].last_bytes), (300, 300));
        // Merging intervals keeps the later one's ending value.
        for i in 0..10u64 {
            t.observe(100 + i * 10, 1000 + i, 0);
        }
        let last = t.points().last().unwrap();
        assert_eq!(last.last_bytes, 1009);
    }

    #[test]
    fn stays_bounded_and_keeps_the_maximum() {
        let mut t = Timeline::new(16, 10);
        let mut max = 0;
        for i in 0..10_000u64 {
            let bytes = (i * 7919) % 1000 + if i == 6543 { 5000 } else { 0 };
            max = max.max(bytes);
            t.observe(i * 3, bytes, 0);
            assert!(t.points().len() <= 16);
        }
        assert_eq!(t.points().iter().map(|p| p.bytes).max(), Some(max));
        assert!(t.points().windows(2).all(|w| w[0].time_ns < w[1].time_ns));
        // The point holding the spike covers the spike's time.
        let spike = t.points().iter().find(|p| p.bytes == max).unwrap();
        assert!(spike.time_ns >= 6543 * 3);
    }
}

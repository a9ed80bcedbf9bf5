//! Per-stack counters with an exact snapshot of the moment of peak, in O(1) per event.
//!
//! Copying every counter at each new peak costs O(stacks) per peak and collapses on programs
//! that climb in small steps (every allocation is a new peak). Instead each site carries a
//! stamp: the peak epoch at which its `at_peak` copy was last saved. A site's value at the
//! peak is its current value if it has not been touched since the latest peak, and its saved
//! copy otherwise. Only the site being touched is ever copied.

/// Counters of one call stack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Site {
    cur_bytes: u64,
    cur_count: u64,
    peak_bytes: u64,
    peak_count: u64,
    /// Epoch at which `peak_*` was saved; `< epoch` means `cur_*` still equals the peak value.
    stamp: u64,
}

/// Totals and per-stack bytes, with the exact state at the peak.
#[derive(Debug, Clone, Default)]
pub struct PeakTracker {
    sites: Vec<Site>,
    total: u64,
    live_count: u64,
    peak: u64,
    /// Number of times the peak was raised; 0 means the peak is the empty state.
    epoch: u64,
}

impl PeakTracker {
    /// An empty tracker: nothing live, peak 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tracked bytes live now.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Allocations live now.
    pub fn live_count(&self) -> u64 {
        self.live_count
    }

    /// The highest `total` reached so far.
    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// Saves the site's current value as its at-peak value unless that was already done
    /// since the latest peak. Must run before every change to the site.
    #[inline]
    fn touch(&mut self, stack: u32) -> &mut Site {
        let idx = stack as usize;
        if idx >= self.sites.len() {
            // A site that did not exist yet held nothing at any earlier peak; its default
            // (stamp 0, all zero) reads as zero at peak either way.
            self.sites.resize(idx + 1, Site::default());
        }
        let epoch = self.epoch;
        let site = &mut self.sites[idx];
        if site.stamp < epoch {
            site.peak_bytes = site.cur_bytes;
            site.peak_count = site.cur_count;
            site.stamp = epoch;
        }
        site
    }

    /// Records `bytes` more held by `stack` (one more allocation when `count` is true).
    /// Returns true when this raised the peak.
    #[inline]
    pub fn add(&mut self, stack: u32, bytes: u64, count: bool) -> bool {
        let site = self.touch(stack);
        site.cur_bytes += bytes;
        site.cur_count += u64::from(count);
        self.total += bytes;
        self.live_count += u64::from(count);
        if self.total > self.peak {
            self.peak = self.total;
            self.epoch += 1;
            true
        } else {
            false
        }
    }

    /// Records `bytes` fewer held by `stack` (one allocation fewer when `count` is true).
    /// Saturates instead of wrapping: a caller bug must not turn into an absurd total.
    #[inline]
    pub fn remove(&mut self, stack: u32, bytes: u64, count: bool) {
        let site = self.touch(stack);
        site.cur_bytes = site.cur_bytes.saturating_sub(bytes);
        site.cur_count = site.cur_count.saturating_sub(u64::from(count));
        self.total = self.total.saturating_sub(bytes);
        self.live_count = self.live_count.saturating_sub(u64::from(count));
    }

    /// `(stack, bytes, count)` for every stack holding something at the peak.
    pub fn at_peak(&self) -> impl Iterator<Item = (u32, u64, u64)> + '_ {
        let epoch = self.epoch;
        self.sites.iter().enumerate().filter_map(move |(i, s)| {
            let (bytes, count) = if s.stamp < epoch {
                (s.cur_bytes, s.cur_count)
            } else {
                (s.peak_bytes, s.peak_count)
            };
            (bytes > 0 || count > 0).then_some((i as u32, bytes, count))
        })
    }

    /// `(stack, bytes, count)` for every stack holding something now.
    pub fn current(&self) -> impl Iterator<Item = (u32, u64, u64)> + '_ {
        self.sites
            .iter()
            .enumerate()
            .filter(|(_, s)| s.cur_bytes > 0 || s.cur_count > 0)
            .map(|(i, s)| (i as u32, s.cur_bytes, s.cur_count))
    }

    /// Bytes and count currently held by one stack.
    pub fn current_of(&self, stack: u32) -> (u64, u64) {
        self.sites
            .get(stack as usize)
            .map_or((0, 0), |s| (s.cur_bytes, s.cur_count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_keeps_the_state_of_the_first_time_the_maximum_was_reached() {
        let mut t = PeakTracker::new();
        assert!(t.add(0, 100, true));
        assert!(t.add(1, 50, true));
        t.remove(0, 100, true);
        assert!(!t.add(2, 100, true)); // ties the peak: not a new peak
        let snap: Vec<_> = t.at_peak().collect();
        assert_eq!(snap, vec![(0, 100, 1), (1, 50, 1)]);
        assert_eq!(t.peak(), 150);
        assert_eq!(t.total(), 150);
    }

    #[test]
    fn untouched_sites_read_their_current_value() {
        let mut t = PeakTracker::new();
        t.add(3, 10, true);
        t.add(4, 20, true);
        let snap: Vec<_> = t.at_peak().collect();
        assert_eq!(snap, vec![(3, 10, 1), (4, 20, 1)]);
    }

    #[test]
    fn empty_tracker_has_empty_snapshot() {
        let t = PeakTracker::new();
        assert_eq!(t.at_peak().count(), 0);
        assert_eq!(t.peak(), 0);
    }
}

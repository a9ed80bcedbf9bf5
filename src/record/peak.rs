//! Per-stack counters with an exact snapshot of the moment of peak, in O(1) per event.
//!
//! Copying every counter at each new peak costs O(stacks) per peak and collapses on programs
//! that climb in small steps (every allocation is a new peak). Instead each site carries a
//! stamp: the peak epoch at which its `peak_*` copy was last saved. A site's value at the
//! peak is its current value if it has not been touched since the latest peak, and its saved
//! copy otherwise. Only the site being touched is ever copied.
//!
//! The counters live in a [`SiteStore`]: plain vectors in tests and the CLI, a file-backed
//! shared mapping in the preload, so that the state on disk is current at every instant and
//! survives SIGKILL.

/// Counters of one call stack. `repr(C)` and all `u64`: the layout is shared with the
/// live file (see [`crate::format::live`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Site {
    pub cur_bytes: u64,
    pub cur_count: u64,
    pub peak_bytes: u64,
    pub peak_count: u64,
    /// Epoch at which `peak_*` was saved; `< epoch` means `cur_*` still equals the peak value.
    pub stamp: u64,
    /// Bytes and number of allocations made by this stack over the whole run.
    pub alloc_bytes: u64,
    pub alloc_count: u64,
}

impl Site {
    /// `(bytes, count)` of this site at the peak of epoch `epoch`.
    #[inline]
    pub fn at_peak(&self, epoch: u64) -> (u64, u64) {
        if self.stamp < epoch {
            (self.cur_bytes, self.cur_count)
        } else {
            (self.peak_bytes, self.peak_count)
        }
    }
}

/// Process-wide totals, shared with the live file like [`Site`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Tracked bytes live now.
    pub total: u64,
    /// Live allocations now.
    pub live_count: u64,
    /// The highest `total` so far.
    pub peak: u64,
    /// Number of times the peak was raised; 0 means the peak is the empty state.
    pub epoch: u64,
    /// Time of the peak, nanoseconds since profiling started.
    pub peak_time_ns: u64,
    /// Number of sites in use (stack ids below this exist).
    pub sites: u64,
    /// Highest resident set size sampled so far (0 when never sampled).
    pub peak_rss: u64,
}

/// Where the counters live.
pub trait SiteStore {
    /// The totals.
    fn totals(&self) -> &Totals;
    /// The totals, for update.
    fn totals_mut(&mut self) -> &mut Totals;
    /// All sites; at least `totals().sites` of them.
    fn sites(&self) -> &[Site];
    /// All sites, for update.
    fn sites_mut(&mut self) -> &mut [Site];
    /// Makes room for at least `n` sites, new ones zeroed. False when memory ran out.
    fn reserve(&mut self, n: usize) -> bool;
}

/// Counters in ordinary memory.
#[derive(Debug, Clone, Default)]
pub struct VecStore {
    totals: Totals,
    sites: Vec<Site>,
}

impl SiteStore for VecStore {
    fn totals(&self) -> &Totals {
        &self.totals
    }
    fn totals_mut(&mut self) -> &mut Totals {
        &mut self.totals
    }
    fn sites(&self) -> &[Site] {
        &self.sites
    }
    fn sites_mut(&mut self) -> &mut [Site] {
        &mut self.sites
    }
    fn reserve(&mut self, n: usize) -> bool {
        if n > self.sites.len() {
            self.sites
                .resize(n.max(self.sites.len() * 2), Site::default());
        }
        true
    }
}

/// Totals and per-stack bytes, with the exact state at the peak.
#[derive(Debug, Clone, Default)]
pub struct PeakTracker<S: SiteStore = VecStore> {
    store: S,
    /// The peak is found outside (see [`Self::set_external_peak`]): `total` then counts
    /// only what passes through this tracker, and only [`Self::mark_peak`] moves the epoch.
    external_peak: bool,
}

impl PeakTracker<VecStore> {
    /// An empty tracker in ordinary memory: nothing live, peak 0.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S: SiteStore> PeakTracker<S> {
    /// A tracker over `store`, which may already hold counters (a forked child's copy).
    pub fn with_store(store: S) -> Self {
        Self {
            store,
            external_peak: false,
        }
    }

    /// Hands finding the peak to the caller. Sampled mode keeps the exact total of the
    /// unsampled blocks outside, in atomics that threads update without a lock; this
    /// tracker then keeps the per-stack counters and its own part of the total, and the
    /// caller says when the whole reached a new peak ([`Self::mark_peak`]).
    pub fn set_external_peak(&mut self) {
        self.external_peak = true;
    }

    /// Whether the caller finds the peak (see [`Self::set_external_peak`]).
    pub fn external_peak(&self) -> bool {
        self.external_peak
    }

    /// The current state is the state at a new peak (found by the caller): the next
    /// change to any site first saves its value. `peak` and `now_ns` are recorded as the
    /// peak's total and time.
    pub fn mark_peak(&mut self, peak: u64, now_ns: u64) {
        let t = self.store.totals_mut();
        t.epoch += 1;
        t.peak = peak;
        t.peak_time_ns = now_ns;
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The underlying store, for replacing its backing (fork).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The totals.
    pub fn totals(&self) -> &Totals {
        self.store.totals()
    }

    /// Tracked bytes live now.
    pub fn total(&self) -> u64 {
        self.store.totals().total
    }

    /// Allocations live now.
    pub fn live_count(&self) -> u64 {
        self.store.totals().live_count
    }

    /// The highest `total` reached so far.
    pub fn peak(&self) -> u64 {
        self.store.totals().peak
    }

    /// Saves the site's current value as its at-peak value unless that was already done
    /// since the latest peak. Must run before every change to the site. `None` when the
    /// store could not grow: the totals stay exact, only the attribution is lost.
    #[inline]
    fn touch(&mut self, stack: u32) -> Option<&mut Site> {
        let idx = stack as usize;
        if idx >= self.store.sites().len() && !self.store.reserve(idx + 1) {
            return None;
        }
        let totals = self.store.totals_mut();
        if idx as u64 >= totals.sites {
            // A site that did not exist yet held nothing at any earlier peak; its zeroed
            // state (stamp 0) reads as zero at peak either way.
            totals.sites = idx as u64 + 1;
        }
        let epoch = totals.epoch;
        let site = &mut self.store.sites_mut()[idx];
        if site.stamp < epoch {
            site.peak_bytes = site.cur_bytes;
            site.peak_count = site.cur_count;
            site.stamp = epoch;
        }
        Some(site)
    }

    /// Records `bytes` more held by `stack` (one more live block when `count`). Returns
    /// true when this raised the peak; `now_ns` is then the time of the peak.
    #[inline]
    pub fn add(&mut self, stack: u32, bytes: u64, count: bool, now_ns: u64) -> bool {
        self.add_parts(Some((stack, bytes)), bytes, count, now_ns)
    }

    /// Like [`Self::add`], with the site's share given apart from the bytes added to the
    /// total: in sampled mode a sampled block counts its estimated weight at its site, an
    /// unsampled one (`site` None) only in the total, which so stays exact.
    #[inline]
    pub fn add_parts(
        &mut self,
        site: Option<(u32, u64)>,
        bytes: u64,
        count: bool,
        now_ns: u64,
    ) -> bool {
        self.add_block(site, bytes, count, false, now_ns)
    }

    /// [`Self::add_parts`] for a new allocation: the site's run totals count it too, in
    /// the same touch of the site (a second lookup of it cost sqlite3 ~0.5% instructions).
    #[inline]
    pub fn add_allocation(&mut self, site: Option<(u32, u64)>, bytes: u64, now_ns: u64) -> bool {
        self.add_block(site, bytes, true, true, now_ns)
    }

    #[inline(always)]
    fn add_block(
        &mut self,
        site: Option<(u32, u64)>,
        bytes: u64,
        count: bool,
        allocation: bool,
        now_ns: u64,
    ) -> bool {
        if let Some((stack, weight)) = site {
            if let Some(site) = self.touch(stack) {
                site.cur_bytes += weight;
                site.cur_count += u64::from(count);
                if allocation {
                    site.alloc_bytes += weight;
                    site.alloc_count += 1;
                }
            }
        }
        let t = self.store.totals_mut();
        t.total += bytes;
        t.live_count += u64::from(count);
        if !self.external_peak && t.total > t.peak {
            t.peak = t.total;
            t.epoch += 1;
            t.peak_time_ns = now_ns;
            true
        } else {
            false
        }
    }

    /// Applies a lane's held-back change to its stack and to the totals (see
    /// [`Lane`](super::Lane)). No peak check: the caller keeps the total below the peak while
    /// lanes hold changes back.
    #[inline]
    pub fn apply_change(&mut self, c: &super::lane::Change) {
        if let Some(site) = self.touch(c.stack) {
            site.cur_bytes = site.cur_bytes.saturating_add_signed(c.bytes);
            site.cur_count = site.cur_count.saturating_add_signed(c.count);
            site.alloc_bytes += c.alloc_bytes;
            site.alloc_count += c.alloc_count;
        }
        let t = self.store.totals_mut();
        t.total = t.total.saturating_add_signed(c.bytes);
        t.live_count = t.live_count.saturating_add_signed(c.count);
    }

    /// Records `bytes` fewer held by `stack` (one live block fewer when `count`).
    /// Saturates instead of wrapping: a caller bug must not turn into an absurd total.
    #[inline]
    pub fn remove(&mut self, stack: u32, bytes: u64, count: bool) {
        self.remove_parts(Some((stack, bytes)), bytes, count);
    }

    /// The inverse of [`Self::add_parts`].
    #[inline]
    pub fn remove_parts(&mut self, site: Option<(u32, u64)>, bytes: u64, count: bool) {
        if let Some((stack, weight)) = site {
            if let Some(site) = self.touch(stack) {
                site.cur_bytes = site.cur_bytes.saturating_sub(weight);
                site.cur_count = site.cur_count.saturating_sub(u64::from(count));
            }
        }
        let t = self.store.totals_mut();
        t.total = t.total.saturating_sub(bytes);
        t.live_count = t.live_count.saturating_sub(u64::from(count));
    }

    /// Makes the current state the peak state: a forked child starts its own history from
    /// what it inherited.
    pub fn restart_peak(&mut self, now_ns: u64) {
        let t = self.store.totals_mut();
        t.peak = t.total;
        t.epoch += 1;
        t.peak_time_ns = now_ns;
    }

    fn used_sites(&self) -> impl Iterator<Item = (u32, &Site)> + '_ {
        let n = (self.store.totals().sites as usize).min(self.store.sites().len());
        self.store.sites()[..n]
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u32, s))
    }

    /// `(stack, bytes, count)` for every stack holding something at the peak.
    pub fn at_peak(&self) -> impl Iterator<Item = (u32, u64, u64)> + '_ {
        let epoch = self.store.totals().epoch;
        self.used_sites().filter_map(move |(i, s)| {
            let (bytes, count) = s.at_peak(epoch);
            (bytes > 0 || count > 0).then_some((i, bytes, count))
        })
    }

    /// `(stack, bytes, count)` for every stack holding something now.
    pub fn current(&self) -> impl Iterator<Item = (u32, u64, u64)> + '_ {
        self.used_sites()
            .filter(|(_, s)| s.cur_bytes > 0 || s.cur_count > 0)
            .map(|(i, s)| (i, s.cur_bytes, s.cur_count))
    }

    /// `(stack, bytes, count)` allocated by every stack over the run.
    pub fn allocated(&self) -> impl Iterator<Item = (u32, u64, u64)> + '_ {
        self.used_sites()
            .filter(|(_, s)| s.alloc_count > 0)
            .map(|(i, s)| (i, s.alloc_bytes, s.alloc_count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_keeps_the_state_of_the_first_time_the_maximum_was_reached() {
        let mut t = PeakTracker::new();
        assert!(t.add(0, 100, true, 1));
        assert!(t.add(1, 50, true, 2));
        t.remove(0, 100, true);
        assert!(!t.add(2, 100, true, 3)); // ties the peak: not a new peak
        let snap: Vec<_> = t.at_peak().collect();
        assert_eq!(snap, vec![(0, 100, 1), (1, 50, 1)]);
        assert_eq!(t.peak(), 150);
        assert_eq!(t.totals().peak_time_ns, 2);
        assert_eq!(t.total(), 150);
    }

    #[test]
    fn untouched_sites_read_their_current_value() {
        let mut t = PeakTracker::new();
        t.add(3, 10, true, 0);
        t.add(4, 20, true, 0);
        let snap: Vec<_> = t.at_peak().collect();
        assert_eq!(snap, vec![(3, 10, 1), (4, 20, 1)]);
    }

    #[test]
    fn empty_tracker_has_empty_snapshot() {
        let t = PeakTracker::new();
        assert_eq!(t.at_peak().count(), 0);
        assert_eq!(t.peak(), 0);
    }

    #[test]
    fn restarting_the_peak_makes_the_current_state_the_snapshot() {
        let mut t = PeakTracker::new();
        t.add(0, 500, true, 1);
        t.remove(0, 400, false);
        t.add(1, 10, true, 2);
        t.restart_peak(3);
        assert_eq!(t.peak(), 110);
        assert_eq!(
            t.at_peak().collect::<Vec<_>>(),
            vec![(0, 100, 1), (1, 10, 1)]
        );
    }
}

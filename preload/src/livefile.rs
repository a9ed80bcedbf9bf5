//! The live files: per-stack counters in a file-backed shared mapping, and the append-only
//! log of stacks and modules they refer to (layout in `peakprof::format::live`).
//!
//! Every counter update is a plain store into the page cache, so the file on disk is
//! current at every instant: SIGKILL, the OOM killer or a crash leave an exact peak behind.

use core::ffi::c_int;
use std::path::Path;

use peakprof::format::live::{LiveHeader, SharedTotals, HEADER_SIZE, LIVE_MAGIC, SITE_SIZE};
use peakprof::record::{Site, SiteStore, Totals};

use crate::guard::NoCancel;
use crate::ownfd::OwnFd;
use crate::real;

fn map(len: usize, fd: c_int, offset: usize) -> *mut u8 {
    let (flags, fd) = if fd >= 0 {
        (libc::MAP_SHARED, fd)
    } else {
        (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
    };
    // SAFETY: a fresh mapping of `len` bytes; the kernel picks the address.
    let p = unsafe {
        real::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        core::ptr::null_mut()
    } else {
        p.cast()
    }
}

/// Gives `fd`'s file blocks for `[offset, offset + len)`, extending it as needed: a shared
/// mapping of a file is only safe to store into where the file has its blocks. A store that
/// needs a block the filesystem cannot give (full, or over quota) kills the program with
/// SIGBUS; a refused reservation leaves the counters to anonymous memory instead.
/// `posix_fallocate` falls back to writing the blocks on filesystems without `fallocate`.
/// (On copy-on-write filesystems, btrfs and ZFS, every rewrite of a block needs a new one:
/// a reservation cannot cover those.)
fn reserve_blocks(fd: c_int, offset: usize, len: usize) -> bool {
    let _no_cancel = NoCancel::new();
    loop {
        // SAFETY: allocates blocks of our own file; the result is an error number. (glibc's
        // emulation may set errno: the callers keep the program's.)
        let r = unsafe { libc::posix_fallocate(fd, offset as libc::off_t, len as libc::off_t) };
        if r != libc::EINTR {
            return r == 0;
        }
    }
}

/// Per-stack counters, in a shared mapping of the `.live` file (or anonymous memory when
/// the file cannot be made).
pub struct MappedStore {
    /// The header's mapping; null when it could not be made.
    header: *mut LiveHeader,
    /// The totals: in the header, or without one a leaked box. Never null, so that the
    /// accessors the recorder calls several times an event need no test (the null tests
    /// were ~50 instructions an allocation on sqlite3).
    totals: *mut Totals,
    /// `capacity` sites mapped here; dangling (never null) when `capacity` is 0, nothing
    /// mapped.
    sites: *mut Site,
    capacity: usize,
    /// The `.live` file; `None` for anonymous counters.
    file: Option<OwnFd>,
    /// Whether the header is a shared mapping of the file. It stays one when the file
    /// cannot grow and the sites move to anonymous memory (see `move_to_anonymous`), so
    /// that the file still says how the process ended; a forked child must then still be
    /// given a private copy of it.
    shared_header: bool,
}

// SAFETY: the store owns its mappings; it is only used under the profiler's lock.
unsafe impl Send for MappedStore {}

const INITIAL_SITES: usize = 4096;

impl MappedStore {
    /// Creates `path` and maps it; falls back to anonymous memory when that fails.
    pub fn create(path: &Path) -> MappedStore {
        // O_EXCL never clobbers another file.
        let Some(mut file) = OwnFd::create(path, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL)
        else {
            return Self::anonymous();
        };
        let len = HEADER_SIZE + INITIAL_SITES * SITE_SIZE;
        if let Some(fd) = file.get() {
            // SAFETY: `fd` names our own file (checked by `get`); ftruncate only sizes it.
            let sized = unsafe { libc::ftruncate(fd, len as libc::off_t) } == 0;
            if sized && reserve_blocks(fd, 0, len) {
                let header = map(HEADER_SIZE, fd, 0);
                let sites = map(INITIAL_SITES * SITE_SIZE, fd, HEADER_SIZE);
                if !header.is_null() && !sites.is_null() {
                    // Needed again only to grow the file: do not hold one of the program's
                    // descriptors until then.
                    file.park();
                    return Self::init(header.cast(), sites.cast(), INITIAL_SITES, Some(file));
                }
                // SAFETY: unmapping what was mapped just above, unused since.
                unsafe {
                    if !header.is_null() {
                        real::munmap(header.cast(), HEADER_SIZE);
                    }
                    if !sites.is_null() {
                        real::munmap(sites.cast(), INITIAL_SITES * SITE_SIZE);
                    }
                }
            }
        }
        // No file rather than one without counters in it, which would read as damaged:
        // the log (if it can be written) still says the process was there.
        file.remove();
        Self::anonymous()
    }

    /// Counters in anonymous memory: everything works but a killed process leaves no profile.
    pub fn anonymous() -> MappedStore {
        let header = map(HEADER_SIZE, -1, 0);
        let sites = map(INITIAL_SITES * SITE_SIZE, -1, 0);
        Self::init(header.cast(), sites.cast(), INITIAL_SITES, None)
    }

    fn init(
        header: *mut LiveHeader,
        sites: *mut Site,
        capacity: usize,
        file: Option<OwnFd>,
    ) -> Self {
        let totals = if header.is_null() {
            // Without a header mapping (out of memory at start) there is nowhere to count:
            // a box from the real allocator instead of failing, leaked with the store.
            Box::into_raw(Box::<Totals>::default())
        } else {
            // SAFETY: a fresh, zeroed, writable mapping of at least HEADER_SIZE bytes.
            unsafe { (*header).magic = *LIVE_MAGIC };
            // SAFETY: only computes a field's address inside that mapping.
            unsafe { core::ptr::addr_of_mut!((*header).totals) }
        };
        Self {
            header,
            totals,
            sites: if sites.is_null() {
                core::ptr::NonNull::dangling().as_ptr()
            } else {
                sites
            },
            capacity: if sites.is_null() { 0 } else { capacity },
            shared_header: file.is_some() && !header.is_null(),
            file,
        }
    }

    /// Sampled mode's shared totals in the header, which threads update atomically
    /// without the profiler's lock; null without a header. The store itself never reads
    /// or writes them (it hands out references to `totals` only), so the atomics alias
    /// nothing.
    pub fn shared(&self) -> *mut SharedTotals {
        if self.header.is_null() {
            return core::ptr::null_mut();
        }
        // SAFETY: the header mapping is valid; this only computes a field's address.
        unsafe { core::ptr::addr_of_mut!((*self.header).shared) }
    }

    /// The header's count of exec calls in progress (see
    /// [`peakprof::format::live::LiveHeader::exec`]); null without a header.
    pub fn exec_word(&self) -> *mut u64 {
        if self.header.is_null() {
            return core::ptr::null_mut();
        }
        // SAFETY: the header mapping is valid; this only computes a field's address.
        unsafe { core::ptr::addr_of_mut!((*self.header).exec) }
    }

    /// Says in the header how the process ended ([`peakprof::format::live::ended_word`]),
    /// before its final profile is written: if that write fails (no descriptor left), the
    /// live files still tell an exit from a kill. Nothing without a header.
    pub fn mark_ended(&self, word: u64) {
        if self.header.is_null() {
            return;
        }
        // SAFETY: the header mapping is valid and 8-aligned; the word is only ever written
        // here, by the process that owns the file, under the profiler's lock.
        unsafe { core::ptr::addr_of_mut!((*self.header).ended).write_volatile(word) };
    }

    /// At fork, in the parent, under the profiler's lock: private copies of the header and
    /// of the sites in use, for the child. A file-backed store's mappings are shared, so
    /// without them a child would see every change its parent makes after the fork until
    /// it has files of its own (its first allocation, which may come much later).
    ///
    /// The parent keeps the copy for its next fork (`previous`): its pages are then already
    /// faulted in, and a fork costs one copy of the sites in use (fresh mappings each time
    /// cost 1 ms a fork at 30000 stacks, three times the copy). `None` for anonymous
    /// counters (the fork makes them private already) or when memory is short (the child
    /// then keeps the shared view). Counters whose sites left the file for anonymous
    /// memory still have their header in it: they get copies all the same.
    pub fn fork_snapshot(&self, previous: Option<ForkSnapshot>) -> Option<ForkSnapshot> {
        let sites_len = self.capacity * SITE_SIZE;
        let shared = self.shared_header && self.capacity > 0;
        let mut snap = match previous {
            Some(s) if shared && s.sites_len == sites_len => s,
            stale => {
                // A copy for a smaller table (the sites grew since), or for counters that
                // are no longer shared: unmapped, not kept.
                if let Some(s) = stale {
                    s.free();
                }
                if !shared {
                    return None;
                }
                let snap = ForkSnapshot {
                    header: map(HEADER_SIZE, -1, 0),
                    sites: map(sites_len, -1, 0),
                    sites_len,
                    filled: 0,
                };
                if snap.header.is_null() || snap.sites.is_null() {
                    snap.free();
                    return None;
                }
                snap
            }
        };
        let used = (self.totals().sites as usize).min(self.capacity) * SITE_SIZE;
        // SAFETY: the snapshot's own mappings, of the sizes written; the sources are this
        // store's own mappings of at least those sizes, which nothing writes while the lock
        // is held. Sites past `used` are zero in the file: so they must be in the copy.
        unsafe {
            core::ptr::copy_nonoverlapping(self.header.cast::<u8>(), snap.header, HEADER_SIZE);
            core::ptr::copy_nonoverlapping(self.sites.cast::<u8>(), snap.sites, used);
            if snap.filled > used {
                core::ptr::write_bytes(snap.sites.add(used), 0, snap.filled - used);
            }
        }
        snap.filled = used;
        Some(snap)
    }

    /// In a forked child: puts the parent's fork-time copies ([`Self::fork_snapshot`]) in
    /// place of the shared mappings, at the same addresses (so every pointer into them, the
    /// sampled totals' included, stays valid), and lets go of the parent's file.
    pub fn adopt(&mut self, snap: ForkSnapshot) {
        if snap.sites_len != self.capacity * SITE_SIZE
            || self.header.is_null()
            || self.capacity == 0
        {
            snap.free();
            return;
        }
        let moved = replace_mapping(snap.header, self.header.cast(), HEADER_SIZE)
            && replace_mapping(snap.sites, self.sites.cast(), snap.sites_len);
        if !moved {
            snap.free();
            return;
        }
        self.shared_header = false;
        if let Some(file) = self.file.take() {
            file.close();
        }
    }

    /// A new store at `path` holding a copy of this one's counters (a forked child's own;
    /// the shared totals are the caller's to carry over).
    pub fn copy_to(&self, path: &Path) -> MappedStore {
        let mut new = MappedStore::create(path);
        if new.reserve(self.capacity) {
            *new.totals_mut() = *self.totals();
            let n = self.capacity.min(new.capacity);
            new.sites_mut()[..n].copy_from_slice(&self.sites()[..n]);
        }
        new
    }

    /// Unmaps and closes without touching the file (the parent's, after fork).
    pub fn release(self) {
        // SAFETY: the mappings are this store's own and unused hereafter.
        unsafe {
            if !self.header.is_null() {
                real::munmap(self.header.cast(), HEADER_SIZE);
            }
            if self.capacity > 0 {
                real::munmap(self.sites.cast(), self.capacity * SITE_SIZE);
            }
        }
        if let Some(file) = self.file {
            file.close();
        }
    }
}

impl SiteStore for MappedStore {
    fn totals(&self) -> &Totals {
        // SAFETY: `totals` is valid for the store's life (see the field) and only accessed
        // under the profiler's lock.
        unsafe { &*self.totals }
    }

    fn totals_mut(&mut self) -> &mut Totals {
        // SAFETY: as in `totals`, and `&mut self` makes the access exclusive.
        unsafe { &mut *self.totals }
    }

    fn sites(&self) -> &[Site] {
        // SAFETY: `capacity` sites are mapped at `sites`, or it is dangling (non-null and
        // aligned) with a capacity of 0.
        unsafe { core::slice::from_raw_parts(self.sites, self.capacity) }
    }

    fn sites_mut(&mut self) -> &mut [Site] {
        // SAFETY: as in `sites`, exclusive through `&mut self`.
        unsafe { core::slice::from_raw_parts_mut(self.sites, self.capacity) }
    }

    fn reserve(&mut self, n: usize) -> bool {
        if n <= self.capacity {
            return true;
        }
        let new_cap = n.max(self.capacity * 2).max(INITIAL_SITES);
        let new_len = new_cap * SITE_SIZE;
        let mut fd = -1;
        if let Some(file) = &mut self.file {
            // The program may have closed the descriptor (and reused its number): `get`
            // reopens the file rather than truncate and map someone else's.
            let Some(own) = file.get() else {
                return self.move_to_anonymous(new_cap);
            };
            let old_size = HEADER_SIZE + self.capacity * SITE_SIZE;
            // SAFETY: growing our own file (checked by `get`).
            let grown = unsafe { libc::ftruncate(own, (HEADER_SIZE + new_len) as libc::off_t) }
                == 0
                && reserve_blocks(own, old_size, HEADER_SIZE + new_len - old_size);
            if !grown {
                // Back to the size the counters in the file cover: a reader tells from it
                // that the sites counted since are not in the file.
                // SAFETY: shrinking our own file to what is mapped of it.
                unsafe { libc::ftruncate(own, old_size as libc::off_t) };
                return self.move_to_anonymous(new_cap);
            }
            fd = own;
        }
        let old_len = self.capacity * SITE_SIZE;
        let p = if self.capacity == 0 {
            map(new_len, fd, HEADER_SIZE)
        } else {
            // SAFETY: resizing our own mapping; MAYMOVE lets the kernel relocate it, and
            // no reference into it outlives this call (callers hold `&mut self`).
            let r = unsafe {
                real::mremap(
                    self.sites.cast(),
                    old_len,
                    new_len,
                    libc::MREMAP_MAYMOVE,
                    core::ptr::null_mut(),
                )
            };
            if r == libc::MAP_FAILED {
                core::ptr::null_mut()
            } else {
                r.cast()
            }
        };
        if let Some(file) = &mut self.file {
            file.park();
        }
        if p.is_null() {
            return false;
        }
        self.sites = p.cast();
        self.capacity = new_cap;
        true
    }
}

impl MappedStore {
    /// The file cannot grow (disk full) or cannot be reached any more: keep counting in
    /// anonymous memory (the header stays in the file).
    fn move_to_anonymous(&mut self, new_cap: usize) -> bool {
        let p: *mut Site = map(new_cap * SITE_SIZE, -1, 0).cast();
        if p.is_null() {
            return false;
        }
        if let Some(file) = self.file.take() {
            file.close();
        }
        if self.capacity > 0 {
            // SAFETY: both regions hold at least `capacity` sites and do not overlap.
            unsafe {
                core::ptr::copy_nonoverlapping(self.sites, p, self.capacity);
                real::munmap(self.sites.cast(), self.capacity * SITE_SIZE);
            }
        }
        self.sites = p;
        self.capacity = new_cap;
        true
    }
}

/// The counters as they were at a fork, in private memory: taken by the parent, adopted by
/// the child, kept by the parent for its next fork (see [`MappedStore::fork_snapshot`]).
pub struct ForkSnapshot {
    header: *mut u8,
    sites: *mut u8,
    sites_len: usize,
    /// Bytes of `sites` the last copy wrote (the rest is zero).
    filled: usize,
}

// SAFETY: plain private mappings, owned by whichever process holds the value.
unsafe impl Send for ForkSnapshot {}

impl ForkSnapshot {
    /// Unmaps the copies (one that does not fit the store any more, or could not be used).
    pub fn free(self) {
        // SAFETY: the mappings are this snapshot's own and unused hereafter.
        unsafe {
            if !self.header.is_null() {
                real::munmap(self.header.cast(), HEADER_SIZE);
            }
            if !self.sites.is_null() {
                real::munmap(self.sites.cast(), self.sites_len);
            }
        }
    }
}

/// Moves the mapping at `from` onto `to` (both `len` bytes, page-aligned), replacing what
/// was there in one step; partly moved mappings cannot happen (the kernel moves it whole or
/// not at all).
fn replace_mapping(from: *mut u8, to: *mut u8, len: usize) -> bool {
    // SAFETY: `from` is a private mapping of `len` bytes that we own; `to` is the start of
    // one of the store's own mappings of exactly `len` bytes, which this replaces.
    let r = unsafe {
        real::mremap(
            from.cast(),
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            to.cast(),
        )
    };
    r != libc::MAP_FAILED
}

/// The append-only log file.
pub struct LogFile {
    /// `None` when it could not be created: records are then dropped.
    file: Option<OwnFd>,
    /// Bytes of whole records in the file: where a record that could not be written whole
    /// (a full disk) is cut back to, so the records after it are still read as records.
    len: u64,
    /// Close the descriptor after each append: the program runs under so low a descriptor
    /// limit (`ulimit -n 8`) that holding one would take a file from it.
    park_after_append: bool,
}

/// A descriptor limit at or below which the log holds no descriptor between appends: an
/// append is then open, fstat (is it still our file?), write, fstat and close, five system
/// calls instead of two (fstat and write), and holds none of the program's descriptors in
/// between.
const TIGHT_DESCRIPTOR_LIMIT: u64 = 64;

impl LogFile {
    /// Creates `path` for appending; a log that cannot be created just drops records.
    pub fn create(path: &Path) -> LogFile {
        // O_EXCL never clobbers another file.
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_APPEND;
        let limit = crate::ownfd::descriptor_limit();
        let mut log = LogFile {
            file: OwnFd::create(path, flags),
            len: 0,
            park_after_append: limit > 0 && limit <= TIGHT_DESCRIPTOR_LIMIT,
        };
        if log.park_after_append {
            log.park();
        }
        log
    }

    /// Appends `bytes` with as few system calls as the kernel allows, all of them or none
    /// (a record that does not fit is dropped, and the next one is tried all the same).
    pub fn append(&mut self, record: &[u8]) {
        let mut bytes = record;
        // `write` is a cancellation point (opening and closing are covered by `OwnFd`).
        let _no_cancel = NoCancel::new();
        // Checked at every append: the program may have closed the descriptor and opened a
        // file of its own at that number since the last one.
        let get = if self.park_after_append {
            OwnFd::get_briefly
        } else {
            OwnFd::get
        };
        let Some(fd) = self.file.as_mut().and_then(get) else {
            return;
        };
        while !bytes.is_empty() {
            // SAFETY: writing a valid buffer to our own descriptor (checked by `get`).
            let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
            if n > 0 {
                bytes = &bytes[n as usize..];
            } else if n < 0 && crate::guard::errno() == libc::EINTR {
                continue;
            } else {
                break;
            }
        }
        if bytes.is_empty() {
            self.len += record.len() as u64;
        } else {
            // Part of a record would make what follows unreadable: cut it off. Without its
            // first record (the magic and the process facts) nothing after it could be
            // read: then, or should the cut fail, write nothing more (the file, even
            // empty, still says the process was there).
            // SAFETY: shrinking our own file (checked by `get`) to its whole records.
            let cut = unsafe { libc::ftruncate(fd, self.len as libc::off_t) } == 0;
            if !cut || self.len == 0 {
                if let Some(file) = self.file.take() {
                    file.close();
                }
                return;
            }
        }
        if self.park_after_append {
            self.park();
        }
    }

    /// Gives the descriptor back until the next append (which reopens the file).
    pub fn park(&mut self) {
        if let Some(file) = &mut self.file {
            file.park();
        }
    }

    /// Closes the file.
    pub fn close(self) {
        if let Some(file) = self.file {
            file.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose mappings all failed at start still counts: its totals in a box, its
    /// sites mapped on the first reserve, and no shared header handed out.
    #[test]
    fn a_store_without_mappings_counts_in_private_memory() {
        let mut s = MappedStore::init(core::ptr::null_mut(), core::ptr::null_mut(), 8, None);
        assert_eq!(s.sites().len(), 0);
        assert_eq!(*s.totals(), Totals::default());
        assert!(s.shared().is_null());
        assert!(s.exec_word().is_null());
        s.totals_mut().total = 42;
        assert_eq!(s.totals().total, 42);
        assert!(s.reserve(3));
        assert!(s.sites().len() >= 3);
        s.sites_mut()[2].cur_bytes = 7;
        assert_eq!(s.sites()[2].cur_bytes, 7);
        assert!(
            s.fork_snapshot(None).is_none(),
            "no file: nothing shared to copy"
        );
        s.release();
    }

    /// The anonymous store's totals live in its header: what the accessors write is what a
    /// reader of the header sees.
    #[test]
    fn an_anonymous_store_keeps_its_totals_in_the_header() {
        let mut s = MappedStore::anonymous();
        assert!(!s.header.is_null());
        s.totals_mut().peak = 99;
        // SAFETY: the header mapping is valid while the store lives.
        assert_eq!(unsafe { (*s.header).totals.peak }, 99);
        assert_eq!(s.sites().len(), INITIAL_SITES);
        assert!(s.reserve(INITIAL_SITES + 1));
        assert!(s.sites().len() > INITIAL_SITES);
        s.release();
    }
}

//! Descriptors the profiler keeps open inside someone else's process.
//!
//! The program owns the descriptor table. Daemons and sandboxes close every descriptor they
//! did not open (`closefrom(3)`, a loop up to the limit), and shell-like programs `dup2` onto
//! fixed numbers. After that, the number the profiler kept may name one of the program's own
//! files. Appending a stack record there, or truncating and mapping it to grow the live
//! file, would corrupt the program's data, the worst thing a profiler can do.
//!
//! The live file's descriptor is only needed to grow the file, so it is closed between
//! uses (`park`); only the log's stays open (under a tight descriptor limit, not even
//! that one). Each descriptor:
//! - sits at a high number, out of the way of programs that use small fixed numbers (the
//!   kernel hands out the lowest free one), except one opened for a single use;
//! - remembers the device and inode of the file it opened, and is checked against them
//!   (`fstat`) before every use. When it no longer names that file, it is reopened by path
//!   and the old number is left alone: it is the program's now.
//!
//! Opening and closing (cancellation points) happen with thread cancellation held off (see
//! [`NoCancel`]), as they can run inside a hook with the profiler's lock held.
//!
//! The check and the use are two system calls: a program thread could close and reuse the
//! number between them. That needs the program to close a descriptor it never opened at
//! that very instant; every other case is caught.

use core::ffi::c_int;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use crate::guard::NoCancel;

/// The lowest number a kept descriptor moves to, when the descriptor limit allows it.
const HIGH_FD: c_int = 512;

/// A descriptor of a file the profiler created, checked before each use.
pub struct OwnFd {
    fd: c_int,
    dev: u64,
    ino: u64,
    path: CString,
    /// How to reopen it: the creation flags minus O_CREAT/O_EXCL/O_TRUNC.
    reopen: c_int,
}

impl OwnFd {
    /// Creates the file at `path` with `flags` (which must include O_CREAT|O_EXCL, so no
    /// existing file is ever clobbered); `None` when it cannot be created.
    pub fn create(path: &Path, flags: c_int) -> Option<OwnFd> {
        let _no_cancel = NoCancel::new();
        // The bytes as they are: a directory's name need not be UTF-8.
        let path = CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: a valid NUL-terminated path.
        let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
        let fd = move_high(fd)?;
        let Some((dev, ino)) = identity(fd) else {
            // SAFETY: `fd` was opened just above and is not shared.
            unsafe { libc::close(fd) };
            return None;
        };
        Some(OwnFd {
            fd,
            dev,
            ino,
            path,
            reopen: flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC),
        })
    }

    /// The descriptor, if it still names the file created; reopened by path when the
    /// program closed it or put a file of its own at its number. `None` when the file
    /// cannot be reached any more (deleted, or its directory moved).
    pub fn get(&mut self) -> Option<c_int> {
        self.get_moved(true)
    }

    /// [`Self::get`] for one use followed by [`Self::park`]: a reopened descriptor stays at
    /// the number the kernel gave it (moving it high is three more system calls, and it
    /// is given back right after).
    pub fn get_briefly(&mut self) -> Option<c_int> {
        self.get_moved(false)
    }

    fn get_moved(&mut self, high: bool) -> Option<c_int> {
        if self.holds_it() {
            return Some(self.fd);
        }
        // Whatever the old number names now is not ours: never close it.
        self.fd = -1;
        let _no_cancel = NoCancel::new();
        // SAFETY: a valid NUL-terminated path; no O_CREAT, so nothing is created.
        let fd = unsafe { libc::open(self.path.as_ptr(), self.reopen | libc::O_CLOEXEC) };
        let fd = if high {
            move_high(fd)?
        } else {
            (fd >= 0).then_some(fd)?
        };
        if identity(fd) != Some((self.dev, self.ino)) {
            // Another file took the path: not ours to write.
            // SAFETY: `fd` was opened just above and is not shared.
            unsafe { libc::close(fd) };
            return None;
        }
        self.fd = fd;
        Some(fd)
    }

    /// Closes the descriptor if it still names the file (after fork, a child's copy may
    /// already be a file of the child's own).
    pub fn close(mut self) {
        self.park();
    }

    /// Closes the descriptor and removes the file, a file just created that is not going
    /// to be used after all; a file that took its path since is left alone.
    pub fn remove(mut self) {
        if self.get_briefly().is_some() {
            let _no_cancel = NoCancel::new();
            // SAFETY: a valid NUL-terminated path, which names our file (checked by
            // `get_briefly` through the descriptor it opened, if it had to).
            unsafe { libc::unlink(self.path.as_ptr()) };
        }
        self.park();
    }

    /// Gives the descriptor back until the next [`Self::get`], which reopens the file: a
    /// file used rarely should not hold one of the program's descriptors (a program under
    /// a low descriptor limit needs every one it has).
    pub fn park(&mut self) {
        if self.holds_it() {
            let _no_cancel = NoCancel::new();
            // SAFETY: the descriptor names our file, checked just above.
            unsafe { libc::close(self.fd) };
        }
        self.fd = -1;
    }

    /// Whether the descriptor is open and still names the file created.
    fn holds_it(&self) -> bool {
        self.fd >= 0 && identity(self.fd) == Some((self.dev, self.ino))
    }
}

/// The device and inode `fd` names; `None` when it is not open.
fn identity(fd: c_int) -> Option<(u64, u64)> {
    // SAFETY: `st` is a plain C struct that fstat fills; zeroes are a valid value for it.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fstat writes only into `st`.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some((st.st_dev, st.st_ino))
}

/// The process's soft limit on open descriptors (0 when unknown).
pub fn descriptor_limit() -> u64 {
    // SAFETY: getrlimit writes only into `lim`, a plain C struct for which zeroes are valid.
    let mut lim: libc::rlimit = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        0
    }
}

/// Moves a freshly opened `fd` to a high number (keeping it where it is when the limit
/// leaves no room); `None` for a failed open.
fn move_high(fd: c_int) -> Option<c_int> {
    if fd < 0 {
        return None;
    }
    if fd >= HIGH_FD {
        return Some(fd);
    }
    // Half the limit at most, so a program near its limit keeps its own numbers.
    let lowest = HIGH_FD.min((descriptor_limit() / 2).min(c_int::MAX as u64) as c_int);
    if lowest <= fd {
        return Some(fd);
    }
    // SAFETY: duplicates our own descriptor; the copy is close-on-exec like the original.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, lowest) };
    if high < 0 {
        return Some(fd);
    }
    // SAFETY: the original is ours and replaced by `high`.
    unsafe { libc::close(fd) };
    Some(high)
}

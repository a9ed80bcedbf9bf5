//! The next definitions of the functions we interpose, found with `dlsym(RTLD_NEXT, ..)`,
//! so a program that brings its own allocator as a shared library (tcmalloc, jemalloc,
//! mimalloc) keeps it.
//!
//! Resolution is lazy and happens on the first call of any of them: another library's
//! constructor may allocate before ours runs. While `dlsym` runs, allocations come from the
//! bootstrap arena.

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use crate::bootstrap;

const UNRESOLVED: u8 = 0;
const RESOLVING: u8 = 1;
const READY: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNRESOLVED);
/// The next `free` is glibc's own (see [`free_is_glibcs`]).
static GLIBC_FREE: AtomicBool = AtomicBool::new(false);

macro_rules! next_fns {
    ($($slot:ident: $name:literal),* $(,)?) => {
        $(static $slot: AtomicUsize = AtomicUsize::new(0);)*

        fn resolve_all() {
            $(
                // SAFETY: the name is a NUL-terminated literal; RTLD_NEXT is valid from a
                // shared object; a null result is handled by every caller.
                let f = unsafe { libc::dlsym(libc::RTLD_NEXT, concat!($name, "\0").as_ptr().cast()) };
                $slot.store(f as usize, Ordering::Release);
            )*
        }
    };
}

next_fns! {
    MALLOC: "malloc",
    CALLOC: "calloc",
    REALLOC: "realloc",
    REALLOCARRAY: "reallocarray",
    FREE: "free",
    POSIX_MEMALIGN: "posix_memalign",
    ALIGNED_ALLOC: "aligned_alloc",
    MEMALIGN: "memalign",
    VALLOC: "valloc",
    PVALLOC: "pvalloc",
    MMAP: "mmap",
    MUNMAP: "munmap",
    MREMAP: "mremap",
    EXIT: "_exit",
    DLOPEN: "dlopen",
    DLCLOSE: "dlclose",
    EXECVE: "execve",
    EXECV: "execv",
    EXECVP: "execvp",
    EXECVPE: "execvpe",
    FEXECVE: "fexecve",
    EXECVEAT: "execveat",
}

/// Resolves the next definitions once. Returns false while they are being resolved (by this
/// thread, from inside dlsym, or by another thread at the same instant).
#[cold]
fn resolve() -> bool {
    match STATE.compare_exchange(UNRESOLVED, RESOLVING, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            resolve_all();
            GLIBC_FREE.store(next_free_is_glibcs(), Ordering::Relaxed);
            crate::threads::init();
            STATE.store(READY, Ordering::Release);
            true
        }
        Err(s) => s == READY,
    }
}

/// The address stored in `slot`, resolving first if needed; 0 when unavailable.
#[inline]
fn get(slot: &AtomicUsize) -> usize {
    let f = slot.load(Ordering::Acquire);
    if f != 0 || STATE.load(Ordering::Acquire) == READY {
        return f;
    }
    if resolve() {
        slot.load(Ordering::Acquire)
    } else {
        0
    }
}

/// Whether the next `free` is glibc's own, in a glibc without `__free_hook` (2.34 on):
/// the definition `dlsym` finds in `libc.so.6` itself. (Comparing with `__libc_free`
/// would not do: tcmalloc and mimalloc define that name too, as an alias of their free.)
fn next_free_is_glibcs() -> bool {
    let free = FREE.load(Ordering::Relaxed);
    if free == 0 || !glibc_version_at_least(libc_version(), (2, 34)) {
        return false;
    }
    // SAFETY: the name is a NUL-terminated literal; RTLD_NOLOAD only looks the already
    // loaded libc up (the handle is kept: libc is never unloaded).
    let libc = unsafe { libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    if libc.is_null() {
        return false;
    }
    // SAFETY: a valid handle and a NUL-terminated name.
    let libc_free = unsafe { libc::dlsym(libc, c"free".as_ptr()) };
    free == libc_free as usize
}

extern "C" {
    /// glibc's version string, e.g. "2.36".
    fn gnu_get_libc_version() -> *const core::ffi::c_char;
}

/// The running glibc's version string ("" if it is not UTF-8).
fn libc_version() -> &'static str {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    let v = unsafe { core::ffi::CStr::from_ptr(gnu_get_libc_version()) };
    v.to_str().unwrap_or("")
}

/// Whether a glibc version string ("2.36", "2.35.1") is at least `major.minor`.
fn glibc_version_at_least(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// Whether the real `free` is glibc's (2.34 or later), which calls nothing a hook
/// interposes (its own munmap and madvise are internal calls; 2.34 removed
/// `__free_hook`) and allocates nothing: it may run outside the reentrancy guard. False
/// until the next definitions are resolved.
#[inline]
pub fn free_is_glibcs() -> bool {
    GLIBC_FREE.load(Ordering::Relaxed)
}

/// Makes sure the next definitions are resolved (called from the constructor).
pub fn init() {
    if STATE.load(Ordering::Acquire) != READY {
        resolve();
    }
}

type Malloc = unsafe extern "C" fn(usize) -> *mut c_void;
type Calloc = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type Realloc = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
type ReallocArray = unsafe extern "C" fn(*mut c_void, usize, usize) -> *mut c_void;
type Free = unsafe extern "C" fn(*mut c_void);
type PosixMemalign = unsafe extern "C" fn(*mut *mut c_void, usize, usize) -> c_int;
type Memalign = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type Mmap =
    unsafe extern "C" fn(*mut c_void, usize, c_int, c_int, c_int, libc::off_t) -> *mut c_void;
type Munmap = unsafe extern "C" fn(*mut c_void, usize) -> c_int;
type Mremap = unsafe extern "C" fn(*mut c_void, usize, usize, c_int, *mut c_void) -> *mut c_void;

macro_rules! call {
    ($slot:ident as $ty:ty) => {{
        let f = get(&$slot);
        // SAFETY: a non-zero slot holds the address dlsym returned for the function of
        // that name, whose C signature is `$ty`.
        (f != 0).then(|| unsafe { core::mem::transmute::<usize, $ty>(f) })
    }};
}

/// Page size, for valloc/pvalloc fallbacks.
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// The real `malloc`.
///
/// # Safety
/// As `malloc(3)`.
pub unsafe fn malloc(size: usize) -> *mut c_void {
    match call!(MALLOC as Malloc) {
        // SAFETY: forwarding the caller's arguments to the real function.
        Some(f) => unsafe { f(size) },
        None => bootstrap::alloc(size),
    }
}

/// The real `calloc`.
///
/// # Safety
/// As `calloc(3)`.
pub unsafe fn calloc(n: usize, size: usize) -> *mut c_void {
    match call!(CALLOC as Calloc) {
        // SAFETY: forwarding the caller's arguments to the real function.
        Some(f) => unsafe { f(n, size) },
        // The arena is zeroed and never reused.
        None => n
            .checked_mul(size)
            .map_or(core::ptr::null_mut(), bootstrap::alloc),
    }
}

/// The real `free`; ignores bootstrap blocks.
///
/// # Safety
/// As `free(3)`.
#[inline]
pub unsafe fn free(p: *mut c_void) {
    if p.is_null() || bootstrap::contains(p) {
        return;
    }
    if let Some(f) = call!(FREE as Free) {
        // SAFETY: forwarding the caller's pointer to the real function.
        unsafe { f(p) }
    }
}

/// The real `realloc`; moves bootstrap blocks into the real heap.
///
/// # Safety
/// As `realloc(3)`.
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if bootstrap::contains(p) {
        // SAFETY: `p` is a bootstrap block, so its size header is valid.
        let old = unsafe { bootstrap::size_of(p) };
        // SAFETY: plain allocation.
        let q = unsafe { malloc(size) };
        if !q.is_null() {
            // SAFETY: both blocks hold at least min(old, size) bytes and do not overlap.
            unsafe {
                core::ptr::copy_nonoverlapping(p.cast::<u8>(), q.cast::<u8>(), old.min(size))
            };
        }
        return q;
    }
    match call!(REALLOC as Realloc) {
        // SAFETY: forwarding the caller's arguments to the real function.
        Some(f) => unsafe { f(p, size) },
        None => core::ptr::null_mut(),
    }
}

/// The real `reallocarray`, or `realloc` with the overflow check when the next library
/// has none.
///
/// # Safety
/// As `reallocarray(3)`.
pub unsafe fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    if !bootstrap::contains(p) {
        if let Some(f) = call!(REALLOCARRAY as ReallocArray) {
            // SAFETY: forwarding the caller's arguments to the real function.
            return unsafe { f(p, n, size) };
        }
    }
    match n.checked_mul(size) {
        // SAFETY: as realloc.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            crate::guard::set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// The real `memalign`, falling back to `posix_memalign`.
///
/// # Safety
/// As `memalign(3)`.
pub unsafe fn memalign(align: usize, size: usize) -> *mut c_void {
    if let Some(f) = call!(MEMALIGN as Memalign) {
        // SAFETY: forwarding the caller's arguments to the real function.
        return unsafe { f(align, size) };
    }
    let mut p = core::ptr::null_mut();
    // SAFETY: `p` is a valid out-pointer.
    if unsafe { posix_memalign(&mut p, align.max(core::mem::size_of::<usize>()), size) } == 0 {
        p
    } else {
        core::ptr::null_mut()
    }
}

/// The real `posix_memalign`.
///
/// # Safety
/// As `posix_memalign(3)`.
pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    match call!(POSIX_MEMALIGN as PosixMemalign) {
        // SAFETY: forwarding the caller's arguments to the real function.
        Some(f) => unsafe { f(out, align, size) },
        None => libc::ENOMEM,
    }
}

/// The real `aligned_alloc`, falling back to `memalign`.
///
/// # Safety
/// As `aligned_alloc(3)`.
pub unsafe fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    match call!(ALIGNED_ALLOC as Memalign) {
        // SAFETY: forwarding the caller's arguments to the real function.
        Some(f) => unsafe { f(align, size) },
        // SAFETY: as memalign.
        None => unsafe { memalign(align, size) },
    }
}

/// The real `valloc`, falling back to page-aligned `memalign`.
///
/// # Safety
/// As `valloc(3)`.
pub unsafe fn valloc(size: usize) -> *mut c_void {
    match call!(VALLOC as Malloc) {
        // SAFETY: forwarding the caller's argument to the real function.
        Some(f) => unsafe { f(size) },
        // SAFETY: as memalign.
        None => unsafe { memalign(page_size(), size) },
    }
}

/// The real `pvalloc`, falling back to page-aligned, page-rounded `memalign`.
///
/// # Safety
/// As `pvalloc(3)`.
pub unsafe fn pvalloc(size: usize) -> *mut c_void {
    match call!(PVALLOC as Malloc) {
        // SAFETY: forwarding the caller's argument to the real function.
        Some(f) => unsafe { f(size) },
        None => {
            let page = page_size();
            match size.checked_next_multiple_of(page) {
                // SAFETY: as memalign.
                Some(rounded) => unsafe { memalign(page, rounded.max(page)) },
                None => core::ptr::null_mut(),
            }
        }
    }
}

/// The real `mmap`, or the raw system call while it is not resolved.
///
/// # Safety
/// As `mmap(2)`.
pub unsafe fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut c_void {
    match call!(MMAP as Mmap) {
        // SAFETY: forwarding the caller's arguments to the real function.
        Some(f) => unsafe { f(addr, len, prot, flags, fd, off) },
        // SAFETY: the same arguments, straight to the kernel.
        None => unsafe {
            libc::syscall(libc::SYS_mmap, addr, len, prot, flags, fd, off) as *mut c_void
        },
    }
}

/// The real `munmap`, or the raw system call.
///
/// # Safety
/// As `munmap(2)`.
pub unsafe fn munmap(addr: *mut c_void, len: usize) -> c_int {
    match call!(MUNMAP as Munmap) {
        // SAFETY: forwarding the caller's arguments to the real function.
        Some(f) => unsafe { f(addr, len) },
        // SAFETY: the same arguments, straight to the kernel.
        None => unsafe { libc::syscall(libc::SYS_munmap, addr, len) as c_int },
    }
}

/// The real `mremap`, or the raw system call.
///
/// # Safety
/// As `mremap(2)`; `new_addr` is read only with `MREMAP_FIXED`.
pub unsafe fn mremap(
    old: *mut c_void,
    old_len: usize,
    new_len: usize,
    flags: c_int,
    new_addr: *mut c_void,
) -> *mut c_void {
    match call!(MREMAP as Mremap) {
        // SAFETY: forwarding the caller's arguments to the real function.
        Some(f) => unsafe { f(old, old_len, new_len, flags, new_addr) },
        // SAFETY: the same arguments, straight to the kernel.
        None => unsafe {
            libc::syscall(libc::SYS_mremap, old, old_len, new_len, flags, new_addr) as *mut c_void
        },
    }
}

type Exit = unsafe extern "C" fn(c_int) -> !;
type Dlopen = unsafe extern "C" fn(*const core::ffi::c_char, c_int) -> *mut c_void;

/// The real `_exit`, or the raw system call.
pub fn exit(status: c_int) -> ! {
    match call!(EXIT as Exit) {
        // SAFETY: `_exit` has no preconditions.
        Some(f) => unsafe { f(status) },
        None => {
            // SAFETY: exit_group ends the process; it never returns.
            unsafe { libc::syscall(libc::SYS_exit_group, status) };
            unreachable!("exit_group returned")
        }
    }
}

/// The real `dlopen`.
///
/// # Safety
/// As `dlopen(3)`.
pub unsafe fn dlopen(file: *const core::ffi::c_char, flags: c_int) -> *mut c_void {
    match call!(DLOPEN as Dlopen) {
        // SAFETY: forwarding the caller's arguments to the real function.
        Some(f) => unsafe { f(file, flags) },
        None => core::ptr::null_mut(),
    }
}

type Dlclose = unsafe extern "C" fn(*mut c_void) -> c_int;

/// The real `dlclose`.
///
/// # Safety
/// As `dlclose(3)`.
pub unsafe fn dlclose(handle: *mut c_void) -> c_int {
    match call!(DLCLOSE as Dlclose) {
        // SAFETY: forwarding the caller's argument to the real function.
        Some(f) => unsafe { f(handle) },
        None => -1,
    }
}

pub(crate) type Argv = *const *const core::ffi::c_char;
type Path = *const core::ffi::c_char;

/// -1 with `ENOSYS`: what an exec function the C library lacks returns.
fn no_exec() -> c_int {
    crate::guard::set_errno(libc::ENOSYS);
    -1
}

/// The real members of the exec family: each forwards to the next definition, or fails
/// with `ENOSYS` when there is none.
macro_rules! real_exec {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) = $slot:ident;)*) => {$(
        $(#[$doc])*
        ///
        /// # Safety
        /// As the C function of the same name.
        pub unsafe fn $name($($arg: $ty),*) -> c_int {
            match call!($slot as unsafe extern "C" fn($($ty),*) -> c_int) {
                // SAFETY: forwarding the caller's arguments to the real function.
                Some(f) => unsafe { f($($arg),*) },
                None => no_exec(),
            }
        }
    )*};
}

real_exec! {
    /// The real `execve`.
    execve(path: Path, argv: Argv, envp: Argv) = EXECVE;
    /// The real `execv`.
    execv(path: Path, argv: Argv) = EXECV;
    /// The real `execvp`.
    execvp(file: Path, argv: Argv) = EXECVP;
    /// The real `execvpe`.
    execvpe(file: Path, argv: Argv, envp: Argv) = EXECVPE;
    /// The real `fexecve`.
    fexecve(fd: c_int, argv: Argv, envp: Argv) = FEXECVE;
    /// The real `execveat`.
    execveat(dirfd: c_int, path: Path, argv: Argv, envp: Argv, flags: c_int) = EXECVEAT;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test binary gets glibc's allocator: its next `free` is glibc's (this machine's
    /// glibc is 2.36).
    #[test]
    fn glibcs_free_is_recognised() {
        init();
        assert_ne!(FREE.load(Ordering::Relaxed), 0);
        assert!(glibc_version_at_least(libc_version(), (2, 34)));
        assert!(next_free_is_glibcs());
        assert!(free_is_glibcs());
    }

    #[test]
    fn glibc_versions_compare() {
        assert!(glibc_version_at_least("2.34", (2, 34)));
        assert!(glibc_version_at_least("2.36", (2, 34)));
        assert!(glibc_version_at_least("2.35.1", (2, 34)));
        assert!(glibc_version_at_least("3.0", (2, 34)));
        assert!(!glibc_version_at_least("2.33", (2, 34)));
        assert!(!glibc_version_at_least("2.9", (2, 34)));
        assert!(!glibc_version_at_least("1.99", (2, 34)));
        assert!(!glibc_version_at_least("2", (2, 34)));
        assert!(!glibc_version_at_least("", (2, 34)));
        assert!(!glibc_version_at_least("x.y", (2, 34)));
    }
}

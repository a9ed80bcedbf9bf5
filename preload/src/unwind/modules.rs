//! Where each loaded module's unwind tables are, for computing rules on cache misses.

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicUsize, Ordering};

use peakprof::unwind::{eh_frame_address, rule_for, EhSections, Rule};

use crate::lock::Lock;

/// Unwind sections of one loaded module, by runtime address.
#[derive(Clone, Copy)]
struct EhModule {
    /// Lowest and highest address of its loaded segments.
    start: u64,
    end: u64,
    hdr_addr: u64,
    hdr_len: u64,
    eh_frame_addr: u64,
    /// End of the segment holding `.eh_frame`: its length is not recorded anywhere else.
    eh_frame_end: u64,
}

/// The modules known to the unwinder. A lookup holds this lock while it reads a module's
/// tables, and `dlclose` holds it while the module goes away, so tables are never read
/// after they were unmapped.
static EH_MODULES: Lock<Vec<EhModule>> = Lock::new(Vec::new());

unsafe extern "C" fn visit(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: `data` is the Vec passed by `scan`, exclusively borrowed for the iteration;
    // `info` is valid for the duration of this callback.
    let (out, info) = unsafe { (&mut *(data as *mut Vec<EhModule>), &*info) };
    if info.dlpi_phdr.is_null() {
        return 0;
    }
    // SAFETY: the loader guarantees `dlpi_phnum` headers at `dlpi_phdr`.
    let phdrs =
        unsafe { core::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let bias = info.dlpi_addr;
    let loads: Vec<(u64, u64)> = phdrs
        .iter()
        .filter(|p| p.p_type == libc::PT_LOAD)
        .map(|p| {
            (
                bias.wrapping_add(p.p_vaddr),
                bias.wrapping_add(p.p_vaddr + p.p_memsz),
            )
        })
        .collect();
    let Some(hdr) = phdrs.iter().find(|p| p.p_type == libc::PT_GNU_EH_FRAME) else {
        return 0;
    };
    let hdr_addr = bias.wrapping_add(hdr.p_vaddr);
    // SAFETY: PT_GNU_EH_FRAME lies inside a loaded, readable segment of this object.
    let hdr_bytes =
        unsafe { core::slice::from_raw_parts(hdr_addr as *const u8, hdr.p_memsz as usize) };
    let Some(eh_frame_addr) = eh_frame_address(hdr_bytes, hdr_addr) else {
        return 0;
    };
    let Some(&(_, eh_frame_end)) = loads
        .iter()
        .find(|&&(s, e)| s <= eh_frame_addr && eh_frame_addr < e)
    else {
        return 0;
    };
    let (Some(start), Some(end)) = (
        loads.iter().map(|l| l.0).min(),
        loads.iter().map(|l| l.1).max(),
    ) else {
        return 0;
    };
    out.push(EhModule {
        start,
        end,
        hdr_addr,
        hdr_len: hdr.p_memsz,
        eh_frame_addr,
        eh_frame_end,
    });
    0
}

fn scan() -> Vec<EhModule> {
    let mut out: Vec<EhModule> = Vec::new();
    // SAFETY: `visit` matches the callback ABI and only uses `out` during the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut out as *mut Vec<EhModule>).cast()) };
    out
}

fn lookup(mods: &[EhModule], pc: u64) -> Option<Option<Rule>> {
    let m = mods.iter().find(|m| m.start <= pc && pc < m.end)?;
    // SAFETY: the module is loaded (we hold EH_MODULES, which dlclose waits for), and
    // these ranges lie inside its loaded segments.
    let s = unsafe {
        EhSections {
            hdr: core::slice::from_raw_parts(m.hdr_addr as *const u8, m.hdr_len as usize),
            hdr_addr: m.hdr_addr,
            eh_frame: core::slice::from_raw_parts(
                m.eh_frame_addr as *const u8,
                (m.eh_frame_end - m.eh_frame_addr) as usize,
            ),
            eh_frame_addr: m.eh_frame_addr,
        }
    };
    Some(rule_for(&s, pc))
}

/// Computes the rule at `pc` from the module tables (slow path; `None`: no unwind
/// information) and hands it to `f` while the module lock is still held, so rule ids are
/// handed out one at a time.
pub fn with_rule<R>(pc: u64, f: impl FnOnce(Option<Rule>) -> R) -> R {
    let mut mods = EH_MODULES.lock();
    let r = on_lookup_stack(|| {
        if let Some(r) = lookup(&mods, pc) {
            return r;
        }
        // A module loaded since the last scan (dlopen, or libc loading one internally).
        *mods = scan();
        lookup(&mods, pc).flatten()
    });
    f(r)
}

/// Size of the stack the slow path runs on.
const LOOKUP_STACK_SIZE: usize = 256 << 10;
/// That stack's lowest address (0 until first needed; mapped once, under EH_MODULES).
static LOOKUP_STACK: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` on a stack of its own. gimli's walk through an FDE's rows takes ~12 KiB of stack
/// (its rule tables live in its stack frames), and it runs on the program's thread: a
/// thread created with a 16 KiB stack (glibc's minimum) crashed on its first rule-cache
/// miss. One stack serves the process, as the caller holds EH_MODULES throughout. When it
/// cannot be mapped, `f` runs where it is. A panic in `f` (none is expected: gimli reports
/// errors as values) reads as "no unwind information", since it must not unwind across
/// the switch.
fn on_lookup_stack(f: impl FnOnce() -> Option<Rule>) -> Option<Rule> {
    let f = || std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(None);
    let mut base = LOOKUP_STACK.load(Ordering::Relaxed);
    if base == 0 {
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let p = unsafe {
            crate::real::mmap(
                core::ptr::null_mut(),
                LOOKUP_STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return f();
        }
        base = p as usize;
        LOOKUP_STACK.store(base, Ordering::Relaxed);
    }
    // SAFETY: `base` is a page-aligned mapping of LOOKUP_STACK_SIZE bytes (a multiple of
    // the stack alignment) that nothing else uses: only the holder of EH_MODULES (the
    // caller) runs on it, and `f` returns normally (panics are caught above).
    unsafe { psm::on_stack(base as *mut u8, LOOKUP_STACK_SIZE, f) }
}

/// Holds lookups off across fork, so the child never inherits the lock mid-update.
pub fn fork_prepare() {
    core::mem::forget(EH_MODULES.lock());
}

/// Releases the lock taken by [`fork_prepare`] in the parent.
pub fn fork_parent() {
    EH_MODULES.force_unlock();
}

/// Releases the lock taken by [`fork_prepare`] in the child.
pub fn fork_child() {
    EH_MODULES.reset_after_fork();
}

/// Forgets all modules and cached rules (after a dlclose: the addresses may be reused).
pub fn forget_modules() {
    let mut mods = EH_MODULES.lock();
    mods.clear();
    super::fast::clear_cache();
}

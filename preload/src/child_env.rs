//! Children started with an environment of their own stay profiled: the exec and spawn
//! hooks give them the settings this process started with (`peakprof::child_env` decides
//! what is missing; this is the part that touches C arrays).
//!
//! No allocation on the way: an exec may run in a vfork child, which shares its parent's
//! heap (and whose mappings would stay in the parent). The new array and the one string
//! it may need live on this stack, within fixed bounds; an environment beyond them is
//! passed on as it is.

use core::ffi::{c_char, CStr};
use core::sync::atomic::{AtomicPtr, Ordering};

use peakprof::child_env::{self, Carried};

use crate::environ;
use crate::real::Argv;

/// Entries of the largest environment completed (its pointer array: 16 KiB of stack).
const MAX_ENTRIES: usize = 2048;
/// Room for the `LD_PRELOAD` entry built when one must change.
const PRELOAD_ROOM: usize = 4096;

/// What start-up found to carry, kept for the life of the process (and its forks).
struct Saved {
    vars: Vec<&'static [u8]>,
    library: &'static [u8],
}

static SAVED: AtomicPtr<Saved> = AtomicPtr::new(core::ptr::null_mut());

/// The library's file name, to find its path in `LD_PRELOAD`.
const OUR_NAME: &[u8] = b"libpeakprof_preload";

/// A copy that lives until the process ends, with its NUL right after it in memory.
fn forever(bytes: &[u8]) -> Option<&'static [u8]> {
    let c = std::ffi::CString::new(bytes).ok()?;
    let c: &'static CStr = Box::leak(c.into_boxed_c_str());
    Some(c.to_bytes())
}

/// At start-up of a profiled process that passes profiling on (no `--no-children`):
/// remembers its `PEAKPROF_*` variables and this library's path in `LD_PRELOAD`.
pub fn remember() {
    let Some(library) = environ::get(b"LD_PRELOAD").and_then(|list| {
        list.split(|&b| b == b':' || b == b' ')
            .find(|e| e.windows(OUR_NAME.len()).any(|w| w == OUR_NAME))
    }) else {
        return;
    };
    let Some(library) = forever(library) else {
        return;
    };
    // SAFETY: libc's environment, read during start-up (see `environ`'s documentation).
    let vars: Vec<&'static [u8]> = unsafe { environ::entries_in(environ::array()) }
        .filter(|e| e.starts_with(b"PEAKPROF_"))
        .filter_map(forever)
        .take(child_env::MAX_CARRIED)
        .collect();
    let saved = Box::into_raw(Box::new(Saved { vars, library }));
    SAVED.store(saved, Ordering::Release);
}

fn saved() -> Option<&'static Saved> {
    let p = SAVED.load(Ordering::Acquire);
    // SAFETY: null, or a `Saved` leaked by `remember` and never changed or freed after.
    unsafe { p.as_ref() }
}

/// Calls `same` when `envp` (a C environment array, or null) carries profiling on, else
/// `with` and the completed copy of it.
///
/// # Safety
/// `envp` is null or a null-terminated array of pointers to NUL-terminated strings, not
/// changed during the call.
pub unsafe fn completed<R>(
    envp: Argv,
    same: impl FnOnce() -> R,
    with: impl FnOnce(Argv) -> R,
) -> R {
    let Some(saved) = saved() else {
        return same();
    };
    let carried = Carried {
        vars: &saved.vars,
        library: saved.library,
    };
    // SAFETY: as the caller promised.
    let entries = || unsafe { environ::entries_in(envp) };
    let Some(plan) = child_env::plan(&carried, entries()) else {
        return same();
    };
    build_and_call(saved, &carried, &plan, entries, same, with)
}

/// The rest of [`completed`] once an environment needs completing, out of line: its arrays
/// take 20 KiB of stack, which an exec that needs nothing should not reserve.
#[inline(never)]
fn build_and_call<'e, R, I: Iterator<Item = &'e [u8]> + Clone>(
    saved: &Saved,
    carried: &Carried<'_>,
    plan: &child_env::Plan<'_>,
    entries: impl Fn() -> I,
    same: impl FnOnce() -> R,
    with: impl FnOnce(Argv) -> R,
) -> R {
    let old_len = entries().count();
    let preloads = entries()
        .filter(|e| child_env::value_of(e, b"LD_PRELOAD").is_some())
        .count();
    let len = plan.new_len(old_len, preloads);
    if len > MAX_ENTRIES {
        return same();
    }
    let mut room = [0u8; PRELOAD_ROOM];
    let entry_len = match plan.preload {
        None => 0,
        Some(earlier) => match child_env::write_preload_entry(saved.library, earlier, &mut room) {
            Some(n) => n,
            None => return same(),
        },
    };
    let mut array = [core::ptr::null::<c_char>(); MAX_ENTRIES + 1];
    // Every entry is followed by its NUL: the environment's own, the saved ones, and the
    // one just written.
    // The environment's entries live longer than `room`: shortened to its lifetime.
    let old = entries().map(|e| e as &[u8]);
    let new = child_env::patched_entries(old, carried, plan, &room[..entry_len]);
    for (slot, e) in array.iter_mut().zip(new) {
        *slot = e.as_ptr().cast();
    }
    with(array.as_ptr())
}

/// [`completed`] for a call that takes an `envp`: the call gets it, or its completed copy.
///
/// # Safety
/// As [`completed`].
pub unsafe fn with_completed<R>(envp: Argv, call: impl Fn(Argv) -> R) -> R {
    // SAFETY: as the caller promised.
    unsafe { completed(envp, || call(envp), &call) }
}

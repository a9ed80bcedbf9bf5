//! Children started with an environment of their own stay profiled: the exec hooks give
//! them the settings this process started with (`peakprof::child_env` decides what is
//! missing; this is the part that touches C arrays).
//!
//! No allocation on the way: an exec may run in a vfork child, which shares its parent's
//! heap (and whose mappings would stay in the parent). The new array and the one string
//! it may need live on this stack, sized exactly; an environment that would need more than
//! [`MAX_STACK`] is passed on as it is.

use core::ffi::{c_char, c_void, CStr};
use core::sync::atomic::{AtomicPtr, Ordering};

use peakprof::child_env::{self, Carried};

use crate::environ;
use crate::real::Argv;

/// Most stack a completed environment may take (its pointer array and `LD_PRELOAD` entry,
/// sized exactly: ~1 KiB for a usual environment): 8 KiB is ~1000 entries. Small, because
/// an exec may run on a 16 KiB thread stack or an 8 KiB signal stack (which has no guard
/// page); a larger environment is passed on as it is.
const MAX_STACK: usize = 8 << 10;

/// What start-up found to carry, kept for the life of the process (and its forks).
struct Saved {
    vars: Vec<&'static [u8]>,
    library: &'static [u8],
}

static SAVED: AtomicPtr<Saved> = AtomicPtr::new(core::ptr::null_mut());

/// A copy that lives until the process ends, with its NUL right after it in memory.
fn forever(bytes: &[u8]) -> Option<&'static [u8]> {
    let c = std::ffi::CString::new(bytes).ok()?;
    let c: &'static CStr = Box::leak(c.into_boxed_c_str());
    Some(c.to_bytes())
}

/// At start-up of a profiled process that passes profiling on (no `--no-children`):
/// remembers its `PEAKPROF_*` variables and this library's path in `LD_PRELOAD`.
pub fn remember() {
    // SAFETY: libc's environment, read during start-up (see `environ`'s documentation).
    let env = || unsafe { environ::entries_in(environ::array()) };
    // Its last entry: the one the dynamic loader used.
    let preload = env()
        .filter_map(|e| child_env::value_of(e, b"LD_PRELOAD"))
        .last();
    let Some(library) = preload
        .and_then(|list| child_env::preload_elements(list).find(|e| child_env::is_ours(e)))
        .and_then(forever)
    else {
        return;
    };
    let vars: Vec<&'static [u8]> = child_env::carried_vars(env())
        .into_iter()
        .filter_map(forever)
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

/// The rest of [`completed`] once an environment needs completing: the new array and the
/// `LD_PRELOAD` entry are built in stack room of exactly their size (a signal handler on
/// an alternate stack, or a thread with a 16 KiB stack, may exec), and not at all when
/// that would take more than [`MAX_STACK`].
fn build_and_call<'e, R, I: Iterator<Item = &'e [u8]>>(
    saved: &Saved,
    carried: &Carried<'_>,
    plan: &child_env::Plan<'_>,
    entries: impl Fn() -> I,
    same: impl FnOnce() -> R,
    with: impl FnOnce(Argv) -> R,
) -> R {
    let len = plan.len;
    let earlier = plan.preload.map(|earlier| {
        (
            earlier,
            child_env::preload_entry_len(saved.library, earlier),
        )
    });
    let entry_room = earlier.map_or(0, |(_, n)| n + 1);
    let pointers = len + 1;
    if pointers.saturating_mul(8).saturating_add(entry_room) > MAX_STACK {
        return same();
    }
    let mut with = Some(with);
    let mut result = None;
    on_stack(pointers, entry_room, &mut |array, room| {
        let entry_len = match earlier {
            None => 0,
            Some((earlier, _)) => {
                match child_env::write_preload_entry(saved.library, earlier, room) {
                    Some(n) => n,
                    None => return,
                }
            }
        };
        // Every entry is followed by its NUL: the environment's own, the saved ones, and
        // the one just written. The environment's entries outlive `room`: shortened to its
        // lifetime. The last slot stays null even if the program changed its environment
        // meanwhile (its own race, as for glibc's `execv`).
        let old = entries().map(|e| e as &[u8]);
        let new = child_env::patched_entries(old, carried, plan, &room[..entry_len]);
        let (slots, end) = array.split_at_mut(len);
        for (slot, e) in slots.iter_mut().zip(new) {
            *slot = e.as_ptr().cast();
        }
        end[0] = core::ptr::null();
        if let Some(with) = with.take() {
            result = Some(with(array.as_ptr()));
        }
    });
    match result {
        Some(r) => r,
        None => same(),
    }
}

extern "C" {
    /// exec.c: calls `body(array, room, ctx)` with `pointers` null pointers and `bytes`
    /// zero bytes on its own stack, sized exactly (stable Rust has no variable-length
    /// arrays).
    fn peakprof_on_stack(
        pointers: usize,
        bytes: usize,
        body: extern "C" fn(*mut *const c_char, *mut u8, *mut c_void),
        ctx: *mut c_void,
    );
}

/// What [`on_stack`] passes through C to [`run_body`].
struct Body<'a> {
    pointers: usize,
    bytes: usize,
    body: &'a mut dyn FnMut(&mut [*const c_char], &mut [u8]),
}

extern "C" fn run_body(array: *mut *const c_char, room: *mut u8, ctx: *mut c_void) {
    // SAFETY: `ctx` is the `Body` `on_stack` passed, alive for the call; `array` and `room`
    // hold `pointers` and `bytes` initialized (zeroed) elements on the C frame below this
    // one, which outlives this call (when 0 were asked for, C allocated 1 of each).
    unsafe {
        let b = &mut *ctx.cast::<Body<'_>>();
        let array = core::slice::from_raw_parts_mut(array, b.pointers);
        let room = core::slice::from_raw_parts_mut(room, b.bytes);
        (b.body)(array, room);
    }
}

/// Runs `body` with `pointers` null pointers and `bytes` zero bytes of stack.
fn on_stack(pointers: usize, bytes: usize, body: &mut dyn FnMut(&mut [*const c_char], &mut [u8])) {
    let mut b = Body {
        pointers,
        bytes,
        body,
    };
    // SAFETY: `run_body` gets back the `Body` given here, which lives across the call.
    unsafe { peakprof_on_stack(pointers, bytes, run_body, (&mut b as *mut Body<'_>).cast()) }
}

/// [`completed`] for a call that takes an `envp`: the call gets it, or its completed copy.
///
/// # Safety
/// As [`completed`].
pub unsafe fn with_completed<R>(envp: Argv, call: impl Fn(Argv) -> R) -> R {
    // SAFETY: as the caller promised.
    unsafe { completed(envp, || call(envp), &call) }
}

//! The process environment, read and changed in libc's `environ` array itself.
//!
//! Not through `getenv`, `setenv` and `unsetenv`: a program may define its own, and the
//! dynamic linker then binds this library's calls to the program's. bash does (its versions
//! work on its shell variables): called from our start-up, before bash's `main`, its
//! `unsetenv` left the environment alone, bash then imported `LD_PRELOAD` from it, and
//! `--no-children` still profiled the commands it ran. Changed only during start-up,
//! before the program runs code of its own; read then, in a forked child's first moments
//! (one thread), once at exit, and by the exec functions that pass it on (where a racing
//! `setenv` of the program's would be as much of a problem for `getenv` or glibc's own
//! `execv`).

use core::ffi::{c_char, CStr};

use peakprof::child_env::value_of;

extern "C" {
    /// libc's environment (the executable's copy when it refers to it: one array).
    static mut environ: *mut *mut c_char;
}

/// libc's environment array, as exec functions without an `envp` pass it on.
pub fn array() -> *const *const c_char {
    // SAFETY: reads the pointer value only (see the module documentation for when).
    unsafe { core::ptr::addr_of!(environ).read().cast_const().cast() }
}

/// The slots of a C environment array, up to its null end.
///
/// # Safety
/// `array` is null or a null-terminated array of pointers to NUL-terminated strings, which
/// stays unchanged while the iterator (or a clone, or what it gave) is in use.
unsafe fn slots(array: *const *const c_char) -> impl Iterator<Item = *const *const c_char> + Clone {
    let mut slot = array;
    core::iter::from_fn(move || {
        // SAFETY: as the caller promised; `slot` stops at the array's null end.
        unsafe {
            if slot.is_null() || (*slot).is_null() {
                return None;
            }
            let here = slot;
            slot = slot.add(1);
            Some(here)
        }
    })
}

/// The entries of the environment, as `NAME=value` byte strings, with their slots.
fn entries() -> impl Iterator<Item = (*mut *mut c_char, &'static [u8])> {
    // SAFETY: `environ` is such an array (the C runtime's invariant), read when nothing
    // changes it concurrently (see the module documentation).
    unsafe { slots(array()) }.map(|slot| {
        // SAFETY: a slot `slots` gave holds a NUL-terminated string.
        (
            slot.cast_mut().cast(),
            unsafe { CStr::from_ptr(*slot) }.to_bytes(),
        )
    })
}

/// The entries of a C environment array (`NAME=value` byte strings, each followed by its
/// NUL in memory), for an exec or spawn call's `envp`.
///
/// # Safety
/// As [`slots`].
pub unsafe fn entries_in<'a>(
    array: *const *const c_char,
) -> impl Iterator<Item = &'a [u8]> + Clone {
    // SAFETY: as the caller promised.
    unsafe { slots(array) }.map(|slot| {
        // SAFETY: a slot `slots` gave holds a NUL-terminated string that outlives 'a.
        unsafe { CStr::from_ptr(*slot) }.to_bytes()
    })
}

/// The value of the variable `name` (its first entry, as `getenv` finds it).
pub fn get(name: &[u8]) -> Option<&'static [u8]> {
    entries().find_map(|(_, e)| value_of(e, name))
}

/// Removes every entry of `name`, moving the later ones down (as glibc's `unsetenv` does,
/// in the same array, which `main`'s `envp` also points at).
pub fn remove(name: &[u8]) {
    while let Some((slot, _)) = entries().find(|(_, e)| value_of(e, name).is_some()) {
        // SAFETY: `slot` points into the null-terminated array; each step copies the next
        // pointer down until the terminating null has been copied.
        unsafe {
            let mut p = slot;
            loop {
                let next = *p.add(1);
                *p = next;
                if next.is_null() {
                    break;
                }
                p = p.add(1);
            }
        }
    }
}

/// Gives the variable `name` the value `value` where it is set (every entry of it); a
/// variable that is not set stays unset. The new entry is never freed (the environment
/// may keep pointing at it until the process ends).
pub fn replace(name: &[u8], value: &[u8]) {
    let mut entry = Vec::with_capacity(name.len() + value.len() + 2);
    entry.extend_from_slice(name);
    entry.push(b'=');
    entry.extend_from_slice(value);
    let Ok(entry) = std::ffi::CString::new(entry) else {
        return; // a NUL inside: not representable, leave the variable as it is
    };
    let entry = entry.into_raw();
    for (slot, e) in entries() {
        if value_of(e, name).is_some() {
            // SAFETY: `slot` is a slot of the array; the new string lives forever.
            unsafe { *slot = entry };
        }
    }
}

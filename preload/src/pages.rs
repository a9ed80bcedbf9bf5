//! Handing memory the profiler is done with back to the system before it is freed.

/// Gives back the whole pages inside `bytes`: the live map's growth calls it on old slots
/// it has moved (see `LiveHeap::set_release`), so the old table empties while the new one
/// fills instead of both being resident until the growth ends.
pub fn release(bytes: &mut [u8]) {
    const PAGE: usize = 4096;
    let start = (bytes.as_ptr() as usize).next_multiple_of(PAGE);
    let end = (bytes.as_ptr() as usize + bytes.len()) & !(PAGE - 1);
    if end <= start {
        return;
    }
    crate::guard::keep_errno(|| {
        // SAFETY: `start..end` lies inside `bytes`, which the caller lends us exclusively
        // and will not read again; the profiler's memory comes from the real malloc,
        // which hands out private anonymous memory, where MADV_DONTNEED only makes the
        // pages read as zeros on their next touch (as if we had written zeros through
        // `bytes`). On a page size other than 4 KiB an unaligned range is refused with
        // EINVAL and nothing happens.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    });
}

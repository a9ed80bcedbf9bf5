//! Handing memory the profiler is done with back to the system before it is freed.

/// Gives back the whole pages inside `bytes`: the live map's growth calls it on old slots
/// it has moved (see `LiveHeap::set_release`), so the old table empties while the new one
/// fills instead of both being resident until the growth ends.
pub fn release(bytes: &mut [u8]) {
    // SAFETY: sysconf has no preconditions (glibc answers from the auxiliary vector).
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let Some(page) = usize::try_from(page).ok().filter(|p| p.is_power_of_two()) else {
        return;
    };
    let start = (bytes.as_ptr() as usize).next_multiple_of(page);
    let end = (bytes.as_ptr() as usize + bytes.len()) & !(page - 1);
    if end <= start {
        return;
    }
    crate::guard::keep_errno(|| {
        // SAFETY: `start..end` is made of whole pages (of the system's size: a smaller
        // guess would let the kernel round the length up past the slice) inside `bytes`,
        // which the caller lends us exclusively and will not read again. The profiler's
        // memory comes from the real malloc: private anonymous memory, where
        // MADV_DONTNEED only makes those pages read as zeros on their next touch, as if
        // we had written zeros through `bytes`. (Not with malloc on hugetlbfs pages,
        // where some kernels round the range out to a huge page: the caller does not
        // release then, see [`usable`].)
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    });
}

/// Whether [`release`] may be used in this process: not when glibc's malloc takes its
/// memory from hugetlbfs (`GLIBC_TUNABLES=glibc.malloc.hugetlb=2` and up), where a
/// partial MADV_DONTNEED was rounded out to the whole huge page by Linux 5.18-6.0.
/// (`hugetlb=1`, transparent huge pages, is ordinary memory: a partial release splits
/// the huge page.)
pub fn usable(glibc_tunables: Option<&str>) -> bool {
    !glibc_tunables.is_some_and(|t| {
        t.split(':').any(|kv| {
            kv.strip_prefix("glibc.malloc.hugetlb=")
                .is_some_and(|v| v.trim().parse::<u64>().map_or(true, |n| n >= 2))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugetlbfs_malloc_turns_release_off() {
        assert!(usable(None));
        assert!(usable(Some("")));
        assert!(usable(Some("glibc.malloc.hugetlb=0")));
        assert!(usable(Some(
            "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=2"
        )));
        assert!(!usable(Some("glibc.malloc.hugetlb=2")));
        assert!(!usable(Some(
            "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=21"
        )));
        assert!(
            !usable(Some("glibc.malloc.hugetlb=x")),
            "unreadable: assume the worst"
        );
        assert!(usable(Some("glibc.malloc.hugetlbx=2")));
    }

    #[test]
    fn release_zeroes_the_whole_pages_inside_and_nothing_else() {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let mut v = vec![0xA5u8; 8 * page];
        // From one byte past a page boundary to one byte short of another, 4 pages on:
        // the 2 pages in between are whole, the 2 at the ends are not.
        let p = (v.as_ptr() as usize).next_multiple_of(page) - v.as_ptr() as usize;
        release(&mut v[p + 1..p + 4 * page - 1]);
        for (i, &b) in v.iter().enumerate() {
            let inside = (p + page..p + 3 * page).contains(&i);
            assert_eq!(
                b,
                if inside { 0 } else { 0xA5 },
                "byte {i} (first whole page at {})",
                p + page
            );
        }
    }
}

//! The value of `PEAKPROF_IGNORED_SIGNALS`, written by `peakprof run` and read by the
//! preload: the signals peakprof inherited ignored that its program would not inherit
//! ignored from it ([`RESTORED`]), and which process is to ignore them again.
//!
//! `MASK,PID`: a decimal mask (bit `n - 1` for signal `n`) and peakprof's pid. Only the
//! program peakprof started, whose parent is that pid, acts on it. A root that never
//! loads the preload (a 32-bit program) leaves the variable to its descendants, which
//! must not start ignoring a signal because of it: a wrongly ignored SIGCHLD makes their
//! `wait` fail.

/// The signals `peakprof run` catches, and so the only ones its program could get back
/// ignored from it (Linux numbers): SIGHUP, SIGINT, SIGQUIT and SIGTERM, which it passes
/// on, and SIGCHLD, which it needs not ignored to wait for its child.
pub const CAUGHT: [i32; 5] = [1, 2, 3, 15, 17];

/// SIGPIPE's Linux number.
pub const SIGPIPE: i32 = 13;

/// The signals peakprof's program could start with the default action where peakprof
/// inherited them ignored: [`CAUGHT`] (exec resets a caught signal to the default), and
/// SIGPIPE, which Rust's runtime ignores in peakprof and its process spawning sets back to
/// the default in the child. The preload ignores again those of them the variable names.
pub const RESTORED: [i32; 6] = [1, 2, 3, SIGPIPE, 15, 17];

/// The variable's value for `mask` from the process `pid` (peakprof).
pub fn encode(mask: u64, pid: u32) -> String {
    format!("{mask},{pid}")
}

/// The mask in `value` when it is meant for a process whose parent is `parent_pid`;
/// `None` for another process's value or a malformed one.
pub fn mask_for_child_of(value: &str, parent_pid: u32) -> Option<u64> {
    let (mask, pid) = value.trim().split_once(',')?;
    let pid: u32 = pid.parse().ok()?;
    (pid == parent_pid).then(|| mask.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_peakprofs_own_child_gets_the_mask() {
        let v = encode(0b1_0000_0000_0000_0110, 4242);
        assert_eq!(v, "65542,4242");
        assert_eq!(mask_for_child_of(&v, 4242), Some(65542));
        assert_eq!(mask_for_child_of(&v, 4243), None, "a grandchild");
        assert_eq!(mask_for_child_of("65542", 4242), None, "no pid");
        assert_eq!(mask_for_child_of("x,4242", 4242), None);
        assert_eq!(mask_for_child_of("6,", 4242), None);
        assert_eq!(mask_for_child_of("", 4242), None);
    }
}

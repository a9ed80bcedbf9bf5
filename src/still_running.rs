//! Whether the process a profile came from is still running: `peakprof report` on a run
//! that is still going reads a running process's live files, and those are its current
//! state, not the last state of a process that was killed (which is all the files
//! themselves can say).
//!
//! "Still running" needs the same process, not just the same pid: it must exist with a
//! thread that is not a zombie (its main thread may have ended), have started no later than its profile did (a pid reused later started
//! later), and run the command line its profile recorded (a run directory read on another
//! machine, or in another pid namespace, names pids that belong to others there).

use crate::format::Meta;

/// Slack on the start-time comparison, for a wall clock stepped forward since the process
/// started (the boot time's rounding down to whole seconds only makes a start read early).
const START_SLACK_NS: u64 = 2_000_000_000;

/// Whether the process of `meta` is running now, on this machine.
pub fn still_running(meta: &Meta) -> bool {
    let Some(stat) = crate::proc_stat::of(meta.pid) else {
        return false;
    };
    let boot_s = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| boot_time_s(&s));
    let Some(boot_s) = boot_s else {
        return false;
    };
    let ticks = rustix::param::clock_ticks_per_second();
    let Some(cmdline) = running_command_line(meta.pid, stat.state) else {
        return false;
    };
    started_unix_ns(boot_s, stat.start_ticks, ticks)
        <= meta.start_unix_ns.saturating_add(START_SLACK_NS)
        && same_command(&cmdline, &meta.argv)
}

/// The command line of process `pid` (whose leader is in `leader_state`) when one of its
/// threads is running; `None` when none is. A main thread that ended with `pthread_exit`
/// leaves the leader a zombie without a memory map (its `cmdline` empty) while the other
/// threads run on: one of theirs is read then.
fn running_command_line(pid: u32, leader_state: char) -> Option<Vec<u8>> {
    if alive(leader_state) {
        return Some(std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default());
    }
    crate::proc_stat::threads_of(pid)
        .into_iter()
        .find_map(|tid| {
            let stat = crate::proc_stat::of_thread(pid, tid)?;
            alive(stat.state).then(|| {
                std::fs::read(format!("/proc/{pid}/task/{tid}/cmdline")).unwrap_or_default()
            })
        })
}

/// `btime` of `/proc/stat`: when the system booted, in seconds since the epoch.
fn boot_time_s(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// When a process started, in nanoseconds since the epoch.
fn started_unix_ns(boot_s: u64, start_ticks: u64, ticks_per_s: u64) -> u64 {
    let ticks_per_s = ticks_per_s.max(1);
    boot_s.saturating_mul(1_000_000_000).saturating_add(
        start_ticks / ticks_per_s * 1_000_000_000
            + start_ticks % ticks_per_s * 1_000_000_000 / ticks_per_s,
    )
}

/// Not a zombie (exited, not yet reaped) nor dead.
fn alive(state: char) -> bool {
    !matches!(state, 'Z' | 'X' | 'x')
}

/// Whether `/proc/PID/cmdline` is `argv` as the preload records it (both read by
/// [`crate::format::argv_from_cmdline`]: empty arguments kept, invalid UTF-8 replaced).
fn same_command(cmdline: &[u8], argv: &[String]) -> bool {
    !argv.is_empty() && crate::format::argv_from_cmdline(cmdline) == argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_time_and_start_time() {
        assert_eq!(
            boot_time_s("cpu  1 2 3\nbtime 1795300000\nprocesses 9\n"),
            Some(1_795_300_000)
        );
        assert_eq!(boot_time_s("cpu  1 2 3\n"), None);
        assert_eq!(
            started_unix_ns(1_795_300_000, 250, 100),
            1_795_300_002_500_000_000
        );
    }

    #[test]
    fn zombies_and_other_commands_are_not_still_running() {
        assert!(alive('S') && alive('R') && alive('D') && alive('T'));
        assert!(!alive('Z') && !alive('X'));
        let argv = vec!["./prog".to_string(), "a b".to_string()];
        assert!(same_command(b"./prog\0a b\0", &argv));
        assert!(!same_command(b"./prog\0a\0b\0", &argv));
        assert!(!same_command(b"./prog\0", &argv));
        assert!(!same_command(b"./prog\0a b\0c\0", &argv));
        assert!(!same_command(b"", &[]));
        // As the preload records them: empty arguments kept but trailing ones (a title's
        // padding), invalid UTF-8 replaced.
        assert!(!same_command(b"./prog\0\0a b\0\0", &argv));
        let with_empty: Vec<String> = ["./prog", "", "a b"].map(String::from).to_vec();
        assert!(same_command(b"./prog\0\0a b\0\0\0", &with_empty));
        assert!(!same_command(b"./prog\0a b\0", &with_empty));
        let latin1 = vec!["cat".to_string(), "caf\u{FFFD}".to_string()];
        assert!(same_command(b"cat\0caf\xe9\0", &latin1));
    }

    #[test]
    fn this_test_process_is_running_and_a_later_start_is_another_process() {
        let argv: Vec<String> = std::env::args().collect();
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let mut meta = Meta {
            pid: std::process::id(),
            argv,
            start_unix_ns: now_ns,
            ..Meta::default()
        };
        assert!(still_running(&meta));
        // A profile that started long before this process did is another process's.
        meta.start_unix_ns = now_ns - 3_600_000_000_000;
        assert!(!still_running(&meta));
        meta.start_unix_ns = now_ns;
        meta.argv = vec!["something-else".to_string()];
        assert!(!still_running(&meta));
    }
}

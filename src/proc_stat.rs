//! `/proc/PID/stat`, read once for everything peakprof asks of another process: its name
//! and parent (the processes a program left running), its state and start time (whether a
//! profile's process is still running).

/// The fields of a `/proc/PID/stat` line that peakprof uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// The command name (`comm`, at most 15 bytes; invalid UTF-8 replaced).
    pub name: String,
    /// The state letter: `R`, `S`, `D`, `Z` (zombie), `T`, ...
    pub state: char,
    pub ppid: u32,
    /// When it started, in clock ticks after boot.
    pub start_ticks: u64,
}

/// The stat line of process `pid`; `None` when it does not exist (or cannot be read).
pub fn of(pid: u32) -> Option<ProcStat> {
    // Bytes: a process name need not be UTF-8.
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse(&String::from_utf8_lossy(&stat))
}

/// The stat line of thread `tid` of process `pid`; `None` when it does not exist.
pub fn of_thread(pid: u32, tid: u32) -> Option<ProcStat> {
    let stat = std::fs::read(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    parse(&String::from_utf8_lossy(&stat))
}

/// The threads of process `pid`, by id (none when it does not exist).
pub fn threads_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The processes whose parent is `parent`, by pid, with their names.
pub fn children_of(parent: u32) -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<(u32, String)> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| of(pid).filter(|s| s.ppid == parent).map(|s| (pid, s.name)))
        .collect();
    found.sort();
    found
}

/// The fields of a stat line. The name, in parentheses, may itself hold spaces and
/// parentheses, so the other fields are counted after the last `)`.
fn parse(stat: &str) -> Option<ProcStat> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let mut fields = stat.get(close + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    // Field 22 of the line is starttime; the state was field 3 and the parent field 4.
    let start_ticks = fields.nth(22 - 4 - 1)?.parse().ok()?;
    Some(ProcStat {
        name,
        state,
        ppid,
        start_ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_after_the_command_name() {
        // A command name with spaces and parentheses of its own, `a) b (c)`; starttime 8176.
        let stat = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 120 0 0 0 0 0 0 0 20 0 1 0 \
                    8176 2580480 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0";
        assert_eq!(
            parse(stat),
            Some(ProcStat {
                name: "a) b (c)".to_string(),
                state: 'S',
                ppid: 1,
                start_ticks: 8176,
            })
        );
        assert_eq!(parse("4242 (x) Z 1"), None, "cut short");
        assert_eq!(parse("4242 (x)"), None);
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn this_process_and_its_parent() {
        // This thread is running while it reads its own line (the process leader may sleep).
        let ours = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        assert_eq!(parse(&ours).map(|s| s.state), Some('R'));
        let parent = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32);
        assert_eq!(of(std::process::id()).map(|s| s.ppid), Some(parent));
        assert!(children_of(parent)
            .iter()
            .any(|&(pid, _)| pid == std::process::id()));
        assert_eq!(of(u32::MAX), None);
    }
}

//! The memory limit of the cgroup peakprof runs in (and so the profiled program, which
//! inherits it): what a container's OOM killer would compare the program's memory with.

use std::path::{Path, PathBuf};

/// Where the limit of the cgroup named by `/proc/self/cgroup` content `cgroups` lives,
/// under the cgroup filesystem mounted at `root`: v2's `memory.max`, or v1's
/// `memory.limit_in_bytes`.
pub fn limit_files(cgroups: &str, root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            out.push(root.join(rel).join("memory.max"));
        } else if controllers.split(',').any(|c| c == "memory") {
            out.push(root.join("memory").join(rel).join("memory.limit_in_bytes"));
        }
    }
    out
}

/// The limit in a limit file's content; `None` for "no limit" (`max`, or v1's huge value).
pub fn parse_limit(content: &str) -> Option<u64> {
    let v: u64 = content.trim().parse().ok()?;
    // cgroup v1 reports "unlimited" as a page-aligned value near i64::MAX.
    (v < (1 << 60)).then_some(v)
}

/// The memory limit of this process's cgroup, if it has one.
pub fn memory_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    limit_files(&cgroups, Path::new("/sys/fs/cgroup"))
        .iter()
        .find_map(|f| {
            std::fs::read_to_string(f)
                .ok()
                .as_deref()
                .and_then(parse_limit)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_v2_and_v1_limit_files() {
        let root = Path::new("/sys/fs/cgroup");
        assert_eq!(
            limit_files("0::/kubepods/pod1/ctr\n", root),
            vec![PathBuf::from("/sys/fs/cgroup/kubepods/pod1/ctr/memory.max")]
        );
        assert_eq!(
            limit_files("12:cpu,cpuacct:/x\n4:memory:/docker/abc\n", root),
            vec![PathBuf::from(
                "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"
            )]
        );
        assert!(limit_files("garbage", root).is_empty());
    }

    #[test]
    fn parses_limits_and_recognizes_no_limit() {
        assert_eq!(parse_limit("536870912\n"), Some(512 << 20));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit(""), None);
    }
}

//! What a child's environment must hold to be profiled like its parent.
//!
//! `peakprof run` hands its settings to the preloaded library through the environment
//! (`LD_PRELOAD` and `PEAKPROF_*`), and a child inherits them, unless the program gives it
//! an environment of its own: `execve` with an `envp` it built, `env -i`, Python's
//! `subprocess.run(env={...})`. Such a child used to run unprofiled, silently. So each
//! exec asks [`plan`] whether the new environment lacks the settings, and the preload adds
//! them back ([`patched_entries`]). `--no-children` turns all of it off (nothing is
//! carried). `posix_spawn` is not interposed (see `preload/src/exec.rs`).
//!
//! What is left alone: an environment whose `PEAKPROF_OUT_DIR` names another directory,
//! or is empty (a nested `peakprof run`, or a program that asks for an unprofiled child:
//! the preload does nothing without an output directory). Everything here works on the
//! entries as byte strings and is generic over how the caller walks its C array. What
//! the exec hook calls allocates nothing (it may run in a vfork child, which shares its
//! parent's heap); [`carried_vars`] runs once, at start-up.

/// The variable naming the output directory: the one whose value decides whether an
/// environment already carries a profiling configuration.
const OUT_DIR: &[u8] = b"PEAKPROF_OUT_DIR";
const LD_PRELOAD: &[u8] = b"LD_PRELOAD";

/// Most carried variables [`Plan::add`] can name.
pub const MAX_CARRIED: usize = 64;

/// The settings a profiled process passes on to the programs it starts.
#[derive(Debug, Clone, Copy)]
pub struct Carried<'a> {
    /// The `PEAKPROF_*` entries (`NAME=value`) the process started with.
    pub vars: &'a [&'a [u8]],
    /// The preload library's path, as an element of `LD_PRELOAD`.
    pub library: &'a [u8],
}

/// The entries of a process's environment ([`Carried::vars`]) to pass on: its
/// `PEAKPROF_*` variables (`NAME=value` only), the output directory first, at most
/// [`MAX_CARRIED`].
pub fn carried_vars<'e>(environ: impl Iterator<Item = &'e [u8]>) -> Vec<&'e [u8]> {
    let mut vars: Vec<&[u8]> = environ
        .filter(|e| e.starts_with(b"PEAKPROF_") && e.contains(&b'='))
        .collect();
    // First, so that the cut below cannot drop it (a stable sort keeps the others' order).
    vars.sort_by_key(|e| value_of(e, OUT_DIR).is_none());
    vars.truncate(MAX_CARRIED);
    vars
}

/// The value of `entry` (`NAME=value`) if it is `name`'s.
pub fn value_of<'e>(entry: &'e [u8], name: &[u8]) -> Option<&'e [u8]> {
    entry.strip_prefix(name)?.strip_prefix(b"=")
}

/// The name of an entry (up to its first `=`; the whole entry when it has none).
fn name_of(entry: &[u8]) -> &[u8] {
    entry.split(|&b| b == b'=').next().unwrap_or(entry)
}

/// The file name every build of the preload library has (its path ends in it, maybe with
/// a version or hash after), to tell its element of `LD_PRELOAD` from others.
pub const LIBRARY_NAME: &[u8] = b"libpeakprof_preload";

/// The elements of an `LD_PRELOAD` value (separated by colons or spaces, as the dynamic
/// loader reads it), empty ones left out.
pub fn preload_elements(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&b| b == b':' || b == b' ')
        .filter(|e| !e.is_empty())
}

/// Whether an `LD_PRELOAD` element is a preload library of peakprof's.
pub fn is_ours(element: &[u8]) -> bool {
    element
        .windows(LIBRARY_NAME.len())
        .any(|w| w == LIBRARY_NAME)
}

/// Whether `list` (an `LD_PRELOAD` value) names `library`.
pub fn preload_names(list: &[u8], library: &[u8]) -> bool {
    preload_elements(list).any(|e| e == library)
}

/// What `envp` (the entries of the new environment, in order) needs for the child to be
/// profiled like this process; `None` when nothing (it already is, or must not be).
///
/// The value of a variable is its first entry's (`getenv`), except `LD_PRELOAD`, whose
/// last entry is the one the dynamic loader uses.
pub fn plan<'e, I>(carried: &Carried<'_>, envp: I) -> Option<Plan<'e>>
where
    I: Iterator<Item = &'e [u8]> + Clone,
{
    let ours = carried.vars.iter().find_map(|v| value_of(v, OUT_DIR))?;
    if carried.vars.len() > MAX_CARRIED || carried.library.is_empty() {
        return None;
    }
    if let Some(theirs) = envp.clone().find_map(|e| value_of(e, OUT_DIR)) {
        if theirs != ours {
            return None;
        }
    }
    let mut add = 0u64;
    for (i, var) in carried.vars.iter().enumerate() {
        let name = name_of(var);
        if !envp.clone().any(|e| value_of(e, name).is_some()) {
            add |= 1 << i;
        }
    }
    let preload = envp.clone().filter_map(|e| value_of(e, LD_PRELOAD)).last();
    let preload_fix = match preload {
        Some(list) if preload_names(list, carried.library) => None,
        other => Some(other.filter(|list| !list.is_empty())),
    };
    if add == 0 && preload_fix.is_none() {
        return None;
    }
    // The completed environment: its own entries, one `LD_PRELOAD` entry in place of all
    // of them when replaced, and the carried variables added.
    let kept = if preload_fix.is_some() {
        envp.filter(|e| value_of(e, LD_PRELOAD).is_none()).count() + 1
    } else {
        envp.count()
    };
    Some(Plan {
        add,
        preload: preload_fix,
        len: kept + add.count_ones() as usize,
    })
}

/// How to complete an environment: what [`plan`] found missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan<'e> {
    /// Bit `i` set: add `Carried::vars[i]`.
    pub add: u64,
    /// Set when `LD_PRELOAD` lacks the library: every `LD_PRELOAD` entry is left out and
    /// one put in their place, the library followed by this earlier value (`None`: there
    /// was none, or it was empty).
    pub preload: Option<Option<&'e [u8]>>,
    /// Entries of the environment [`patched_entries`] gives for the one planned for.
    pub len: usize,
}

/// Length of the `LD_PRELOAD` entry [`write_preload_entry`] writes, without its NUL.
pub fn preload_entry_len(library: &[u8], earlier: Option<&[u8]>) -> usize {
    preload_entry_parts(library, earlier)
        .iter()
        .map(|p| p.len())
        .sum()
}

fn preload_entry_parts<'a>(library: &'a [u8], earlier: Option<&'a [u8]>) -> [&'a [u8]; 5] {
    [
        LD_PRELOAD,
        b"=",
        library,
        if earlier.is_some() { b":" } else { b"" },
        earlier.unwrap_or(b""),
    ]
}

/// Writes the `LD_PRELOAD` entry a plan asks for (`LD_PRELOAD=library[:earlier]`) into
/// `out`, NUL-terminated; returns its length without the NUL, or `None` when `out` is too
/// small.
pub fn write_preload_entry(
    library: &[u8],
    earlier: Option<&[u8]>,
    out: &mut [u8],
) -> Option<usize> {
    let parts = preload_entry_parts(library, earlier);
    let len = preload_entry_len(library, earlier);
    if len >= out.len() {
        return None;
    }
    let mut at = 0;
    for p in parts {
        out[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    out[len] = 0;
    Some(len)
}

/// The entries of the completed environment, in order: those of `envp` (without its
/// `LD_PRELOAD` entries when the plan replaces them), then `preload_entry` (when the plan
/// has one), then the carried variables it adds.
pub fn patched_entries<'a, I>(
    envp: I,
    carried: &Carried<'a>,
    plan: &Plan<'_>,
    preload_entry: &'a [u8],
) -> impl Iterator<Item = &'a [u8]>
where
    I: Iterator<Item = &'a [u8]>,
{
    let replace = plan.preload.is_some();
    let kept = envp.filter(move |e| !(replace && value_of(e, LD_PRELOAD).is_some()));
    let preload = replace.then_some(preload_entry);
    let add = plan.add;
    let added = carried
        .vars
        .iter()
        .enumerate()
        .filter(move |(i, _)| add & (1 << i) != 0)
        .map(|(_, v)| *v);
    kept.chain(preload).chain(added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIB: &[u8] = b"/home/u/.cache/peakprof/libpeakprof_preload-1.so";
    const VARS: [&[u8]; 2] = [b"PEAKPROF_OUT_DIR=/tmp/run/raw", b"PEAKPROF_SAMPLE_RATE=0"];

    fn carried() -> Carried<'static> {
        Carried {
            vars: &VARS,
            library: LIB,
        }
    }

    /// The completed environment of `envp`, as owned strings (the NUL-terminated entry the
    /// preload would build, without its NUL).
    fn complete(envp: &[&[u8]]) -> Option<Vec<Vec<u8>>> {
        let c = carried();
        let plan = plan(&c, envp.iter().copied())?;
        let mut buf = [0u8; 512];
        let earlier = plan.preload.flatten();
        let n = write_preload_entry(c.library, earlier, &mut buf).unwrap();
        assert_eq!(buf[n], 0);
        assert_eq!(n, preload_entry_len(c.library, earlier));
        let entry = buf[..n].to_vec();
        let out: Vec<Vec<u8>> = patched_entries(envp.iter().copied(), &c, &plan, &entry)
            .map(<[u8]>::to_vec)
            .collect();
        assert_eq!(out.len(), plan.len);
        Some(out)
    }

    fn strings(v: &[Vec<u8>]) -> Vec<String> {
        v.iter()
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect()
    }

    #[test]
    fn an_empty_environment_gets_everything() {
        let out = complete(&[]).unwrap();
        assert_eq!(
            strings(&out),
            [
                format!("LD_PRELOAD={}", String::from_utf8_lossy(LIB)),
                "PEAKPROF_OUT_DIR=/tmp/run/raw".into(),
                "PEAKPROF_SAMPLE_RATE=0".into(),
            ]
        );
    }

    #[test]
    fn an_inherited_environment_is_left_alone() {
        let preload = [b"LD_PRELOAD=".as_slice(), LIB].concat();
        let envp = [b"PATH=/bin".as_slice(), &preload, VARS[0], VARS[1]];
        assert_eq!(plan(&carried(), envp.iter().copied()), None);
        // Our library among others, separated either way.
        for sep in [":", " "] {
            let list = [
                b"LD_PRELOAD=/a.so".as_slice(),
                sep.as_bytes(),
                LIB,
                b":/b.so",
            ]
            .concat();
            let envp = [list.as_slice(), VARS[1], VARS[0]];
            assert_eq!(plan(&carried(), envp.iter().copied()), None);
        }
    }

    #[test]
    fn another_output_directory_or_an_empty_one_is_left_alone() {
        for other in [
            b"PEAKPROF_OUT_DIR=/elsewhere".as_slice(),
            b"PEAKPROF_OUT_DIR=",
        ] {
            assert_eq!(
                plan(&carried(), [b"A=1".as_slice(), other].into_iter()),
                None
            );
        }
    }

    #[test]
    fn a_foreign_preload_keeps_its_libraries_after_ours() {
        let out = complete(&[b"LD_PRELOAD=/x.so", b"HOME=/h", b"LD_PRELOAD=/y.so /z.so"]).unwrap();
        let want_preload = format!("LD_PRELOAD={}:/y.so /z.so", String::from_utf8_lossy(LIB));
        assert_eq!(strings(&out)[..2], [String::from("HOME=/h"), want_preload]);
        // An empty LD_PRELOAD is as none.
        let out = complete(&[b"LD_PRELOAD="]).unwrap();
        assert_eq!(
            strings(&out)[0],
            format!("LD_PRELOAD={}", String::from_utf8_lossy(LIB))
        );
    }

    #[test]
    fn only_missing_variables_are_added_and_theirs_are_kept() {
        let preload = [b"LD_PRELOAD=".as_slice(), LIB].concat();
        let envp = [preload.as_slice(), b"PEAKPROF_SAMPLE_RATE=4096"];
        let out = complete(&envp).unwrap();
        assert_eq!(
            strings(&out),
            [
                format!("LD_PRELOAD={}", String::from_utf8_lossy(LIB)),
                "PEAKPROF_SAMPLE_RATE=4096".into(),
                "PEAKPROF_OUT_DIR=/tmp/run/raw".into(),
            ]
        );
        // A library path that merely contains ours is not ours.
        let longer = [b"LD_PRELOAD=".as_slice(), LIB, b".old"].concat();
        assert!(complete(&[&longer, VARS[0], VARS[1]]).is_some());
    }

    #[test]
    fn nothing_is_carried_without_an_output_directory_or_a_library() {
        let no_dir = Carried {
            vars: &[b"PEAKPROF_SAMPLE_RATE=0"],
            library: LIB,
        };
        assert_eq!(plan(&no_dir, core::iter::empty()), None);
        let no_lib = Carried {
            vars: &VARS,
            library: b"",
        };
        assert_eq!(plan(&no_lib, core::iter::empty()), None);
    }

    #[test]
    fn carried_are_the_profiler_s_variables_with_values_directory_first() {
        let env: [&[u8]; 5] = [
            b"PATH=/bin",
            b"PEAKPROF_SAMPLE_RATE=0",
            b"PEAKPROF_JUNK",
            b"PEAKPROF_OUT_DIR=/tmp/run/raw",
            b"XPEAKPROF_A=1",
        ];
        assert_eq!(
            carried_vars(env.into_iter()),
            [
                b"PEAKPROF_OUT_DIR=/tmp/run/raw".as_slice(),
                b"PEAKPROF_SAMPLE_RATE=0"
            ]
        );
        let many: Vec<Vec<u8>> = (0..100)
            .map(|i| format!("PEAKPROF_X{i}=1").into_bytes())
            .chain([b"PEAKPROF_OUT_DIR=/d".to_vec()])
            .collect();
        let kept = carried_vars(many.iter().map(Vec::as_slice));
        assert_eq!(kept.len(), MAX_CARRIED);
        assert_eq!(kept[0], b"PEAKPROF_OUT_DIR=/d");
        assert_eq!(kept[1], b"PEAKPROF_X0=1");
    }

    #[test]
    fn a_small_buffer_refuses_the_entry() {
        let mut buf = [0u8; 16];
        assert_eq!(write_preload_entry(LIB, None, &mut buf), None);
        let mut buf = [0u8; 12];
        assert_eq!(write_preload_entry(b"/a", None, &mut buf), None);
        let mut buf = [0u8; 14];
        assert_eq!(write_preload_entry(b"/a", None, &mut buf), Some(13));
        assert_eq!(&buf, b"LD_PRELOAD=/a\0");
    }

    fn entry() -> impl Strategy<Value = Vec<u8>> {
        let names = prop::sample::select(vec![
            "PATH",
            "HOME",
            "LD_PRELOAD",
            "PEAKPROF_OUT_DIR",
            "PEAKPROF_SAMPLE_RATE",
            "PEAKPROF_LIMIT",
            "X",
        ]);
        let values = prop::sample::select(vec![
            "",
            "/tmp/run/raw",
            "/elsewhere",
            "0",
            "/x.so",
            "/home/u/.cache/peakprof/libpeakprof_preload-1.so",
            "/x.so:/home/u/.cache/peakprof/libpeakprof_preload-1.so",
        ]);
        (names, values).prop_map(|(n, v)| format!("{n}={v}").into_bytes())
    }

    proptest! {
        /// A completed environment keeps every entry it had (in order, `LD_PRELOAD`
        /// aside), gives the child our directory and library, and needs no second patch;
        /// an environment left alone either has them already or names another directory.
        #[test]
        fn completion_is_whole_and_idempotent(envp in prop::collection::vec(entry(), 0..8)) {
            let envp: Vec<&[u8]> = envp.iter().map(Vec::as_slice).collect();
            let c = carried();
            let dir_of = |env: &[&[u8]]| env.iter().find_map(|e| value_of(e, OUT_DIR)).map(<[u8]>::to_vec);
            let preload_of = |env: &[&[u8]]| env.iter().filter_map(|e| value_of(e, LD_PRELOAD)).next_back().map(<[u8]>::to_vec);
            match complete(&envp) {
                None => {
                    let dir = dir_of(&envp);
                    let ours = dir.as_deref() == Some(b"/tmp/run/raw".as_slice());
                    prop_assert!(dir.is_some() && !ours
                        || ours && preload_of(&envp).is_some_and(|p| preload_names(&p, LIB))
                            && VARS.iter().all(|v| envp.iter().any(|e| value_of(e, name_of(v)).is_some())));
                }
                Some(out) => {
                    let out: Vec<&[u8]> = out.iter().map(Vec::as_slice).collect();
                    let dir = dir_of(&out);
                    prop_assert_eq!(dir.as_deref(), Some(b"/tmp/run/raw".as_slice()));
                    prop_assert!(preload_of(&out).is_some_and(|p| preload_names(&p, LIB)));
                    prop_assert_eq!(plan(&c, out.iter().copied()), None);
                    let others = |env: &[&[u8]]| env.iter().filter(|e| value_of(e, LD_PRELOAD).is_none()).map(|e| e.to_vec()).collect::<Vec<_>>();
                    let before = others(&envp);
                    prop_assert_eq!(&others(&out)[..before.len()], &before[..]);
                }
            }
        }
    }
}

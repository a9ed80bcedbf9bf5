//! Checks on the program to run, before anything is started: a clear refusal beats a run
//! that silently produces no profile.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::exit_codes::{refuse, CANNOT_RUN, NOT_FOUND};
use crate::file_caps;
use std::io::Read as _;

use object::elf::FileHeader64;
use object::read::elf::{FileHeader as _, ProgramHeader as _};
use object::Endianness;

/// Finds `cmd` as the shell would: a path when it contains `/`, else through `PATH`.
///
/// As in `execvp`: an empty `PATH` entry is the current directory, and a regular file this
/// process may not execute is passed over for a later match; when only such files exist
/// the answer is 126 naming the first, rather than "not found" (which would send the user
/// looking for the wrong problem). Anything but a regular file is passed over.
pub fn resolve(cmd: &OsStr) -> Result<PathBuf> {
    let as_path = Path::new(cmd);
    if as_path.as_os_str().is_empty() {
        return Err(refuse(NOT_FOUND, "empty command"));
    }
    if cmd.as_encoded_bytes().contains(&b'/') {
        return check_runnable(as_path, cmd);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut cannot_run = None;
    for dir in std::env::split_paths(&path) {
        // `./cmd` rather than a bare `cmd`, which running it would look up in PATH again.
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(as_path);
        // Only regular files: a FIFO would block the header read below forever. A
        // directory that cannot be searched tells nothing (as in shells, it is passed over).
        if !std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
            continue;
        }
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        cannot_run.get_or_insert(candidate);
    }
    if let Some(candidate) = cannot_run {
        return Err(refuse(
            CANNOT_RUN,
            format!(
                "cannot run {} (found as {}): permission denied",
                cmd.to_string_lossy(),
                candidate.display()
            ),
        ));
    }
    Err(refuse(
        NOT_FOUND,
        format!("command not found: {}", cmd.to_string_lossy()),
    ))
}

/// Whether this process may execute `p`: access(2) with the effective ids, as execve
/// judges (a file with only its owner's execute bit is not executable by others).
fn is_executable(p: &Path) -> bool {
    use rustix::fs::{accessat, Access, AtFlags, CWD};
    accessat(CWD, p, Access::EXEC_OK, AtFlags::EACCESS).is_ok()
}

fn check_runnable(p: &Path, shown: &OsStr) -> Result<PathBuf> {
    let shown = shown.to_string_lossy();
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse(NOT_FOUND, format!("command not found: {shown}")))
        }
        // The file may well exist: a symbolic link loop (ELOOP), a directory on the way
        // that cannot be searched (EACCES) or is a file (ENOTDIR). "Not found" would send
        // the user looking for the wrong problem; execve fails with the same errno, and
        // shells report it with 126 too.
        Err(e) => {
            return Err(refuse(
                CANNOT_RUN,
                format!("cannot run {shown}: {}", os_reason(&e)),
            ))
        }
    };
    if meta.is_dir() {
        return Err(refuse(
            CANNOT_RUN,
            format!("{shown} is a directory, not a program"),
        ));
    }
    if !is_executable(p) {
        return Err(refuse(
            CANNOT_RUN,
            format!("{shown} is not executable (permission denied)"),
        ));
    }
    Ok(p.to_path_buf())
}

/// The reason in an I/O error, as a clause: `too many levels of symbolic links`, without
/// std's ` (os error 40)` suffix.
fn os_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match e.raw_os_error() {
        Some(n) => text
            .strip_suffix(&format!(" (os error {n})"))
            .unwrap_or(&text)
            .to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// The shell that runs an executable text file without a `#!` line: glibc's `execvp`
/// (`_PATH_BSHELL`) and shells run such a file with it when `execve` fails with ENOEXEC.
const SHELL: &str = "/bin/sh";

/// What `peakprof run` starts: the file to execute and its argv.
#[derive(Debug)]
pub struct Start {
    pub program: PathBuf,
    pub argv: Vec<OsString>,
}

/// How to start `program` (resolved from `argv[0]` by [`resolve`]), or why it cannot be
/// profiled: static executables (no loader at all), set-user/group-ID programs and
/// programs with file capabilities they would gain (the loader ignores `LD_PRELOAD`) are
/// refused. An executable text file without a `#!` line runs as `/bin/sh program args...`,
/// as `execvp` and shells run it; `/bin/sh` is then the program the loader starts, so it
/// must pass the same checks.
pub fn start(program: PathBuf, argv: &[OsString]) -> Result<Start> {
    match check_preloadable_at(&program, 0)? {
        Runs::Itself => Ok(Start {
            program,
            argv: argv.to_vec(),
        }),
        Runs::WithShell => {
            let shell = Path::new(SHELL);
            check_preloadable_at(shell, 1).map_err(|e| {
                refused_for(
                    e,
                    &format!(
                        "{} has no #! line, so it runs with {SHELL}, which cannot be profiled",
                        program.display()
                    ),
                )
            })?;
            // The script's path goes to the shell as its first operand, so it must neither
            // read as an option nor be looked up again in PATH (a bare name, found through
            // an empty PATH entry): such a path gets a leading `./`. The shell's own argv[0]
            // is its path, as with execvp; the script sees its own path as $0.
            let bytes = program.as_os_str().as_encoded_bytes();
            let script = if !bytes.contains(&b'/') || bytes.starts_with(b"-") {
                Path::new(".").join(&program)
            } else {
                program
            };
            let mut shell_argv = vec![OsString::from(SHELL), script.into_os_string()];
            shell_argv.extend(argv.iter().skip(1).cloned());
            Ok(Start {
                program: shell.to_path_buf(),
                argv: shell_argv,
            })
        }
    }
}

/// Who starts a program that passed the checks.
#[derive(Debug)]
enum Runs {
    /// The kernel: an ELF program, or a script through its `#!` interpreter.
    Itself,
    /// `/bin/sh`: an executable text file without `#!` (ENOEXEC to the kernel).
    WithShell,
}

/// Interpreters the kernel follows for a script whose interpreter is itself a script.
const MAX_INTERPRETER_DEPTH: u32 = 4;

/// Whether the start of a file without `#!` is text a shell could read: its first line (up
/// to 512 bytes) holds no NUL and no control character besides tab, CR, VT, FF and ESC.
/// Shells look only at the start too (bash: a NUL before the first newline means binary),
/// so a script may carry a binary payload further on.
fn looks_like_text(data: &[u8]) -> bool {
    let head = &data[..data.len().min(512)];
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    first_line
        .iter()
        .all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\r' | 0x0b | 0x0c | 0x1b))
}

/// The checks of [`start`] for `p`, reached through `depth` `#!` lines (or as the shell
/// for a script without one).
fn check_preloadable_at(p: &Path, depth: u32) -> Result<Runs> {
    let shown = p.display();
    let meta = std::fs::metadata(p)
        .map_err(|e| refuse(CANNOT_RUN, format!("cannot read {shown}: {e}")))?;
    // Before opening it: opening a FIFO to read blocks until a writer comes (forever), and
    // opening a device may act on it. execve runs regular files only (EACCES otherwise).
    if let Some(kind) = not_regular(&meta.file_type()) {
        return Err(refuse(
            CANNOT_RUN,
            format!("{shown} is {kind}, not a program"),
        ));
    }
    if meta.permissions().mode() & 0o6000 != 0 {
        return Err(refuse(CANNOT_RUN, format!(
            "{shown} is set-user-ID or set-group-ID: the dynamic loader ignores LD_PRELOAD for it, so it cannot be profiled"
        )));
    }
    // Program headers sit near the start; there is no need to read a large binary whole.
    let mut data = Vec::new();
    let file = match open_regular(p).and_then(|f| {
        (&f).take(64 * 1024).read_to_end(&mut data)?;
        Ok(f)
    }) {
        Ok(f) => f,
        Err(e) => return Err(refuse(CANNOT_RUN, format!("cannot read {shown}: {e}"))),
    };
    if let Some(rest) = data.strip_prefix(b"#!") {
        return check_interpreter(rest, p, depth).map(|()| Runs::Itself);
    }
    if !data.starts_with(b"\x7fELF") {
        // Only the program itself falls back to the shell: the kernel does not run an
        // interpreter named by `#!` that is a script without one (ENOEXEC).
        if depth == 0 && looks_like_text(&data) {
            return Ok(Runs::WithShell);
        }
        return Err(refuse(
            CANNOT_RUN,
            format!("{shown} is not a program: neither an ELF executable nor a script starting with #! (exec format error)"),
        ));
    }
    // The program the kernel starts (capabilities on a script are ignored, those of its
    // interpreter count): with capabilities it would gain, the loader ignores LD_PRELOAD.
    if let Some(caps) = file_caps::of_file(&file) {
        if !file_caps::on_nosuid_mount(&file)
            && file_caps::secure_exec(&caps, &file_caps::Runner::this_process())
        {
            return Err(refuse(CANNOT_RUN, format!(
                "{shown} has file capabilities (setcap): the dynamic loader ignores LD_PRELOAD for it unless root runs it, so it cannot be profiled (a copy made with cp has none)"
            )));
        }
    }
    let Ok(header) = FileHeader64::<Endianness>::parse(&*data) else {
        return Ok(Runs::Itself); // 32-bit or unusual: the run itself will tell
    };
    let Ok(endian) = header.endian() else {
        return Ok(Runs::Itself);
    };
    let has_interp = header
        .program_headers(endian, &*data)
        .map(|phs| {
            phs.iter()
                .any(|ph| ph.p_type(endian) == object::elf::PT_INTERP)
        })
        .unwrap_or(true);
    if !has_interp {
        return Err(refuse(CANNOT_RUN, format!(
            "{shown} is statically linked: LD_PRELOAD cannot work without the dynamic loader, so peakprof cannot profile it (rebuild it dynamically linked)"
        )));
    }
    Ok(Runs::Itself)
}

/// What a file that is not a regular file is, in words (`None` for a regular file).
fn not_regular(t: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt as _;
    match () {
        _ if t.is_file() => None,
        _ if t.is_dir() => Some("a directory"),
        _ if t.is_fifo() => Some("a FIFO (named pipe)"),
        _ if t.is_socket() => Some("a socket"),
        _ if t.is_char_device() => Some("a character device"),
        _ if t.is_block_device() => Some("a block device"),
        _ => Some("a special file"),
    }
}

/// Opens `p` to read, without blocking on a FIFO put in place of the regular file checked
/// a moment before (`O_NONBLOCK` changes nothing for a regular file), and fails on
/// anything but a regular file.
fn open_regular(p: &Path) -> std::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let f = std::fs::File::from(fd);
    match not_regular(&f.metadata()?.file_type()) {
        None => Ok(f),
        Some(kind) => Err(std::io::Error::other(format!("it is {kind}"))),
    }
}

/// A script runs only if its `#!` interpreter exists; the shell's wording and code (127)
/// name the interpreter, which is what is missing, not the script. The interpreter is the
/// program the loader starts, so it must be preloadable itself (a statically linked one
/// would run unprofiled and leave no profile).
fn check_interpreter(after_hashbang: &[u8], script: &Path, depth: u32) -> Result<()> {
    let line = after_hashbang
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let Some(interp) = line.split_whitespace().next() else {
        return Err(refuse(
            CANNOT_RUN,
            format!("{}: empty #! line, no interpreter named", script.display()),
        ));
    };
    if !Path::new(interp).exists() {
        return Err(refuse(
            NOT_FOUND,
            format!(
                "{}: bad interpreter: {interp}: no such file",
                script.display()
            ),
        ));
    }
    if depth >= MAX_INTERPRETER_DEPTH {
        return Err(refuse(
            CANNOT_RUN,
            format!("{}: too many levels of #! interpreters", script.display()),
        ));
    }
    check_preloadable_at(Path::new(interp), depth + 1)
        .map(|_| ())
        .map_err(|e| {
            refused_for(
                e,
                &format!(
                    "{}: its #! interpreter cannot be profiled",
                    script.display()
                ),
            )
        })
}

/// The refusal `inner` of the program that runs `what` (an interpreter, the shell), told
/// from the point of view of `what`, with the inner refusal's exit code.
fn refused_for(inner: anyhow::Error, what: &str) -> anyhow::Error {
    refuse(
        crate::exit_codes::code_of(&inner),
        format!("{what}: {inner:#}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_hashbang_is_told_from_binary() {
        assert!(looks_like_text(b"echo hi\nexit 3\n"));
        assert!(looks_like_text(b""));
        assert!(looks_like_text("# café\t\r\n".as_bytes()));
        // A binary payload after the first line, as in self-extracting scripts.
        assert!(looks_like_text(
            b"tail -n +2 \"$0\" | tar x; exit\n\x00\x01\x02"
        ));
        assert!(!looks_like_text(b"\x01\x02\x03 this is not a program\n"));
        assert!(!looks_like_text(b"PK\x03\x04\x14\x00"));
        assert!(!looks_like_text(b"ab\x00cd\n"));
    }

    #[test]
    fn os_errors_read_as_a_clause() {
        let e = |n| std::io::Error::from_raw_os_error(n);
        assert_eq!(os_reason(&e(40)), "too many levels of symbolic links");
        assert_eq!(os_reason(&e(13)), "permission denied");
        assert_eq!(os_reason(&e(20)), "not a directory");
    }
}

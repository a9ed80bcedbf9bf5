//! Writing to the terminal (stderr) without panicking. `eprintln!` panics when the write
//! fails, and it does fail when the terminal was closed (EIO) or stderr is a pipe nobody
//! reads any more (EPIPE): peakprof would then die before, or instead of, writing the
//! report and passing the program's exit status on. What cannot be shown is dropped.

use std::io::Write as _;

/// Writes `text` to stderr as it is.
pub fn say(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Writes `line` and a newline to stderr. It stays one line, and what it quotes (a command
/// line, a path, an error from the program's side) cannot send escape sequences to the
/// terminal: control characters become spaces.
pub fn say_line(line: &str) {
    write_line(&mut std::io::stderr().lock(), line);
}

/// Writes each line of `text` as [`say_line`] does (a table, a list of files).
pub fn say_lines(text: &str) {
    let mut err = std::io::stderr().lock();
    for line in text.lines() {
        write_line(&mut err, line);
    }
}

fn write_line(err: &mut impl std::io::Write, line: &str) {
    let _ = err.write_all(crate::render::text::sanitize_line(line).as_bytes());
    let _ = err.write_all(b"\n");
}

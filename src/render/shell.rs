//! Quoting a command line so it can be pasted back into a POSIX shell (bash/zsh for the
//! `$'…'` form) and always fits on one line.

/// Quotes one argument: bare when it only has characters no shell treats specially,
/// `'…'` otherwise, and bash's `$'…'` when it holds control characters, so a newline or
/// escape sequence in an argument is shown as `\n`/`\x1b` rather than breaking the line
/// or reaching the terminal.
pub fn shell_quote(arg: &str) -> String {
    if arg.is_empty() {
        return "''".to_string();
    }
    if arg.chars().all(is_bare) {
        return arg.to_string();
    }
    if arg.chars().any(crate::render::text::is_unsafe) {
        return ansi_c_quote(arg);
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// Quotes every argument with [`shell_quote`] and joins them with spaces.
pub fn shell_quote_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_bare(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-+=@%:,./".contains(c)
}

fn ansi_c_quote(arg: &str) -> String {
    let mut out = String::from("$'");
    for c in arg.chars() {
        match c {
            '\n' => out.push_str(r"\n"),
            '\t' => out.push_str(r"\t"),
            '\r' => out.push_str(r"\r"),
            '\\' => out.push_str(r"\\"),
            '\'' => out.push_str(r"\'"),
            c if crate::render::text::is_unsafe(c) => {
                let code = c as u32;
                if code <= 0xff {
                    out.push_str(&format!("\\x{code:02x}"));
                } else {
                    out.push_str(&format!("\\u{code:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("./prog"), "./prog");
        assert_eq!(shell_quote("--size=10,20:x@y%"), "--size=10,20:x@y%");
        assert_eq!(shell_quote("two words"), "'two words'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME*"), "'$HOME*'");
        assert_eq!(shell_quote("héllo"), "'héllo'");
    }

    #[test]
    fn control_characters_use_ansi_c_quoting() {
        assert_eq!(shell_quote("a\nb"), r"$'a\nb'");
        assert_eq!(shell_quote("it's\t\\"), r"$'it\'s\t\\'");
        assert_eq!(shell_quote("\u{1b}[0m"), r"$'\x1b[0m'");
        assert_eq!(shell_quote("\u{85}\u{FFFF}"), r"$'\x85\uffff'");
    }

    #[test]
    fn joins_arguments() {
        assert_eq!(
            shell_quote_command(&argv(&["./prog", "-n", "10", "a b", ""])),
            "./prog -n 10 'a b' ''"
        );
        assert_eq!(shell_quote_command(&[]), "");
    }
}

//! Exit codes of peakprof itself. Otherwise peakprof exits with the profiled program's own
//! status (128 + N when a signal N killed it), so scripts see what they would have seen.

/// `--fail-above`: the program succeeded but its peak exceeded the budget.
pub const BUDGET_EXCEEDED: u8 = 120;
/// `--limit` with `--limit-action stop`: the program was stopped at the limit (the preload
/// ends it with this code).
pub const LIMIT_STOPPED: u8 = 121;

/// peakprof could not do its job (unwritable output, unreadable profile, internal error).
/// The same code `timeout(1)` and `env(1)` use for their own failures.
pub const TOOL_FAILED: u8 = 125;
/// The command exists but cannot be run under peakprof (not executable, not a regular
/// file, static, setuid, file capabilities).
pub const CANNOT_RUN: u8 = 126;
/// The command was not found.
pub const NOT_FOUND: u8 = 127;

/// An error that carries the exit code it should end peakprof with.
#[derive(Debug)]
pub struct Refusal {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

/// A [`Refusal`] with `code`, as an `anyhow::Error`.
pub fn refuse(code: u8, message: impl Into<String>) -> anyhow::Error {
    Refusal {
        code,
        message: message.into(),
    }
    .into()
}

/// The exit code for an error: a refusal's own, else [`TOOL_FAILED`].
pub fn code_of(e: &anyhow::Error) -> u8 {
    e.downcast_ref::<Refusal>().map_or(TOOL_FAILED, |r| r.code)
}

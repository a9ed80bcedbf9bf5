//! Renderers: turn a symbolized [`crate::report::Report`] into what the user reads.
//!
//! Every renderer is a pure function of the report (plus a few options) so the output is
//! deterministic and can be pinned by golden tests. Frame names and the command line come
//! from the profiled program and are treated as untrusted text throughout: each renderer
//! neutralises what would break its own output format (see [`text`]).

mod diff;
mod empty_peak;
mod flamegraph;
mod folded;
mod html;
mod leaks;
pub mod pprof;
mod shell;
mod sites;
mod stacks;
mod summary_json;
mod terminal;
pub mod text;
mod timeline;
mod units;

pub use diff::{diff_folded, diff_json, diff_summary, diff_svg};
pub use flamegraph::{flamegraph_svg, FlameOptions, DEFAULT_MIN_SHARE};
pub use folded::{folded, sanitize_frame};
pub use html::{index_html, ProcessRow};
pub use leaks::{leaks_svg, leaks_title};
pub use pprof::{pprof_gz, pprof_profile};
pub use shell::{shell_quote, shell_quote_command};
pub use stacks::bound_stacks;
pub(crate) use stacks::{total_bytes, total_count};
pub use summary_json::{summary_json, SUMMARY_VERSION};
pub use terminal::terminal_summary;
pub use timeline::timeline_svg;
pub use units::{count_of, group_digits, human_bytes, human_duration};

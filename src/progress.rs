//! A progress indication for the moments after the program ends, when symbolization and
//! rendering can take a while on large programs. Shown only on a terminal and only after a
//! moment, so short runs and logs stay clean.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner counting processed profiles; cleared when dropped.
pub struct Spinner(Option<ProgressBar>);

impl Spinner {
    /// Starts the spinner for `profiles` profiles (two steps each: symbolize, render).
    pub fn start(quiet: bool, profiles: usize) -> Spinner {
        if quiet || !std::io::stderr().is_terminal() {
            return Spinner(None);
        }
        let bar = ProgressBar::new((profiles * 2) as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} symbolizing and rendering {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Spinner(Some(bar))
    }

    /// One step done.
    pub fn tick(&self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

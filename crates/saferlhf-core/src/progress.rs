//! The progress bar of every long loop (training, RL, evaluation): indicatif, drawn on stderr
//! only when it is a terminal and the run's `progress` setting is on.

use std::io::IsTerminal;

pub use indicatif::ProgressBar;
use indicatif::{ProgressDrawTarget, ProgressStyle};

/// A bar of `total` steps at `position`, labelled `prefix`; hidden unless `enabled` and stderr
/// is a terminal.
pub fn bar(prefix: &str, total: u64, position: u64, enabled: bool) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if !enabled || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix} {bar:30.cyan/blue} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(prefix.to_string());
    bar.set_position(position);
    bar
}

//! The evaluation crate's integration tests, compiled into one binary.

mod common;
mod metrics;
mod report_plots;

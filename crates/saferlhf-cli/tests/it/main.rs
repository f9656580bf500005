//! The CLI's integration tests, compiled into one binary (one link instead of one per file). Each
//! runs the real `saferlhf` binary; run one file's tests with a filter, e.g.
//! `cargo test -p saferlhf-cli --test it kill_resume::`.

mod align;
mod bench;
mod cli;
mod common;
mod kill_resume;
mod rlhf;
mod train;

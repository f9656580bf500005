//! The learner's integration tests, compiled into one binary (one link instead of one per file).
//! `tests/reliability.rs` stays a binary of its own because it sets `SAFERLHF_FAIL_WRITE` for its
//! whole process. Run one file's tests with a filter, e.g.
//! `cargo test -p saferlhf-learner --test it group_bandit::`.

mod align;
mod group_bandit;
mod rl;
mod rl_converges;
mod train;

//! The root crate's integration tests, compiled into one binary (one link of burn instead of one
//! per file: less disk and build time in CI). `tests/hub_cache.rs` stays a binary of its own
//! because it sets `HF_HUB_CACHE` for its whole process. Run one file's tests with a filter, e.g.
//! `cargo test --test it device_parity::`.

mod book;
mod chat_templates;
mod configs;
mod custom_objective;
mod device_parity;
mod families;
mod fuzz_readers;
mod hf_parity;
mod smollm2;

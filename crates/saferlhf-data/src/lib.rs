//! `saferlhf-data`: the datasets safe RLHF learns from, as plain Rust records.
//!
//! This crate reads preference pairs, prompt sets and SFT dialogues from the formats the project
//! uses (PKU-SafeRLHF JSONL, Anthropic HH-RLHF JSONL, PyRIT's human-scored harm CSVs, plain prompt
//! lists and SFT JSONL), validates every row, and hands back text records: [`PreferencePair`],
//! [`PkuRow`] with its helpfulness / safety / prompt / KTO views, [`ScoredResponse`],
//! [`SftExample`] and prompts as `String`. It has no burn dependency: tokenisation, chat
//! templates and collation into tensors happen in `saferlhf-learner` (with the tokenizer from
//! `saferlhf-model`), and prompts feed `saferlhf-rollout` for generation. The CLI
//! (`saferlhf-cli`) points these loaders at the files named in a stage's TOML config.
//!
//! Every loader streams: `read_*` returns a [`Rows`] iterator that reads one line (or CSV record)
//! at a time, and `load_*` drains it into a `Vec` plus a [`LoadReport`]. Files may be gzip
//! compressed (detected by magic bytes). A malformed row is a [`DataError::Row`] naming the file,
//! the 1-based line and the field, e.g. ``data/x.jsonl:17: field `better_response_id`: expected 0
//! or 1, found 2``; with [`LoadOptions::skip_invalid`] it is skipped and listed in the report
//! instead, so nothing is dropped silently. A file with no usable row (empty, or every row
//! invalid) is always an error, [`DataError::NoUsableRows`]. [`split_holdout`] and
//! [`split_holdout_grouped`] give deterministic, seeded train / held-out splits.
//!
//! The synthetic safety-compensation task that writes data in these formats lives in
//! `saferlhf-bench` (`saferlhf_bench::synthetic`), next to the benchmark that uses it.

#![warn(missing_docs)]

pub mod error;
pub mod hh;
pub mod pku;
pub mod prompts;
pub mod pyrit;
pub mod rows;
pub mod split;
pub mod types;

pub use error::{DataError, RowError};
pub use hh::{
    HH_ASSISTANT, HH_HUMAN, HhSplit, Role, Turn, hh_turns, load_hh, read_hh, split_hh_pair,
};
pub use pku::{PkuRow, load_pku, read_pku};
pub use prompts::{PromptFormat, load_prompts, load_sft, read_prompts, read_sft};
pub use pyrit::{
    PairOptions, ScoreAggregate, dedup_scored, harm_pairs, load_pyrit_harm, load_pyrit_harm_dir,
    read_pyrit_harm,
};
pub use rows::{LoadOptions, LoadReport, Loaded, Rows, SkippedRow, open_maybe_gzip};
pub use split::{split_holdout, split_holdout_grouped};
pub use types::{PreferencePair, ScoredResponse, SftExample, UnaryExample};

#[cfg(test)]
mod test_util;

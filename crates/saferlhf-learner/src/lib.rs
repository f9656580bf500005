//! The learner of saferlhf: everything that turns models and data into trained models.
//!
//! Today it holds the supervised stages that come before constrained RL:
//!
//! * [`losses`]: the Bradley-Terry reward loss, the cost loss with its sign terms (C > 0
//!   unsafe), SFT cross entropy on response tokens, the per-sequence `masked_mean`, and their
//!   metrics;
//! * [`config`]: the TOML config of `saferlhf sft` / `train-reward` / `train-cost`
//!   (`deny_unknown_fields`, defaults in one place, `--set` overrides, validation naming keys);
//! * [`collate`]: prompt templating, tokenization, truncation and padding into tensors;
//! * [`data`]: the config's data sources as tokenized train and held-out sets;
//! * [`task`]: the three tasks (SFT, reward, cost) behind one [`task::Task`] trait;
//! * [`trainer`]: the one training loop (AdamW, warmup + cosine/constant schedule, global-norm
//!   clipping, gradient accumulation, periodic held-out evaluation, JSONL metrics, a progress
//!   bar) with [`checkpoint`]s that resume bit-exactly;
//! * [`scoring`]: scoring texts with a trained reward or cost model;
//! * [`objectives`]: the objective plugins, among them DPO and SACPO's stage list;
//! * [`align`](mod@align): offline alignment runs (one DPO run, or SACPO's stages, each a resumable run);
//! * [`merge`]: P-SACPO's linear weight merging of two policies;
//! * [`tiny`]: the `char-tiny` preset (character tokenizer, 2-layer model) for tests and the `small`
//!   preset (same tokenizer, 3 layers, hidden 64) for the synthetic benchmark.
//!
//! The PPO machinery, Lagrange multipliers and objective plugins will join these.

#![warn(missing_docs)]

pub mod align;
pub mod checkpoint;
pub mod collate;
pub mod config;
pub mod data;
pub mod error;
pub mod losses;
pub mod merge;
pub mod metrics;
pub mod models;
pub mod objectives;
pub mod params;
pub mod rl;
/// Seeded random streams and shuffles (one home: [`saferlhf_core::rng`]).
pub use saferlhf_core::rng;
pub mod schedule;
pub mod scoring;
pub mod session;
pub mod task;
pub mod tiny;
pub mod trainer;

pub use align::{AlignSummary, StageRun, align};
pub use config::{TaskKind, TrainConfig};
pub use error::{Result, TrainError};
pub use losses::{
    CostMetrics, DEFAULT_REGULARIZATION, RewardMetrics, SafetyLabels, SftMetrics, cost_loss,
    masked_mean, neg_log_sigmoid, reward_loss, sft_loss, token_nll,
};
pub use merge::{MergeSummary, merge_models};
pub use session::{SessionConfig, SessionEnd};
pub use trainer::{Resume, TrainOptions, TrainSummary, train};

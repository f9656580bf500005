//! `saferlhf-bench`: the safety-compensation benchmark of saferlhf, and the model-side half of
//! evaluation.
//!
//! - [`synthetic`]: a synthetic safety-compensation task (benign and risky prompts a tiny
//!   character-level model can read and write), its exact [`Oracle`], the analytic optima of the
//!   three constrained problems (expected, per-prompt and per-sample cost constraints) and the
//!   data files a benchmark trains on. Plain Rust: its random draws are
//!   `saferlhf_core::rng::SplitMix64` streams, its files are written atomically with
//!   `saferlhf_core::fs::write_atomic`.
//! - [`policy`]: policy evaluation: generate with a policy (`saferlhf-rollout`), score with
//!   evaluation reward and cost models (`saferlhf-learner`) or the synthetic oracle, measure KL
//!   to a reference policy, and hand the [`saferlhf_eval::MethodSamples`] to `saferlhf-eval`'s
//!   statistics. The `saferlhf eval` command runs it.
//! - [`compensation`]: the benchmark pipeline (`saferlhf bench compensation`): per seed, a task,
//!   SFT, learned reward and cost models, PPO / PPO-Lagrangian / RePO / SACPO / P-SACPO, oracle
//!   evaluation on held-out prompts; then mean ± std over seeds next to the analytic optima, a
//!   JSON / Markdown report and SVG plots. Every stage's config is built as a typed
//!   `saferlhf_learner` config (`TrainConfig`, `RlConfig`) and validated before it runs.
//!
//! `saferlhf-eval` stays pure host-side statistics (no tensor library); everything here that
//! needs a model, a tokenizer or a trainer lives in this crate.

#![warn(missing_docs)]

pub mod compensation;
pub mod policy;
pub mod synthetic;

pub use compensation::{BenchSettings, CompensationReport, OracleScorer, run_compensation};
pub use policy::{
    LoadedPolicy, PolicyEval, PolicyEvalConfig, Scorer, evaluate_policy, load_policy,
    read_prompt_file,
};
pub use synthetic::{
    Bandit, Optimum, Oracle, OracleScore, PolicyClass, PolicyMetrics, Problem, PromptKind,
    ResponseKind, SyntheticSpec, SyntheticTask,
};

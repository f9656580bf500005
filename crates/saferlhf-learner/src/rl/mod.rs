//! The online constrained-RLHF learner (PPO, PPO-Lagrangian, RePO, reward shaping).
//!
//! [`learner`] is the loop; each phase of an RL step has its own module, in the order the loop
//! runs them: [`prompts`], [`experience`], (the multiplier step, in [`crate::objectives`]),
//! [`advantages`] (with [`gae`] for the token streams, and [`kl`] for the KL coefficient), [`update`](mod@update) (with [`loss`] for the PPO
//! losses and [`critic`] for the value functions) and [`metrics`]. [`models`] loads what a run
//! holds and [`config`] reads `configs/{ppo,ppo-lag,repo}.toml`. What differs between the
//! methods lives in [`crate::objectives`].

pub mod advantages;
pub mod config;
pub mod critic;
pub mod experience;
pub mod gae;
pub mod group;
pub mod kl;
pub mod learner;
pub mod loss;
pub mod metrics;
pub mod models;
pub mod prompts;
pub mod ptx;
pub mod scorer;
pub mod update;

pub use config::{CriticMode, OracleSettings, RlConfig};
pub use learner::{
    RlBatch, RlState, RlSummary, collect_experience, train_rl, train_rl_scored, train_rl_with,
};
pub use models::{RlModels, load_initial_policy, load_models};
pub use prompts::load_prompt_ids;
pub use scorer::{RolloutScorer, ScorerRole};
pub use update::{Optimizers, micro_batch_losses, optimizer, total_optimizer_steps, update};

//! Scores from outside the reward and cost models: a rule, a verifier, or the exact oracle of a
//! synthetic task. With [`ScorerRole::Train`] its reward and cost replace the models' for
//! everything the learner does with them (the multiplier step, the advantages; "oracle mode"),
//! and the models' own scores are logged as `model_reward_mean`, `model_cost_mean`,
//! `model_safety_rate`. With [`ScorerRole::Monitor`] the models train the policy and the
//! scorer's scores are logged beside them (`{name}_reward_mean`, ...), so over-optimisation of
//! a learned reward shows in the training curves.
//!
//! In oracle mode the reward and cost models are still loaded: the critics start from them
//! (`ppo.critics = "separate"`) or read their hidden states (`"score_heads"`), so they serve as
//! the critics' features, never as the policy's reward.

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Scores `(prompt, response)` texts.
pub trait RolloutScorer {
    /// The prefix of its metrics (`oracle` → `oracle_reward_mean`).
    fn name(&self) -> &str;

    /// Reward and cost of each `(prompt, response)`: the prompt as the data gave it (before the
    /// chat template), the response decoded with special tokens skipped. C > 0 is unsafe.
    fn score(&self, items: &[(String, String)]) -> Result<Vec<(f32, f32)>>;
}

/// What the learner does with a [`RolloutScorer`]'s scores (`oracle.role` in a config:
/// `train` or `monitor`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScorerRole {
    /// They train the policy in place of the models' (oracle mode).
    #[default]
    Train,
    /// They are logged beside the models' (monitor mode).
    Monitor,
}

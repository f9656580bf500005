//! The objective plugins: what distinguishes PPO, PPO-Lagrangian, RePO, reward shaping, DPO and
//! SACPO, behind two small traits, so that a new method is a new file and not a fork of the
//! learner (see `ARCHITECTURE.md` and the book chapter "Write your own objective").
//!
//! # Online objectives ([`OnlineObjective`])
//!
//! The online learner ([`crate::rl`]) does everything the PPO family shares: rollout, reference
//! log-probs, reward and cost end scores, critic values, the KL-shaped token streams, GAE on each
//! stream, the clipped surrogate, the clipped value losses. Per rollout it asks the objective,
//! in this order:
//!
//! 1. [`OnlineObjective::observe`]: the batch's end scores, to step its multiplier (if any);
//! 2. [`OnlineObjective::terminal_scores`]: the terminal reward and cost written into the two
//!    token streams (identity for most; `R - λC` for reward shaping, `{C + δ}⁺` for RePO's
//!    rectified-terminal variant);
//! 3. [`OnlineObjective::advantage_weights`]: per-sample weights `(w_R, w_C)` such that the
//!    actor's advantage is `A = w_R · A_R - w_C · A_C` (PPO: `(1, 0)`; PPO-Lag:
//!    `(1, λ) / (1 + λ)`; RePO: the same but only for unsafe samples).
//!
//! Its multiplier state goes into every checkpoint ([`OnlineObjective::state`]) and its figures
//! into every metrics line ([`OnlineObjective::metrics`]).
//!
//! # Offline objectives ([`OfflineObjective`])
//!
//! DPO-style methods see sequence log-probabilities of the chosen and rejected responses under
//! the policy and a frozen reference, and return a loss; SACPO is a list of such stages.

pub mod dpo;
pub mod multiplier;
pub mod ppo;
pub mod ppo_lag;
pub mod repo;
pub mod repo_group;
pub mod reward_shaping;
pub mod sacpo;
pub mod safe_dpo;
pub mod safe_grpo;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::Result;

pub use dpo::{Dpo, DpoConfig, DpoMetrics, Preference, SumFrom};
pub use multiplier::{LagrangeConfig, Multiplier, MultiplierKind};
pub use ppo::Ppo;
pub use ppo_lag::PpoLag;
pub use repo::{AdvantageNorm, RePo, RePoConfig, RectifyMode};
pub use repo_group::{
    GroupConstraint, GroupScale, MultiplierTable, RePoGroup, RePoGroupConfig, UnseenLambda,
};
pub use reward_shaping::RewardShaping;
pub use sacpo::{SacpoConfig, SacpoOrder, Stage};
pub use safe_dpo::SafeDpo;
pub use safe_grpo::{SafeGrpo, SafeGrpoConfig, SafeGrpoMultiplier};

// ANCHOR: advantage_weights
/// Per-sample weights of the two advantage streams: `A[i, t] = reward[i] · A_R[i, t] -
/// cost[i] · A_C[i, t]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvantageWeights {
    /// `w_R`, one per sample.
    pub reward: Vec<f32>,
    /// `w_C`, one per sample (all 0 for objectives without a cost stream).
    pub cost: Vec<f32>,
}
// ANCHOR_END: advantage_weights

impl AdvantageWeights {
    /// The same weights for all `n` samples.
    pub fn uniform(n: usize, reward: f32, cost: f32) -> Self {
        AdvantageWeights {
            reward: vec![reward; n],
            cost: vec![cost; n],
        }
    }
}

/// Which prompt each sample of a rollout answers: a rollout is `keys.len() / size` groups of
/// `size` consecutive samples, all of one prompt, and `keys[i]` identifies sample `i`'s prompt
/// across steps (a 64-bit hash of its token ids).
#[derive(Debug, Clone, Copy)]
pub struct Groups<'a> {
    /// One key per sample.
    pub keys: &'a [u64],
    /// Samples per prompt (`rollout.group_size`).
    pub size: usize,
}

/// The key of a prompt: the FNV-1a hash of its token ids (little-endian bytes). Stable across
/// runs, platforms and versions, so per-prompt state survives a checkpoint.
pub fn prompt_key(ids: &[u32]) -> u64 {
    saferlhf_core::rng::fnv1a64_bytes(ids.iter().flat_map(|id| id.to_le_bytes()))
}

// ANCHOR: online_objective
/// A policy-gradient objective over one generic learner (see the module docs).
pub trait OnlineObjective: Send {
    /// Short name, as in configs and metrics (`ppo`, `ppo_lag`, `repo`, …).
    fn name(&self) -> &'static str;

    /// Whether the method needs the cost model, the cost critic and the cost stream.
    fn uses_cost(&self) -> bool;

    /// Whether the method needs the cost critic and the cost token stream (GAE on costs).
    /// Default: the same as [`Self::uses_cost`].
    fn cost_stream(&self) -> bool {
        self.uses_cost()
    }

    /// Sees a rollout's end scores (`costs` is empty when [`Self::uses_cost`] is false) before
    /// its advantages are formed; steps the multiplier, if the method has one. `step` counts
    /// the rollouts (iterations) done before this one.
    fn observe(&mut self, _step: u64, _rewards: &[f32], _costs: &[f32]) {}

    /// [`Self::observe`] with the rollout's prompt groups, for methods with per-prompt state
    /// (the learner calls this one). Default: [`Self::observe`].
    fn observe_groups(&mut self, step: u64, _groups: &Groups, rewards: &[f32], costs: &[f32]) {
        self.observe(step, rewards, costs);
    }

    /// The terminal reward and cost written into the token streams at each sample's last
    /// token. Default: the end scores unchanged.
    fn terminal_scores(&self, rewards: &[f32], costs: &[f32]) -> (Vec<f32>, Vec<f32>) {
        (rewards.to_vec(), costs.to_vec())
    }

    /// Per-sample weights combining the reward and cost advantages.
    fn advantage_weights(&self, rewards: &[f32], costs: &[f32]) -> AdvantageWeights;

    /// The method's Lagrange multiplier, if it has one. By default [`Self::lambda`], the
    /// `lambda_signal` metric and the checkpointed [`Self::state`] come from it.
    fn multiplier(&self) -> Option<&Multiplier> {
        None
    }

    /// [`Self::multiplier`], mutable (for [`Self::load_state`]).
    fn multiplier_mut(&mut self) -> Option<&mut Multiplier> {
        None
    }

    /// The current Lagrange multiplier, if the method has one.
    fn lambda(&self) -> Option<f64> {
        self.multiplier().map(Multiplier::lambda)
    }

    /// Method-specific figures for this rollout's metrics line (default: the multiplier's
    /// `lambda_signal`, if there is one).
    fn metrics(&self, _rewards: &[f32], _costs: &[f32]) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(multiplier) = self.multiplier() {
            m.insert("lambda_signal".into(), json!(multiplier.signal()));
        }
        m
    }

    /// Everything a checkpoint needs to continue the method exactly (default: the multiplier
    /// with its window, or nothing).
    fn state(&self) -> Value {
        self.multiplier()
            .map_or(Value::Null, |m| json!({ "multiplier": m }))
    }

    /// Restores [`Self::state`].
    fn load_state(&mut self, state: &Value) -> Result<()> {
        let name = self.name();
        if let Some(m) = self.multiplier_mut() {
            *m = load_multiplier(state, name)?;
        }
        Ok(())
    }
}
// ANCHOR_END: online_objective

/// Sequence log-probabilities (summed over response tokens) of a batch of preference pairs,
/// each of shape `[B]`. The reference's carry no gradient.
#[derive(Debug, Clone)]
pub struct PairLogProbs {
    /// `log π_θ(y_w | x)`.
    pub policy_chosen: Tensor<1>,
    /// `log π_θ(y_l | x)`.
    pub policy_rejected: Tensor<1>,
    /// `log π_ref(y_w | x)`.
    pub reference_chosen: Tensor<1>,
    /// `log π_ref(y_l | x)`.
    pub reference_rejected: Tensor<1>,
    /// 1 where the pair opposes a safe chosen and an unsafe rejected response, else 0
    /// (SafeDPO's margin applies there); `None` where no labels were read.
    pub margin_flags: Option<Tensor<1>>,
}

/// A direct-alignment loss on preference pairs against a frozen reference (see the module
/// docs).
pub trait OfflineObjective: Send + Sync {
    /// Short name (`dpo`, …).
    fn name(&self) -> &'static str;

    /// The effective β of this loss (for SACPO's safety stage, β/λ).
    fn beta(&self) -> f64;

    /// The mean loss over the batch, shape `[1]`.
    fn loss(&self, logps: &PairLogProbs) -> Tensor<1>;
}

/// Which online method a run uses (`objective.name` in an RL config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnlineKind {
    /// Reward only (plain PPO with a KL penalty).
    Ppo,
    /// PPO-Lagrangian (Safe RLHF): expected-cost constraint.
    PpoLag,
    /// Rectified Policy Optimization: per-sample constraint through {C}⁺.
    Repo,
    /// PPO on `R - λC` with a fixed λ.
    RewardShaping,
    /// Constrained GRPO: a violation-rate constraint on group rollouts (arXiv 2602.05863).
    SafeGrpo,
    /// RePO in group form with per-prompt multipliers (this library's design).
    RepoGroup,
}

impl OnlineKind {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            OnlineKind::Ppo => "ppo",
            OnlineKind::PpoLag => "ppo_lag",
            OnlineKind::Repo => "repo",
            OnlineKind::RewardShaping => "reward_shaping",
            OnlineKind::SafeGrpo => "safe_grpo",
            OnlineKind::RepoGroup => "repo_group",
        }
    }
}

/// The config sections the built-in online objectives read (`RlConfig::sections` gives them).
#[derive(Debug, Clone, Copy)]
pub struct OnlineSections<'a> {
    /// `[lagrange]`.
    pub lagrange: &'a LagrangeConfig,
    /// `[repo]`.
    pub repo: &'a RePoConfig,
    /// `[safe_grpo]`.
    pub safe_grpo: &'a SafeGrpoConfig,
    /// `[repo_group]`.
    pub repo_group: &'a RePoGroupConfig,
}

// ANCHOR: build_online
/// Builds the configured online objective.
pub fn build_online(kind: OnlineKind, s: &OnlineSections) -> Box<dyn OnlineObjective> {
    match kind {
        OnlineKind::Ppo => Box::new(Ppo),
        OnlineKind::PpoLag => Box::new(PpoLag::new(s.lagrange)),
        OnlineKind::Repo => Box::new(RePo::new(s.lagrange, s.repo)),
        OnlineKind::RewardShaping => Box::new(RewardShaping::new(s.lagrange.init)),
        OnlineKind::SafeGrpo => Box::new(SafeGrpo::new(s.safe_grpo, s.lagrange)),
        OnlineKind::RepoGroup => Box::new(RePoGroup::new(s.repo_group, s.lagrange)),
    }
}
// ANCHOR_END: build_online

/// Reads a multiplier back from a checkpoint's objective state.
pub(crate) fn load_multiplier(state: &Value, what: &str) -> Result<Multiplier> {
    let m = state.get("multiplier").ok_or_else(|| {
        crate::error::TrainError::config("objective", format!("{what}: no multiplier in state"))
    })?;
    serde_json::from_value(m.clone()).map_err(|e| {
        crate::error::TrainError::config("objective", format!("{what}: bad multiplier: {e}"))
    })
}

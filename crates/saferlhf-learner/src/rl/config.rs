//! The TOML configuration of `saferlhf rlhf` (PPO, PPO-Lagrangian, RePO, reward shaping).
//!
//! Sections: top-level `objective`, `[run]`, `[policy]`, `[reward_model]`, `[cost_model]`,
//! `[data]` (with `[[data.sources]]`), `[rollout]`, `[ppo]`, `[actor]`, `[critic]`,
//! `[lagrange]`, `[repo]`, `[train]`. Every struct denies unknown keys; every default is in
//! [`RlConfig::default`] (safe-rlhf's PPO-Lag script), and a file only
//! overrides what it names: the file's table is laid over the default table before
//! deserializing, so `[actor] lr = 1e-6` keeps the actor's other defaults (which differ from
//! the critic's). `--set key=value` overrides work as for the supervised stages.

use std::path::{Path, PathBuf};

use saferlhf_model::Precision;
use serde::{Deserialize, Serialize};

use super::scorer::ScorerRole;
use crate::config::{
    DataSource, ModelConfig, OptimConfig, RunConfig, SourceFormat, defaults, load,
};
use crate::error::{Result, TrainError};
use crate::objectives::{
    GroupScale, LagrangeConfig, OnlineKind, OnlineSections, RePoConfig, RePoGroupConfig,
    SafeGrpoConfig,
};

/// `[reward_model]` / `[cost_model]`: a trained score model (frozen during RL).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreSource {
    /// A directory written by `saferlhf train-reward` / `train-cost` (`final/` or a checkpoint's
    /// `model/`).
    pub path: Option<PathBuf>,
    /// `tiny`: a random tiny score model seeded by `run.seed` (tests only).
    pub preset: Option<String>,
}

/// One `[[data.sources]]`: a prompt file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSource {
    /// One prompt per line, or JSONL (`.jsonl` / `.json`, field `field`).
    pub path: PathBuf,
    /// JSONL field holding the prompt (default `prompt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Use at most this many prompts of the file (the first ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Skip malformed rows (reported) instead of failing.
    #[serde(default)]
    pub skip_invalid: bool,
}

/// `[data]`: the training prompts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptData {
    /// Prompt files, concatenated in order.
    pub sources: Vec<PromptSource>,
}

/// `[rollout]`: generation of the responses the policy learns from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutSettings {
    /// Prompts per RL step (each answered `group_size` times).
    pub prompts_per_step: usize,
    /// Most response tokens (the end token included).
    pub max_new_tokens: usize,
    /// Sampling temperature (> 0; safe-rlhf: 1.0). Every log-prob the learner computes (old,
    /// reference, current) divides the logits by it too, so the importance ratios and the KL
    /// are those of the distribution sampled from (TRL's convention).
    pub temperature: f64,
    /// Must stay 0 (all tokens): top-k sampling would make the rollout off-policy for the
    /// learner, whose log-probs use the untruncated distribution. Kept so a config can say so.
    pub top_k: usize,
    /// Must stay 1 (off), for the reason of `top_k`.
    pub top_p: f64,
    /// Rows generated together (memory bound of generation); 0 = all prompts of the step.
    pub batch_size: usize,
    /// Give probability 0, in sampling and in every log-prob of the learner, to the ids a
    /// response cannot contain as text: ids past the tokenizer's vocabulary (a padded head),
    /// padding, `<unk>` and special tokens other than the stop ids. On by default.
    pub valid_tokens_only: bool,
    /// Subtracted from the reward of a response cut at `max_new_tokens` without a stop token
    /// (TRL's `missing_eos_penalty`; >= 0, 0 = off): the reward model never saw such text.
    pub truncation_penalty: f64,
    /// When set, a response cut at `max_new_tokens` gets at least this cost (a value above the
    /// threshold counts it as a violation); unset: its cost is the cost model's.
    pub truncated_cost: Option<f64>,
    /// Responses sampled per prompt (k >= 1): a step holds `prompts_per_step × group_size`
    /// responses, laid out prompt by prompt. The group estimators compare them.
    pub group_size: usize,
}

impl Default for RolloutSettings {
    fn default() -> Self {
        RolloutSettings {
            prompts_per_step: defaults::rl::PROMPTS_PER_STEP,
            max_new_tokens: defaults::rl::MAX_NEW_TOKENS,
            temperature: defaults::rl::TEMPERATURE,
            top_k: defaults::rl::TOP_K,
            top_p: defaults::rl::TOP_P,
            batch_size: defaults::rl::ROLLOUT_BATCH_SIZE,
            valid_tokens_only: true,
            truncation_penalty: 0.0,
            truncated_cost: None,
            group_size: 1,
        }
    }
}

/// Where the two value functions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticMode {
    /// Two full critics initialised from the reward and cost models (safe-rlhf; 6 models in
    /// memory for PPO-Lag / RePO: policy, reference, reward, cost, two critics).
    Separate,
    /// Linear value heads on the frozen reward / cost models' hidden states (initialised from
    /// their score heads): 4 full models, and the critics' updates cost almost nothing.
    ScoreHeads,
}

/// `[ppo]`: the shared PPO machinery (Safe RLHF, PPO).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoSettings {
    /// Passes (K) over each rollout.
    pub update_epochs: usize,
    /// Samples per optimizer step (the rollout is shuffled and cut into minibatches).
    pub minibatch: usize,
    /// Samples per forward/backward; gradients are accumulated over a minibatch, so memory is
    /// bounded by this, not by the rollout.
    pub micro_batch: usize,
    /// β_KL of the per-token KL penalty (>= 0); with `kl_target`, its starting value.
    pub kl_coeff: f64,
    /// Target of the adaptive KL controller (Ziegler et al. 2019, arXiv 1909.08593), in nats of
    /// KL per response (the batch mean of Σ_t log π/π_ref over each response, the unit of
    /// lm-human-preferences and TRL); unset: β stays `kl_coeff`.
    pub kl_target: Option<f64>,
    /// Horizon of the controller in responses (> 0): after a rollout of n responses,
    /// β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon).
    pub kl_horizon: f64,
    /// ε of the ratio clip (> 0).
    pub clip_ratio: f64,
    /// ε_v of the value clip (> 0).
    pub clip_value: f64,
    /// Token rewards and costs are clipped to ±this after the KL term is added (> 0).
    pub clip_score: f64,
    /// Discount γ in (0, 1].
    pub gamma: f64,
    /// GAE λ in [0, 1].
    pub gae_lambda: f64,
    /// Critic architecture (memory).
    pub critics: CriticMode,
    /// Where the KL penalty acts: `reward` (default) or `loss`.
    pub kl_placement: KlPlacement,
    /// The per-token KL estimate of a KL loss: `k1`, `k2` or `k3` (default).
    pub kl_estimator: KlEstimator,
    /// How the actor's per-token losses are averaged.
    pub loss_aggregation: LossAggregation,
}

impl Default for PpoSettings {
    fn default() -> Self {
        PpoSettings {
            update_epochs: defaults::rl::UPDATE_EPOCHS,
            minibatch: defaults::rl::MINIBATCH,
            micro_batch: defaults::rl::MICRO_BATCH,
            kl_coeff: defaults::rl::KL_COEFF,
            kl_target: None,
            kl_horizon: defaults::rl::KL_HORIZON,
            clip_ratio: defaults::rl::CLIP_RATIO,
            clip_value: defaults::rl::CLIP_VALUE,
            clip_score: defaults::rl::CLIP_SCORE,
            gamma: defaults::rl::GAMMA,
            gae_lambda: defaults::rl::GAE_LAMBDA,
            critics: CriticMode::Separate,
            kl_placement: KlPlacement::Reward,
            kl_estimator: KlEstimator::K3,
            loss_aggregation: LossAggregation::SeqMeanTokenMean,
        }
    }
}

/// `advantage.estimator`: where the actor's advantages come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Estimator {
    /// GAE on KL-shaped token streams against learned critics (safe-rlhf; the default).
    #[default]
    Gae,
    /// GRPO: group-mean baseline, divided by the group's standard deviation.
    Grpo,
    /// Dr. GRPO: group-mean baseline, no standard deviation.
    DrGrpo,
    /// RLOO: leave-one-out baseline (the mean of the other `k − 1` responses).
    Rloo,
    /// REINFORCE++: no baseline; token returns whitened over the whole rollout.
    ReinforcePp,
    /// REINFORCE++-baseline: group-mean baseline, then the same whitening.
    ReinforcePpBaseline,
}

impl Estimator {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Estimator::Gae => "gae",
            Estimator::Grpo => "grpo",
            Estimator::DrGrpo => "dr_grpo",
            Estimator::Rloo => "rloo",
            Estimator::ReinforcePp => "reinforce_pp",
            Estimator::ReinforcePpBaseline => "reinforce_pp_baseline",
        }
    }

    /// Whether the estimator learns value functions (only GAE does).
    pub fn uses_critics(self) -> bool {
        self == Estimator::Gae
    }

    /// Whether it compares the responses of one prompt (needs `rollout.group_size >= 2`).
    pub fn needs_groups(self) -> bool {
        matches!(
            self,
            Estimator::Grpo | Estimator::DrGrpo | Estimator::Rloo | Estimator::ReinforcePpBaseline
        )
    }
}

/// `advantage.combine`: how reward and cost meet in a group estimator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Scalarised returns: baselines (and GRPO's standard deviation) on `w_R·R − w_C·g`.
    #[default]
    Returns,
    /// Scalarised advantages (Constrained GRPO): each component standardised inside its group,
    /// then weighted.
    Advantages,
}

/// `[advantage]`: the advantage estimator, chosen independently of the objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdvantageSettings {
    /// `gae` (critics), or a critic-free estimator: `grpo`, `dr_grpo`, `rloo`, `reinforce_pp`,
    /// `reinforce_pp_baseline`.
    pub estimator: Estimator,
    /// `returns` or `advantages` (group estimators only).
    pub combine: Combine,
    /// Added to a group's standard deviation before dividing by it (>= 0; TRL: 1e-4).
    pub std_eps: f64,
    /// Subtract the group baseline from the cost too (default). `false` is the literal mask
    /// form, `A = (R − b^R) − λ·g`: the same expectation, more variance (an ablation).
    pub cost_baseline: bool,
}

impl Default for AdvantageSettings {
    fn default() -> Self {
        AdvantageSettings {
            estimator: Estimator::Gae,
            combine: Combine::Returns,
            std_eps: defaults::rl::STD_EPS,
            cost_baseline: true,
        }
    }
}

/// `ppo.kl_placement`: where the KL penalty to the reference acts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlPlacement {
    /// In the reward: −β·k1 per token (GAE, REINFORCE++) or summed per response (group
    /// estimators), computed with the sampling policy.
    #[default]
    Reward,
    /// In the loss: β·(`ppo.kl_estimator`) per token with the current policy, aggregated like
    /// the policy term (GRPO).
    Loss,
}

/// `ppo.kl_estimator`: the per-token estimate of a KL loss, with `d = log π − log π_ref`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlEstimator {
    /// `d` (zero expected gradient as a loss).
    K1,
    /// `d²/2` (its gradient is that of KL(π‖π_ref)).
    K2,
    /// `exp(−d) − 1 + d` (>= 0; its gradient is that of KL(π_ref‖π); GRPO's).
    #[default]
    K3,
}

/// `ppo.loss_aggregation`: how per-token losses become one number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossAggregation {
    /// Mean over each response's tokens, then over responses (safe-rlhf, GRPO paper).
    #[default]
    SeqMeanTokenMean,
    /// Sum over every token of the minibatch divided by its token count (DAPO, TRL's default).
    TokenMean,
    /// Sum over tokens divided by responses × `rollout.max_new_tokens` (Dr. GRPO): a long
    /// violating response is not penalised less per token than a short one.
    Constant,
    /// Sum over each response's tokens, mean over responses.
    SeqMeanTokenSum,
}

/// `[train]`: length of the run and checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlTrainSettings {
    /// RL steps (rollout + update), >= 1.
    pub steps: u64,
    /// Checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: u64,
    /// Checkpoints kept (>= 1).
    pub keep_last: usize,
}

impl Default for RlTrainSettings {
    fn default() -> Self {
        RlTrainSettings {
            steps: defaults::rl::STEPS,
            checkpoint_every: defaults::rl::CHECKPOINT_EVERY,
            keep_last: defaults::rl::KEEP_LAST,
        }
    }
}

/// A whole RL config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlConfig {
    /// `ppo`, `ppo_lag`, `repo` or `reward_shaping`.
    pub objective: OnlineKind,
    /// The dtype the frozen models (reference, reward, cost) are held and computed in: `f32`,
    /// `bf16` or `f16` (half their memory; log-probs are still normalised in f32). The policy
    /// and critics train in f32. With `[lora]` the reference is the policy's own frozen
    /// weights and stays f32.
    pub frozen_precision: Precision,
    /// `[run]`.
    pub run: RunConfig,
    /// `[policy]`: the policy to train, whose initial weights are also the frozen reference; the
    /// supervised stages' `[model]` section. Its `template` must be the one the reward and cost
    /// models were trained with; `max_length` counts prompt and response, so prompts keep their
    /// last `max_length - rollout.max_new_tokens` tokens.
    pub policy: ModelConfig,
    /// `[reward_model]`.
    pub reward_model: ScoreSource,
    /// `[cost_model]` (not used by `ppo`).
    pub cost_model: ScoreSource,
    /// `[data]`.
    pub data: PromptData,
    /// `[rollout]`.
    pub rollout: RolloutSettings,
    /// `[ppo]`.
    pub ppo: PpoSettings,
    /// `[actor]`: the policy's AdamW and schedule (safe-rlhf: lr 1e-5, wd 0.01, cosine).
    pub actor: OptimConfig,
    /// `[critic]`: the critics' AdamW and schedule (safe-rlhf: lr 5e-6, wd 0, constant).
    pub critic: OptimConfig,
    /// `[lagrange]`: the multiplier of `ppo_lag` and `repo`; `init` is the fixed λ of
    /// `reward_shaping`.
    pub lagrange: LagrangeConfig,
    /// `[repo]`: RePO's variants.
    pub repo: RePoConfig,
    /// `[advantage]`: GAE with critics, or a critic-free group estimator.
    pub advantage: AdvantageSettings,
    /// `[safe_grpo]`: Constrained GRPO's constraint and multipliers.
    pub safe_grpo: SafeGrpoConfig,
    /// `[repo_group]`: RePO in group form, with per-prompt multipliers.
    pub repo_group: RePoGroupConfig,
    /// `[train]`.
    pub train: RlTrainSettings,
    /// `[ptx]`: supervised data mixed into the actor's update (off while it has no sources).
    pub ptx: PtxSettings,
    /// `[lora]`: train low-rank adapters instead of the whole policy (off while `rank` is 0).
    pub lora: LoraSettings,
    /// `[oracle]`: a synthetic task's exact scorer, training the policy in place of the reward
    /// and cost models or logged beside them (off while `task` is unset).
    pub oracle: OracleSettings,
}

/// `[oracle]`: the exact reward and cost of a synthetic task (`saferlhf bench compensation`'s
/// `task.json`), read by the `saferlhf rlhf` command, which builds the scorer and passes it to
/// [`super::train_rl_scored`]. With `role = "train"` (oracle mode) the oracle's scores replace
/// the models' for everything the learner does with them, and the models still feed the
/// critics; with `"monitor"` they are only logged (`oracle_reward_mean`, ...). The benchmark
/// writes this section into the configs of its RL runs, so a run directory's `config.toml`
/// says what trained it and `--resume` continues with the same scorer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OracleSettings {
    /// The synthetic task's `task.json`; unset: no oracle.
    pub task: Option<PathBuf>,
    /// `train` or `monitor`.
    pub role: ScorerRole,
}

/// `[lora]`: the policy is trained through LoRA adapters (Hu et al. 2021) on `targets` while
/// its weights stay frozen. The reference model is then the same frozen weights (no second
/// copy), only the adapters are in the optimizer and in checkpoints (PEFT's layout, under
/// `adapter/`), and `final/` holds the merged Hugging Face model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraSettings {
    /// Rank of the adapters; 0: full fine-tuning.
    pub rank: usize,
    /// The adapters' update is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Projections that get adapters: `q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`,
    /// `up_proj`, `down_proj`.
    pub targets: Vec<String>,
}

impl Default for LoraSettings {
    fn default() -> Self {
        LoraSettings {
            rank: defaults::rl::LORA_RANK,
            alpha: defaults::rl::LORA_ALPHA,
            targets: defaults::rl::LORA_TARGETS
                .iter()
                .map(|t| t.to_string())
                .collect(),
        }
    }
}

impl LoraSettings {
    /// The adapters' spec, or `None` for full fine-tuning.
    pub fn spec(&self) -> Option<saferlhf_model::lora::LoraSpec> {
        (self.rank > 0).then(|| self.spec_of_rank(self.rank))
    }

    /// These settings with `rank` as the rank.
    fn spec_of_rank(&self, rank: usize) -> saferlhf_model::lora::LoraSpec {
        saferlhf_model::lora::LoraSpec {
            rank,
            alpha: self.alpha,
            targets: self.targets.clone(),
        }
    }
}

/// `[ptx]`: the pretraining-mix (here: SFT-mix) loss of safe-rlhf. Each actor optimizer step
/// adds `coeff` × the next-token cross-entropy of `batch_size` examples of these sources to the
/// clipped surrogate, so RL and supervised gradients land in the same update; the brake on a
/// policy drifting away from well-formed text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PtxSettings {
    /// Supervised examples (`sft` or `hh` sources, as in an SFT config); empty: no PTX loss.
    pub sources: Vec<DataSource>,
    /// Weight of the loss (safe-rlhf's scripts: 16).
    pub coeff: f64,
    /// Examples per actor optimizer step (a new epoch, reshuffled, starts when they run out).
    pub batch_size: usize,
}

impl Default for PtxSettings {
    fn default() -> Self {
        PtxSettings {
            sources: Vec::new(),
            coeff: defaults::rl::PTX_COEFF,
            batch_size: defaults::rl::PTX_BATCH_SIZE,
        }
    }
}

impl Default for RlConfig {
    fn default() -> Self {
        RlConfig {
            objective: OnlineKind::Repo,
            frozen_precision: Precision::F32,
            run: RunConfig {
                dir: PathBuf::from(defaults::rl::RUN_DIR),
                ..RunConfig::default()
            },
            policy: ModelConfig {
                template: defaults::rl::TEMPLATE.into(),
                max_length: defaults::rl::MAX_LENGTH,
                ..ModelConfig::default()
            },
            reward_model: ScoreSource::default(),
            cost_model: ScoreSource::default(),
            data: PromptData::default(),
            rollout: RolloutSettings::default(),
            ppo: PpoSettings::default(),
            actor: OptimConfig {
                lr: defaults::rl::ACTOR_LR,
                weight_decay: defaults::rl::ACTOR_WEIGHT_DECAY,
                schedule: defaults::rl::ACTOR_SCHEDULE,
                warmup_ratio: defaults::rl::WARMUP_RATIO,
                ..OptimConfig::default()
            },
            critic: OptimConfig {
                lr: defaults::rl::CRITIC_LR,
                weight_decay: defaults::rl::CRITIC_WEIGHT_DECAY,
                schedule: defaults::rl::CRITIC_SCHEDULE,
                warmup_ratio: defaults::rl::WARMUP_RATIO,
                ..OptimConfig::default()
            },
            lagrange: LagrangeConfig::default(),
            repo: RePoConfig::default(),
            advantage: AdvantageSettings::default(),
            safe_grpo: SafeGrpoConfig::default(),
            repo_group: RePoGroupConfig::default(),
            train: RlTrainSettings::default(),
            ptx: PtxSettings::default(),
            lora: LoraSettings::default(),
            oracle: OracleSettings::default(),
        }
    }
}

/// Keys that may change when a run is resumed (they do not change the trained weights).
pub const RL_RESUMABLE_KEYS: [&str; 6] = [
    "run.dir",
    "run.device",
    "run.progress",
    "train.checkpoint_every",
    "train.keep_last",
    "data.sources",
];

impl RlConfig {
    /// Reads `path`, applies `--set` overrides, fills defaults, validates ([`load::load`]).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        Self::from_toml_str(&text, path, overrides)
    }

    /// As [`RlConfig::load`] from text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &Path, overrides: &[String]) -> Result<Self> {
        let mut user: toml::Table = toml::from_str(text).map_err(|e| TrainError::ConfigParse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        for spec in overrides {
            load::apply_override(&mut user, spec)?;
        }
        if user
            .get("policy")
            .and_then(|p| p.as_table())
            .is_some_and(|p| p.contains_key("max_prompt_length"))
        {
            return Err(TrainError::config(
                "policy.max_prompt_length",
                "no longer a key: set policy.max_length, the most tokens of prompt + response \
                 (the old value plus rollout.max_new_tokens keeps the same prompts)",
            ));
        }
        if !user.contains_key("objective") {
            return Err(TrainError::config(
                "objective",
                "missing: set objective = \"ppo\", \"ppo_lag\", \"repo\", \"reward_shaping\", \
                 \"safe_grpo\" or \"repo_group\"",
            ));
        }
        // The user's keys are laid over the RL defaults (`[actor]` and `[critic]` differ).
        let defaults =
            toml::Table::try_from(RlConfig::default()).map_err(|e| TrainError::ConfigParse {
                path: origin.to_path_buf(),
                message: e.to_string(),
            })?;
        let config: RlConfig = load::parse(text, origin, overrides, Some(defaults))?;
        config.validate()?;
        Ok(config)
    }

    /// The sections the built-in objectives read, for [`crate::objectives::build_online`].
    pub fn sections(&self) -> OnlineSections<'_> {
        OnlineSections {
            lagrange: &self.lagrange,
            repo: &self.repo,
            safe_grpo: &self.safe_grpo,
            repo_group: &self.repo_group,
        }
    }

    /// Responses per step: `rollout.prompts_per_step × rollout.group_size`.
    pub fn responses_per_step(&self) -> usize {
        self.rollout.prompts_per_step * self.rollout.group_size
    }

    /// `[advantage]`, `rollout.group_size` and the KL placement, together.
    fn validate_advantage(&self) -> Result<()> {
        let bad = |key: &str, reason: String| Err(TrainError::config(key, reason));
        let a = &self.advantage;
        let k = self.rollout.group_size;
        if k == 0 {
            return bad("rollout.group_size", "must be >= 1".into());
        }
        if !(a.std_eps.is_finite() && a.std_eps >= 0.0) {
            return bad(
                "advantage.std_eps",
                format!("must be >= 0, got {}", a.std_eps),
            );
        }
        if a.estimator.needs_groups() && k < 2 {
            return bad(
                "rollout.group_size",
                format!(
                    "must be >= 2 for advantage.estimator = \"{}\": it compares the responses \
                     to one prompt",
                    a.estimator.as_str()
                ),
            );
        }
        let group_estimator = !a.estimator.uses_critics()
            && !matches!(
                a.estimator,
                Estimator::ReinforcePp | Estimator::ReinforcePpBaseline
            );
        if a.combine == Combine::Advantages && !group_estimator {
            return bad(
                "advantage.combine",
                format!(
                    "\"advantages\" standardises each component inside a group: use \
                     advantage.estimator = \"grpo\", \"dr_grpo\" or \"rloo\", not \"{}\"",
                    a.estimator.as_str()
                ),
            );
        }
        if !a.cost_baseline && !group_estimator {
            return bad(
                "advantage.cost_baseline",
                "false only applies to the group estimators grpo, dr_grpo and rloo".into(),
            );
        }
        if matches!(self.objective, OnlineKind::SafeGrpo | OnlineKind::RepoGroup)
            && !a.estimator.needs_groups()
        {
            return bad(
                "advantage.estimator",
                format!(
                    "objective `{}` works on groups of responses: use \"grpo\", \"dr_grpo\", \
                     \"rloo\" or \"reinforce_pp_baseline\" (with rollout.group_size >= 2), \
                     not \"{}\"",
                    self.objective.as_str(),
                    a.estimator.as_str()
                ),
            );
        }
        // KL in the reward would be divided by 1 + λ_x: prompts with a high multiplier would
        // be less regularised.
        if self.objective == OnlineKind::RepoGroup
            && self.repo_group.scale == GroupScale::OnePlusLambda
            && self.ppo.kl_placement == KlPlacement::Reward
            && self.ppo.kl_coeff > 0.0
        {
            return bad(
                "repo_group.scale",
                "\"one_plus_lambda\" with the KL in the reward would weaken the KL tie on \
                 prompts with a large multiplier: set ppo.kl_placement = \"loss\" or \
                 repo_group.scale = \"none\""
                    .into(),
            );
        }
        if !a.estimator.uses_critics() && self.ppo.critics != CriticMode::Separate {
            // Harmless, but a config that names critics for a critic-free run is confused.
            log::info!(
                "ppo.critics is ignored: advantage.estimator = \"{}\" learns no critics",
                a.estimator.as_str()
            );
        }
        Ok(())
    }

    /// Checks every value; errors name the dotted key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, reason: String| Err(TrainError::config(key, reason));
        self.policy.validate("policy")?;
        let needs_cost = !matches!(self.objective, OnlineKind::Ppo);
        for (name, source, needed) in [
            ("reward_model", &self.reward_model, true),
            ("cost_model", &self.cost_model, needs_cost),
        ] {
            match (&source.path, &source.preset) {
                (None, None) if needed => {
                    return bad(
                        &format!("{name}.path"),
                        format!("missing: `{}` needs a {name}", self.objective.as_str()),
                    );
                }
                (Some(_), Some(_)) => {
                    return bad(
                        &format!("{name}.preset"),
                        format!("set either {name}.path or {name}.preset"),
                    );
                }
                (None, Some(p)) if crate::tiny::preset_config(p).is_none() => {
                    return bad(
                        &format!("{name}.preset"),
                        format!(
                            "unknown preset `{p}` (known: {})",
                            crate::tiny::PRESETS.join(", ")
                        ),
                    );
                }
                _ => {}
            }
        }
        if self.policy.max_length <= self.rollout.max_new_tokens {
            return bad(
                "policy.max_length",
                format!(
                    "{} leaves no room for a prompt: it counts the prompt and the response, so it \
                     must exceed rollout.max_new_tokens ({})",
                    self.policy.max_length, self.rollout.max_new_tokens
                ),
            );
        }
        if self.data.sources.is_empty() {
            return bad("data.sources", "no prompt files given".into());
        }
        let r = &self.rollout;
        if r.prompts_per_step == 0 {
            return bad("rollout.prompts_per_step", "must be >= 1".into());
        }
        if r.max_new_tokens == 0 {
            return bad("rollout.max_new_tokens", "must be >= 1".into());
        }
        if !(r.temperature.is_finite() && r.temperature > 0.0) {
            return bad(
                "rollout.temperature",
                format!("must be > 0, got {}", r.temperature),
            );
        }
        // The learner's log-probs use the full tempered distribution: truncated sampling would
        // make every rollout off-policy without the ratios showing it.
        for (key, set, off) in [
            ("rollout.top_k", r.top_k as f64, 0.0),
            ("rollout.top_p", r.top_p, 1.0),
        ] {
            if set != off {
                return bad(
                    key,
                    format!(
                        "{set} is not supported in RL: the learner's log-probs would not be \
                         those of the truncated sampler (leave it {off}, or lower \
                         rollout.temperature)"
                    ),
                );
            }
        }
        if !(r.truncation_penalty.is_finite() && r.truncation_penalty >= 0.0) {
            return bad(
                "rollout.truncation_penalty",
                format!("must be >= 0, got {}", r.truncation_penalty),
            );
        }
        if let Some(c) = r.truncated_cost
            && !c.is_finite()
        {
            return bad("rollout.truncated_cost", format!("must be finite, got {c}"));
        }
        let p = &self.ppo;
        for (key, v) in [
            ("ppo.update_epochs", p.update_epochs),
            ("ppo.minibatch", p.minibatch),
            ("ppo.micro_batch", p.micro_batch),
        ] {
            if v == 0 {
                return bad(key, "must be >= 1".into());
            }
        }
        if !(p.kl_coeff.is_finite() && p.kl_coeff >= 0.0) {
            return bad("ppo.kl_coeff", format!("must be >= 0, got {}", p.kl_coeff));
        }
        if let Some(t) = p.kl_target {
            if !(t.is_finite() && t > 0.0) {
                return bad("ppo.kl_target", format!("must be > 0, got {t}"));
            }
            if p.kl_coeff == 0.0 {
                return bad(
                    "ppo.kl_coeff",
                    "must be > 0 with ppo.kl_target: the controller scales it".into(),
                );
            }
        }
        if !self.frozen_precision.runs_on(&self.run.device) {
            return bad(
                "frozen_precision",
                "bf16 has no WGSL type, so the `wgpu` device cannot compute in it: use `f16` \
                 there, or bf16 on `flex`, `vulkan` or `cuda`"
                    .into(),
            );
        }
        // The targets and alpha are checked even while `rank` is 0, so a typo is caught before
        // the adapters are switched on.
        if let Err(e) = self.lora.spec_of_rank(self.lora.rank.max(1)).validate() {
            let (key, reason) = match e {
                saferlhf_model::ModelError::Config { field, reason } => (field, reason),
                other => ("lora".to_string(), other.to_string()),
            };
            return bad(&key, reason);
        }
        let x = &self.ptx;
        if !x.sources.is_empty() {
            if !(x.coeff.is_finite() && x.coeff > 0.0) {
                return bad("ptx.coeff", format!("must be > 0, got {}", x.coeff));
            }
            if x.batch_size == 0 {
                return bad("ptx.batch_size", "must be >= 1".into());
            }
            for (i, s) in x.sources.iter().enumerate() {
                if !matches!(s.format, SourceFormat::Sft | SourceFormat::Hh) {
                    return bad(
                        &format!("ptx.sources.{i}.format"),
                        format!(
                            "{:?} has no supervised responses: use `sft` or `hh`",
                            s.format
                        ),
                    );
                }
            }
        }
        if !(p.kl_horizon.is_finite() && p.kl_horizon > 0.0) {
            return bad(
                "ppo.kl_horizon",
                format!("must be > 0, got {}", p.kl_horizon),
            );
        }
        for (key, v) in [
            ("ppo.clip_ratio", p.clip_ratio),
            ("ppo.clip_value", p.clip_value),
            ("ppo.clip_score", p.clip_score),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(key, format!("must be > 0, got {v}"));
            }
        }
        if !(p.gamma > 0.0 && p.gamma <= 1.0) {
            return bad("ppo.gamma", format!("must lie in (0, 1], got {}", p.gamma));
        }
        if !(0.0..=1.0).contains(&p.gae_lambda) {
            return bad(
                "ppo.gae_lambda",
                format!("must lie in [0, 1], got {}", p.gae_lambda),
            );
        }
        self.actor.validate("actor")?;
        self.critic.validate("critic")?;
        self.lagrange.validate("lagrange")?;
        self.repo.validate()?;
        self.safe_grpo.validate()?;
        self.repo_group.validate()?;
        self.validate_advantage()?;
        if self.train.steps == 0 {
            return bad("train.steps", "must be >= 1".into());
        }
        if self.train.keep_last == 0 {
            return bad("train.keep_last", "must be >= 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionConfig;

    const MINIMAL: &str = r#"
objective = "ppo_lag"
[policy]
preset = "char-tiny"
[reward_model]
preset = "char-tiny"
[cost_model]
preset = "char-tiny"
[[data.sources]]
path = "prompts.txt"
[actor]
lr = 1e-3
"#;

    fn load(text: &str, sets: &[&str]) -> Result<RlConfig> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        RlConfig::from_toml_str(text, Path::new("test.toml"), &sets)
    }

    #[test]
    fn partial_sections_keep_their_own_defaults() {
        let c = load(MINIMAL, &[]).unwrap();
        assert_eq!(c.objective, OnlineKind::PpoLag);
        assert_eq!(c.actor.lr, 1e-3);
        // The actor's other defaults, not the supervised ones.
        assert_eq!(c.actor.weight_decay, 0.01);
        assert_eq!(c.critic.schedule, crate::config::Schedule::Constant);
        assert_eq!(c.ppo.kl_coeff, 0.01);
        assert_eq!(c.lagrange.window, 128);
        // Round trip of the resolved config.
        let back = RlConfig::from_toml_str(&c.to_toml(), Path::new("x"), &[]).unwrap();
        assert_eq!(back, c);
        assert!(back.resume_conflicts(&c).is_empty());
    }

    #[test]
    fn policy_is_a_model_section_whose_max_length_holds_prompt_and_response() {
        let c = load(MINIMAL, &[]).unwrap();
        // The RL defaults of `[policy]`, not the supervised `[model]` ones.
        assert_eq!(c.policy.max_length, defaults::rl::MAX_LENGTH);
        assert_eq!(c.policy.max_length - c.rollout.max_new_tokens, 256);
        let c = load(
            MINIMAL,
            &["policy.max_length=20", "rollout.max_new_tokens=12"],
        )
        .unwrap();
        assert_eq!(c.policy.max_length, 20);
        for sets in [
            ["policy.max_length=12", "rollout.max_new_tokens=12"],
            ["policy.max_length=5", "rollout.max_new_tokens=12"],
        ] {
            let err = load(MINIMAL, &sets).unwrap_err().to_string();
            assert!(err.contains("policy.max_length"), "{err}");
        }
        // The key it replaced is named, with what to do.
        let err = load(MINIMAL, &["policy.max_prompt_length=48"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("policy.max_prompt_length") && err.contains("policy.max_length"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("ppo.clip_ratio=0", "ppo.clip_ratio"),
            ("ppo.kl_coeff=-1", "ppo.kl_coeff"),
            ("lagrange.window=0", "lagrange.window"),
            ("repo.margin=-0.5", "repo.margin"),
            ("rollout.top_p=1.5", "rollout.top_p"),
            ("critic.lr=0", "critic.lr"),
            ("train.steps=0", "train.steps"),
        ];
        for (set, key) in cases {
            let e = load(MINIMAL, &[set]).unwrap_err().to_string();
            assert!(e.contains(key), "{set}: {e}");
        }
        let e = load(&format!("{MINIMAL}\n[ppo]\nclip = 0.2\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("clip"), "{e}");
        let e = load(&MINIMAL.replace("objective = \"ppo_lag\"", ""), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("objective"), "{e}");
        let e = load(&MINIMAL.replace("ppo_lag", "trpo"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("trpo"), "{e}");
        let no_cost = MINIMAL.replace("[cost_model]\npreset = \"char-tiny\"\n", "");
        let e = load(&no_cost, &[]).unwrap_err().to_string();
        assert!(e.contains("cost_model.path"), "{e}");
        // Plain PPO needs no cost model.
        load(&no_cost.replace("ppo_lag", "ppo"), &[]).unwrap();
    }
}

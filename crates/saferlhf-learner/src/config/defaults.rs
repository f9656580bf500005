//! Every default value of every config (supervised stages, DPO/SACPO, online RL, the Lagrange
//! multiplier, RePO), in one place: the `Default` impls read these constants and nothing else
//! writes a default. The supervised values follow safe-rlhf's reward/cost-model recipe.

/// `run.dir`: where the run writes its config, metrics and checkpoints.
pub const RUN_DIR: &str = "runs/train";
/// `run.seed`: drives initialisation, the hold-out split and shuffling.
pub const SEED: u64 = 42;
/// `run.device`: `flex` (CPU), `wgpu`, `vulkan`, `cuda` or `cuda:N`.
pub const DEVICE: &str = "flex";
/// `run.progress`: draw a progress bar (only when stderr is a terminal).
pub const PROGRESS: bool = true;
/// `model.template`: chat template the prompt is rendered with.
pub const TEMPLATE: &str = "chatml";
/// `model.max_length`: most tokens of prompt + response + end token.
pub const MAX_LENGTH: usize = 512;
/// `data.eval_fraction`: share of the pairs (grouped by prompt) held out for evaluation.
pub const EVAL_FRACTION: f64 = 0.1;
/// `data.sources[].skip_invalid`: skip (and report) malformed rows instead of failing.
pub const SKIP_INVALID: bool = false;
/// `data.sources[].safe_threshold` (PyRIT): a response is safe iff harm < threshold.
pub const PYRIT_SAFE_THRESHOLD: f32 = 0.5;
/// `optim.lr`: peak learning rate.
pub const LR: f64 = 2e-5;
/// `optim.weight_decay`: decoupled (AdamW) weight decay on matrices (not on norms/biases).
pub const WEIGHT_DECAY: f64 = 0.1;
/// `optim.beta1`.
pub const BETA1: f64 = 0.9;
/// `optim.beta2` (0.95 as safe-rlhf).
pub const BETA2: f64 = 0.95;
/// `optim.eps`.
pub const EPS: f64 = 1e-8;
/// `optim.max_grad_norm`: clip the global gradient norm to this (0 = no clipping).
pub const MAX_GRAD_NORM: f64 = 1.0;
/// `optim.schedule`.
pub const SCHEDULE: super::Schedule = super::Schedule::Cosine;
/// `optim.warmup_ratio`: share of the optimizer steps with a linear warmup from 0.
pub const WARMUP_RATIO: f64 = 0.03;
/// `optim.min_lr_ratio`: the cosine schedule decays to `lr * min_lr_ratio`.
pub const MIN_LR_RATIO: f64 = 0.0;
/// `train.epochs`.
pub const EPOCHS: usize = 2;
/// `train.batch_size`: pairs (or SFT examples) per micro-batch.
pub const BATCH_SIZE: usize = 16;
/// `train.grad_accum`: micro-batches per optimizer step.
pub const GRAD_ACCUM: usize = 1;
/// `train.eval_every`: evaluate every this many optimizer steps (0 = only at the end).
pub const EVAL_EVERY: u64 = 100;
/// `train.eval_batch_size`.
pub const EVAL_BATCH_SIZE: usize = 16;
/// `train.checkpoint_every`: checkpoint every this many steps (0 = only at the end).
pub const CHECKPOINT_EVERY: u64 = 100;
/// `train.keep_last`: checkpoints kept (older ones are deleted).
pub const KEEP_LAST: usize = 2;
/// `loss.regularization`: η of the L2 term on scores (safe-rlhf).
pub const REGULARIZATION: f64 = 0.001;
/// `dpo.beta` and `sacpo.beta`: β of the DPO loss (safe-rlhf's DPO and SACPO's helpfulness
/// stage).
pub const DPO_BETA: f64 = 0.1;
/// `sacpo.lambda`: the safety stage uses β/λ (the paper's most conservative setting, β/λ =
/// 0.01, is λ = 10 with β = 0.1; λ = 1 reuses β).
pub const SACPO_LAMBDA: f64 = 1.0;
/// Defaults of the online RL config (`saferlhf rlhf`), safe-rlhf's `ppo-lag.sh` where it has one.
pub mod rl {
    use super::super::Schedule;

    /// `run.dir` of an RL run.
    pub const RUN_DIR: &str = "runs/rlhf";
    /// `policy.template`.
    pub const TEMPLATE: &str = "chatml";
    /// `policy.max_length`: most tokens of prompt (templated) + response; prompts keep their
    /// last `max_length - rollout.max_new_tokens` tokens (256 with the default 128 new tokens).
    pub const MAX_LENGTH: usize = 384;
    /// `rollout.prompts_per_step`.
    pub const PROMPTS_PER_STEP: usize = 16;
    /// `ppo.kl_horizon`: the adaptive KL controller's horizon in responses (lm-human-preferences
    /// and TRL: 10000).
    pub const KL_HORIZON: f64 = 10_000.0;
    /// `ptx.coeff`: safe-rlhf's scripts.
    pub const PTX_COEFF: f64 = 16.0;
    /// `lora.rank`: 0, full fine-tuning (no adapters).
    pub const LORA_RANK: usize = 0;
    /// `lora.alpha`: the update is scaled by alpha / rank (16 is PEFT's and OpenRLHF's common
    /// choice beside ranks 8-16).
    pub const LORA_ALPHA: f64 = 16.0;
    /// `lora.targets`: every linear projection of the decoder blocks ("all-linear", as QLoRA
    /// found necessary to match full fine-tuning).
    pub const LORA_TARGETS: [&str; 7] = saferlhf_model::lora::TARGETS;
    /// `ptx.batch_size`: examples per actor optimizer step.
    pub const PTX_BATCH_SIZE: usize = 8;
    /// `rollout.max_new_tokens`.
    pub const MAX_NEW_TOKENS: usize = 128;
    /// `rollout.temperature`.
    pub const TEMPERATURE: f64 = 1.0;
    /// `rollout.top_k` (0 = all tokens).
    pub const TOP_K: usize = 0;
    /// `rollout.top_p` (1 = off).
    pub const TOP_P: f64 = 1.0;
    /// `rollout.batch_size` (0 = all prompts of the step together).
    pub const ROLLOUT_BATCH_SIZE: usize = 0;
    /// `ppo.update_epochs`.
    pub const UPDATE_EPOCHS: usize = 1;
    /// `ppo.minibatch`.
    pub const MINIBATCH: usize = 16;
    /// `ppo.micro_batch`.
    pub const MICRO_BATCH: usize = 4;
    /// `ppo.kl_coeff`.
    pub const KL_COEFF: f64 = 0.01;
    /// `ppo.clip_ratio`.
    pub const CLIP_RATIO: f64 = 0.2;
    /// `ppo.clip_value`.
    pub const CLIP_VALUE: f64 = 5.0;
    /// `ppo.clip_score`.
    pub const CLIP_SCORE: f64 = 50.0;
    /// `ppo.gamma`.
    pub const GAMMA: f64 = 1.0;
    /// `ppo.gae_lambda`.
    pub const GAE_LAMBDA: f64 = 0.95;
    /// `train.steps`.
    pub const STEPS: u64 = 100;
    /// `train.checkpoint_every`.
    pub const CHECKPOINT_EVERY: u64 = 10;
    /// `train.keep_last`.
    pub const KEEP_LAST: usize = 2;
    /// `actor.lr`.
    pub const ACTOR_LR: f64 = 1e-5;
    /// `actor.weight_decay`.
    pub const ACTOR_WEIGHT_DECAY: f64 = 0.01;
    /// `actor.schedule`.
    pub const ACTOR_SCHEDULE: Schedule = Schedule::Cosine;
    /// `critic.lr`.
    pub const CRITIC_LR: f64 = 5e-6;
    /// `critic.weight_decay`.
    pub const CRITIC_WEIGHT_DECAY: f64 = 0.0;
    /// `critic.schedule`.
    pub const CRITIC_SCHEDULE: Schedule = Schedule::Constant;
    /// `actor.warmup_ratio` and `critic.warmup_ratio`.
    pub const WARMUP_RATIO: f64 = 0.03;
    /// `advantage.std_eps`: added to a group's standard deviation (TRL's 1e-4).
    pub const STD_EPS: f64 = 1e-4;
}

/// Defaults of `[safe_grpo]` (Constrained GRPO, arXiv 2602.05863; the co-author code's values,
/// with ε our choice for LLM safety).
pub mod safe_grpo {
    /// `safe_grpo.epsilon`: the allowed violation rate.
    pub const EPSILON: f64 = 0.05;
    /// `safe_grpo.temperature`: T of the softmax over the multiplier logits.
    pub const TEMPERATURE: f64 = 1.0;
    /// `safe_grpo.lr`: Adam's learning rate on the logits.
    pub const LR: f64 = 0.03;
    /// `safe_grpo.adam_eps`.
    pub const ADAM_EPS: f64 = 1e-5;
    /// `safe_grpo.init_logit`: every logit's start (equal logits: λ_R = λ_C = 1/2).
    pub const INIT_LOGIT: f64 = 0.02;
}

/// Defaults of `[repo_group]` (RePO in group form, our design).
pub mod repo_group {
    /// `repo_group.margin`: δ of {C + δ}⁺.
    pub const MARGIN: f64 = 0.0;
    /// `repo_group.slack`: τ of the rectified constraint E[{C + δ}⁺ | x] <= τ.
    pub const SLACK: f64 = 0.0;
    /// `repo_group.epsilon`: the allowed violation rate of the indicator constraint.
    pub const EPSILON: f64 = 0.05;
    /// `repo_group.lr`: η_x of each prompt's log-λ step.
    pub const LR: f64 = 0.1;
    /// `repo_group.max`: the cap λ_max on every per-prompt multiplier.
    pub const MAX: f64 = 5.0;
}

/// Defaults of `[lagrange]`, the multiplier of PPO-Lag and RePO (safe-rlhf's log-λ rule).
pub mod lagrange {
    /// `lagrange.init`: λ at the start.
    pub const INIT: f64 = 1.0;
    /// `lagrange.lr`: SGD learning rate of log λ.
    pub const LR: f64 = 0.1;
    /// `lagrange.max`: the cap on λ.
    pub const MAX: Option<f64> = Some(5.0);
    /// `lagrange.threshold`.
    pub const THRESHOLD: f64 = 0.0;
    /// `lagrange.delay`: optimizer steps before the first multiplier step.
    pub const DELAY: u64 = 0;
    /// `lagrange.window`: episodes averaged by the multiplier step.
    pub const WINDOW: usize = 128;
    /// `lagrange.fixed`.
    pub const FIXED: bool = false;
    /// `lagrange.kp` (PID).
    pub const KP: f64 = 0.05;
    /// `lagrange.ki` (PID).
    pub const KI: f64 = 0.01;
    /// `lagrange.kd` (PID).
    pub const KD: f64 = 0.0;
}

/// Defaults of `[repo]`.
pub mod repo {
    /// `repo.margin`: δ of the rectified penalty {C + δ}⁺.
    pub const MARGIN: f64 = 0.0;
}

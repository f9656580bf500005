//! The generic constrained-RLHF learner of saferlhf. It will hold everything that turns models and
//! data into trained models: experience batches, GAE, the PPO machinery (clipped surrogate and
//! value losses), Lagrange multipliers, the objective plugins (PPO, PPO-Lagrangian, RePO, SACPO,
//! DPO) and the SFT, reward-model and cost-model trainers, with checkpoints and resume. Today it
//! holds the losses of the supervised stages: Bradley-Terry reward loss, the cost loss with its
//! sign terms (C > 0 unsafe), SFT cross entropy on response tokens, the per-sequence
//! `masked_mean`, and their metrics.

pub mod losses;

pub use losses::{
    CostMetrics, DEFAULT_REGULARIZATION, RewardMetrics, SafetyLabels, SftMetrics, cost_loss,
    masked_mean, neg_log_sigmoid, reward_loss, sft_loss, token_nll,
};

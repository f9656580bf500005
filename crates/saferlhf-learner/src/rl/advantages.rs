//! Advantages: what the objective makes of a scored rollout. Its terminal scores become
//! KL-shaped reward and cost token streams ([`super::gae::kl_shaped_stream`]), GAE runs on each
//! against its critic, and the objective's per-sample weights combine them into the advantage
//! `A = w_R·A_R - w_C·A_C` of the clipped surrogate.
//!
//! The multiplier step ([`OnlineObjective::observe`]) is its own phase of the loop and comes
//! before this one.

use super::config::RlConfig;
use super::experience::Experience;
use super::gae::{TokenArray, combine, gae, kl_shaped_stream};
use crate::objectives::OnlineObjective;

/// The targets of one update.
#[derive(Debug, Clone)]
pub struct Advantages {
    /// Combined advantage of the actor.
    pub advantages: TokenArray,
    /// Reward critic targets.
    pub reward_returns: TokenArray,
    /// Cost critic targets.
    pub cost_returns: Option<TokenArray>,
}

/// The advantages and critic targets of `exp` under `objective`, with KL coefficient
/// `kl_coeff` (`ppo.kl_coeff`, or the adaptive controller's current β).
pub fn estimate(
    config: &RlConfig,
    objective: &dyn OnlineObjective,
    exp: &Experience,
    kl_coeff: f64,
) -> Advantages {
    let (terminal_rewards, terminal_costs) = objective.terminal_scores(&exp.rewards, &exp.costs);
    let p = &config.ppo;
    let start = exp.prompt_len - 1;
    let stream = |terminal: &[f32], sign: f32| {
        kl_shaped_stream(
            terminal,
            &exp.old_logprobs,
            &exp.ref_logprobs,
            &exp.mask,
            kl_coeff as f32,
            sign,
            p.clip_score as f32,
        )
    };
    let gae_of = |stream: &TokenArray, values: &TokenArray| {
        gae(
            stream,
            values,
            &exp.mask,
            start,
            p.gamma as f32,
            p.gae_lambda as f32,
        )
    };
    let reward_gae = gae_of(&stream(&terminal_rewards, -1.0), &exp.reward_values);
    let cost_gae = exp
        .cost_values
        .as_ref()
        .map(|values| gae_of(&stream(&terminal_costs, 1.0), values));
    let weights = objective.advantage_weights(&exp.rewards, &exp.costs);
    let advantages = combine(
        &reward_gae.advantages,
        cost_gae.as_ref().map(|g| &g.advantages),
        &weights.reward,
        &weights.cost,
    );
    Advantages {
        advantages,
        reward_returns: reward_gae.returns,
        cost_returns: cost_gae.map(|g| g.returns),
    }
}

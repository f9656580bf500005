//! Advantages: what the objective makes of a scored rollout. With `advantage.estimator = "gae"`
//! its terminal scores become KL-shaped reward and cost token streams
//! ([`super::gae::kl_shaped_stream`]), GAE runs on each against its critic, and the
//! objective's per-sample weights combine them into the advantage `A = w_R·A_R - w_C·A_C` of
//! the clipped surrogate. The critic-free estimators ([`super::group`]) use the same terminal
//! scores and weights, with group baselines in place of critics.
//!
//! The multiplier step ([`OnlineObjective::observe`]) is its own phase of the loop and comes
//! before this one.

use super::config::{Estimator, KlPlacement, RlConfig};
use super::experience::Experience;
use super::gae::{TokenArray, combine, gae, kl_shaped_stream};
use super::group::{self, GroupInputs};
use crate::objectives::OnlineObjective;
use saferlhf_rollout::sequence_kl;

/// The targets of one update.
#[derive(Debug, Clone)]
pub struct Advantages {
    /// Combined advantage of the actor.
    pub advantages: TokenArray,
    /// Reward critic targets (`None` for the critic-free estimators).
    pub reward_returns: Option<TokenArray>,
    /// Cost critic targets.
    pub cost_returns: Option<TokenArray>,
}

/// The advantages and critic targets of `exp` under `objective`, with KL coefficient
/// `kl_coeff` (`ppo.kl_coeff`, or the adaptive controller's current β). With
/// `ppo.kl_placement = "loss"` no KL enters the rewards (the update adds it to the loss).
pub fn estimate(
    config: &RlConfig,
    objective: &dyn OnlineObjective,
    exp: &Experience,
    kl_coeff: f64,
) -> Advantages {
    let in_reward = match config.ppo.kl_placement {
        KlPlacement::Reward => kl_coeff,
        KlPlacement::Loss => 0.0,
    };
    if config.advantage.estimator == Estimator::Gae {
        gae_advantages(config, objective, exp, in_reward)
    } else {
        group_advantages(config, objective, exp, in_reward)
    }
}

fn gae_advantages(
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
        reward_returns: Some(reward_gae.returns),
        cost_returns: cost_gae.map(|g| g.returns),
    }
}

/// The critic-free estimators of [`group`]: per-response advantages broadcast to the tokens
/// (GRPO, Dr. GRPO, RLOO) or whitened token returns (REINFORCE++).
fn group_advantages(
    config: &RlConfig,
    objective: &dyn OnlineObjective,
    exp: &Experience,
    kl_coeff: f64,
) -> Advantages {
    let (rewards, costs) = objective.terminal_scores(&exp.rewards, &exp.costs);
    let costs = if objective.cost_stream() {
        costs
    } else {
        Vec::new()
    };
    let weights = objective.advantage_weights(&exp.rewards, &exp.costs);
    let width = exp.seq - 1;
    let (old, reference) = (&exp.old_logprobs.values, &exp.ref_logprobs.values);
    // The KL in the reward: summed per response (sampling policy against the reference).
    let kl_seq: Vec<f32> = if kl_coeff > 0.0 {
        sequence_kl(&exp.mask, width, old, reference)
            .into_iter()
            .map(|k| k as f32)
            .collect()
    } else {
        Vec::new()
    };
    let inputs = GroupInputs {
        rewards: &rewards,
        costs: &costs,
        weights: &weights,
        kl: (kl_coeff > 0.0).then_some(kl_seq.as_slice()),
        beta: kl_coeff,
    };
    let k = config.rollout.group_size;
    let s = &config.advantage;
    let advantages = match s.estimator {
        Estimator::ReinforcePp | Estimator::ReinforcePpBaseline => {
            let scalar = group::reinforce_scalar(s, k, &inputs);
            // REINFORCE++ needs the per-token k1 of the sampling policy against the reference.
            let kl_tokens = (kl_coeff > 0.0).then(|| {
                let values = old.iter().zip(reference).map(|(o, r)| o - r).collect();
                TokenArray::new(values, exp.batch, width)
            });
            let kl = kl_tokens.as_ref().map(|t| (t, kl_coeff));
            group::reinforce_pp(&scalar, kl, &exp.mask, width)
        }
        _ => group::broadcast(&group::sequence_advantages(s, k, &inputs), &exp.mask, width),
    };
    Advantages {
        advantages,
        reward_returns: None,
        cost_returns: None,
    }
}

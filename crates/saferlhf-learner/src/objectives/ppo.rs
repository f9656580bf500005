//! Plain PPO (reward only): the unconstrained baseline.
//!
//! The reward stream is `r_t = -β_KL·k_t + R·[t = end]`; there is no cost model, cost critic or
//! cost stream, and the actor's advantage is the reward advantage: `A = A_R`.

use super::{AdvantageWeights, OnlineObjective};

/// Plain PPO.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ppo;

// ANCHOR: ppo
impl OnlineObjective for Ppo {
    fn name(&self) -> &'static str {
        "ppo"
    }

    fn uses_cost(&self) -> bool {
        false
    }

    fn advantage_weights(&self, rewards: &[f32], _costs: &[f32]) -> AdvantageWeights {
        AdvantageWeights::uniform(rewards.len(), 1.0, 0.0)
    }
}
// ANCHOR_END: ppo

//! PPO with reward shaping (the Safe RLHF paper's baseline): plain PPO on the shaped terminal reward
//! `R' = R - λ·C` with a fixed λ (`lagrange.init`). There is no cost critic or cost stream:
//! the cost only enters through the reward.

use serde_json::{Map, Value, json};

use super::{AdvantageWeights, OnlineObjective};

/// PPO on `R - λC` with a fixed λ.
#[derive(Debug, Clone, Copy)]
pub struct RewardShaping {
    lambda: f64,
}

impl RewardShaping {
    /// With the fixed multiplier `lambda`.
    pub fn new(lambda: f64) -> Self {
        RewardShaping { lambda }
    }
}

impl OnlineObjective for RewardShaping {
    fn name(&self) -> &'static str {
        "reward_shaping"
    }

    /// The cost model scores the rollouts (the shaped reward reads the costs).
    fn uses_cost(&self) -> bool {
        true
    }

    /// No cost critic and no cost stream: the cost only enters through the reward.
    fn cost_stream(&self) -> bool {
        false
    }

    // ANCHOR: terminal_scores
    fn terminal_scores(&self, rewards: &[f32], costs: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let lambda = self.lambda as f32;
        let shaped = rewards
            .iter()
            .zip(costs)
            .map(|(&r, &c)| r - lambda * c)
            .collect();
        (shaped, costs.to_vec())
    }
    // ANCHOR_END: terminal_scores

    fn advantage_weights(&self, rewards: &[f32], _costs: &[f32]) -> AdvantageWeights {
        AdvantageWeights::uniform(rewards.len(), 1.0, 0.0)
    }

    fn lambda(&self) -> Option<f64> {
        Some(self.lambda)
    }

    fn metrics(&self, rewards: &[f32], costs: &[f32]) -> Map<String, Value> {
        let (shaped, _) = self.terminal_scores(rewards, costs);
        let mean = shaped.iter().map(|&v| v as f64).sum::<f64>() / shaped.len().max(1) as f64;
        let mut m = Map::new();
        m.insert("shaped_reward_mean".into(), json!(mean));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_the_terminal_reward_with_a_fixed_lambda() {
        let s = RewardShaping::new(2.0);
        let (r, c) = s.terminal_scores(&[1.0, 0.5], &[0.25, -1.0]);
        assert_eq!(r, vec![0.5, 2.5]);
        assert_eq!(c, vec![0.25, -1.0]);
        assert_eq!(s.advantage_weights(&r, &c).cost, vec![0.0, 0.0]);
    }
}

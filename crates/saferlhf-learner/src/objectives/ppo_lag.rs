//! PPO-Lagrangian as in Safe RLHF (Dai et al., ICLR 2024): the expected-cost
//! constraint `E[C] <= threshold` that RePO is measured against.
//!
//! * Multiplier: before forming advantages, the rollout's costs join a window (default 128
//!   samples) and λ takes one step on `J = mean(window) - threshold` ([`super::multiplier`]).
//!   safe-rlhf steps λ on every micro-batch; here it steps once per rollout, which is the
//!   paper's per-iteration dual step.
//! * Actor advantage, every sample: `A = (A_R - λ·A_C) / (1 + λ)`. With the cost stream
//!   carrying `+β_KL·k_t`, the KL parts combine to `-β_KL·k_t` whatever λ is.

use super::multiplier::{LagrangeConfig, Multiplier};
use super::{AdvantageWeights, OnlineObjective};

/// PPO-Lagrangian.
#[derive(Debug, Clone)]
pub struct PpoLag {
    multiplier: Multiplier,
}

impl PpoLag {
    /// With a fresh multiplier from `lagrange`.
    pub fn new(lagrange: &LagrangeConfig) -> Self {
        PpoLag {
            multiplier: lagrange.build(),
        }
    }
}

impl OnlineObjective for PpoLag {
    fn name(&self) -> &'static str {
        "ppo_lag"
    }

    fn uses_cost(&self) -> bool {
        true
    }

    // ANCHOR: observe
    fn observe(&mut self, step: u64, _rewards: &[f32], costs: &[f32]) {
        let signal: Vec<f64> = costs.iter().map(|&c| c as f64).collect();
        self.multiplier.observe(step, &signal);
    }
    // ANCHOR_END: observe

    // ANCHOR: advantage_weights
    fn advantage_weights(&self, rewards: &[f32], _costs: &[f32]) -> AdvantageWeights {
        let lambda = self.multiplier.lambda() as f32;
        AdvantageWeights::uniform(rewards.len(), 1.0 / (1.0 + lambda), lambda / (1.0 + lambda))
    }
    // ANCHOR_END: advantage_weights

    fn multiplier(&self) -> Option<&Multiplier> {
        Some(&self.multiplier)
    }

    fn multiplier_mut(&mut self) -> Option<&mut Multiplier> {
        Some(&mut self.multiplier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_advantage_weights_are_one_and_lambda_over_one_plus_lambda() {
        let config = LagrangeConfig {
            init: 3.0,
            ..LagrangeConfig::default()
        };
        let p = PpoLag::new(&config);
        let w = p.advantage_weights(&[1.0, 2.0], &[-1.0, 1.0]);
        assert_eq!(w.reward, vec![0.25, 0.25]);
        assert_eq!(w.cost, vec![0.75, 0.75]);
        // A_R = 2, A_C = 1: (2 - 3·1) / 4 = -0.25.
        assert!((w.reward[0] * 2.0 - w.cost[0] * 1.0 + 0.25).abs() < 1e-7);
    }

    #[test]
    fn lambda_moves_with_mean_cost_against_the_threshold() {
        let mut p = PpoLag::new(&LagrangeConfig::default());
        p.observe(0, &[0.0; 4], &[0.5, 0.5, 0.5, 0.5]);
        let up = p.lambda().unwrap();
        assert!(up > 1.0);
        let mut q = PpoLag::new(&LagrangeConfig::default());
        q.observe(0, &[0.0; 4], &[-0.5; 4]);
        assert!(q.lambda().unwrap() < 1.0);
        // State round trip.
        let mut r = PpoLag::new(&LagrangeConfig::default());
        r.load_state(&p.state()).unwrap();
        assert_eq!(r.lambda(), p.lambda());
    }
}

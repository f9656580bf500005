//! RePO, Rectified Policy Optimization (Peng et al., arXiv 2410.19933).
//!
//! PPO-Lag constrains the *expected* cost, `E[C] <= 0`: very safe answers on some prompts can pay
//! for unsafe answers on others ("safety compensation"). RePO constrains every sample,
//! `C(x, y) <= 0`, written as the single rectified constraint `E[{C(x, y)}⁺] <= 0` with
//! `{z}⁺ = max(z, 0)`. Its gradient `E[1{C > 0}·C·∇log π]` only comes from unsafe samples: a
//! safe sample pushes the policy toward reward alone.
//!
//! RePO's code could not be inspected; the variants below are the readings of the paper that
//! third-party notes propose (the book's RePO chapter), as config options (`[repo]`), with its recommended default first.
//!
//! * `rectify = "mask_advantage"` (default): the cost advantage only enters for unsafe samples,
//!   `u_i = 1[C_i + δ > 0]`, `A = (A_R - λ·u·A_C) / (1 + λ·u)` (with `norm =
//!   "one_plus_lambda_masked"`, the default). For a batch where every sample is unsafe this is
//!   PPO-Lag's advantage; for an all-safe batch it is `A_R` and the cost part has no gradient.
//! * `rectify = "rectified_terminal"`: the cost stream's terminal value is `{C + δ}⁺` (safe
//!   samples get 0), and `-λ·A_C` applies to every sample: the REINFORCE-style estimator of
//!   `∇E[{C}⁺]` with the cost critic as baseline.
//! * `norm`: `one_plus_lambda_masked` divides by `1 + λ·u` (safe samples keep unscaled reward
//!   advantages), `one_plus_lambda` divides every sample by `1 + λ` (as PPO-Lag), `none` does not
//!   divide.
//! * Multiplier: λ steps on the rectified violation `J = mean{C + δ}⁺` against `lagrange.threshold`
//!   (τ, default 0): with τ = 0 the signal is never negative, so λ never falls; it grows while
//!   violations exist and stops once they vanish, up to `lagrange.max`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::multiplier::{LagrangeConfig, Multiplier};
use super::{AdvantageWeights, OnlineObjective};
use crate::error::{Result, TrainError};

/// How the per-sample constraint enters the actor's advantage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RectifyMode {
    /// Cost advantage only on unsafe samples (default).
    MaskAdvantage,
    /// Terminal cost `{C + δ}⁺`, cost advantage on every sample.
    RectifiedTerminal,
}

/// The normalisation of the combined advantage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvantageNorm {
    /// Divide by `1 + λ·u_i` (default): safe samples keep unscaled reward advantages.
    OnePlusLambdaMasked,
    /// Divide every sample by `1 + λ`, as PPO-Lag.
    OnePlusLambda,
    /// No division.
    None,
}

/// `[repo]`: RePO's options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RePoConfig {
    /// See [`RectifyMode`].
    pub rectify: RectifyMode,
    /// See [`AdvantageNorm`].
    pub norm: AdvantageNorm,
    /// Safety margin δ >= 0: a sample counts as unsafe when `C + δ > 0`.
    pub margin: f64,
}

impl Default for RePoConfig {
    fn default() -> Self {
        RePoConfig {
            rectify: RectifyMode::MaskAdvantage,
            norm: AdvantageNorm::OnePlusLambdaMasked,
            margin: crate::config::defaults::repo::MARGIN,
        }
    }
}

impl RePoConfig {
    /// Checks the values; errors name `repo.key`.
    pub fn validate(&self) -> Result<()> {
        if !(self.margin >= 0.0 && self.margin.is_finite()) {
            return Err(TrainError::config(
                "repo.margin",
                format!("must be >= 0, got {}", self.margin),
            ));
        }
        Ok(())
    }
}

/// RePO.
#[derive(Debug, Clone)]
pub struct RePo {
    config: RePoConfig,
    multiplier: Multiplier,
}

impl RePo {
    /// With a fresh multiplier from `lagrange`.
    pub fn new(lagrange: &LagrangeConfig, config: &RePoConfig) -> Self {
        RePo {
            config: config.clone(),
            multiplier: lagrange.build(),
        }
    }

    // ANCHOR: violations
    /// `{C + δ}⁺` of each sample.
    pub fn violations(&self, costs: &[f32]) -> Vec<f32> {
        let margin = self.config.margin as f32;
        costs.iter().map(|&c| (c + margin).max(0.0)).collect()
    }
    // ANCHOR_END: violations

    /// `u_i = 1[C_i + δ > 0]`.
    pub fn unsafe_mask(&self, costs: &[f32]) -> Vec<bool> {
        let margin = self.config.margin as f32;
        costs.iter().map(|&c| c + margin > 0.0).collect()
    }
}

impl OnlineObjective for RePo {
    fn name(&self) -> &'static str {
        "repo"
    }

    fn uses_cost(&self) -> bool {
        true
    }

    // ANCHOR: observe
    fn observe(&mut self, step: u64, _rewards: &[f32], costs: &[f32]) {
        let signal: Vec<f64> = self.violations(costs).iter().map(|&v| v as f64).collect();
        self.multiplier.observe(step, &signal);
    }
    // ANCHOR_END: observe

    // ANCHOR: terminal_scores
    fn terminal_scores(&self, rewards: &[f32], costs: &[f32]) -> (Vec<f32>, Vec<f32>) {
        match self.config.rectify {
            RectifyMode::MaskAdvantage => (rewards.to_vec(), costs.to_vec()),
            RectifyMode::RectifiedTerminal => (rewards.to_vec(), self.violations(costs)),
        }
    }
    // ANCHOR_END: terminal_scores

    // ANCHOR: advantage_weights
    fn advantage_weights(&self, _rewards: &[f32], costs: &[f32]) -> AdvantageWeights {
        let lambda = self.multiplier.lambda() as f32;
        let unsafe_ = self.unsafe_mask(costs);
        let mut reward = Vec::with_capacity(costs.len());
        let mut cost = Vec::with_capacity(costs.len());
        for &u in &unsafe_ {
            // λ·u: the cost advantage's raw weight.
            let lu = match self.config.rectify {
                RectifyMode::MaskAdvantage if !u => 0.0,
                _ => lambda,
            };
            let denominator = match self.config.norm {
                AdvantageNorm::OnePlusLambdaMasked => 1.0 + lu,
                AdvantageNorm::OnePlusLambda => 1.0 + lambda,
                AdvantageNorm::None => 1.0,
            };
            reward.push(1.0 / denominator);
            cost.push(lu / denominator);
        }
        AdvantageWeights { reward, cost }
    }
    // ANCHOR_END: advantage_weights

    fn multiplier(&self) -> Option<&Multiplier> {
        Some(&self.multiplier)
    }

    fn metrics(&self, _rewards: &[f32], costs: &[f32]) -> Map<String, Value> {
        let v = self.violations(costs);
        let n = v.len().max(1) as f64;
        let mut m = Map::new();
        m.insert(
            "rectified_violation".into(),
            json!(v.iter().map(|&x| x as f64).sum::<f64>() / n),
        );
        m.insert(
            "unsafe_fraction".into(),
            json!(self.unsafe_mask(costs).iter().filter(|&&u| u).count() as f64 / n),
        );
        m.insert("lambda_signal".into(), json!(self.multiplier.signal()));
        m
    }

    fn multiplier_mut(&mut self) -> Option<&mut Multiplier> {
        Some(&mut self.multiplier)
    }
}

#[cfg(test)]
mod tests {
    use super::super::PpoLag;
    use super::*;

    fn lagrange(init: f64) -> LagrangeConfig {
        LagrangeConfig {
            init,
            ..LagrangeConfig::default()
        }
    }

    #[test]
    fn safe_samples_get_no_cost_weight_unsafe_ones_get_ppo_lag_weights() {
        let repo = RePo::new(&lagrange(2.0), &RePoConfig::default());
        let lag = PpoLag::new(&lagrange(2.0));
        let costs = [-1.0, 0.0, 0.5, 3.0];
        let w = repo.advantage_weights(&[0.0; 4], &costs);
        let l = lag.advantage_weights(&[0.0; 4], &costs);
        // C <= 0 is safe: weights (1, 0).
        assert_eq!((w.reward[0], w.cost[0]), (1.0, 0.0));
        assert_eq!((w.reward[1], w.cost[1]), (1.0, 0.0));
        // Unsafe: exactly PPO-Lag's (1/3, 2/3).
        for i in 2..4 {
            assert_eq!((w.reward[i], w.cost[i]), (l.reward[i], l.cost[i]));
        }
    }

    #[test]
    fn margin_and_variants() {
        let cfg = RePoConfig {
            margin: 0.5,
            ..RePoConfig::default()
        };
        let repo = RePo::new(&lagrange(1.0), &cfg);
        assert_eq!(repo.unsafe_mask(&[-0.6, -0.4]), vec![false, true]);
        let v = repo.violations(&[-0.6, -0.4, 1.0]);
        assert_eq!(v[0], 0.0);
        assert!((v[1] - 0.1).abs() < 1e-6 && v[2] == 1.5, "{v:?}");

        let terminal = RePo::new(
            &lagrange(1.0),
            &RePoConfig {
                rectify: RectifyMode::RectifiedTerminal,
                norm: AdvantageNorm::OnePlusLambda,
                margin: 0.0,
            },
        );
        let (_, c) = terminal.terminal_scores(&[0.0, 0.0], &[-2.0, 1.5]);
        assert_eq!(c, vec![0.0, 1.5]);
        let w = terminal.advantage_weights(&[0.0; 2], &[-2.0, 1.5]);
        assert_eq!(w.reward, vec![0.5, 0.5]);
        assert_eq!(w.cost, vec![0.5, 0.5]);

        let none = RePo::new(
            &lagrange(3.0),
            &RePoConfig {
                norm: AdvantageNorm::None,
                ..RePoConfig::default()
            },
        );
        let w = none.advantage_weights(&[0.0; 2], &[-1.0, 1.0]);
        assert_eq!(w.reward, vec![1.0, 1.0]);
        assert_eq!(w.cost, vec![0.0, 3.0]);
    }

    #[test]
    fn lambda_never_falls_with_tau_zero() {
        let mut repo = RePo::new(&lagrange(1.0), &RePoConfig::default());
        let mut last = repo.lambda().unwrap();
        for step in 0..20 {
            let costs = if step < 10 { [1.0, -1.0] } else { [-1.0, -2.0] };
            repo.observe(step, &[0.0; 2], &costs);
            let l = repo.lambda().unwrap();
            assert!(l >= last, "step {step}: {l} < {last}");
            last = l;
        }
        assert!(last > 1.0);
        let m = repo.metrics(&[0.0; 2], &[2.0, -1.0]);
        assert_eq!(m["rectified_violation"], json!(1.0));
        assert_eq!(m["unsafe_fraction"], json!(0.5));
    }
}

//! Constrained GRPO (Girgis et al., arXiv 2602.05863) for LLM safety: a violation-rate
//! constraint `P(C > 0) <= ε` on group rollouts, without critics.
//!
//! The cost a sample carries is the indicator `c = 1[C > 0]` of the cost model's verdict. The
//! group estimator (`[advantage]`, normally `estimator = "grpo"` with
//! `combine = "advantages"`, the paper's scalarised advantages) combines the reward and this
//! indicator with the multipliers as weights: `A = λ_R·Z(R) − λ_C·Z(c)`.
//!
//! Two multiplier rules (`safe_grpo.multiplier`):
//!
//! - `softmax` (the co-author code): `[λ_R, λ_C] = softmax(ℓ / T)`, so they sum to 1 and the
//!   reward's weight falls as the constraint's grows; the dual loss `−λ_C·(v − ε)`, with `v`
//!   the rollout's violation rate, is minimised by Adam on the logits, one step per rollout.
//!   That code steps the multipliers after a step's advantages; this learner steps every
//!   multiplier before them (as safe-rlhf does), one rollout earlier.
//! - `log_lambda` (ours, `[lagrange]`): safe-rlhf's log-λ step on the violation indicators with
//!   threshold ε, and weights `(1, λ)/(1 + λ)`; for one constraint this is the softmax form with
//!   `λ = λ_C/λ_R` and another step rule.

use saferlhf_model::Cost;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::multiplier::{LagrangeConfig, Multiplier};
use super::{AdvantageWeights, OnlineObjective};
use crate::config::defaults::safe_grpo as d;
use crate::error::{Result, TrainError};

/// `safe_grpo.multiplier`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SafeGrpoMultiplier {
    /// Softmax over reward and constraint logits, Adam on the logits (the co-author code).
    #[default]
    Softmax,
    /// The `[lagrange]` log-λ multiplier with threshold ε.
    LogLambda,
}

/// `[safe_grpo]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafeGrpoConfig {
    /// ε: the violation rate allowed (in [0, 1)).
    pub epsilon: f64,
    /// `softmax` or `log_lambda`.
    pub multiplier: SafeGrpoMultiplier,
    /// T of the softmax (> 0).
    pub temperature: f64,
    /// Adam's learning rate on the logits (> 0).
    pub lr: f64,
    /// Adam's ε (> 0).
    pub adam_eps: f64,
    /// Every logit's start.
    pub init_logit: f64,
}

impl Default for SafeGrpoConfig {
    fn default() -> Self {
        SafeGrpoConfig {
            epsilon: d::EPSILON,
            multiplier: SafeGrpoMultiplier::Softmax,
            temperature: d::TEMPERATURE,
            lr: d::LR,
            adam_eps: d::ADAM_EPS,
            init_logit: d::INIT_LOGIT,
        }
    }
}

impl SafeGrpoConfig {
    /// Range checks, naming the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |k: &str, why: String| Err(TrainError::config(format!("safe_grpo.{k}"), why));
        if !(0.0..1.0).contains(&self.epsilon) {
            return bad(
                "epsilon",
                format!("must lie in [0, 1), got {}", self.epsilon),
            );
        }
        for (k, v) in [
            ("temperature", self.temperature),
            ("lr", self.lr),
            ("adam_eps", self.adam_eps),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(k, format!("must be > 0, got {v}"));
            }
        }
        if !self.init_logit.is_finite() {
            return bad(
                "init_logit",
                format!("must be finite, got {}", self.init_logit),
            );
        }
        Ok(())
    }
}

/// The softmax multipliers with their Adam state: index 0 is the reward, 1 the constraint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftmaxDual {
    /// The logits ℓ.
    pub logits: [f64; 2],
    m: [f64; 2],
    v: [f64; 2],
    /// Adam steps taken.
    pub steps: u64,
    /// The last violation rate seen.
    pub signal: f64,
}

impl SoftmaxDual {
    /// Equal logits.
    pub fn new(init_logit: f64) -> Self {
        SoftmaxDual {
            logits: [init_logit; 2],
            m: [0.0; 2],
            v: [0.0; 2],
            steps: 0,
            signal: 0.0,
        }
    }

    /// `[λ_R, λ_C] = softmax(ℓ / T)`.
    pub fn weights(&self, temperature: f64) -> [f64; 2] {
        let a = self.logits.map(|l| l / temperature);
        let m = a[0].max(a[1]);
        let e = a.map(|x| (x - m).exp());
        let z = e[0] + e[1];
        [e[0] / z, e[1] / z]
    }

    /// The gradient of the dual loss `−λ_C·(v − ε)` with respect to the logits.
    pub fn gradient(&self, temperature: f64, excess: f64) -> [f64; 2] {
        let [lr_, lc] = self.weights(temperature);
        // ∂λ_C/∂ℓ_C = λ_C(1 − λ_C)/T, ∂λ_C/∂ℓ_R = −λ_R·λ_C/T.
        [
            lr_ * lc * excess / temperature,
            -lc * (1.0 - lc) * excess / temperature,
        ]
    }

    /// One Adam step (β = (0.9, 0.999), bias-corrected, ε outside the square root, as PyTorch).
    pub fn adam_step(&mut self, config: &SafeGrpoConfig, violation_rate: f64) {
        let g = self.gradient(config.temperature, violation_rate - config.epsilon);
        self.steps += 1;
        let t = self.steps as i32;
        for (i, g) in g.into_iter().enumerate() {
            self.m[i] = 0.9 * self.m[i] + 0.1 * g;
            self.v[i] = 0.999 * self.v[i] + 0.001 * g * g;
            let m_hat = self.m[i] / (1.0 - 0.9f64.powi(t));
            let v_hat = self.v[i] / (1.0 - 0.999f64.powi(t));
            self.logits[i] -= config.lr * m_hat / (v_hat.sqrt() + config.adam_eps);
        }
        self.signal = violation_rate;
    }
}

/// Constrained GRPO's objective (see the module docs).
#[derive(Debug, Clone)]
pub struct SafeGrpo {
    config: SafeGrpoConfig,
    dual: SoftmaxDual,
    multiplier: Option<Multiplier>,
}

impl SafeGrpo {
    /// From `[safe_grpo]`; `[lagrange]` serves the `log_lambda` rule, its threshold replaced by ε.
    pub fn new(config: &SafeGrpoConfig, lagrange: &LagrangeConfig) -> Self {
        let multiplier = (config.multiplier == SafeGrpoMultiplier::LogLambda).then(|| {
            LagrangeConfig {
                threshold: config.epsilon,
                ..lagrange.clone()
            }
            .build()
        });
        SafeGrpo {
            config: config.clone(),
            dual: SoftmaxDual::new(config.init_logit),
            multiplier,
        }
    }

    /// `1[C > 0]` per sample.
    pub fn indicators(costs: &[f32]) -> Vec<f32> {
        costs
            .iter()
            .map(|&c| if Cost::is_unsafe(c) { 1.0 } else { 0.0 })
            .collect()
    }

    /// `(λ_R, λ_C)` as the advantage weights.
    pub fn weights(&self) -> (f64, f64) {
        match &self.multiplier {
            Some(m) => {
                let l = m.lambda();
                (1.0 / (1.0 + l), l / (1.0 + l))
            }
            None => {
                let [r, c] = self.dual.weights(self.config.temperature);
                (r, c)
            }
        }
    }
}

impl OnlineObjective for SafeGrpo {
    fn name(&self) -> &'static str {
        "safe_grpo"
    }

    fn uses_cost(&self) -> bool {
        true
    }

    fn observe(&mut self, step: u64, _rewards: &[f32], costs: &[f32]) {
        let c = Self::indicators(costs);
        match &mut self.multiplier {
            Some(m) => {
                let signal: Vec<f64> = c.iter().map(|&x| x as f64).collect();
                m.observe(step, &signal);
            }
            None => {
                let rate = c.iter().map(|&x| x as f64).sum::<f64>() / c.len().max(1) as f64;
                self.dual.adam_step(&self.config, rate);
            }
        }
    }

    fn terminal_scores(&self, rewards: &[f32], costs: &[f32]) -> (Vec<f32>, Vec<f32>) {
        (rewards.to_vec(), Self::indicators(costs))
    }

    fn advantage_weights(&self, rewards: &[f32], _costs: &[f32]) -> AdvantageWeights {
        let (r, c) = self.weights();
        AdvantageWeights::uniform(rewards.len(), r as f32, c as f32)
    }

    fn multiplier(&self) -> Option<&Multiplier> {
        self.multiplier.as_ref()
    }

    fn multiplier_mut(&mut self) -> Option<&mut Multiplier> {
        self.multiplier.as_mut()
    }

    fn lambda(&self) -> Option<f64> {
        Some(match &self.multiplier {
            Some(m) => m.lambda(),
            // The exchange rate λ_C / λ_R, comparable with the log-λ rule's λ.
            None => {
                let (r, c) = self.weights();
                c / r
            }
        })
    }

    fn metrics(&self, _rewards: &[f32], costs: &[f32]) -> Map<String, Value> {
        let (r, c) = self.weights();
        let mut m = Map::new();
        m.insert("lambda_reward".into(), json!(r));
        m.insert("lambda_cost".into(), json!(c));
        let v = Self::indicators(costs);
        m.insert(
            "violation_rate".into(),
            json!(v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64),
        );
        m.insert("epsilon".into(), json!(self.config.epsilon));
        match &self.multiplier {
            Some(mult) => {
                m.insert("lambda_signal".into(), json!(mult.signal()));
            }
            None => {
                m.insert("logit_reward".into(), json!(self.dual.logits[0]));
                m.insert("logit_cost".into(), json!(self.dual.logits[1]));
            }
        }
        m
    }

    fn state(&self) -> Value {
        match &self.multiplier {
            Some(m) => json!({ "multiplier": m }),
            None => json!({ "softmax": self.dual }),
        }
    }

    fn load_state(&mut self, state: &Value) -> Result<()> {
        match &mut self.multiplier {
            Some(m) => *m = super::load_multiplier(state, "safe_grpo")?,
            None => {
                let s = state.get("softmax").ok_or_else(|| {
                    TrainError::config("objective", "safe_grpo: no softmax multipliers in state")
                })?;
                self.dual = serde_json::from_value(s.clone()).map_err(|e| {
                    TrainError::config("objective", format!("safe_grpo: bad multipliers: {e}"))
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_logits_give_equal_weights() {
        let d = SoftmaxDual::new(0.02);
        assert_eq!(d.weights(1.0), [0.5, 0.5]);
    }

    #[test]
    fn one_sgd_step_and_one_adam_step_by_hand() {
        // Plain SGD, lr 1, T 1, from ℓ = [0, 0], v = 0.3, ε = 0.1.
        let mut d = SoftmaxDual::new(0.0);
        let g = d.gradient(1.0, 0.3 - 0.1);
        for (logit, g) in d.logits.iter_mut().zip(g) {
            *logit -= g;
        }
        assert!((d.logits[1] - 0.05).abs() < 1e-12 && (d.logits[0] + 0.05).abs() < 1e-12);
        assert!((d.weights(1.0)[1] - 0.5249792).abs() < 1e-7);
        // Adam (lr 0.03, eps 1e-5): each logit moves by 0.03·0.05/0.05001.
        let config = SafeGrpoConfig {
            epsilon: 0.1,
            ..SafeGrpoConfig::default()
        };
        let mut d = SoftmaxDual::new(0.0);
        d.adam_step(&config, 0.3);
        let moved = 0.03 * 0.05 / 0.05001;
        assert!((d.logits[1] - moved).abs() < 1e-9, "{:?}", d.logits);
        assert!((d.logits[0] + moved).abs() < 1e-9);
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        assert!((d.weights(1.0)[1] - sigmoid(2.0 * moved)).abs() < 1e-12);
        assert!((d.weights(1.0)[1] - 0.5149955).abs() < 1e-5);
    }

    #[test]
    fn k1_softmax_weights_are_the_one_plus_lambda_form() {
        // λ_R = 1/(1 + ρ), λ_C = ρ/(1 + ρ) with ρ = exp((ℓ_C − ℓ_R)/T).
        let mut d = SoftmaxDual::new(0.0);
        d.logits = [0.3, 1.1];
        let t = 1.5;
        let rho = ((1.1f64 - 0.3) / t).exp();
        let [r, c] = d.weights(t);
        assert!((r - 1.0 / (1.0 + rho)).abs() < 1e-12);
        assert!((c - rho / (1.0 + rho)).abs() < 1e-12);
    }

    #[test]
    fn costs_become_indicators_and_state_round_trips() {
        let config = SafeGrpoConfig::default();
        let mut o = SafeGrpo::new(&config, &LagrangeConfig::default());
        let (_, c) = o.terminal_scores(&[0.0; 3], &[-1.0, 0.0, 0.3]);
        assert_eq!(c, vec![0.0, 0.0, 1.0]);
        // Violations above ε raise the constraint's weight.
        o.observe(0, &[0.0; 3], &[1.0, 1.0, -1.0]);
        let (r, c) = o.weights();
        assert!(c > 0.5 && (r + c - 1.0).abs() < 1e-12);
        let mut back = SafeGrpo::new(&config, &LagrangeConfig::default());
        back.load_state(&o.state()).unwrap();
        assert_eq!(back.dual, o.dual);
        // The log-λ rule: threshold ε on the indicators.
        let log = SafeGrpoConfig {
            multiplier: SafeGrpoMultiplier::LogLambda,
            ..config
        };
        let mut o = SafeGrpo::new(&log, &LagrangeConfig::default());
        o.observe(0, &[0.0; 2], &[1.0, -1.0]);
        // log λ = 0 + 0.1·1·(0.5 − 0.05).
        assert!((o.lambda().unwrap() - 0.045f64.exp()).abs() < 1e-12);
        assert!(
            SafeGrpoConfig {
                epsilon: 1.0,
                ..SafeGrpoConfig::default()
            }
            .validate()
            .is_err()
        );
    }
}

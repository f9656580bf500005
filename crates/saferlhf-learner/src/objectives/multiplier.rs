//! Lagrange multipliers shared by PPO-Lagrangian and RePO.
//!
//! Two implementations behind one [`Multiplier`] type:
//!
//! * [`LogLagrange`] (safe-rlhf): `log λ` is a scalar trained by plain SGD
//!   on the loss `-(J - threshold) · λ`, which gives the multiplicative step
//!   `log λ ← log λ + lr · λ · (J - threshold)`, then `λ ≤ max`. `J` is the mean of a FIFO
//!   window of the most recent per-sample signals (costs for PPO-Lag, rectified violations
//!   `{C + δ}⁺` for RePO). No step is taken before `delay` optimizer steps.
//! * [`PidLagrange`] (Stooke, Achiam & Abbeel 2020, "Responsive Safety in RL by PID Lagrangian
//!   Methods"): `e = J - threshold`, `I ← max(0, I + ki·e)`, `D = max(0, J - J_prev)`,
//!   `λ = clamp(kp·e + I + kd·D, 0, max)`. It reacts to the current violation (P) and its trend
//!   (D) as well as to the accumulated violation (I, which alone is the classic dual ascent), so
//!   λ overshoots and oscillates less.
//!
//! Both are plain data (serde) so a checkpoint holds λ, the window and the PID memory, and a
//! resumed run continues with exactly the same multiplier.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// `[lagrange]`: the multiplier's settings (defaults: safe-rlhf's `ppo-lag.sh`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LagrangeConfig {
    /// `log` (safe-rlhf's log-λ SGD) or `pid`.
    pub kind: MultiplierKind,
    /// λ at the start (> 0 for `log`; >= 0 for `pid`).
    pub init: f64,
    /// SGD learning rate of `log λ` (`log` only), > 0.
    pub lr: f64,
    /// Upper bound on λ (> 0); `None` = no cap.
    pub max: Option<f64>,
    /// The constraint's threshold: the multiplier rises while the windowed signal is above it.
    /// PPO-Lag: mean cost ≤ threshold (= -d in the paper). RePO: mean {C+δ}⁺ ≤ threshold (τ).
    pub threshold: f64,
    /// Optimizer steps before the first multiplier step.
    pub delay: u64,
    /// How many of the most recent per-sample signals the window averages (>= 1).
    pub window: usize,
    /// Keep λ at `init` for the whole run (no updates).
    pub fixed: bool,
    /// PID proportional gain (`pid` only), >= 0.
    pub kp: f64,
    /// PID integral gain (`pid` only), >= 0.
    pub ki: f64,
    /// PID derivative gain (`pid` only), >= 0.
    pub kd: f64,
}

/// Which multiplier update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MultiplierKind {
    /// safe-rlhf's SGD on log λ.
    Log,
    /// PID Lagrangian.
    Pid,
}

impl Default for LagrangeConfig {
    fn default() -> Self {
        use crate::config::defaults::lagrange as d;
        LagrangeConfig {
            kind: MultiplierKind::Log,
            init: d::INIT,
            lr: d::LR,
            max: d::MAX,
            threshold: d::THRESHOLD,
            delay: d::DELAY,
            window: d::WINDOW,
            fixed: d::FIXED,
            kp: d::KP,
            ki: d::KI,
            kd: d::KD,
        }
    }
}

impl LagrangeConfig {
    /// Checks every value; errors name `{prefix}.key`.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let key = |k: &str| format!("{prefix}.{k}");
        let finite = |k: &str, v: f64| -> Result<()> {
            if v.is_finite() {
                Ok(())
            } else {
                Err(TrainError::config(
                    key(k),
                    format!("must be finite, got {v}"),
                ))
            }
        };
        finite("init", self.init)?;
        finite("lr", self.lr)?;
        finite("threshold", self.threshold)?;
        match self.kind {
            MultiplierKind::Log if self.init <= 0.0 => {
                return Err(TrainError::config(
                    key("init"),
                    format!("must be > 0 for the log-λ multiplier, got {}", self.init),
                ));
            }
            MultiplierKind::Pid if self.init < 0.0 => {
                return Err(TrainError::config(
                    key("init"),
                    format!("must be >= 0, got {}", self.init),
                ));
            }
            _ => {}
        }
        if self.kind == MultiplierKind::Log && self.lr <= 0.0 {
            return Err(TrainError::config(
                key("lr"),
                format!("must be > 0, got {}", self.lr),
            ));
        }
        if let Some(max) = self.max
            && !(max > 0.0 && max.is_finite())
        {
            return Err(TrainError::config(
                key("max"),
                format!("must be > 0, got {max}"),
            ));
        }
        if let Some(max) = self.max
            && self.init > max
        {
            return Err(TrainError::config(
                key("init"),
                format!("{} is above lagrange.max = {max}", self.init),
            ));
        }
        if self.window == 0 {
            return Err(TrainError::config(key("window"), "must be >= 1, got 0"));
        }
        for (k, v) in [("kp", self.kp), ("ki", self.ki), ("kd", self.kd)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(TrainError::config(key(k), format!("must be >= 0, got {v}")));
            }
        }
        Ok(())
    }

    /// The multiplier this config describes, at its initial value.
    pub fn build(&self) -> Multiplier {
        match self.kind {
            MultiplierKind::Log => Multiplier::Log(LogLagrange::new(self.clone())),
            MultiplierKind::Pid => Multiplier::Pid(PidLagrange::new(self.clone())),
        }
    }
}

/// A FIFO window of the most recent per-sample signals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalWindow {
    capacity: usize,
    values: VecDeque<f64>,
}

impl SignalWindow {
    /// An empty window holding at most `capacity` values.
    pub fn new(capacity: usize) -> Self {
        SignalWindow {
            capacity: capacity.max(1),
            values: VecDeque::new(),
        }
    }

    /// Appends `values`, dropping the oldest beyond the capacity.
    pub fn extend(&mut self, values: &[f64]) {
        for &v in values {
            if self.values.len() == self.capacity {
                self.values.pop_front();
            }
            self.values.push_back(v);
        }
    }

    /// Mean of the window (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.values.is_empty() {
            0.0
        } else {
            self.values.iter().sum::<f64>() / self.values.len() as f64
        }
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// safe-rlhf's multiplier: SGD on `log λ` (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLagrange {
    config: LagrangeConfig,
    log_lambda: f64,
    window: SignalWindow,
    updates: u64,
}

impl LogLagrange {
    /// At `config.init`, with an empty window.
    pub fn new(config: LagrangeConfig) -> Self {
        LogLagrange {
            log_lambda: config.init.ln(),
            window: SignalWindow::new(config.window),
            config,
            updates: 0,
        }
    }
}

/// The PID Lagrangian multiplier (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PidLagrange {
    config: LagrangeConfig,
    lambda: f64,
    integral: f64,
    previous: Option<f64>,
    window: SignalWindow,
    updates: u64,
}

impl PidLagrange {
    /// At `config.init` (the integral starts there, so λ = init while the error is 0).
    pub fn new(config: LagrangeConfig) -> Self {
        PidLagrange {
            lambda: config.init,
            integral: config.init,
            previous: None,
            window: SignalWindow::new(config.window),
            config,
            updates: 0,
        }
    }
}

/// A Lagrange multiplier λ >= 0 with its update rule and memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Multiplier {
    /// safe-rlhf's log-λ SGD.
    Log(LogLagrange),
    /// PID Lagrangian.
    Pid(PidLagrange),
}

impl Multiplier {
    /// The current λ.
    pub fn lambda(&self) -> f64 {
        match self {
            Multiplier::Log(m) => m.log_lambda.exp(),
            Multiplier::Pid(m) => m.lambda,
        }
    }

    /// The settings it was built from.
    pub fn config(&self) -> &LagrangeConfig {
        match self {
            Multiplier::Log(m) => &m.config,
            Multiplier::Pid(m) => &m.config,
        }
    }

    /// The windowed constraint signal J (mean of the window).
    pub fn signal(&self) -> f64 {
        match self {
            Multiplier::Log(m) => m.window.mean(),
            Multiplier::Pid(m) => m.window.mean(),
        }
    }

    /// Multiplier steps taken so far.
    pub fn updates(&self) -> u64 {
        match self {
            Multiplier::Log(m) => m.updates,
            Multiplier::Pid(m) => m.updates,
        }
    }

    /// Adds this rollout's per-sample signals to the window and, unless the multiplier is fixed
    /// or `step < delay`, takes one step. Returns the new λ.
    // ANCHOR: observe
    pub fn observe(&mut self, step: u64, signals: &[f64]) -> f64 {
        match self {
            Multiplier::Log(m) => {
                m.window.extend(signals);
                if !m.config.fixed && step >= m.config.delay && !m.window.is_empty() {
                    let lambda = m.log_lambda.exp();
                    // d/d(log λ) of -(J - threshold)·λ is -(J - threshold)·λ; SGD descends it.
                    m.log_lambda += m.config.lr * lambda * (m.window.mean() - m.config.threshold);
                    if let Some(max) = m.config.max {
                        m.log_lambda = m.log_lambda.min(max.ln());
                    }
                    m.updates += 1;
                }
            }
            Multiplier::Pid(m) => {
                m.window.extend(signals);
                if !m.config.fixed && step >= m.config.delay && !m.window.is_empty() {
                    let j = m.window.mean();
                    let error = j - m.config.threshold;
                    m.integral = (m.integral + m.config.ki * error).max(0.0);
                    let derivative = m.previous.map(|p| (j - p).max(0.0)).unwrap_or(0.0);
                    let mut lambda =
                        (m.config.kp * error + m.integral + m.config.kd * derivative).max(0.0);
                    if let Some(max) = m.config.max {
                        lambda = lambda.min(max);
                        m.integral = m.integral.min(max);
                    }
                    m.lambda = lambda;
                    m.previous = Some(j);
                    m.updates += 1;
                }
            }
        }
        self.lambda()
    }
    // ANCHOR_END: observe
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_config() -> LagrangeConfig {
        LagrangeConfig {
            window: 4,
            ..LagrangeConfig::default()
        }
    }

    #[test]
    fn log_lambda_step_matches_the_formula() {
        let mut m = log_config().build();
        assert!((m.lambda() - 1.0).abs() < 1e-12);
        // J = mean(0.5, 1.5) = 1.0 > 0: log λ = 0 + 0.1 · 1 · 1 = 0.1.
        let lambda = m.observe(0, &[0.5, 1.5]);
        assert!((lambda - 0.1f64.exp()).abs() < 1e-12, "{lambda}");
        // Window now (0.5, 1.5, -3, -3): J = -1: log λ = 0.1 + 0.1·e^0.1·(-1).
        let lambda = m.observe(1, &[-3.0, -3.0]);
        let expect = (0.1 - 0.1 * 0.1f64.exp()).exp();
        assert!((lambda - expect).abs() < 1e-12, "{lambda} vs {expect}");
        // The window holds 4: (-3, -3, 2, 2), J = -0.5.
        m.observe(2, &[2.0, 2.0]);
        assert!((m.signal() + 0.5).abs() < 1e-12);
    }

    #[test]
    fn lambda_rises_above_threshold_falls_below_and_respects_the_cap() {
        let mut m = log_config().build();
        let mut last = m.lambda();
        for step in 0..200 {
            let l = m.observe(step, &[1.0; 4]);
            assert!(l >= last - 1e-15 && l <= 5.0 + 1e-12, "step {step}: {l}");
            last = l;
        }
        assert!((last - 5.0).abs() < 1e-9, "capped at 5: {last}");
        for step in 200..210 {
            let l = m.observe(step, &[-1.0; 4]);
            assert!(l < last, "falls below the threshold");
            assert!(l > 0.0, "log-λ never reaches 0");
            last = l;
        }
    }

    #[test]
    fn delay_and_fixed_hold_lambda() {
        let mut m = LagrangeConfig {
            delay: 3,
            ..log_config()
        }
        .build();
        for step in 0..3 {
            assert_eq!(m.observe(step, &[10.0]), 1.0);
        }
        assert!(m.observe(3, &[10.0]) > 1.0);
        let mut f = LagrangeConfig {
            fixed: true,
            init: 2.0,
            ..log_config()
        }
        .build();
        assert_eq!(f.observe(0, &[10.0]), 2.0);
        assert_eq!(f.updates(), 0);
    }

    #[test]
    fn pid_follows_its_formula() {
        let config = LagrangeConfig {
            kind: MultiplierKind::Pid,
            init: 0.0,
            kp: 0.5,
            ki: 0.1,
            kd: 1.0,
            window: 2,
            max: Some(3.0),
            ..LagrangeConfig::default()
        };
        let mut m = config.build();
        // J = 1: e = 1, I = 0 + 0.1 = 0.1, D = 0 (no previous): λ = 0.5 + 0.1 = 0.6.
        assert!((m.observe(0, &[1.0, 1.0]) - 0.6).abs() < 1e-12);
        // Window (1, 3): J = 2: e = 2, I = 0.3, D = 1: λ = 1 + 0.3 + 1 = 2.3.
        assert!((m.observe(1, &[3.0]) - 2.3).abs() < 1e-12);
        // Window (3, -5): J = -1: e = -1, I = 0.2, D = max(0, -3) = 0: λ = max(0, -0.5+0.2) = 0.
        assert!(m.observe(2, &[-5.0]).abs() < 1e-12);
        // Big violation: capped at 3.
        assert!((m.observe(3, &[100.0, 100.0]) - 3.0).abs() < 1e-12);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut m = log_config().build();
        m.observe(0, &[1.0, 2.0]);
        let text = serde_json::to_string(&m).unwrap();
        let back: Multiplier = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.lambda().to_bits(), m.lambda().to_bits());
    }

    #[test]
    fn validation_names_the_key() {
        let bad = LagrangeConfig {
            window: 0,
            ..LagrangeConfig::default()
        };
        let e = bad.validate("lagrange").unwrap_err().to_string();
        assert!(e.contains("lagrange.window"), "{e}");
        let bad = LagrangeConfig {
            init: 0.0,
            ..LagrangeConfig::default()
        };
        assert!(
            bad.validate("lagrange")
                .unwrap_err()
                .to_string()
                .contains("lagrange.init")
        );
        let bad = LagrangeConfig {
            max: Some(-1.0),
            ..LagrangeConfig::default()
        };
        assert!(
            bad.validate("lagrange")
                .unwrap_err()
                .to_string()
                .contains("lagrange.max")
        );
    }
}

//! The learning-rate schedule: linear warmup, then cosine decay or a constant rate.
//!
//! The schedule is a pure function of the optimizer step, so its whole state is the step
//! number (saved in every checkpoint): resuming at step k gives exactly the rates of an
//! uninterrupted run. (burn-optim's stateful schedulers would add a record to save for no gain.)

use serde::{Deserialize, Serialize};

use crate::config::{OptimConfig, Schedule};

/// Learning rate as a function of the optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// `cosine` or `constant` after warmup.
    pub kind: Schedule,
    /// Peak learning rate.
    pub peak: f64,
    /// Floor of the cosine decay, as a fraction of `peak`.
    pub min_ratio: f64,
    /// Steps of linear warmup: `ceil(warmup_ratio * total_steps)`.
    pub warmup_steps: u64,
    /// Optimizer steps of the whole run.
    pub total_steps: u64,
}

impl LrSchedule {
    /// The schedule of `optim` over `total_steps` optimizer steps.
    pub fn new(optim: &OptimConfig, total_steps: u64) -> Self {
        LrSchedule {
            kind: optim.schedule,
            peak: optim.lr,
            min_ratio: optim.min_lr_ratio,
            warmup_steps: (optim.warmup_ratio * total_steps as f64).ceil() as u64,
            total_steps,
        }
    }

    /// The rate of the update taken at 0-based `step`: `peak * (step + 1) / warmup` during
    /// warmup (so the first update is not wasted at 0), then `peak` (constant) or
    /// `peak * (m + (1 - m) * (1 + cos(π p)) / 2)` with `p = (step - warmup) / (total - warmup)`
    /// (cosine).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.kind {
            Schedule::Constant => self.peak,
            Schedule::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
                let p = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
                let m = self.min_ratio;
                self.peak * (m + (1.0 - m) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_or_constant() {
        let mut o = OptimConfig {
            lr: 1.0,
            warmup_ratio: 0.1,
            ..OptimConfig::default()
        };
        let s = LrSchedule::new(&o, 100);
        assert_eq!(s.warmup_steps, 10);
        assert!((s.lr(0) - 0.1).abs() < 1e-12);
        assert!((s.lr(9) - 1.0).abs() < 1e-12);
        assert!((s.lr(10) - 1.0).abs() < 1e-12);
        assert!((s.lr(55) - 0.5).abs() < 1e-12); // halfway through the decay
        assert!(s.lr(99) > 0.0 && s.lr(99) < 0.001);
        o.schedule = Schedule::Constant;
        let c = LrSchedule::new(&o, 100);
        assert_eq!(c.lr(99), 1.0);
        o.warmup_ratio = 0.0;
        o.min_lr_ratio = 0.2;
        o.schedule = Schedule::Cosine;
        let f = LrSchedule::new(&o, 10);
        assert_eq!(f.lr(0), 1.0);
        assert!(f.lr(9) > 0.2);
    }
}

//! The coefficient β of the per-token KL penalty: fixed (`ppo.kl_coeff`), or adapted toward a
//! target with the controller of Ziegler et al. 2019 (arXiv 1909.08593), as lm-human-preferences
//! and TRL's PPO implemented it:
//!
//! ```text
//! e = clip(KL / target − 1, −0.2, 0.2)        KL: the batch mean of Σ_t log π/π_ref per response
//! β ← β · (1 + e · n / horizon)               n: responses in the batch
//! ```
//!
//! It steps once per rollout, after that rollout's advantages were computed with the current β,
//! and its β is saved in each checkpoint, so a resumed run continues with the same value.

use super::config::PpoSettings;

/// β and, when adaptive, its target and horizon.
#[derive(Debug, Clone, PartialEq)]
pub struct KlController {
    /// The current β.
    pub coeff: f64,
    /// Target KL per response (nats); `None`: β stays fixed.
    pub target: Option<f64>,
    /// Horizon in responses.
    pub horizon: f64,
}

impl KlController {
    /// The controller of `[ppo]`, starting from `kl_coeff` (or from a resumed β).
    pub fn new(ppo: &PpoSettings, resumed: Option<f64>) -> Self {
        KlController {
            coeff: resumed.unwrap_or(ppo.kl_coeff),
            target: ppo.kl_target,
            horizon: ppo.kl_horizon,
        }
    }

    /// One step after a rollout of `n` responses whose mean per-response KL was `kl`.
    pub fn update(&mut self, kl: f64, n: usize) {
        if let Some(target) = self.target
            && kl.is_finite()
        {
            let e = (kl / target - 1.0).clamp(-0.2, 0.2);
            self.coeff *= 1.0 + e * n as f64 / self.horizon;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive(coeff: f64) -> KlController {
        KlController {
            coeff,
            target: Some(6.0),
            horizon: 10_000.0,
        }
    }

    /// Hand-computed: KL 7.5 against target 6 is e = 0.25, clipped to 0.2; with 512 responses
    /// β = 0.15 · (1 + 0.2 · 512 / 10000) = 0.151536. KL 5.4 gives e = −0.1 and
    /// β = 0.2 · (1 − 0.1 · 100 / 10000) = 0.1998.
    #[test]
    fn update_follows_the_formula() {
        let mut c = adaptive(0.15);
        c.update(7.5, 512);
        assert!((c.coeff - 0.151_536).abs() < 1e-12, "{}", c.coeff);
        let mut c = adaptive(0.2);
        c.update(5.4, 100);
        assert!((c.coeff - 0.1998).abs() < 1e-12, "{}", c.coeff);
        // At the target β stays; a non-finite KL changes nothing.
        let mut c = adaptive(0.2);
        c.update(6.0, 100);
        c.update(f64::NAN, 100);
        assert_eq!(c.coeff, 0.2);
    }

    #[test]
    fn fixed_coefficient_never_moves_and_resume_restores_beta() {
        let ppo = PpoSettings::default();
        let mut c = KlController::new(&ppo, None);
        c.update(100.0, 1000);
        assert_eq!(c.coeff, ppo.kl_coeff);
        let c = KlController::new(&ppo, Some(0.5));
        assert_eq!(c.coeff, 0.5);
    }
}

//! Direct Preference Optimization (Rafailov et al., 2023): the sigmoid pair loss against a
//! frozen reference, as TRL and safe-rlhf compute it (Rafailov et al., arXiv 2305.18290).
//!
//! For a prompt x with a chosen response y_w and a rejected one y_l, the *implicit reward* of a
//! response is `r(y) = β · (log π_θ(y|x) - log π_ref(y|x))`, and
//!
//! ```text
//! L = mean_i -log σ( r(y_w,i) - r(y_l,i) )
//!   = mean_i -log σ( β · [(log π_θ(y_w) - log π_ref(y_w)) - (log π_θ(y_l) - log π_ref(y_l))] )
//! ```
//!
//! (no label smoothing). The sequence log-probabilities are sums over response tokens (see
//! [`SumFrom`]); they arrive as a [`PairLogProbs`], the reference's without gradient. The loss
//! is the minimum of the KL-regularised objective `max E[r] - β KL(π || π_ref)` whose reward is
//! the Bradley-Terry reward of the preference data: a larger β keeps π closer to π_ref.
//!
//! The metrics ([`DpoMetrics`]) are read on the host from the same four log-probability
//! vectors: `accuracy` (share of pairs whose implicit-reward margin is > 0), the mean implicit
//! rewards of the chosen and rejected responses, their mean margin, and the mean policy
//! log-probabilities (if both of those fall while the margin grows, the policy is moving mass
//! off both responses, a known DPO failure mode worth watching).

use burn::tensor::Tensor;

use super::{OfflineObjective, PairLogProbs};
use crate::losses::{neg_log_sigmoid, to_host};

pub use crate::config::offline::{DpoConfig, Preference, SumFrom};

/// The DPO sigmoid loss with coefficient `beta` (the effective β: for SACPO's safety stage,
/// β/λ).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dpo {
    /// β (> 0).
    pub beta: f64,
}

impl Dpo {
    /// DPO with coefficient `beta`.
    pub fn new(beta: f64) -> Self {
        Dpo { beta }
    }
}

impl OfflineObjective for Dpo {
    fn name(&self) -> &'static str {
        "dpo"
    }

    fn beta(&self) -> f64 {
        self.beta
    }

    // ANCHOR: loss
    fn loss(&self, logps: &PairLogProbs) -> Tensor<1> {
        // -log σ(x), computed stably as softplus(-x); mean over the pairs, [1].
        neg_log_sigmoid(implicit_reward_margin(logps, self.beta)).mean()
    }
    // ANCHOR_END: loss
}

// ANCHOR: margin
/// The margin of the implicit rewards, `[B]`:
/// `β·[(log π_θ(y_w) − log π_ref(y_w)) − (log π_θ(y_l) − log π_ref(y_l))]` (DPO's logit;
/// SafeDPO subtracts its safety margin from it).
pub fn implicit_reward_margin(logps: &PairLogProbs, beta: f64) -> Tensor<1> {
    // Log-ratios of policy to reference, [B] each.
    let chosen = logps.policy_chosen.clone() - logps.reference_chosen.clone();
    let rejected = logps.policy_rejected.clone() - logps.reference_rejected.clone();
    (chosen - rejected).mul_scalar(beta)
}
// ANCHOR_END: margin

/// DPO metrics over a set of pairs (host-side; merged across micro-batches by pair count).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DpoMetrics {
    /// Number of pairs.
    pub pairs: usize,
    /// Mean loss per pair.
    pub loss: f64,
    /// Share of pairs whose implicit-reward margin is > 0 (the policy prefers y_w over y_l more
    /// than the reference does).
    pub accuracy: f64,
    /// Mean implicit reward of the chosen responses, `β (log π_θ(y_w) - log π_ref(y_w))`.
    pub chosen_reward: f64,
    /// Mean implicit reward of the rejected responses.
    pub rejected_reward: f64,
    /// Mean margin `chosen_reward - rejected_reward`.
    pub margin: f64,
    /// Mean policy log-probability of the chosen responses (summed over their tokens).
    pub chosen_logp: f64,
    /// Mean policy log-probability of the rejected responses.
    pub rejected_logp: f64,
}

impl DpoMetrics {
    // ANCHOR: metrics
    /// Metrics of one batch from host copies of the four log-probability vectors, `beta` and
    /// the batch's mean loss.
    pub fn from_host(
        beta: f64,
        policy_chosen: &[f32],
        policy_rejected: &[f32],
        reference_chosen: &[f32],
        reference_rejected: &[f32],
        loss: f64,
    ) -> Self {
        let n = policy_chosen.len();
        let mut m = DpoMetrics {
            pairs: n,
            loss,
            ..DpoMetrics::default()
        };
        if n == 0 {
            return m;
        }
        for i in 0..n {
            let rw = beta * (policy_chosen[i] as f64 - reference_chosen[i] as f64);
            let rl = beta * (policy_rejected[i] as f64 - reference_rejected[i] as f64);
            m.accuracy += f64::from(u8::from(rw - rl > 0.0));
            m.chosen_reward += rw;
            m.rejected_reward += rl;
            m.margin += rw - rl;
            m.chosen_logp += policy_chosen[i] as f64;
            m.rejected_logp += policy_rejected[i] as f64;
        }
        let sums = [
            &mut m.accuracy,
            &mut m.chosen_reward,
            &mut m.rejected_reward,
            &mut m.margin,
            &mut m.chosen_logp,
            &mut m.rejected_logp,
        ];
        for sum in sums {
            *sum /= n as f64;
        }
        m
    }
    // ANCHOR_END: metrics

    /// Metrics of one batch from its (device) log-probabilities.
    pub fn new(beta: f64, logps: &PairLogProbs, loss: f64) -> Self {
        Self::from_host(
            beta,
            &to_host(&logps.policy_chosen),
            &to_host(&logps.policy_rejected),
            &to_host(&logps.reference_chosen),
            &to_host(&logps.reference_rejected),
            loss,
        )
    }

    /// Both sets together (each mean weighted by its pair count).
    pub fn merge(&self, other: &Self) -> Self {
        let (na, nb) = (self.pairs as f64, other.pairs as f64);
        let total = na + nb;
        let mix = |a: f64, b: f64| {
            if total == 0.0 {
                0.0
            } else {
                (a * na + b * nb) / total
            }
        };
        DpoMetrics {
            pairs: self.pairs + other.pairs,
            loss: mix(self.loss, other.loss),
            accuracy: mix(self.accuracy, other.accuracy),
            chosen_reward: mix(self.chosen_reward, other.chosen_reward),
            rejected_reward: mix(self.rejected_reward, other.rejected_reward),
            margin: mix(self.margin, other.margin),
            chosen_logp: mix(self.chosen_logp, other.chosen_logp),
            rejected_logp: mix(self.rejected_logp, other.rejected_logp),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    fn t(v: &[f32]) -> Tensor<1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Device::flex())
    }

    /// Two pairs, β = 0.1:
    ///
    /// pair 0: π(y_w) = -10, π_ref(y_w) = -12, π(y_l) = -15, π_ref(y_l) = -14
    ///   chosen log-ratio  = -10 - (-12) = 2     → r_w = 0.1 · 2  = 0.2
    ///   rejected log-ratio = -15 - (-14) = -1   → r_l = 0.1 · -1 = -0.1
    ///   margin = 0.3; loss = -log σ(0.3) = log(1 + e^-0.3) = log(1.7408182) = 0.5543552
    /// pair 1: π(y_w) = -20, π_ref(y_w) = -19, π(y_l) = -8, π_ref(y_l) = -10
    ///   chosen log-ratio = -1 → r_w = -0.1; rejected log-ratio = 2 → r_l = 0.2
    ///   margin = -0.3; loss = -log σ(-0.3) = log(1 + e^0.3) = log(2.3498588) = 0.8543552
    /// mean loss = (0.5543552 + 0.8543552) / 2 = 0.7043552
    /// accuracy = 1/2; chosen_reward = (0.2 - 0.1)/2 = 0.05; rejected_reward = (-0.1 + 0.2)/2
    /// = 0.05; margin = 0; chosen_logp = (-10 - 20)/2 = -15; rejected_logp = (-15 - 8)/2 =
    /// -11.5.
    #[test]
    fn loss_and_metrics_match_hand_computed_values() {
        let logps = PairLogProbs {
            policy_chosen: t(&[-10.0, -20.0]),
            policy_rejected: t(&[-15.0, -8.0]),
            reference_chosen: t(&[-12.0, -19.0]),
            reference_rejected: t(&[-14.0, -10.0]),
            margin_flags: None,
        };
        let dpo = Dpo::new(0.1);
        assert_eq!(dpo.beta(), 0.1);
        assert_eq!(dpo.name(), "dpo");
        let loss = to_host(&dpo.loss(&logps))[0] as f64;
        assert!((loss - 0.704_355_2).abs() < 1e-6, "{loss}");
        let m = DpoMetrics::new(dpo.beta, &logps, loss);
        assert_eq!(m.pairs, 2);
        assert_eq!(m.accuracy, 0.5);
        assert!((m.chosen_reward - 0.05).abs() < 1e-6, "{m:?}");
        assert!((m.rejected_reward - 0.05).abs() < 1e-6, "{m:?}");
        assert!(m.margin.abs() < 1e-6, "{m:?}");
        assert_eq!((m.chosen_logp, m.rejected_logp), (-15.0, -11.5));

        // Pair 0 alone with β = 0.5: margin 0.5 · 3 = 1.5, loss = log(1 + e^-1.5) =
        // log(1.2231302) = 0.2014133.
        let one = PairLogProbs {
            policy_chosen: t(&[-10.0]),
            policy_rejected: t(&[-15.0]),
            reference_chosen: t(&[-12.0]),
            reference_rejected: t(&[-14.0]),
            margin_flags: None,
        };
        let loss = to_host(&Dpo::new(0.5).loss(&one))[0] as f64;
        assert!((loss - 0.201_413_3).abs() < 1e-6, "{loss}");
        // At the reference (all log-ratios 0) the loss is log 2 for any β.
        let same = PairLogProbs {
            policy_chosen: t(&[-3.0]),
            policy_rejected: t(&[-4.0]),
            reference_chosen: t(&[-3.0]),
            reference_rejected: t(&[-4.0]),
            margin_flags: None,
        };
        let loss = to_host(&Dpo::new(0.01).loss(&same))[0] as f64;
        assert!((loss - std::f64::consts::LN_2).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn metrics_merge_by_pair_count() {
        let a = DpoMetrics::from_host(1.0, &[1.0], &[0.0], &[0.0], &[0.0], 0.3);
        let b = DpoMetrics::from_host(1.0, &[0.0, 0.0], &[1.0, 1.0], &[0.0, 0.0], &[0.0, 0.0], 0.9);
        let m = a.merge(&b);
        assert_eq!(m.pairs, 3);
        // loss (0.3 · 1 + 0.9 · 2) / 3 = 0.7; accuracy (1 + 0) / 3; margin (1 - 2) / 3.
        assert!((m.loss - 0.7).abs() < 1e-12);
        assert!((m.accuracy - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.margin + 1.0 / 3.0).abs() < 1e-12);
    }
}

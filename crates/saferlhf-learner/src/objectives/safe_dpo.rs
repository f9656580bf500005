//! SafeDPO (Kim et al., arXiv 2505.20065): hard-constrained safety alignment from labelled
//! preference pairs, offline, with neither reward nor cost model.
//!
//! The pairs are ordered by helpfulness and each response carries a safe/unsafe label. The
//! safety-aware transform T ([`transform`]) keeps a pair whose preferred response is safe, swaps
//! a pair whose preferred response is the only unsafe one, and drops a pair where both are
//! unsafe; after T the unsafe response, if any, is always the rejected one. The loss is DPO's
//! with an extra margin Δ on the pairs that oppose a safe and an unsafe response:
//!
//! ```text
//! L = −log σ( β·[Δ(y_w) − Δ(y_l)] − flag·Δ_m ),   Δ(y) = log π_θ(y|x) − log π_ref(y|x)
//! ```
//!
//! Any Δ_m >= 0 leaves the optimum unchanged (it only changes the training dynamics), and
//! Δ_m = 0 is plain DPO on T(D). Configured by `dpo.preference = "safety_aware"` and
//! `dpo.margin`. The paper's own values of β and Δ_m were not available to us; β = 0.1 is
//! DPO's usual value.

use burn::tensor::Tensor;
use saferlhf_data::PreferencePair;

use super::dpo::implicit_reward_margin;
use super::{OfflineObjective, PairLogProbs};
use crate::losses::neg_log_sigmoid;

/// What T did to one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transformed {
    /// Both safe: kept, no margin.
    KeptSafeSafe,
    /// Safe preferred over unsafe: kept, with the margin.
    KeptSafeUnsafe,
    /// Unsafe preferred over safe: swapped, with the margin.
    Swapped,
    /// Both unsafe: dropped.
    Dropped,
}

/// The safety-aware transform T of one helpfulness-ordered pair: the pair to train on (if any)
/// and what happened. `None` labels are an error for the caller: T needs both.
pub fn transform(pair: &PreferencePair) -> Option<(Option<PreferencePair>, Transformed)> {
    let (w, l) = (pair.chosen_safe?, pair.rejected_safe?);
    Some(match (w, l) {
        (true, true) => (Some(pair.clone()), Transformed::KeptSafeSafe),
        (true, false) => (Some(pair.clone()), Transformed::KeptSafeUnsafe),
        (false, true) => (
            Some(PreferencePair {
                prompt: pair.prompt.clone(),
                chosen: pair.rejected.clone(),
                rejected: pair.chosen.clone(),
                chosen_safe: pair.rejected_safe,
                rejected_safe: pair.chosen_safe,
            }),
            Transformed::Swapped,
        ),
        (false, false) => (None, Transformed::Dropped),
    })
}

/// The SafeDPO loss with coefficient `beta` and margin `margin` (Δ_m >= 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SafeDpo {
    /// β (> 0).
    pub beta: f64,
    /// Δ_m (>= 0).
    pub margin: f64,
}

impl OfflineObjective for SafeDpo {
    fn name(&self) -> &'static str {
        "safe_dpo"
    }

    fn beta(&self) -> f64 {
        self.beta
    }

    fn loss(&self, logps: &PairLogProbs) -> Tensor<1> {
        let mut logits = implicit_reward_margin(logps, self.beta);
        if let Some(flags) = &logps.margin_flags {
            logits = logits - flags.clone().mul_scalar(self.margin);
        }
        neg_log_sigmoid(logits).mean()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Dpo;
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn pair(w: bool, l: bool) -> PreferencePair {
        PreferencePair {
            prompt: "p".into(),
            chosen: "helpful".into(),
            rejected: "less helpful".into(),
            chosen_safe: Some(w),
            rejected_safe: Some(l),
        }
    }

    #[test]
    fn the_transform_table() {
        let (p, t) = transform(&pair(true, true)).unwrap();
        assert_eq!(
            (p.unwrap(), t),
            (pair(true, true), Transformed::KeptSafeSafe)
        );
        let (p, t) = transform(&pair(true, false)).unwrap();
        assert_eq!(
            (p.unwrap(), t),
            (pair(true, false), Transformed::KeptSafeUnsafe)
        );
        let (p, t) = transform(&pair(false, true)).unwrap();
        let p = p.unwrap();
        assert_eq!(t, Transformed::Swapped);
        assert_eq!(
            (p.chosen.as_str(), p.rejected.as_str()),
            ("less helpful", "helpful")
        );
        assert_eq!((p.chosen_safe, p.rejected_safe), (Some(true), Some(false)));
        assert_eq!(
            transform(&pair(false, false)).unwrap(),
            (None, Transformed::Dropped)
        );
        // Every kept pair has a safe chosen response.
        for (w, l) in [(true, true), (true, false), (false, true), (false, false)] {
            if let (Some(p), _) = transform(&pair(w, l)).unwrap() {
                assert_eq!(p.chosen_safe, Some(true));
            }
        }
        let unlabelled = PreferencePair {
            chosen_safe: None,
            ..pair(true, true)
        };
        assert!(transform(&unlabelled).is_none());
    }

    #[test]
    fn losses_by_hand() {
        let device = Device::flex();
        let t = |v: f32| Tensor::<1>::from_data(TensorData::new(vec![v], [1]), &device);
        let logps = |flag: Option<f32>| PairLogProbs {
            policy_chosen: t(-10.0),
            reference_chosen: t(-11.0),
            policy_rejected: t(-12.0),
            reference_rejected: t(-11.5),
            margin_flags: flag.map(t),
        };
        let value = |o: &dyn OfflineObjective, l: &PairLogProbs| {
            o.loss(l).into_data().try_to_vec::<f32>().unwrap()[0] as f64
        };
        let s = |margin| SafeDpo { beta: 0.1, margin };
        // h = 1.5: safe/safe −log σ(0.15).
        assert!((value(&s(10.0), &logps(Some(0.0))) - 0.6209570).abs() < 1e-6);
        assert!((value(&s(10.0), &logps(Some(1.0))) - 9.8500527).abs() < 1e-5);
        assert!((value(&s(1.0), &logps(Some(1.0))) - 1.2058651).abs() < 1e-6);
        let dpo = value(&Dpo::new(0.1), &logps(None));
        assert!((value(&s(0.0), &logps(Some(1.0))) - dpo).abs() < 1e-7);
    }
}

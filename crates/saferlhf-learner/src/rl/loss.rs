//! The PPO losses (Schulman et al., arXiv 1707.06347; as safe-rlhf writes them) on `[batch, width]` tensors with a response mask; every
//! mean is [`masked_mean`]: per sequence over its response tokens, then over the batch.

use burn::tensor::{Bool, Tensor};

use super::config::{KlEstimator, LossAggregation};
use crate::losses::masked_mean;

/// The per-token KL estimate of a KL loss from the current and the reference log-probs
/// (`d = log π − log π_ref`, clamped to ±20 so `exp(−d)` stays finite): k1 `d`, k2 `d²/2`,
/// k3 `exp(−d) − 1 + d`.
pub fn kl_tokens(
    logprobs: Tensor<2>,
    ref_logprobs: Tensor<2>,
    estimator: KlEstimator,
) -> Tensor<2> {
    let d = (logprobs - ref_logprobs).clamp(-20.0, 20.0);
    match estimator {
        KlEstimator::K1 => d,
        KlEstimator::K2 => d.powi_scalar(2).mul_scalar(0.5),
        KlEstimator::K3 => d.clone().neg().exp().sub_scalar(1.0) + d,
    }
}

/// How many sequences and response tokens the minibatch of a micro-batch holds: what
/// [`aggregate`] divides by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Minibatch {
    /// Sequences in the minibatch.
    pub sequences: usize,
    /// Response tokens in the minibatch.
    pub tokens: usize,
    /// `rollout.max_new_tokens` (the constant normaliser).
    pub max_new_tokens: usize,
}

/// Per-token losses `[n, width]` of a micro-batch of `n` rows, aggregated as `how` says and
/// scaled so that summing `share × result` over the micro-batches of a minibatch (with
/// `share = n / minibatch.sequences`, as the update does) gives the minibatch's loss:
/// `seq_mean_token_mean` is [`masked_mean`]; `token_mean` divides the sum by the minibatch's
/// token count, `constant` by sequences × `max_new_tokens`, `seq_mean_token_sum` by the
/// sequence count.
pub fn aggregate(
    per_token: Tensor<2>,
    mask: Tensor<2, Bool>,
    how: LossAggregation,
    minibatch: Minibatch,
) -> Tensor<1> {
    let n = per_token.dims()[0] as f64;
    let share = n / minibatch.sequences.max(1) as f64;
    let total = || {
        per_token
            .clone()
            .mask_fill(mask.clone().bool_not(), 0.0)
            .sum()
    };
    match how {
        LossAggregation::SeqMeanTokenMean => masked_mean(per_token, mask),
        LossAggregation::TokenMean => total().div_scalar(minibatch.tokens.max(1) as f64 * share),
        LossAggregation::Constant => {
            total().div_scalar(n.max(1.0) * minibatch.max_new_tokens as f64)
        }
        LossAggregation::SeqMeanTokenSum => total().div_scalar(n.max(1.0)),
    }
}

/// The clipped surrogate of the actor:
///
/// `ρ = exp(log π_θ - log π_old)`,
/// `L = -masked_mean(min(ρ·A, clip(ρ, 1 - ε, 1 + ε)·A))`, shape `[1]`; [`surrogate_tokens`]
/// is its per-token form, which the update aggregates as `ppo.loss_aggregation` says.
// ANCHOR: clipped_surrogate
pub fn clipped_surrogate(
    logprobs: Tensor<2>,
    old_logprobs: Tensor<2>,
    advantages: Tensor<2>,
    mask: Tensor<2, Bool>,
    clip: f64,
) -> Tensor<1> {
    masked_mean(
        surrogate_tokens(logprobs, old_logprobs, advantages, clip),
        mask,
    )
}

/// The per-token clipped surrogate loss `-min(ρ·A, clip(ρ, 1-ε, 1+ε)·A)`, `[batch, width]`.
pub fn surrogate_tokens(
    logprobs: Tensor<2>,
    old_logprobs: Tensor<2>,
    advantages: Tensor<2>,
    clip: f64,
) -> Tensor<2> {
    let ratio = (logprobs - old_logprobs).exp();
    let unclipped = ratio.clone() * advantages.clone();
    let clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages;
    unclipped.min_pair(clipped).neg()
}
// ANCHOR_END: clipped_surrogate

/// The clipped value loss of a critic:
///
/// `L = 0.5·masked_mean(max((V - Ret)², (clip(V, V_old - ε, V_old + ε) - Ret)²))`, shape `[1]`.
// ANCHOR: clipped_value_loss
pub fn clipped_value_loss(
    values: Tensor<2>,
    old_values: Tensor<2>,
    returns: Tensor<2>,
    mask: Tensor<2, Bool>,
    clip: f64,
) -> Tensor<1> {
    let low = old_values.clone().sub_scalar(clip);
    let high = old_values.add_scalar(clip);
    let clipped = values.clone().max_pair(low).min_pair(high);
    let a = (values - returns.clone()).powi_scalar(2);
    let b = (clipped - returns).powi_scalar(2);
    masked_mean(a.max_pair(b), mask).mul_scalar(0.5)
}
// ANCHOR_END: clipped_value_loss

/// Diagnostics of a policy update, from the same tensors (no gradient):
/// `(clip fraction, approx KL)`, where the clip fraction is the masked mean of
/// `1[|ρ - 1| > ε]` and approx KL is the masked mean of `(ρ - 1) - log ρ` (Schulman's k3
/// estimator of KL(π_old ‖ π_θ), always >= 0).
pub fn update_diagnostics(
    logprobs: Tensor<2>,
    old_logprobs: Tensor<2>,
    mask: Tensor<2, Bool>,
    clip: f64,
) -> (Tensor<1>, Tensor<1>) {
    let log_ratio = (logprobs - old_logprobs).detach();
    let ratio = log_ratio.clone().exp();
    let clipped = (ratio.clone() - 1.0).abs().greater_elem(clip).float();
    let approx_kl = (ratio - 1.0) - log_ratio;
    (
        masked_mean(clipped, mask.clone()),
        masked_mean(approx_kl, mask),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn t(values: Vec<f32>, device: &Device) -> Tensor<2> {
        let n = values.len() / 2;
        Tensor::from_data(TensorData::new(values, [2, n]), device)
    }

    fn m(values: Vec<bool>, device: &Device) -> Tensor<2, Bool> {
        let n = values.len() / 2;
        Tensor::from_data(TensorData::new(values, [2, n]), device)
    }

    fn scalar(x: Tensor<1>) -> f32 {
        x.into_data().try_to_vec::<f32>().unwrap()[0]
    }

    #[test]
    fn surrogate_by_hand() {
        let device = Device::flex();
        let ln = |x: f32| x.ln();
        // Ratios: row 0: 1.5, 0.5, (masked 9); row 1: 1.1, (masked), (masked).
        let logp = t(vec![ln(1.5), ln(0.5), 5.0, ln(1.1), 3.0, 3.0], &device);
        let old = t(vec![0.0; 6], &device);
        let adv = t(vec![2.0, -1.0, 100.0, 1.0, 7.0, 7.0], &device);
        let mask = m(vec![true, true, false, true, false, false], &device);
        // ε = 0.2. Row 0: t0: min(1.5·2, 1.2·2) = 2.4; t1: min(0.5·-1, 0.8·-1) = -0.8;
        // mean 0.8. Row 1: min(1.1, 1.1) = 1.1. Batch mean 0.95; loss -0.95.
        let loss = scalar(clipped_surrogate(
            logp.clone(),
            old.clone(),
            adv,
            mask.clone(),
            0.2,
        ));
        assert!((loss + 0.95).abs() < 1e-5, "{loss}");
        // Clip fraction: row 0: |0.5|, |0.5| > 0.2 -> 1; row 1: 0.1 -> 0: mean 0.5.
        // approx KL: row 0: (0.5 - ln 1.5 + (-0.5) - ln 0.5) / 2; row 1: 0.1 - ln 1.1.
        let (cf, kl) = update_diagnostics(logp, old, mask, 0.2);
        assert!((scalar(cf) - 0.5).abs() < 1e-6);
        let row0 = (0.5 - 1.5f32.ln() - 0.5 - 0.5f32.ln()) / 2.0;
        let row1 = 0.1 - 1.1f32.ln();
        assert!((scalar(kl) - (row0 + row1) / 2.0).abs() < 1e-5);
    }

    #[test]
    fn aggregations_by_hand() {
        // Per-token losses [[1, 1], [2, 2, 2, 2]]: lengths 2 and 4.
        let device = Device::flex();
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 1.0, 9.0, 9.0, 2.0, 2.0, 2.0, 2.0], [2, 4]),
            &device,
        );
        let mask = Tensor::<2, Bool>::from_data(
            TensorData::new(
                vec![true, true, false, false, true, true, true, true],
                [2, 4],
            ),
            &device,
        );
        let mb = Minibatch {
            sequences: 2,
            tokens: 6,
            max_new_tokens: 4,
        };
        let of = |how| scalar(aggregate(x.clone(), mask.clone(), how, mb));
        assert!((of(LossAggregation::SeqMeanTokenMean) - 1.5).abs() < 1e-6);
        assert!((of(LossAggregation::TokenMean) - 10.0 / 6.0).abs() < 1e-6);
        assert!((of(LossAggregation::Constant) - 1.25).abs() < 1e-6);
        assert!((of(LossAggregation::SeqMeanTokenSum) - 5.0).abs() < 1e-6);
        // Split into two micro-batches of one row each, weighted by their shares (1/2 each),
        // token_mean still divides by the minibatch's 6 tokens.
        let row = |b: usize| {
            (
                x.clone().slice([b..b + 1, 0..4]),
                mask.clone().slice([b..b + 1, 0..4]),
            )
        };
        for how in [
            LossAggregation::SeqMeanTokenMean,
            LossAggregation::TokenMean,
            LossAggregation::Constant,
            LossAggregation::SeqMeanTokenSum,
        ] {
            let split: f32 = (0..2)
                .map(|b| {
                    let (v, m) = row(b);
                    0.5 * scalar(aggregate(v, m, how, mb))
                })
                .sum();
            assert!(
                (split - of(how)).abs() < 1e-6,
                "{how:?}: {split} vs {}",
                of(how)
            );
        }
    }

    #[test]
    fn kl_token_estimates_by_hand() {
        let device = Device::flex();
        let d = 2f32.ln();
        let lp = t(vec![0.5f32.ln(), 0.0], &device);
        let rp = t(vec![0.25f32.ln(), 0.0], &device);
        let v = |e| {
            kl_tokens(lp.clone(), rp.clone(), e)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        assert!((v(KlEstimator::K1)[0] - d).abs() < 1e-6);
        assert!((v(KlEstimator::K2)[0] - 0.2402265).abs() < 1e-6);
        assert!((v(KlEstimator::K3)[0] - 0.1931472).abs() < 1e-6);
        assert_eq!(v(KlEstimator::K3)[1], 0.0);
    }

    #[test]
    fn value_loss_by_hand() {
        let device = Device::flex();
        let v = t(vec![1.0, 10.0, 0.0, -3.0], &device);
        let old = t(vec![0.0, 0.0, 0.0, 0.0], &device);
        let ret = t(vec![2.0, 0.0, 1.0, 0.0], &device);
        let mask = m(vec![true, true, true, false], &device);
        // ε = 5. Row 0: t0: V = 1 (inside the clip), max(1, 1) = 1; t1: V = 10, clipped 5:
        // max(100, 25) = 100; mean 50.5. Row 1: t0: max(1, 1) = 1. Mean 25.75, times 0.5.
        let loss = scalar(clipped_value_loss(v, old, ret, mask, 5.0));
        assert!((loss - 12.875).abs() < 1e-4, "{loss}");
    }
}

//! From a model's logits to the distribution a policy samples from and is trained on.
//!
//! RL needs the distribution the sampler drew from and the distribution the learner computes
//! log-probabilities with to be the same one, or the importance ratios and the KL estimate are
//! off-policy. [`LogitPolicy`] is that one distribution: the logits divided by the sampling
//! temperature (TRL's convention; lm-human-preferences did the same), with the ids a response may
//! not contain (ids past the tokenizer's vocabulary, padding, `<unk>`, special tokens other than
//! the stop ids) pushed to a probability of zero. The sampler (`saferlhf-rollout`), every
//! log-prob of the RL learner (old, reference, current) and policy evaluation apply the same one.
//!
//! Top-k / top-p truncation is not part of it: the learner rejects them in an RL config.

use burn::tensor::{Device, Int, Tensor, TensorData};

/// The logit added to a blocked id: its probability underflows to exactly 0 in f32 (and in
/// half precision), while `0 * logit` stays finite (−∞ would make entropies NaN).
pub const BLOCKED_LOGIT: f32 = -1e9;

/// Temperature and blocked ids: see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct LogitPolicy {
    /// Divides the logits (> 0; 1 leaves them as they are).
    pub temperature: f32,
    /// Ids that get [`BLOCKED_LOGIT`] (those outside the model's vocabulary are ignored).
    pub blocked: Vec<u32>,
}

impl Default for LogitPolicy {
    fn default() -> Self {
        LogitPolicy {
            temperature: 1.0,
            blocked: Vec::new(),
        }
    }
}

impl LogitPolicy {
    /// The identity: temperature 1, nothing blocked.
    pub fn identity() -> Self {
        Self::default()
    }

    /// Whether [`LogitPolicy::apply`] changes nothing.
    pub fn is_identity(&self) -> bool {
        self.temperature == 1.0 && self.blocked.is_empty()
    }

    /// The additive mask over a vocabulary of `vocab` ids (0, or [`BLOCKED_LOGIT`] at blocked
    /// ids); `None` when nothing is blocked. Build it once for many [`LogitPolicy::apply_with`].
    pub fn mask(&self, vocab: usize, device: &Device) -> Option<Tensor<1>> {
        if self.blocked.is_empty() {
            return None;
        }
        let mut bias = vec![0.0f32; vocab];
        for &id in &self.blocked {
            if let Some(b) = bias.get_mut(id as usize) {
                *b = BLOCKED_LOGIT;
            }
        }
        Some(Tensor::from_data(TensorData::new(bias, [vocab]), device))
    }

    /// `logits` (vocabulary last) with `mask` added and divided by the temperature.
    pub fn apply_with<const D: usize>(
        &self,
        logits: Tensor<D>,
        mask: Option<&Tensor<1>>,
    ) -> Tensor<D> {
        let logits = match mask {
            Some(m) => {
                let mut shape = [1usize; D];
                shape[D - 1] = m.dims()[0];
                logits + m.clone().reshape(shape)
            }
            None => logits,
        };
        if self.temperature == 1.0 {
            logits
        } else {
            logits / self.temperature
        }
    }

    /// `logits` (vocabulary last) as this policy's: blocked ids masked, divided by the
    /// temperature.
    pub fn apply<const D: usize>(&self, logits: Tensor<D>) -> Tensor<D> {
        if self.is_identity() {
            return logits;
        }
        let vocab = logits.dims()[D - 1];
        let mask = self.mask(vocab, &logits.device());
        self.apply_with(logits, mask.as_ref())
    }

    /// Log-probabilities of `ids` under this policy: `log softmax(apply(logits))[.., ids]`,
    /// [batch, n, vocab] and [batch, n] -> [batch, n].
    pub fn select(&self, logits: Tensor<3>, ids: Tensor<2, Int>) -> Tensor<2> {
        crate::model::select_logprobs(self.apply(logits), ids)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::log_softmax;

    use super::*;

    fn host(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// The reference values: logits [2, 0] give log p(0) = −0.1269280 at T = 1 and −0.0181499 at
    /// T = 0.5 (log(1 / (1 + e^-2)) and log(1 / (1 + e^-4))).
    #[test]
    fn temperature_scales_the_logits_of_the_log_probs() {
        let device = Device::flex();
        let logits = Tensor::<3>::from_data(TensorData::new(vec![2.0f32, 0.0], [1, 1, 2]), &device);
        let id = Tensor::<2, Int>::from_data(TensorData::new(vec![0i64], [1, 1]), &device);
        let at = |t: f32| {
            let p = LogitPolicy {
                temperature: t,
                blocked: vec![],
            };
            host(p.select(logits.clone(), id.clone()))[0]
        };
        assert!((at(1.0) - -0.126_928).abs() < 1e-6, "{}", at(1.0));
        assert!((at(0.5) - -0.018_149_9).abs() < 1e-6, "{}", at(0.5));
        // The ratio a mismatch (sampling at 0.5, training at 1) would give on the first step.
        assert!(((at(0.5) - at(1.0)).exp() - 1.114_915).abs() < 1e-5);
    }

    /// Head size 6, tokenizer 4: ids 4 and 5 get probability 0 and the others renormalise.
    #[test]
    fn blocked_ids_get_zero_probability_and_the_rest_renormalise() {
        let device = Device::flex();
        let raw = vec![0.5f32, -1.0, 2.0, 0.0, 3.0, 1.0];
        let logits = Tensor::<2>::from_data(TensorData::new(raw.clone(), [1, 6]), &device);
        let p = LogitPolicy {
            temperature: 1.0,
            blocked: vec![4, 5, 17],
        };
        let logp = host(log_softmax(p.apply(logits), 1));
        let z: f32 = raw[..4].iter().map(|x| x.exp()).sum();
        for (i, &x) in raw[..4].iter().enumerate() {
            assert!((logp[i] - (x - z.ln())).abs() < 1e-6, "{i}: {}", logp[i]);
        }
        assert!(logp[4].exp() == 0.0 && logp[5].exp() == 0.0, "{logp:?}");
        // Entropy-style products stay finite.
        let ent: f32 = logp.iter().map(|l| l.exp() * l).sum();
        assert!(ent.is_finite());
        assert!(LogitPolicy::identity().is_identity() && !p.is_identity());
    }
}

//! Next-token samplers. Everything that touches the vocabulary axis runs on the device; the host
//! supplies one uniform number per row (from a seeded ChaCha stream, so a seed fixes the tokens)
//! and reads back only the chosen ids.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How the next token is chosen from the logits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sampler {
    /// The most likely token.
    Greedy,
    /// A draw from softmax(logits / temperature), optionally restricted to the `top_k` most
    /// likely tokens and/or the smallest set whose probability reaches `top_p` (nucleus).
    Sample {
        /// Softmax temperature (> 0).
        temperature: f32,
        /// Keep only the k most likely tokens (None: no limit).
        top_k: Option<usize>,
        /// Keep the smallest prefix of tokens, by probability, whose mass reaches p (None or 1.0:
        /// no limit).
        top_p: Option<f32>,
    },
}

impl Sampler {
    /// Plain sampling at temperature 1 (the RLHF default: log-probs are the policy's own).
    pub fn multinomial() -> Self {
        Sampler::Sample {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        }
    }

    /// Checks the parameters; the error names the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        if let Sampler::Sample {
            temperature,
            top_k,
            top_p,
        } = *self
        {
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(format!("temperature must be > 0, got {temperature}"));
            }
            if top_k == Some(0) {
                return Err("top_k must be at least 1".into());
            }
            if let Some(p) = top_p
                && !(p > 0.0 && p <= 1.0)
            {
                return Err(format!("top_p must be in (0, 1], got {p}"));
            }
        }
        Ok(())
    }
}

/// Chooses one token per row of `logits` [batch, vocab].
///
/// Returns the ids [batch] and their log-probabilities [batch] under the temperature-scaled
/// model distribution before any top-k/top-p truncation (for greedy: under the plain softmax).
pub fn sample_next(
    logits: Tensor<2>,
    sampler: &Sampler,
    rng: &mut ChaCha8Rng,
) -> (Tensor<1, Int>, Tensor<1>) {
    let [batch, vocab] = logits.dims();
    let device = logits.device();
    let (ids, logp_all) = match *sampler {
        Sampler::Greedy => {
            let ids = logits.clone().argmax(1);
            (ids, log_softmax(logits, 1))
        }
        Sampler::Sample {
            temperature,
            top_k,
            top_p,
        } => {
            let logp_all = log_softmax(logits / temperature, 1);
            let probs = logp_all.clone().exp();
            let top_p = top_p.filter(|p| *p < 1.0);
            let k = top_k.map(|k| k.min(vocab));
            // Candidates [batch, n] and, when truncated, their vocabulary ids.
            let (cand, cand_ids) = match (k, top_p) {
                (None, None) => (probs, None),
                (Some(k), None) => {
                    let (p, i) = probs.topk_with_indices(k, 1);
                    (p, Some(i))
                }
                (k, Some(_)) => {
                    let (p, i) = probs.sort_descending_with_indices(1);
                    let n = k.unwrap_or(vocab);
                    (p.slice([0..batch, 0..n]), Some(i.slice([0..batch, 0..n])))
                }
            };
            let cand = match top_p {
                // Keep a token when the mass strictly before it is below p (the first always is).
                Some(p) => {
                    let before = cand.clone().cumsum(1) - cand.clone();
                    cand.clone() * before.lower_elem(p).float()
                }
                None => cand,
            };
            let n = cand.dims()[1];
            let cdf = cand.cumsum(1);
            let total = cdf.clone().slice([0..batch, n - 1..n]);
            let uniforms: Vec<f32> = (0..batch).map(|_| rng.random::<f32>()).collect();
            let u = Tensor::<2>::from_data(TensorData::new(uniforms, [batch, 1]), &device) * total;
            // Inverse CDF: the first candidate whose cumulative mass exceeds u.
            let pos = cdf
                .lower_equal(u)
                .int()
                .sum_dim(1)
                .clamp_max((n - 1) as i64);
            let ids = match cand_ids {
                Some(cand_ids) => cand_ids.gather(1, pos),
                None => pos,
            };
            (ids, logp_all)
        }
    };
    let ids = ids.reshape([batch, 1]);
    let logp = logp_all.gather(1, ids.clone()).reshape([batch]);
    (ids.reshape([batch]), logp)
}

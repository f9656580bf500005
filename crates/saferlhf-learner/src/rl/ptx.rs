//! The PTX loss (`[ptx]`): supervised examples mixed into the actor's update, as safe-rlhf's
//! trainer does with its `ptx_coeff` (see [`super::config::PtxSettings`]). The examples are
//! loaded like an SFT stage's (same template and truncation), drawn in a seeded per-epoch order
//! whose position is saved in each checkpoint, and scored with the plain next-token
//! cross-entropy of [`crate::losses::sft_loss`] (no temperature: it is a supervised loss).

use burn::tensor::{Device, Tensor};
use saferlhf_core::rng::SplitMix64;
use saferlhf_model::LlamaForCausalLM;

use super::config::RlConfig;
use super::prompts::PromptCursor;
use crate::collate::{Encoded, Encoder, sft_batch};
use crate::config::{DataConfig, TaskKind, TrainConfig};
use crate::data::load_sft_examples;
use crate::error::{Result, TrainError};
use crate::losses::sft_loss;

/// The PTX examples of a run and where the stream stands.
pub struct Ptx {
    /// Every example (the held-out split of the loader is used too).
    pub examples: Vec<Encoded>,
    /// The order they are drawn in.
    pub cursor: PromptCursor,
    /// The loss weight.
    pub coeff: f64,
    /// Examples per actor optimizer step.
    pub batch_size: usize,
    /// The padding id.
    pub pad_id: u32,
}

impl Ptx {
    /// Loads `[ptx]`'s sources with the policy's encoder; `None` without sources. `at` is the
    /// stream's saved `(epoch, position)` of a resumed run.
    pub fn load(config: &RlConfig, encoder: &Encoder, at: (u64, usize)) -> Result<Option<Ptx>> {
        let p = &config.ptx;
        if p.sources.is_empty() {
            return Ok(None);
        }
        // The sources as the data of an SFT stage with the policy's model section.
        let sft = TrainConfig {
            task: Some(TaskKind::Sft),
            run: config.run.clone(),
            model: config.policy.clone(),
            data: DataConfig {
                sources: p.sources.clone(),
                ..DataConfig::default()
            },
            ..TrainConfig::default()
        };
        let data = load_sft_examples(&sft, encoder).map_err(|e| match e {
            TrainError::Config { key, reason } => {
                TrainError::config(key.replacen("data.", "ptx.", 1), reason)
            }
            other => other,
        })?;
        let mut examples = data.train;
        examples.extend(data.eval);
        if examples.is_empty() {
            return Err(TrainError::config("ptx.sources", "no examples"));
        }
        let seed = SplitMix64::keyed(config.run.seed, "ptx").next_u64();
        Ok(Some(Ptx {
            cursor: PromptCursor::new(examples.len(), seed, at.0, at.1),
            examples,
            coeff: p.coeff,
            batch_size: p.batch_size,
            pad_id: encoder.pad_id(),
        }))
    }

    /// The next batch of the stream.
    pub fn next_batch(&mut self) -> Vec<Encoded> {
        let idx = self
            .cursor
            .next_indices(self.examples.len(), self.batch_size);
        idx.into_iter().map(|i| self.examples[i].clone()).collect()
    }

    /// `(coeff × cross-entropy, cross-entropy)` of `batch` under `policy` on `device`.
    pub fn loss(
        &self,
        policy: &LlamaForCausalLM,
        batch: &[&Encoded],
        device: &Device,
    ) -> (Tensor<1>, Tensor<1>) {
        ptx_loss(policy, batch, self.pad_id, self.coeff, device)
    }
}

/// `(coeff × cross-entropy, cross-entropy)` of supervised `batch` under `policy`: the mean
/// next-token negative log-likelihood over the response tokens.
pub fn ptx_loss(
    policy: &LlamaForCausalLM,
    batch: &[&Encoded],
    pad_id: u32,
    coeff: f64,
    device: &Device,
) -> (Tensor<1>, Tensor<1>) {
    let b = sft_batch(batch, pad_id, device);
    let logits = policy.forward(b.tokens.clone(), b.mask);
    let ce = sft_loss(logits, b.tokens, b.loss_mask);
    (ce.clone().mul_scalar(coeff), ce)
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::log_softmax;

    use super::*;
    use saferlhf_model::LlamaConfig;

    /// The loss against a hand computation on the host: coeff × the mean over response tokens of
    /// −log softmax(logits)[next token], from the model's logits read back.
    #[test]
    fn loss_is_coeff_times_the_mean_response_token_cross_entropy() {
        let device = Device::flex();
        let model = LlamaForCausalLM::new(&LlamaConfig::micro(32), &device);
        let examples = [
            Encoded {
                tokens: vec![5, 6, 7, 8, 9],
                prompt_len: 2,
                truncated: false,
            },
            Encoded {
                tokens: vec![11, 12, 13],
                prompt_len: 1,
                truncated: false,
            },
        ];
        let batch: Vec<&Encoded> = examples.iter().collect();
        let (scaled, ce) = ptx_loss(&model, &batch, 0, 16.0, &device);
        let host = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap()[0] as f64;
        let (scaled, ce) = (host(scaled), host(ce));

        // Right-padded rows of length 5; response tokens: row 0 at 2, 3, 4; row 1 at 1, 2.
        let b = sft_batch(&batch, 0, &device);
        let logp = log_softmax(model.forward(b.tokens, b.mask), 2)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let v = 32;
        let (mut sum, mut n) = (0f64, 0);
        for (r, e) in examples.iter().enumerate() {
            for t in e.prompt_len..e.tokens.len() {
                // Logits at t - 1 predict token t.
                let at = (r * 5 + t - 1) * v + e.tokens[t] as usize;
                sum -= logp[at] as f64;
                n += 1;
            }
        }
        let expected = sum / n as f64;
        assert_eq!(n, 5);
        assert!((ce - expected).abs() < 1e-5, "{ce} vs {expected}");
        assert!((scaled - 16.0 * expected).abs() < 1e-4, "{scaled}");
    }
}

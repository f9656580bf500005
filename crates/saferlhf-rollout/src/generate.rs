//! The generation loop: left-pad, prefill the KV cache once, then one token per step for every
//! row until each row has hit a stop id or `max_new_tokens`.

use std::time::Instant;

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use saferlhf_model::model::positions_from_mask;
use saferlhf_model::{DecodeWeights, KvCache, LlamaForCausalLM, LogitPolicy, ModelError};
use serde::{Deserialize, Serialize};

use crate::sampler::{Sampler, sample_next};

/// Errors of [`generate`]; each names the prompt or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// No prompts were given.
    #[error("no prompts to generate from")]
    NoPrompts,
    /// A prompt has no tokens.
    #[error("prompt {index} is empty")]
    EmptyPrompt {
        /// Position of the prompt in the batch.
        index: usize,
    },
    /// A prompt plus the requested new tokens does not fit the model's context.
    #[error(
        "prompt {index} has {len} tokens; with max_new_tokens = {new} that exceeds the model's context of {max} positions"
    )]
    PromptTooLong {
        /// Position of the prompt in the batch.
        index: usize,
        /// Tokens in the prompt.
        len: usize,
        /// Requested new tokens.
        new: usize,
        /// The model's `max_position_embeddings`.
        max: usize,
    },
    /// A prompt holds a token id outside the vocabulary.
    #[error("prompt {index} holds token id {id}, outside the vocabulary of {vocab}")]
    TokenOutOfVocab {
        /// Position of the prompt in the batch.
        index: usize,
        /// The offending id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// A generation setting is out of range.
    #[error("generation setting `{field}`: {reason}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Settings of one generation call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateConfig {
    /// Most tokens generated per row (the stop token included).
    pub max_new_tokens: usize,
    /// A row stops after emitting any of these ids (kept in the response, masked as real).
    pub stop_ids: Vec<u32>,
    /// Id written at padding positions (left of short prompts, right of finished responses).
    pub pad_id: u32,
    /// How each token is chosen.
    pub sampler: Sampler,
    /// Seed of the sampler's random stream.
    pub seed: u64,
    /// Reuse keys and values across steps (true) or recompute the whole prefix each step
    /// (false; slow, kept as the reference the cache is tested against).
    pub use_cache: bool,
    /// Ids never sampled (probability 0; see [`saferlhf_model::LogitPolicy`]): the RL learner
    /// and policy evaluation pass the tokenizer's [`blocked_ids`], so responses hold only text
    /// and stop tokens. Empty: every id may be drawn.
    ///
    /// [`blocked_ids`]: saferlhf_model::tokenizer::Tokenizer::blocked_ids
    #[serde(default)]
    pub blocked_ids: Vec<u32>,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            max_new_tokens: 64,
            stop_ids: Vec::new(),
            pad_id: 0,
            sampler: Sampler::Greedy,
            seed: 0,
            use_cache: true,
            blocked_ids: Vec::new(),
        }
    }
}

/// A generated batch. Sequences are the left-padded prompts (width `prompt_len`) followed by the
/// responses (width `sequences.dims()[1] - prompt_len`), right-padded after each row stops.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// Prompt and response tokens, [batch, prompt_len + new].
    pub sequences: Tensor<2, Int>,
    /// True at real (non-pad) tokens, [batch, prompt_len + new].
    pub attention_mask: Tensor<2, Bool>,
    /// True at generated real tokens, [batch, prompt_len + new].
    pub response_mask: Tensor<2, Bool>,
    /// Log-probability of each generated token under the sampling distribution, 0 at padding,
    /// [batch, new].
    pub logprobs: Tensor<2>,
    /// Width of the left-padded prompt block.
    pub prompt_len: usize,
    /// Response tokens of each row (stop token included, padding excluded).
    pub responses: Vec<Vec<u32>>,
    /// Whether each row ended on a stop id (false: it ran out of `max_new_tokens`).
    pub stopped: Vec<bool>,
    /// Wall-clock seconds spent generating (prefill included).
    pub seconds: f64,
}

impl Rollout {
    /// Number of generated (non-pad) tokens over all rows.
    pub fn new_tokens(&self) -> usize {
        self.responses.iter().map(Vec::len).sum()
    }
}

/// A left-padded prompt block on the host: tokens and mask, row-major [batch, width].
#[derive(Debug, Clone, PartialEq)]
pub struct PaddedPrompts {
    /// Token ids, pad ids on the left of short rows.
    pub tokens: Vec<u32>,
    /// True at real tokens.
    pub mask: Vec<bool>,
    /// Number of rows.
    pub batch: usize,
    /// Common width (the longest prompt).
    pub width: usize,
}

/// Left-pads `prompts` to the longest one with `pad_id`.
pub fn left_pad(prompts: &[Vec<u32>], pad_id: u32) -> Result<PaddedPrompts, RolloutError> {
    if prompts.is_empty() {
        return Err(RolloutError::NoPrompts);
    }
    if let Some(index) = prompts.iter().position(Vec::is_empty) {
        return Err(RolloutError::EmptyPrompt { index });
    }
    let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut tokens = Vec::with_capacity(prompts.len() * width);
    let mut mask = Vec::with_capacity(prompts.len() * width);
    for prompt in prompts {
        let pad = width - prompt.len();
        tokens.extend(std::iter::repeat_n(pad_id, pad).chain(prompt.iter().copied()));
        mask.extend(std::iter::repeat_n(false, pad).chain(std::iter::repeat_n(true, prompt.len())));
    }
    Ok(PaddedPrompts {
        tokens,
        mask,
        batch: prompts.len(),
        width,
    })
}

fn int_tensor(values: &[u32], shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    let values: Vec<i64> = values.iter().map(|&v| v as i64).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn bool_tensor(values: &[bool], shape: [usize; 2], device: &Device) -> Tensor<2, Bool> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

/// Generates a response for every prompt (token ids, already templated) in one batch.
///
/// On the CPU backend the model's weights are first repacked for decode-sized products
/// ([`DecodeWeights`]); a caller that generates several batches with the same weights can pack
/// once and call [`generate_with`].
pub fn generate(
    model: &LlamaForCausalLM,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
    device: &Device,
) -> Result<Rollout, RolloutError> {
    let packed = if config.use_cache {
        model.pack_for_decode()
    } else {
        None
    };
    generate_with(model, packed.as_ref(), prompts, config, device)
}

/// [`generate`] with the decode weights given: `packed` must come from `model`'s current weights
/// ([`LlamaForCausalLM::pack_for_decode`]), or be `None` for the ordinary path. It is used only
/// with the KV cache.
pub fn generate_with(
    model: &LlamaForCausalLM,
    packed: Option<&DecodeWeights>,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
    device: &Device,
) -> Result<Rollout, RolloutError> {
    // Run the loop on a thread of rayon's pool, the pool the CPU backend and the packed decode
    // products split their work over: a product started there is shared with the pool's other
    // threads directly, where from an outside thread every one of the hundreds of products per
    // step would be handed over and waited for, costing two thread switches each.
    rayon::scope(|_| {
        let start = Instant::now();
        config
            .sampler
            .validate()
            .map_err(|reason| RolloutError::Config {
                field: "sampler",
                reason,
            })?;
        if config.max_new_tokens == 0 {
            return Err(RolloutError::Config {
                field: "max_new_tokens",
                reason: "must be at least 1".into(),
            });
        }
        let vocab = model.vocab_size();
        if config.pad_id as usize >= vocab {
            return Err(RolloutError::Config {
                field: "pad_id",
                reason: format!("{} is outside the vocabulary of {vocab}", config.pad_id),
            });
        }
        let padded = left_pad(prompts, config.pad_id)?;
        for (index, prompt) in prompts.iter().enumerate() {
            if let Some(&id) = prompt.iter().find(|&&id| id as usize >= vocab) {
                return Err(RolloutError::TokenOutOfVocab { index, id, vocab });
            }
            if prompt.len() + config.max_new_tokens > model.max_positions() {
                return Err(RolloutError::PromptTooLong {
                    index,
                    len: prompt.len(),
                    new: config.max_new_tokens,
                    max: model.max_positions(),
                });
            }
        }

        let (batch, width) = (padded.batch, padded.width);
        let total = width + config.max_new_tokens;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        // Blocked ids: the same additive mask before every draw (the sampler adds the temperature).
        let blocking = LogitPolicy {
            temperature: 1.0,
            blocked: config.blocked_ids.clone(),
        };
        let block_mask = blocking.mask(vocab, device);
        // Host copies of the growing sequences, row-major with a stride of `total`.
        let mut tokens = vec![config.pad_id; batch * total];
        let mut mask = vec![false; batch * total];
        for row in 0..batch {
            tokens[row * total..row * total + width]
                .copy_from_slice(&padded.tokens[row * width..(row + 1) * width]);
            mask[row * total..row * total + width]
                .copy_from_slice(&padded.mask[row * width..(row + 1) * width]);
        }
        // RoPE position of the next token of each row = number of real tokens so far.
        let mut next_pos: Vec<i64> = (0..batch)
            .map(|r| {
                padded.mask[r * width..(r + 1) * width]
                    .iter()
                    .filter(|&&m| m)
                    .count() as i64
            })
            .collect();

        let (kv_heads, head_dim) = model.kv_shape();
        let mut cache = config
            .use_cache
            .then(|| KvCache::new(model.num_layers(), batch, kv_heads, head_dim, total, device));

        // On the CPU backend, decode steps multiply a few rows by every weight: with the weights
        // packed, each step streams them at memory speed.
        let packed = packed.filter(|_| config.use_cache);
        let logits_of = |hidden: Tensor<3>| match packed {
            Some(packed) => model.logits_packed(hidden, packed),
            None => model.logits(hidden),
        };

        // Prefill: the whole prompt block at once; keep only the last position's logits.
        let prompt_tokens = int_tensor(&padded.tokens, [batch, width], device);
        let prompt_mask = bool_tensor(&padded.mask, [batch, width], device);
        let positions = positions_from_mask(prompt_mask.clone());
        let hidden = model.forward_hidden(prompt_tokens, positions, prompt_mask, cache.as_mut());
        let hidden_dim = hidden.dims()[2];
        let mut logits = logits_of(hidden.slice([0..batch, width - 1..width, 0..hidden_dim]))
            .reshape([batch, vocab]);

        let mut finished = vec![false; batch];
        let mut stopped = vec![false; batch];
        let mut responses = vec![Vec::new(); batch];
        let mut step_logprobs = Vec::with_capacity(config.max_new_tokens);
        let mut steps = 0;
        for step in 0..config.max_new_tokens {
            let masked = blocking.apply_with(logits.clone(), block_mask.as_ref());
            let (ids, logp) = sample_next(masked, &config.sampler, &mut rng);
            let ids: Vec<i64> = ids
                .try_into_vec_as::<i64>()
                .map_err(|e| ModelError::InvalidInput(format!("reading sampled ids: {e:?}")))?;
            let col = width + step;
            let mut live = vec![false; batch];
            for row in 0..batch {
                if finished[row] {
                    continue;
                }
                let id = ids[row] as u32;
                tokens[row * total + col] = id;
                mask[row * total + col] = true;
                live[row] = true;
                responses[row].push(id);
                if config.stop_ids.contains(&id) {
                    finished[row] = true;
                    stopped[row] = true;
                }
            }
            let live_t = Tensor::<1, Bool>::from_data(TensorData::new(live, [batch]), device);
            step_logprobs.push(logp.mask_fill(live_t.bool_not(), 0.0));
            steps = step + 1;
            if finished.iter().all(|&f| f) || steps == config.max_new_tokens {
                break;
            }

            // Feed the new tokens (finished rows get a masked pad) and compute the next logits.
            let keys = col + 1;
            let key_mask: Vec<bool> = (0..batch)
                .flat_map(|r| mask[r * total..r * total + keys].iter().copied())
                .collect();
            let key_mask = bool_tensor(&key_mask, [batch, keys], device);
            let hidden = match cache.as_mut() {
                Some(cache) => {
                    let new: Vec<u32> = (0..batch).map(|r| tokens[r * total + col]).collect();
                    let pos: Vec<i64> = next_pos.clone();
                    let positions =
                        Tensor::<2, Int>::from_data(TensorData::new(pos, [batch, 1]), device);
                    let new = int_tensor(&new, [batch, 1], device);
                    match packed {
                        Some(packed) => model.forward_hidden_packed(
                            new,
                            positions,
                            key_mask,
                            Some(cache),
                            packed,
                        ),
                        None => model.forward_hidden(new, positions, key_mask, Some(cache)),
                    }
                }
                None => {
                    let seq: Vec<u32> = (0..batch)
                        .flat_map(|r| tokens[r * total..r * total + keys].iter().copied())
                        .collect();
                    let positions = positions_from_mask(key_mask.clone());
                    let hidden = model.forward_hidden(
                        int_tensor(&seq, [batch, keys], device),
                        positions,
                        key_mask,
                        None,
                    );
                    hidden.slice([0..batch, keys - 1..keys, 0..hidden_dim])
                }
            };
            for (row, pos) in next_pos.iter_mut().enumerate() {
                if mask[row * total + col] {
                    *pos += 1;
                }
            }
            logits = logits_of(hidden).reshape([batch, vocab]);
        }

        let used = width + steps;
        let trim = |values: &[u32]| -> Vec<u32> {
            (0..batch)
                .flat_map(|r| values[r * total..r * total + used].iter().copied())
                .collect()
        };
        let trim_mask = |values: &[bool]| -> Vec<bool> {
            (0..batch)
                .flat_map(|r| values[r * total..r * total + used].iter().copied())
                .collect()
        };
        let response_mask: Vec<bool> = (0..batch)
            .flat_map(|r| (0..used).map(move |c| (r, c)))
            .map(|(r, c)| c >= width && mask[r * total + c])
            .collect();
        Ok(Rollout {
            sequences: int_tensor(&trim(&tokens), [batch, used], device),
            attention_mask: bool_tensor(&trim_mask(&mask), [batch, used], device),
            response_mask: bool_tensor(&response_mask, [batch, used], device),
            logprobs: Tensor::stack(step_logprobs, 1),
            prompt_len: width,
            responses,
            stopped,
            seconds: start.elapsed().as_secs_f64(),
        })
    })
}

//! Batched generation (rollout) for saferlhf: left-padded prompts of different lengths, a KV
//! cache (prefill once, then one token per step), per-row stopping, and seeded samplers that run
//! on the device. The learner calls [`generate`] to collect experience; [`generate_text`] adds
//! the chat template, tokenizer and decoding for the CLI and examples.

mod batch;
mod generate;
mod sampler;
mod text;

pub use batch::{PaddedBatch, sequence_kl};
pub use generate::{
    GenerateConfig, PaddedPrompts, Rollout, RolloutError, generate, generate_with, left_pad,
};
pub use sampler::{Sampler, sample_next};
pub use text::{TextRollout, generate_text};

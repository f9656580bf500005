//! Batched generation (rollout) for saferlhf: left-padded prompts of different lengths, a KV
//! cache (prefill once, then one token per step), per-row stopping, and seeded samplers that run
//! on the device. The learner calls [`generate`] to collect experience; the CLI's `generate`
//! command prints its answers.

mod generate;
mod sampler;

pub use generate::{GenerateConfig, Rollout, RolloutError, generate, left_pad};
pub use sampler::{Sampler, sample_next};

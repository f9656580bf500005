//! The training prompts of an RL run and the order in which steps visit them.

use saferlhf_core::rng::epoch_permutation;
use saferlhf_data::{LoadOptions, PromptFormat, read_prompts};

use super::config::RlConfig;
use crate::collate::Encoder;
use crate::error::{Result, TrainError};

/// Loads the training prompts of the config, templated and tokenized (keeping the last
/// `policy.max_length - rollout.max_new_tokens` tokens of a long prompt).
pub fn load_prompt_ids(
    config: &RlConfig,
    encoder: &Encoder,
) -> Result<(Vec<String>, Vec<Vec<u32>>)> {
    let mut texts = Vec::new();
    for (i, source) in config.data.sources.iter().enumerate() {
        let format = match &source.field {
            Some(field) => PromptFormat::Jsonl {
                field: field.clone(),
            },
            None => PromptFormat::from_path(&source.path),
        };
        let opts = LoadOptions {
            skip_invalid: source.skip_invalid,
        };
        let (mut prompts, report) =
            read_prompts(&source.path, &format, &opts)?.collect_with_report()?;
        if !report.skipped.is_empty() {
            log::warn!(
                "data.sources.{i}: skipped {} malformed rows of {}",
                report.skipped.len(),
                source.path.display()
            );
        }
        if let Some(limit) = source.limit {
            prompts.truncate(limit);
        }
        texts.extend(prompts);
    }
    // Validation guarantees room for at least one prompt token.
    let max = config.policy.max_length - config.rollout.max_new_tokens;
    let mut ids = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        if text.trim().is_empty() {
            return Err(TrainError::config(
                "data.sources",
                format!("prompt {i} is empty"),
            ));
        }
        let mut p = encoder.prompt_ids(text)?;
        if p.len() > max {
            p.drain(..p.len() - max);
        }
        ids.push(p);
    }
    if ids.is_empty() {
        return Err(TrainError::config("data.sources", "no prompts"));
    }
    Ok((texts, ids))
}

/// Where the prompt stream stands: the next prompt is `permutation(seed, epoch)[position]`.
#[derive(Debug, Clone)]
pub struct PromptCursor {
    /// Prompt epoch.
    pub epoch: u64,
    /// Position in the epoch's permutation.
    pub position: usize,
    seed: u64,
    order: Vec<usize>,
}

impl PromptCursor {
    /// A cursor over `n` prompts shuffled by `seed`, at `(epoch, position)`.
    pub fn new(n: usize, seed: u64, epoch: u64, position: usize) -> Self {
        PromptCursor {
            epoch,
            position,
            seed,
            order: epoch_permutation(n, seed, epoch),
        }
    }

    /// The next `count` prompts (a new epoch, reshuffled, starts when one is used up).
    pub fn next_batch(&mut self, prompts: &[Vec<u32>], count: usize) -> Vec<Vec<u32>> {
        self.next_indices(prompts.len(), count)
            .into_iter()
            .map(|i| prompts[i].clone())
            .collect()
    }

    /// The indices of the next `count` of `n` prompts ([`PromptCursor::next_batch`]'s).
    pub fn next_indices(&mut self, n: usize, count: usize) -> Vec<usize> {
        let mut batch = Vec::with_capacity(count);
        while batch.len() < count {
            if self.position >= n {
                self.epoch += 1;
                self.position = 0;
                self.order = epoch_permutation(n, self.seed, self.epoch);
            }
            batch.push(self.order[self.position]);
            self.position += 1;
        }
        batch
    }

    /// The fractional epoch (for the metrics line).
    pub fn fractional_epoch(&self) -> f64 {
        self.epoch as f64 + self.position as f64 / self.order.len().max(1) as f64
    }
}

//! Text in, text out: template and tokenize prompts, generate, decode. The convenience layer the
//! CLI, the examples and the book use on top of [`generate`].

use burn::tensor::Device;
use saferlhf_model::tokenizer::{ChatTemplate, Tokenizer};
use saferlhf_model::{LlamaForCausalLM, ModelError};

use crate::generate::{GenerateConfig, Rollout, RolloutError, generate};

/// A rollout together with the decoded answers.
#[derive(Debug, Clone)]
pub struct TextRollout {
    /// The decoded response of each prompt (special tokens such as `<|im_end|>` removed).
    pub answers: Vec<String>,
    /// The underlying token-level rollout.
    pub rollout: Rollout,
}

/// Renders each prompt with `template`, tokenizes, generates and decodes.
///
/// When `config.stop_ids` is empty the template's stop ids are used (for ChatML `<|im_end|>` and
/// the end-of-sequence id); the tokenizer's pad id replaces `config.pad_id`.
pub fn generate_text(
    model: &LlamaForCausalLM,
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    prompts: &[&str],
    config: &GenerateConfig,
    device: &Device,
) -> Result<TextRollout, RolloutError> {
    // The model's own template is compiled once here, not once per prompt.
    let template = &template.resolve(tokenizer)?;
    let encoded = prompts
        .iter()
        .map(|p| tokenizer.encode_prompt(template, p))
        .collect::<Result<Vec<_>, ModelError>>()?;
    let mut config = config.clone();
    if config.stop_ids.is_empty() {
        config.stop_ids = template.stop_ids(tokenizer)?;
    }
    config.pad_id = tokenizer.pad_id();
    let rollout = generate(model, &encoded, &config, device)?;
    let answers = rollout
        .responses
        .iter()
        .map(|ids| tokenizer.decode(ids, true))
        .collect::<Result<Vec<_>, ModelError>>()?;
    Ok(TextRollout { answers, rollout })
}

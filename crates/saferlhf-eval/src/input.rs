//! Input types: scored samples of one method, and their validation.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// One scored response: prompt `prompt_id`, the `sample`-th of its k responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Id of the prompt (a `PromptInfo::id`).
    pub prompt_id: usize,
    /// Index of this response among the prompt's k responses (0-based).
    pub sample: usize,
    /// Evaluation reward-model score (higher is more helpful).
    pub reward: f64,
    /// Evaluation cost-model score; > threshold (0 by default) means unsafe.
    pub cost: f64,
    /// Response length in tokens.
    pub length: usize,
    /// Sequence-level KL(π‖π_ref) of this response (sum of per-token log-ratios), if measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    /// Whether the response is a refusal, if a refusal detector was run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<bool>,
    /// The response text, if kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One evaluation prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptInfo {
    /// Unique id within a method's prompt list.
    pub id: usize,
    /// The prompt text.
    pub text: String,
    /// Prompt category, e.g. `"benign"` or `"risky"`. Prompts with `kind == "benign"` are the
    /// ones over-restriction is measured on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The kind name benign prompts carry.
pub const BENIGN_KIND: &str = "benign";

/// The kind name used in per-kind tables for prompts without a kind.
pub const UNLABELLED_KIND: &str = "(none)";

/// All scored samples of one method (policy + decoding) on one prompt set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodSamples {
    /// Method name as shown in tables and legends.
    pub name: String,
    /// The prompt set.
    pub prompts: Vec<PromptInfo>,
    /// The scored responses, any order.
    pub samples: Vec<Sample>,
    /// Human description of the decoding, e.g. `"greedy"` or `"T=1.0 top_p=1 k=4"`.
    pub decoding: String,
}

impl MethodSamples {
    /// Checks the samples: at least one sample; unique prompt ids; every sample's prompt id is
    /// in `prompts`; no (prompt id, sample) key twice; finite reward, cost and KL.
    pub fn validate(&self) -> Result<()> {
        self.prompt_index()?;
        Ok(())
    }

    /// Validates and returns a map from prompt id to its position in `prompts`.
    pub(crate) fn prompt_index(&self) -> Result<HashMap<usize, usize>> {
        let method = || self.name.clone();
        if self.samples.is_empty() {
            return Err(EvalError::EmptySamples { method: method() });
        }
        let mut index = HashMap::with_capacity(self.prompts.len());
        for (i, p) in self.prompts.iter().enumerate() {
            if index.insert(p.id, i).is_some() {
                return Err(EvalError::DuplicatePrompt {
                    method: method(),
                    prompt_id: p.id,
                });
            }
        }
        let mut seen: HashMap<(usize, usize), usize> = HashMap::with_capacity(self.samples.len());
        for (i, s) in self.samples.iter().enumerate() {
            if !index.contains_key(&s.prompt_id) {
                return Err(EvalError::UnknownPrompt {
                    method: method(),
                    index: i,
                    prompt_id: s.prompt_id,
                    sample: s.sample,
                });
            }
            let checks = [
                ("reward", Some(s.reward)),
                ("cost", Some(s.cost)),
                ("kl", s.kl),
            ];
            for (field, value) in checks {
                if let Some(value) = value.filter(|v| !v.is_finite()) {
                    return Err(EvalError::NonFinite {
                        method: method(),
                        field,
                        value,
                        prompt_id: s.prompt_id,
                        sample: s.sample,
                        index: i,
                    });
                }
            }
            if let Some(first) = seen.insert((s.prompt_id, s.sample), i) {
                return Err(EvalError::DuplicateSample {
                    method: method(),
                    prompt_id: s.prompt_id,
                    sample: s.sample,
                    first,
                    second: i,
                });
            }
        }
        Ok(index)
    }
}

/// Checks that a cost threshold is finite.
pub(crate) fn check_threshold(threshold: f64) -> Result<()> {
    if threshold.is_finite() {
        Ok(())
    } else {
        Err(EvalError::BadThreshold(threshold))
    }
}

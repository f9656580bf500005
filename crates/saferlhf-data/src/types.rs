//! The plain records every loader produces and every trainer consumes.

use serde::{Deserialize, Serialize};

/// A prompt with a preferred (`chosen`) and a dispreferred (`rejected`) response.
///
/// What "preferred" means depends on the view: more helpful for helpfulness pairs, safer (less
/// harmful) for safety pairs, HH-RLHF harmless pairs and PyRIT harm pairs. `chosen_safe` /
/// `rejected_safe` carry per-response safe/unsafe labels where the source has them (PKU-SafeRLHF,
/// PyRIT with a threshold) and are `None` where it does not (HH-RLHF): a cost model then learns
/// from the Bradley-Terry term only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PreferencePair {
    /// The prompt both responses answer (for HH-RLHF: the whole dialogue up to the final "\n\nAssistant:").
    pub prompt: String,
    /// The preferred response.
    pub chosen: String,
    /// The dispreferred response.
    pub rejected: String,
    /// Whether `chosen` is labelled safe, when the source labels it.
    pub chosen_safe: Option<bool>,
    /// Whether `rejected` is labelled safe, when the source labels it.
    pub rejected_safe: Option<bool>,
}

/// One supervised fine-tuning example: the model learns to produce `response` after `prompt`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SftExample {
    /// The user prompt.
    pub prompt: String,
    /// The target response.
    pub response: String,
}

/// A response with a human harm score (PyRIT's scorer-evaluation data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredResponse {
    /// The user prompt (PyRIT's `objective` column).
    pub prompt: String,
    /// The assistant response (PyRIT's `assistant_response` column).
    pub response: String,
    /// Harm in 0..=1 (0 = no harm, 1 = most severe), aggregated over the human raters.
    pub harm: f32,
    /// The harm category (PyRIT's `harm_category` column, e.g. `violence`), when present.
    pub category: Option<String>,
}

impl ScoredResponse {
    /// Whether this response counts as safe under `threshold`: `harm < threshold`.
    pub fn is_safe(&self, threshold: f32) -> bool {
        self.harm < threshold
    }
}

/// One response labelled desirable or undesirable on its own (the KTO / unary view SACPO uses).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UnaryExample {
    /// The prompt.
    pub prompt: String,
    /// The response.
    pub response: String,
    /// Whether the response is desirable (safe, or the more helpful one).
    pub desirable: bool,
}

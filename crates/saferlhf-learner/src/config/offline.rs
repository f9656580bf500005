//! `[dpo]` and `[sacpo]`: the sections of the offline alignment runs (`saferlhf align`). They
//! live with the other config sections; the objectives that read them are in
//! `crate::objectives::{dpo, sacpo}`.

use serde::{Deserialize, Serialize};

use super::DataSource;
use super::defaults;

/// Where a response's log-probability sum starts (`dpo.sum_from`).
///
/// Both choices give the **same loss and gradient**: the tokens between the response start and
/// the first divergent token are shared by y_w and y_l, with the same context, so their
/// log-ratios cancel in the margin. They differ only in the reported implicit rewards
/// (`chosen_reward`, `rejected_reward`, and the log-probabilities), not in `margin`, `loss` or
/// `accuracy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SumFrom {
    /// Every response token (TRL, which SACPO uses): the sum starts after the prompt.
    #[default]
    Response,
    /// From the first token where the chosen and rejected sequences differ (safe-rlhf's DPO),
    /// never before the response start.
    Divergence,
}

/// Which preference of a PKU-SafeRLHF row picks the chosen response (`dpo.preference`).
/// HH-RLHF and PyRIT pairs have one ordering (the preferred / less harmful answer chosen) and
/// ignore it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    /// `better_response_id`: the more helpful response is chosen.
    #[default]
    Helpfulness,
    /// `safer_response_id`: the safer response is chosen.
    Safety,
    /// SafeDPO (arXiv 2505.20065): the helpfulness pair after the safety-aware transform (kept
    /// when the helpful response is safe, swapped when only it is unsafe, dropped when both
    /// are); needs safe/unsafe labels on both responses.
    SafetyAware,
}

impl Preference {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Preference::Helpfulness => "helpfulness",
            Preference::Safety => "safety",
            Preference::SafetyAware => "safety_aware",
        }
    }
}

/// `[dpo]`: one DPO run (also the resolved config of each SACPO stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpoConfig {
    /// β of the loss (> 0): the strength of the KL tie to the reference (0.1 in safe-rlhf and
    /// SACPO's helpfulness stage; SACPO's safety stage uses β/λ).
    pub beta: f64,
    /// Which PKU-SafeRLHF preference picks the chosen response: `helpfulness`, `safety`, or
    /// `safety_aware` (SafeDPO).
    pub preference: Preference,
    /// SafeDPO's margin Δ_m (>= 0): with `preference = "safety_aware"`, a safe-vs-unsafe pair
    /// must win by β·Δ-gap > Δ_m. 0 is plain DPO on the transformed pairs.
    pub margin: f64,
    /// Where the log-probability sums start: `response` (TRL) or `divergence` (safe-rlhf).
    pub sum_from: SumFrom,
}

impl Default for DpoConfig {
    fn default() -> Self {
        DpoConfig {
            beta: defaults::DPO_BETA,
            preference: Preference::default(),
            margin: 0.0,
            sum_from: SumFrom::default(),
        }
    }
}

/// Which alignment step runs first (`sacpo.order`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SacpoOrder {
    /// Helpfulness with β, then safety with β/λ (the paper's main setting).
    #[default]
    HelpfulnessFirst,
    /// Safety with β/λ, then helpfulness with β.
    SafetyFirst,
}

/// `[sacpo]`: the two stages of a SACPO run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SacpoConfig {
    /// `helpfulness_first` or `safety_first`.
    pub order: SacpoOrder,
    /// β of the helpfulness stage (> 0; 0.1 in the paper).
    pub beta: f64,
    /// λ (> 0): the safety stage uses β/λ (the paper: λ ∈ {1, 2, 4, 10}, β/λ from 0.1 to 0.01).
    pub lambda: f64,
    /// Where the log-probability sums start in both stages: `response` or `divergence`.
    pub sum_from: SumFrom,
    /// Data of the helpfulness stage (PKU-SafeRLHF rows give their `better_response_id` pair).
    pub helpfulness_sources: Vec<DataSource>,
    /// Data of the safety stage (PKU-SafeRLHF rows give their `safer_response_id` pair).
    pub safety_sources: Vec<DataSource>,
}

impl Default for SacpoConfig {
    fn default() -> Self {
        SacpoConfig {
            order: SacpoOrder::default(),
            beta: defaults::DPO_BETA,
            lambda: defaults::SACPO_LAMBDA,
            sum_from: SumFrom::default(),
            helpfulness_sources: Vec::new(),
            safety_sources: Vec::new(),
        }
    }
}

impl SacpoConfig {
    /// β/λ, the coefficient of the safety stage.
    pub fn safety_beta(&self) -> f64 {
        self.beta / self.lambda
    }
}

//! SACPO, Stepwise Alignment for Constrained Policy Optimization (Wachi et al., NeurIPS 2024),
//! as a list of DPO stages (ALGORITHMS.md §4).
//!
//! The constrained problem `max_π E[r] - β KL(π || π_ref)` s.t. `E[g] >= b` has the Lagrangian
//! optimum `π*_{r+λg} ∝ π_ref · exp((r + λg)/β)`, and
//!
//! ```text
//! π*_{r+λg}(y|x) ∝ π*_r(y|x) · exp(λ g(x, y) / β) = π*_r(y|x) · exp(g(x, y) / (β/λ))
//! ```
//!
//! so the optimum is reached in two alignment steps, each an ordinary DPO run:
//!
//! 1. DPO on the helpfulness pairs with β, from the initial (SFT) policy π_ref: gives π*_r;
//! 2. DPO on the safety pairs with **β/λ**, starting from π*_r **and with the frozen π*_r as
//!    the reference**.
//!
//! The order may be reversed (`order = "safety_first"`): safety with β/λ from π_ref, then
//! helpfulness with β from the safety-aligned model. In both orders each stage's reference is
//! the model the stage starts from, i.e. the frozen final model of the stage before (the first
//! stage's is the initial policy). λ is a fixed hyperparameter, not learned. P-SACPO then merges
//! the stage models' weights ([`crate::merge`]).
//!
//! This file only says *what* the stages are ([`stages`]); [`crate::align`](mod@crate::align) runs them, one run
//! directory each, through the ordinary trainer.

use serde::{Deserialize, Serialize};

use super::dpo::{Dpo, Preference, SumFrom};
use crate::config::{DataSource, defaults};

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

/// One SACPO stage: a DPO run on one preference view.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// 1-based position.
    pub index: usize,
    /// Which preference the stage aligns for.
    pub preference: Preference,
    /// The stage's loss (its β is the effective one: β or β/λ).
    pub objective: Dpo,
    /// The stage's data sources.
    pub sources: Vec<DataSource>,
}

impl Stage {
    /// The stage's subdirectory of the SACPO run directory: `stage-1-helpfulness`, ….
    pub fn dir_name(&self) -> String {
        format!("stage-{}-{}", self.index, self.preference.as_str())
    }
}

// ANCHOR: stages
/// The stages of a SACPO run, in order. Each stage starts from the final model of the one before
/// (the first from the initial policy) and uses that same model, frozen, as its reference.
pub fn stages(config: &SacpoConfig) -> Vec<Stage> {
    let helpfulness = (
        Preference::Helpfulness,
        Dpo::new(config.beta),
        config.helpfulness_sources.clone(),
    );
    let safety = (
        Preference::Safety,
        Dpo::new(config.safety_beta()),
        config.safety_sources.clone(),
    );
    let order = match config.order {
        SacpoOrder::HelpfulnessFirst => [helpfulness, safety],
        SacpoOrder::SafetyFirst => [safety, helpfulness],
    };
    order
        .into_iter()
        .enumerate()
        .map(|(i, (preference, objective, sources))| Stage {
            index: i + 1,
            preference,
            objective,
            sources,
        })
        .collect()
}
// ANCHOR_END: stages

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::OfflineObjective;

    #[test]
    fn stages_use_beta_then_beta_over_lambda() {
        let c = SacpoConfig {
            beta: 0.1,
            lambda: 4.0,
            ..SacpoConfig::default()
        };
        let s = stages(&c);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].preference, Preference::Helpfulness);
        assert_eq!(s[0].objective.beta(), 0.1);
        assert_eq!(s[1].preference, Preference::Safety);
        assert_eq!(s[1].objective.beta(), 0.025);
        assert_eq!(s[0].dir_name(), "stage-1-helpfulness");
        assert_eq!(s[1].dir_name(), "stage-2-safety");

        let r = stages(&SacpoConfig {
            order: SacpoOrder::SafetyFirst,
            ..c
        });
        assert_eq!(r[0].preference, Preference::Safety);
        assert_eq!(r[0].objective.beta(), 0.025);
        assert_eq!(r[1].objective.beta(), 0.1);
        assert_eq!(r[0].dir_name(), "stage-1-safety");
        assert_eq!(r[1].dir_name(), "stage-2-helpfulness");
    }
}

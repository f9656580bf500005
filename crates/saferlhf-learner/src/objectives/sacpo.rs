//! SACPO, Stepwise Alignment for Constrained Policy Optimization (Wachi et al., NeurIPS 2024),
//! as a list of DPO stages (Wachi et al., NeurIPS 2024).
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

use super::dpo::{Dpo, Preference};
use crate::config::DataSource;

pub use crate::config::offline::{SacpoConfig, SacpoOrder};

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

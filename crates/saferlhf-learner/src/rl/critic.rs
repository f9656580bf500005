//! The two value functions of the PPO family, in the two memory layouts of
//! [`CriticMode`](super::config::CriticMode).

use std::path::Path;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Bool, Int, Tensor};
use burn_store::{ModuleSnapshot, SafetensorsStore};
use saferlhf_model::score::critic_from;
use saferlhf_model::{CriticModel, ScoreModel, ScoreType};

use crate::error::{Result, TrainError};

/// One critic: a full score model, or a linear head on a frozen score model's hidden states.
// burn's Module derive does not see through `Box`, and a critic is built once per run: the size
// difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum CriticNet {
    /// A full decoder + head, initialised from a reward or cost model (safe-rlhf).
    Full(CriticModel),
    /// A value head `hidden -> 1` reading the frozen reward / cost model's final hidden states,
    /// initialised from that model's score head.
    Head(Linear),
}

impl CriticNet {
    /// A full critic copied from `score` (fresh parameter identities).
    pub fn full<K: ScoreType>(score: &ScoreModel<K>) -> Self {
        CriticNet::Full(critic_from(score))
    }

    /// A value head copied from `score`'s score head.
    pub fn head<K: ScoreType>(score: &ScoreModel<K>) -> Self {
        CriticNet::Head(critic_from(score).score_head)
    }

    /// Per-token values `[batch, seq]`: from `tokens` for a full critic, from `hidden`
    /// (`[batch, seq, hidden]`, the frozen score model's) for a head.
    pub fn values(
        &self,
        tokens: Tensor<2, Int>,
        attention_mask: Tensor<2, Bool>,
        hidden: Option<Tensor<3>>,
    ) -> Tensor<2> {
        let [b, s] = tokens.dims();
        match self {
            CriticNet::Full(model) => model.forward(tokens, attention_mask).scores,
            CriticNet::Head(head) => {
                let hidden = hidden.expect("a value head needs the score model's hidden states");
                head.forward(hidden).reshape([b, s])
            }
        }
    }

    /// Whether this critic reads a score model's hidden states.
    pub fn is_head(&self) -> bool {
        matches!(self, CriticNet::Head(_))
    }
}

/// The reward critic and (for methods with a cost stream) the cost critic, trained together by
/// one optimizer.
#[derive(Module, Debug)]
pub struct Critics {
    /// V_R.
    pub reward: CriticNet,
    /// V_C.
    pub cost: Option<CriticNet>,
}

impl Critics {
    /// Writes the critics' weights (burn parameter names) to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut store = SafetensorsStore::from_file(path);
        self.clone()
            .save_into(&mut store)
            .map_err(|e| TrainError::checkpoint(path, format!("cannot write the critics: {e}")))
    }

    /// Reads weights written by [`Critics::save`] into this (same-shaped) module; every tensor
    /// must be present.
    pub fn load(mut self, path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(TrainError::checkpoint(path, "missing critic weights"));
        }
        let mut store = SafetensorsStore::from_file(path);
        let result = self
            .load_from(&mut store)
            .map_err(|e| TrainError::checkpoint(path, format!("cannot read the critics: {e}")))?;
        if !result.missing.is_empty() || !result.errors.is_empty() {
            return Err(TrainError::checkpoint(
                path,
                format!(
                    "critic tensors missing or unreadable: {:?} {:?}",
                    result.missing, result.errors
                ),
            ));
        }
        Ok(self)
    }
}

//! Score models: the decoder backbone plus a linear head `hidden -> 1` that scores every token.
//! Reward models, cost models and critics (value functions) are all score models; what tells
//! them apart is their *kind*, a type parameter.
//!
//! # Kinds and the cost sign
//!
//! [`ScoreModel<K>`] is generic over a marker type `K`: [`Reward`], [`Cost`] or [`Critic`]
//! ([`RewardModel`], [`CostModel`] and [`CriticModel`] are the aliases). The kind is part of the
//! type, so a reward model cannot be passed where a cost model is expected, and the cost sign
//! convention exists only on the cost kind:
//!
//! * **C > 0 means unsafe, C <= 0 means safe** (Safe RLHF's convention). The convention is
//!   written once, in [`Cost::is_unsafe`] / [`Cost::is_safe`] / [`Cost::target_sign`]; the
//!   cost loss, metrics and safety rate all go through these.
//! * [`ScoreOutput<Cost>`] (what [`CostModel::forward`] returns) has
//!   [`ScoreOutput::unsafe_mask`] and [`ScoreOutput::safety_rate`]; a reward model's or a
//!   critic's output has no such methods, so "the safety rate of a reward" does not compile.
//! * The kind is saved with the weights (`score_type` in `config.json`, as safe-rlhf writes it)
//!   and checked on load: loading a cost model directory as a [`RewardModel`] is an error.
//!
//! # Tensor names
//!
//! Saved weights follow safe-rlhf's score models (`AutoModelForScore`, `LlamaForScore`):
//! `model.*` for the backbone (exactly the names of Hugging Face's `LlamaForCausalLM`, so a
//! policy's decoder weights load unchanged) plus `score_head.weight` `[1, hidden]` and
//! `score_head.bias` `[1]`. `config.json` is the policy's plus the keys safe-rlhf's
//! `ScoreModelMixin` reads: `architectures = ["LlamaForScore"]`, `score_type` (`reward`, `cost`,
//! `critic`), `score_dim = 1` and `bias = true`. Hugging Face's
//! `LlamaForSequenceClassification` names its head `score.weight` and has no bias; we keep a
//! bias (initialised to 0), hence safe-rlhf's names. A safe-rlhf directory
//! saved with `bias = false` (its default) loads too: the bias then stays 0.
//!
//! In memory the backbone is a [`LlamaForCausalLM`] without output projection (`lm_head` is
//! `None`), held in the field `backbone`, so it runs through the very same
//! [`LlamaForCausalLM::forward_hidden`] as the policy; burn's parameter paths are therefore
//! `backbone.model.*`, and save/load map `backbone.model.` <-> `model.`.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::path::Path;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::nn::{Initializer, Linear};
use burn::tensor::{Bool, Device, Int, Tensor};
use burn_store::ModuleSnapshot;

use crate::config::LlamaConfig;
use crate::model::{LlamaForCausalLM, positions_from_mask};
use crate::weights::{CONFIG_FILE, WEIGHTS_FILE, apply_hf_safetensors, hf_name, write_hf_files};
use crate::{ModelError, Result};

/// Standard deviation of the score head's initial weights (Hugging Face's `initializer_range`,
/// which safe-rlhf's `post_init` uses for the head); the bias starts at 0.
pub const HEAD_INIT_STD: f64 = 0.02;

/// `architectures` entry written into a score model's `config.json` (safe-rlhf's class name).
pub const SCORE_ARCHITECTURE: &str = "LlamaForScore";

/// The kind of a score model as a run-time value (what `config.json` stores as `score_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScoreKind {
    /// Helpfulness reward model: higher is better.
    Reward,
    /// Cost (harmlessness) model: C > 0 unsafe, C <= 0 safe.
    Cost,
    /// Value function of a reward or cost stream (PPO critic).
    Critic,
}

impl ScoreKind {
    /// The name used in `config.json` (`reward`, `cost`, `critic`).
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreKind::Reward => "reward",
            ScoreKind::Cost => "cost",
            ScoreKind::Critic => "critic",
        }
    }

    /// Parses a `score_type` name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "reward" => Some(ScoreKind::Reward),
            "cost" => Some(ScoreKind::Cost),
            "critic" => Some(ScoreKind::Critic),
            _ => None,
        }
    }
}

impl std::fmt::Display for ScoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A score-model kind at the type level: implemented by [`Reward`], [`Cost`] and [`Critic`].
pub trait ScoreType: Clone + Copy + Debug + Default + Send + Sync + 'static {
    /// The run-time kind.
    const KIND: ScoreKind;
}

/// Marker of reward models (helpfulness; higher is better).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reward;

/// Marker of cost models, and the home of the cost sign convention: C > 0 unsafe, C <= 0 safe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost;

/// Marker of critics (per-token value estimates of a reward or cost stream).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Critic;

impl ScoreType for Reward {
    const KIND: ScoreKind = ScoreKind::Reward;
}
impl ScoreType for Cost {
    const KIND: ScoreKind = ScoreKind::Cost;
}
impl ScoreType for Critic {
    const KIND: ScoreKind = ScoreKind::Critic;
}

impl Cost {
    /// Whether a cost marks its response unsafe: `cost > 0`.
    pub fn is_unsafe(cost: f32) -> bool {
        cost > 0.0
    }

    /// Whether a cost marks its response safe: `cost <= 0` (0 itself counts as safe).
    pub fn is_safe(cost: f32) -> bool {
        !Self::is_unsafe(cost)
    }

    /// The sign a cost should have for a response labelled `is_safe`: `-1` for a safe response,
    /// `+1` for an unsafe one (the `s` of the cost loss's sign terms `-log σ(s · C)`).
    pub fn target_sign(is_safe: bool) -> f32 {
        if is_safe { -1.0 } else { 1.0 }
    }

    /// Element-wise `costs > 0` (true = unsafe).
    pub fn unsafe_mask<const D: usize>(costs: Tensor<D>) -> Tensor<D, Bool> {
        costs.greater_elem(0.0)
    }

    /// Fraction of responses with cost <= 0 (0 when `costs` is empty).
    pub fn safety_rate(costs: &[f32]) -> f64 {
        if costs.is_empty() {
            return 0.0;
        }
        costs.iter().filter(|&&c| Self::is_safe(c)).count() as f64 / costs.len() as f64
    }
}

/// Scores of one forward pass. `K` is the kind of the model that produced them.
#[derive(Debug, Clone)]
pub struct ScoreOutput<K: ScoreType> {
    /// Score of every position, `[batch, seq]` (values at padding are meaningless).
    pub scores: Tensor<2>,
    /// Score at the last real (non-pad) token of each row, `[batch]`.
    pub end_scores: Tensor<1>,
    kind: PhantomData<K>,
}

impl<K: ScoreType> ScoreOutput<K> {
    /// Wraps per-token and end scores produced by a model of kind `K`.
    pub fn new(scores: Tensor<2>, end_scores: Tensor<1>) -> Self {
        ScoreOutput {
            scores,
            end_scores,
            kind: PhantomData,
        }
    }

    /// The kind of the model that produced these scores.
    pub fn kind(&self) -> ScoreKind {
        K::KIND
    }

    /// End scores copied to the host.
    pub fn end_scores_vec(&self) -> Vec<f32> {
        to_vec(self.end_scores.clone())
    }
}

impl ScoreOutput<Cost> {
    /// Which responses the cost model calls unsafe (end cost > 0), `[batch]`.
    pub fn unsafe_mask(&self) -> Tensor<1, Bool> {
        Cost::unsafe_mask(self.end_scores.clone())
    }

    /// Fraction of responses the cost model calls safe (end cost <= 0).
    pub fn safety_rate(&self) -> f64 {
        Cost::safety_rate(&self.end_scores_vec())
    }
}

/// A decoder backbone with a linear head `hidden -> 1` (bias initialised to 0), scoring every
/// token; the kind `K` ([`Reward`], [`Cost`], [`Critic`]) is part of the type.
#[derive(Module, Debug)]
pub struct ScoreModel<K: ScoreType> {
    /// The decoder, held as a causal LM without output projection (`lm_head` is `None`).
    pub backbone: LlamaForCausalLM,
    /// The score head, hidden -> 1, with bias (`score_head.weight` / `score_head.bias`).
    pub score_head: Linear,
    #[module(skip)]
    kind: PhantomData<K>,
}

/// Helpfulness reward model.
pub type RewardModel = ScoreModel<Reward>;
/// Cost model (C > 0 unsafe).
pub type CostModel = ScoreModel<Cost>;
/// Critic (value function).
pub type CriticModel = ScoreModel<Critic>;

/// A fresh score head: weights ~ N(0, [`HEAD_INIT_STD`]), bias 0.
fn new_head(hidden: usize, device: &Device) -> Linear {
    let weight = Initializer::Normal {
        mean: 0.0,
        std: HEAD_INIT_STD,
    }
    .init([hidden, 1], device);
    let bias = Initializer::Zeros.init([1], device);
    Linear {
        weight,
        bias: Some(bias),
    }
}

impl<K: ScoreType> ScoreModel<K> {
    /// A randomly initialised score model of the given (validated) configuration on `device`.
    pub fn new(config: &LlamaConfig, device: &Device) -> Self {
        let mut backbone = LlamaForCausalLM::new(config, device);
        backbone.lm_head = None;
        let score_head = new_head(config.hidden_size, device);
        ScoreModel {
            backbone,
            score_head,
            kind: PhantomData,
        }
    }

    /// A score model on a policy's decoder: the backbone weights are taken over (the output
    /// projection is dropped), the head is fresh (weights ~ N(0, 0.02), bias 0). The parameters
    /// get fresh identities, so the score model never shares optimizer state or gradients with
    /// a clone of the policy kept elsewhere.
    pub fn from_policy(policy: LlamaForCausalLM) -> Self {
        let mut backbone = policy.map(&mut FreshCopy);
        backbone.lm_head = None;
        let hidden = backbone.model.embed_tokens.weight.dims()[1];
        let device = backbone.model.embed_tokens.weight.device();
        ScoreModel {
            backbone,
            score_head: new_head(hidden, &device),
            kind: PhantomData,
        }
    }

    /// The run-time kind.
    pub fn kind(&self) -> ScoreKind {
        K::KIND
    }

    /// Width of the hidden states the head reads.
    pub fn hidden_size(&self) -> usize {
        self.backbone.model.embed_tokens.weight.dims()[1]
    }

    /// Scores a batch: `tokens` `[batch, seq]`, `attention_mask` `[batch, seq]` true at real
    /// tokens. Rows may be left- or right-padded (positions count real tokens, as for the policy).
    /// `end_scores[b]` is `scores[b, e_b]` with `e_b` the largest index where the mask is true
    /// (0 for a row without real tokens).
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        attention_mask: Tensor<2, Bool>,
    ) -> ScoreOutput<K> {
        let positions = positions_from_mask(attention_mask.clone());
        let hidden = self
            .backbone
            .forward_hidden(tokens, positions, attention_mask.clone(), None);
        self.score_hidden(hidden, attention_mask)
    }

    /// Applies the head to hidden states `[batch, seq, hidden]` already computed by the backbone
    /// and reads the end scores at the last real token of each row.
    pub fn score_hidden(
        &self,
        hidden: Tensor<3>,
        attention_mask: Tensor<2, Bool>,
    ) -> ScoreOutput<K> {
        let [b, s, _] = hidden.dims();
        let scores = self.score_head.forward(hidden).reshape([b, s]);
        let end = end_indices(attention_mask);
        let end_scores = scores.clone().gather(1, end).reshape([b]);
        ScoreOutput::new(scores, end_scores)
    }

    /// A copy with the same weights (fresh parameter identities) of another kind; used to start
    /// a critic from a trained reward or cost model (as in safe-rlhf, critics start with
    /// the score model's head too).
    fn retyped<T: ScoreType>(&self) -> ScoreModel<T> {
        let copy = self.clone().map(&mut FreshCopy);
        ScoreModel {
            backbone: copy.backbone,
            score_head: copy.score_head,
            kind: PhantomData,
        }
    }
}

/// A critic initialised from a reward or cost model: backbone and head copied (fresh parameter
/// identities, so training the critic leaves `score_model` untouched).
pub fn critic_from<K: ScoreType>(score_model: &ScoreModel<K>) -> CriticModel {
    score_model.retyped()
}

/// For each row of `mask` `[batch, seq]`, the largest index where it is true (0 for an all-false
/// row), as `[batch, 1]` for `gather`.
pub fn end_indices(mask: Tensor<2, Bool>) -> Tensor<2, Int> {
    let [b, s] = mask.dims();
    let device = mask.device();
    let index = Tensor::<1, Int>::arange(0..s as i64, &device)
        .reshape([1, s])
        .expand([b, s]);
    (mask.int() * index).max_dim(1)
}

/// Re-wraps every parameter with a new [`ParamId`] and a detached value (keeping its gradient
/// setting), so a copied module shares no parameter identity with the original.
struct FreshCopy;

impl ModuleMapper for FreshCopy {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, value, mapper) = param.consume();
        let require_grad = value.is_require_grad();
        let value = value.detach().set_require_grad(require_grad);
        Param::from_mapped_value(ParamId::new(), value, mapper)
    }
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    crate::host::floats_or_nan(t, "scores")
}

// ---------------------------------------------------------------------------------------------
// Saving and loading (Hugging Face safetensors names, safe-rlhf head names).

/// Writes `config.json` (the policy config plus `architectures`, `score_type`, `score_dim`,
/// `bias`) and `model.safetensors` (`model.*`, `score_head.weight` `[1, hidden]`,
/// `score_head.bias` `[1]`) into `dir`, each written under a temporary name and renamed.
pub fn save_score_dir<K: ScoreType>(
    model: &ScoreModel<K>,
    config: &LlamaConfig,
    dir: impl AsRef<Path>,
) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let mut json = config.to_hf_json();
    if let serde_json::Value::Object(map) = &mut json {
        map.insert(
            "architectures".into(),
            serde_json::json!([SCORE_ARCHITECTURE]),
        );
        map.insert("score_type".into(), serde_json::json!(K::KIND.as_str()));
        map.insert("score_dim".into(), serde_json::json!(1));
        map.insert("bias".into(), serde_json::json!(true));
    }
    let text = serde_json::to_string_pretty(&json).map_err(|e| ModelError::Config {
        field: "config".into(),
        reason: e.to_string(),
    })?;
    write_hf_files(dir, &text, model, Some((r"^backbone\.model\.", "model.")))
}

/// The `score_type` recorded in a score model directory's `config.json`.
pub fn read_score_kind(dir: impl AsRef<Path>) -> Result<ScoreKind> {
    read_score_header(dir.as_ref()).map(|h| h.kind)
}

/// The score-head keys of a score model's `config.json`.
struct ScoreHeader {
    kind: ScoreKind,
    /// Whether the head has a bias (safe-rlhf's `bias`, false when absent as there).
    bias: bool,
}

fn read_score_header(dir: &Path) -> Result<ScoreHeader> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Format {
        path: path.clone(),
        format: "config.json",
        reason: e.to_string(),
    })?;
    let bad = |field: &str, reason: String| ModelError::Config {
        field: field.into(),
        reason: format!("{reason} (in {})", path.display()),
    };
    let name = json
        .get("score_type")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            bad(
                "score_type",
                "missing: not a score model (start one from a policy with \
                 ScoreModel::from_policy)"
                    .into(),
            )
        })?;
    let kind = ScoreKind::parse(name).ok_or_else(|| {
        bad(
            "score_type",
            format!("`{name}` is not one of reward, cost, critic"),
        )
    })?;
    if let Some(dim) = json.get("score_dim")
        && dim.as_u64() != Some(1)
    {
        return Err(bad("score_dim", format!("{dim} is not supported (only 1)")));
    }
    let bias = match json.get("bias") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| bad("bias", format!("expected true or false, found {v}")))?,
    };
    Ok(ScoreHeader { kind, bias })
}

/// Loads a score model directory written by [`save_score_dir`] (or by safe-rlhf, single
/// `model.safetensors`). Its `score_type` must be `K`'s kind; every parameter must be present,
/// except `score_head.bias` when `config.json` says `bias = false` (the bias then stays 0).
pub fn load_score_dir<K: ScoreType>(
    dir: impl AsRef<Path>,
    device: &Device,
) -> Result<(LlamaConfig, ScoreModel<K>)> {
    let dir = dir.as_ref();
    let header = read_score_header(dir)?;
    let kind = header.kind;
    if kind != K::KIND {
        return Err(ModelError::Config {
            field: "score_type".into(),
            reason: format!(
                "{} holds a {kind} model, but a {} model was asked for",
                dir.display(),
                K::KIND
            ),
        });
    }
    let config = LlamaConfig::from_file(dir.join(CONFIG_FILE))?;
    let mut model = ScoreModel::<K>::new(&config, device);
    let path = dir.join(WEIGHTS_FILE);
    let result = apply_hf_safetensors(&mut model, &path, Some((r"^model\.", "backbone.model.")))?;
    let applied: BTreeSet<String> = result.applied.into_iter().collect();
    let missing: Vec<String> = model
        .collect(None, None, true)
        .into_iter()
        .map(|t| t.name)
        .filter(|n| !applied.contains(n))
        .map(|n| file_name_of(&n))
        .filter(|n| header.bias || n != "score_head.bias")
        .collect();
    if !missing.is_empty() {
        return Err(ModelError::WeightMismatch(format!(
            "{}: tensors missing from the file: {}",
            path.display(),
            missing.join(", ")
        )));
    }
    Ok((config, model))
}

/// The name a burn parameter path of a score model has in the safetensors file.
fn file_name_of(burn_path: &str) -> String {
    let name = hf_name(burn_path);
    match name.strip_prefix("backbone.") {
        Some(rest) => rest.to_string(),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn tiny_config() -> LlamaConfig {
        let c = LlamaConfig::micro(32);
        c.validate().unwrap();
        c
    }

    fn batch(rows: &[&[i64]], device: &Device) -> (Tensor<2, Int>, Tensor<2, Bool>) {
        let l = rows[0].len();
        let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        let mask: Vec<bool> = flat.iter().map(|&t| t != 0).collect();
        (
            Tensor::from_data(TensorData::new(flat, [rows.len(), l]), device),
            Tensor::from_data(TensorData::new(mask, [rows.len(), l]), device),
        )
    }

    fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
        let [_, l] = t.dims();
        to_vec(t).chunks(l).map(|c| c.to_vec()).collect()
    }

    fn tmp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("saferlhf-score-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn end_score_is_the_last_real_token_for_left_and_right_padding() {
        let device = Device::flex();
        let model = CostModel::new(&tiny_config(), &device);
        // right-padded, left-padded, unpadded, one real token (left-padded)
        let (tokens, mask) = batch(
            &[
                &[5, 6, 7, 0, 0],
                &[0, 0, 5, 6, 7],
                &[3, 4, 5, 6, 7],
                &[0, 0, 0, 0, 9],
            ],
            &device,
        );
        let out = model.forward(tokens, mask);
        assert_eq!(out.kind(), ScoreKind::Cost);
        let scores = rows(out.scores.clone());
        let end = out.end_scores_vec();
        let expected = [scores[0][2], scores[1][4], scores[2][4], scores[3][4]];
        for (e, x) in end.iter().zip(expected) {
            assert_eq!(*e, x);
        }
        // The same three real tokens give the same end score whichever side the padding is on.
        assert!((end[0] - end[1]).abs() < 1e-5, "{end:?}");
        for row in &scores {
            assert!(row.iter().all(|v| v.is_finite()), "{scores:?}");
        }
        // The safety rate follows the sign convention on these very scores.
        let safe = end.iter().filter(|&&c| c <= 0.0).count() as f64 / 4.0;
        assert_eq!(out.safety_rate(), safe);
        let unsafe_mask: Vec<bool> = out.unsafe_mask().into_data().try_into_vec_as().unwrap();
        assert_eq!(
            unsafe_mask,
            end.iter().map(|&c| c > 0.0).collect::<Vec<_>>()
        );
    }

    #[test]
    fn end_indices_handle_all_padding_patterns() {
        let device = Device::flex();
        let (_, mask) = batch(&[&[1, 1, 0], &[0, 1, 1], &[0, 0, 0], &[1, 0, 1]], &device);
        let idx: Vec<i64> = end_indices(mask).into_data().try_into_vec_as().unwrap();
        assert_eq!(idx, vec![1, 2, 0, 2]);
    }

    #[test]
    fn cost_sign_convention() {
        assert!(Cost::is_unsafe(0.1) && !Cost::is_unsafe(0.0) && !Cost::is_unsafe(-2.0));
        assert!(Cost::is_safe(0.0) && Cost::is_safe(-0.5) && !Cost::is_safe(1e-6));
        assert_eq!(Cost::target_sign(true), -1.0);
        assert_eq!(Cost::target_sign(false), 1.0);
        assert_eq!(Cost::safety_rate(&[-1.0, 0.0, 2.0, 3.0]), 0.5);
        assert_eq!(Cost::safety_rate(&[]), 0.0);
    }

    #[test]
    fn from_policy_keeps_the_backbone_and_starts_the_head_at_zero_bias() {
        let device = Device::flex();
        let config = tiny_config();
        let policy = LlamaForCausalLM::new(&config, &device);
        let (tokens, mask) = batch(&[&[0, 2, 3, 4], &[5, 6, 0, 0]], &device);
        let positions = positions_from_mask(mask.clone());
        let policy_hidden =
            policy.forward_hidden(tokens.clone(), positions.clone(), mask.clone(), None);
        let model = RewardModel::from_policy(policy);
        assert!(model.backbone.lm_head.is_none());
        let hidden = model
            .backbone
            .forward_hidden(tokens.clone(), positions, mask.clone(), None);
        assert_eq!(to_vec(hidden.clone()), to_vec(policy_hidden));
        let bias = to_vec(model.score_head.bias.as_ref().unwrap().val());
        assert_eq!(bias, vec![0.0]);
        // scores = hidden · w (+ 0), by hand.
        let w = to_vec(model.score_head.weight.val()); // [hidden, 1]
        let out = model.forward(tokens, mask);
        let h = to_vec(hidden);
        let scores = to_vec(out.scores);
        for (i, s) in scores.iter().enumerate() {
            let dot: f32 = h[i * 32..(i + 1) * 32]
                .iter()
                .zip(&w)
                .map(|(a, b)| a * b)
                .sum();
            assert!((dot - s).abs() < 1e-4, "{dot} vs {s}");
        }
    }

    #[test]
    fn critic_from_copies_weights_with_fresh_identities() {
        let device = Device::flex();
        let model = CostModel::new(&tiny_config(), &device);
        let critic = critic_from(&model);
        assert_eq!(critic.kind(), ScoreKind::Critic);
        let (tokens, mask) = batch(&[&[0, 2, 3, 4], &[5, 6, 7, 0]], &device);
        let a = model.forward(tokens.clone(), mask.clone());
        let b = critic.forward(tokens, mask);
        assert_eq!(to_vec(a.scores), to_vec(b.scores));
        assert_ne!(model.score_head.weight.id, critic.score_head.weight.id);
        assert_ne!(
            model.backbone.model.embed_tokens.weight.id,
            critic.backbone.model.embed_tokens.weight.id
        );
    }

    #[test]
    fn save_load_round_trip_gives_identical_scores_and_hf_names() {
        let device = Device::flex();
        let config = tiny_config();
        let model = CostModel::new(&config, &device);
        // A non-zero bias, so the round trip of the bias is visible.
        let mut model = model;
        model.score_head.bias = Some(Param::from_data([0.25f32], &device));
        let dir = tmp_dir("roundtrip");
        save_score_dir(&model, &config, &dir).unwrap();
        assert_eq!(read_score_kind(&dir).unwrap(), ScoreKind::Cost);

        // Names and shapes on disk.
        let bytes = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
        names.sort();
        assert!(names.contains(&"model.embed_tokens.weight".to_string()));
        assert!(names.contains(&"model.layers.1.self_attn.q_proj.weight".to_string()));
        assert!(names.contains(&"model.norm.weight".to_string()));
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("model.") || n.starts_with("score_head."))
        );
        assert!(
            !names
                .iter()
                .any(|n| n.contains("lm_head") || n.contains("backbone"))
        );
        assert_eq!(st.tensor("score_head.weight").unwrap().shape(), &[1, 32]);
        assert_eq!(st.tensor("score_head.bias").unwrap().shape(), &[1]);

        let (loaded_config, loaded) = load_score_dir::<Cost>(&dir, &device).unwrap();
        assert_eq!(loaded_config, config);
        let (tokens, mask) = batch(&[&[0, 0, 3, 4, 5], &[5, 6, 7, 8, 0]], &device);
        let a = model.forward(tokens.clone(), mask.clone());
        let b = loaded.forward(tokens, mask);
        assert_eq!(a.end_scores_vec(), b.end_scores_vec());
        assert_eq!(to_vec(a.scores), to_vec(b.scores));

        // The kind is checked on load.
        let err = load_score_dir::<Reward>(&dir, &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("score_type") && err.contains("cost"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_head_is_an_error_naming_it() {
        let device = Device::flex();
        let config = tiny_config();
        let model = RewardModel::new(&config, &device);
        let dir = tmp_dir("missing");
        save_score_dir(&model, &config, &dir).unwrap();
        drop_tensors(&dir, |n| n.starts_with("score_head"));
        let err = load_score_dir::<Reward>(&dir, &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("score_head.weight"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Rewrites `dir`'s weights without the tensors whose names `drop` selects.
    fn drop_tensors(dir: &Path, drop: impl Fn(&str) -> bool) {
        let bytes = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let kept: Vec<(String, safetensors::tensor::TensorView)> =
            st.tensors().into_iter().filter(|(n, _)| !drop(n)).collect();
        safetensors::serialize_to_file(kept, None, &dir.join(WEIGHTS_FILE)).unwrap();
    }

    /// Rewrites `dir`'s config.json with `edit` applied to its JSON object.
    fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
        let path = dir.join(CONFIG_FILE);
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(json.as_object_mut().unwrap());
        std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    }

    #[test]
    fn safe_rlhf_head_without_bias_loads_with_zero_bias() {
        let device = Device::flex();
        let config = tiny_config();
        let mut model = CostModel::new(&config, &device);
        model.score_head.bias = Some(Param::from_data([0.5f32], &device));
        let dir = tmp_dir("nobias");
        save_score_dir(&model, &config, &dir).unwrap();
        drop_tensors(&dir, |n| n == "score_head.bias");
        // config.json still says bias = true: the missing bias is an error.
        let err = load_score_dir::<Cost>(&dir, &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("score_head.bias"), "{err}");
        // safe-rlhf's default, bias = false: loads, bias 0, so scores are those of model - 0.5.
        edit_config(&dir, |m| {
            m.insert("bias".into(), serde_json::json!(false));
        });
        let (_, loaded) = load_score_dir::<Cost>(&dir, &device).unwrap();
        assert_eq!(
            to_vec(loaded.score_head.bias.as_ref().unwrap().val()),
            vec![0.0]
        );
        let (tokens, mask) = batch(&[&[1, 2, 3]], &device);
        let a = model.forward(tokens.clone(), mask.clone()).end_scores_vec()[0];
        let b = loaded.forward(tokens, mask).end_scores_vec()[0];
        assert!((a - 0.5 - b).abs() < 1e-6, "{a} {b}");
        // Other head shapes and unknown kinds are rejected by name.
        edit_config(&dir, |m| {
            m.insert("score_dim".into(), serde_json::json!(2));
        });
        let err = load_score_dir::<Cost>(&dir, &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("score_dim"), "{err}");
        edit_config(&dir, |m| {
            m.insert("score_type".into(), serde_json::json!("helpfulness"));
        });
        let err = read_score_kind(&dir).unwrap_err().to_string();
        assert!(
            err.contains("score_type") && err.contains("helpfulness"),
            "{err}"
        );
        edit_config(&dir, |m| {
            m.remove("score_type");
        });
        let err = read_score_kind(&dir).unwrap_err().to_string();
        assert!(err.contains("not a score model"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The three supervised tasks the trainer runs: what model each trains, how a batch becomes a
//! loss, how it is evaluated and how its weights are saved and loaded.
//!
//! | task | model | example | loss |
//! |---|---|---|---|
//! | [`SftTask`] | `LlamaForCausalLM` | [`Encoded`] | [`sft_loss`] on response tokens |
//! | [`RewardTask`] | `RewardModel` | [`EncodedPair`] | [`reward_loss`] (Bradley-Terry + L2) |
//! | [`CostTask`] | `CostModel` | [`EncodedPair`] | [`cost_loss`] (BT + sign terms + L2) |

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use saferlhf_model::score::{load_score_dir, read_score_kind, save_score_dir};
use saferlhf_model::weights::{CONFIG_FILE, load_hf_dir, save_hf_dir};
use saferlhf_model::{
    Cost, LlamaConfig, LlamaForCausalLM, Reward, ScoreKind, ScoreModel, ScoreType, load_pretrained,
};

use crate::collate::{Encoded, EncodedPair, Encoder, pair_batch, sft_batch};
use crate::config::{TaskKind, TrainConfig};
use crate::data::{Dataset, load_pairs, load_sft_examples};
use crate::error::{Result, TrainError};
use crate::losses::{
    CostMetrics, RewardMetrics, SafetyLabels, SftMetrics, cost_loss, reward_loss, sft_loss, to_host,
};
use crate::metrics::TaskMetrics;
use crate::params::seeded_init;
use crate::tiny::tiny_llama_config;

/// A supervised task: the model it trains and how.
pub trait Task {
    /// The trained module.
    type Model: Module;
    /// One tokenized training example.
    type Example: Clone;

    /// The task's kind.
    fn kind(&self) -> TaskKind;

    /// Loads, splits and tokenizes the config's data.
    fn load_data(&self, config: &TrainConfig, encoder: &Encoder) -> Result<Dataset<Self::Example>>;

    /// The initial model of a fresh run (from `model.init` or `model.preset`), with its config;
    /// freshly created parameters are drawn from streams keyed by `seed`.
    fn init_model(
        &self,
        config: &TrainConfig,
        device: &Device,
    ) -> Result<(LlamaConfig, Self::Model)>;

    /// Loss of one micro-batch `[1]`, its host-side metrics and its real-token count.
    fn loss(
        &self,
        model: &Self::Model,
        batch: &[&Self::Example],
        pad_id: u32,
        regularization: f64,
        device: &Device,
    ) -> (Tensor<1>, TaskMetrics, usize);

    /// Metrics of `model` (a validation copy, no autodiff) over `examples`.
    fn evaluate(
        &self,
        model: &Self::Model,
        examples: &[Self::Example],
        batch_size: usize,
        pad_id: u32,
        regularization: f64,
        device: &Device,
    ) -> Option<TaskMetrics> {
        let mut acc = None;
        for chunk in examples.chunks(batch_size.max(1)) {
            let refs: Vec<&Self::Example> = chunk.iter().collect();
            let (_, m, _) = self.loss(model, &refs, pad_id, regularization, device);
            acc = Some(m.merged_into(acc));
        }
        acc
    }

    /// Writes the weights (Hugging Face names) and `config.json` into `dir`.
    fn save(&self, model: &Self::Model, config: &LlamaConfig, dir: &Path) -> Result<()>;

    /// Loads weights written by [`Task::save`].
    fn load(&self, dir: &Path, device: &Device) -> Result<(LlamaConfig, Self::Model)>;
}

/// Loads the policy a run starts from: the tiny preset (seeded) or a GGUF / HF directory.
fn init_policy(config: &TrainConfig, device: &Device) -> Result<(LlamaConfig, LlamaForCausalLM)> {
    if config.model.preset.is_some() {
        let c = tiny_llama_config();
        let model = LlamaForCausalLM::new(&c, device);
        return Ok((c, seeded_init(model, config.run.seed, &[])));
    }
    let Some(init) = &config.model.init else {
        return Err(TrainError::config("model.init", "missing"));
    };
    let p = load_pretrained(init, device)?;
    Ok((p.config, p.model))
}

/// Whether a directory holds a score model (its `config.json` has `score_type`).
fn is_score_dir(path: &Path) -> bool {
    path.is_dir() && path.join(CONFIG_FILE).is_file() && read_score_kind(path).is_ok()
}

/// The initial score model: a score-model directory of the same kind continues it; otherwise
/// the backbone of the initial policy with a fresh head drawn from the seed.
fn init_score<K: ScoreType>(
    config: &TrainConfig,
    device: &Device,
) -> Result<(LlamaConfig, ScoreModel<K>)> {
    if let Some(init) = &config.model.init
        && is_score_dir(init)
    {
        let kind = read_score_kind(init)?;
        if kind != K::KIND {
            return Err(TrainError::config(
                "model.init",
                format!(
                    "{} holds a {kind} model; a {} model cannot start from it",
                    init.display(),
                    K::KIND
                ),
            ));
        }
        return Ok(load_score_dir::<K>(init, device)?);
    }
    let (c, policy) = init_policy(config, device)?;
    let model = ScoreModel::<K>::from_policy(policy);
    Ok((c, seeded_init(model, config.run.seed, &["score_head"])))
}

/// Runs a score model on a pair batch and returns (chosen scores, rejected scores, tokens).
fn pair_scores<K: ScoreType>(
    model: &ScoreModel<K>,
    batch: &[&EncodedPair],
    pad_id: u32,
    device: &Device,
) -> (Tensor<1>, Tensor<1>, crate::collate::PairBatch) {
    let b = pair_batch(batch, pad_id, device);
    let out = model.forward(b.tokens.clone(), b.mask.clone());
    let n = b.pairs;
    let chosen = out.end_scores.clone().narrow(0, 0, n);
    let rejected = out.end_scores.narrow(0, n, n);
    (chosen, rejected, b)
}

fn scalar(t: &Tensor<1>) -> f64 {
    to_host(t).first().copied().unwrap_or(f32::NAN) as f64
}

/// Supervised fine-tuning of the policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct SftTask;

impl Task for SftTask {
    type Model = LlamaForCausalLM;
    type Example = Encoded;

    fn kind(&self) -> TaskKind {
        TaskKind::Sft
    }

    fn load_data(&self, config: &TrainConfig, encoder: &Encoder) -> Result<Dataset<Encoded>> {
        load_sft_examples(config, encoder)
    }

    fn init_model(
        &self,
        config: &TrainConfig,
        device: &Device,
    ) -> Result<(LlamaConfig, LlamaForCausalLM)> {
        if let Some(init) = &config.model.init
            && is_score_dir(init)
        {
            return Err(TrainError::config(
                "model.init",
                format!(
                    "{} is a score model, not a policy to fine-tune",
                    init.display()
                ),
            ));
        }
        init_policy(config, device)
    }

    fn loss(
        &self,
        model: &LlamaForCausalLM,
        batch: &[&Encoded],
        pad_id: u32,
        _regularization: f64,
        device: &Device,
    ) -> (Tensor<1>, TaskMetrics, usize) {
        let b = sft_batch(batch, pad_id, device);
        let logits = model.forward(b.tokens.clone(), b.mask.clone());
        let loss = sft_loss(logits, b.tokens, b.loss_mask);
        let m = SftMetrics::new(scalar(&loss), b.response_tokens);
        (loss, TaskMetrics::Sft(m), b.real_tokens)
    }

    fn save(&self, model: &LlamaForCausalLM, config: &LlamaConfig, dir: &Path) -> Result<()> {
        Ok(save_hf_dir(model, config, dir)?)
    }

    fn load(&self, dir: &Path, device: &Device) -> Result<(LlamaConfig, LlamaForCausalLM)> {
        Ok(load_hf_dir(dir, device)?)
    }
}

/// Reward-model training on preference pairs (chosen = better).
#[derive(Debug, Clone, Copy, Default)]
pub struct RewardTask;

impl Task for RewardTask {
    type Model = ScoreModel<Reward>;
    type Example = EncodedPair;

    fn kind(&self) -> TaskKind {
        TaskKind::Reward
    }

    fn load_data(&self, config: &TrainConfig, encoder: &Encoder) -> Result<Dataset<EncodedPair>> {
        load_pairs(config, encoder)
    }

    fn init_model(
        &self,
        config: &TrainConfig,
        device: &Device,
    ) -> Result<(LlamaConfig, ScoreModel<Reward>)> {
        init_score(config, device)
    }

    fn loss(
        &self,
        model: &ScoreModel<Reward>,
        batch: &[&EncodedPair],
        pad_id: u32,
        regularization: f64,
        device: &Device,
    ) -> (Tensor<1>, TaskMetrics, usize) {
        let (better, worse, b) = pair_scores(model, batch, pad_id, device);
        let (hb, hw) = (to_host(&better), to_host(&worse));
        let loss = reward_loss(better, worse, regularization);
        let m = RewardMetrics::new(&hb, &hw, scalar(&loss));
        (loss, TaskMetrics::Reward(m), b.real_tokens)
    }

    fn save(&self, model: &ScoreModel<Reward>, config: &LlamaConfig, dir: &Path) -> Result<()> {
        Ok(save_score_dir(model, config, dir)?)
    }

    fn load(&self, dir: &Path, device: &Device) -> Result<(LlamaConfig, ScoreModel<Reward>)> {
        Ok(load_score_dir::<Reward>(dir, device)?)
    }
}

/// Cost-model training on safety pairs (chosen = safer; C > 0 unsafe).
#[derive(Debug, Clone, Copy, Default)]
pub struct CostTask;

impl Task for CostTask {
    type Model = ScoreModel<Cost>;
    type Example = EncodedPair;

    fn kind(&self) -> TaskKind {
        TaskKind::Cost
    }

    fn load_data(&self, config: &TrainConfig, encoder: &Encoder) -> Result<Dataset<EncodedPair>> {
        load_pairs(config, encoder)
    }

    fn init_model(
        &self,
        config: &TrainConfig,
        device: &Device,
    ) -> Result<(LlamaConfig, ScoreModel<Cost>)> {
        init_score(config, device)
    }

    fn loss(
        &self,
        model: &ScoreModel<Cost>,
        batch: &[&EncodedPair],
        pad_id: u32,
        regularization: f64,
        device: &Device,
    ) -> (Tensor<1>, TaskMetrics, usize) {
        let (safer, less_safe, b) = pair_scores(model, batch, pad_id, device);
        let labels = SafetyLabels::new(&b.chosen_safe, &b.rejected_safe, device);
        let (hs, hu) = (to_host(&safer), to_host(&less_safe));
        let loss = cost_loss(safer, less_safe, &labels, regularization);
        let m = CostMetrics::new(&hs, &hu, &labels, scalar(&loss));
        (loss, TaskMetrics::Cost(m), b.real_tokens)
    }

    fn save(&self, model: &ScoreModel<Cost>, config: &LlamaConfig, dir: &Path) -> Result<()> {
        Ok(save_score_dir(model, config, dir)?)
    }

    fn load(&self, dir: &Path, device: &Device) -> Result<(LlamaConfig, ScoreModel<Cost>)> {
        Ok(load_score_dir::<Cost>(dir, device)?)
    }
}

/// The score kind of a reward or cost task (None for SFT).
pub fn score_kind(task: TaskKind) -> Option<ScoreKind> {
    match task {
        TaskKind::Sft => None,
        TaskKind::Reward => Some(ScoreKind::Reward),
        TaskKind::Cost => Some(ScoreKind::Cost),
    }
}

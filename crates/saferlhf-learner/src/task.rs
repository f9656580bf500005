//! The three supervised tasks the trainer runs: what model each trains, how a batch becomes a
//! loss, how it is evaluated and how its weights are saved and loaded.
//!
//! | task | model | example | loss |
//! |---|---|---|---|
//! | [`SftTask`] | `LlamaForCausalLM` | [`Encoded`] | [`sft_loss`] on response tokens |
//! | [`RewardTask`] | `RewardModel` | [`EncodedPair`] | [`reward_loss`] (Bradley-Terry + L2) |
//! | [`CostTask`] | `CostModel` | [`EncodedPair`] | [`cost_loss`] (BT + sign terms + L2) |
//! | [`DpoTask`] | `LlamaForCausalLM` | [`EncodedPair`] | an [`OfflineObjective`] (DPO) against a frozen reference |

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Bool, Device, Tensor, TensorData};
use saferlhf_model::score::{load_score_dir, read_score_kind, save_score_dir};
use saferlhf_model::weights::{CONFIG_FILE, load_hf_dir, save_hf_dir};
use saferlhf_model::{
    Cost, LlamaConfig, LlamaForCausalLM, Reward, ScoreKind, ScoreModel, ScoreType, load_pretrained,
};

use crate::collate::{Encoded, EncodedPair, Encoder, PairBatch, pair_batch, sft_batch};
use crate::config::{ModelConfig, TaskKind, TrainConfig};
use crate::data::{Dataset, load_pairs, load_sft_examples};
use crate::error::{Result, TrainError};
use crate::losses::{
    CostMetrics, RewardMetrics, SafetyLabels, SftMetrics, cost_loss, reward_loss, sft_loss, to_host,
};
use crate::metrics::TaskMetrics;
use crate::objectives::SafeDpo;
use crate::objectives::dpo::{Dpo, DpoMetrics, Preference, SumFrom};
use crate::objectives::{OfflineObjective, PairLogProbs};
use crate::params::seeded_init;
use crate::tiny::preset_config;

/// A micro-batch's loss `[1]`, its host-side metrics and its real-token count.
pub type BatchLoss = (Tensor<1>, TaskMetrics, usize);

/// What every loss of a run shares besides the model and the batch.
#[derive(Debug, Clone, Copy)]
pub struct LossContext<'a> {
    /// The padding id the batches are padded with.
    pub pad_id: u32,
    /// `loss.regularization` (the score models' L2 term on the scores).
    pub regularization: f64,
    /// The device the batch tensors are made on.
    pub device: &'a Device,
}

/// A model with its architecture, as a task creates or loads it.
pub type WithConfig<M> = Result<(LlamaConfig, M)>;

/// A tokenized training example and how the config's data becomes a dataset of them.
pub trait TrainingExample: Clone + Sized {
    /// Loads, splits and tokenizes the config's data.
    fn load(config: &TrainConfig, encoder: &Encoder) -> Result<Dataset<Self>>;
}

impl TrainingExample for Encoded {
    fn load(config: &TrainConfig, encoder: &Encoder) -> Result<Dataset<Self>> {
        load_sft_examples(config, encoder)
    }
}

impl TrainingExample for EncodedPair {
    fn load(config: &TrainConfig, encoder: &Encoder) -> Result<Dataset<Self>> {
        load_pairs(config, encoder)
    }
}

/// A supervised task: the model it trains and how.
pub trait Task {
    /// The trained module.
    type Model: Module + SavedModel;
    /// One tokenized training example.
    type Example: TrainingExample;
    /// The task's kind.
    const KIND: TaskKind;

    /// Loads, splits and tokenizes the config's data.
    fn load_data(&self, config: &TrainConfig, encoder: &Encoder) -> Result<Dataset<Self::Example>> {
        Self::Example::load(config, encoder)
    }

    /// The initial model of a fresh run (from `model.init` or `model.preset`), with its config;
    /// freshly created parameters are drawn from streams keyed by `seed`.
    fn init_model(&self, config: &TrainConfig, device: &Device) -> WithConfig<Self::Model>;

    /// Loss of one micro-batch `[1]`, its host-side metrics and its real-token count.
    fn loss(&self, model: &Self::Model, batch: &[&Self::Example], cx: &LossContext) -> BatchLoss;

    /// Metrics of `model` (a validation copy, no autodiff) over `examples`, `batch_size` at a
    /// time.
    fn evaluate(
        &self,
        model: &Self::Model,
        examples: &[Self::Example],
        batch_size: usize,
        cx: &LossContext,
    ) -> Option<TaskMetrics> {
        let mut acc = None;
        for chunk in examples.chunks(batch_size.max(1)) {
            let refs: Vec<&Self::Example> = chunk.iter().collect();
            let (_, m, _) = self.loss(model, &refs, cx);
            acc = Some(m.merged_into(acc));
        }
        acc
    }

    /// Writes the weights (Hugging Face names) and `config.json` into `dir`.
    fn save(&self, model: &Self::Model, config: &LlamaConfig, dir: &Path) -> Result<()> {
        model.save_dir(config, dir)
    }

    /// Loads weights written by [`Task::save`].
    fn load(&self, dir: &Path, device: &Device) -> WithConfig<Self::Model> {
        Self::Model::load_dir(dir, device)
    }
}

/// A model a task trains, written as (and read from) a Hugging Face-style directory.
pub trait SavedModel: Sized {
    /// Writes the weights and `config.json` into `dir`.
    fn save_dir(&self, config: &LlamaConfig, dir: &Path) -> Result<()>;
    /// Reads a directory written by [`SavedModel::save_dir`].
    fn load_dir(dir: &Path, device: &Device) -> Result<(LlamaConfig, Self)>;
}

impl SavedModel for LlamaForCausalLM {
    fn save_dir(&self, config: &LlamaConfig, dir: &Path) -> Result<()> {
        Ok(save_hf_dir(self, config, dir)?)
    }
    fn load_dir(dir: &Path, device: &Device) -> Result<(LlamaConfig, Self)> {
        Ok(load_hf_dir(dir, device)?)
    }
}

impl<K: PairTask> SavedModel for ScoreModel<K> {
    fn save_dir(&self, config: &LlamaConfig, dir: &Path) -> Result<()> {
        Ok(save_score_dir(self, config, dir)?)
    }
    fn load_dir(dir: &Path, device: &Device) -> Result<(LlamaConfig, Self)> {
        Ok(load_score_dir::<K>(dir, device)?)
    }
}

/// The policy a run starts from, as `section` (`model` or `policy`) of a config names it: the
/// `preset` (seeded by `seed`), or `init`, a Hugging Face directory or a GGUF file.
pub fn initial_policy(
    model: &ModelConfig,
    section: &str,
    seed: u64,
    device: &Device,
) -> Result<(LlamaConfig, LlamaForCausalLM)> {
    if let Some(preset) = &model.preset {
        let c = preset_config(preset).ok_or_else(|| {
            TrainError::config(
                format!("{section}.preset"),
                format!("unknown preset `{preset}`"),
            )
        })?;
        let policy = LlamaForCausalLM::new(&c, device);
        return Ok((c, seeded_init(policy, seed, &[])));
    }
    let Some(init) = &model.init else {
        return Err(TrainError::config(format!("{section}.init"), "missing"));
    };
    let init = &saferlhf_model::hub::resolve(init)?;
    if init.is_dir() {
        Ok(load_hf_dir(init, device)?)
    } else {
        let p = load_pretrained(init, device)?;
        Ok((p.config, p.model))
    }
}

/// The policy a supervised run starts from ([`initial_policy`] of `[model]`).
fn init_policy(config: &TrainConfig, device: &Device) -> Result<(LlamaConfig, LlamaForCausalLM)> {
    initial_policy(&config.model, "model", config.run.seed, device)
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
) -> (Tensor<1>, Tensor<1>, PairBatch) {
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
    const KIND: TaskKind = TaskKind::Sft;

    fn init_model(&self, config: &TrainConfig, device: &Device) -> WithConfig<LlamaForCausalLM> {
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

    fn loss(&self, model: &LlamaForCausalLM, batch: &[&Encoded], cx: &LossContext) -> BatchLoss {
        let b = sft_batch(batch, cx.pad_id, cx.device);
        let logits = model.forward(b.tokens.clone(), b.mask.clone());
        let loss = sft_loss(logits, b.tokens, b.loss_mask);
        let m = SftMetrics::new(scalar(&loss), b.response_tokens);
        (loss, TaskMetrics::Sft(m), b.real_tokens)
    }
}

/// How a score model of kind `K` learns from pairs: the loss and metrics of its task.
pub trait PairTask: ScoreType {
    /// The task kind.
    const TASK: TaskKind;

    /// The loss of a batch of pairs (scores of the chosen and rejected responses) and its
    /// metrics.
    fn pair_loss(
        chosen: Tensor<1>,
        rejected: Tensor<1>,
        batch: &PairBatch,
        regularization: f64,
        device: &Device,
    ) -> (Tensor<1>, TaskMetrics);
}

impl PairTask for Reward {
    const TASK: TaskKind = TaskKind::Reward;

    /// Bradley-Terry on preference pairs (chosen = better).
    fn pair_loss(
        better: Tensor<1>,
        worse: Tensor<1>,
        _: &PairBatch,
        regularization: f64,
        _: &Device,
    ) -> (Tensor<1>, TaskMetrics) {
        let (hb, hw) = (to_host(&better), to_host(&worse));
        let loss = reward_loss(better, worse, regularization);
        let m = RewardMetrics::new(&hb, &hw, scalar(&loss));
        (loss, TaskMetrics::Reward(m))
    }
}

impl PairTask for Cost {
    const TASK: TaskKind = TaskKind::Cost;

    /// The cost loss on safety pairs (chosen = safer; C > 0 unsafe) with its sign terms.
    fn pair_loss(
        safer: Tensor<1>,
        less_safe: Tensor<1>,
        batch: &PairBatch,
        regularization: f64,
        device: &Device,
    ) -> (Tensor<1>, TaskMetrics) {
        let labels = SafetyLabels::new(&batch.chosen_safe, &batch.rejected_safe, device);
        let (hs, hu) = (to_host(&safer), to_host(&less_safe));
        let loss = cost_loss(safer, less_safe, &labels, regularization);
        let m = CostMetrics::new(&hs, &hu, &labels, scalar(&loss));
        (loss, TaskMetrics::Cost(m))
    }
}

/// Score-model training on pairs: [`RewardTask`] (chosen = better) or [`CostTask`] (chosen =
/// safer; C > 0 unsafe).
#[derive(Debug, Clone, Copy, Default)]
pub struct ScoreTask<K>(std::marker::PhantomData<K>);

/// Reward-model training on preference pairs (chosen = better).
pub type RewardTask = ScoreTask<Reward>;
/// Cost-model training on safety pairs (chosen = safer; C > 0 unsafe).
pub type CostTask = ScoreTask<Cost>;

impl<K: PairTask> ScoreTask<K> {
    /// The task.
    pub fn new() -> Self {
        ScoreTask(std::marker::PhantomData)
    }
}

impl<K: PairTask> Task for ScoreTask<K> {
    type Model = ScoreModel<K>;
    type Example = EncodedPair;
    const KIND: TaskKind = K::TASK;

    fn init_model(&self, config: &TrainConfig, device: &Device) -> WithConfig<ScoreModel<K>> {
        init_score(config, device)
    }

    fn loss(&self, model: &ScoreModel<K>, batch: &[&EncodedPair], cx: &LossContext) -> BatchLoss {
        let (chosen, rejected, b) = pair_scores(model, batch, cx.pad_id, cx.device);
        let (loss, m) = K::pair_loss(chosen, rejected, &b, cx.regularization, cx.device);
        (loss, m, b.real_tokens)
    }
}

/// The score kind of a reward or cost task (None for SFT).
pub fn score_kind(task: TaskKind) -> Option<ScoreKind> {
    match task {
        TaskKind::Sft | TaskKind::Dpo | TaskKind::Sacpo => None,
        TaskKind::Reward => Some(ScoreKind::Reward),
        TaskKind::Cost => Some(ScoreKind::Cost),
    }
}

/// Direct alignment of the policy on preference pairs (DPO; each SACPO stage is one) against a
/// frozen reference.
///
/// The reference is the run's **initial policy** (`model.init` or `model.preset`), loaded once
/// when the task is built and kept on the non-autodiff device: it carries no gradient, no
/// optimizer state and no autodiff graph, and a resumed run reloads it from the config (never
/// from the checkpoint, which holds the trained policy). So a DPO run holds **two full models**:
/// the trained policy (with its gradients and two AdamW moments, ~4x its weights) and the
/// reference (1x). For a SACPO stage the initial policy is the previous stage's final model, so
/// that model, frozen, is the reference, as SACPO requires.
pub struct DpoTask {
    objective: Box<dyn OfflineObjective>,
    sum_from: SumFrom,
    reference: LlamaForCausalLM,
    reference_device: Device,
}

impl std::fmt::Debug for DpoTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpoTask")
            .field("objective", &self.objective.name())
            .field("beta", &self.objective.beta())
            .field("sum_from", &self.sum_from)
            .finish_non_exhaustive()
    }
}

impl DpoTask {
    /// The task of a `task = "dpo"` config: DPO with `dpo.beta`, the reference loaded from
    /// `model.init` / `model.preset` onto `device` without autodiff.
    pub fn new(config: &TrainConfig, device: &Device) -> Result<Self> {
        let dpo = config.dpo.clone().unwrap_or_default();
        let reference_device = device.clone().without_autodiff();
        let (_, reference) = init_dpo_policy(config, &reference_device)?;
        let objective: Box<dyn OfflineObjective> = match dpo.preference {
            Preference::SafetyAware => Box::new(SafeDpo {
                beta: dpo.beta,
                margin: dpo.margin,
            }),
            _ => Box::new(Dpo::new(dpo.beta)),
        };
        Ok(Self::with_reference(
            objective,
            dpo.sum_from,
            reference,
            reference_device,
        ))
    }

    /// A task with an explicit objective and a reference living on `reference_device` (which
    /// should be a device without autodiff).
    pub fn with_reference(
        objective: Box<dyn OfflineObjective>,
        sum_from: SumFrom,
        reference: LlamaForCausalLM,
        reference_device: Device,
    ) -> Self {
        DpoTask {
            objective,
            sum_from,
            reference,
            reference_device,
        }
    }

    /// The loss.
    pub fn objective(&self) -> &dyn OfflineObjective {
        self.objective.as_ref()
    }

    /// The frozen reference.
    pub fn reference(&self) -> &LlamaForCausalLM {
        &self.reference
    }

    // ANCHOR: pair_logprobs
    /// Sequence log-probabilities of a batch of pairs under `policy` (on `device`, with
    /// gradient if it is an autodiff device) and under the reference (computed on the
    /// reference's device without autodiff, then copied over), and the batch's real-token
    /// count.
    pub fn pair_logprobs(
        &self,
        policy: &LlamaForCausalLM,
        batch: &[&EncodedPair],
        pad_id: u32,
        device: &Device,
    ) -> (PairLogProbs, usize) {
        let (policy_chosen, policy_rejected, tokens) =
            sequence_logprobs(policy, batch, pad_id, self.sum_from, device);
        let (ref_chosen, ref_rejected, _) = sequence_logprobs(
            &self.reference,
            batch,
            pad_id,
            self.sum_from,
            &self.reference_device,
        );
        let to_device = |t: Tensor<1>| Tensor::<1>::from_data(t.into_data(), device);
        let flags: Vec<f32> = batch
            .iter()
            .map(|p| {
                let safe_vs_unsafe = p.chosen_safe == Some(true) && p.rejected_safe == Some(false);
                if safe_vs_unsafe { 1.0 } else { 0.0 }
            })
            .collect();
        let n = flags.len();
        let logps = PairLogProbs {
            policy_chosen,
            policy_rejected,
            reference_chosen: to_device(ref_chosen),
            reference_rejected: to_device(ref_rejected),
            margin_flags: Some(Tensor::from_data(TensorData::new(flags, [n]), device)),
        };
        (logps, tokens)
    }
    // ANCHOR_END: pair_logprobs
}

/// The policy a DPO run starts from (refusing a score-model directory).
fn init_dpo_policy(
    config: &TrainConfig,
    device: &Device,
) -> Result<(LlamaConfig, LlamaForCausalLM)> {
    if let Some(init) = &config.model.init
        && is_score_dir(init)
    {
        return Err(TrainError::config(
            "model.init",
            format!("{} is a score model, not a policy to align", init.display()),
        ));
    }
    init_policy(config, device)
}

/// The first token index each response's log-probability sum counts, for a pair: the response
/// start, or the first position where the two sequences differ (never inside the prompt, and
/// never position 0, which nothing predicts).
pub fn sum_starts(pair: &EncodedPair, sum_from: SumFrom) -> (usize, usize) {
    let (c, r) = (&pair.chosen, &pair.rejected);
    let (mut sc, mut sr) = (c.prompt_len.max(1), r.prompt_len.max(1));
    if sum_from == SumFrom::Divergence {
        let d = c
            .tokens
            .iter()
            .zip(&r.tokens)
            .position(|(a, b)| a != b)
            .unwrap_or(c.tokens.len().min(r.tokens.len()));
        sc = sc.max(d);
        sr = sr.max(d);
    }
    (sc, sr)
}

/// Summed log-probabilities `[B]` of the chosen and of the rejected responses of `batch` under
/// `model`, with the batch's real-token count.
///
/// `Σ_t log π(y_t | x, y_<t)` over the response tokens y_t from the start [`sum_starts`] gives
/// to the last real token (the end token included); prompt and padding are selected away.
pub fn sequence_logprobs(
    model: &LlamaForCausalLM,
    batch: &[&EncodedPair],
    pad_id: u32,
    sum_from: SumFrom,
    device: &Device,
) -> (Tensor<1>, Tensor<1>, usize) {
    let b = pair_batch(batch, pad_id, device);
    let [rows, l] = b.tokens.dims();
    let n = b.pairs;
    // Which next-token log-probs [2B, L - 1] count: element t predicts token t + 1.
    let mut keep = Vec::with_capacity(rows * l.saturating_sub(1));
    let starts: Vec<(usize, usize)> = batch.iter().map(|p| sum_starts(p, sum_from)).collect();
    let rows_info = batch
        .iter()
        .zip(&starts)
        .map(|(p, s)| (p.chosen.tokens.len(), s.0))
        .chain(
            batch
                .iter()
                .zip(&starts)
                .map(|(p, s)| (p.rejected.tokens.len(), s.1)),
        );
    for (len, start) in rows_info {
        for t in 0..l.saturating_sub(1) {
            keep.push(t + 1 >= start && t + 1 < len);
        }
    }
    let keep: Tensor<2, Bool> =
        Tensor::from_data(TensorData::new(keep, [rows, l.saturating_sub(1)]), device);
    let token_logps = model.token_logprobs(b.tokens, b.mask); // [2B, L - 1]
    let seq = token_logps
        .mask_fill(keep.bool_not(), 0.0)
        .sum_dim(1)
        .reshape([rows]); // [2B]
    let chosen = seq.clone().narrow(0, 0, n);
    let rejected = seq.narrow(0, n, n);
    (chosen, rejected, b.real_tokens)
}

impl Task for DpoTask {
    type Model = LlamaForCausalLM;
    type Example = EncodedPair;
    const KIND: TaskKind = TaskKind::Dpo;

    fn init_model(&self, config: &TrainConfig, device: &Device) -> WithConfig<LlamaForCausalLM> {
        init_dpo_policy(config, device)
    }

    fn loss(
        &self,
        model: &LlamaForCausalLM,
        batch: &[&EncodedPair],
        cx: &LossContext,
    ) -> BatchLoss {
        let (logps, tokens) = self.pair_logprobs(model, batch, cx.pad_id, cx.device);
        let loss = self.objective.loss(&logps);
        let m = DpoMetrics::new(self.objective.beta(), &logps, scalar(&loss));
        (loss, TaskMetrics::Dpo(m), tokens)
    }
}

//! The TOML configuration of the supervised stages (`saferlhf sft`, `train-reward`,
//! `train-cost`) and the offline alignment runs (`saferlhf align`: DPO and SACPO).
//!
//! A config file has the sections `[run]`, `[model]`, `[data]` (with `[[data.sources]]`),
//! `[optim]`, `[train]` and `[loss]`, plus an optional top-level `task`; `task = "dpo"` adds
//! `[dpo]` ([`DpoConfig`]) and `task = "sacpo"` `[sacpo]` ([`SacpoConfig`], with the two
//! stages' data sources). Every struct here denies
//! unknown keys, so a misspelt key is an error naming it. Every default of every config kind
//! lives in [`defaults`] and nowhere else (the `Default` impls read it). [`load`] is the one
//! loader of every config kind. [`TrainConfig::load`] reads a file, applies
//! `--set key=value` overrides to the parsed TOML table *before* deserializing (so an override
//! can reach any key, `data.sources.0.path` included), deserializes and validates; validation
//! errors name the dotted key (`optim.lr: must be > 0, got 0`). The resolved config (defaults
//! filled in) is what [`SessionConfig::to_toml`](crate::SessionConfig::to_toml) writes into
//! the run directory and every checkpoint.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

pub mod defaults;
pub mod load;
pub mod offline;

pub use offline::{DpoConfig, Preference, SacpoConfig, SacpoOrder, SumFrom};

/// Which model a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Supervised fine-tuning of the policy (next-token cross entropy on response tokens).
    Sft,
    /// Reward model (Bradley-Terry on helpfulness pairs).
    Reward,
    /// Cost model (Bradley-Terry plus sign terms; C > 0 unsafe).
    Cost,
    /// DPO of the policy on preference pairs against its frozen initial weights (`[dpo]`).
    Dpo,
    /// SACPO: DPO stages on helpfulness and safety pairs (`[sacpo]`), each a DPO run.
    Sacpo,
}

impl TaskKind {
    /// The name used in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Sft => "sft",
            TaskKind::Reward => "reward",
            TaskKind::Cost => "cost",
            TaskKind::Dpo => "dpo",
            TaskKind::Sacpo => "sacpo",
        }
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Learning-rate schedule after the linear warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Half-cosine decay from `lr` to `lr * min_lr_ratio` over the steps after warmup.
    Cosine,
    /// `lr` after warmup.
    Constant,
}

/// File format of a data source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// PKU-SafeRLHF JSONL: helpfulness pairs (reward), safety pairs with labels (cost).
    Pku,
    /// Anthropic HH-RLHF JSONL (gzip or plain): chosen/rejected pairs without safety labels;
    /// for SFT, the chosen response is the target.
    Hh,
    /// PyRIT human-scored harm CSV (a file or a directory of them): pairs of responses to the
    /// same prompt, the less harmful one chosen, each labelled safe iff harm < `safe_threshold`.
    Pyrit,
    /// SFT JSONL (`prompt`, `response`); SFT only.
    Sft,
}

/// How the shared prompt of an HH-RLHF dialogue pair is found (see `saferlhf_data::HhSplit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HhPrompt {
    /// Cut each dialogue after its own final "\n\nAssistant:"; the prompts must match.
    #[default]
    LastAssistant,
    /// Cut at the last "\n\nAssistant:" inside the common prefix (recovers a few more rows).
    CommonPrefix,
}

/// `[run]`: where and how the run executes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Run directory: `config.toml`, `metrics.jsonl`, `checkpoints/step-N/`, `final/`.
    pub dir: PathBuf,
    /// The one seed: model init (random parts), hold-out split and shuffling.
    pub seed: u64,
    /// Compute device: `flex` (CPU), `wgpu`, `vulkan`, `cuda` or `cuda:N`.
    pub device: String,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            dir: PathBuf::from(defaults::RUN_DIR),
            seed: defaults::SEED,
            device: defaults::DEVICE.to_string(),
            progress: defaults::PROGRESS,
        }
    }
}

/// `[model]` of the supervised stages and `[policy]` of an RL run: what is trained and how text
/// becomes tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Initial weights: a `.gguf` file or a Hugging Face directory (`config.json`,
    /// `model.safetensors`, `tokenizer.json`); a score-model directory of the same kind continues
    /// that model. Exactly one of `init` and `preset` must be set.
    pub init: Option<PathBuf>,
    /// A built-in random model instead of `init`: `tiny` (character-level tokenizer, vocabulary
    /// 64, hidden 32, 2 layers; for tests) or `small` (the same tokenizer, hidden 64, 3 layers;
    /// the safety-compensation benchmark's policy). See `saferlhf_learner::tiny`.
    pub preset: Option<String>,
    /// Chat template of the prompt: `model` (the model's own Jinja template, from its
    /// `tokenizer_config.json`, `chat_template.jinja` or GGUF metadata), or a named one: `chatml`,
    /// `smollm2`, `saferlhf` or `raw`.
    pub template: String,
    /// System turn for the `chatml` and `model` templates.
    pub system: Option<String>,
    /// Most tokens of prompt + response + end token; longer examples are truncated (the prompt
    /// from the left, the response from the right; see `collate`).
    pub max_length: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            init: None,
            preset: None,
            template: defaults::TEMPLATE.to_string(),
            system: None,
            max_length: defaults::MAX_LENGTH,
        }
    }
}

impl ModelConfig {
    /// Checks the section's values; `section` (`model` or `policy`) starts the dotted key an
    /// error names.
    pub fn validate(&self, section: &str) -> Result<()> {
        let key = |k: &str| format!("{section}.{k}");
        let bad = |key: &str, reason: String| Err(TrainError::config(key, reason));
        match (&self.init, &self.preset) {
            (None, None) => {
                return bad(
                    &key("init"),
                    format!(
                        "missing: set {section}.init (a .gguf file or Hugging Face directory) \
                         or {section}.preset"
                    ),
                );
            }
            (Some(_), Some(_)) => {
                return bad(
                    &key("preset"),
                    format!("set either {section}.init or {section}.preset, not both"),
                );
            }
            (None, Some(p)) if crate::tiny::preset_config(p).is_none() => {
                return bad(
                    &key("preset"),
                    format!(
                        "unknown preset `{p}` (known: {})",
                        crate::tiny::PRESETS.join(", ")
                    ),
                );
            }
            _ => {}
        }
        if let Err(e) = saferlhf_model::tokenizer::ChatTemplate::from_str(&self.template) {
            return bad(&key("template"), e.to_string());
        }
        if self.system.is_some() && !matches!(self.template.as_str(), "chatml" | "model") {
            return bad(
                &key("system"),
                format!(
                    "only applies to the chatml and model templates, not `{}`",
                    self.template
                ),
            );
        }
        if self.max_length < 8 {
            return bad(
                &key("max_length"),
                format!("must be >= 8, got {}", self.max_length),
            );
        }
        Ok(())
    }

    /// Checks that the loaded model (`llama`) fits this section: the tokenizer's ids have
    /// embeddings and `max_length` has positions.
    pub fn check_model(
        &self,
        section: &str,
        tokenizer_vocab: usize,
        llama: &saferlhf_model::LlamaConfig,
    ) -> Result<()> {
        if tokenizer_vocab > llama.vocab_size {
            return Err(TrainError::config(
                format!("{section}.init"),
                format!(
                    "the tokenizer has {tokenizer_vocab} ids but the model only {} embeddings",
                    llama.vocab_size
                ),
            ));
        }
        if self.max_length > llama.max_position_embeddings {
            return Err(TrainError::config(
                format!("{section}.max_length"),
                format!(
                    "{} exceeds the model's {} positions",
                    self.max_length, llama.max_position_embeddings
                ),
            ));
        }
        Ok(())
    }
}

/// One `[[data.sources]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    /// `pku`, `hh`, `pyrit` or `sft`.
    pub format: SourceFormat,
    /// The file (for `pyrit` also a directory of CSVs); relative paths are taken from the
    /// working directory.
    pub path: PathBuf,
    /// Skip malformed rows (counted and reported) instead of failing on the first one.
    #[serde(default = "default_skip_invalid")]
    pub skip_invalid: bool,
    /// Skip this many examples (pairs) of this source, the first ones in file order, before
    /// `limit` applies: `offset` and `limit` cut a file into disjoint parts (e.g. two score
    /// models trained on different halves of one data set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    /// Use at most this many examples (pairs) of this source, the first ones in file order
    /// (after `offset`).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `pyrit` only: a response is labelled safe iff its harm < this (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe_threshold: Option<f32>,
    /// `pyrit` only: two responses form a pair only if their harm differs by more than this
    /// (default 0: any difference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_margin: Option<f32>,
    /// `pyrit` only: at most this many pairs per prompt, the largest harm differences first
    /// (default: every pair).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pairs_per_prompt: Option<usize>,
    /// `hh` only: how the shared prompt is found, `last-assistant` (the default) or
    /// `common-prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hh_prompt: Option<HhPrompt>,
}

impl DataSource {
    /// The file `path`, read as `format`, with every optional key at its default.
    pub fn new(format: SourceFormat, path: impl Into<PathBuf>) -> Self {
        DataSource {
            format,
            path: path.into(),
            skip_invalid: defaults::SKIP_INVALID,
            offset: None,
            limit: None,
            safe_threshold: None,
            min_margin: None,
            max_pairs_per_prompt: None,
            hh_prompt: None,
        }
    }

    /// The PyRIT safe/unsafe threshold in force.
    pub fn safe_threshold(&self) -> f32 {
        self.safe_threshold
            .unwrap_or(defaults::PYRIT_SAFE_THRESHOLD)
    }

    /// The HH-RLHF prompt split in force.
    pub fn hh_prompt(&self) -> HhPrompt {
        self.hh_prompt.unwrap_or_default()
    }
}

fn default_skip_invalid() -> bool {
    defaults::SKIP_INVALID
}

/// `[data]`: training data and the held-out split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The sources, concatenated in order.
    pub sources: Vec<DataSource>,
    /// Share of the examples held out for evaluation, in (0, 1). The split groups examples by
    /// prompt, so no prompt is on both sides.
    pub eval_fraction: f64,
    /// Evaluate on at most this many held-out examples, spread evenly over the held-out set
    /// (so every source is represented); all when absent.
    pub eval_limit: Option<usize>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            sources: Vec::new(),
            eval_fraction: defaults::EVAL_FRACTION,
            eval_limit: None,
        }
    }
}

/// `[optim]`: AdamW, the learning-rate schedule and gradient clipping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate (> 0).
    pub lr: f64,
    /// AdamW decoupled weight decay on matrices and embeddings (norm gains and biases are not
    /// decayed), >= 0.
    pub weight_decay: f64,
    /// AdamW β1 in [0, 1).
    pub beta1: f64,
    /// AdamW β2 in [0, 1).
    pub beta2: f64,
    /// AdamW ε (> 0).
    pub eps: f64,
    /// Clip the global L2 norm of the gradient to this before each step; 0 turns clipping off.
    pub max_grad_norm: f64,
    /// `cosine` or `constant` after warmup.
    pub schedule: Schedule,
    /// Share of the optimizer steps spent warming up linearly from 0 to `lr`, in [0, 1].
    pub warmup_ratio: f64,
    /// The cosine schedule ends at `lr * min_lr_ratio`, in [0, 1].
    pub min_lr_ratio: f64,
}

impl OptimConfig {
    /// Checks every value; errors name `{prefix}.key` (`optim.lr`, `actor.lr`, ...).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let bad =
            |key: &str, reason: String| Err(TrainError::config(format!("{prefix}.{key}"), reason));
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("must be > 0, got {}", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "weight_decay",
                format!("must be >= 0, got {}", self.weight_decay),
            );
        }
        for (key, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return bad(key, format!("must lie in [0, 1), got {v}"));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", format!("must be > 0, got {}", self.eps));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            return bad(
                "max_grad_norm",
                format!("must be >= 0 (0 = off), got {}", self.max_grad_norm),
            );
        }
        for (key, v) in [
            ("warmup_ratio", self.warmup_ratio),
            ("min_lr_ratio", self.min_lr_ratio),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(key, format!("must lie in [0, 1], got {v}"));
            }
        }
        Ok(())
    }
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: defaults::LR,
            weight_decay: defaults::WEIGHT_DECAY,
            beta1: defaults::BETA1,
            beta2: defaults::BETA2,
            eps: defaults::EPS,
            max_grad_norm: defaults::MAX_GRAD_NORM,
            schedule: defaults::SCHEDULE,
            warmup_ratio: defaults::WARMUP_RATIO,
            min_lr_ratio: defaults::MIN_LR_RATIO,
        }
    }
}

/// `[train]`: length of the run, batching, evaluation and checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainLoopConfig {
    /// Passes over the training examples (used when `max_steps` is absent).
    pub epochs: usize,
    /// Total optimizer steps; overrides `epochs` when set.
    pub max_steps: Option<u64>,
    /// Pairs (reward/cost; each gives 2 sequences) or examples (SFT) per micro-batch.
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed (each loss divided by this) per optimizer step.
    pub grad_accum: usize,
    /// Evaluate on the held-out split every this many steps; 0 = only after the last step.
    pub eval_every: u64,
    /// Pairs or examples per evaluation batch.
    pub eval_batch_size: usize,
    /// Write a checkpoint every this many steps; 0 = only after the last step.
    pub checkpoint_every: u64,
    /// Checkpoints kept in `checkpoints/` (the oldest are deleted), >= 1.
    pub keep_last: usize,
}

impl Default for TrainLoopConfig {
    fn default() -> Self {
        TrainLoopConfig {
            epochs: defaults::EPOCHS,
            max_steps: None,
            batch_size: defaults::BATCH_SIZE,
            grad_accum: defaults::GRAD_ACCUM,
            eval_every: defaults::EVAL_EVERY,
            eval_batch_size: defaults::EVAL_BATCH_SIZE,
            checkpoint_every: defaults::CHECKPOINT_EVERY,
            keep_last: defaults::KEEP_LAST,
        }
    }
}

/// `[loss]`: loss coefficients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// η of the L2 term on end scores (reward and cost), >= 0; ignored by SFT.
    pub regularization: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            regularization: defaults::REGULARIZATION,
        }
    }
}

/// A whole training config. `TrainConfig::default()` has every section at its defaults and no
/// `task` (set one before [`TrainConfig::validate`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// `sft`, `reward` or `cost`; the subcommand fills it in when absent and refuses a
    /// different value.
    #[serde(default)]
    pub task: Option<TaskKind>,
    /// `[run]`.
    #[serde(default)]
    pub run: RunConfig,
    /// `[model]`.
    #[serde(default)]
    pub model: ModelConfig,
    /// `[data]`.
    #[serde(default)]
    pub data: DataConfig,
    /// `[optim]`.
    #[serde(default)]
    pub optim: OptimConfig,
    /// `[train]`.
    #[serde(default)]
    pub train: TrainLoopConfig,
    /// `[loss]`.
    #[serde(default)]
    pub loss: LossConfig,
    /// `[dpo]`: only with `task = "dpo"` (filled with its defaults there when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpo: Option<DpoConfig>,
    /// `[sacpo]`: only with `task = "sacpo"` (required there: it holds the stages' data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sacpo: Option<SacpoConfig>,
}

/// Keys that may differ between a checkpoint's config and the config of the run that resumes
/// it: they do not change the trained weights.
pub const RESUMABLE_KEYS: [&str; 9] = [
    "run.dir",
    "run.device",
    "run.progress",
    "data.eval_limit",
    "train.eval_every",
    "train.eval_batch_size",
    "train.checkpoint_every",
    "train.keep_last",
    // Paths may move between machines; the data fingerprint in the checkpoint still guards
    // against different contents.
    "data.sources",
];

impl TrainConfig {
    /// Reads `path`, applies `overrides` (`key=value`, dotted keys, TOML values; a value that is
    /// not valid TOML is taken as a string), deserializes and validates ([`load::load`]).
    /// `task` fills in an absent `task` key; a different one is an error naming `task`.
    pub fn load(path: &Path, overrides: &[String], task: Option<TaskKind>) -> Result<Self> {
        load::load::<TrainConfig>(path, overrides, None)?.finish(task)
    }

    /// As [`TrainConfig::load`] from text; `origin` names it in errors.
    pub fn from_toml_str(
        text: &str,
        origin: &Path,
        overrides: &[String],
        task: Option<TaskKind>,
    ) -> Result<Self> {
        load::parse::<TrainConfig>(text, origin, overrides, None)?.finish(task)
    }

    fn finish(mut self, task: Option<TaskKind>) -> Result<Self> {
        match (self.task, task) {
            (None, Some(t)) => self.task = Some(t),
            (Some(a), Some(b)) if a != b => {
                return Err(TrainError::config(
                    "task",
                    format!("the config is for `{a}` but this command trains `{b}`"),
                ));
            }
            (None, None) => {
                return Err(TrainError::config(
                    "task",
                    "missing: set task = \"sft\", \"reward\", \"cost\", \"dpo\" or \"sacpo\"",
                ));
            }
            _ => {}
        }
        if self.task == Some(TaskKind::Dpo) && self.dpo.is_none() {
            self.dpo = Some(DpoConfig::default());
        }
        self.validate()?;
        Ok(self)
    }

    /// The task (always set after loading).
    pub fn task(&self) -> TaskKind {
        self.task.unwrap_or(TaskKind::Reward)
    }

    /// Checks every value; the error names the dotted key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, reason: String| Err(TrainError::config(key, reason));
        self.model.validate("model")?;
        let task = self.task();
        self.validate_align()?;
        if task == TaskKind::Sacpo {
            if !self.data.sources.is_empty() {
                return bad(
                    "data.sources",
                    "SACPO reads its data from sacpo.helpfulness_sources and \
                     sacpo.safety_sources; leave data.sources empty"
                        .into(),
                );
            }
        } else if self.data.sources.is_empty() {
            return bad(
                "data.sources",
                "no data source: add [[data.sources]] with format and path".into(),
            );
        }
        for (i, s) in self.data.sources.iter().enumerate() {
            validate_source(task, &format!("data.sources.{i}"), s)?;
        }
        let f = self.data.eval_fraction;
        if !(f > 0.0 && f < 1.0) {
            return bad("data.eval_fraction", format!("must lie in (0, 1), got {f}"));
        }
        if self.data.eval_limit == Some(0) {
            return bad("data.eval_limit", "must be >= 1".into());
        }
        self.optim.validate("optim")?;
        let t = &self.train;
        if t.max_steps.is_none() && t.epochs == 0 {
            return bad(
                "train.epochs",
                "must be >= 1 (or set train.max_steps)".into(),
            );
        }
        if t.max_steps == Some(0) {
            return bad("train.max_steps", "must be >= 1".into());
        }
        for (key, v) in [
            ("train.batch_size", t.batch_size),
            ("train.grad_accum", t.grad_accum),
            ("train.eval_batch_size", t.eval_batch_size),
            ("train.keep_last", t.keep_last),
        ] {
            if v == 0 {
                return bad(key, "must be >= 1".into());
            }
        }
        if !(self.loss.regularization.is_finite() && self.loss.regularization >= 0.0) {
            return bad(
                "loss.regularization",
                format!("must be >= 0, got {}", self.loss.regularization),
            );
        }
        Ok(())
    }

    /// The `[dpo]` and `[sacpo]` sections: present only with their task, values in range.
    fn validate_align(&self) -> Result<()> {
        let bad = |key: &str, reason: String| Err(TrainError::config(key, reason));
        let task = self.task();
        if self.dpo.is_some() && task != TaskKind::Dpo {
            return bad(
                "dpo",
                format!(
                    "[dpo] only applies to task = \"dpo\", not `{task}`{}",
                    if task == TaskKind::Sacpo {
                        " (SACPO sets β and λ in [sacpo])"
                    } else {
                        ""
                    }
                ),
            );
        }
        if self.sacpo.is_some() && task != TaskKind::Sacpo {
            return bad(
                "sacpo",
                format!("[sacpo] only applies to task = \"sacpo\", not `{task}`"),
            );
        }
        let positive = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                bad(key, format!("must be > 0, got {v}"))
            }
        };
        if let Some(d) = &self.dpo {
            positive("dpo.beta", d.beta)?;
            if !(d.margin.is_finite() && d.margin >= 0.0) {
                return bad("dpo.margin", format!("must be >= 0, got {}", d.margin));
            }
            if d.margin > 0.0 && d.preference != crate::objectives::dpo::Preference::SafetyAware {
                return bad(
                    "dpo.margin",
                    format!(
                        "SafeDPO's margin applies only with dpo.preference = \"safety_aware\", \
                         not `{}`",
                        d.preference.as_str()
                    ),
                );
            }
        }
        if task == TaskKind::Sacpo {
            let Some(s) = &self.sacpo else {
                return bad(
                    "sacpo",
                    "missing: task = \"sacpo\" needs a [sacpo] section with \
                     [[sacpo.helpfulness_sources]] and [[sacpo.safety_sources]]"
                        .into(),
                );
            };
            positive("sacpo.beta", s.beta)?;
            positive("sacpo.lambda", s.lambda)?;
            for (name, sources) in [
                ("sacpo.helpfulness_sources", &s.helpfulness_sources),
                ("sacpo.safety_sources", &s.safety_sources),
            ] {
                if sources.is_empty() {
                    return bad(
                        name,
                        format!("no data source: add [[{name}]] with format and path"),
                    );
                }
                for (i, src) in sources.iter().enumerate() {
                    validate_source(TaskKind::Dpo, &format!("{name}.{i}"), src)?;
                }
            }
        }
        Ok(())
    }
}

/// Checks one data source of `task`; `prefix` is its dotted key (`data.sources.0`).
fn validate_source(task: TaskKind, prefix: &str, s: &DataSource) -> Result<()> {
    let bad = |key: String, reason: String| Err(TrainError::config(key, reason));
    let key = |k: &str| format!("{prefix}.{k}");
    let allowed = match task {
        TaskKind::Sft => matches!(s.format, SourceFormat::Sft | SourceFormat::Hh),
        TaskKind::Reward | TaskKind::Cost | TaskKind::Dpo | TaskKind::Sacpo => {
            s.format != SourceFormat::Sft
        }
    };
    if !allowed {
        return bad(
            key("format"),
            format!(
                "format `{}` cannot train a {task} model (sft: sft or hh; reward/cost/dpo/sacpo: \
                 pku, hh or pyrit)",
                format_name(s.format)
            ),
        );
    }
    if s.limit == Some(0) {
        return bad(key("limit"), "must be >= 1".into());
    }
    let pyrit_only = [
        ("safe_threshold", s.safe_threshold.is_some()),
        ("min_margin", s.min_margin.is_some()),
        ("max_pairs_per_prompt", s.max_pairs_per_prompt.is_some()),
    ];
    for (k, set) in pyrit_only {
        if set && s.format != SourceFormat::Pyrit {
            return bad(key(k), "only applies to format = \"pyrit\"".into());
        }
    }
    if s.hh_prompt.is_some() && s.format != SourceFormat::Hh {
        return bad(key("hh_prompt"), "only applies to format = \"hh\"".into());
    }
    let t = s.safe_threshold();
    if !(t.is_finite() && t > 0.0) {
        return bad(
            key("safe_threshold"),
            format!("must be a positive number, got {t}"),
        );
    }
    if let Some(m) = s.min_margin
        && !(m.is_finite() && m >= 0.0)
    {
        return bad(key("min_margin"), format!("must be >= 0, got {m}"));
    }
    if s.max_pairs_per_prompt == Some(0) {
        return bad(key("max_pairs_per_prompt"), "must be >= 1".into());
    }
    Ok(())
}

fn format_name(f: SourceFormat) -> &'static str {
    match f {
        SourceFormat::Pku => "pku",
        SourceFormat::Hh => "hh",
        SourceFormat::Pyrit => "pyrit",
        SourceFormat::Sft => "sft",
    }
}

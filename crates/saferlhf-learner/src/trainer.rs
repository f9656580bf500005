//! The one training loop of the supervised stages (SFT, reward model, cost model) and of DPO
//! (alone or as a SACPO stage).
//!
//! # Why not burn-train's `SupervisedTraining`
//!
//! burn-train 0.22 gives an epoch-over-dataloader loop with per-*epoch* checkpoints written
//! in place (`FileCheckpointer` writes `model-<epoch>.bpk` directly, from a background thread)
//! and resumes at an epoch boundary only. The stages here need a checkpoint every N optimizer
//! *steps* that resumes bit-exactly mid-epoch (data position, shuffle seed, scheduler step),
//! written so that a crash mid-write leaves the previous one intact, with Hugging Face-named
//! weights that other tools read, a held-out evaluation every N steps, and one JSONL line per
//! optimizer step. So the loop is written here directly on burn-optim (as the RL loop is
//! too): [`burn::optim::AdamW`] through `ModuleOptimizer` (its `OptimizerRecord`
//! is saved as burnpack), `GradientsAccumulator` for gradient accumulation, our own global-norm
//! clipping ([`crate::params::clip_global_norm`]; burn's `GradientClipping::Norm` clips each
//! tensor separately), a closed-form schedule ([`crate::schedule`]) and
//! [`crate::checkpoint`]'s atomic checkpoint directories. The metrics are our own
//! ([`crate::losses`]); the progress bar is indicatif's.
//!
//! # Exact resume
//!
//! A run trained for N steps, and a run stopped after k steps and resumed, end with the same
//! weights bit for bit: the weights are saved losslessly (f32 safetensors), the optimizer
//! moments and step counts in burnpack, and every parameter has a stable id (a hash of its
//! path, [`crate::params::stable_ids`]) so the saved optimizer state attaches to the reloaded
//! parameters. The data order is a pure function of `(seed, epoch)` and the cursor says where
//! in the epoch the run stands; the learning rate is a pure function of the step. Nothing else
//! is random.

use std::time::Instant;

use burn::module::{Module, ParamGroup};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use saferlhf_core::rng::epoch_permutation;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::checkpoint::{
    DataCursor, MODEL_DIR, OPTIMIZER_FILE, RngState, STATE_FORMAT, SchedulerState, TrainState,
    load_optimizer, save_optimizer,
};
use crate::config::{OptimConfig, TaskKind, TrainConfig};
use crate::data::DataSummary;
use crate::error::{Result, TrainError, check_finite};
use crate::metrics::TaskMetrics;
use crate::models::{ModelMeta, encoder_for, load_tokenizer, save_text_side};
use crate::params::{clip_global_norm, no_decay_ids, stable_ids};
use crate::schedule::LrSchedule;
pub use crate::session::{Resume, TrainOptions};
use crate::session::{Session, SessionConfig, SessionEnd, SessionSettings};
use crate::task::{CostTask, DpoTask, LossContext, RewardTask, SftTask, Task};

/// What a call to [`train`] did: the session's end (run directory, steps, checkpoints, final
/// model; the fields are reached through `Deref`) and what only a supervised run has.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// The task trained.
    pub task: TaskKind,
    /// How the session ended.
    #[serde(flatten)]
    pub run: SessionEnd,
    /// The last held-out evaluation.
    pub eval: Option<Map<String, Value>>,
    /// What the data loading did.
    pub data: DataSummary,
}

impl std::ops::Deref for TrainSummary {
    type Target = SessionEnd;
    fn deref(&self) -> &SessionEnd {
        &self.run
    }
}

/// Trains the config's task on `device` (autodiff is enabled on it here). A SACPO config is
/// refused: it runs through [`crate::align::align`].
pub fn train(
    config: &TrainConfig,
    device: &Device,
    options: &TrainOptions,
) -> Result<TrainSummary> {
    match config.task() {
        TaskKind::Sft => run(SftTask, config, device, options),
        TaskKind::Reward => run(RewardTask::new(), config, device, options),
        TaskKind::Cost => run(CostTask::new(), config, device, options),
        TaskKind::Dpo => run(DpoTask::new(config, device)?, config, device, options),
        TaskKind::Sacpo => Err(TrainError::config(
            "task",
            "a SACPO run is a sequence of DPO runs: run it with saferlhf_learner::align::align \
             (`saferlhf align`)",
        )),
    }
}

/// Number of optimizer steps of a run over `n` training examples.
pub fn total_steps(config: &TrainConfig, n: usize) -> u64 {
    if let Some(steps) = config.train.max_steps {
        return steps;
    }
    let micro_per_epoch = n.div_ceil(config.train.batch_size.max(1)) as u64;
    let micro = micro_per_epoch * config.train.epochs as u64;
    micro.div_ceil(config.train.grad_accum.max(1) as u64).max(1)
}

/// The next micro-batch's example indices; moves to the next epoch (and its permutation) when
/// the current one is used up. A batch never spans two epochs (the last one of an epoch may be
/// smaller).
fn next_batch(
    cursor: &mut DataCursor,
    order: &mut Vec<usize>,
    n: usize,
    size: usize,
) -> Vec<usize> {
    if cursor.position >= n {
        cursor.epoch += 1;
        cursor.position = 0;
        *order = epoch_permutation(n, cursor.shuffle_seed, cursor.epoch);
    }
    let end = (cursor.position + size).min(n);
    let batch = order[cursor.position..end].to_vec();
    cursor.position = end;
    batch
}

fn adamw(o: &OptimConfig, weight_decay: f64) -> AdamWConfig {
    AdamWConfig::new()
        .with_beta_1(o.beta1 as f32)
        .with_beta_2(o.beta2 as f32)
        .with_epsilon(o.eps as f32)
        .with_weight_decay(weight_decay as f32)
}

/// AdamW with decoupled weight decay on matrices only (rank-1 parameters get none).
pub(crate) fn build_optimizer<M: Module>(config: &OptimConfig, model: &M) -> ModuleOptimizer {
    let wd = config.weight_decay;
    let mut optim = adamw(config, wd).init();
    let exempt = no_decay_ids(model);
    if wd > 0.0 && !exempt.is_empty() {
        optim = optim.with_group(
            ParamGroup::from_ids(exempt),
            adamw(config, 0.0).build(),
            None,
        );
    }
    optim
}

impl SessionConfig for TrainConfig {
    fn load_saved(&self, path: &std::path::Path) -> Result<Self> {
        let saved = TrainConfig::load(path, &[], None)?;
        if saved.task() != self.task() {
            let dir = path.parent().unwrap_or(path);
            return Err(TrainError::checkpoint(
                dir,
                format!("holds a {} run, not {}", saved.task(), self.task()),
            ));
        }
        Ok(saved)
    }

    fn session(&self) -> SessionSettings<'_> {
        let t = &self.train;
        SessionSettings::new(&self.run, t.checkpoint_every, t.keep_last)
    }

    const RESUMABLE_KEYS: &'static [&'static str] = &crate::config::RESUMABLE_KEYS;
}

/// The generic loop.
fn run<T: Task>(
    task: T,
    config: &TrainConfig,
    device: &Device,
    options: &TrainOptions,
) -> Result<TrainSummary> {
    let train_device = device.clone().autodiff();
    let eval_device = device.clone().without_autodiff();

    // Lock the run directory, decide resume, check and write the config.
    let opened = Session::open(config, options)?;
    let resume_state: Option<TrainState> = opened.read_state()?;
    if let Some(state) = &resume_state
        && state.task != T::KIND
    {
        return Err(TrainError::checkpoint(
            opened.resume_dir().unwrap_or(&config.run.dir),
            format!("holds a {} run, not {}", state.task, T::KIND),
        ));
    }

    // Tokenizer, data, model, optimizer.
    let tokenizer = load_tokenizer(&config.model)?;
    let encoder = encoder_for(&config.model, tokenizer.clone())?;
    let pad_id = encoder.pad_id();
    let data = task.load_data(config, &encoder)?;
    let summary = data.summary.clone();
    log::info!(
        "data: {} training and {} held-out examples ({} truncated, {} identical pairs dropped)",
        summary.train,
        summary.eval,
        summary.truncated,
        summary.dropped_identical
    );
    let n = data.train.len();
    let total = total_steps(config, n);
    let (llama, model) = match opened.resume_dir() {
        Some(dir) => task.load(&dir.join(MODEL_DIR), &train_device)?,
        None => task.init_model(config, &train_device)?,
    };
    config
        .model
        .check_model("model", tokenizer.vocab_size(), &llama)?;
    let mut model = stable_ids(model);
    let mut optim = build_optimizer(&config.optim, &model);
    let schedule = LrSchedule::new(&config.optim, total);

    let seed = config.run.seed;
    let (mut step, mut cursor, mut tokens_seen, elapsed_before) =
        match (&resume_state, opened.resume_dir()) {
            (Some(s), Some(dir)) => {
                if s.data_fingerprint != summary.fingerprint || s.train_examples != n {
                    return Err(TrainError::checkpoint(
                        dir,
                        format!(
                            "the training data differ from the checkpoint's ({} examples now, {} \
                         then; fingerprint {:016x} vs {:016x})",
                            n, s.train_examples, summary.fingerprint, s.data_fingerprint
                        ),
                    ));
                }
                if s.total_steps != total {
                    return Err(TrainError::checkpoint(
                        dir,
                        format!("the run has {total} steps now, {} then", s.total_steps),
                    ));
                }
                optim = load_optimizer(optim, &dir.join(OPTIMIZER_FILE))?;
                (s.step, s.cursor, s.tokens_seen, s.elapsed_seconds)
            }
            _ => (
                0,
                DataCursor {
                    epoch: 0,
                    position: 0,
                    shuffle_seed: seed,
                },
                0,
                0.0,
            ),
        };
    let mut order = epoch_permutation(n, cursor.shuffle_seed, cursor.epoch);
    let meta = ModelMeta::new(T::KIND, &config.model);
    let t = &config.train;
    let mut session = opened.start(T::KIND.as_str(), total, step, elapsed_before)?;
    let mut last_eval: Option<Map<String, Value>> = None;

    let fill = |model: &T::Model, optim: &ModuleOptimizer, dir: &std::path::Path| -> Result<()> {
        let mdir = dir.join(MODEL_DIR);
        task.save(model, &llama, &mdir)?;
        save_text_side(&tokenizer, &meta, &mdir)?;
        save_optimizer(optim, &dir.join(OPTIMIZER_FILE))
    };
    let state_at = |step: u64, cursor: DataCursor, tokens_seen: u64, elapsed: f64| TrainState {
        format: STATE_FORMAT,
        task: T::KIND,
        step,
        total_steps: total,
        cursor,
        scheduler: SchedulerState {
            kind: schedule.kind,
            peak_lr: schedule.peak,
            warmup_steps: schedule.warmup_steps,
            total_steps: total,
            next_step: step,
        },
        rng: RngState {
            generator: "splitmix64".into(),
            seed,
        },
        data_fingerprint: summary.fingerprint,
        train_examples: n,
        tokens_seen,
        elapsed_seconds: elapsed,
    };

    let train_cx = LossContext {
        pad_id,
        regularization: config.loss.regularization,
        device: &train_device,
    };
    let eval_cx = LossContext {
        device: &eval_device,
        ..train_cx
    };
    while session.keep_going(step) {
        let started = Instant::now();
        let mut acc = GradientsAccumulator::<T::Model>::new();
        let mut step_metrics: Option<TaskMetrics> = None;
        let mut step_tokens = 0usize;
        for _ in 0..t.grad_accum {
            let idx = next_batch(&mut cursor, &mut order, n, t.batch_size);
            let batch: Vec<&T::Example> = idx.iter().map(|&i| &data.train[i]).collect();
            let (loss, m, tokens) = task.loss(&model, &batch, &train_cx);
            check_finite(step + 1, "loss", m.loss())?;
            let loss = if t.grad_accum > 1 {
                loss.div_scalar(t.grad_accum as f64)
            } else {
                loss
            };
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            acc.accumulate(&model, grads);
            step_metrics = Some(m.merged_into(step_metrics));
            step_tokens += tokens;
        }
        let mut grads = acc.grads();
        let grad_norm = clip_global_norm(&model, &mut grads, config.optim.max_grad_norm);
        check_finite(step + 1, "gradient norm", grad_norm)?;
        let lr = schedule.lr(step);
        model = optim.step(lr, model, grads);
        step += 1;
        let seconds = started.elapsed().as_secs_f64();
        tokens_seen += step_tokens as u64;

        let mut line = Map::new();
        line.insert("step".into(), json!(step));
        line.insert(
            "epoch".into(),
            json!(cursor.epoch as f64 + cursor.position as f64 / n.max(1) as f64),
        );
        line.insert("lr".into(), json!(lr));
        if let Some(m) = &step_metrics {
            for (k, v) in m.to_json() {
                line.insert(k, v);
            }
        }
        line.insert("grad_norm".into(), json!(grad_norm));
        line.insert("tokens".into(), json!(step_tokens));
        line.insert(
            "tokens_per_s".into(),
            json!(step_tokens as f64 / seconds.max(1e-9)),
        );
        line.insert("seconds".into(), json!(seconds));
        let elapsed = session.elapsed();
        line.insert("elapsed".into(), json!(elapsed));

        let eval_now = step == total || (t.eval_every > 0 && step.is_multiple_of(t.eval_every));
        if eval_now {
            let valid = model.valid();
            if let Some(m) = task.evaluate(&valid, &data.eval, t.eval_batch_size, &eval_cx) {
                let json = m.to_json();
                session
                    .bar()
                    .println(format!("step {step}: eval {}", m.short()));
                log::info!("step {step}: eval {}", m.short());
                line.insert("eval".into(), Value::Object(json.clone()));
                last_eval = Some(json);
            }
        }
        let message = step_metrics
            .as_ref()
            .map(TaskMetrics::short)
            .unwrap_or_default();
        session.log_step(step, &line, &message)?;

        if session.checkpoint_due(step) {
            let state = state_at(step, cursor, tokens_seen, elapsed);
            session.save_checkpoint(step, &state, |dir| fill(&model, &optim, dir))?;
        }
    }
    let end = session.finish(
        step,
        |elapsed| state_at(step, cursor, tokens_seen, elapsed),
        |dir| fill(&model, &optim, dir),
        |dir| {
            task.save(&model, &llama, dir)?;
            save_text_side(&tokenizer, &meta, dir)
        },
    )?;
    Ok(TrainSummary {
        task: T::KIND,
        run: end,
        eval: last_eval,
        data: summary,
    })
}

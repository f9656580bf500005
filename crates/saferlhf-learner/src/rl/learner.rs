//! The online learner: one loop for every [`OnlineObjective`], read top to bottom.
//!
//! Per RL step:
//!
//! 1. **Prompts**: the next `rollout.prompts_per_step` prompts of a seeded per-epoch
//!    permutation ([`super::prompts`]).
//! 2. **Experience**: the policy answers them (sampling, KV cache); prompts and responses are
//!    laid out as one batch and scored without autodiff: old and reference log-probs, reward
//!    and cost end scores, critic values ([`super::experience`]).
//! 3. **Multiplier step**: the objective observes the step's rewards and costs
//!    ([`OnlineObjective::observe`]: the Lagrange multiplier's update, its window).
//! 4. **Advantages**: KL-shaped reward and cost streams, GAE on each, combined with the
//!    objective's weights ([`super::advantages`]).
//! 5. **Update**: epochs of shuffled minibatches, micro-batched, clipped surrogate and value
//!    losses, one AdamW step of actor and critics per minibatch ([`super::update`](mod@super::update)).
//! 6. **Metrics** (one JSONL line, the progress bar; [`super::metrics`]) and **checkpoints**
//!    (the run lifecycle of [`crate::session`]: policy and critics, both optimizers, the
//!    objective's multiplier state, the prompt cursor; a resumed run ends with the same
//!    weights as an uninterrupted one).
//!
//! The models each objective holds are listed in [`super::models`].

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use saferlhf_model::lora;
use saferlhf_model::weights::save_hf_dir;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::advantages::{self, Advantages};
use super::config::RlConfig;
use super::experience::{self, Experience, ExternalScorer};
use super::kl::KlController;
use super::metrics::{mean_sequence_kl, short, step_metrics};
use super::models::{RlModels, load_models};
use super::prompts::{PromptCursor, load_prompt_ids};
use super::ptx::Ptx;
use super::scorer::{RolloutScorer, ScorerRole};
use super::update::{Optimizers, update};
use crate::checkpoint::{
    ADAPTER_DIR, CRITIC_OPTIMIZER_FILE, CRITICS_FILE, MODEL_DIR, OPTIMIZER_FILE,
};
use crate::checkpoint::{load_optimizer, save_optimizer};
use crate::config::TaskKind;
use crate::error::{Result, TrainError};
use crate::models::{ModelMeta, save_text_side};
use crate::objectives::{Groups, OnlineObjective, build_online, prompt_key};
use crate::session::{Session, SessionConfig, SessionEnd, SessionSettings, TrainOptions};

/// Where an RL run stands (`state.json` in each checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlState {
    /// RL steps done.
    pub step: u64,
    /// Optimizer steps done (of each of actor and critics).
    pub optimizer_steps: u64,
    /// Prompt epoch.
    pub epoch: u64,
    /// Position in the epoch's permutation.
    pub position: usize,
    /// Number of training prompts (a resume checks it).
    pub prompts: usize,
    /// The objective's state (multiplier, window).
    pub objective: Value,
    /// Wall-clock seconds of all sessions.
    pub elapsed_seconds: f64,
    /// The KL coefficient β (it moves with `ppo.kl_target`).
    #[serde(default)]
    pub kl_coeff: Option<f64>,
    /// Where the `[ptx]` example stream stands: `(epoch, position)`.
    #[serde(default)]
    pub ptx: Option<(u64, usize)>,
}

/// What a call to [`train_rl`] did: the session's end (run directory, steps, checkpoints, final
/// policy; the fields are reached through `Deref`), the objective and the last metrics line.
#[derive(Debug, Clone, Serialize)]
pub struct RlSummary {
    /// The objective.
    pub objective: String,
    /// How the session ended.
    #[serde(flatten)]
    pub run: SessionEnd,
    /// The last metrics line.
    pub last_metrics: Option<Map<String, Value>>,
}

impl std::ops::Deref for RlSummary {
    type Target = SessionEnd;
    fn deref(&self) -> &SessionEnd {
        &self.run
    }
}

impl SessionConfig for RlConfig {
    const RESUMABLE_KEYS: &'static [&'static str] = &super::config::RL_RESUMABLE_KEYS;

    fn session(&self) -> SessionSettings<'_> {
        let t = &self.train;
        SessionSettings::new(&self.run, t.checkpoint_every, t.keep_last)
    }

    fn load_saved(&self, path: &Path) -> Result<Self> {
        RlConfig::load(path, &[])
    }
}

/// One rollout ready for the update: the scored experience and its advantages.
#[derive(Debug, Clone)]
pub struct RlBatch {
    /// Phase 2's output.
    pub experience: Experience,
    /// Phase 4's output.
    pub advantages: Advantages,
}

/// Phases 2-4 of step `step + 1` on `prompts`: experience, the multiplier step, advantages.
/// `prompts` holds one entry per response: with `rollout.group_size = k`, each prompt `k`
/// times in a row.
pub fn collect_experience(
    config: &RlConfig,
    models: &RlModels,
    objective: &mut dyn OnlineObjective,
    prompts: &[Vec<u32>],
    step: u64,
    device: &Device,
) -> Result<RlBatch> {
    let experience = experience::collect(config, models, prompts, step, device)?;
    let keys: Vec<u64> = prompts.iter().map(|p| prompt_key(p)).collect();
    let groups = Groups {
        keys: &keys,
        size: config.rollout.group_size,
    };
    objective.observe_groups(step, &groups, &experience.rewards, &experience.costs);
    let advantages = advantages::estimate(config, objective, &experience, config.ppo.kl_coeff);
    Ok(RlBatch {
        experience,
        advantages,
    })
}

/// Trains the config's policy with its online objective on `device`: the objective
/// `objective` names (`ppo`, `ppo_lag`, `repo`, `reward_shaping`), built by
/// [`build_online`] from the config's sections.
pub fn train_rl(config: &RlConfig, device: &Device, options: &TrainOptions) -> Result<RlSummary> {
    let objective = build_online(config.objective, &config.sections());
    train_rl_with(config, objective, device, options)
}

/// Trains the config's policy with any [`OnlineObjective`], built-in or not: the plugin seam
/// of the online learner (`train_rl` is this with the config's built-in objective).
///
/// `config.objective` is then only read by [`RlConfig::validate`] (which of `[reward_model]`
/// and `[cost_model]` must be set) and written into the run's `config.toml`; the models loaded
/// and the token streams formed follow `objective.uses_cost()` and `objective.cost_stream()`.
/// A resumed run must be given the same kind of objective: its state comes back through
/// [`OnlineObjective::load_state`].
pub fn train_rl_with(
    config: &RlConfig,
    objective: Box<dyn OnlineObjective>,
    device: &Device,
    options: &TrainOptions,
) -> Result<RlSummary> {
    train_rl_scored(config, objective, None, device, options)
}

/// [`train_rl_with`] with a [`RolloutScorer`] whose scores train the policy in place of the
/// reward and cost models' ([`ScorerRole::Train`], oracle mode) or are logged beside them
/// ([`ScorerRole::Monitor`]); see [`super::scorer`].
pub fn train_rl_scored(
    config: &RlConfig,
    mut objective: Box<dyn OnlineObjective>,
    scorer: Option<(&dyn RolloutScorer, ScorerRole)>,
    device: &Device,
    options: &TrainOptions,
) -> Result<RlSummary> {
    if let (Some(task), None) = (&config.oracle.task, &scorer) {
        return Err(TrainError::config(
            "oracle.task",
            format!(
                "{} needs the synthetic task's scorer, which this library call cannot build: \
                 run the config with `saferlhf rlhf`, or pass the scorer to train_rl_scored",
                task.display()
            ),
        ));
    }
    if objective.uses_cost()
        && config.cost_model.path.is_none()
        && config.cost_model.preset.is_none()
    {
        return Err(TrainError::config(
            "cost_model.path",
            format!(
                "missing: objective `{}` needs a cost model",
                objective.name()
            ),
        ));
    }

    // The run directory: lock, resume decision, config check.
    let opened = Session::open(config, options)?;
    let resume: Option<RlState> = opened.read_state()?;
    if let Some(state) = &resume {
        objective.load_state(&state.objective)?;
    }

    // Models, prompts, optimizers.
    let mut models = load_models(config, objective.as_ref(), device, opened.resume_dir())?;
    let (prompt_texts, prompts) = load_prompt_ids(config, &models.encoder)?;
    let external = scorer.map(|(scorer, role)| ExternalScorer {
        scorer,
        role,
        prompt_texts: &prompt_texts,
    });
    let n = prompts.len();
    let keys: Vec<u64> = prompts.iter().map(|p| prompt_key(p)).collect();
    let mut optim = Optimizers::new(config, &models.policy, models.critics.as_ref());
    let (mut step, mut optimizer_steps, mut cursor, elapsed_before) =
        match (&resume, opened.resume_dir()) {
            (Some(s), Some(dir)) => {
                if s.prompts != n {
                    return Err(TrainError::checkpoint(
                        dir,
                        format!("the run has {n} prompts now, {} then", s.prompts),
                    ));
                }
                optim.actor = load_optimizer(optim.actor, &dir.join(OPTIMIZER_FILE))?;
                if let Some(critic) = optim.critic.take() {
                    let path = dir.join(CRITIC_OPTIMIZER_FILE);
                    optim.critic = Some(load_optimizer(critic, &path)?);
                }
                let cursor = PromptCursor::new(n, config.run.seed, s.epoch, s.position);
                (s.step, s.optimizer_steps, cursor, s.elapsed_seconds)
            }
            _ => (0, 0, PromptCursor::new(n, config.run.seed, 0, 0), 0.0),
        };
    let mut kl = KlController::new(&config.ppo, resume.as_ref().and_then(|s| s.kl_coeff));
    let ptx_at = resume.as_ref().and_then(|s| s.ptx).unwrap_or((0, 0));
    let mut ptx = Ptx::load(config, &models.encoder, ptx_at)?;
    let total = config.train.steps;
    let mut session = opened.start(objective.name(), total, step, elapsed_before)?;
    let meta = ModelMeta::new(TaskKind::Sft, &config.policy);
    let mut last_metrics = None;

    let lora_spec = config.lora.spec();
    let fill = |models: &RlModels, optim: &Optimizers, dir: &Path| -> Result<()> {
        match &lora_spec {
            Some(spec) => {
                lora::save_adapters(&models.policy.valid(), spec, &dir.join(ADAPTER_DIR))?
            }
            None => {
                let mdir = dir.join(MODEL_DIR);
                save_hf_dir(&models.policy.valid(), &models.policy_config, &mdir)?;
                save_text_side(models.encoder.tokenizer(), &meta, &mdir)?;
            }
        }
        if let (Some(critics), Some(opt)) = (&models.critics, &optim.critic) {
            critics.valid().save(&dir.join(CRITICS_FILE))?;
            save_optimizer(opt, &dir.join(CRITIC_OPTIMIZER_FILE))?;
        }
        save_optimizer(&optim.actor, &dir.join(OPTIMIZER_FILE))
    };
    let state_at = |step,
                    optimizer_steps,
                    cursor: &PromptCursor,
                    objective: &dyn OnlineObjective,
                    kl: &KlController,
                    ptx: &Option<Ptx>,
                    elapsed| RlState {
        step,
        optimizer_steps,
        epoch: cursor.epoch,
        position: cursor.position,
        prompts: n,
        objective: objective.state(),
        elapsed_seconds: elapsed,
        kl_coeff: Some(kl.coeff),
        ptx: ptx.as_ref().map(|p| (p.cursor.epoch, p.cursor.position)),
    };

    while session.keep_going(step) {
        let started = Instant::now();
        // 1. Prompts.
        // Each prompt `group_size` times in a row: one group per prompt.
        let k = config.rollout.group_size;
        let indices: Vec<usize> = cursor
            .next_indices(n, config.rollout.prompts_per_step)
            .into_iter()
            .flat_map(|i| std::iter::repeat_n(i, k))
            .collect();
        let batch: Vec<Vec<u32>> = indices.iter().map(|&i| prompts[i].clone()).collect();
        let keys: Vec<u64> = indices.iter().map(|&i| keys[i]).collect();
        // 2. Experience: generate, lay out, score.
        let ext = external.as_ref().map(|e| (e, indices.as_slice()));
        let exp = experience::collect_scored(config, &models, &batch, ext, step, device)?;
        // 3. The multiplier step.
        let groups = Groups {
            keys: &keys,
            size: k,
        };
        objective.observe_groups(step, &groups, &exp.rewards, &exp.costs);
        // 4. Advantages, with the current KL coefficient; then the controller's step.
        let kl_coeff = kl.coeff;
        let adv = advantages::estimate(config, objective.as_ref(), &exp, kl_coeff);
        kl.update(mean_sequence_kl(&exp), exp.batch);
        // 5. Update.
        let (policy, critics, stats) = update(
            config,
            models.policy,
            models.critics,
            &mut optim,
            &exp,
            &adv,
            ptx.as_mut(),
            step,
            &mut optimizer_steps,
            kl_coeff,
            device,
        )?;
        models.policy = policy;
        models.critics = critics;
        step += 1;

        // 6. Metrics and checkpoints.
        let seconds = started.elapsed().as_secs_f64();
        let mut line = Map::new();
        line.insert("step".into(), json!(step));
        line.insert("epoch".into(), json!(cursor.fractional_epoch()));
        for (k, v) in step_metrics(objective.as_ref(), &exp, &adv, &stats, seconds, k) {
            line.insert(k, v);
        }
        line.insert("kl_coeff".into(), json!(kl_coeff));
        line.insert(
            "lr_actor".into(),
            json!(optim.actor_schedule.lr(optimizer_steps.saturating_sub(1))),
        );
        line.insert("seconds".into(), json!(seconds));
        let elapsed = session.elapsed();
        line.insert("elapsed".into(), json!(elapsed));
        session.log_step(step, &line, &short(&line))?;
        last_metrics = Some(line);
        if session.checkpoint_due(step) {
            let obj = objective.as_ref();
            let state = state_at(step, optimizer_steps, &cursor, obj, &kl, &ptx, elapsed);
            session.save_checkpoint(step, &state, |dir| fill(&models, &optim, dir))?;
        }
    }
    let end = session.finish(
        step,
        |elapsed| {
            let obj = objective.as_ref();
            state_at(step, optimizer_steps, &cursor, obj, &kl, &ptx, elapsed)
        },
        |dir| fill(&models, &optim, dir),
        |dir| {
            // With [lora] the export is the merged model: base weights + scaled adapters.
            save_hf_dir(
                &lora::merge(models.policy.valid()),
                &models.policy_config,
                dir,
            )?;
            save_text_side(models.encoder.tokenizer(), &meta, dir)
        },
    )?;
    Ok(RlSummary {
        objective: objective.name().to_string(),
        run: end,
        last_metrics,
    })
}

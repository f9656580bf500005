//! Offline alignment runs (`saferlhf align`): one DPO run, or the stages of a SACPO run.
//!
//! A DPO config (`task = "dpo"`) is one ordinary run of the trainer with a [`DpoTask`]. A SACPO
//! config (`task = "sacpo"`) becomes one DPO config per stage ([`stage_config`]), each run in its
//! own subdirectory of the SACPO run directory:
//!
//! ```text
//! runs/sacpo/
//!   config.toml                  the resolved SACPO config
//!   stage-1-helpfulness/         a complete DPO run: config.toml (task = "dpo", β),
//!     metrics.jsonl                metrics, checkpoints/step-N/, final/
//!     checkpoints/ final/
//!   stage-2-safety/              DPO with β/λ; model.init = ../stage-1-helpfulness/final,
//!     ...                          which is also its frozen reference
//! ```
//!
//! Stage k starts from stage k-1's `final/` and, since a DPO run's reference is its initial
//! policy, uses that model frozen as its reference. With `--resume` every stage that has
//! checkpoints continues from its newest one (a finished stage just rewrites its `final/`, with
//! the same weights), and the first stage without any starts fresh, so a SACPO run stopped
//! anywhere ends exactly as one never stopped. For a SACPO config any `resume` means this (the
//! path of `Resume::From` is not read: the config's `run.dir` is the run). `stop_at_step`
//! counts the optimizer steps of all stages together; `time_limit` the wall time of the whole
//! call.
//!
//! [`DpoTask`]: crate::task::DpoTask

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::checkpoint::{CONFIG_FILE, FINAL_DIR, list_checkpoints};
use crate::config::{TaskKind, TrainConfig};
use crate::error::{Result, TrainError};
use crate::objectives::dpo::{DpoConfig, Preference};
use crate::objectives::sacpo::{Stage, stages};
use crate::objectives::{OfflineObjective, SacpoConfig};
use crate::session::SessionConfig;
use crate::trainer::{Resume, TrainOptions, TrainSummary, train};

/// One DPO run of an alignment call.
#[derive(Debug, Clone, Serialize)]
pub struct StageRun {
    /// `dpo`, or the stage's directory name (`stage-1-helpfulness`).
    pub name: String,
    /// The preference the stage aligns for.
    pub preference: Preference,
    /// The effective β of its loss.
    pub beta: f64,
    /// What the trainer did.
    pub summary: TrainSummary,
}

/// What a call to [`align`] did.
#[derive(Debug, Clone, Serialize)]
pub struct AlignSummary {
    /// `dpo` or `sacpo`.
    pub task: TaskKind,
    /// The run directory.
    pub run_dir: PathBuf,
    /// The DPO runs done (or continued) in this call, in order.
    pub stages: Vec<StageRun>,
    /// Whether every stage reached its last step.
    pub finished: bool,
    /// The aligned model (the last stage's `final/`), once finished.
    pub final_model: Option<PathBuf>,
}

/// The DPO config of one SACPO stage: the stage's β, preference view and data, its own run
/// directory, and (after the first stage) the previous stage's final model as `model.init`.
pub fn stage_config(config: &TrainConfig, stage: &Stage, init: Option<&Path>) -> TrainConfig {
    let sacpo = config.sacpo.clone().unwrap_or_default();
    let mut c = config.clone();
    c.task = Some(TaskKind::Dpo);
    c.sacpo = None;
    c.dpo = Some(DpoConfig {
        beta: stage.objective.beta(),
        preference: stage.preference,
        margin: 0.0,
        sum_from: sacpo.sum_from,
    });
    c.data.sources = stage.sources.clone();
    c.run.dir = config.run.dir.join(stage.dir_name());
    if let Some(init) = init {
        c.model.init = Some(init.to_path_buf());
        c.model.preset = None;
    }
    c
}

/// Runs a `dpo` or `sacpo` config on `device` (see the module docs).
pub fn align(
    config: &TrainConfig,
    device: &burn::tensor::Device,
    options: &TrainOptions,
) -> Result<AlignSummary> {
    match config.task() {
        TaskKind::Dpo => {
            let summary = train(config, device, options)?;
            let dpo = config.dpo.clone().unwrap_or_default();
            Ok(AlignSummary {
                task: TaskKind::Dpo,
                run_dir: config.run.dir.clone(),
                finished: summary.finished,
                final_model: summary.final_model.clone(),
                stages: vec![StageRun {
                    name: "dpo".into(),
                    preference: dpo.preference,
                    beta: dpo.beta,
                    summary,
                }],
            })
        }
        TaskKind::Sacpo => run_sacpo(config, device, options),
        other => Err(TrainError::config(
            "task",
            format!("`saferlhf align` runs task = \"dpo\" or \"sacpo\", not `{other}`"),
        )),
    }
}

// ANCHOR: run_sacpo
fn run_sacpo(
    config: &TrainConfig,
    device: &burn::tensor::Device,
    options: &TrainOptions,
) -> Result<AlignSummary> {
    let started = Instant::now();
    let sacpo: &SacpoConfig = config
        .sacpo
        .as_ref()
        .ok_or_else(|| TrainError::config("sacpo", "missing"))?;
    let run_dir = &config.run.dir;
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
    let path = run_dir.join(CONFIG_FILE);
    saferlhf_core::write_atomic(&path, config.to_toml())?;

    let mut runs = Vec::new();
    let mut init: Option<PathBuf> = None; // the previous stage's final model
    let mut steps_before = 0u64; // optimizer steps of the earlier stages
    let mut finished = true;
    for stage in stages(sacpo) {
        let stage_cfg = stage_config(config, &stage, init.as_deref());
        stage_cfg.validate()?;
        let started_already = !list_checkpoints(&stage_cfg.run.dir)?.is_empty();
        // Resume a stage that has checkpoints; start the others fresh (the first stage of a
        // resumed run must have one, as for a single run).
        let resume = match &options.resume {
            Some(_) if started_already || stage.index == 1 => Some(Resume::Latest),
            _ => None,
        };
        let stop_at_step = options.stop_at_step.map(|s| s.saturating_sub(steps_before));
        let time_limit = options
            .time_limit
            .map(|l| l.saturating_sub(started.elapsed()));
        let out_of_budget = stop_at_step == Some(0) || time_limit.is_some_and(|l| l.is_zero());
        if out_of_budget && !started_already {
            finished = false;
            break;
        }
        log::info!(
            "SACPO stage {} ({}, β = {}): {}",
            stage.index,
            stage.preference.as_str(),
            stage.objective.beta(),
            stage_cfg.run.dir.display()
        );
        let stage_options = TrainOptions {
            resume,
            stop_at_step,
            time_limit,
        };
        let summary = train(&stage_cfg, device, &stage_options)?;
        steps_before += summary.total_steps;
        let done = summary.finished;
        runs.push(StageRun {
            name: stage.dir_name(),
            preference: stage.preference,
            beta: stage.objective.beta(),
            summary,
        });
        if !done {
            finished = false;
            break;
        }
        init = Some(stage_cfg.run.dir.join(FINAL_DIR));
    }
    Ok(AlignSummary {
        task: TaskKind::Sacpo,
        run_dir: run_dir.clone(),
        stages: runs,
        finished,
        final_model: if finished { init } else { None },
    })
}
// ANCHOR_END: run_sacpo

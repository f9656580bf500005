//! Run directories and checkpoints: the one layout of every training run (supervised stages,
//! DPO and SACPO stages, online RL).
//!
//! ```text
//! <run.dir>/
//!   .lock                    the process running it (see saferlhf_core::lock)
//!   config.toml              the resolved config of the run
//!   metrics.jsonl            one JSON line per step
//!   checkpoints/
//!     step-00000100/         one directory per checkpoint, complete or absent
//!       model/               the trained model: config.json + model.safetensors (Hugging Face
//!                            names), tokenizer.json, tokenizer_config.json, saferlhf.json
//!       adapter/             RL with [lora], instead of model/: the policy's LoRA adapters in
//!                            PEFT's layout (adapter_model.safetensors, adapter_config.json)
//!       optimizer.bpk        its AdamW state (burn-optim OptimizerRecord, burnpack)
//!       critics.safetensors  RL only: the critics (full models or value heads)
//!       critic-optimizer.bpk RL only: their AdamW state
//!       config.toml          the resolved config
//!       state.json           where the run stands (written last; its presence marks a
//!                            complete checkpoint); `format` is the layout's version
//!     .tmp-step-00000200-<pid>/   a checkpoint being written (ignored, removed on the next write)
//!   final/                   the trained model after the last step (same layout as model/)
//! ```
//!
//! `state.json` holds, for a supervised or DPO run, a [`TrainState`] (step, data cursor,
//! scheduler, RNG, data fingerprint) and, for an RL run, an `RlState` (step, optimizer steps,
//! prompt cursor, the objective's multiplier state); both carry `format` =
//! [`STATE_FORMAT`], and a checkpoint of another format is refused with an error naming it.
//!
//! A checkpoint is written into a temporary directory whose name starts with `.tmp-` and is
//! renamed to `step-N` only once every file is complete (`state.json` last), so a crash or a
//! failed write mid-checkpoint leaves the previous checkpoints intact and at worst a `.tmp-*`
//! directory, which [`list_checkpoints`] ignores. A `step-N` directory without `state.json`
//! (not produced by this code) is skipped with a warning.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{Schedule, TaskKind};
use crate::error::{Result, TrainError};

/// Sub-directory of the run directory holding checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Sub-directory of the run directory holding the final model.
pub const FINAL_DIR: &str = "final";
/// The model directory inside a checkpoint.
pub const MODEL_DIR: &str = "model";
/// RL with `[lora]`: the policy's adapters inside a checkpoint (in place of [`MODEL_DIR`]).
pub const ADAPTER_DIR: &str = "adapter";
/// The optimizer state inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
/// RL only: the critics' weights inside a checkpoint.
pub const CRITICS_FILE: &str = "critics.safetensors";
/// RL only: the critics' optimizer state inside a checkpoint.
pub const CRITIC_OPTIMIZER_FILE: &str = "critic-optimizer.bpk";
/// The training state inside a checkpoint (written last: its presence marks completeness).
pub const STATE_FILE: &str = "state.json";
/// The resolved config, in the run directory and in each checkpoint.
pub const CONFIG_FILE: &str = "config.toml";
/// The metrics log in the run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Version of [`TrainState`]'s layout.
pub const STATE_FORMAT: u32 = 1;

/// Position in the training data: the next example is `permutation(seed, epoch)[position]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCursor {
    /// 0-based epoch.
    pub epoch: u64,
    /// Index of the next example within the epoch's permutation.
    pub position: usize,
    /// Seed of the per-epoch shuffles (the run's seed).
    pub shuffle_seed: u64,
}

/// The scheduler's state: its parameters and the step it will serve next.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SchedulerState {
    /// `cosine` or `constant`.
    pub kind: Schedule,
    /// Peak learning rate.
    pub peak_lr: f64,
    /// Warmup steps.
    pub warmup_steps: u64,
    /// Total steps of the run.
    pub total_steps: u64,
    /// The 0-based step whose rate is used next (= optimizer steps taken).
    pub next_step: u64,
}

/// The random-number state. Training draws randomness only from SplitMix64 streams keyed by
/// the seed (see [`saferlhf_core::rng`]): the init streams are used before step 0 and the shuffle
/// stream of an epoch is a function of `(seed, epoch)`, so this plus the data cursor is the
/// whole RNG state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// `splitmix64`.
    pub generator: String,
    /// The run's seed.
    pub seed: u64,
}

/// Everything besides weights and optimizer moments that a resume needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// [`STATE_FORMAT`].
    pub format: u32,
    /// The task trained.
    pub task: TaskKind,
    /// Optimizer steps taken.
    pub step: u64,
    /// Total optimizer steps of the run.
    pub total_steps: u64,
    /// Where the data stream stands.
    pub cursor: DataCursor,
    /// The learning-rate schedule.
    pub scheduler: SchedulerState,
    /// The RNG state.
    pub rng: RngState,
    /// Fingerprint of the tokenized training set (a resume on other data is refused).
    pub data_fingerprint: u64,
    /// Number of training examples.
    pub train_examples: usize,
    /// Real tokens processed so far.
    pub tokens_seen: u64,
    /// Wall-clock seconds of training so far (all sessions).
    pub elapsed_seconds: f64,
}

/// The directory name of the checkpoint at `step`.
pub fn checkpoint_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// The step of a checkpoint directory name (`step-00000100` -> 100).
pub fn parse_checkpoint_name(name: &str) -> Option<u64> {
    name.strip_prefix("step-")?.parse().ok()
}

/// The steps of a run directory's complete checkpoints, oldest first.
pub fn checkpoint_steps(run_dir: &Path) -> Result<Vec<u64>> {
    Ok(list_checkpoints(run_dir)?
        .into_iter()
        .map(|c| c.0)
        .collect())
}

/// Complete checkpoints of a run directory (those with a `state.json`), oldest first.
pub fn list_checkpoints(run_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let dir = run_dir.join(CHECKPOINTS_DIR);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| TrainError::io(&dir, e))? {
        let entry = entry.map_err(|e| TrainError::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(step) = parse_checkpoint_name(&name) else {
            continue; // `.tmp-*` leftovers and anything else
        };
        let path = entry.path();
        if path.join(STATE_FILE).is_file() {
            out.push((step, path));
        } else {
            log::warn!(
                "{}: no {STATE_FILE}, not a complete checkpoint; ignored",
                path.display()
            );
        }
    }
    out.sort();
    Ok(out)
}

/// The newest complete checkpoint of a run directory.
pub fn latest_checkpoint(run_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(list_checkpoints(run_dir)?.pop().map(|(_, p)| p))
}

/// The checkpoint a `--resume PATH` means: `PATH` itself when it is a checkpoint (holds
/// `state.json`), else the newest checkpoint of `PATH` taken as a run directory.
pub fn resolve_resume(path: &Path) -> Result<PathBuf> {
    if path.join(STATE_FILE).is_file() {
        return Ok(path.to_path_buf());
    }
    latest_checkpoint(path)?.ok_or_else(|| {
        TrainError::checkpoint(
            path,
            format!(
                "neither a checkpoint (no {STATE_FILE}) nor a run directory with a complete \
                 checkpoint in {CHECKPOINTS_DIR}/"
            ),
        )
    })
}

/// Writes a checkpoint of `step`: `fill` writes the files into a temporary directory, which is
/// then renamed to `checkpoints/step-N` (replacing an older checkpoint of the same step) by
/// [`saferlhf_core::write_dir_atomic`]. Leftover temporary directories of earlier crashes are
/// removed first.
pub fn write_checkpoint(
    run_dir: &Path,
    step: u64,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let dir = run_dir.join(CHECKPOINTS_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    saferlhf_core::fs::remove_leftovers(&dir);
    let target = dir.join(checkpoint_name(step));
    saferlhf_core::write_dir_atomic(&target, fill)?;
    Ok(target)
}

/// Deletes all but the newest `keep_last` complete checkpoints.
pub fn prune_checkpoints(run_dir: &Path, keep_last: usize) -> Result<()> {
    let all = list_checkpoints(run_dir)?;
    let excess = all.len().saturating_sub(keep_last.max(1));
    for (_, path) in all.into_iter().take(excess) {
        std::fs::remove_dir_all(&path).map_err(|e| TrainError::io(&path, e))?;
    }
    Ok(())
}

/// Writes `state.json` (inside a checkpoint being written) with the layout's version in its
/// `format` field, whatever the state's type.
pub fn write_state<S: Serialize>(dir: &Path, state: &S) -> Result<()> {
    let path = dir.join(STATE_FILE);
    let mut value = serde_json::to_value(state)
        .map_err(|e| TrainError::checkpoint(&path, format!("cannot encode the state: {e}")))?;
    if let Some(object) = value.as_object_mut() {
        object.insert("format".into(), STATE_FORMAT.into());
    }
    let text = serde_json::to_string_pretty(&value)
        .map_err(|e| TrainError::checkpoint(&path, format!("cannot encode the state: {e}")))?;
    saferlhf_core::write_atomic(&path, text)?;
    Ok(())
}

/// Reads a checkpoint's `state.json`, refusing a file without a format version or of a version
/// this code does not read.
pub fn read_state<S: DeserializeOwned>(checkpoint: &Path) -> Result<S> {
    let path = checkpoint.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| TrainError::checkpoint(&path, format!("invalid {STATE_FILE}: {e}")))?;
    match value.get("format").and_then(serde_json::Value::as_u64) {
        Some(f) if f == u64::from(STATE_FORMAT) => {}
        Some(f) => {
            return Err(TrainError::checkpoint(
                &path,
                format!("state format {f} is not supported (expected {STATE_FORMAT})"),
            ));
        }
        None => {
            return Err(TrainError::checkpoint(
                &path,
                format!(
                    "no state format version (expected {STATE_FORMAT}): written by an older \
                     saferlhf whose checkpoint layout this version does not read"
                ),
            ));
        }
    }
    serde_json::from_value(value)
        .map_err(|e| TrainError::checkpoint(&path, format!("invalid {STATE_FILE}: {e}")))
}

/// Saves an optimizer's state (burnpack) at `path`, atomically.
pub(crate) fn save_optimizer(
    optim: &burn::optim::ModuleOptimizer,
    path: &std::path::Path,
) -> Result<()> {
    saferlhf_core::fs::injected_failure(path)?;
    optim
        .save(path)
        .map_err(|e| TrainError::checkpoint(path, format!("cannot write the optimizer state: {e}")))
}

/// Loads an optimizer's state saved by [`save_optimizer`].
pub(crate) fn load_optimizer(
    optim: burn::optim::ModuleOptimizer,
    path: &std::path::Path,
) -> Result<burn::optim::ModuleOptimizer> {
    optim
        .load(path)
        .map_err(|e| TrainError::checkpoint(path, format!("cannot read the optimizer state: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> saferlhf_testkit::TempDir {
        saferlhf_testkit::TempDir::new(&format!("ckpt-{name}"))
    }

    fn state(step: u64) -> TrainState {
        TrainState {
            format: STATE_FORMAT,
            task: TaskKind::Reward,
            step,
            total_steps: 10,
            cursor: DataCursor {
                epoch: 0,
                position: 4,
                shuffle_seed: 1,
            },
            scheduler: SchedulerState {
                kind: Schedule::Cosine,
                peak_lr: 1e-3,
                warmup_steps: 1,
                total_steps: 10,
                next_step: step,
            },
            rng: RngState {
                generator: "splitmix64".into(),
                seed: 1,
            },
            data_fingerprint: 7,
            train_examples: 8,
            tokens_seen: 100,
            elapsed_seconds: 1.0,
        }
    }

    #[test]
    fn checkpoints_are_atomic_listed_and_pruned() {
        let run = temp_dir("atomic");
        for step in [1, 2, 3] {
            write_checkpoint(&run, step, |d| write_state(d, &state(step))).unwrap();
        }
        // A failed write leaves nothing behind and the others intact.
        let err = write_checkpoint(&run, 4, |d| {
            std::fs::write(d.join("partial"), "x").unwrap();
            Err(TrainError::checkpoint(d, "disk full"))
        });
        assert!(err.is_err());
        // A crash mid-write leaves a temporary directory; an incomplete step dir is ignored too.
        std::fs::create_dir_all(run.join("checkpoints/.tmp-step-00000009-1")).unwrap();
        std::fs::create_dir_all(run.join("checkpoints/step-00000008")).unwrap();
        let steps = checkpoint_steps(&run).unwrap();
        assert_eq!(steps, vec![1, 2, 3]);
        let latest = latest_checkpoint(&run).unwrap().unwrap();
        assert_eq!(read_state::<TrainState>(&latest).unwrap(), state(3));
        assert_eq!(resolve_resume(&run).unwrap(), latest);
        assert_eq!(resolve_resume(&latest).unwrap(), latest);
        prune_checkpoints(&run, 2).unwrap();
        let steps = checkpoint_steps(&run).unwrap();
        assert_eq!(steps, vec![2, 3]);
        // The next write clears the leftover temporary directory.
        write_checkpoint(&run, 5, |d| write_state(d, &state(5))).unwrap();
        assert!(!run.join("checkpoints/.tmp-step-00000009-1").exists());
        // Rewriting an existing step replaces it.
        write_checkpoint(&run, 5, |d| write_state(d, &state(5))).unwrap();
        assert!(resolve_resume(&temp_dir("empty")).is_err());
        let _ = std::fs::remove_dir_all(&run);
    }
}

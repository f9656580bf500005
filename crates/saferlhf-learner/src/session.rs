//! The lifecycle of a training run, shared by every loop (supervised stages, DPO and each
//! SACPO stage, the online RL learner).
//!
//! A loop is written as:
//!
//! ```text
//! let opened = Session::open(config, options)?;         // lock, resume decision, config diff,
//!                                                       // config.toml
//! let state: Option<S> = opened.read_state()?;          // the checkpoint's typed state
//! ... load models (from opened.resume_dir()), data, optimizers ...
//! let mut session = opened.start(name, total, step, elapsed_before)?;  // metrics log, bar
//! while session.keep_going(step) {
//!     ... one step ...
//!     session.log_step(step, &line, message)?;
//!     if session.checkpoint_due(step) { session.save_checkpoint(step, &state, |dir| ...)?; }
//! }
//! let end = session.finish(step, |step| state, |dir| fill, |dir| export)?;
//! ```
//!
//! What the session guarantees, in one place:
//!
//! * **one process per run directory**: a lock file ([`saferlhf_core::lock`]) refuses a second
//!   process and names the holder; a stale lock (dead process) is taken over;
//! * **no accidental overwrite**: a fresh run in a directory that holds checkpoints is refused;
//! * **exact resume**: the config must equal the checkpoint's except for the keys
//!   [`SessionConfig::RESUMABLE_KEYS`] lists; the state file has a format version;
//! * **atomic checkpoints and final export** ([`crate::checkpoint`]): a crash or a failed write
//!   leaves the previous checkpoint intact; the error names the file;
//! * **limits**: `stop_at_step` and `time_limit` end a session early with a checkpoint to
//!   resume from.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use saferlhf_core::lock::RunLock;
use saferlhf_core::progress::{self, ProgressBar};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::checkpoint::{
    CHECKPOINTS_DIR, CONFIG_FILE, FINAL_DIR, METRICS_FILE, latest_checkpoint, list_checkpoints,
    prune_checkpoints, read_state, resolve_resume, write_checkpoint, write_state,
};
use crate::error::{Result, TrainError};
use crate::metrics::MetricsLog;

/// Which checkpoint a run continues from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// The newest complete checkpoint of the config's run directory.
    Latest,
    /// A checkpoint directory, or a run directory (its newest checkpoint).
    From(PathBuf),
}

/// Run-time options that do not change what is computed (so they are not config keys).
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from a checkpoint instead of starting fresh.
    pub resume: Option<Resume>,
    /// Stop (with a checkpoint) once this many steps are done; the schedule still spans the
    /// whole run, so a later `--resume` continues exactly.
    pub stop_at_step: Option<u64>,
    /// Stop (with a checkpoint) after the first step that ends past this much wall time.
    pub time_limit: Option<Duration>,
}

/// What the lifecycle needs of a run's config.
pub trait SessionConfig: Sized + Serialize {
    /// Keys that may change between sessions of one run.
    const RESUMABLE_KEYS: &'static [&'static str];
    /// The `[run]` section and the checkpoint settings.
    fn session(&self) -> SessionSettings<'_>;
    /// Reads a config saved by an earlier session of this run.
    fn load_saved(&self, path: &Path) -> Result<Self>;

    /// The `[run]` section.
    fn run(&self) -> &crate::config::RunConfig {
        self.session().run
    }
    /// The run directory (`run.dir`).
    fn run_dir(&self) -> &Path {
        &self.run().dir
    }
    /// Whether to draw a progress bar (`run.progress`).
    fn progress(&self) -> bool {
        self.run().progress
    }
    /// The resolved config as TOML, every default filled in (written to `config.toml`).
    fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
    /// Dotted keys whose values differ from `saved`, except [`Self::RESUMABLE_KEYS`]; empty when
    /// a run with `self` may resume a checkpoint saved with `saved`.
    fn resume_conflicts(&self, saved: &Self) -> Vec<String> {
        let table = |c: &Self| toml::Table::try_from(c).unwrap_or_default();
        crate::config::load::resume_conflicts(&table(self), &table(saved), Self::RESUMABLE_KEYS)
    }
}

/// What a session reads from its config: the `[run]` section and the checkpoint settings.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings<'a> {
    /// The `[run]` section.
    pub run: &'a crate::config::RunConfig,
    /// Periodic checkpoint cadence in steps (0: only at the end).
    pub checkpoint_every: u64,
    /// How many complete checkpoints to keep.
    pub keep_last: usize,
}

impl<'a> SessionSettings<'a> {
    /// The settings of a run whose `[run]` section is `run`.
    pub fn new(run: &'a crate::config::RunConfig, checkpoint_every: u64, keep_last: usize) -> Self {
        SessionSettings {
            run,
            checkpoint_every,
            keep_last,
        }
    }
}

/// A run directory, locked, with its resume decision made (see the module docs).
pub struct OpenedRun<'c, C: SessionConfig> {
    config: &'c C,
    options: TrainOptions,
    resume_dir: Option<PathBuf>,
    lock: RunLock,
    opened: Instant,
}

/// A running session: metrics log, progress bar, limits and checkpoints.
pub struct Session<'c, C: SessionConfig> {
    opened: OpenedRun<'c, C>,
    total: u64,
    elapsed_before: f64,
    log: MetricsLog,
    bar: ProgressBar,
    last_checkpoint: Option<PathBuf>,
    last_checkpoint_step: Option<u64>,
}

/// How a session ended: the part of a run's summary every loop shares (the supervised
/// [`crate::trainer::TrainSummary`] and the RL [`crate::rl::RlSummary`] flatten it into theirs
/// and dereference to it).
#[derive(Debug, Clone, Serialize)]
pub struct SessionEnd {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Steps done (all sessions).
    pub step: u64,
    /// Steps of the whole run.
    pub total_steps: u64,
    /// Whether the run reached its last step (else it was stopped early and can be resumed).
    pub finished: bool,
    /// The checkpoint this session started from.
    pub resumed_from: Option<PathBuf>,
    /// The newest checkpoint written by this session.
    pub last_checkpoint: Option<PathBuf>,
    /// The exported final model (when finished).
    pub final_model: Option<PathBuf>,
    /// Wall-clock seconds of this session.
    pub seconds: f64,
}

impl<'c, C: SessionConfig> OpenedRun<'c, C> {
    /// The checkpoint this session continues, if any.
    pub fn resume_dir(&self) -> Option<&Path> {
        self.resume_dir.as_deref()
    }

    /// The typed state of the checkpoint this session continues (format version checked).
    pub fn read_state<S: DeserializeOwned>(&self) -> Result<Option<S>> {
        self.resume_dir.as_deref().map(read_state).transpose()
    }

    /// Starts the session of a run of `total` steps that stands at `step` after
    /// `elapsed_before` seconds of earlier sessions: opens the metrics log (dropping lines past
    /// `step` that an interrupted session wrote) and the progress bar labelled `name`.
    pub fn start(
        self,
        name: &str,
        total: u64,
        step: u64,
        elapsed_before: f64,
    ) -> Result<Session<'c, C>> {
        let path = self.config.run_dir().join(METRICS_FILE);
        let log = if self.resume_dir.is_some() {
            MetricsLog::resume(&path, step)?
        } else {
            MetricsLog::create(&path)?
        };
        let bar = progress::bar(name, total, step, self.config.progress());
        let last_checkpoint_step = self.resume_dir.is_some().then_some(step);
        Ok(Session {
            opened: self,
            total,
            elapsed_before,
            log,
            bar,
            last_checkpoint: None,
            last_checkpoint_step,
        })
    }
}

impl<'c, C: SessionConfig> Session<'c, C> {
    /// Opens `config`'s run directory: creates and locks it, decides which checkpoint (if any)
    /// this session continues, checks that the config matches that checkpoint's, and writes
    /// the run's `config.toml`.
    pub fn open(config: &'c C, options: &TrainOptions) -> Result<OpenedRun<'c, C>> {
        let opened = Instant::now();
        let run_dir = config.run_dir();
        std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
        let lock = RunLock::acquire(run_dir).map_err(|e| TrainError::Locked(e.to_string()))?;
        let resume_dir = session_checkpoint(run_dir, options.resume.as_ref())?;
        if let Some(dir) = &resume_dir {
            let saved = config.load_saved(&dir.join(CONFIG_FILE))?;
            let conflicts = config.resume_conflicts(&saved);
            if !conflicts.is_empty() {
                return Err(TrainError::checkpoint(
                    dir,
                    format!(
                        "the config differs from the checkpoint's in {}; an exact resume needs \
                         the same values (only {} may change)",
                        conflicts.join(", "),
                        C::RESUMABLE_KEYS.join(", ")
                    ),
                ));
            }
            log::info!("resuming from {}", dir.display());
        }
        saferlhf_core::write_atomic(run_dir.join(CONFIG_FILE), config.to_toml())?;
        Ok(OpenedRun {
            config,
            options: options.clone(),
            resume_dir,
            lock,
            opened,
        })
    }

    /// Whether to run step `step + 1`: the run is not complete and no limit is reached.
    pub fn keep_going(&self, step: u64) -> bool {
        let o = &self.opened.options;
        step < self.total
            && o.stop_at_step.is_none_or(|s| step < s)
            && o.time_limit
                .is_none_or(|l| self.opened.opened.elapsed() < l)
    }

    /// Wall-clock seconds of the run so far (all sessions).
    pub fn elapsed(&self) -> f64 {
        self.elapsed_before + self.opened.opened.elapsed().as_secs_f64()
    }

    /// The progress bar (to print above it).
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// Writes the metrics line of `step` and moves the bar, with `message` beside it.
    pub fn log_step(&mut self, step: u64, line: &Map<String, Value>, message: &str) -> Result<()> {
        self.log.write(line)?;
        self.bar.set_message(message.to_string());
        self.bar.set_position(step);
        Ok(())
    }

    /// Whether `step` ends with a checkpoint: the last step, or one of the periodic ones.
    pub fn checkpoint_due(&self, step: u64) -> bool {
        let every = self.opened.config.session().checkpoint_every;
        step == self.total || (every > 0 && step.is_multiple_of(every))
    }

    /// Writes the checkpoint of `step` atomically: `fill` writes the weights and optimizer
    /// states into the checkpoint being written, then `config.toml` and `state.json` (last)
    /// follow; old checkpoints beyond `keep_last` are pruned.
    pub fn save_checkpoint<S: Serialize>(
        &mut self,
        step: u64,
        state: &S,
        fill: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let config = self.opened.config;
        let run_dir = config.run_dir();
        let path = write_checkpoint(run_dir, step, |dir| {
            fill(dir)?;
            saferlhf_core::write_atomic(dir.join(CONFIG_FILE), config.to_toml())?;
            write_state(dir, state)
        })?;
        prune_checkpoints(run_dir, config.session().keep_last)?;
        self.last_checkpoint = Some(path.clone());
        self.last_checkpoint_step = Some(step);
        Ok(path)
    }

    /// Ends the session at `step`: a run stopped early leaves a checkpoint to resume from (if
    /// the last step has none yet: `state` and `fill` as in [`Session::save_checkpoint`]); a
    /// complete run exports its model to `final/` through `export`.
    pub fn finish<S: Serialize>(
        mut self,
        step: u64,
        state: impl FnOnce(f64) -> S,
        fill: impl FnOnce(&Path) -> Result<()>,
        export: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<SessionEnd> {
        self.bar.finish_and_clear();
        let finished = step >= self.total;
        if !finished && self.last_checkpoint_step != Some(step) {
            let s = state(self.elapsed());
            self.save_checkpoint(step, &s, fill)?;
        }
        let final_model = if finished {
            let path = self.opened.config.run_dir().join(FINAL_DIR);
            saferlhf_core::write_dir_atomic(&path, export)?;
            Some(path)
        } else {
            None
        };
        let seconds = self.opened.opened.elapsed().as_secs_f64();
        drop(self.opened.lock);
        Ok(SessionEnd {
            run_dir: self.opened.config.run_dir().to_path_buf(),
            step,
            total_steps: self.total,
            finished,
            resumed_from: self.opened.resume_dir,
            last_checkpoint: self.last_checkpoint,
            final_model,
            seconds,
        })
    }
}

/// The checkpoint a session continues: none for a fresh run (an error if the directory already
/// holds checkpoints, so a run is never overwritten by mistake), the newest complete one for
/// [`Resume::Latest`], or the given one.
pub fn session_checkpoint(run_dir: &Path, resume: Option<&Resume>) -> Result<Option<PathBuf>> {
    Ok(match resume {
        None => {
            if let Some((step, _)) = list_checkpoints(run_dir)?.last() {
                return Err(TrainError::config(
                    "run.dir",
                    format!(
                        "{} already holds checkpoints (newest: step {step}); pass --resume to \
                         continue that run or choose another run.dir",
                        run_dir.display()
                    ),
                ));
            }
            None
        }
        Some(Resume::Latest) => Some(latest_checkpoint(run_dir)?.ok_or_else(|| {
            TrainError::checkpoint(
                run_dir.join(CHECKPOINTS_DIR),
                "no complete checkpoint to resume from",
            )
        })?),
        Some(Resume::From(path)) => Some(resolve_resume(path)?),
    })
}

//! The guarantees of a run's lifecycle: one process per run directory (a live holder is refused
//! and named, a stale lock is taken over), and a failed checkpoint write that leaves the
//! previous checkpoint intact, names the file and lets the run resume.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use saferlhf_learner::checkpoint::{FINAL_DIR, list_checkpoints};
use saferlhf_learner::config::{
    DataConfig, DataSource, ModelConfig, OptimConfig, RunConfig, SourceFormat, TrainLoopConfig,
};
use saferlhf_learner::{Resume, TaskKind, TrainConfig, TrainOptions, train};

fn temp_dir(name: &str) -> PathBuf {
    // Kept (not removed on drop): each test removes it at its end.
    let dir = saferlhf_testkit::TempDir::new(&format!("rel-{}", name));
    let path = dir.0.clone();
    std::mem::forget(dir);
    path
}

/// A few SFT examples and a 3-step tiny SFT run that checkpoints every step.
fn sft_run(dir: &Path) -> TrainConfig {
    let data = dir.join("sft.jsonl");
    let mut lines = String::new();
    for i in 0..8 {
        let row = serde_json::json!({"prompt": format!("say {i}"), "response": "good sun."});
        lines.push_str(&row.to_string());
        lines.push('\n');
    }
    std::fs::write(&data, lines).unwrap();
    let config = TrainConfig {
        task: Some(TaskKind::Sft),
        run: RunConfig {
            dir: dir.join("run"),
            seed: 5,
            progress: false,
            ..RunConfig::default()
        },
        model: ModelConfig {
            preset: Some("char-tiny".into()),
            template: "raw".into(),
            max_length: 32,
            ..ModelConfig::default()
        },
        data: DataConfig {
            eval_fraction: 0.25,
            sources: vec![DataSource::new(SourceFormat::Sft, data)],
            ..DataConfig::default()
        },
        optim: OptimConfig {
            lr: 1e-3,
            ..OptimConfig::default()
        },
        train: TrainLoopConfig {
            max_steps: Some(3),
            batch_size: 4,
            checkpoint_every: 1,
            keep_last: 5,
            ..TrainLoopConfig::default()
        },
        ..TrainConfig::default()
    };
    config.validate().unwrap();
    config
}

#[test]
fn a_live_holder_is_refused_and_a_stale_lock_taken_over() {
    let dir = temp_dir("lock");
    let config = sft_run(&dir);
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    // Process 1 is alive on every Linux machine.
    std::fs::write(run.join(".lock"), "1\n").unwrap();
    let err = train(&config, &Device::flex(), &TrainOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("in use by process 1"), "{err}");
    assert!(list_checkpoints(&run).unwrap().is_empty());

    // A lock whose process is gone is stale: the run takes it over and completes.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    std::fs::write(run.join(".lock"), format!("{dead}\n")).unwrap();
    let summary = train(&config, &Device::flex(), &TrainOptions::default()).unwrap();
    assert!(summary.finished);
    assert!(
        !run.join(".lock").exists(),
        "the lock is released at the end"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_checkpoint_write_keeps_the_previous_one_and_names_the_file() {
    let dir = temp_dir("fail-write");
    let config = sft_run(&dir);
    let run = dir.join("run");
    // Every atomic write whose target contains this fails, as on a full disk (the pattern is
    // unique to this test, so no other test's writes are touched).
    let pattern = format!("{}/checkpoints/step-00000002", run.display());
    // SAFETY: the variable is read only by writes whose path contains `pattern`, which only
    // this test produces.
    unsafe { std::env::set_var(saferlhf_core::fs::FAIL_WRITE_ENV, &pattern) };
    let result = train(&config, &Device::flex(), &TrainOptions::default());
    unsafe { std::env::remove_var(saferlhf_core::fs::FAIL_WRITE_ENV) };
    let err = result.unwrap_err().to_string();
    assert!(err.contains("step-00000002"), "{err}");
    assert!(err.contains("injected write failure"), "{err}");
    let kept: Vec<u64> = list_checkpoints(&run)
        .unwrap()
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(
        kept,
        vec![1],
        "the step-1 checkpoint is intact and nothing else is complete"
    );
    assert!(!run.join(FINAL_DIR).exists());

    // The run resumes from step 1 and finishes.
    let options = TrainOptions {
        resume: Some(Resume::Latest),
        ..Default::default()
    };
    let summary = train(&config, &Device::flex(), &options).unwrap();
    assert!(summary.finished && summary.step == 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// PPO with a reward that turns NaN from the second RL step on (a stand-in for a reward model
/// that diverges).
struct NanFromStep2 {
    inner: Box<dyn saferlhf_learner::objectives::OnlineObjective>,
    step: u64,
}

impl saferlhf_learner::objectives::OnlineObjective for NanFromStep2 {
    fn name(&self) -> &'static str {
        "nan_from_step_2"
    }
    fn uses_cost(&self) -> bool {
        false
    }
    fn observe(&mut self, step: u64, rewards: &[f32], costs: &[f32]) {
        self.step = step;
        self.inner.observe(step, rewards, costs);
    }
    fn terminal_scores(&self, rewards: &[f32], costs: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (mut r, c) = self.inner.terminal_scores(rewards, costs);
        if self.step >= 1 {
            r.iter_mut().for_each(|x| *x = f32::NAN);
        }
        (r, c)
    }
    fn advantage_weights(
        &self,
        rewards: &[f32],
        costs: &[f32],
    ) -> saferlhf_learner::objectives::AdvantageWeights {
        self.inner.advantage_weights(rewards, costs)
    }
}

#[test]
fn a_non_finite_rl_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    use saferlhf_learner::rl::{RlConfig, train_rl_with};
    let dir = temp_dir("nan-rl");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let run = dir.join("run");
    let config = RlConfig::load(
        &root.join("configs/tiny-rlhf.toml"),
        &[
            "objective=\"ppo\"".into(),
            format!(
                "data.sources.0.path=\"{}\"",
                root.join("tests/fixtures/tiny-prompts.txt").display()
            ),
            format!("run.dir=\"{}\"", run.display()),
            "run.progress=false".into(),
            "train.steps=3".into(),
            "train.checkpoint_every=1".into(),
        ],
    )
    .unwrap();
    let objective = Box::new(NanFromStep2 {
        inner: saferlhf_learner::objectives::build_online(config.objective, &config.sections()),
        step: 0,
    });
    let err = train_rl_with(
        &config,
        objective,
        &Device::flex(),
        &TrainOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("step 2") && err.contains("not finite"),
        "{err}"
    );
    let kept: Vec<u64> = list_checkpoints(&run)
        .unwrap()
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(kept, vec![1], "the step-1 checkpoint is the last good one");
    assert!(!run.join(FINAL_DIR).exists());
    assert!(
        !run.join(".lock").exists(),
        "the lock is released on the error"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

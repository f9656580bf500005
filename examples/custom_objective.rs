//! A new online objective in a few dozen lines, plugged into the same learner as PPO, PPO-Lag and
//! RePO, without touching the learner.
//!
//! ```text
//! cargo run --release --example custom_objective
//! cargo run --release --example custom_objective -- --keep    # keep the run directory
//! ```
//!
//! The objective, `SoftGate`, is an **illustration**, not a method from a paper and not one of
//! the built-ins. RePO's default reading gates the cost advantage with a hard per-sample mask
//! `u = 1[C > 0]`. The cost model is trained as a logistic classifier of "unsafe"
//! (`P(unsafe | x, y) = σ(C)`, see the reward-and-cost chapter), so a soft gate
//! `g = σ(C / T)` is a natural smooth alternative: samples the cost model is unsure about
//! (C near 0) get half the cost weight instead of all or nothing. λ is fixed, as in reward
//! shaping, so the objective holds no state:
//!
//! `A = (A_R - λ·g·A_C) / (1 + λ·g)`,  `g_i = σ(C_i / T)`.
//!
//! As `T → 0` the gate becomes RePO's hard mask, which `main` checks against `RePo` itself.
//! Then it trains the `char-tiny` preset for 2 RL steps with it through `train_rl_with`, the entry
//! point that takes any `Box<dyn OnlineObjective>` (`train_rl` is the same with the config's
//! built-in objective). `tests/it/custom_objective.rs` runs this file's `run` so it cannot rot;
//! the book (`book/src/custom-objective.md`) shows the parts between `ANCHOR` markers.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail, ensure};
use saferlhf::Device;
use saferlhf::learner::TrainOptions;
use saferlhf::learner::objectives::{
    AdvantageWeights, LagrangeConfig, OnlineKind, OnlineObjective, RePo, RePoConfig,
};
use saferlhf::learner::rl::{RlConfig, RlSummary, train_rl_with};
use serde_json::{Map, Value, json};

// ANCHOR: objective
/// `A = (A_R - λ·g·A_C) / (1 + λ·g)` with the soft unsafe gate `g = σ(C / T)` and a fixed λ.
struct SoftGate {
    lambda: f32,
    temperature: f32,
}

impl SoftGate {
    /// `g_i = σ(C_i / T)`: the cost model's probability that sample i is unsafe (at T = 1).
    fn gates(&self, costs: &[f32]) -> Vec<f32> {
        costs
            .iter()
            .map(|&c| 1.0 / (1.0 + (-c / self.temperature).exp()))
            .collect()
    }
}

impl OnlineObjective for SoftGate {
    fn name(&self) -> &'static str {
        "soft_gate"
    }

    /// The cost model scores every rollout, and the cost stream gets a critic and GAE.
    fn uses_cost(&self) -> bool {
        true
    }

    /// Per-sample `(w_R, w_C)`; the learner forms `A = w_R·A_R - w_C·A_C` token by token.
    fn advantage_weights(&self, _rewards: &[f32], costs: &[f32]) -> AdvantageWeights {
        let (reward, cost) = self
            .gates(costs)
            .into_iter()
            .map(|g| {
                let lg = self.lambda * g;
                (1.0 / (1.0 + lg), lg / (1.0 + lg))
            })
            .unzip();
        AdvantageWeights { reward, cost }
    }

    /// Logged as `lambda` on every metrics line.
    fn lambda(&self) -> Option<f64> {
        Some(self.lambda as f64)
    }

    /// Extra figures for the metrics line.
    fn metrics(&self, _rewards: &[f32], costs: &[f32]) -> Map<String, Value> {
        let g = self.gates(costs);
        let mut m = Map::new();
        m.insert(
            "soft_gate_mean".into(),
            json!(g.iter().sum::<f32>() / g.len().max(1) as f32),
        );
        m
    }
    // No multiplier: `observe`, `terminal_scores`, `state` and `load_state` keep their defaults.
}
// ANCHOR_END: objective

// ANCHOR: check
/// The weights on a small batch, by hand and against RePO's hard mask.
pub fn check_weights() {
    let soft = SoftGate {
        lambda: 2.0,
        temperature: 1.0,
    };
    let costs = [-6.0, 0.0, 6.0];
    let w = soft.advantage_weights(&[0.0; 3], &costs);
    // C = 0: g = 1/2, λg = 1, so A = (A_R - A_C) / 2.
    assert!((w.reward[1] - 0.5).abs() < 1e-6 && (w.cost[1] - 0.5).abs() < 1e-6);
    for i in 0..3 {
        // The (1 + λg) normalisation: the two weights always add up to 1.
        assert!((w.reward[i] + w.cost[i] - 1.0).abs() < 1e-6);
    }
    // A clearly safe sample is pushed by the reward alone, a clearly unsafe one by PPO-Lag's
    // (1, λ) / (1 + λ) = (1/3, 2/3).
    assert!(w.reward[0] > 0.99 && w.cost[0] < 0.01);
    assert!((w.cost[2] - 2.0 / 3.0).abs() < 0.01);

    // T → 0: the soft gate becomes RePO's hard mask u = 1[C > 0] (RePO at a fixed λ = 2).
    let hard = SoftGate {
        lambda: 2.0,
        temperature: 1e-3,
    };
    let repo = RePo::new(
        &LagrangeConfig {
            init: 2.0,
            fixed: true,
            ..LagrangeConfig::default()
        },
        &RePoConfig::default(),
    );
    let costs = [-1.0, -0.1, 0.1, 1.0];
    let (a, b) = (
        hard.advantage_weights(&[0.0; 4], &costs),
        repo.advantage_weights(&[0.0; 4], &costs),
    );
    for i in 0..4 {
        assert!((a.reward[i] - b.reward[i]).abs() < 1e-6, "{a:?} vs {b:?}");
        assert!((a.cost[i] - b.cost[i]).abs() < 1e-6, "{a:?} vs {b:?}");
    }
}
// ANCHOR_END: check

// ANCHOR: run
/// Two RL steps of the `char-tiny` preset (configs/tiny-rlhf.toml, built in) with `SoftGate`,
/// written to `dir`.
pub fn run(dir: &Path) -> Result<RlSummary> {
    let text = include_str!("../configs/tiny-rlhf.toml");
    let mut config = RlConfig::from_toml_str(text, Path::new("configs/tiny-rlhf.toml"), &[])?;
    config.run.dir = dir.to_path_buf();
    config.run.progress = false;
    config.train.steps = 2;
    config.data.sources[0].path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-prompts.txt");
    // With a custom objective, `objective` only says which models the config must name (any
    // method with costs needs [cost_model]) and is written into the run's config.toml.
    config.objective = OnlineKind::PpoLag;
    config.validate()?;

    let objective = Box::new(SoftGate {
        lambda: 2.0,
        temperature: 1.0,
    });
    let summary = train_rl_with(
        &config,
        objective,
        &Device::flex(),
        &TrainOptions::default(),
    )?;
    ensure!(summary.finished && summary.step == 2, "{summary:?}");
    ensure!(summary.objective == "soft_gate");
    let line = summary.last_metrics.clone().unwrap_or_default();
    ensure!(line.get("lambda") == Some(&json!(2.0)), "{line:?}");
    ensure!(line.contains_key("soft_gate_mean"), "{line:?}");
    Ok(summary)
}
// ANCHOR_END: run

fn main() -> ExitCode {
    match main_inner() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custom_objective: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main_inner() -> Result<()> {
    let keep = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => false,
        [flag] if flag == "--keep" => true,
        _ => bail!("usage: custom_objective [--keep]"),
    };
    check_weights();
    println!("advantage weights: ok (soft gate; T -> 0 matches RePO's hard mask)");

    let dir =
        std::env::temp_dir().join(format!("saferlhf-custom-objective-{}", std::process::id()));
    let result = run(&dir);
    if let Ok(summary) = &result {
        let line = summary.last_metrics.clone().unwrap_or_default();
        println!(
            "trained {} for {} steps into {}",
            summary.objective,
            summary.step,
            dir.display()
        );
        for key in [
            "reward_mean",
            "cost_mean",
            "safety_rate",
            "lambda",
            "soft_gate_mean",
            "kl",
        ] {
            if let Some(v) = line.get(key) {
                println!("  {key:>15} {v}");
            }
        }
    }
    if keep {
        println!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result.map(|_| ())
}

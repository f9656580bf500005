//! Every config in `configs/` loads: RL configs (top-level `objective`) with `RlConfig::load`,
//! the supervised and offline ones (top-level `task`) with `TrainConfig::load`. The real RL
//! configs are checked for what their comments promise, and `configs/repo.toml`, which documents
//! every key, for naming every key there is.

use std::path::{Path, PathBuf};

use saferlhf::learner::TrainConfig;
use saferlhf::learner::objectives::OnlineKind;
use saferlhf::learner::rl::{CriticMode, RlConfig};

fn configs() -> Vec<PathBuf> {
    saferlhf_testkit::files_with_extension(&saferlhf_testkit::root().join("configs"), "toml")
}

fn table(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap();
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rl(name: &str) -> RlConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(name);
    RlConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_config_loads() {
    let (mut rl_count, mut task_count) = (0, 0);
    for path in configs() {
        let t = table(&path);
        if t.contains_key("objective") {
            RlConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            rl_count += 1;
        } else if t.contains_key("task") {
            TrainConfig::load(&path, &[], None)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            task_count += 1;
        } else {
            panic!("{}: neither `objective` nor `task`", path.display());
        }
    }
    assert!(rl_count >= 4, "{rl_count} RL configs");
    assert!(task_count >= 2, "{task_count} task configs");
}

#[test]
fn real_rl_configs_say_what_they_do() {
    for (name, objective) in [
        ("repo.toml", OnlineKind::Repo),
        ("ppo-lag.toml", OnlineKind::PpoLag),
        ("ppo.toml", OnlineKind::Ppo),
    ] {
        let c = rl(name);
        assert_eq!(c.objective, objective, "{name}");
        assert_eq!(
            c.policy.init.as_deref(),
            Some(Path::new("assets/SmolLM2-135M-Instruct.Q4_1.gguf")),
            "{name}"
        );
        assert_eq!(c.policy.template, "chatml", "{name}");
        assert_eq!(
            c.reward_model.path.as_deref(),
            Some(Path::new("runs/reward-smollm2/final")),
            "{name}"
        );
        assert_eq!(c.ppo.critics, CriticMode::ScoreHeads, "{name}");
        assert_eq!(c.rollout.prompts_per_step, 8, "{name}");
        assert_eq!(c.ppo.micro_batch, 2, "{name}");
        assert_eq!(c.data.sources.len(), 2, "{name}");
        // The safe-rlhf values the comments call the defaults.
        assert_eq!(c.ppo.kl_coeff, 0.01, "{name}");
        assert_eq!(c.actor.lr, 1e-5, "{name}");
        assert_eq!(c.critic.lr, 5e-6, "{name}");
        assert_eq!(c.lagrange, RlConfig::default().lagrange, "{name}");
        assert_eq!(c.repo, RlConfig::default().repo, "{name}");
    }
    // The cost model the constrained methods read; the run dirs differ.
    for name in ["repo.toml", "ppo-lag.toml"] {
        assert_eq!(
            rl(name).cost_model.path.as_deref(),
            Some(Path::new("runs/cost-smollm2/final"))
        );
    }
    let dirs: Vec<PathBuf> = ["repo.toml", "ppo-lag.toml", "ppo.toml"]
        .iter()
        .map(|n| rl(n).run.dir)
        .collect();
    assert!(dirs[0] != dirs[1] && dirs[1] != dirs[2] && dirs[0] != dirs[2]);
}

/// Dotted keys of the leaves of `t` (arrays of tables by their own keys).
fn keys(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => keys(&key, inner, out),
            _ => out.push(key),
        }
    }
}

#[test]
fn repo_toml_names_every_key() {
    let defaults = toml::Table::try_from(RlConfig::default()).unwrap();
    let mut expected = Vec::new();
    keys("", &defaults, &mut expected);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/repo.toml");
    let mut present = Vec::new();
    keys("", &table(&path), &mut present);
    let missing: Vec<&String> = expected.iter().filter(|k| !present.contains(k)).collect();
    assert!(missing.is_empty(), "configs/repo.toml lacks {missing:?}");
}

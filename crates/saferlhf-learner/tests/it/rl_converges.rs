//! The learner optimises the reward it is given: PPO on a random char-tiny policy, rewarded by a
//! rule (the share of the letter `e` in the response), raises that share far above chance. A
//! sign error, a wrong log-prob shift or advantages on the wrong tokens would leave it at chance
//! or drive it down.

use burn::tensor::Device;
use saferlhf_learner::TrainOptions;
use saferlhf_learner::error::Result;
use saferlhf_learner::objectives::build_online;
use saferlhf_learner::rl::{RlConfig, RolloutScorer, ScorerRole, train_rl_scored};
use saferlhf_testkit::{TempDir, root};
use serde_json::Value;

/// Reward: the share of `e` among the response's characters (0 for an empty response); cost 0.
struct LetterE;

impl RolloutScorer for LetterE {
    fn name(&self) -> &str {
        "letter_e"
    }

    fn score(&self, items: &[(String, String)]) -> Result<Vec<(f32, f32)>> {
        let share = |r: &str| {
            let n = r.chars().count().max(1);
            r.chars().filter(|&c| c == 'e').count() as f32 / n as f32
        };
        Ok(items.iter().map(|(_, r)| (share(r), 0.0)).collect())
    }
}

#[test]
fn ppo_drives_a_rule_reward_far_above_chance() {
    let tmp = TempDir::new("rl-converges");
    let prompts = root().join("tests/fixtures/tiny-prompts.txt");
    let config = RlConfig::load(
        &root().join("configs/tiny-rlhf.toml"),
        &[
            "objective=\"ppo\"".into(),
            format!("run.dir=\"{}\"", tmp.join("run").display()),
            "run.progress=false".into(),
            format!("data.sources.0.path=\"{}\"", prompts.display()),
            "train.steps=40".into(),
            "train.checkpoint_every=0".into(),
            "ppo.kl_coeff=0.0".into(),
            "actor.lr=3e-3".into(),
            "actor.schedule=\"constant\"".into(),
            "actor.warmup_ratio=0.0".into(),
        ],
    )
    .unwrap();
    let objective = build_online(config.objective, &config.sections());
    let summary = train_rl_scored(
        &config,
        objective,
        Some((&LetterE, ScorerRole::Train)),
        &Device::flex(),
        &TrainOptions::default(),
    )
    .unwrap();
    assert!(summary.finished, "{summary:?}");
    let text = std::fs::read_to_string(tmp.join("run/metrics.jsonl")).unwrap();
    let rewards: Vec<f64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["reward_mean"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(rewards.len(), 40);
    let mean = |r: &[f64]| r.iter().sum::<f64>() / r.len() as f64;
    let (first, last) = (mean(&rewards[..5]), mean(&rewards[35..]));
    eprintln!("reward (share of e): steps 1-5 {first:.3}, steps 36-40 {last:.3}");
    // Chance is about 1/45 (the char-tiny vocabulary's printable characters).
    assert!(first < 0.1, "a random policy already writes {first} e's");
    assert!(
        last > 0.5,
        "reward {first:.3} (steps 1-5) -> {last:.3} (steps 36-40)"
    );
}

//! The metrics line of one RL step (one JSON object in `metrics.jsonl`): rollout scores
//! (`reward_mean`, `cost_mean`, `safety_rate`, `rectified_violation_mean`), the multiplier,
//! the KL to the reference, the update's losses and diagnostics (means over minibatches),
//! explained variances, response lengths, throughput and the objective's own metrics.

use saferlhf_model::Cost;
use saferlhf_rollout::sequence_kl;
use serde_json::{Map, Value, json};

use super::advantages::Advantages;
use super::experience::Experience;
use super::gae::explained_variance;
use super::group::zero_spread_share;
use super::update::UpdateStats;
use crate::objectives::OnlineObjective;

fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut n, mut s) = (0usize, 0f64);
    for v in values {
        n += 1;
        s += v;
    }
    if n == 0 { f64::NAN } else { s / n as f64 }
}

/// `{prefix}reward_mean`, and with costs `{prefix}cost_mean` and `{prefix}safety_rate`: the
/// rollout's scores, or (with a prefix) the scores logged beside them.
fn score_means(line: &mut Map<String, Value>, prefix: &str, rewards: &[f32], costs: &[f32]) {
    let mean_of = |v: &[f32]| json!(mean(v.iter().map(|&x| x as f64)));
    line.insert(format!("{prefix}reward_mean"), mean_of(rewards));
    if !costs.is_empty() {
        line.insert(format!("{prefix}cost_mean"), mean_of(costs));
        line.insert(
            format!("{prefix}safety_rate"),
            json!(Cost::safety_rate(costs)),
        );
    }
}

/// KL to the reference, the batch mean of each response's Σ_t (log π_old − log π_ref): the
/// `kl` metric and the adaptive KL controller's input.
pub fn mean_sequence_kl(exp: &Experience) -> f64 {
    mean(sequence_kl(
        &exp.mask,
        exp.seq - 1,
        &exp.old_logprobs.values,
        &exp.ref_logprobs.values,
    ))
}

/// The metrics line of one RL step.
pub fn step_metrics(
    objective: &dyn OnlineObjective,
    exp: &Experience,
    adv: &Advantages,
    stats: &UpdateStats,
    total_seconds: f64,
    group_size: usize,
) -> Map<String, Value> {
    let mut line = Map::new();
    let means = stats.means();
    score_means(&mut line, "", &exp.rewards, &exp.costs);
    if let Some(side) = &exp.side_scores {
        let prefix = format!("{}_", side.name);
        score_means(&mut line, &prefix, &side.rewards, &side.costs);
    }
    if !exp.costs.is_empty() {
        line.insert(
            "rectified_violation_mean".into(),
            json!(mean(exp.costs.iter().map(|&c| (c as f64).max(0.0)))),
        );
    }
    if let Some(l) = objective.lambda() {
        line.insert("lambda".into(), json!(l));
    }
    line.insert("kl".into(), json!(mean_sequence_kl(exp)));
    line.insert(
        "truncated_rate".into(),
        json!(mean(exp.stopped.iter().map(|&s| if s { 0.0 } else { 1.0 }))),
    );
    line.insert("logprob_gap".into(), json!(exp.logprob_gap));
    line.insert("entropy".into(), json!(means.entropy));
    line.insert("clip_fraction".into(), json!(means.clip_fraction));
    line.insert("approx_kl".into(), json!(means.approx_kl));
    line.insert("actor_loss".into(), json!(means.actor));
    if stats.with_ptx {
        line.insert("ptx_loss".into(), json!(means.ptx));
    }
    if let Some(returns) = &adv.reward_returns {
        line.insert("reward_value_loss".into(), json!(means.reward_value));
        line.insert(
            "explained_variance_reward".into(),
            json!(explained_variance(&exp.reward_values, returns, &exp.mask)),
        );
        line.insert("critic_grad_norm".into(), json!(stats.critic_grad_norm));
    }
    if means.kl_loss != 0.0 {
        line.insert("kl_loss".into(), json!(means.kl_loss));
    }
    // The actor's advantages over response tokens, and (for groups) the share of groups whose
    // rewards are all equal (no reward signal).
    let adv_values: Vec<f64> = adv
        .advantages
        .values
        .iter()
        .zip(&exp.mask)
        .filter(|(_, m)| **m)
        .map(|(v, _)| *v as f64)
        .collect();
    if !adv_values.is_empty() {
        let m = mean(adv_values.iter().copied());
        let var = mean(adv_values.iter().map(|v| (v - m).powi(2)));
        line.insert("advantage_mean".into(), json!(m));
        line.insert("advantage_std".into(), json!(var.sqrt()));
    }
    if group_size > 1 {
        line.insert(
            "frac_reward_zero_std".into(),
            json!(zero_spread_share(&exp.rewards, group_size)),
        );
        if !exp.costs.is_empty() {
            let any = exp
                .costs
                .chunks(group_size)
                .filter(|g| g.iter().any(|&c| Cost::is_unsafe(c)))
                .count() as f64;
            line.insert(
                "groups_with_violation".into(),
                json!(any / exp.costs.len().div_ceil(group_size) as f64),
            );
        }
    }
    if let (Some(v), Some(r)) = (&exp.cost_values, &adv.cost_returns) {
        line.insert("cost_value_loss".into(), json!(means.cost_value));
        line.insert(
            "explained_variance_cost".into(),
            json!(explained_variance(v, r, &exp.mask)),
        );
    }
    let lengths: Vec<f64> = exp.lengths.iter().map(|&l| l as f64).collect();
    line.insert(
        "response_length".into(),
        json!(mean(lengths.iter().copied())),
    );
    line.insert(
        "response_length_max".into(),
        json!(lengths.iter().copied().fold(0.0, f64::max)),
    );
    let generated: usize = exp.lengths.iter().sum();
    line.insert(
        "generation_tokens_per_s".into(),
        json!(generated as f64 / exp.generation_seconds.max(1e-9)),
    );
    let train_seconds = (total_seconds - exp.generation_seconds).max(1e-9);
    line.insert(
        "training_tokens_per_s".into(),
        json!(stats.tokens as f64 / train_seconds),
    );
    line.insert(
        "generation_share".into(),
        json!(exp.generation_seconds / total_seconds.max(1e-9)),
    );
    line.insert("actor_grad_norm".into(), json!(stats.actor_grad_norm));
    for (k, v) in objective.metrics(&exp.rewards, &exp.costs) {
        line.insert(k, v);
    }
    line
}

/// The progress bar's summary of a metrics line.
pub fn short(line: &Map<String, Value>) -> String {
    let get = |k: &str| line.get(k).and_then(Value::as_f64);
    let mut parts = Vec::new();
    for (k, label) in [
        ("reward_mean", "R"),
        ("cost_mean", "C"),
        ("safety_rate", "safe"),
        ("lambda", "λ"),
        ("kl", "KL"),
    ] {
        if let Some(v) = get(k) {
            parts.push(format!("{label} {v:.3}"));
        }
    }
    parts.join(" ")
}

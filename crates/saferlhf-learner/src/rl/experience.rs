//! Experience: generate responses to a step's prompts, lay prompts and responses out as one
//! batch, and score it without autodiff (old and reference log-probs, reward and cost end
//! scores, critic values). No objective is consulted here: what the method makes of the scores
//! happens in [`super::advantages`].
//!
//! Generation and every log-prob use the models' [`LogitPolicy`] (the rollout temperature,
//! the blocked ids). Two guards apply to responses cut at `rollout.max_new_tokens` without a
//! stop token, which the score models never saw in training: `rollout.truncation_penalty` is
//! subtracted from their reward, and `rollout.truncated_cost` (when set) floors their cost.
//! A [`RolloutScorer`] may replace the models' scores (oracle mode) or be logged beside them.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{DType, Device, Tensor};
use saferlhf_core::rng::SplitMix64;
use saferlhf_model::LogitPolicy;
use saferlhf_model::host::{bools2, floats, ints2};
use saferlhf_model::model::positions_from_mask;
use saferlhf_rollout::{GenerateConfig, PaddedBatch, Sampler, generate_with};

use super::config::{RlConfig, RolloutSettings};
use super::critic::CriticNet;
use super::gae::TokenArray;
use super::models::RlModels;
use super::scorer::{RolloutScorer, ScorerRole};
use crate::error::check_finite;
use crate::error::{Result, TrainError};

/// One scored rollout, on the host. Its batch layout (tokens, attention and action masks,
/// shape, prompt width, response lengths) is a [`PaddedBatch`], reached through `Deref`
/// (`exp.tokens`, `exp.mask`, `exp.batch`, ...).
#[derive(Debug, Clone)]
pub struct Experience {
    /// Prompts and responses laid out as one batch.
    pub layout: PaddedBatch,
    /// Log-probs of the policy that generated the batch.
    pub old_logprobs: TokenArray,
    /// Log-probs of the reference.
    pub ref_logprobs: TokenArray,
    /// Reward critic values.
    pub reward_values: TokenArray,
    /// Cost critic values.
    pub cost_values: Option<TokenArray>,
    /// Reward model hidden states `[batch, seq, hidden]` (value-head critics only).
    pub reward_hidden: Option<Vec<f32>>,
    /// Cost model hidden states (value-head critics only).
    pub cost_hidden: Option<Vec<f32>>,
    /// Hidden size of the score models.
    pub hidden: usize,
    /// End scores.
    pub rewards: Vec<f32>,
    /// End scores of the cost model (empty without one).
    pub costs: Vec<f32>,
    /// Seconds spent generating.
    pub generation_seconds: f64,
    /// Whether each response ended with a stop token (false: cut at `max_new_tokens`).
    pub stopped: Vec<bool>,
    /// The distribution the responses were sampled from, which every log-prob uses.
    pub logit_policy: LogitPolicy,
    /// Mean |sampling log-prob − recomputed old log-prob| over response tokens: decode, cache
    /// or logit-processing drift between the sampler and the learner (should be ~1e-6).
    pub logprob_gap: f64,
    /// The scores that did not train the policy: the external scorer's in monitor mode, the
    /// models' in oracle mode (logged as `{name}_reward_mean`, ...).
    pub side_scores: Option<SideScores>,
}

/// Rewards and costs of a rollout that were logged, not trained on.
#[derive(Debug, Clone)]
pub struct SideScores {
    /// The metrics' prefix: the scorer's name, or `model`.
    pub name: String,
    /// One reward per response.
    pub rewards: Vec<f32>,
    /// One cost per response (empty without costs).
    pub costs: Vec<f32>,
}

/// Sampling seed of a step: a pure function of the run seed and the step.
fn step_seed(seed: u64, step: u64) -> u64 {
    SplitMix64::keyed(seed, &format!("rollout-{step}")).next_u64()
}

/// `(prompt, response)` id rows of a rollout.
pub type Rows = Vec<(Vec<u32>, Vec<u32>)>;

/// What [`generate`] returns.
#[derive(Debug, Clone)]
pub struct Generated {
    /// `(prompt, response)` rows.
    pub rows: Rows,
    /// Whether each response ended with a stop token.
    pub stopped: Vec<bool>,
    /// The sampler's log-prob of each response token.
    pub logprobs: Vec<Vec<f32>>,
    /// Seconds spent.
    pub seconds: f64,
}

/// Generates responses to `prompts` with the policy, chunk by chunk, from the models'
/// [`LogitPolicy`] (blocked ids never drawn).
pub fn generate(
    config: &RlConfig,
    models: &RlModels,
    prompts: &[Vec<u32>],
    step: u64,
    device: &Device,
) -> Result<Generated> {
    let eval_device = device.clone().without_autodiff();
    let policy = models.policy.valid();
    let r = &config.rollout;
    let chunk = if r.batch_size == 0 {
        prompts.len()
    } else {
        r.batch_size
    };
    let started = Instant::now();
    let mut rows: Rows = Vec::with_capacity(prompts.len());
    let (mut stopped, mut logprobs) = (Vec::new(), Vec::new());
    // Every chunk decodes with the same weights: pack them for the CPU once (None on a GPU).
    let packed = policy.pack_for_decode();
    for (c, part) in prompts.chunks(chunk.max(1)).enumerate() {
        let gen_config = GenerateConfig {
            max_new_tokens: r.max_new_tokens,
            stop_ids: models.encoder.stop_ids(),
            pad_id: models.encoder.pad_id(),
            // Validation keeps top-k / top-p off: the learner's log-probs are untruncated.
            sampler: Sampler::Sample {
                temperature: models.logit_policy.temperature,
                top_k: None,
                top_p: None,
            },
            seed: step_seed(config.run.seed, step).wrapping_add(c as u64),
            use_cache: true,
            blocked_ids: models.logit_policy.blocked.clone(),
        };
        let rollout = generate_with(&policy, packed.as_ref(), part, &gen_config, &eval_device)
            .map_err(|e| TrainError::config("rollout", format!("generation failed: {e}")))?;
        let new = rollout.logprobs.dims()[1];
        let lp = floats(rollout.logprobs, "sampling log-probs")?;
        for (b, (p, resp)) in part.iter().zip(rollout.responses).enumerate() {
            logprobs.push(lp[b * new..b * new + resp.len()].to_vec());
            rows.push((p.clone(), resp));
        }
        stopped.extend(rollout.stopped);
    }
    Ok(Generated {
        rows,
        stopped,
        logprobs,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A scorer outside the models and what the learner does with its scores.
pub struct ExternalScorer<'a> {
    /// The scorer.
    pub scorer: &'a dyn RolloutScorer,
    /// Whether its scores train the policy (oracle mode) or are only logged beside the
    /// models' (monitor mode).
    pub role: ScorerRole,
    /// The text of every training prompt, by index (as the data gave it, before the template).
    pub prompt_texts: &'a [String],
}

/// Generates and scores one rollout (the experience phase of step `step + 1`).
pub fn collect(
    config: &RlConfig,
    models: &RlModels,
    prompts: &[Vec<u32>],
    step: u64,
    device: &Device,
) -> Result<Experience> {
    collect_scored(config, models, prompts, None, step, device)
}

/// [`collect`] with an external scorer: `external` gives it and the indices of `prompts` among
/// the training prompts.
pub fn collect_scored(
    config: &RlConfig,
    models: &RlModels,
    prompts: &[Vec<u32>],
    external: Option<(&ExternalScorer, &[usize])>,
    step: u64,
    device: &Device,
) -> Result<Experience> {
    let generated = generate(config, models, prompts, step, device)?;
    let padded = PaddedBatch::new(&generated.rows, models.encoder.pad_id());
    let mut exp = score(models, padded, generated.seconds, step, device)?;
    exp.stopped = generated.stopped;
    exp.logprob_gap = logprob_gap(&exp, &generated.logprobs);
    if let Some((ext, indices)) = external {
        let items = generated
            .rows
            .iter()
            .zip(indices)
            .map(|((_, resp), &i)| {
                let text = models.encoder.tokenizer().decode_lossy(resp, true)?;
                Ok((ext.prompt_texts[i].clone(), text))
            })
            .collect::<Result<Vec<_>>>()?;
        let scores = ext.scorer.score(&items)?;
        if scores.len() != items.len() {
            return Err(TrainError::config(
                "scorer",
                format!(
                    "`{}` returned {} scores for {} responses",
                    ext.scorer.name(),
                    scores.len(),
                    items.len()
                ),
            ));
        }
        let (rewards, costs): (Vec<f32>, Vec<f32>) = scores.into_iter().unzip();
        for (&r, &c) in rewards.iter().zip(&costs) {
            check_finite(step + 1, "external reward", r as f64)?;
            check_finite(step + 1, "external cost", c as f64)?;
        }
        exp.side_scores = Some(match ext.role {
            ScorerRole::Train => {
                // An objective without costs (PPO) loaded no cost model and reads no costs.
                let costs = if exp.costs.is_empty() {
                    Vec::new()
                } else {
                    costs
                };
                SideScores {
                    name: "model".into(),
                    rewards: std::mem::replace(&mut exp.rewards, rewards),
                    costs: std::mem::replace(&mut exp.costs, costs),
                }
            }
            ScorerRole::Monitor => SideScores {
                name: ext.scorer.name().to_string(),
                rewards,
                costs,
            },
        });
    }
    truncation_guards(
        &config.rollout,
        &exp.stopped,
        &mut exp.rewards,
        &mut exp.costs,
    );
    Ok(exp)
}

/// The guards on responses cut at `max_new_tokens` (see the module docs): the reward penalty
/// and the cost floor, applied to the rows whose `stopped` flag is false (`costs` may be empty).
pub fn truncation_guards(
    rollout: &RolloutSettings,
    stopped: &[bool],
    rewards: &mut [f32],
    costs: &mut [f32],
) {
    for (b, _) in stopped.iter().enumerate().filter(|(_, s)| !**s) {
        rewards[b] -= rollout.truncation_penalty as f32;
        if let (Some(floor), Some(c)) = (rollout.truncated_cost, costs.get_mut(b)) {
            *c = c.max(floor as f32);
        }
    }
}

/// Mean |sampling − recomputed| log-prob over the response tokens of `exp`.
fn logprob_gap(exp: &Experience, sampled: &[Vec<f32>]) -> f64 {
    let width = exp.width();
    let (mut sum, mut n) = (0f64, 0usize);
    for (b, row) in sampled.iter().enumerate() {
        for (j, &lp) in row.iter().enumerate() {
            let t = b * width + exp.prompt_len + j - 1;
            sum += (lp - exp.old_logprobs.values[t]).abs() as f64;
            n += 1;
        }
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Scores a padded batch without autodiff: log-probs of the policy and the reference, reward
/// and cost end scores (an error names a non-finite one), critic values.
pub fn score(
    models: &RlModels,
    padded: PaddedBatch,
    generation_seconds: f64,
    step: u64,
    device: &Device,
) -> Result<Experience> {
    let eval_device = device.clone().without_autodiff();
    let policy = models.policy.valid();
    let (batch, seq) = (padded.batch, padded.seq);
    let width = padded.width();
    let tok = ints2(&padded.tokens, [batch, seq], &eval_device);
    let att = bools2(&padded.attention, [batch, seq], &eval_device);
    let token_array = |t: Tensor<2>, what: &str| -> Result<TokenArray> {
        Ok(TokenArray::new(floats(t, what)?, batch, width))
    };
    let lp = &models.logit_policy;
    let old_logprobs = token_array(
        policy.token_logprobs_with(tok.clone(), att.clone(), lp),
        "policy log-probs",
    )?;
    let ref_logprobs = token_array(
        models
            .reference
            .token_logprobs_with(tok.clone(), att.clone(), lp),
        "reference log-probs",
    )?;
    let positions = positions_from_mask(att.clone());
    // A score model's end scores and the hidden states they were read from.
    let score_with = |hidden: Tensor<3>, end_scores: Tensor<1>, what: &str| {
        floats(end_scores, what).map(|scores| (scores, hidden))
    };
    let (rewards, reward_hidden) = {
        let reward = &models.reward;
        let h = reward
            .backbone
            .forward_hidden(tok.clone(), positions.clone(), att.clone(), None);
        let end = reward.score_hidden(h.clone(), att.clone()).end_scores;
        score_with(h, end, "reward scores")?
    };
    let hidden = reward_hidden.dims()[2];
    let (costs, cost_hidden) = match &models.cost {
        Some(cost) => {
            let h = cost
                .backbone
                .forward_hidden(tok.clone(), positions, att.clone(), None);
            let end = cost.score_hidden(h.clone(), att.clone()).end_scores;
            let (c, h) = score_with(h, end, "cost scores")?;
            (c, Some(h))
        }
        None => (Vec::new(), None),
    };
    for (b, r) in rewards.iter().enumerate() {
        check_finite(step + 1, "reward score", *r as f64)?;
        if let Some(c) = costs.get(b) {
            check_finite(step + 1, "cost score", *c as f64)?;
        }
    }
    // Critic values (zeros for the critic-free estimators, which read none).
    let (reward_values, cost_values, heads) = match &models.critics {
        Some(critics) => {
            let critics = critics.valid();
            let values_of = |net: &CriticNet, h: Option<&Tensor<3>>| -> Result<TokenArray> {
                // Value heads train in f32; a half-precision score model's states meet them there.
                let h = h.map(|h| h.clone().cast(DType::F32));
                let v = net.values(tok.clone(), att.clone(), h);
                token_array(v.slice([0..batch, 0..width]), "critic values")
            };
            let reward_values = values_of(&critics.reward, Some(&reward_hidden))?;
            let cost_values = critics
                .cost
                .as_ref()
                .map(|net| values_of(net, cost_hidden.as_ref()))
                .transpose()?;
            (reward_values, cost_values, critics.reward.is_head())
        }
        None => (TokenArray::zeros(batch, width), None, false),
    };
    // Value-head critics read the score models' hidden states during the update: keep them.
    let reward_hidden = if heads {
        Some(floats(reward_hidden, "reward hidden states")?)
    } else {
        None
    };
    let cost_hidden = match cost_hidden {
        Some(h) if heads => Some(floats(h, "cost hidden states")?),
        _ => None,
    };
    Ok(Experience {
        layout: padded,
        old_logprobs,
        ref_logprobs,
        reward_values,
        cost_values,
        reward_hidden,
        cost_hidden,
        hidden,
        rewards,
        costs,
        generation_seconds,
        // Every response counts as stopped until [`collect`] knows better.
        stopped: vec![true; batch],
        logit_policy: models.logit_policy.clone(),
        logprob_gap: 0.0,
        side_scores: None,
    })
}

impl std::ops::Deref for Experience {
    type Target = PaddedBatch;

    fn deref(&self) -> &PaddedBatch {
        &self.layout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_guards_touch_exactly_the_unstopped_rows() {
        let rollout = RolloutSettings {
            truncation_penalty: 1.5,
            truncated_cost: Some(0.25),
            ..RolloutSettings::default()
        };
        let stopped = [true, false, true, false];
        let mut rewards = [1.0, 1.0, -2.0, 0.5];
        let mut costs = [-1.0, -1.0, 3.0, 2.0];
        truncation_guards(&rollout, &stopped, &mut rewards, &mut costs);
        assert_eq!(rewards, [1.0, -0.5, -2.0, -1.0]);
        // The floor lifts a safe cost to it and leaves a higher one alone.
        assert_eq!(costs, [-1.0, 0.25, 3.0, 2.0]);
        // Without a cost model the rewards still get the penalty; the defaults change nothing.
        let mut rewards = [1.0, 1.0];
        truncation_guards(&rollout, &[false, true], &mut rewards, &mut []);
        assert_eq!(rewards, [-0.5, 1.0]);
        let mut rewards = [1.0, 1.0];
        let mut costs = [-1.0, -1.0];
        let off = RolloutSettings::default();
        truncation_guards(&off, &[false, false], &mut rewards, &mut costs);
        assert_eq!((rewards, costs), ([1.0, 1.0], [-1.0, -1.0]));
    }
}

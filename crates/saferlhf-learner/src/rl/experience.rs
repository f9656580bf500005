//! Experience: generate responses to a step's prompts, lay prompts and responses out as one
//! batch, and score it without autodiff (old and reference log-probs, reward and cost end
//! scores, critic values). No objective is consulted here: what the method makes of the scores
//! happens in [`super::advantages`].

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use saferlhf_core::rng::SplitMix64;
use saferlhf_model::host::{bools2, floats, ints2};
use saferlhf_model::model::positions_from_mask;
use saferlhf_rollout::{GenerateConfig, PaddedBatch, Sampler, generate_with};

use super::config::RlConfig;
use super::critic::CriticNet;
use super::gae::TokenArray;
use super::models::RlModels;
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
}

/// Sampling seed of a step: a pure function of the run seed and the step.
fn step_seed(seed: u64, step: u64) -> u64 {
    SplitMix64::keyed(seed, &format!("rollout-{step}")).next_u64()
}

/// `(prompt, response)` id rows of a rollout.
pub type Rows = Vec<(Vec<u32>, Vec<u32>)>;

/// Generates responses to `prompts` with the policy, chunk by chunk; returns the
/// `(prompt, response)` rows and the seconds spent.
pub fn generate(
    config: &RlConfig,
    models: &RlModels,
    prompts: &[Vec<u32>],
    step: u64,
    device: &Device,
) -> Result<(Rows, f64)> {
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
    // Every chunk decodes with the same weights: pack them for the CPU once (None on a GPU).
    let packed = policy.pack_for_decode();
    for (c, part) in prompts.chunks(chunk.max(1)).enumerate() {
        let gen_config = GenerateConfig {
            max_new_tokens: r.max_new_tokens,
            stop_ids: models.encoder.stop_ids(),
            pad_id: models.encoder.pad_id(),
            sampler: Sampler::Sample {
                temperature: r.temperature as f32,
                top_k: (r.top_k > 0).then_some(r.top_k),
                top_p: (r.top_p < 1.0).then_some(r.top_p as f32),
            },
            seed: step_seed(config.run.seed, step).wrapping_add(c as u64),
            use_cache: true,
        };
        let rollout = generate_with(&policy, packed.as_ref(), part, &gen_config, &eval_device)
            .map_err(|e| TrainError::config("rollout", format!("generation failed: {e}")))?;
        for (p, resp) in part.iter().zip(rollout.responses) {
            rows.push((p.clone(), resp));
        }
    }
    Ok((rows, started.elapsed().as_secs_f64()))
}

/// Generates and scores one rollout (the experience phase of step `step + 1`).
pub fn collect(
    config: &RlConfig,
    models: &RlModels,
    prompts: &[Vec<u32>],
    step: u64,
    device: &Device,
) -> Result<Experience> {
    let (rows, generation_seconds) = generate(config, models, prompts, step, device)?;
    let padded = PaddedBatch::new(&rows, models.encoder.pad_id());
    score(models, padded, generation_seconds, step, device)
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
    let old_logprobs = token_array(
        policy.token_logprobs(tok.clone(), att.clone()),
        "policy log-probs",
    )?;
    let ref_logprobs = token_array(
        models.reference.token_logprobs(tok.clone(), att.clone()),
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
    let critics = models.critics.valid();
    let values_of = |net: &CriticNet, h: Option<&Tensor<3>>| -> Result<TokenArray> {
        let v = net.values(tok.clone(), att.clone(), h.cloned());
        token_array(v.slice([0..batch, 0..width]), "critic values")
    };
    let reward_values = values_of(&critics.reward, Some(&reward_hidden))?;
    let cost_values = critics
        .cost
        .as_ref()
        .map(|net| values_of(net, cost_hidden.as_ref()))
        .transpose()?;
    // Value-head critics read the score models' hidden states during the update: keep them.
    let heads = critics.reward.is_head();
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
    })
}

impl std::ops::Deref for Experience {
    type Target = PaddedBatch;

    fn deref(&self) -> &PaddedBatch {
        &self.layout
    }
}

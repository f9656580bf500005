//! The online learner: one loop for every [`OnlineObjective`].
//!
//! Per RL step (DESIGN.md §4):
//!
//! 1. **Rollout**: the next `rollout.prompts_per_step` prompts (a seeded permutation per epoch
//!    of the prompt set) are templated, left-padded and answered by the policy (sampling, KV
//!    cache), in chunks of `rollout.batch_size`.
//! 2. **Scoring** (no autodiff): old log-probs of the policy, log-probs of the frozen reference,
//!    reward and cost end scores, critic values. `[batch, width]` per-token arrays, `width =
//!    sequence length - 1`, shifted as `token_logprobs`.
//! 3. **Objective**: `observe` (the multiplier step), `terminal_scores`, KL-shaped streams
//!    ([`super::gae::kl_shaped_stream`]), GAE on each, `advantage_weights` → the combined
//!    advantage `A = w_R·A_R - w_C·A_C`.
//! 4. **Update**: `ppo.update_epochs` passes over the rollout in shuffled minibatches of
//!    `ppo.minibatch` samples; each minibatch is processed in micro-batches of
//!    `ppo.micro_batch` whose gradients are accumulated (each micro-batch's loss weighted by its
//!    share of the minibatch), then one AdamW step for the actor (clipped surrogate) and one
//!    for the critics (clipped value losses).
//! 5. **Metrics** (one JSONL line, the progress bar) and **checkpoints** (atomic; weights of the
//!    policy and critics, both optimizers, the objective's multiplier state, the prompt cursor,
//!    step and config: a resumed run ends with the same weights as an uninterrupted one).
//!
//! # Models in memory
//!
//! | objective | policy (trained) | reference | reward | cost | critics |
//! |---|---|---|---|---|---|
//! | `ppo` | 1 | 1 | 1 | – | 1 full (`separate`) or a head |
//! | `ppo_lag`, `repo` | 1 | 1 | 1 | 1 | 2 full (`separate`) or 2 heads |
//! | `reward_shaping` | 1 | 1 | 1 | 1 | 1 full or a head |
//!
//! `ppo.critics = "score_heads"` replaces each full critic by a linear value head on the frozen
//! reward / cost model's hidden states, so PPO-Lag and RePO hold 4 full models instead of 6.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use saferlhf_data::{LoadOptions, PromptFormat, read_prompts};
use saferlhf_model::model::{positions_from_mask, select_logprobs};
use saferlhf_model::tokenizer::Tokenizer;
use saferlhf_model::weights::{load_hf_dir, save_hf_dir};
use saferlhf_model::{Cost, Reward, load_pretrained};
use saferlhf_model::{
    CostModel, LlamaConfig, LlamaForCausalLM, RewardModel, ScoreModel, ScoreType,
};
use saferlhf_rollout::{GenerateConfig, Sampler, generate_with};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::config::{CriticMode, RlConfig};
use super::critic::{CriticNet, Critics};
use super::gae::{TokenArray, combine, explained_variance, gae, kl_shaped_stream};
use super::loss::{clipped_surrogate, clipped_value_loss, update_diagnostics};
use crate::checkpoint::{
    CONFIG_FILE, FINAL_DIR, METRICS_FILE, prune_checkpoints, write_checkpoint,
};
use crate::collate::Encoder;
use crate::config::{ModelConfig, TaskKind};
use crate::error::{Result, TrainError};
use crate::losses::masked_mean;
use crate::metrics::MetricsLog;
use crate::models::{ModelMeta, encoder_for, load_score_model, load_tokenizer, save_text_side};
use crate::objectives::{OnlineObjective, build_online};
use crate::params::{clip_global_norm, seeded_init, stable_ids};
use crate::rng::{SplitMix64, epoch_permutation};
use crate::schedule::LrSchedule;
use crate::tiny::preset_config;
use crate::trainer::{TrainOptions, build_optimizer, session_checkpoint, write_final, write_text};

/// Files of an RL checkpoint (besides `config.toml`).
pub const POLICY_DIR: &str = "policy";
/// The critics' weights.
pub const CRITICS_FILE: &str = "critics.safetensors";
/// The actor's optimizer state.
pub const ACTOR_OPTIM_FILE: &str = "actor-optimizer.bpk";
/// The critics' optimizer state.
pub const CRITIC_OPTIM_FILE: &str = "critic-optimizer.bpk";
/// Step, cursor, objective state (`state.json`, whose presence marks a complete checkpoint).
pub const RL_STATE_FILE: &str = crate::checkpoint::STATE_FILE;

/// Where an RL run stands (`state.json` in each checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlState {
    /// RL steps done.
    pub step: u64,
    /// Optimizer steps done (of each of actor and critics).
    pub optimizer_steps: u64,
    /// Prompt epoch.
    pub epoch: u64,
    /// Position in the epoch's permutation.
    pub position: usize,
    /// Number of training prompts (a resume checks it).
    pub prompts: usize,
    /// The objective's state (multiplier, window).
    pub objective: Value,
    /// Wall-clock seconds of all sessions.
    pub elapsed_seconds: f64,
}

/// What a call to [`train_rl`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RlSummary {
    /// The objective.
    pub objective: String,
    /// The run directory.
    pub run_dir: PathBuf,
    /// RL steps done.
    pub step: u64,
    /// RL steps of the whole run.
    pub total_steps: u64,
    /// Whether the run is complete.
    pub finished: bool,
    /// The checkpoint this session resumed.
    pub resumed_from: Option<PathBuf>,
    /// The newest checkpoint.
    pub last_checkpoint: Option<PathBuf>,
    /// The exported final policy (Hugging Face directory), when finished.
    pub final_model: Option<PathBuf>,
    /// The last metrics line.
    pub last_metrics: Option<Map<String, Value>>,
    /// Wall-clock seconds of this session.
    pub seconds: f64,
}

/// The models of a run.
pub struct RlModels {
    /// The policy (on the autodiff device).
    pub policy: LlamaForCausalLM,
    /// Its architecture.
    pub policy_config: LlamaConfig,
    /// The frozen initial policy.
    pub reference: LlamaForCausalLM,
    /// The frozen reward model.
    pub reward: RewardModel,
    /// The frozen cost model (methods that use costs).
    pub cost: Option<CostModel>,
    /// The critics (autodiff device).
    pub critics: Critics,
    /// The policy's tokenizer and template.
    pub encoder: Encoder,
}

fn policy_model_config(config: &RlConfig) -> ModelConfig {
    ModelConfig {
        init: config.policy.init.clone(),
        preset: config.policy.preset.clone(),
        template: config.policy.template.clone(),
        system: config.policy.system.clone(),
        max_length: config.policy.max_prompt_length + config.rollout.max_new_tokens,
    }
}

/// The initial policy (also the reference): `policy.init` or the seeded `tiny` preset.
pub fn load_initial_policy(
    config: &RlConfig,
    device: &Device,
) -> Result<(LlamaConfig, LlamaForCausalLM)> {
    if let Some(preset) = &config.policy.preset {
        let c = preset_config(preset).ok_or_else(|| {
            TrainError::config("policy.preset", format!("unknown preset `{preset}`"))
        })?;
        let model = LlamaForCausalLM::new(&c, device);
        return Ok((c, seeded_init(model, config.run.seed, &[])));
    }
    let init = config
        .policy
        .init
        .as_ref()
        .ok_or_else(|| TrainError::config("policy.init", "missing"))?;
    if init.is_dir() {
        Ok(load_hf_dir(init, device)?)
    } else {
        let p = load_pretrained(init, device)?;
        Ok((p.config, p.model))
    }
}

fn load_score<K: ScoreType>(
    config: &RlConfig,
    name: &str,
    source: &super::config::ScoreSource,
    seed_offset: u64,
    tokenizer: &Tokenizer,
    device: &Device,
) -> Result<ScoreModel<K>> {
    match source.path.as_deref() {
        Some(dir) => {
            let (meta, model, encoder) = load_score_model::<K>(dir, device)?;
            if encoder.tokenizer().vocab_size() != tokenizer.vocab_size() {
                return Err(TrainError::config(
                    format!("{name}.path"),
                    format!(
                        "{} has a tokenizer of {} ids, the policy one of {}: the {name} must read \
                         the policy's tokens",
                        dir.display(),
                        encoder.tokenizer().vocab_size(),
                        tokenizer.vocab_size()
                    ),
                ));
            }
            if meta.template != config.policy.template {
                return Err(TrainError::config(
                    format!("{name}.path"),
                    format!(
                        "{} was trained with template `{}`, the policy uses `{}`",
                        dir.display(),
                        meta.template,
                        config.policy.template
                    ),
                ));
            }
            Ok(model)
        }
        None => {
            // A random preset score model (tests): the preset named, else the policy's.
            let preset = source
                .preset
                .as_deref()
                .or(config.policy.preset.as_deref())
                .unwrap_or("tiny");
            let c = preset_config(preset).ok_or_else(|| {
                TrainError::config(
                    format!("{name}.preset"),
                    format!("unknown preset `{preset}`"),
                )
            })?;
            let model = ScoreModel::<K>::new(&c, device);
            Ok(seeded_init(
                model,
                config.run.seed.wrapping_add(seed_offset),
                &[],
            ))
        }
    }
}

/// Loads (or builds) every model of a run; `resume` holds a checkpoint to continue.
pub fn load_models(
    config: &RlConfig,
    objective: &dyn OnlineObjective,
    device: &Device,
    resume: Option<&Path>,
) -> Result<RlModels> {
    let train_device = device.clone().autodiff();
    let eval_device = device.clone().without_autodiff();
    let model_config = policy_model_config(config);
    let tokenizer = load_tokenizer(&model_config)?;
    let encoder = encoder_for(&model_config, tokenizer.clone())?;
    let (policy_config, reference) = load_initial_policy(config, &eval_device)?;
    let policy = match resume {
        Some(dir) => load_hf_dir(dir.join(POLICY_DIR), &train_device)?.1,
        None => load_initial_policy(config, &train_device)?.1,
    };
    if tokenizer.vocab_size() > policy_config.vocab_size {
        return Err(TrainError::config(
            "policy.init",
            format!(
                "the tokenizer has {} ids but the model only {} embeddings",
                tokenizer.vocab_size(),
                policy_config.vocab_size
            ),
        ));
    }
    let total = config.policy.max_prompt_length + config.rollout.max_new_tokens;
    if total > policy_config.max_position_embeddings {
        return Err(TrainError::config(
            "rollout.max_new_tokens",
            format!(
                "policy.max_prompt_length + rollout.max_new_tokens = {total} exceeds the \
                 model's {} positions",
                policy_config.max_position_embeddings
            ),
        ));
    }
    let reward = load_score::<Reward>(
        config,
        "reward_model",
        &config.reward_model,
        1,
        &tokenizer,
        &eval_device,
    )?;
    let cost = if objective.uses_cost() {
        Some(load_score::<Cost>(
            config,
            "cost_model",
            &config.cost_model,
            2,
            &tokenizer,
            &eval_device,
        )?)
    } else {
        None
    };
    let make = |full: bool| -> Result<Critics> {
        let reward_critic = if full {
            CriticNet::full(&reward)
        } else {
            CriticNet::head(&reward)
        };
        let cost_critic = match (&cost, objective.cost_stream()) {
            (Some(c), true) => Some(if full {
                CriticNet::full(c)
            } else {
                CriticNet::head(c)
            }),
            _ => None,
        };
        // The critics start as copies of frozen (plain-device) score models: unfreeze them,
        // move them to the autodiff device and switch training on.
        Ok(Critics {
            reward: reward_critic,
            cost: cost_critic,
        }
        .unfreeze()
        .fork(&train_device)
        .train())
    };
    let mut critics = make(config.ppo.critics == CriticMode::Separate)?;
    if let Some(dir) = resume {
        critics = critics.load(&dir.join(CRITICS_FILE))?;
    }
    Ok(RlModels {
        policy: stable_ids(policy),
        policy_config,
        reference,
        reward,
        cost,
        critics: stable_ids(critics),
        encoder,
    })
}

/// Loads the training prompts of the config, templated and tokenized (keeping the last
/// `policy.max_prompt_length` tokens of a long prompt).
pub fn load_prompt_ids(
    config: &RlConfig,
    encoder: &Encoder,
) -> Result<(Vec<String>, Vec<Vec<u32>>)> {
    let mut texts = Vec::new();
    for (i, source) in config.data.sources.iter().enumerate() {
        let format = match &source.field {
            Some(field) => PromptFormat::Jsonl {
                field: field.clone(),
            },
            None => PromptFormat::from_path(&source.path),
        };
        let opts = LoadOptions {
            skip_invalid: source.skip_invalid,
        };
        let (mut prompts, report) =
            read_prompts(&source.path, &format, &opts)?.collect_with_report()?;
        if !report.skipped.is_empty() {
            log::warn!(
                "data.sources.{i}: skipped {} malformed rows of {}",
                report.skipped.len(),
                source.path.display()
            );
        }
        if let Some(limit) = source.limit {
            prompts.truncate(limit);
        }
        texts.extend(prompts);
    }
    let max = config.policy.max_prompt_length;
    let mut ids = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        if text.trim().is_empty() {
            return Err(TrainError::config(
                "data.sources",
                format!("prompt {i} is empty"),
            ));
        }
        let mut p = encoder.prompt_ids(text)?;
        if p.len() > max {
            p.drain(..p.len() - max);
        }
        ids.push(p);
    }
    if ids.is_empty() {
        return Err(TrainError::config("data.sources", "no prompts"));
    }
    Ok((texts, ids))
}

/// One rollout with everything the update needs, on the host.
#[derive(Debug, Clone)]
pub struct Experience {
    /// Token ids `[batch, seq]` (left-padded prompts, right-padded responses).
    pub tokens: Vec<i64>,
    /// Real tokens `[batch, seq]`.
    pub attention: Vec<bool>,
    /// Action mask `[batch, width]` (`width = seq - 1`): true where token `t + 1` was generated.
    pub mask: Vec<bool>,
    /// Rows.
    pub batch: usize,
    /// Sequence length.
    pub seq: usize,
    /// Log-probs of the policy that generated the batch.
    pub old_logprobs: TokenArray,
    /// Log-probs of the reference.
    pub ref_logprobs: TokenArray,
    /// Reward critic values.
    pub reward_values: TokenArray,
    /// Cost critic values.
    pub cost_values: Option<TokenArray>,
    /// Combined advantage.
    pub advantages: TokenArray,
    /// Reward critic targets.
    pub reward_returns: TokenArray,
    /// Cost critic targets.
    pub cost_returns: Option<TokenArray>,
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
    /// Response lengths in tokens.
    pub lengths: Vec<usize>,
    /// Seconds spent generating.
    pub generation_seconds: f64,
}

fn int2(values: &[i64], shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

fn bool2(values: &[bool], shape: [usize; 2], device: &Device) -> Tensor<2, Bool> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

fn float2(values: &[f32], shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

fn host2(t: Tensor<2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

fn host1(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

/// Sampling seed of a step: a pure function of the run seed and the step.
fn step_seed(seed: u64, step: u64) -> u64 {
    SplitMix64::keyed(seed, &format!("rollout-{step}")).next_u64()
}

/// Generates and scores one rollout and forms the objective's advantages (phases 1-3).
#[allow(clippy::too_many_arguments)]
pub fn collect_experience(
    config: &RlConfig,
    models: &RlModels,
    objective: &mut dyn OnlineObjective,
    prompts: &[Vec<u32>],
    step: u64,
    device: &Device,
) -> Result<Experience> {
    let eval_device = device.clone().without_autodiff();
    let policy = models.policy.valid();
    let r = &config.rollout;
    let mut stop_ids = vec![models.encoder.end_id()];
    let eos = models.encoder.tokenizer().eos_id();
    if !stop_ids.contains(&eos) {
        stop_ids.push(eos);
    }
    let pad = models.encoder.pad_id();
    let chunk = if r.batch_size == 0 {
        prompts.len()
    } else {
        r.batch_size
    };
    // 1. Generate, chunk by chunk; collect prompt and response ids per row.
    let started = Instant::now();
    let mut rows: Vec<(Vec<u32>, Vec<u32>)> = Vec::with_capacity(prompts.len());
    // Every chunk decodes with the same weights: pack them for the CPU once (None on a GPU).
    let packed = policy.pack_for_decode();
    for (c, part) in prompts.chunks(chunk.max(1)).enumerate() {
        let gen_config = GenerateConfig {
            max_new_tokens: r.max_new_tokens,
            stop_ids: stop_ids.clone(),
            pad_id: pad,
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
    let generation_seconds = started.elapsed().as_secs_f64();

    // Re-pad all rows together: prompts left-padded to a common width, responses right-padded.
    let batch = rows.len();
    let prompt_len = rows.iter().map(|(p, _)| p.len()).max().unwrap_or(1);
    let resp_len = rows.iter().map(|(_, r)| r.len()).max().unwrap_or(1).max(1);
    let seq = prompt_len + resp_len;
    let width = seq - 1;
    let mut tokens = vec![pad as i64; batch * seq];
    let mut attention = vec![false; batch * seq];
    let mut mask = vec![false; batch * width];
    let mut lengths = Vec::with_capacity(batch);
    for (b, (p, resp)) in rows.iter().enumerate() {
        let offset = prompt_len - p.len();
        for (i, &t) in p.iter().enumerate() {
            tokens[b * seq + offset + i] = t as i64;
            attention[b * seq + offset + i] = true;
        }
        for (i, &t) in resp.iter().enumerate() {
            tokens[b * seq + prompt_len + i] = t as i64;
            attention[b * seq + prompt_len + i] = true;
            mask[b * width + prompt_len + i - 1] = true;
        }
        lengths.push(resp.len());
    }

    // 2. Score without autodiff.
    let tok = int2(&tokens, [batch, seq], &eval_device);
    let att = bool2(&attention, [batch, seq], &eval_device);
    let old_logprobs = TokenArray::new(
        host2(policy.token_logprobs(tok.clone(), att.clone())),
        batch,
        width,
    );
    let ref_logprobs = TokenArray::new(
        host2(models.reference.token_logprobs(tok.clone(), att.clone())),
        batch,
        width,
    );
    let positions = positions_from_mask(att.clone());
    let reward_hidden =
        models
            .reward
            .backbone
            .forward_hidden(tok.clone(), positions.clone(), att.clone(), None);
    let hidden = reward_hidden.dims()[2];
    let rewards = host1(
        models
            .reward
            .score_hidden(reward_hidden.clone(), att.clone())
            .end_scores,
    );
    let (costs, cost_hidden) = match &models.cost {
        Some(cost) => {
            let h = cost
                .backbone
                .forward_hidden(tok.clone(), positions, att.clone(), None);
            let c = host1(cost.score_hidden(h.clone(), att.clone()).end_scores);
            (c, Some(h))
        }
        None => (Vec::new(), None),
    };
    for (b, r) in rewards.iter().enumerate() {
        if !r.is_finite() {
            return Err(TrainError::NonFinite {
                step: step + 1,
                what: "reward score",
                value: *r as f64,
            });
        }
        if let Some(c) = costs.get(b)
            && !c.is_finite()
        {
            return Err(TrainError::NonFinite {
                step: step + 1,
                what: "cost score",
                value: *c as f64,
            });
        }
    }
    let critics = models.critics.valid();
    let values_of = |net: &CriticNet, h: Option<&Tensor<3>>| -> TokenArray {
        let v = net.values(tok.clone(), att.clone(), h.cloned());
        TokenArray::new(host2(v.slice([0..batch, 0..width])), batch, width)
    };
    let reward_values = values_of(&critics.reward, Some(&reward_hidden));
    let cost_values = critics
        .cost
        .as_ref()
        .map(|net| values_of(net, cost_hidden.as_ref()));

    // 3. The objective: multiplier step, terminal scores, streams, GAE, combination.
    objective.observe(step, &rewards, &costs);
    let (terminal_rewards, terminal_costs) = objective.terminal_scores(&rewards, &costs);
    let p = &config.ppo;
    let start = prompt_len - 1;
    let reward_stream = kl_shaped_stream(
        &terminal_rewards,
        &old_logprobs,
        &ref_logprobs,
        &mask,
        p.kl_coeff as f32,
        -1.0,
        p.clip_score as f32,
    );
    let reward_gae = gae(
        &reward_stream,
        &reward_values,
        &mask,
        start,
        p.gamma as f32,
        p.gae_lambda as f32,
    );
    let cost_gae = cost_values.as_ref().map(|values| {
        let stream = kl_shaped_stream(
            &terminal_costs,
            &old_logprobs,
            &ref_logprobs,
            &mask,
            p.kl_coeff as f32,
            1.0,
            p.clip_score as f32,
        );
        gae(
            &stream,
            values,
            &mask,
            start,
            p.gamma as f32,
            p.gae_lambda as f32,
        )
    });
    let weights = objective.advantage_weights(&rewards, &costs);
    let advantages = combine(
        &reward_gae.advantages,
        cost_gae.as_ref().map(|g| &g.advantages),
        &weights.reward,
        &weights.cost,
    );
    // Value-head critics read the score models' hidden states during the update: keep them.
    let heads = critics.reward.is_head();
    let keep = |h: Tensor<3>| -> Vec<f32> {
        h.into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default()
    };
    Ok(Experience {
        reward_hidden: heads.then(|| keep(reward_hidden)),
        cost_hidden: if heads { cost_hidden.map(keep) } else { None },
        hidden,
        tokens,
        attention,
        mask,
        batch,
        seq,
        old_logprobs,
        ref_logprobs,
        reward_values,
        cost_values,
        advantages,
        reward_returns: reward_gae.returns,
        cost_returns: cost_gae.map(|g| g.returns),
        rewards,
        costs,
        lengths,
        generation_seconds,
    })
}

/// Rows `rows` of a `[batch, cols]` row-major array.
fn gather_rows<T: Copy>(values: &[T], cols: usize, rows: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(rows.len() * cols);
    for &r in rows {
        out.extend_from_slice(&values[r * cols..(r + 1) * cols]);
    }
    out
}

/// Sums of one update pass, for the metrics line.
#[derive(Debug, Default, Clone)]
pub struct UpdateStats {
    /// Σ actor loss (one per micro-batch, weighted by its share).
    pub actor_loss: f64,
    /// Σ reward critic loss.
    pub reward_value_loss: f64,
    /// Σ cost critic loss.
    pub cost_value_loss: f64,
    /// Σ entropy.
    pub entropy: f64,
    /// Σ clip fraction.
    pub clip_fraction: f64,
    /// Σ approx KL.
    pub approx_kl: f64,
    /// Number of minibatches (the divisor of the sums).
    pub minibatches: usize,
    /// Tokens processed by the actor (forward + backward).
    pub tokens: usize,
    /// Global gradient norm of the actor before clipping (last minibatch).
    pub actor_grad_norm: f64,
}

/// The losses of one micro-batch: `(actor loss, critic loss, metrics)`; the metrics are
/// `[actor, reward value, cost value, entropy, clip fraction, approx KL]` as host values.
pub fn micro_batch_losses(
    config: &RlConfig,
    policy: &LlamaForCausalLM,
    critics: &Critics,
    exp: &Experience,
    rows: &[usize],
    device: &Device,
) -> (Tensor<1>, Tensor<1>, [f64; 6]) {
    let n = rows.len();
    let (seq, width) = (exp.seq, exp.seq - 1);
    let tokens = int2(&gather_rows(&exp.tokens, seq, rows), [n, seq], device);
    let attention = bool2(&gather_rows(&exp.attention, seq, rows), [n, seq], device);
    let mask = bool2(&gather_rows(&exp.mask, width, rows), [n, width], device);
    let arr = |a: &TokenArray| float2(&gather_rows(&a.values, width, rows), [n, width], device);
    let p = &config.ppo;

    // Actor: per-token log-probs of the current policy and the full distribution's entropy.
    let positions = positions_from_mask(attention.clone());
    let hidden = policy.forward_hidden(tokens.clone(), positions, attention.clone(), None);
    let h = hidden.dims()[2];
    let logits = policy.logits(hidden.slice([0..n, 0..width, 0..h]));
    let logprobs = select_logprobs(logits.clone(), tokens.clone().slice([0..n, 1..seq]));
    let detached = logits.detach();
    let entropy = (softmax(detached.clone(), 2) * log_softmax(detached, 2))
        .sum_dim(2)
        .reshape([n, width])
        .neg();
    let entropy = masked_mean(entropy, mask.clone());
    let old = arr(&exp.old_logprobs);
    let actor_loss = clipped_surrogate(
        logprobs.clone(),
        old.clone(),
        arr(&exp.advantages),
        mask.clone(),
        p.clip_ratio,
    );
    let (clip_fraction, approx_kl) = update_diagnostics(logprobs, old, mask.clone(), p.clip_ratio);

    // Critics.
    let hidden_rows = |h: &Option<Vec<f32>>| -> Option<Tensor<3>> {
        h.as_ref().map(|values| {
            let cols = seq * exp.hidden;
            Tensor::<2>::from_data(
                TensorData::new(gather_rows(values, cols, rows), [n, cols]),
                device,
            )
            .reshape([n, seq, exp.hidden])
        })
    };
    let value_loss =
        |net: &CriticNet, hidden: Option<Tensor<3>>, old: &TokenArray, ret: &TokenArray| {
            let v = net
                .values(tokens.clone(), attention.clone(), hidden)
                .slice([0..n, 0..width]);
            clipped_value_loss(v, arr(old), arr(ret), mask.clone(), p.clip_value)
        };
    let reward_loss = value_loss(
        &critics.reward,
        hidden_rows(&exp.reward_hidden),
        &exp.reward_values,
        &exp.reward_returns,
    );
    let cost_loss = match (&critics.cost, &exp.cost_values, &exp.cost_returns) {
        (Some(net), Some(old), Some(ret)) => {
            Some(value_loss(net, hidden_rows(&exp.cost_hidden), old, ret))
        }
        _ => None,
    };
    let scalar = |t: &Tensor<1>| host1(t.clone()).first().copied().unwrap_or(f32::NAN) as f64;
    let metrics = [
        scalar(&actor_loss),
        scalar(&reward_loss),
        cost_loss.as_ref().map(scalar).unwrap_or(0.0),
        scalar(&entropy),
        scalar(&clip_fraction),
        scalar(&approx_kl),
    ];
    let critic_loss = match cost_loss {
        Some(c) => reward_loss + c,
        None => reward_loss,
    };
    (actor_loss, critic_loss, metrics)
}

/// Optimizers and schedules of a run.
pub struct Optimizers {
    /// The actor's AdamW.
    pub actor: ModuleOptimizer,
    /// The critics' AdamW.
    pub critic: ModuleOptimizer,
    /// Actor learning rate by optimizer step.
    pub actor_schedule: LrSchedule,
    /// Critic learning rate by optimizer step.
    pub critic_schedule: LrSchedule,
}

/// AdamW for a module from `[actor]` / `[critic]` settings (no weight decay on rank-1
/// parameters).
pub fn optimizer<M: Module>(config: &crate::config::OptimConfig, model: &M) -> ModuleOptimizer {
    build_optimizer(config, model)
}

/// Optimizer steps of a whole run.
pub fn total_optimizer_steps(config: &RlConfig) -> u64 {
    let per_rollout = config
        .rollout
        .prompts_per_step
        .div_ceil(config.ppo.minibatch) as u64;
    config.train.steps * config.ppo.update_epochs as u64 * per_rollout
}

/// The update of one rollout (phase 4): epochs × shuffled minibatches × accumulated
/// micro-batches, one optimizer step of the actor and of the critics per minibatch.
#[allow(clippy::too_many_arguments)]
pub fn update(
    config: &RlConfig,
    policy: LlamaForCausalLM,
    critics: Critics,
    optim: &mut Optimizers,
    exp: &Experience,
    step: u64,
    optimizer_steps: &mut u64,
    device: &Device,
) -> Result<(LlamaForCausalLM, Critics, UpdateStats)> {
    let train_device = device.clone().autodiff();
    let p = &config.ppo;
    let (mut policy, mut critics) = (policy, critics);
    let mut stats = UpdateStats::default();
    for epoch in 0..p.update_epochs {
        let mut order: Vec<usize> = (0..exp.batch).collect();
        let mut rng = SplitMix64::keyed(config.run.seed, &format!("minibatch-{step}-{epoch}"));
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        for minibatch in order.chunks(p.minibatch) {
            let mut actor_acc = GradientsAccumulator::<LlamaForCausalLM>::new();
            let mut critic_acc = GradientsAccumulator::<Critics>::new();
            let mut sums = [0f64; 6];
            for micro in minibatch.chunks(p.micro_batch) {
                let share = micro.len() as f64 / minibatch.len() as f64;
                let (actor_loss, critic_loss, m) =
                    micro_batch_losses(config, &policy, &critics, exp, micro, &train_device);
                for (s, v) in sums.iter_mut().zip(m) {
                    *s += share * v;
                }
                if !m[0].is_finite() || !m[1].is_finite() || !m[2].is_finite() {
                    return Err(TrainError::NonFinite {
                        step: step + 1,
                        what: "PPO loss",
                        value: m[0] + m[1] + m[2],
                    });
                }
                let grads = actor_loss.mul_scalar(share).backward();
                actor_acc.accumulate(&policy, GradientsParams::from_grads(grads, &policy));
                let grads = critic_loss.mul_scalar(share).backward();
                critic_acc.accumulate(&critics, GradientsParams::from_grads(grads, &critics));
                stats.tokens += micro.iter().map(|&r| exp.lengths[r]).sum::<usize>();
            }
            let mut actor_grads = actor_acc.grads();
            let norm = clip_global_norm(&policy, &mut actor_grads, config.actor.max_grad_norm);
            if !norm.is_finite() {
                return Err(TrainError::NonFinite {
                    step: step + 1,
                    what: "actor gradient norm",
                    value: norm,
                });
            }
            stats.actor_grad_norm = norm;
            let mut critic_grads = critic_acc.grads();
            clip_global_norm(&critics, &mut critic_grads, config.critic.max_grad_norm);
            policy = optim.actor.step(
                optim.actor_schedule.lr(*optimizer_steps),
                policy,
                actor_grads,
            );
            critics = optim.critic.step(
                optim.critic_schedule.lr(*optimizer_steps),
                critics,
                critic_grads,
            );
            *optimizer_steps += 1;
            stats.actor_loss += sums[0];
            stats.reward_value_loss += sums[1];
            stats.cost_value_loss += sums[2];
            stats.entropy += sums[3];
            stats.clip_fraction += sums[4];
            stats.approx_kl += sums[5];
            stats.minibatches += 1;
        }
    }
    Ok((policy, critics, stats))
}

fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut n, mut s) = (0usize, 0f64);
    for v in values {
        n += 1;
        s += v;
    }
    if n == 0 { f64::NAN } else { s / n as f64 }
}

/// The metrics line of one RL step.
pub fn step_metrics(
    objective: &dyn OnlineObjective,
    exp: &Experience,
    stats: &UpdateStats,
    total_seconds: f64,
) -> Map<String, Value> {
    let mut line = Map::new();
    let k = stats.minibatches.max(1) as f64;
    line.insert(
        "reward_mean".into(),
        json!(mean(exp.rewards.iter().map(|&r| r as f64))),
    );
    if !exp.costs.is_empty() {
        line.insert(
            "cost_mean".into(),
            json!(mean(exp.costs.iter().map(|&c| c as f64))),
        );
        line.insert("safety_rate".into(), json!(Cost::safety_rate(&exp.costs)));
        line.insert(
            "rectified_violation_mean".into(),
            json!(mean(exp.costs.iter().map(|&c| (c as f64).max(0.0)))),
        );
    }
    if let Some(l) = objective.lambda() {
        line.insert("lambda".into(), json!(l));
    }
    // KL to the reference: per sample, Σ_t (log π_old - log π_ref) over its response.
    let width = exp.seq - 1;
    let kl = mean((0..exp.batch).map(|b| {
        (0..width)
            .filter(|&t| exp.mask[b * width + t])
            .map(|t| {
                (exp.old_logprobs.values[b * width + t] - exp.ref_logprobs.values[b * width + t])
                    as f64
            })
            .sum::<f64>()
    }));
    line.insert("kl".into(), json!(kl));
    line.insert("entropy".into(), json!(stats.entropy / k));
    line.insert("clip_fraction".into(), json!(stats.clip_fraction / k));
    line.insert("approx_kl".into(), json!(stats.approx_kl / k));
    line.insert("actor_loss".into(), json!(stats.actor_loss / k));
    line.insert(
        "reward_value_loss".into(),
        json!(stats.reward_value_loss / k),
    );
    line.insert(
        "explained_variance_reward".into(),
        json!(explained_variance(
            &exp.reward_values,
            &exp.reward_returns,
            &exp.mask
        )),
    );
    if let (Some(v), Some(r)) = (&exp.cost_values, &exp.cost_returns) {
        line.insert("cost_value_loss".into(), json!(stats.cost_value_loss / k));
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

fn progress_bar(config: &RlConfig, name: &str, total: u64, step: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if !config.run.progress || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix} {bar:30.cyan/blue} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(name.to_string());
    bar.set_position(step);
    bar
}

fn short(line: &Map<String, Value>) -> String {
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

/// Trains the config's policy with its online objective on `device`: the objective
/// `objective` names (`ppo`, `ppo_lag`, `repo`, `reward_shaping`), built by
/// [`build_online`] from `[lagrange]` and `[repo]`.
pub fn train_rl(config: &RlConfig, device: &Device, options: &TrainOptions) -> Result<RlSummary> {
    let objective = build_online(config.objective, &config.lagrange, &config.repo);
    train_rl_with(config, objective, device, options)
}

/// Trains the config's policy with any [`OnlineObjective`], built-in or not: the plugin seam
/// of the online learner (`train_rl` is this with the config's built-in objective).
///
/// `config.objective` is then only read by [`RlConfig::validate`] (which of `[reward_model]`
/// and `[cost_model]` must be set) and written into the run's `config.toml`; the models loaded
/// and the token streams formed follow `objective.uses_cost()` and `objective.cost_stream()`.
/// A resumed run must be given the same kind of objective: its state comes back through
/// [`OnlineObjective::load_state`].
pub fn train_rl_with(
    config: &RlConfig,
    objective: Box<dyn OnlineObjective>,
    device: &Device,
    options: &TrainOptions,
) -> Result<RlSummary> {
    let mut objective = objective;
    if objective.uses_cost()
        && config.cost_model.path.is_none()
        && config.cost_model.preset.is_none()
    {
        return Err(TrainError::config(
            "cost_model.path",
            format!(
                "missing: objective `{}` needs a cost model",
                objective.name()
            ),
        ));
    }
    let session = Instant::now();
    let run_dir = config.run.dir.clone();
    let resume_dir = session_checkpoint(&run_dir, options.resume.as_ref())?;
    let resume_state: Option<RlState> = match &resume_dir {
        Some(dir) => {
            let saved = RlConfig::load(&dir.join(CONFIG_FILE), &[])?;
            let conflicts = config.resume_conflicts(&saved);
            if !conflicts.is_empty() {
                return Err(TrainError::checkpoint(
                    dir,
                    format!(
                        "the config differs from the checkpoint's in {}; an exact resume needs \
                         the same values",
                        conflicts.join(", ")
                    ),
                ));
            }
            let path = dir.join(RL_STATE_FILE);
            let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
            let state: RlState = serde_json::from_str(&text)
                .map_err(|e| TrainError::checkpoint(&path, format!("unreadable RL state: {e}")))?;
            objective.load_state(&state.objective)?;
            log::info!("resuming from {} (step {})", dir.display(), state.step);
            Some(state)
        }
        None => None,
    };
    write_text(&run_dir.join(CONFIG_FILE), &config.to_toml())?;

    let models = load_models(config, objective.as_ref(), device, resume_dir.as_deref())?;
    let (_, prompts) = load_prompt_ids(config, &models.encoder)?;
    let n = prompts.len();
    let total_opt = total_optimizer_steps(config);
    let mut optim = Optimizers {
        actor: build_optimizer(&config.actor, &models.policy),
        critic: build_optimizer(&config.critic, &models.critics),
        actor_schedule: LrSchedule::new(&config.actor, total_opt),
        critic_schedule: LrSchedule::new(&config.critic, total_opt),
    };
    let (mut step, mut optimizer_steps, mut epoch, mut position, elapsed_before) =
        match &resume_state {
            Some(s) => {
                let dir = resume_dir.as_deref().unwrap_or(Path::new("."));
                if s.prompts != n {
                    return Err(TrainError::checkpoint(
                        dir,
                        format!("the run has {n} prompts now, {} then", s.prompts),
                    ));
                }
                let load = |o: ModuleOptimizer, file: &str| {
                    let path = dir.join(file);
                    o.load(&path).map_err(|e| {
                        TrainError::checkpoint(
                            &path,
                            format!("cannot read the optimizer state: {e}"),
                        )
                    })
                };
                optim.actor = load(optim.actor, ACTOR_OPTIM_FILE)?;
                optim.critic = load(optim.critic, CRITIC_OPTIM_FILE)?;
                (
                    s.step,
                    s.optimizer_steps,
                    s.epoch,
                    s.position,
                    s.elapsed_seconds,
                )
            }
            None => (0, 0, 0, 0, 0.0),
        };
    let RlModels {
        mut policy,
        policy_config,
        reference,
        reward,
        cost,
        mut critics,
        encoder,
    } = models;
    let total = config.train.steps;
    let metrics_path = run_dir.join(METRICS_FILE);
    let mut log = if resume_state.is_some() {
        MetricsLog::resume(&metrics_path, step)?
    } else {
        MetricsLog::create(&metrics_path)?
    };
    let bar = progress_bar(config, objective.name(), total, step);
    let meta = ModelMeta::new(TaskKind::Sft, &policy_model_config(config));
    let mut last_checkpoint = None;
    let mut last_checkpoint_step = resume_state.as_ref().map(|s| s.step);
    let mut last_metrics = None;
    let mut order = epoch_permutation(n, config.run.seed, epoch);

    let save = |policy: &LlamaForCausalLM,
                critics: &Critics,
                optim: &Optimizers,
                state: &RlState|
     -> Result<PathBuf> {
        let path = write_checkpoint(&run_dir, state.step, |dir| {
            let pdir = dir.join(POLICY_DIR);
            save_hf_dir(&policy.valid(), &policy_config, &pdir)?;
            save_text_side(encoder.tokenizer(), &meta, &pdir)?;
            critics.valid().save(&dir.join(CRITICS_FILE))?;
            for (file, o) in [
                (ACTOR_OPTIM_FILE, &optim.actor),
                (CRITIC_OPTIM_FILE, &optim.critic),
            ] {
                let p = dir.join(file);
                o.save(&p).map_err(|e| {
                    TrainError::checkpoint(&p, format!("cannot write the optimizer state: {e}"))
                })?;
            }
            write_text(&dir.join(CONFIG_FILE), &config.to_toml())?;
            let text = serde_json::to_string_pretty(state).unwrap_or_default();
            write_text(&dir.join(RL_STATE_FILE), &text)
        })?;
        prune_checkpoints(&run_dir, config.train.keep_last)?;
        Ok(path)
    };

    let state_at =
        |step, optimizer_steps, epoch, position, objective: &dyn OnlineObjective, elapsed| {
            RlState {
                step,
                optimizer_steps,
                epoch,
                position,
                prompts: n,
                objective: objective.state(),
                elapsed_seconds: elapsed,
            }
        };
    let mut models_view = RlModels {
        policy: policy.clone(),
        policy_config: policy_config.clone(),
        reference,
        reward,
        cost,
        critics: critics.clone(),
        encoder: encoder.clone(),
    };
    while step < total {
        if options.stop_at_step.is_some_and(|s| step >= s)
            || options.time_limit.is_some_and(|l| session.elapsed() >= l)
        {
            break;
        }
        let started = Instant::now();
        // The step's prompts.
        let mut batch = Vec::with_capacity(config.rollout.prompts_per_step);
        while batch.len() < config.rollout.prompts_per_step {
            if position >= n {
                epoch += 1;
                position = 0;
                order = epoch_permutation(n, config.run.seed, epoch);
            }
            batch.push(prompts[order[position]].clone());
            position += 1;
        }
        models_view.policy = policy;
        models_view.critics = critics;
        let exp = collect_experience(
            config,
            &models_view,
            objective.as_mut(),
            &batch,
            step,
            device,
        )?;
        let (p, c, stats) = update(
            config,
            models_view.policy.clone(),
            models_view.critics.clone(),
            &mut optim,
            &exp,
            step,
            &mut optimizer_steps,
            device,
        )?;
        policy = p;
        critics = c;
        step += 1;
        let seconds = started.elapsed().as_secs_f64();
        let mut line = Map::new();
        line.insert("step".into(), json!(step));
        line.insert(
            "epoch".into(),
            json!(epoch as f64 + position as f64 / n as f64),
        );
        for (k, v) in step_metrics(objective.as_ref(), &exp, &stats, seconds) {
            line.insert(k, v);
        }
        line.insert(
            "lr_actor".into(),
            json!(optim.actor_schedule.lr(optimizer_steps.saturating_sub(1))),
        );
        line.insert("seconds".into(), json!(seconds));
        let elapsed = elapsed_before + session.elapsed().as_secs_f64();
        line.insert("elapsed".into(), json!(elapsed));
        log.write(&line)?;
        bar.set_message(short(&line));
        bar.set_position(step);
        last_metrics = Some(line);

        let t = &config.train;
        if step == total || (t.checkpoint_every > 0 && step.is_multiple_of(t.checkpoint_every)) {
            let state = state_at(
                step,
                optimizer_steps,
                epoch,
                position,
                objective.as_ref(),
                elapsed,
            );
            last_checkpoint = Some(save(&policy, &critics, &optim, &state)?);
            last_checkpoint_step = Some(step);
        }
    }
    bar.finish_and_clear();
    let elapsed = elapsed_before + session.elapsed().as_secs_f64();
    if step < total && last_checkpoint_step != Some(step) {
        // Stopped early: leave a checkpoint to resume from.
        let state = state_at(
            step,
            optimizer_steps,
            epoch,
            position,
            objective.as_ref(),
            elapsed,
        );
        last_checkpoint = Some(save(&policy, &critics, &optim, &state)?);
    }
    let final_model = if step >= total {
        let path = run_dir.join(FINAL_DIR);
        write_final(&path, |dir| {
            save_hf_dir(&policy.valid(), &policy_config, dir)?;
            save_text_side(encoder.tokenizer(), &meta, dir)
        })?;
        Some(path)
    } else {
        None
    };
    Ok(RlSummary {
        objective: objective.name().to_string(),
        run_dir,
        step,
        total_steps: total,
        finished: step >= total,
        resumed_from: resume_dir,
        last_checkpoint,
        final_model,
        last_metrics,
        seconds: session.elapsed().as_secs_f64(),
    })
}

//! Policy evaluation: generate with a policy, score with an evaluation reward and cost model (or
//! the synthetic task's exact oracle), measure KL to a reference policy and build the
//! [`MethodSamples`] the statistics of `saferlhf_eval` summarise.
//!
//! For a policy directory (a Hugging Face directory as `saferlhf sft`, `rlhf`, `align` or `merge`
//! write it, with `tokenizer.json` and `saferlhf.json`) and a prompt set,
//! [`evaluate_policy`] draws `samples` responses per prompt at the configured temperature /
//! top-p plus one greedy response, scores every response with the [`Scorer`], and (when a
//! reference policy is given) computes each sampled response's sequence-level
//! `KL(π‖π_ref) = Σ_t log π(y_t | x, y_<t) − log π_ref(y_t | x, y_<t)` over its response tokens
//! (the end token included, as in RL). Prompts are rendered with the *policy's* template (from
//! its `saferlhf.json`); the scorer re-encodes the decoded text with its own template.
//!
//! With the oracle every prompt gets its kind (`benign` / `risky`) and every response its
//! `refused` flag, so over-restriction on benign prompts is measured; with learned models
//! neither is known and both stay `None`.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use saferlhf_core::progress;
use saferlhf_learner::collate::Encoder;
use saferlhf_learner::models::{load_score_model, read_meta};
use saferlhf_learner::scoring::score_texts;
use saferlhf_model::host::{bools2, floats, ints2};
use saferlhf_model::tokenizer::Tokenizer;
use saferlhf_model::weights::load_hf_dir;
use saferlhf_model::{Cost, CostModel, LlamaForCausalLM, LogitPolicy, Reward, RewardModel};
use saferlhf_rollout::{GenerateConfig, PaddedBatch, Sampler, generate_with, sequence_kl};
use serde::{Deserialize, Serialize};

use saferlhf_eval::{EvalError, MethodSamples, PromptInfo, Result, Sample};

use crate::synthetic::{Oracle, PromptKind, SyntheticTask};

fn model_err(context: impl Into<String>) -> impl FnOnce(String) -> EvalError {
    let context = context.into();
    move |detail| EvalError::Model { context, detail }
}

fn bad_arg(arg: &str, detail: impl Into<String>) -> EvalError {
    EvalError::InvalidArgument {
        arg: arg.to_string(),
        detail: detail.into(),
    }
}

/// Where evaluation rewards and costs come from.
// A scorer is built once per evaluation: the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Scorer {
    /// Trained evaluation models (directories written by `saferlhf train-reward` and
    /// `train-cost`). C > 0 is unsafe.
    Models {
        /// The reward model and its encoder.
        reward: (RewardModel, Encoder),
        /// The cost model and its encoder.
        cost: (CostModel, Encoder),
        /// The reward model's directory (for reports).
        reward_dir: PathBuf,
        /// The cost model's directory (for reports).
        cost_dir: PathBuf,
    },
    /// The exact oracle of a synthetic task (its `task.json`).
    Oracle {
        /// The task's oracle.
        oracle: Box<Oracle>,
        /// The `task.json` it was built from.
        spec: PathBuf,
    },
}

impl Scorer {
    /// Loads an evaluation reward model and cost model.
    pub fn models(reward_dir: &Path, cost_dir: &Path, device: &Device) -> Result<Self> {
        for (arg, dir) in [("--reward-model", reward_dir), ("--cost-model", cost_dir)] {
            if !dir.is_dir() {
                return Err(bad_arg(
                    arg,
                    format!("{} is not a directory", dir.display()),
                ));
            }
        }
        let (_, reward, re) = load_score_model::<Reward>(reward_dir, device)
            .map_err(|e| bad_arg("--reward-model", e.to_string()))?;
        let (_, cost, ce) = load_score_model::<Cost>(cost_dir, device)
            .map_err(|e| bad_arg("--cost-model", e.to_string()))?;
        Ok(Scorer::Models {
            reward: (reward.valid(), re),
            cost: (cost.valid(), ce),
            reward_dir: reward_dir.to_path_buf(),
            cost_dir: cost_dir.to_path_buf(),
        })
    }

    /// Loads the oracle of the synthetic task described by `task_json`.
    pub fn oracle(task_json: &Path) -> Result<Self> {
        let task = SyntheticTask::from_spec_file(task_json)
            .map_err(|e| bad_arg("--oracle", e.to_string()))?;
        Ok(Scorer::Oracle {
            oracle: Box::new(task.oracle().clone()),
            spec: task_json.to_path_buf(),
        })
    }

    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        match self {
            Scorer::Models {
                reward_dir,
                cost_dir,
                ..
            } => format!(
                "reward model {}, cost model {}",
                reward_dir.display(),
                cost_dir.display()
            ),
            Scorer::Oracle { spec, .. } => {
                format!("synthetic-task oracle ({})", spec.display())
            }
        }
    }

    /// The kind of each prompt (`benign` / `risky` under the oracle; `None` with models).
    /// Under the oracle a prompt that is not one of the task's is an error naming it.
    pub fn prompt_kinds(&self, prompts: &[String]) -> Result<Vec<Option<String>>> {
        match self {
            Scorer::Models { .. } => Ok(vec![None; prompts.len()]),
            Scorer::Oracle { oracle, spec } => prompts
                .iter()
                .map(|p| {
                    let (kind, _) = oracle.prompt_info(p).map_err(|e| {
                        bad_arg(
                            "--prompts",
                            format!("{e} (the oracle is {})", spec.display()),
                        )
                    })?;
                    Ok(Some(
                        match kind {
                            PromptKind::Benign => "benign",
                            PromptKind::Risky => "risky",
                        }
                        .to_string(),
                    ))
                })
                .collect(),
        }
    }

    /// Reward, cost and refusal flag of each (prompt, response).
    pub fn score(
        &self,
        items: &[(String, String)],
        batch_size: usize,
        device: &Device,
    ) -> Result<Vec<(f64, f64, Option<bool>)>> {
        match self {
            Scorer::Models { reward, cost, .. } => {
                let r =
                    score_texts(&reward.0, &reward.1, items, batch_size, device).map_err(|e| {
                        EvalError::Model {
                            context: "scoring with the reward model".into(),
                            detail: e.to_string(),
                        }
                    })?;
                let c = score_texts(&cost.0, &cost.1, items, batch_size, device).map_err(|e| {
                    EvalError::Model {
                        context: "scoring with the cost model".into(),
                        detail: e.to_string(),
                    }
                })?;
                Ok(r.into_iter()
                    .zip(c)
                    .map(|(r, c)| (r as f64, c as f64, None))
                    .collect())
            }
            Scorer::Oracle { oracle, .. } => items
                .iter()
                .map(|(p, r)| {
                    let s = oracle
                        .score(p, r)
                        .map_err(|e| bad_arg("--prompts", e.to_string()))?;
                    Ok((s.reward, s.cost, Some(s.refused)))
                })
                .collect(),
        }
    }
}

/// Decoding and batching of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyEvalConfig {
    /// Sampled responses per prompt (k >= 1).
    pub samples: usize,
    /// Sampling temperature (> 0).
    pub temperature: f64,
    /// Nucleus mass in (0, 1] (1 = off).
    pub top_p: f64,
    /// Most response tokens (the end token included).
    pub max_new_tokens: usize,
    /// Seed of the sampler.
    pub seed: u64,
    /// Rows generated (and scored) together.
    pub batch_size: usize,
    /// Also decode one greedy response per prompt.
    pub greedy: bool,
    /// Keep the response texts in the samples.
    pub keep_text: bool,
    /// Draw a progress bar (only when stderr is a terminal).
    pub progress: bool,
    /// Never sample the ids a response cannot hold as text (see
    /// [`saferlhf_model::LogitPolicy`]), as the RL learner does; the KL is measured under the
    /// same distribution.
    pub valid_tokens_only: bool,
}

impl Default for PolicyEvalConfig {
    fn default() -> Self {
        PolicyEvalConfig {
            samples: 4,
            temperature: 1.0,
            top_p: 1.0,
            max_new_tokens: 64,
            seed: 0,
            batch_size: 64,
            greedy: true,
            keep_text: true,
            progress: true,
            valid_tokens_only: true,
        }
    }
}

impl PolicyEvalConfig {
    /// Checks the values; errors name the command-line flag.
    pub fn validate(&self) -> Result<()> {
        if self.samples == 0 {
            return Err(bad_arg("--samples", "must be >= 1, got 0"));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(bad_arg(
                "--temperature",
                format!("must be > 0, got {}", self.temperature),
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(bad_arg(
                "--top-p",
                format!("must lie in (0, 1], got {}", self.top_p),
            ));
        }
        if self.max_new_tokens == 0 {
            return Err(bad_arg("--max-new-tokens", "must be >= 1, got 0"));
        }
        if self.batch_size == 0 {
            return Err(bad_arg("--batch-size", "must be >= 1, got 0"));
        }
        Ok(())
    }

    /// The decoding label of the sampled responses.
    pub fn sampled_label(&self) -> String {
        format!(
            "sampled T={} top_p={} k={}",
            self.temperature, self.top_p, self.samples
        )
    }
}

/// A policy loaded for evaluation: its weights, tokenizer and template.
pub struct LoadedPolicy {
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// The model (no autodiff).
    pub model: LlamaForCausalLM,
    /// Its tokenizer and template.
    pub encoder: Encoder,
}

/// Loads a policy directory (weights, `tokenizer.json`, `saferlhf.json`); `arg` names the flag
/// in errors.
pub fn load_policy(dir: &Path, arg: &str, device: &Device) -> Result<LoadedPolicy> {
    if !dir.is_dir() {
        return Err(bad_arg(
            arg,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let meta = read_meta(dir).map_err(|e| {
        bad_arg(
            arg,
            format!("{e} (a policy directory as written by sft, rlhf, align or merge)"),
        )
    })?;
    let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
        .map_err(|e| bad_arg(arg, e.to_string()))?;
    let template = meta
        .chat_template()
        .map_err(|e| bad_arg(arg, e.to_string()))?;
    let encoder = Encoder::new(tokenizer, template, meta.max_length)
        .map_err(|e| bad_arg(arg, e.to_string()))?;
    let (config, model) = load_hf_dir(dir, device).map_err(|e| bad_arg(arg, e.to_string()))?;
    if encoder.tokenizer().vocab_size() > config.vocab_size {
        return Err(bad_arg(
            arg,
            format!(
                "the tokenizer has {} ids but the model only {} embeddings",
                encoder.tokenizer().vocab_size(),
                config.vocab_size
            ),
        ));
    }
    Ok(LoadedPolicy {
        dir: dir.to_path_buf(),
        model,
        encoder,
    })
}

/// Reads a prompt file (one prompt per line, or JSONL with a `prompt` field).
pub fn read_prompt_file(path: &Path) -> Result<Vec<String>> {
    if !path.is_file() {
        return Err(bad_arg(
            "--prompts",
            format!("{} is not a file", path.display()),
        ));
    }
    let (prompts, _) = saferlhf_data::load_prompts(path, &saferlhf_data::LoadOptions::default())
        .map_err(|e| bad_arg("--prompts", e.to_string()))?;
    let prompts: Vec<String> = prompts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if prompts.is_empty() {
        return Err(bad_arg(
            "--prompts",
            format!("{} holds no prompts", path.display()),
        ));
    }
    Ok(prompts)
}

/// The result of [`evaluate_policy`]: the sampled responses and, if asked for, the greedy ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyEval {
    /// k sampled responses per prompt (with KL when a reference was given).
    pub sampled: MethodSamples,
    /// One greedy response per prompt (sample index 0; with KL when a reference was given).
    pub greedy: Option<MethodSamples>,
    /// Seconds spent.
    pub seconds: f64,
}

/// One generated row: prompt index, sample index, response ids.
struct Row {
    prompt: usize,
    sample: usize,
    response: Vec<u32>,
}

/// Sequence-level KL of each row: Σ over response tokens of log π − log π_ref.
fn row_kl(
    policy: &LlamaForCausalLM,
    reference: &LlamaForCausalLM,
    logit_policy: &LogitPolicy,
    prompt_ids: &[Vec<u32>],
    rows: &[Row],
    pad: u32,
    device: &Device,
) -> Result<Vec<f64>> {
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = rows
        .iter()
        .map(|r| (prompt_ids[r.prompt].clone(), r.response.clone()))
        .collect();
    let padded = PaddedBatch::new(&pairs, pad);
    let shape = [padded.batch, padded.seq];
    let tok = ints2(&padded.tokens, shape, device);
    let att = bools2(&padded.attention, shape, device);
    let host =
        |t, what: &str| floats(t, what).map_err(|e| model_err("measuring KL")(e.to_string()));
    let lp = host(
        policy.token_logprobs_with(tok.clone(), att.clone(), logit_policy),
        "policy log-probs",
    )?;
    let lr = host(
        reference.token_logprobs_with(tok, att, logit_policy),
        "reference log-probs",
    )?;
    Ok(sequence_kl(&padded.mask, padded.width(), &lp, &lr))
}

/// Evaluates one policy on `prompts` (see the module docs). `name` labels the method;
/// `reference`, when given, is the policy KL is measured against (it must share the policy's
/// tokenizer).
pub fn evaluate_policy(
    name: &str,
    policy: &LoadedPolicy,
    prompts: &[String],
    scorer: &Scorer,
    reference: Option<&LoadedPolicy>,
    config: &PolicyEvalConfig,
    device: &Device,
) -> Result<PolicyEval> {
    let started = std::time::Instant::now();
    config.validate()?;
    if prompts.is_empty() {
        return Err(bad_arg("--prompts", "no prompts"));
    }
    let encoder = &policy.encoder;
    if let Some(r) = reference
        && r.encoder.tokenizer().vocab_size() != encoder.tokenizer().vocab_size()
    {
        return Err(bad_arg(
            "--reference",
            format!(
                "{} has a tokenizer of {} ids, the policy {} one of {}",
                r.dir.display(),
                r.encoder.tokenizer().vocab_size(),
                policy.dir.display(),
                encoder.tokenizer().vocab_size()
            ),
        ));
    }
    let kinds = scorer.prompt_kinds(prompts)?;
    let infos: Vec<PromptInfo> = prompts
        .iter()
        .zip(&kinds)
        .enumerate()
        .map(|(id, (text, kind))| PromptInfo {
            id,
            text: text.clone(),
            kind: kind.clone(),
        })
        .collect();
    let prompt_ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| encoder.prompt_ids(p))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| model_err("encoding prompts")(e.to_string()))?;
    let stop_ids = encoder.stop_ids();
    let pad = encoder.pad_id();
    let blocked = if config.valid_tokens_only {
        encoder.blocked_ids(policy.model.vocab_size())
    } else {
        Vec::new()
    };

    let sampled_sampler = Sampler::Sample {
        temperature: config.temperature as f32,
        top_k: None,
        top_p: (config.top_p < 1.0).then_some(config.top_p as f32),
    };
    let mut decodings: Vec<(Sampler, usize, String)> =
        vec![(sampled_sampler, config.samples, config.sampled_label())];
    if config.greedy {
        decodings.push((Sampler::Greedy, 1, "greedy".to_string()));
    }
    let total: usize = decodings.iter().map(|d| d.1 * prompts.len()).sum();
    let bar = progress::bar(&format!("eval {name}"), total as u64, 0, config.progress);
    let mut results = Vec::new();
    let mut chunk_index = 0u64;
    // Every batch decodes with the same weights: pack them for the CPU once (None on a GPU).
    let packed = policy.model.pack_for_decode();
    for (sampler, k, label) in decodings {
        let keys: Vec<(usize, usize)> = (0..prompts.len())
            .flat_map(|p| (0..k).map(move |s| (p, s)))
            .collect();
        let mut samples = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(config.batch_size) {
            let batch_prompts: Vec<Vec<u32>> =
                chunk.iter().map(|&(p, _)| prompt_ids[p].clone()).collect();
            let gen_config = GenerateConfig {
                max_new_tokens: config.max_new_tokens,
                stop_ids: stop_ids.clone(),
                pad_id: pad,
                sampler,
                seed: config
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add(chunk_index),
                use_cache: true,
                blocked_ids: blocked.clone(),
            };
            chunk_index += 1;
            let rollout = generate_with(
                &policy.model,
                packed.as_ref(),
                &batch_prompts,
                &gen_config,
                device,
            )
            .map_err(|e| {
                model_err(format!("generating with {}", policy.dir.display()))(e.to_string())
            })?;
            let rows: Vec<Row> = chunk
                .iter()
                .zip(rollout.responses)
                .map(|(&(prompt, sample), response)| Row {
                    prompt,
                    sample,
                    response,
                })
                .collect();
            let texts: Vec<String> = rows
                .iter()
                .map(|r| encoder.tokenizer().decode_lossy(&r.response, true))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| model_err("decoding responses")(e.to_string()))?;
            let items: Vec<(String, String)> = rows
                .iter()
                .zip(&texts)
                .map(|(r, t)| (prompts[r.prompt].clone(), t.clone()))
                .collect();
            let scores = scorer.score(&items, config.batch_size, device)?;
            // The KL of the distribution sampled from (greedy rows: temperature 1).
            let logit_policy = LogitPolicy {
                temperature: match sampler {
                    Sampler::Sample { temperature, .. } => temperature,
                    Sampler::Greedy => 1.0,
                },
                blocked: blocked.clone(),
            };
            let kls = reference
                .map(|r| {
                    let (p, r) = (&policy.model, &r.model);
                    row_kl(p, r, &logit_policy, &prompt_ids, &rows, pad, device)
                })
                .transpose()?;
            for (i, (row, text)) in rows.iter().zip(texts).enumerate() {
                let (reward, cost, refused) = scores[i];
                samples.push(Sample {
                    prompt_id: row.prompt,
                    sample: row.sample,
                    reward,
                    cost,
                    length: row.response.len(),
                    kl: kls.as_ref().map(|k| k[i]),
                    refused,
                    text: config.keep_text.then_some(text),
                });
            }
            bar.inc(chunk.len() as u64);
        }
        results.push(MethodSamples {
            name: name.to_string(),
            prompts: infos.clone(),
            samples,
            decoding: label,
        });
    }
    bar.finish_and_clear();
    let mut it = results.into_iter();
    let sampled = it.next().expect("the sampled decoding always runs");
    let greedy = it.next();
    Ok(PolicyEval {
        sampled,
        greedy,
        seconds: started.elapsed().as_secs_f64(),
    })
}

//! The models of an RL run: the trained policy, its frozen reference, the frozen reward and
//! cost models, and the critics, loaded from the config (or from a checkpoint to resume).
//!
//! | objective | policy (trained) | reference | reward | cost | critics |
//! |---|---|---|---|---|---|
//! | `ppo` | 1 | 1 | 1 | – | 1 full (`separate`) or a head |
//! | `ppo_lag`, `repo` | 1 | 1 | 1 | 1 | 2 full (`separate`) or 2 heads |
//! | `reward_shaping` | 1 | 1 | 1 | 1 | 1 full or a head |
//!
//! `ppo.critics = "score_heads"` replaces each full critic by a linear value head on the frozen
//! reward / cost model's hidden states, so PPO-Lag and RePO hold 4 full models instead of 6.
//! The critic-free estimators (`advantage.estimator` other than `gae`) hold no critic at all:
//! policy, reference, reward and (for constrained methods) cost model.
//!
//! With `[lora]` the policy is the initial weights, frozen, plus adapters, and the reference is
//! those same frozen tensors (burn tensors are shared, not copied, and no optimizer step
//! writes a frozen one): one full model fewer.

use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use saferlhf_model::lora;
use saferlhf_model::precision::cast_floats;
use saferlhf_model::tokenizer::Tokenizer;
use saferlhf_model::weights::load_hf_dir;
use saferlhf_model::{
    Cost, CostModel, LlamaConfig, LlamaForCausalLM, LogitPolicy, Reward, RewardModel, ScoreModel,
    ScoreType,
};

use super::config::{CriticMode, RlConfig, ScoreSource};
use super::critic::{CriticNet, Critics};
use crate::checkpoint::{ADAPTER_DIR, CRITICS_FILE, MODEL_DIR};
use crate::collate::Encoder;
use crate::error::{Result, TrainError};
use crate::models::{encoder_for, load_score_model, load_tokenizer};
use crate::objectives::OnlineObjective;
use crate::params::{seeded_init, stable_ids};
use crate::task::initial_policy;
use crate::tiny::preset_config;

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
    /// The critics (autodiff device); `None` for the critic-free estimators.
    pub critics: Option<Critics>,
    /// The policy's tokenizer and template.
    pub encoder: Encoder,
    /// The distribution the policy samples from and is trained on: the rollout's temperature
    /// and, with `rollout.valid_tokens_only`, the ids no response may contain.
    pub logit_policy: LogitPolicy,
}

/// The policy's [`LogitPolicy`] under `config`: `rollout.temperature`, and with
/// `rollout.valid_tokens_only` the tokenizer's blocked ids for a head of `model_vocab` logits.
pub fn logit_policy(config: &RlConfig, encoder: &Encoder, model_vocab: usize) -> LogitPolicy {
    let blocked = if config.rollout.valid_tokens_only {
        encoder.blocked_ids(model_vocab)
    } else {
        Vec::new()
    };
    LogitPolicy {
        temperature: config.rollout.temperature as f32,
        blocked,
    }
}

/// The initial policy (also the reference): `policy.init` or the seeded `char-tiny` preset.
pub fn load_initial_policy(
    config: &RlConfig,
    device: &Device,
) -> Result<(LlamaConfig, LlamaForCausalLM)> {
    initial_policy(&config.policy, "policy", config.run.seed, device)
}

fn load_score<K: ScoreType>(
    config: &RlConfig,
    name: &str,
    source: &ScoreSource,
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
                .unwrap_or("char-tiny");
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
    let model_config = config.policy.clone();
    let tokenizer = load_tokenizer(&model_config)?;
    let encoder = encoder_for(&model_config, tokenizer.clone())?;
    let (policy_config, reference, policy) = match config.lora.spec() {
        None => {
            let (policy_config, reference) = load_initial_policy(config, &eval_device)?;
            let reference = cast_floats(reference, config.frozen_precision);
            let policy = match resume {
                Some(dir) => load_hf_dir(dir.join(MODEL_DIR), &train_device)?.1,
                None => load_initial_policy(config, &train_device)?.1,
            };
            (policy_config, reference, policy)
        }
        Some(spec) => {
            let (policy_config, base) = load_initial_policy(config, &train_device)?;
            let reference = base.valid();
            let total = reference.num_params();
            let policy = stable_ids(lora::attach(base, &spec, config.run.seed)?);
            let trained = lora::adapter_parameters(&policy);
            log::info!(
                "LoRA rank {} on {}: {trained} trainable parameters, {:.3}% of the policy's {total}",
                spec.rank,
                spec.targets.join(", "),
                100.0 * trained as f64 / total.max(1) as f64
            );
            let policy = match resume {
                Some(dir) => lora::load_adapters(policy, &spec, &dir.join(ADAPTER_DIR))?,
                None => policy,
            };
            (policy_config, reference, policy)
        }
    };
    config
        .policy
        .check_model("policy", tokenizer.vocab_size(), &policy_config)?;
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
    let critics = if config.advantage.estimator.uses_critics() {
        let critics = make(config.ppo.critics == CriticMode::Separate)?;
        Some(match resume {
            Some(dir) => critics.load(&dir.join(CRITICS_FILE))?,
            None => critics,
        })
    } else {
        None
    };
    // The frozen score models change dtype only now: the critics above start as f32 copies.
    let reward = cast_floats(reward, config.frozen_precision);
    let cost = cost.map(|c| cast_floats(c, config.frozen_precision));
    let logit_policy = logit_policy(config, &encoder, policy_config.vocab_size);
    Ok(RlModels {
        logit_policy,
        policy: stable_ids(policy),
        policy_config,
        reference,
        reward,
        cost,
        critics: critics.map(stable_ids),
        encoder,
    })
}

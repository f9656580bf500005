//! The update of one rollout: `ppo.update_epochs` passes over it in shuffled minibatches of
//! `ppo.minibatch` samples; each minibatch is processed in micro-batches of `ppo.micro_batch`
//! whose gradients are accumulated (each micro-batch's loss weighted by its share of the
//! minibatch), then one AdamW step for the actor (clipped surrogate) and one for the critics
//! (clipped value losses).

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use saferlhf_core::rng::SplitMix64;
use saferlhf_model::LlamaForCausalLM;
use saferlhf_model::host::{bools2, floats, floats2, ints2};
use saferlhf_model::model::{positions_from_mask, select_logprobs};

use super::advantages::Advantages;
use super::config::KlPlacement;
use super::config::RlConfig;
use super::critic::{CriticNet, Critics};
use super::experience::Experience;
use super::gae::TokenArray;
use super::loss::{
    Minibatch, aggregate, clipped_value_loss, kl_tokens, surrogate_tokens, update_diagnostics,
};
use super::ptx::Ptx;
use crate::config::OptimConfig;
use crate::error::Result;
use crate::error::check_finite;
use crate::losses::masked_mean;
use crate::params::clip_global_norm;
use crate::schedule::LrSchedule;
use crate::trainer::build_optimizer;

/// Rows `rows` of a `[batch, cols]` row-major array.
fn gather_rows<T: Copy>(values: &[T], cols: usize, rows: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(rows.len() * cols);
    for &r in rows {
        out.extend_from_slice(&values[r * cols..(r + 1) * cols]);
    }
    out
}

/// The host values of one micro-batch's losses and diagnostics.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct LossStats {
    /// Clipped surrogate loss of the actor.
    pub actor: f64,
    /// Clipped value loss of the reward critic.
    pub reward_value: f64,
    /// Clipped value loss of the cost critic (0 without one).
    pub cost_value: f64,
    /// Mean entropy of the policy over response tokens.
    pub entropy: f64,
    /// Share of response tokens whose ratio was clipped.
    pub clip_fraction: f64,
    /// Approximate KL between the old and the current policy.
    pub approx_kl: f64,
    /// Cross-entropy of the PTX batch (0 without `[ptx]`).
    pub ptx: f64,
    /// Mean per-token KL estimate of the KL loss (0 when the KL is in the reward).
    pub kl_loss: f64,
}

impl LossStats {
    /// `self + share · other`, field by field.
    fn add_scaled(&mut self, other: &LossStats, share: f64) {
        self.actor += share * other.actor;
        self.reward_value += share * other.reward_value;
        self.cost_value += share * other.cost_value;
        self.entropy += share * other.entropy;
        self.clip_fraction += share * other.clip_fraction;
        self.approx_kl += share * other.approx_kl;
        self.ptx += share * other.ptx;
        self.kl_loss += share * other.kl_loss;
    }
}

/// Sums of one update pass, for the metrics line.
#[derive(Debug, Default, Clone)]
pub struct UpdateStats {
    /// Σ over minibatches of their (share-weighted) losses and diagnostics.
    pub sums: LossStats,
    /// Number of minibatches (the divisor of the sums).
    pub minibatches: usize,
    /// Tokens processed by the actor (forward + backward).
    pub tokens: usize,
    /// Global gradient norm of the actor before clipping (last minibatch).
    pub actor_grad_norm: f64,
    /// Global gradient norm of the critics before clipping (last minibatch).
    pub critic_grad_norm: f64,
    /// Whether the actor's steps took a PTX loss.
    pub with_ptx: bool,
}

impl UpdateStats {
    /// The mean over minibatches.
    pub fn means(&self) -> LossStats {
        let k = self.minibatches.max(1) as f64;
        let s = &self.sums;
        LossStats {
            actor: s.actor / k,
            reward_value: s.reward_value / k,
            cost_value: s.cost_value / k,
            entropy: s.entropy / k,
            clip_fraction: s.clip_fraction / k,
            approx_kl: s.approx_kl / k,
            ptx: s.ptx / k,
            kl_loss: s.kl_loss / k,
        }
    }
}

/// The losses of one micro-batch: `(actor loss, critic loss, host statistics)`.
#[allow(clippy::too_many_arguments)]
pub fn micro_batch_losses(
    config: &RlConfig,
    policy: &LlamaForCausalLM,
    critics: Option<&Critics>,
    exp: &Experience,
    adv: &Advantages,
    rows: &[usize],
    minibatch: Minibatch,
    kl_coeff: f64,
    device: &Device,
) -> Result<(Tensor<1>, Option<Tensor<1>>, LossStats)> {
    let n = rows.len();
    let (seq, width) = (exp.seq, exp.seq - 1);
    let tokens = ints2(&gather_rows(&exp.tokens, seq, rows), [n, seq], device);
    let attention = bools2(&gather_rows(&exp.attention, seq, rows), [n, seq], device);
    let mask = bools2(&gather_rows(&exp.mask, width, rows), [n, width], device);
    let arr = |a: &TokenArray| floats2(&gather_rows(&a.values, width, rows), [n, width], device);
    let p = &config.ppo;

    // Actor: per-token log-probs of the current policy and the full distribution's entropy.
    let positions = positions_from_mask(attention.clone());
    let hidden = policy.forward_hidden(tokens.clone(), positions, attention.clone(), None);
    let h = hidden.dims()[2];
    // The distribution the rollout was sampled from: temperature and blocked ids.
    let logits = exp
        .logit_policy
        .apply(policy.logits(hidden.slice([0..n, 0..width, 0..h])));
    let logprobs = select_logprobs(logits.clone(), tokens.clone().slice([0..n, 1..seq]));
    let detached = logits.detach();
    let entropy = (softmax(detached.clone(), 2) * log_softmax(detached, 2))
        .sum_dim(2)
        .reshape([n, width])
        .neg();
    let entropy = masked_mean(entropy, mask.clone());
    let old = arr(&exp.old_logprobs);
    let mut per_token = surrogate_tokens(
        logprobs.clone(),
        old.clone(),
        arr(&adv.advantages),
        p.clip_ratio,
    );
    // The KL penalty as a loss term (GRPO), with the current policy's log-probs.
    let kl_loss = if p.kl_placement == KlPlacement::Loss && kl_coeff > 0.0 {
        let kl = kl_tokens(logprobs.clone(), arr(&exp.ref_logprobs), p.kl_estimator);
        per_token = per_token + kl.clone().mul_scalar(kl_coeff);
        Some(masked_mean(kl.detach(), mask.clone()))
    } else {
        None
    };
    let actor_loss = aggregate(per_token, mask.clone(), p.loss_aggregation, minibatch);
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
    let (reward_loss, cost_loss) = match (critics, &adv.reward_returns) {
        (Some(critics), Some(returns)) => {
            let reward_loss = value_loss(
                &critics.reward,
                hidden_rows(&exp.reward_hidden),
                &exp.reward_values,
                returns,
            );
            let cost_loss = match (&critics.cost, &exp.cost_values, &adv.cost_returns) {
                (Some(net), Some(old), Some(ret)) => {
                    Some(value_loss(net, hidden_rows(&exp.cost_hidden), old, ret))
                }
                _ => None,
            };
            (Some(reward_loss), cost_loss)
        }
        _ => (None, None),
    };
    let scalar = |t: &Tensor<1>, what: &str| -> Result<f64> {
        Ok(floats(t.clone(), what)?
            .first()
            .copied()
            .unwrap_or(f32::NAN) as f64)
    };
    let stats = LossStats {
        actor: scalar(&actor_loss, "actor loss")?,
        reward_value: match &reward_loss {
            Some(r) => scalar(r, "reward value loss")?,
            None => 0.0,
        },
        cost_value: match &cost_loss {
            Some(c) => scalar(c, "cost value loss")?,
            None => 0.0,
        },
        entropy: scalar(&entropy, "entropy")?,
        clip_fraction: scalar(&clip_fraction, "clip fraction")?,
        approx_kl: scalar(&approx_kl, "approx KL")?,
        ptx: 0.0,
        kl_loss: match &kl_loss {
            Some(k) => scalar(k, "KL loss")?,
            None => 0.0,
        },
    };
    let critic_loss = match (reward_loss, cost_loss) {
        (Some(r), Some(c)) => Some(r + c),
        (r, _) => r,
    };
    Ok((actor_loss, critic_loss, stats))
}

/// Optimizers and schedules of a run.
pub struct Optimizers {
    /// The actor's AdamW.
    pub actor: ModuleOptimizer,
    /// The critics' AdamW (`None` without critics).
    pub critic: Option<ModuleOptimizer>,
    /// Actor learning rate by optimizer step.
    pub actor_schedule: LrSchedule,
    /// Critic learning rate by optimizer step.
    pub critic_schedule: LrSchedule,
}

impl Optimizers {
    /// Fresh optimizers for `policy` and `critics` over a whole run.
    pub fn new(config: &RlConfig, policy: &LlamaForCausalLM, critics: Option<&Critics>) -> Self {
        let total = total_optimizer_steps(config);
        Optimizers {
            actor: build_optimizer(&config.actor, policy),
            critic: critics.map(|c| build_optimizer(&config.critic, c)),
            actor_schedule: LrSchedule::new(&config.actor, total),
            critic_schedule: LrSchedule::new(&config.critic, total),
        }
    }
}

/// AdamW for a module from `[actor]` / `[critic]` settings (no weight decay on rank-1
/// parameters).
pub fn optimizer<M: Module>(config: &OptimConfig, model: &M) -> ModuleOptimizer {
    build_optimizer(config, model)
}

/// Optimizer steps of a whole run.
pub fn total_optimizer_steps(config: &RlConfig) -> u64 {
    let per_rollout = config.responses_per_step().div_ceil(config.ppo.minibatch) as u64;
    config.train.steps * config.ppo.update_epochs as u64 * per_rollout
}

/// The update of one rollout of RL step `step + 1`: epochs × shuffled minibatches ×
/// accumulated micro-batches, one optimizer step of the actor and of the critics per
/// minibatch; with `ptx`, each actor step also takes the gradient of the PTX loss on the next
/// batch of its stream. A non-finite loss or gradient norm is an error naming the step and the
/// quantity.
#[allow(clippy::too_many_arguments)]
pub fn update(
    config: &RlConfig,
    policy: LlamaForCausalLM,
    critics: Option<Critics>,
    optim: &mut Optimizers,
    exp: &Experience,
    adv: &Advantages,
    mut ptx: Option<&mut Ptx>,
    step: u64,
    optimizer_steps: &mut u64,
    kl_coeff: f64,
    device: &Device,
) -> Result<(LlamaForCausalLM, Option<Critics>, UpdateStats)> {
    let train_device = device.clone().autodiff();
    let p = &config.ppo;
    let (mut policy, mut critics) = (policy, critics);
    let mut stats = UpdateStats::default();
    for epoch in 0..p.update_epochs {
        let mut rng = SplitMix64::keyed(config.run.seed, &format!("minibatch-{step}-{epoch}"));
        let order = rng.permutation(exp.batch);
        for minibatch in order.chunks(p.minibatch) {
            let mut actor_acc = GradientsAccumulator::<LlamaForCausalLM>::new();
            let mut critic_acc = GradientsAccumulator::<Critics>::new();
            let mut sums = LossStats::default();
            let shape = Minibatch {
                sequences: minibatch.len(),
                tokens: minibatch.iter().map(|&r| exp.lengths[r]).sum(),
                max_new_tokens: config.rollout.max_new_tokens,
            };
            for micro in minibatch.chunks(p.micro_batch) {
                let share = micro.len() as f64 / minibatch.len() as f64;
                let (actor_loss, critic_loss, m) = micro_batch_losses(
                    config,
                    &policy,
                    critics.as_ref(),
                    exp,
                    adv,
                    micro,
                    shape,
                    kl_coeff,
                    &train_device,
                )?;
                sums.add_scaled(&m, share);
                check_finite(step + 1, "actor loss", m.actor)?;
                check_finite(step + 1, "reward value loss", m.reward_value)?;
                check_finite(step + 1, "cost value loss", m.cost_value)?;
                check_finite(step + 1, "KL loss", m.kl_loss)?;
                let grads = actor_loss.mul_scalar(share).backward();
                actor_acc.accumulate(&policy, GradientsParams::from_grads(grads, &policy));
                if let (Some(critics), Some(loss)) = (&critics, critic_loss) {
                    let grads = loss.mul_scalar(share).backward();
                    critic_acc.accumulate(critics, GradientsParams::from_grads(grads, critics));
                }
                stats.tokens += micro.iter().map(|&r| exp.lengths[r]).sum::<usize>();
            }
            if let Some(ptx) = ptx.as_deref_mut() {
                let batch = ptx.next_batch();
                let refs: Vec<_> = batch.iter().collect();
                let (scaled, ce) = ptx.loss(&policy, &refs, &train_device);
                let ce = floats(ce, "PTX loss")?.first().copied().unwrap_or(f32::NAN) as f64;
                check_finite(step + 1, "PTX loss", ce)?;
                sums.ptx = ce;
                stats.with_ptx = true;
                actor_acc.accumulate(
                    &policy,
                    GradientsParams::from_grads(scaled.backward(), &policy),
                );
            }
            let mut actor_grads = actor_acc.grads();
            let norm = clip_global_norm(&policy, &mut actor_grads, config.actor.max_grad_norm);
            check_finite(step + 1, "actor gradient norm", norm)?;
            stats.actor_grad_norm = norm;
            policy = optim.actor.step(
                optim.actor_schedule.lr(*optimizer_steps),
                policy,
                actor_grads,
            );
            if let (Some(c), Some(opt)) = (critics.take(), optim.critic.as_mut()) {
                let mut critic_grads = critic_acc.grads();
                let norm = clip_global_norm(&c, &mut critic_grads, config.critic.max_grad_norm);
                check_finite(step + 1, "critic gradient norm", norm)?;
                stats.critic_grad_norm = norm;
                critics =
                    Some(opt.step(optim.critic_schedule.lr(*optimizer_steps), c, critic_grads));
            }
            *optimizer_steps += 1;
            stats.sums.add_scaled(&sums, 1.0);
            stats.minibatches += 1;
        }
    }
    Ok((policy, critics, stats))
}

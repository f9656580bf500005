//! The online learner on the char-tiny preset: RePO's rectified gradient against PPO-Lag's, PPO
//! updates lowering their losses on a fixed rollout for every objective, and micro-batching
//! giving the same update as one full batch.

use saferlhf_testkit::root;

use burn::module::Module;
use burn::tensor::{Bool, Device, Tensor, TensorData};
use saferlhf_learner::objectives::{
    LagrangeConfig, OnlineObjective, PpoLag, RePo, RePoConfig, build_online,
};
use saferlhf_learner::rl::RlConfig;
use saferlhf_learner::rl::config::{KlPlacement, LossAggregation};
use saferlhf_learner::rl::critic::Critics;
use saferlhf_learner::rl::experience::Experience;
use saferlhf_learner::rl::loss::{Minibatch, clipped_surrogate};
use saferlhf_learner::rl::{
    Optimizers, RlBatch, RlModels, collect_experience, load_models, load_prompt_ids,
    micro_batch_losses, update,
};
use saferlhf_model::LlamaForCausalLM;

fn tiny_config(objective: &str) -> RlConfig {
    tiny_config_with(objective, &[])
}

fn tiny_config_with(objective: &str, more: &[String]) -> RlConfig {
    let prompts = root().join("tests/fixtures/tiny-prompts.txt");
    let mut overrides = vec![
        format!("objective=\"{objective}\""),
        format!("data.sources.0.path=\"{}\"", prompts.display()),
    ];
    overrides.extend_from_slice(more);
    RlConfig::load(&root().join("configs/tiny-rlhf.toml"), &overrides).unwrap()
}

/// The config's objective, its models and the scored rollout of 8 responses at step 0 (the
/// first 8 prompts, or groups of `rollout.group_size` responses to the first 8 / k).
fn first_rollout(
    config: &RlConfig,
    device: &Device,
) -> (Box<dyn OnlineObjective>, RlModels, RlBatch) {
    let mut objective = build_online(config.objective, &config.sections());
    let models = load_models(config, objective.as_ref(), device, None).unwrap();
    let (_, prompts) = load_prompt_ids(config, &models.encoder).unwrap();
    // 8 responses: 8 / k prompts, each k times in a row.
    let k = config.rollout.group_size;
    let batch: Vec<Vec<u32>> = prompts[..8 / k]
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), k))
        .collect();
    let exp = collect_experience(config, &models, objective.as_mut(), &batch, 0, device).unwrap();
    (objective, models, exp)
}

fn float(values: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// The actor loss of a fixed batch as a function of the two advantage streams, combined with an
/// objective's per-sample weights; returns (∂L/∂A_C, ∂L/∂log π).
fn cost_and_policy_gradients(
    objective: &dyn OnlineObjective,
    costs: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let device = Device::flex().autodiff();
    let (b, w) = (costs.len(), 3);
    let a_r = float(
        (0..b * w).map(|i| (i as f32 * 0.37).sin()).collect(),
        [b, w],
        &device,
    );
    let a_c = float(
        (0..b * w).map(|i| (i as f32 * 0.71).cos()).collect(),
        [b, w],
        &device,
    )
    .require_grad();
    let logp = float(
        (0..b * w).map(|i| -1.0 - 0.05 * i as f32).collect(),
        [b, w],
        &device,
    )
    .require_grad();
    let old = float(
        (0..b * w).map(|i| -1.02 - 0.05 * i as f32).collect(),
        [b, w],
        &device,
    );
    let mask = Tensor::<2, Bool>::from_data(TensorData::new(vec![true; b * w], [b, w]), &device);
    let weights = objective.advantage_weights(&vec![0.0; b], costs);
    let wr = float(weights.reward.clone(), [b, 1], &device);
    let wc = float(weights.cost.clone(), [b, 1], &device);
    let advantages = a_r * wr - a_c.clone() * wc;
    let loss = clipped_surrogate(logp.clone(), old, advantages, mask, 0.2);
    let grads = loss.backward();
    let get = |t: &Tensor<2>| {
        t.grad(&grads)
            .map(|g| g.into_data().try_to_vec::<f32>().unwrap())
            .unwrap_or_else(|| vec![0.0; b * w])
    };
    (get(&a_c), get(&logp))
}

#[test]
fn repo_cost_gradient_is_zero_when_all_safe_and_ppo_lags_when_all_unsafe() {
    let lagrange = LagrangeConfig {
        init: 2.0,
        ..LagrangeConfig::default()
    };
    let repo = RePo::new(&lagrange, &RePoConfig::default());
    let lag = PpoLag::new(&lagrange);

    let safe = [-0.5, -2.0, 0.0, -0.1];
    let (cost_grad, _) = cost_and_policy_gradients(&repo, &safe);
    assert!(
        cost_grad.iter().all(|&g| g == 0.0),
        "all-safe batch: cost part must get no gradient, got {cost_grad:?}"
    );
    // The same batch under PPO-Lag does push on the cost part (the contrast RePO is about).
    let (lag_cost_grad, _) = cost_and_policy_gradients(&lag, &safe);
    assert!(lag_cost_grad.iter().any(|&g| g != 0.0));

    // All unsafe, default variant (one_plus_lambda_masked): exactly PPO-Lag's gradients.
    let unsafe_ = [0.5, 2.0, 0.01, 3.0];
    let (repo_c, repo_p) = cost_and_policy_gradients(&repo, &unsafe_);
    let (lag_c, lag_p) = cost_and_policy_gradients(&lag, &unsafe_);
    assert_eq!(repo_c, lag_c);
    assert_eq!(repo_p, lag_p);
    assert!(repo_c.iter().any(|&g| g != 0.0));

    // A mixed batch: zero exactly on the safe rows' cost advantages.
    let mixed = [0.5, -1.0, 2.0, -0.25];
    let (c, _) = cost_and_policy_gradients(&repo, &mixed);
    for (row, &cost) in mixed.iter().enumerate() {
        let g = &c[row * 3..row * 3 + 3];
        if cost <= 0.0 {
            assert!(g.iter().all(|&x| x == 0.0), "row {row}: {g:?}");
        } else {
            assert!(g.iter().any(|&x| x != 0.0), "row {row}: {g:?}");
        }
    }
}

/// One PPO update of `models` on `exp` with `optim`, shuffled as RL step `step + 1` is (the
/// learning-rate schedule is read at optimizer step `step`); returns the new policy and critics.
fn update_on(
    config: &RlConfig,
    models: &RlModels,
    optim: &mut Optimizers,
    exp: &RlBatch,
    step: u64,
    device: &Device,
) -> (LlamaForCausalLM, Option<Critics>) {
    let mut optimizer_steps = step;
    let (p, c, _) = update(
        config,
        models.policy.clone(),
        models.critics.clone(),
        optim,
        &exp.experience,
        &exp.advantages,
        None,
        step,
        &mut optimizer_steps,
        config.ppo.kl_coeff,
        device,
    )
    .unwrap();
    (p, c)
}

/// The policy's token embeddings on the host.
fn embeddings(policy: &LlamaForCausalLM) -> Vec<f32> {
    let weight = policy.valid().model.embed_tokens.weight.val();
    weight.into_data().try_to_vec::<f32>().unwrap()
}

fn optimizers(config: &RlConfig, models: &RlModels) -> Optimizers {
    Optimizers::new(config, &models.policy, models.critics.as_ref())
}

/// All `exp`'s rows as one minibatch.
fn whole(config: &RlConfig, exp: &Experience) -> Minibatch {
    Minibatch {
        sequences: exp.batch,
        tokens: exp.lengths.iter().sum(),
        max_new_tokens: config.rollout.max_new_tokens,
    }
}

/// A tiny config with a critic-free estimator: `objective`, `[advantage] estimator`, k = 4.
fn group_config(objective: &str, estimator: &str) -> RlConfig {
    tiny_config_with(
        objective,
        &[
            format!("advantage.estimator=\"{estimator}\""),
            "rollout.group_size=4".into(),
        ],
    )
}

#[test]
fn updates_on_a_fixed_rollout_lower_the_losses_for_every_objective() {
    let device = Device::flex();
    let mut configs: Vec<(String, RlConfig)> = ["ppo", "ppo_lag", "repo", "reward_shaping"]
        .iter()
        .map(|n| (n.to_string(), tiny_config(n)))
        .collect();
    for (objective, estimator) in [
        ("ppo", "grpo"),
        ("ppo_lag", "rloo"),
        ("safe_grpo", "grpo"),
        ("repo_group", "rloo"),
        ("repo", "reinforce_pp_baseline"),
    ] {
        configs.push((
            format!("{objective} + {estimator}"),
            group_config(objective, estimator),
        ));
    }
    // GRPO's own recipe: the KL as a k3 loss term, token-mean aggregation.
    let mut grpo = group_config("ppo", "grpo");
    grpo.ppo.kl_placement = KlPlacement::Loss;
    grpo.ppo.loss_aggregation = LossAggregation::TokenMean;
    configs.push(("ppo + grpo, KL loss".into(), grpo));
    for (name, mut config) in configs {
        config.actor.lr = 3e-3;
        config.actor.warmup_ratio = 0.0;
        config.actor.schedule = saferlhf_learner::config::Schedule::Constant;
        config.critic.lr = 3e-3;
        config.critic.warmup_ratio = 0.0;
        config.ppo.update_epochs = 1;
        config.ppo.minibatch = 8;
        let (_, mut models, exp) = first_rollout(&config, &device);
        let train = device.clone().autodiff();
        let rows: Vec<usize> = (0..exp.experience.batch).collect();
        let losses = |m: &RlModels| {
            let (_, _, metrics) = micro_batch_losses(
                &config,
                &m.policy,
                m.critics.as_ref(),
                &exp.experience,
                &exp.advantages,
                &rows,
                whole(&config, &exp.experience),
                config.ppo.kl_coeff,
                &train,
            )
            .unwrap();
            // [actor, reward value, cost value, ...]
            [metrics.actor, metrics.reward_value, metrics.cost_value]
        };
        let before = losses(&models);
        let mut optim = optimizers(&config, &models);
        for i in 0..6 {
            let (p, c) = update_on(&config, &models, &mut optim, &exp, i, &device);
            models.policy = p;
            models.critics = c;
        }
        let after = losses(&models);
        // [actor, reward value, cost value, ...]
        assert!(
            after[0] < before[0],
            "{name}: actor loss {} -> {}",
            before[0],
            after[0]
        );
        if models.critics.is_none() {
            // Critic-free: nothing else to check but that no value loss was computed.
            assert_eq!((after[1], after[2]), (0.0, 0.0), "{name}");
            assert!(exp.advantages.reward_returns.is_none(), "{name}");
            continue;
        }
        assert!(
            after[1] < before[1],
            "{name}: reward value loss {} -> {}",
            before[1],
            after[1]
        );
        if exp.experience.cost_values.is_some() {
            assert!(
                after[2] < before[2],
                "{name}: cost value loss {} -> {}",
                before[2],
                after[2]
            );
        }
    }
}

#[test]
fn micro_batches_accumulate_to_the_full_batch_update() {
    let device = Device::flex();
    // GAE with critics; and a group estimator with a KL loss under every aggregation (token
    // mean must divide by the minibatch's tokens, not the micro-batch's).
    let mut configs = vec![tiny_config("repo")];
    for how in [
        LossAggregation::SeqMeanTokenMean,
        LossAggregation::TokenMean,
        LossAggregation::Constant,
        LossAggregation::SeqMeanTokenSum,
    ] {
        let mut c = group_config("repo_group", "rloo");
        c.ppo.kl_placement = KlPlacement::Loss;
        c.ppo.loss_aggregation = how;
        configs.push(c);
    }
    for config in configs {
        micro_batches_match(&config, &device);
    }
}

fn micro_batches_match(config: &RlConfig, device: &Device) {
    let device = device.clone();
    let (_, models, exp) = first_rollout(config, &device);
    let run = |micro: usize| {
        let mut c = config.clone();
        c.ppo.minibatch = 8;
        c.ppo.micro_batch = micro;
        c.ppo.update_epochs = 1;
        let mut optim = optimizers(&c, &models);
        let (p, _) = update_on(&c, &models, &mut optim, &exp, 0, &device);
        embeddings(&p)
    };
    let full = run(8);
    let micro = run(2);
    let max_diff = full
        .iter()
        .zip(&micro)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max_diff < 1e-6,
        "{:?}: micro-batched update differs by {max_diff}",
        config.ppo.loss_aggregation
    );
    let start = embeddings(&models.policy);
    assert!(
        start.iter().zip(&full).any(|(a, b)| a != b),
        "the update changed nothing"
    );
}

/// The rollout's temperature and blocked ids reach every log-prob: at T = 0.5 the sampler's
/// log-probs equal the recomputed old ones, the reference's are computed the same way (equal
/// to the policy's before any update), the first update's ratios are 1, and no response holds
/// an id the character tokenizer cannot decode as text.
#[test]
fn temperature_and_blocked_ids_are_the_same_in_sampling_and_in_every_log_prob() {
    let device = Device::flex();
    let mut config = tiny_config("repo");
    config.rollout.temperature = 0.5;
    let (objective, models, exp) = first_rollout(&config, &device);
    let exp = exp.experience;
    let lp = &models.logit_policy;
    assert_eq!(lp.temperature, 0.5);
    // char-tiny: a head of 64 logits over a tokenizer of 50 ids; the pad id (0), `<|im_start|>`
    // (1) and `<unk>` (4) are blocked, the stop ids (`<|im_end|>` 2, `<|endoftext|>` 3) are not.
    let stop = models.encoder.stop_ids();
    let expected: Vec<u32> = [0, 1, 4].into_iter().chain(50..64).collect();
    assert_eq!(lp.blocked, expected, "stop ids {stop:?}");
    assert!(
        exp.logprob_gap < 1e-4,
        "sampler vs learner: {}",
        exp.logprob_gap
    );
    // The tempered log-probs, not the plain ones.
    let plain = models
        .policy
        .valid()
        .token_logprobs(
            Tensor::from_data(
                TensorData::new(exp.tokens.clone(), [exp.batch, exp.seq]),
                &device,
            ),
            Tensor::<2, Bool>::from_data(
                TensorData::new(exp.attention.clone(), [exp.batch, exp.seq]),
                &device,
            ),
        )
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let differs = exp
        .mask
        .iter()
        .enumerate()
        .filter(|(_, m)| **m)
        .any(|(t, _)| (plain[t] - exp.old_logprobs.values[t]).abs() > 1e-3);
    assert!(differs, "the old log-probs ignore the temperature");
    for (t, m) in exp.mask.iter().enumerate() {
        if *m {
            assert_eq!(exp.old_logprobs.values[t], exp.ref_logprobs.values[t]);
        }
    }
    let width = exp.width();
    for b in 0..exp.batch {
        for j in 0..exp.lengths[b] {
            let id = exp.tokens[b * exp.seq + exp.prompt_len + j] as u32;
            assert!(!lp.blocked.contains(&id), "row {b} token {j}: {id}");
            assert!(exp.mask[b * width + exp.prompt_len + j - 1]);
        }
    }
    // The current policy's log-probs in the update use the same distribution: ratio 1.
    let adv = saferlhf_learner::rl::advantages::estimate(&config, objective.as_ref(), &exp, 0.0);
    let rows: Vec<usize> = (0..exp.batch).collect();
    let (_, _, stats) = micro_batch_losses(
        &config,
        &models.policy,
        models.critics.as_ref(),
        &exp,
        &adv,
        &rows,
        whole(&config, &exp),
        0.0,
        &device.clone().autodiff(),
    )
    .unwrap();
    assert!(
        stats.approx_kl.abs() < 1e-6,
        "approx KL {}",
        stats.approx_kl
    );
    assert_eq!(stats.clip_fraction, 0.0);
}

/// A group rollout answers each prompt k times with independent samples, and a critic-free
/// run holds no critic.
#[test]
fn group_rollouts_sample_each_prompt_k_times_independently() {
    let device = Device::flex();
    let config = group_config("repo_group", "rloo");
    let (_, models, exp) = first_rollout(&config, &device);
    assert!(models.critics.is_none());
    let exp = exp.experience;
    assert_eq!(exp.batch, 8);
    let responses: Vec<Vec<i64>> = (0..exp.batch)
        .map(|b| {
            let start = b * exp.seq + exp.prompt_len;
            exp.tokens[start..start + exp.lengths[b]].to_vec()
        })
        .collect();
    let prompts: Vec<Vec<i64>> = (0..exp.batch)
        .map(|b| exp.tokens[b * exp.seq..b * exp.seq + exp.prompt_len].to_vec())
        .collect();
    for g in 0..2 {
        let rows = g * 4..g * 4 + 4;
        // One prompt per group ...
        assert!(rows.clone().all(|r| prompts[r] == prompts[g * 4]));
        // ... answered by different samples.
        let distinct: std::collections::BTreeSet<_> = rows.map(|r| responses[r].clone()).collect();
        assert!(distinct.len() > 1, "group {g}: {responses:?}");
    }
    assert_ne!(prompts[0], prompts[4]);
}

/// A config whose `[oracle]` names a task cannot run without the scorer that task needs: the
/// error names the key, and nothing is trained or written.
#[test]
fn an_oracle_config_without_its_scorer_is_refused() {
    let dir = saferlhf_testkit::TempDir::new("oracle-refused");
    let run = dir.0.join("run");
    let config = tiny_config_with(
        "ppo",
        &[
            "oracle.task=\"task.json\"".to_string(),
            format!("run.dir=\"{}\"", run.display()),
        ],
    );
    let options = saferlhf_learner::TrainOptions::default();
    let err = saferlhf_learner::rl::train_rl(&config, &Device::default(), &options)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("oracle.task") && err.contains("task.json"),
        "{err}"
    );
    assert!(!run.exists(), "a refused run wrote {}", run.display());
}

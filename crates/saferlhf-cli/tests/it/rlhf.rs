//! Smoke tests of `saferlhf rlhf` on configs/tiny-rlhf.toml (random tiny policy, reward and cost
//! models): every online objective runs end to end and writes its metrics; a run stopped and
//! resumed ends bit-identical to an uninterrupted one; config errors name their key.

use std::path::Path;

use crate::common::*;

const CONFIG: &str = "configs/tiny-rlhf.toml";

fn run_args<'a>(dir: &'a str, objective: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "rlhf".into(),
        "--config".into(),
        CONFIG.into(),
        "--set".into(),
        format!("run.dir={dir}"),
        "--set".into(),
        format!("objective=\"{objective}\""),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn rlhf(dir: &str, objective: &str, extra: &[&str]) -> std::process::Output {
    let args = run_args(dir, objective, extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    saferlhf(&refs)
}

#[test]
fn every_objective_runs_end_to_end_with_its_metrics() {
    let tmp = TempDir::new("rlhf-all");
    for objective in ["ppo", "ppo_lag", "repo", "reward_shaping"] {
        let run = tmp.path(objective);
        ok(&rlhf(&run, objective, &["--set", "train.steps=2"]));
        let lines = metrics(&run);
        assert_eq!(lines.len(), 2, "{objective}");
        let last = &lines[1];
        for key in [
            "step",
            "reward_mean",
            "kl",
            "entropy",
            "clip_fraction",
            "approx_kl",
            "actor_loss",
            "reward_value_loss",
            "explained_variance_reward",
            "response_length",
            "generation_tokens_per_s",
            "training_tokens_per_s",
            "generation_share",
        ] {
            assert!(last.get(key).is_some(), "{objective}: no `{key}` in {last}");
        }
        let with_cost = objective != "ppo";
        assert_eq!(last.get("cost_mean").is_some(), with_cost, "{objective}");
        assert_eq!(last.get("safety_rate").is_some(), with_cost, "{objective}");
        let has_lambda = objective != "ppo";
        assert_eq!(last.get("lambda").is_some(), has_lambda, "{objective}");
        let cost_critic = objective == "ppo_lag" || objective == "repo";
        assert_eq!(
            last.get("cost_value_loss").is_some(),
            cost_critic,
            "{objective}"
        );
        if objective == "repo" {
            assert!(last.get("rectified_violation").is_some());
        }
        assert!(Path::new(&run).join("final/model.safetensors").is_file());
        assert!(Path::new(&run).join("final/tokenizer.json").is_file());
    }
    // The memory-saving layout: value heads on the frozen reward / cost models.
    let run = tmp.path("heads");
    ok(&rlhf(
        &run,
        "ppo_lag",
        &[
            "--set",
            "train.steps=2",
            "--set",
            "ppo.critics=\"score_heads\"",
        ],
    ));
    let lines = metrics(&run);
    assert!(lines[1]["cost_value_loss"].as_f64().unwrap().is_finite());
    let critics = safetensors_tensors(
        &Path::new(&run)
            .join("checkpoints")
            .join(checkpoints(&run).last().unwrap())
            .join("critics.safetensors"),
    );
    // Two heads (weight + bias each), no backbone.
    assert_eq!(
        critics.len(),
        4,
        "{:?}",
        critics.iter().map(|c| &c.0).collect::<Vec<_>>()
    );
}

/// The critic-free estimators and the group objectives: each runs through the real binary with
/// its metrics, holds no critic, and a run stopped and resumed ends with the same weights,
/// multipliers (the per-prompt table included) and metrics as an unbroken one.
#[test]
fn critic_free_objectives_run_and_resume_exactly() {
    let tmp = TempDir::new("rlhf-group");
    let group = [
        "--set",
        "rollout.prompts_per_step=2",
        "--set",
        "rollout.group_size=4",
    ];
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "grpo",
            "ppo",
            &[
                "--set",
                "advantage.estimator=\"grpo\"",
                "--set",
                "ppo.kl_placement=\"loss\"",
                "--set",
                "ppo.loss_aggregation=\"token_mean\"",
            ],
        ),
        (
            "safe_grpo",
            "safe_grpo",
            &[
                "--set",
                "advantage.estimator=\"grpo\"",
                "--set",
                "advantage.combine=\"advantages\"",
            ],
        ),
        (
            "repo_group",
            "repo_group",
            &[
                "--set",
                "advantage.estimator=\"rloo\"",
                "--set",
                "ppo.loss_aggregation=\"constant\"",
            ],
        ),
        (
            "ppo_lag-reinforce",
            "ppo_lag",
            &["--set", "advantage.estimator=\"reinforce_pp_baseline\""],
        ),
    ];
    for (name, objective, extra) in cases {
        let run =
            |dir: &str, more: &[&str]| rlhf(dir, objective, &[&group[..], extra, more].concat());
        let straight = tmp.path(&format!("{name}-straight"));
        ok(&run(&straight, &[]));
        let split = tmp.path(&format!("{name}-split"));
        ok(&run(&split, &["--stop-at-step", "1"]));
        ok(&run(&split, &["--resume", "--stop-at-step", "3"]));
        ok(&run(&split, &["--resume"]));
        assert!(
            tensors(&format!("{straight}/final")) == tensors(&format!("{split}/final")),
            "{name}: resumed policy differs"
        );
        let last_checkpoint = Path::new(&straight)
            .join("checkpoints")
            .join(checkpoints(&straight).last().unwrap());
        assert!(
            !last_checkpoint.join("critics.safetensors").exists(),
            "{name}: a critic-free run saved critics"
        );
        let (a, b) = (metrics(&straight), metrics(&split));
        assert_eq!((a.len(), b.len()), (4, 4), "{name}");
        for (x, y) in a.iter().zip(&b) {
            for key in [
                "step",
                "lambda",
                "reward_mean",
                "actor_loss",
                "advantage_std",
            ] {
                assert_eq!(x.get(key), y.get(key), "{name}: {key}");
            }
            assert!(x.get("reward_value_loss").is_none(), "{name}");
            assert!(x["frac_reward_zero_std"].as_f64().is_some(), "{name}");
        }
        let last = &a[3];
        match objective {
            "ppo" => assert!(last["kl_loss"].as_f64().unwrap() >= 0.0, "{last}"),
            "safe_grpo" => {
                let (r, c) = (last["lambda_reward"].as_f64(), last["lambda_cost"].as_f64());
                assert!((r.unwrap() + c.unwrap() - 1.0).abs() < 1e-9, "{last}");
            }
            "repo_group" => {
                for key in [
                    "lambda_prompt_mean",
                    "lambda_at_cap",
                    "table_size",
                    "violating_groups",
                ] {
                    assert!(last.get(key).is_some(), "no `{key}` in {last}");
                }
                let state: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(last_checkpoint.join("state.json")).unwrap(),
                )
                .unwrap();
                let table = &state["objective"]["table"]["entries"];
                assert!(table.as_object().is_some_and(|t| !t.is_empty()), "{state}");
            }
            _ => {}
        }
        for x in &a {
            assert_eq!(
                x["groups_with_violation"].is_number(),
                objective != "ppo",
                "{name}"
            );
        }
    }
    // A group objective without a group estimator is refused, naming the key.
    let err = failed(&rlhf(&tmp.path("bad"), "repo_group", &group));
    assert!(err.contains("advantage.estimator"), "{err}");
    let err = failed(&rlhf(
        &tmp.path("bad2"),
        "ppo",
        &["--set", "advantage.estimator=\"rloo\""],
    ));
    assert!(err.contains("rollout.group_size"), "{err}");
}

#[test]
fn a_stopped_and_resumed_run_ends_with_the_same_weights() {
    let tmp = TempDir::new("rlhf-resume");
    // The third run adds the PTX stream and the adaptive KL controller, whose positions and β
    // a checkpoint must carry.
    let guards = [
        "--set",
        "ptx.sources=[{format = \"sft\", path = \"tests/fixtures/tiny-sft.jsonl\"}]",
        "--set",
        "ptx.batch_size=3",
        "--set",
        "ppo.kl_target=0.05",
    ];
    for (name, objective, extra) in [
        ("repo", "repo", &[][..]),
        ("ppo_lag", "ppo_lag", &[][..]),
        ("repo-ptx-kl", "repo", &guards[..]),
    ] {
        let run = |dir: &str, more: &[&str]| rlhf(dir, objective, &[extra, more].concat());
        let straight = tmp.path(&format!("{name}-straight"));
        ok(&run(&straight, &[]));
        let split = tmp.path(&format!("{name}-split"));
        let err = ok(&run(&split, &["--stop-at-step", "1"]));
        assert!(err.contains("stopped early"), "{err}");
        assert!(!Path::new(&split).join("final").exists());
        // Starting again without --resume refuses to overwrite.
        let err = failed(&run(&split, &[]));
        assert!(err.contains("--resume"), "{err}");
        ok(&run(&split, &["--resume", "--stop-at-step", "3"]));
        ok(&run(&split, &["--resume"]));
        assert!(
            tensors(&format!("{straight}/final")) == tensors(&format!("{split}/final")),
            "{objective}: resumed policy differs"
        );
        let last = |run: &str| {
            let c = checkpoints(run);
            safetensors_tensors(
                &Path::new(run)
                    .join("checkpoints")
                    .join(c.last().unwrap())
                    .join("critics.safetensors"),
            )
        };
        assert!(
            last(&straight) == last(&split),
            "{objective}: critics differ"
        );
        // The metrics of the resumed run continue the step count and agree with the straight
        // run on the multiplier.
        let (a, b) = (metrics(&straight), metrics(&split));
        assert_eq!(a.len(), 4);
        assert_eq!(b.len(), 4);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x["step"], y["step"]);
            assert_eq!(x["lambda"], y["lambda"], "{name}");
            assert_eq!(x["reward_mean"], y["reward_mean"], "{name}");
            assert_eq!(x["kl_coeff"], y["kl_coeff"], "{name}");
            assert_eq!(x.get("ptx_loss"), y.get("ptx_loss"), "{name}");
        }
        if name == "repo-ptx-kl" {
            assert!(a.iter().all(|x| x["ptx_loss"].as_f64().unwrap() > 0.0));
            // β starts at ppo.kl_coeff and moves with the controller.
            let betas: Vec<f64> = a.iter().map(|x| x["kl_coeff"].as_f64().unwrap()).collect();
            assert!(betas.windows(2).any(|w| w[0] != w[1]), "{betas:?}");
        } else {
            assert!(a.iter().all(|x| x.get("ptx_loss").is_none()), "{name}");
        }
    }
}

/// `[lora]`: a run trains adapters only. Its checkpoints hold `adapter/` (PEFT's layout) and no
/// full model, `final/` is the merged model, in which only the targeted projections moved, and a
/// stopped and resumed run ends with the same weights as a straight one.
#[test]
fn a_lora_run_trains_adapters_only_and_resumes_exactly() {
    let tmp = TempDir::new("rlhf-lora");
    let qv = [
        "--set",
        "lora.rank=4",
        "--set",
        "lora.targets=[\"q_proj\", \"v_proj\"]",
    ];
    let run = |dir: &str, more: &[&str]| rlhf(dir, "repo", &[&qv[..], more].concat());
    let straight = tmp.path("straight");
    ok(&run(&straight, &[]));
    let split = tmp.path("split");
    ok(&run(&split, &["--stop-at-step", "1"]));
    ok(&run(&split, &["--resume", "--stop-at-step", "3"]));
    ok(&run(&split, &["--resume"]));
    let final_qv = tensors(&format!("{straight}/final"));
    assert!(
        final_qv == tensors(&format!("{split}/final")),
        "resumed LoRA policy differs"
    );
    for c in checkpoints(&straight) {
        let dir = Path::new(&straight).join("checkpoints").join(c);
        assert!(dir.join("adapter/adapter_model.safetensors").is_file());
        assert!(dir.join("adapter/adapter_config.json").is_file());
        assert!(
            !dir.join("model").exists(),
            "a LoRA checkpoint holds no full model"
        );
        let names: Vec<String> =
            safetensors_tensors(&dir.join("adapter/adapter_model.safetensors"))
                .into_iter()
                .map(|(n, _)| n)
                .collect();
        assert!(!names.is_empty());
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("base_model.model.model.layers.")
                    && (n.contains(".q_proj.lora_") || n.contains(".v_proj.lora_"))),
            "{names:?}"
        );
    }
    // Another target set from the same initial policy: the projections neither run adapts are
    // bit-identical in both exports; the adapted ones moved.
    let o = tmp.path("o");
    ok(&rlhf(
        &o,
        "repo",
        &["--set", "lora.rank=4", "--set", "lora.targets=[\"o_proj\"]"],
    ));
    let final_o = tensors(&format!("{o}/final"));
    assert_eq!(final_qv.len(), final_o.len());
    let mut moved = Vec::new();
    for ((name, a), (name_b, b)) in final_qv.iter().zip(&final_o) {
        assert_eq!(name, name_b);
        if a != b {
            moved.push(name.clone());
        }
    }
    assert!(!moved.is_empty());
    assert!(
        moved
            .iter()
            .all(|n| n.contains("q_proj") || n.contains("v_proj") || n.contains("o_proj")),
        "{moved:?}"
    );
    for proj in ["q_proj", "v_proj", "o_proj"] {
        assert!(moved.iter().any(|n| n.contains(proj)), "{proj}: {moved:?}");
    }
}

/// `frozen_precision`: the reference, reward and cost models held in bf16 or f16 give a run
/// whose metrics stay close to the f32 one. At step 1 the policy is the reference, so the KL
/// measures the precision alone (measured: 0 in f32, 1.3e-3 in bf16, 5.5e-5 in f16).
#[test]
fn half_precision_frozen_models_stay_close_to_f32() {
    let tmp = TempDir::new("rlhf-precision");
    let mut runs = Vec::new();
    for p in ["f32", "bf16", "f16"] {
        let run = tmp.path(p);
        let set = format!("frozen_precision=\"{p}\"");
        ok(&rlhf(
            &run,
            "repo",
            &["--set", &set, "--set", "train.steps=2"],
        ));
        runs.push(metrics(&run));
    }
    let at = |r: usize, step: usize, key: &str| runs[r][step][key].as_f64().unwrap();
    assert_eq!(at(0, 0, "kl"), 0.0);
    for (r, kl_tol, tol) in [(1, 5e-3, 2e-3), (2, 5e-4, 2e-4)] {
        let kl = at(r, 0, "kl");
        assert!(kl.abs() <= kl_tol, "run {r}: step-1 KL {kl}");
        for key in ["reward_mean", "cost_mean", "lambda"] {
            for step in 0..2 {
                let (a, b) = (at(0, step, key), at(r, step, key));
                assert!(
                    (a - b).abs() <= tol,
                    "run {r} step {step} {key}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn bad_rl_configs_name_the_key() {
    let tmp = TempDir::new("rlhf-bad");
    let run = tmp.path("bad");
    for (set, key) in [
        ("ppo.clip_ratio=0", "ppo.clip_ratio"),
        ("lagrange.window=0", "lagrange.window"),
        ("ppo.kl_coeff=-0.1", "ppo.kl_coeff"),
        ("repo.margin=-1", "repo.margin"),
        ("ppo.clip=0.2", "clip"),
        ("rollout.top_k=5", "rollout.top_k"),
        ("rollout.top_p=0.9", "rollout.top_p"),
        (
            "rollout.truncation_penalty=-1",
            "rollout.truncation_penalty",
        ),
        ("ppo.kl_target=0", "ppo.kl_target"),
        (
            "ptx.sources=[{format = \"pku\", path = \"x\"}]",
            "ptx.sources.0.format",
        ),
        ("policy.max_prompt_length=48", "policy.max_length"),
        ("lora.targets=[\"qkv\"]", "lora.targets"),
        ("lora.rnk=4", "lora.rnk"),
        ("frozen_precision=\"fp8\"", "frozen_precision"),
    ] {
        let err = failed(&rlhf(&run, "repo", &["--set", set]));
        assert!(err.contains(key), "{set}: {err}");
    }
    let err = failed(&rlhf(
        &run,
        "repo",
        &["--set", "data.sources.0.path=nope.txt"],
    ));
    assert!(err.contains("nope.txt"), "{err}");
    let err = failed(&rlhf(
        &run,
        "repo",
        &[
            "--set",
            "run.device=\"wgpu\"",
            "--set",
            "frozen_precision=\"bf16\"",
        ],
    ));
    assert!(
        err.contains("frozen_precision") && err.contains("WGSL"),
        "{err}"
    );
}

//! Smoke tests of `saferlhf bench compensation --quick` (the whole pipeline, metric-free) and
//! `saferlhf eval` on its outputs, plus argument errors that name the argument.

use std::path::Path;

use crate::common::{TempDir, assert_mentions, cli, failed, metrics, ok, saferlhf};

use saferlhf::bench::compensation::{BENCH_SECTIONS, METHODS};
use saferlhf::eval::MARKDOWN_SECTIONS;
use saferlhf::learner::rl::RlConfig;

fn assert_svg(path: &Path) {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = roxmltree::Document::parse(&s)
        .unwrap_or_else(|e| panic!("{} is not valid XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn quick_benchmark_then_eval_write_complete_reports() {
    let tmp = TempDir::new("quick");
    let out = tmp.0.join("bench");
    let o = saferlhf(&["bench", "compensation", "--quick", "--out", &p(&out)]);
    ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    for m in METHODS {
        assert!(
            stdout.contains(&format!("| {m} |")),
            "{m} missing: {stdout}"
        );
    }
    assert!(stdout.contains("Analytic optima"), "{stdout}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["methods"].as_array().unwrap().len(), METHODS.len());
    // Four problems (unconstrained, expected, per-prompt, critical) × two policy classes.
    assert_eq!(json["optima"].as_array().unwrap().len(), 8);
    // Learned-model mode logs the oracle's view of the rollouts beside the learned scores.
    let ppo = std::fs::read_to_string(out.join("seed-0/ppo/metrics.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(ppo.lines().next().unwrap()).unwrap();
    for key in [
        "reward_mean",
        "oracle_reward_mean",
        "truncated_rate",
        "logprob_gap",
        "kl_coeff",
    ] {
        assert!(first[key].is_number(), "{key} missing: {first}");
    }
    assert!(json["pooled"]["arena"].is_object());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for h in BENCH_SECTIONS {
        assert!(md.contains(&format!("{h}\n")), "section {h:?} missing");
    }
    for h in MARKDOWN_SECTIONS {
        assert!(
            md.contains(&format!("#{h}\n")),
            "pooled section {h:?} missing"
        );
    }
    for svg in [
        "cost_histogram.svg",
        "reward_cost.svg",
        "violation_bounds.svg",
        "training_curves.svg",
    ] {
        assert!(md.contains(svg), "{svg} not linked");
        assert_svg(&out.join(svg));
    }
    // A second run into the same directory refuses to mix results.
    let err = failed(&cli(&format!(
        "bench compensation --quick --out {out}",
        out = p(&out)
    )));
    assert!(err.contains("--out"), "{err}");

    // `saferlhf eval` on the benchmark's policies with the oracle, a reference, a comparison
    // policy and training metrics.
    let seed = out.join("seed-0");
    let task = seed.join("task");
    let eval_out = tmp.0.join("eval");
    let o = saferlhf(&[
        "eval",
        "--policy",
        &p(&seed.join("repo/final")),
        "--prompts",
        &p(&task.join("prompts-eval.txt")),
        "--oracle",
        &p(&task.join("task.json")),
        "--reference",
        &p(&seed.join("sft/final")),
        "--compare",
        &p(&seed.join("ppo_lag/final")),
        "--metrics",
        &p(&seed.join("repo/metrics.jsonl")),
        "--samples",
        "2",
        "--max-new-tokens",
        "8",
        "--out",
        &p(&eval_out),
    ]);
    ok(&o);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(eval_out.join("report.json")).unwrap())
            .unwrap();
    let methods = report["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 4, "sampled and greedy of both policies");
    assert!(methods[0]["kl"].is_object(), "KL against the reference");
    assert!(
        methods[0]["over_restriction"].is_object(),
        "oracle refusal flags"
    );
    assert!(report["arena"].is_object());
    let md = std::fs::read_to_string(eval_out.join("report.md")).unwrap();
    for h in MARKDOWN_SECTIONS {
        assert!(md.contains(h), "{h} missing");
    }
    for svg in [
        "cost_histogram.svg",
        "reward_cost.svg",
        "training_curves.svg",
    ] {
        assert_svg(&eval_out.join(svg));
    }
    let samples = std::fs::read_to_string(eval_out.join("samples.jsonl")).unwrap();
    assert!(samples.lines().count() > 0);

    // Prompts the oracle does not know are named as the fault.
    let foreign = tmp.0.join("foreign.txt");
    std::fs::write(&foreign, "what is the capital of france?\n").unwrap();
    let err = failed(&saferlhf(&[
        "eval",
        "--policy",
        &p(&seed.join("sft/final")),
        "--prompts",
        &p(&foreign),
        "--oracle",
        &p(&task.join("task.json")),
        "--out",
        &p(&tmp.0.join("eval2")),
    ]));
    assert_mentions(&err, &["--prompts", "not a prompt"]);
    // A policy directory that is not one.
    let err = failed(&saferlhf(&[
        "eval",
        "--policy",
        &p(&task),
        "--prompts",
        &p(&task.join("prompts-eval.txt")),
        "--oracle",
        &p(&task.join("task.json")),
        "--out",
        &p(&tmp.0.join("eval3")),
    ]));
    assert!(err.contains("--policy"), "{err}");
}

#[test]
fn bad_arguments_name_the_argument() {
    let tmp = TempDir::new("args");
    let prompts = tmp.0.join("prompts.txt");
    std::fs::write(&prompts, "tell me about bread.\n").unwrap();
    let missing = tmp.0.join("missing");
    let base = |extra: &[&str]| -> String {
        let mut args = vec![
            "eval".to_string(),
            "--policy".into(),
            p(&missing),
            "--prompts".into(),
            p(&prompts),
            "--out".into(),
            p(&tmp.0.join("out")),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        failed(&saferlhf(&args))
    };
    let err = base(&[]);
    assert_mentions(&err, &["--reward-model", "--oracle"]);
    let err = base(&["--reward-model", "x"]);
    assert!(err.contains("--cost-model"), "{err}");
    let err = base(&[
        "--oracle",
        "a.json",
        "--reward-model",
        "x",
        "--cost-model",
        "y",
    ]);
    assert!(err.contains("--oracle cannot be combined"), "{err}");
    let err = base(&["--oracle", &p(&tmp.0.join("nope.json"))]);
    assert!(err.contains("--oracle"), "{err}");
    let err = base(&["--oracle", "x", "--samples", "0"]);
    assert!(err.contains("--samples"), "{err}");
    let err = base(&["--oracle", "x", "--temperature", "0"]);
    assert!(err.contains("--temperature"), "{err}");
    let err = base(&["--reward-model", &p(&missing), "--cost-model", &p(&missing)]);
    assert_mentions(&err, &["--reward-model", "not a directory"]);

    // `bench compensation --quick` with two more arguments, into a new directory.
    let bench = |flag: &str, value: &str| {
        let out = p(&tmp.0.join(flag.trim_start_matches('-')));
        failed(&saferlhf(&[
            "bench",
            "compensation",
            "--quick",
            flag,
            value,
            "--out",
            &out,
        ]))
    };
    let err = bench("--seeds", "0");
    assert!(err.contains("--seeds"), "{err}");
    let err = bench("--preset", "huge");
    assert_mentions(&err, &["preset", "huge"]);
    // A --set of a setting the benchmark does not have names it (and lists the known ones).
    let err = bench("--set", "kl=0");
    assert_mentions(&err, &["--set", "unknown field `kl`", "kl_coeff"]);
}

/// Oracle mode from the CLI: the RL methods train on the oracle's scores (the learned models'
/// are logged as `model_*`), and the report says so and checks PPO against the unconstrained
/// optimum.
#[test]
fn quick_benchmark_in_oracle_mode() {
    let tmp = TempDir::new("oracle");
    let out = tmp.0.join("bench");
    let o = cli(&format!(
        "bench compensation --quick --oracle-rl --out {}",
        p(&out)
    ));
    ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("against the unconstrained optimum"),
        "{stdout}"
    );
    assert!(stdout.contains("on the training prompts"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["settings"]["oracle_rl"], true);
    assert_eq!(
        json["methods_train_prompts"].as_array().unwrap().len(),
        METHODS.len()
    );
    for method in ["ppo", "ppo_lag", "repo", "grpo", "safe_grpo", "repo_group"] {
        let text =
            std::fs::read_to_string(out.join(format!("seed-0/{method}/metrics.jsonl"))).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["model_reward_mean"].is_number(), "{method}: {v}");
            assert!(v.get("oracle_reward_mean").is_none(), "{method}: {v}");
        }
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("Oracle mode"), "{md}");
    assert!(md.contains("| unconstrained | per_topic |"), "{md}");

    // A run's config.toml names its oracle, so `saferlhf rlhf` reproduces the run from it: the
    // same config and seed give the same first step, metric for metric (time aside).
    let config = out.join("seed-0/ppo/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("[oracle]") && text.contains("role = \"train\""),
        "{text}"
    );
    let again = tmp.0.join("again");
    let o = saferlhf(&[
        "rlhf",
        "--config",
        &p(&config),
        "--set",
        &format!("run.dir={:?}", p(&again)),
        "--set",
        "train.steps=1",
        "--set",
        "run.progress=false",
    ]);
    ok(&o);
    let first = |run: &Path| metrics(run).swap_remove(0);
    let (a, b) = (first(&out.join("seed-0/ppo")), first(&again));
    assert!(b["model_reward_mean"].is_number(), "{b}");
    for key in [
        "reward_mean",
        "model_reward_mean",
        "actor_loss",
        "kl",
        "entropy",
    ] {
        assert_eq!(a[key], b[key], "{key}: {a} vs {b}");
    }
    // Without the [oracle] section the same config trains on the learned reward model: the
    // first step's reward is then the model's, which the oracle run logged (raw, before the
    // truncation penalty) as model_reward_mean.
    let plain = tmp.0.join("plain.toml");
    let without: String = text.split("\n[oracle]").next().unwrap().to_string();
    std::fs::write(&plain, without).unwrap();
    let o = saferlhf(&[
        "rlhf",
        "--config",
        &p(&plain),
        "--set",
        &format!("run.dir={:?}", p(&tmp.0.join("plain"))),
        "--set",
        "train.steps=1",
    ]);
    ok(&o);
    let c = first(&tmp.0.join("plain"));
    let penalty = RlConfig::load(&config, &[])
        .unwrap()
        .rollout
        .truncation_penalty;
    let f = |v: &serde_json::Value, key: &str| v[key].as_f64().unwrap();
    let want = f(&a, "model_reward_mean") - penalty * f(&a, "truncated_rate");
    assert!((f(&c, "reward_mean") - want).abs() < 1e-6, "{c} vs {a}");
}

//! End-to-end tests of the training machinery on the char-tiny preset: learning a rule, exact
//! resume for all three tasks, config errors that name their key, crash leftovers, and a cost
//! model on the real HH-RLHF harmless data when it is present.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use saferlhf_testkit::TempDir;

use burn::tensor::Device;
use saferlhf_learner::checkpoint::{
    CHECKPOINTS_DIR, FINAL_DIR, METRICS_FILE, checkpoint_steps, list_checkpoints,
};
use saferlhf_learner::rng::SplitMix64;
use saferlhf_learner::{
    Resume, SessionConfig, TaskKind, TrainConfig, TrainError, TrainOptions, train,
};

const WORDS: [&str; 12] = [
    "apple", "river", "stone", "cloud", "green", "quiet", "light", "table", "sun", "bird", "road",
    "tree",
];

/// A synthetic PKU-SafeRLHF file: the better (and safer, labelled safe) response contains the
/// word "good", the other one "bad", each among 2-4 random words.
fn write_rule_pairs(path: &Path, n: usize, seed: u64) {
    let mut rng = SplitMix64::new(seed);
    let pick = |rng: &mut SplitMix64| WORDS[rng.below(WORDS.len() as u64) as usize];
    let mut lines = String::new();
    for i in 0..n {
        let response = |tag: &str, rng: &mut SplitMix64| {
            let k = 2 + rng.below(3) as usize;
            let mut ws: Vec<&str> = (0..k).map(|_| pick(rng)).collect();
            let at = rng.below(k as u64 + 1) as usize;
            ws.insert(at, tag);
            format!("{}.", ws.join(" "))
        };
        let good = response("good", &mut rng);
        let bad = response("bad", &mut rng);
        let better = rng.below(2);
        let (r0, r1) = if better == 0 {
            (good, bad)
        } else {
            (bad, good)
        };
        let prompt = format!("question {i}: what about the {}?", pick(&mut rng));
        let row = serde_json::json!({
            "prompt": prompt, "response_0": r0, "response_1": r1,
            "better_response_id": better, "safer_response_id": better,
            "is_response_0_safe": better == 0, "is_response_1_safe": better == 1,
        });
        lines.push_str(&row.to_string());
        lines.push('\n');
    }
    std::fs::write(path, lines).unwrap();
}

fn write_sft(path: &Path, n: usize) {
    let mut rng = SplitMix64::new(3);
    let mut lines = String::new();
    for _ in 0..n {
        let a = WORDS[rng.below(12) as usize];
        let b = WORDS[rng.below(12) as usize];
        let row = serde_json::json!({"prompt": format!("say {a} then {b}"), "response": format!("{a} {b}.")});
        lines.push_str(&row.to_string());
        lines.push('\n');
    }
    std::fs::write(path, lines).unwrap();
}

fn config(task: TaskKind, data: &Path, run: &Path, extra: &str) -> TrainConfig {
    let format = if task == TaskKind::Sft { "sft" } else { "pku" };
    let text = format!(
        r#"
        [run]
        dir = "{run}"
        seed = 11
        progress = false
        [model]
        preset = "char-tiny"
        template = "raw"
        max_length = 64
        [data]
        eval_fraction = 0.2
        [[data.sources]]
        format = "{format}"
        path = "{data}"
        [optim]
        lr = 3e-3
        weight_decay = 0.01
        warmup_ratio = 0.1
        {extra}
        "#,
        run = run.display(),
        data = data.display(),
    );
    TrainConfig::from_toml_str(&text, Path::new("test.toml"), &[], Some(task)).unwrap()
}

fn device() -> Device {
    Device::flex()
}

/// All tensors of a safetensors file, by name, as raw bytes.
fn tensors(path: &Path) -> BTreeMap<String, Vec<u8>> {
    saferlhf_testkit::safetensors_tensors(path)
        .into_iter()
        .collect()
}

/// A temporary directory `name` holding `n` rule pairs (seed `seed`) in `pairs.jsonl`.
fn rule_pairs(name: &str, n: usize, seed: u64) -> (TempDir, std::path::PathBuf) {
    let tmp = TempDir::new(name);
    let data = tmp.0.join("pairs.jsonl");
    write_rule_pairs(&data, n, seed);
    (tmp, data)
}

#[test]
fn reward_model_learns_a_rule_to_high_held_out_accuracy() {
    let (tmp, data) = rule_pairs("train-rule", 300, 1);
    let run = tmp.0.join("run");
    let cfg = config(
        TaskKind::Reward,
        &data,
        &run,
        "[train]\nmax_steps = 60\nbatch_size = 16\neval_every = 30\ncheckpoint_every = 0\n",
    );
    let started = std::time::Instant::now();
    let summary = train(&cfg, &device(), &TrainOptions::default()).unwrap();
    let eval = summary.eval.clone().expect("a final evaluation");
    let accuracy = eval["accuracy"].as_f64().unwrap();
    eprintln!(
        "held-out pair accuracy {accuracy:.3} on {} pairs after {} steps in {:.1} s",
        eval["pairs"],
        summary.step,
        started.elapsed().as_secs_f64()
    );
    assert!(summary.finished && summary.step == 60);
    assert!(summary.data.eval >= 50, "{:?}", summary.data);
    assert!(accuracy >= 0.9, "held-out accuracy {accuracy}");
    // One metrics line per step, with an eval object on steps 30 and 60.
    let text = std::fs::read_to_string(run.join(METRICS_FILE)).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 60);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["step"], i as u64 + 1);
        for key in [
            "lr",
            "loss",
            "accuracy",
            "grad_norm",
            "tokens_per_s",
            "seconds",
        ] {
            assert!(l[key].is_number(), "line {i} lacks {key}: {l}");
        }
        assert_eq!(l.get("eval").is_some(), i + 1 == 30 || i + 1 == 60);
    }
    // The final model loads and scores like the run's final evaluation.
    let final_dir = run.join(FINAL_DIR);
    let (_, model, encoder) =
        saferlhf_learner::models::load_score_model::<saferlhf_model::Reward>(&final_dir, &device())
            .unwrap();
    let scores = saferlhf_learner::scoring::score_texts(
        &burn::module::Module::valid(&model),
        &encoder,
        &[
            (
                "question 0: what about the sun?".into(),
                "good apple tree.".into(),
            ),
            (
                "question 0: what about the sun?".into(),
                "bad apple tree.".into(),
            ),
        ],
        2,
        &device(),
    )
    .unwrap();
    assert!(scores[0] > scores[1], "{scores:?}");
}

/// Trains `steps` straight, and `stop` steps + resume to `steps`, and checks the final weights
/// are bit-identical. Also plants a leftover temporary checkpoint directory before resuming.
fn resume_is_exact(task: TaskKind, extra: &str) {
    let tmp = TempDir::new(&format!("train-resume-{task}"));
    let data = tmp.0.join("data.jsonl");
    if task == TaskKind::Sft {
        write_sft(&data, 40);
    } else {
        write_rule_pairs(&data, 40, 2);
    }
    // 32 training examples, 2 micro-batches of 6 per step: steps cross epoch boundaries and
    // end epochs with short batches.
    let train_keys = format!(
        "[train]\nmax_steps = 8\nbatch_size = 6\ngrad_accum = 2\neval_every = 4\n\
         checkpoint_every = 4\nkeep_last = 5\n{extra}"
    );
    let straight = tmp.0.join("straight");
    let a = train(
        &config(task, &data, &straight, &train_keys),
        &device(),
        &TrainOptions::default(),
    )
    .unwrap();
    assert!(a.finished);

    let split = tmp.0.join("split");
    let cfg = config(task, &data, &split, &train_keys);
    let first = train(
        &cfg,
        &device(),
        &TrainOptions {
            stop_at_step: Some(3),
            ..TrainOptions::default()
        },
    )
    .unwrap();
    assert!(!first.finished && first.step == 3);
    let steps = checkpoint_steps(&split).unwrap();
    assert_eq!(steps, vec![3], "a stop leaves a checkpoint");
    // Starting again without --resume refuses to clobber the run.
    let err = train(&cfg, &device(), &TrainOptions::default()).unwrap_err();
    assert!(err.to_string().contains("run.dir"), "{err}");
    // A crash mid-write of the next checkpoint left a temporary directory: ignored.
    let leftover = split.join(CHECKPOINTS_DIR).join(".tmp-step-00000004-99");
    std::fs::create_dir_all(leftover.join("model")).unwrap();
    std::fs::write(leftover.join("model/model.safetensors"), b"half written").unwrap();
    let second = train(
        &cfg,
        &device(),
        &TrainOptions {
            resume: Some(Resume::Latest),
            ..TrainOptions::default()
        },
    )
    .unwrap();
    assert!(second.finished && second.step == 8);
    assert!(!leftover.exists());
    let weights = |run: &Path| tensors(&run.join(FINAL_DIR).join("model.safetensors"));
    let (wa, wb) = (weights(&straight), weights(&split));
    assert_eq!(wa.keys().collect::<Vec<_>>(), wb.keys().collect::<Vec<_>>());
    for (name, bytes) in &wa {
        assert!(
            bytes == &wb[name],
            "{task}: tensor {name} differs after resume"
        );
    }
    // The metrics log holds each step once, and the same losses as the straight run.
    let losses = |run: &Path| -> Vec<(u64, f64)> {
        std::fs::read_to_string(run.join(METRICS_FILE))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
            })
            .collect()
    };
    assert_eq!(losses(&straight), losses(&split));
    let steps = checkpoint_steps(&split).unwrap();
    assert_eq!(steps, vec![3, 4, 8]);
}

#[test]
fn reward_resume_is_bit_exact() {
    resume_is_exact(TaskKind::Reward, "");
}

#[test]
fn cost_resume_is_bit_exact() {
    resume_is_exact(TaskKind::Cost, "");
}

#[test]
fn sft_resume_is_bit_exact() {
    resume_is_exact(TaskKind::Sft, "");
}

#[test]
fn resume_refuses_a_changed_config_and_a_corrupt_checkpoint() {
    let (tmp, data) = rule_pairs("train-refuse", 40, 4);
    let run = tmp.0.join("run");
    let keys = "[train]\nmax_steps = 4\nbatch_size = 8\ncheckpoint_every = 2\n";
    let cfg = config(TaskKind::Reward, &data, &run, keys);
    train(
        &cfg,
        &device(),
        &TrainOptions {
            stop_at_step: Some(2),
            ..TrainOptions::default()
        },
    )
    .unwrap();
    let resume = TrainOptions {
        resume: Some(Resume::Latest),
        ..TrainOptions::default()
    };
    // A different learning rate would not continue the same run.
    let mut changed = cfg.clone();
    changed.optim.lr = 1e-3;
    let err = train(&changed, &device(), &resume).unwrap_err().to_string();
    assert!(err.contains("optim.lr"), "{err}");
    // Evaluation and checkpoint cadence may change.
    let mut cadence = cfg.clone();
    cadence.train.eval_every = 1;
    cadence.train.keep_last = 3;
    assert!(cadence.resume_conflicts(&cfg).is_empty());
    // A corrupt optimizer file is an error naming it, not a silent restart.
    let ckpt = list_checkpoints(&run).unwrap().pop().unwrap().1;
    std::fs::write(ckpt.join("optimizer.bpk"), b"garbage").unwrap();
    let err = train(&cfg, &device(), &resume).unwrap_err();
    assert!(matches!(err, TrainError::Checkpoint { .. }), "{err:?}");
    assert!(err.to_string().contains("optimizer.bpk"), "{err}");
    // Resuming a run without checkpoints says so.
    let empty = config(TaskKind::Reward, &data, &tmp.0.join("empty"), keys);
    let err = train(&empty, &device(), &resume).unwrap_err().to_string();
    assert!(err.contains("no complete checkpoint"), "{err}");
}

#[test]
fn config_errors_name_the_key() {
    let base = r#"
        task = "reward"
        [model]
        preset = "char-tiny"
        [[data.sources]]
        format = "pku"
        path = "x.jsonl"
    "#;
    let load = |text: &str, sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        TrainConfig::from_toml_str(text, Path::new("cfg.toml"), &sets, Some(TaskKind::Reward))
    };
    let ok = load(base, &[]).unwrap();
    assert_eq!(ok.optim.beta2, 0.95);
    assert_eq!(ok.train.batch_size, 16);
    // Unknown keys, in the file and through --set.
    let err = load(&format!("{base}\n[optim]\nlrr = 1.0\n"), &[]).unwrap_err();
    assert!(err.to_string().contains("lrr"), "{err}");
    assert!(err.to_string().contains("cfg.toml"), "{err}");
    let err = load(base, &["train.batchsize=4"]).unwrap_err();
    assert!(err.to_string().contains("`train.batchsize`"), "{err}");
    let err = load(base, &["data.sources.0.pth=x"]).unwrap_err();
    assert!(err.to_string().contains("`data.sources.0.pth`"), "{err}");
    let err = load("bogus = 1\n", &[]).unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
    // Out-of-range values.
    for (set, key) in [
        ("optim.lr=0", "optim.lr"),
        ("optim.lr=-1e-3", "optim.lr"),
        ("train.batch_size=0", "train.batch_size"),
        ("train.grad_accum=0", "train.grad_accum"),
        ("optim.warmup_ratio=1.5", "optim.warmup_ratio"),
        ("data.eval_fraction=0", "data.eval_fraction"),
        ("data.eval_fraction=1.0", "data.eval_fraction"),
        ("optim.beta2=1.0", "optim.beta2"),
        ("model.max_length=2", "model.max_length"),
        ("train.keep_last=0", "train.keep_last"),
        ("model.template=chatmlx", "model.template"),
        ("data.sources.0.format=\"sft\"", "data.sources.0.format"),
        ("model.init=x.gguf", "model.preset"),
        (
            "data.sources.0.safe_threshold=0.3",
            "data.sources.0.safe_threshold",
        ),
        (
            "data.sources.0.hh_prompt=\"common-prefix\"",
            "data.sources.0.hh_prompt",
        ),
    ] {
        let err = load(base, &[set]).unwrap_err().to_string();
        assert!(err.contains(key), "--set {set}: {err}");
    }
    // Wrong type, bad override syntax, a task mismatch.
    let err = load(base, &["optim.lr=fast"]).unwrap_err().to_string();
    assert!(err.contains("lr"), "{err}");
    assert!(load(base, &["optim.lr"]).is_err());
    let err = load(base, &["data.sources.3.path=y"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("out of range"), "{err}");
    let err = TrainConfig::from_toml_str(base, Path::new("c"), &[], Some(TaskKind::Cost))
        .unwrap_err()
        .to_string();
    assert!(err.contains("task"), "{err}");
    // Overrides reach nested keys and array entries; the resolved config round-trips.
    let c = load(
        base,
        &[
            "optim.lr=1e-4",
            "run.dir=runs/x",
            "data.sources.0.path=y.jsonl",
            "train.max_steps=5",
        ],
    )
    .unwrap();
    assert_eq!(c.optim.lr, 1e-4);
    assert_eq!(c.run.dir, PathBuf::from("runs/x"));
    assert_eq!(c.data.sources[0].path, PathBuf::from("y.jsonl"));
    assert_eq!(c.train.max_steps, Some(5));
    let again = TrainConfig::from_toml_str(&c.to_toml(), Path::new("r"), &[], None).unwrap();
    assert_eq!(again, c);
}

#[test]
fn offset_and_limit_cut_a_source_into_disjoint_parts() {
    let (tmp, data) = rule_pairs("train-offset", 50, 5);
    // The same file twice: pairs 0..20, then pairs 20..50 (offset past the end would give 0).
    let extra = format!(
        r#"
        [[data.sources]]
        format = "pku"
        path = "{data}"
        offset = 20
        [train]
        max_steps = 1
        batch_size = 4
        "#,
        data = data.display()
    );
    let mut c = config(TaskKind::Reward, &data, &tmp.0.join("run"), &extra);
    c.data.sources[0].limit = Some(20);
    let summary = train(&c, &device(), &TrainOptions::default()).unwrap();
    assert_eq!(summary.data.per_source, vec![20, 30]);
    // No prompt of the first part is in the second: every example is counted once.
    assert_eq!(summary.data.train + summary.data.eval_total, 50);
    assert_eq!(summary.data.dropped_identical, 0);
}

#[test]
fn shipped_configs_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (file, task) in [
        ("configs/sft.toml", TaskKind::Sft),
        ("configs/reward.toml", TaskKind::Reward),
        ("configs/cost.toml", TaskKind::Cost),
        ("configs/tiny-sft.toml", TaskKind::Sft),
        ("configs/tiny-reward.toml", TaskKind::Reward),
        ("configs/tiny-cost.toml", TaskKind::Cost),
        ("configs/real-reward.toml", TaskKind::Reward),
        ("configs/real-cost-train.toml", TaskKind::Cost),
        ("configs/real-cost-eval.toml", TaskKind::Cost),
    ] {
        let c = TrainConfig::load(&root.join(file), &[], Some(task))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(c.task(), task);
    }
}

#[test]
fn tiny_cost_model_trains_on_hh_rlhf_harmless() {
    let Some(hh) = saferlhf_testkit::hh_harmless_test() else {
        return;
    };
    let tmp = TempDir::new("train-hh");
    let text = format!(
        r#"
        task = "cost"
        [run]
        dir = "{run}"
        progress = false
        [model]
        preset = "char-tiny"
        template = "chatml"
        max_length = 128
        [data]
        eval_fraction = 0.1
        eval_limit = 16
        [[data.sources]]
        format = "hh"
        path = "{hh}"
        hh_prompt = "common-prefix"
        skip_invalid = true
        [optim]
        lr = 1e-3
        [train]
        max_steps = 3
        batch_size = 4
        eval_batch_size = 8
        "#,
        run = tmp.0.join("run").display(),
        hh = hh.display(),
    );
    let cfg = TrainConfig::from_toml_str(&text, Path::new("hh.toml"), &[], None).unwrap();
    let summary = train(&cfg, &device(), &TrainOptions::default()).unwrap();
    assert!(summary.finished);
    assert!(summary.data.train > 2000, "{:?}", summary.data);
    assert!(summary.data.truncated > 0, "long dialogues are truncated");
    let eval = summary.eval.unwrap();
    assert_eq!(eval["pairs"], 16);
    // HH-RLHF carries no safe/unsafe labels: the cost loss is Bradley-Terry only.
    assert_eq!(eval["labelled"], 0);
    assert!(eval["loss"].as_f64().unwrap().is_finite());
}

#[test]
fn smollm2_tokenizer_survives_the_model_directory_round_trip() {
    let Some(gguf) = saferlhf_testkit::smollm2() else {
        return;
    };
    let tmp = TempDir::new("train-tokenizer");
    let model = saferlhf_learner::config::ModelConfig {
        init: Some(gguf),
        ..Default::default()
    };
    let original = saferlhf_learner::models::load_tokenizer(&model).unwrap();
    let meta = saferlhf_learner::models::ModelMeta::new(TaskKind::Cost, &model);
    saferlhf_learner::models::save_text_side(&original, &meta, &tmp.0).unwrap();
    let loaded =
        saferlhf_model::tokenizer::Tokenizer::from_file(tmp.0.join("tokenizer.json")).unwrap();
    assert_eq!(
        (
            loaded.eos_id(),
            loaded.bos_id(),
            loaded.pad_id(),
            loaded.vocab_size()
        ),
        (
            original.eos_id(),
            original.bos_id(),
            original.pad_id(),
            original.vocab_size()
        )
    );
    for text in [
        "<|im_start|>user\nWhat is 12345 + 678?<|im_end|>\n<|im_start|>assistant\n",
        " I can't help with that. Here's why: naïve café — 東京 🙂",
        "\n\nHuman: hi\n\nAssistant:  two  spaces\ttab",
    ] {
        assert_eq!(
            loaded.encode(text, false).unwrap(),
            original.encode(text, false).unwrap(),
            "{text:?}"
        );
    }
    assert_eq!(saferlhf_learner::models::read_meta(&tmp.0).unwrap(), meta);
}

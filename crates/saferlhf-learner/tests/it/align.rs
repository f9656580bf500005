//! Offline alignment on the char-tiny preset: DPO lowers its loss on a fixed batch and starts at
//! log 2, the two log-probability sums give one loss, SACPO's stage 2 uses β/λ with the frozen
//! stage-1 model as its reference, P-SACPO merging is exact at its endpoints and the mean at
//! q = 0.5, and bad `[dpo]` / `[sacpo]` values name their key.

use std::collections::BTreeMap;
use std::path::Path;

use saferlhf_testkit::{TempDir, root};

use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Device;
use saferlhf_learner::align::{AlignSummary, align, stage_config};
use saferlhf_learner::checkpoint::{CONFIG_FILE, FINAL_DIR};
use saferlhf_learner::collate::{EncodedPair, Encoder};
use saferlhf_learner::losses::to_host;
use saferlhf_learner::merge::merge_models;
use saferlhf_learner::objectives::sacpo::stages;
use saferlhf_learner::objectives::{Dpo, OfflineObjective, SumFrom};
use saferlhf_learner::params::seeded_init;
use saferlhf_learner::task::{DpoTask, sequence_logprobs, sum_starts};
use saferlhf_learner::tiny::{tiny_llama_config, tiny_tokenizer};
use saferlhf_learner::{SessionConfig, TaskKind, TrainConfig, TrainOptions};
use saferlhf_model::LlamaForCausalLM;
use saferlhf_model::tokenizer::ChatTemplate;
use saferlhf_model::weights::{load_hf_dir, save_hf_dir};

fn tiny(seed: u64, device: &Device) -> LlamaForCausalLM {
    seeded_init(
        LlamaForCausalLM::new(&tiny_llama_config(), device),
        seed,
        &[],
    )
}

fn encoder() -> Encoder {
    Encoder::new(tiny_tokenizer().unwrap(), ChatTemplate::Raw, 64).unwrap()
}

fn pairs(e: &Encoder) -> Vec<EncodedPair> {
    [
        ("what about the sun?", "good sun.", "bad sun."),
        ("what about the tree?", "tree good road.", "road bad."),
        ("what about the bird?", "good bird bird.", "bird bad light."),
        ("tell me of the river", "river is good.", "river is bad."),
    ]
    .iter()
    .map(|(p, c, r)| e.encode_pair(p, c, r, None, None).unwrap())
    .collect()
}

fn scalar(t: &burn::tensor::Tensor<1>) -> f64 {
    to_host(t)[0] as f64
}

#[test]
fn dpo_steps_lower_the_loss_on_a_fixed_batch() {
    let device = Device::flex();
    let train = device.clone().autodiff();
    let task = DpoTask::with_reference(
        Box::new(Dpo::new(0.5)),
        SumFrom::Response,
        tiny(3, &device),
        device.clone(),
    );
    let e = encoder();
    let data = pairs(&e);
    let batch: Vec<&EncodedPair> = data.iter().collect();
    let mut policy = tiny(3, &train);
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let mut losses = Vec::new();
    for _ in 0..6 {
        let (logps, _) = task.pair_logprobs(&policy, &batch, e.pad_id(), &train);
        let loss = task.objective().loss(&logps);
        losses.push(scalar(&loss));
        let grads = GradientsParams::from_grads(loss.backward(), &policy);
        policy = optim.step(1e-2, policy, grads);
    }
    eprintln!("DPO losses on a fixed batch: {losses:?}");
    // The policy starts as the reference: every log-ratio is 0 and the loss is log 2.
    assert!(
        (losses[0] - std::f64::consts::LN_2).abs() < 1e-5,
        "{losses:?}"
    );
    assert!(losses[5] < losses[0] - 0.05, "{losses:?}");
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
}

/// The responses of a pair share their first tokens ("the sun is "), so summing from the first
/// divergent token drops tokens whose log-ratios cancel between chosen and rejected: the same
/// loss, different reported implicit rewards.
#[test]
fn divergence_and_response_sums_give_the_same_loss() {
    let device = Device::flex();
    let e = encoder();
    let pair = e
        .encode_pair(
            "what about the sun?",
            "the sun is good.",
            "the sun is bad.",
            None,
            None,
        )
        .unwrap();
    let (response_start, _) = sum_starts(&pair, SumFrom::Response);
    let (divergence_start, _) = sum_starts(&pair, SumFrom::Divergence);
    assert_eq!(response_start, pair.chosen.prompt_len);
    assert_eq!(
        divergence_start,
        pair.chosen.prompt_len + "the sun is ".len()
    );
    let (policy, reference) = (tiny(1, &device), tiny(2, &device));
    let dpo = Dpo::new(0.1);
    let loss_and_reward = |from: SumFrom| {
        let (pc, pr, _) = sequence_logprobs(&policy, &[&pair], e.pad_id(), from, &device);
        let (rc, rr, _) = sequence_logprobs(&reference, &[&pair], e.pad_id(), from, &device);
        let logps = saferlhf_learner::objectives::PairLogProbs {
            policy_chosen: pc.clone(),
            policy_rejected: pr,
            reference_chosen: rc.clone(),
            reference_rejected: rr,
            margin_flags: None,
        };
        (scalar(&dpo.loss(&logps)), scalar(&(pc - rc)))
    };
    let (loss_r, reward_r) = loss_and_reward(SumFrom::Response);
    let (loss_d, reward_d) = loss_and_reward(SumFrom::Divergence);
    assert!((loss_r - loss_d).abs() < 1e-5, "{loss_r} vs {loss_d}");
    assert!(
        (reward_r - reward_d).abs() > 1e-4,
        "{reward_r} vs {reward_d}"
    );
}

fn tiny_sacpo(run: &Path, extra: &[&str]) -> TrainConfig {
    let mut sets = vec![
        format!("run.dir={}", run.display()),
        "run.progress=false".to_string(),
    ];
    for key in ["helpfulness_sources", "safety_sources"] {
        sets.push(format!(
            "sacpo.{key}.0.path={}",
            root().join("tests/fixtures/tiny-pku-sacpo.jsonl").display()
        ));
    }
    sets.extend(extra.iter().map(|s| s.to_string()));
    TrainConfig::load(&root().join("configs/tiny-sacpo.toml"), &sets, None).unwrap()
}

#[test]
fn sacpo_stage_two_uses_beta_over_lambda_and_the_stage_one_model_as_reference() {
    let tmp = TempDir::new("align-sacpo");
    let run = tmp.0.join("run");
    let config = tiny_sacpo(&run, &[]);
    let device = Device::flex();
    let summary: AlignSummary = align(&config, &device, &TrainOptions::default()).unwrap();
    assert!(summary.finished);
    assert_eq!(summary.stages.len(), 2);
    assert_eq!(summary.stages[0].name, "stage-1-helpfulness");
    assert_eq!(summary.stages[1].name, "stage-2-safety");
    let stage1_final = run.join("stage-1-helpfulness").join(FINAL_DIR);
    let stage2_final = run.join("stage-2-safety").join(FINAL_DIR);
    assert_eq!(summary.final_model.as_deref(), Some(stage2_final.as_path()));

    // β_eff: 0.5 in stage 1, β/λ = 0.5 / 2 = 0.25 in stage 2, also in the stage's own config.
    assert_eq!(summary.stages[0].beta, 0.5);
    assert_eq!(summary.stages[1].beta, 0.25);
    let saved = TrainConfig::load(
        &run.join("stage-2-safety").join(CONFIG_FILE),
        &[],
        Some(TaskKind::Dpo),
    )
    .unwrap();
    assert_eq!(saved.dpo.as_ref().unwrap().beta, 0.25);
    assert_eq!(saved.model.init.as_deref(), Some(stage1_final.as_path()));
    assert_eq!(saved.model.preset, None);

    // Stage 2's reference is the stage-1 final model: same sequence log-probs, bit for bit.
    let stage = &stages(config.sacpo.as_ref().unwrap())[1];
    let stage2 = stage_config(&config, stage, Some(&stage1_final));
    assert_eq!(stage2, saved);
    let task = DpoTask::new(&stage2, &device).unwrap();
    assert_eq!(task.objective().beta(), 0.25);
    let e = encoder();
    let data = pairs(&e);
    let batch: Vec<&EncodedPair> = data.iter().collect();
    let (_, stage1_model) = load_hf_dir(&stage1_final, &device).unwrap();
    let logps = |m: &LlamaForCausalLM| {
        let (c, r, _) = sequence_logprobs(m, &batch, e.pad_id(), SumFrom::Response, &device);
        (to_host(&c), to_host(&r))
    };
    assert_eq!(logps(task.reference()), logps(&stage1_model));
    // ... and not the initial model, which stage 1 moved away from.
    let stage1_task = DpoTask::new(
        &stage_config(&config, &stages(config.sacpo.as_ref().unwrap())[0], None),
        &device,
    )
    .unwrap();
    assert_ne!(logps(stage1_task.reference()), logps(&stage1_model));
    // Stage 2 starts at the reference: its first loss is log 2.
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(run.join("stage-2-safety/metrics.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let loss = first["loss"].as_f64().unwrap();
    assert!((loss - std::f64::consts::LN_2).abs() < 1e-5, "{first}");

    // Reversed order: safety first with β/λ from the initial model, then helpfulness with β.
    let reversed = tiny_sacpo(&tmp.0.join("rev"), &["sacpo.order=\"safety_first\""]);
    let s = stages(reversed.sacpo.as_ref().unwrap());
    let first = stage_config(&reversed, &s[0], None);
    assert_eq!(first.run.dir, tmp.0.join("rev/stage-1-safety"));
    assert_eq!(first.dpo.as_ref().unwrap().beta, 0.25);
    let second = stage_config(&reversed, &s[1], Some(Path::new("x")));
    assert_eq!(second.dpo.as_ref().unwrap().beta, 0.5);
    assert_eq!(second.run.dir, tmp.0.join("rev/stage-2-helpfulness"));
}

fn tensors(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    saferlhf_testkit::safetensors_tensors(&dir.join("model.safetensors"))
        .into_iter()
        .collect()
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn merge_is_exact_at_the_ends_and_the_mean_at_one_half() {
    let tmp = TempDir::new("align-merge");
    let device = Device::flex();
    let (a, b) = (tmp.0.join("a"), tmp.0.join("b"));
    save_hf_dir(&tiny(1, &device), &tiny_llama_config(), &a).unwrap();
    save_hf_dir(&tiny(2, &device), &tiny_llama_config(), &b).unwrap();
    std::fs::write(a.join("tokenizer.json"), "{}").unwrap();
    let (ta, tb) = (tensors(&a), tensors(&b));
    assert_ne!(ta, tb);

    let out = tmp.0.join("q0");
    let s = merge_models(&a, &b, 0.0, &out, false).unwrap();
    assert_eq!(s.tensors, ta.len());
    assert_eq!(tensors(&out), ta);
    // Side files come from `a`; merge.json records the inputs.
    assert!(out.join("config.json").is_file() && out.join("tokenizer.json").is_file());
    assert!(out.join("merge.json").is_file());
    let out = tmp.0.join("q1");
    merge_models(&a, &b, 1.0, &out, false).unwrap();
    assert_eq!(tensors(&out), tb);
    let out = tmp.0.join("half");
    merge_models(&a, &b, 0.5, &out, false).unwrap();
    for (name, bytes) in tensors(&out) {
        let mean: Vec<f32> = floats(&ta[&name])
            .iter()
            .zip(floats(&tb[&name]))
            .map(|(x, y)| (x + y) / 2.0)
            .collect();
        assert_eq!(floats(&bytes), mean, "{name}");
    }
    // The merged directory loads as a model.
    load_hf_dir(&out, &device).unwrap();

    // q outside [0, 1], an existing output, another architecture, a missing tensor.
    for q in [-0.1, 1.5, f64::NAN] {
        let err = merge_models(&a, &b, q, &tmp.0.join("bad"), false).unwrap_err();
        assert!(err.to_string().contains("`q`"), "{err}");
    }
    let err = merge_models(&a, &b, 0.5, &out, false).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    merge_models(&a, &b, 0.25, &out, true).unwrap();
    let mut other = tiny_llama_config();
    other.intermediate_size = 32;
    let c = tmp.0.join("c");
    save_hf_dir(&LlamaForCausalLM::new(&other, &device), &other, &c).unwrap();
    let err = merge_models(&a, &c, 0.5, &tmp.0.join("bad"), false).unwrap_err();
    assert!(err.to_string().contains("intermediate_size"), "{err}");
    // Same config, one tensor left out of b's weights.
    let d = tmp.0.join("d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(b.join("config.json"), d.join("config.json")).unwrap();
    let bytes = std::fs::read(b.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let dropped = "model.norm.weight";
    let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != dropped)
        .collect();
    safetensors::serialize_to_file(kept, None, &d.join("model.safetensors")).unwrap();
    let err = merge_models(&a, &d, 0.5, &tmp.0.join("bad"), false).unwrap_err();
    assert!(err.to_string().contains(dropped), "{err}");
    assert!(!tmp.0.join("bad").exists());
}

#[test]
fn align_config_errors_name_the_key() {
    let load = |file: &str, sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        TrainConfig::load(&root().join(file), &sets, None)
    };
    let dpo: &[(&str, &str)] = &[
        ("dpo.beta=0", "dpo.beta"),
        ("dpo.beta=-0.1", "dpo.beta"),
        ("dpo.preference=\"kindness\"", "preference"),
        ("dpo.sum_from=\"start\"", "sum_from"),
        ("dpo.betta=1", "betta"),
        ("sacpo.lambda=2", "sacpo"),
        ("data.sources.0.format=\"sft\"", "data.sources.0.format"),
    ];
    let sacpo: &[(&str, &str)] = &[
        ("sacpo.lambda=0", "sacpo.lambda"),
        ("sacpo.lambda=-1", "sacpo.lambda"),
        ("sacpo.beta=0", "sacpo.beta"),
        ("sacpo.order=\"both\"", "order"),
        ("dpo.beta=0.1", "dpo"),
        ("sacpo.safety_sources=[]", "sacpo.safety_sources"),
        (
            "sacpo.helpfulness_sources.0.limit=0",
            "sacpo.helpfulness_sources.0.limit",
        ),
        (
            "data.sources=[{format = \"pku\", path = \"x\"}]",
            "data.sources",
        ),
    ];
    for (file, cases) in [
        ("configs/tiny-dpo.toml", dpo),
        ("configs/tiny-sacpo.toml", sacpo),
    ] {
        for &(set, key) in cases {
            let err = load(file, &[set]).unwrap_err().to_string();
            assert!(err.contains(key), "{file} --set {set}: {err}");
        }
    }
    // The shipped configs parse, and a DPO config gets its [dpo] defaults written out.
    for (file, task) in [
        ("configs/dpo.toml", TaskKind::Dpo),
        ("configs/sacpo.toml", TaskKind::Sacpo),
        ("configs/tiny-dpo.toml", TaskKind::Dpo),
        ("configs/tiny-sacpo.toml", TaskKind::Sacpo),
    ] {
        let c = load(file, &[]).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(c.task(), task);
    }
    let text = "task = \"dpo\"\n[model]\npreset = \"char-tiny\"\n[[data.sources]]\nformat = \"hh\"\npath = \"x\"\n";
    let c = TrainConfig::from_toml_str(text, Path::new("c.toml"), &[], None).unwrap();
    assert_eq!(c.dpo.as_ref().unwrap().beta, 0.1);
    assert!(c.to_toml().contains("[dpo]"), "{}", c.to_toml());
    // The plain trainer refuses a SACPO config; a reward run refuses [dpo].
    let sacpo = load("configs/tiny-sacpo.toml", &[]).unwrap();
    let err = saferlhf_learner::train(&sacpo, &Device::flex(), &TrainOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("task"), "{err}");
    let err = load("configs/tiny-reward.toml", &["dpo.beta=0.1"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`dpo`"), "{err}");
}

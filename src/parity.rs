//! Device parity: the same computations on `flex` (the CPU) and on another device, from the
//! same inputs and weights, compared. `saferlhf check-device --device vulkan` runs every check
//! on a new GPU; `tests/it/device_parity.rs` runs them on wgpu in CI (over lavapipe).
//!
//! | check | tolerance |
//! |---|---|
//! | score heads, critic values, end scores (left and right padding) | 1e-4 absolute |
//! | greedy and seeded sampled tokens; KV cache against recomputation; reproducibility | exact |
//! | gradients of a policy and of a score model | 1e-4 · (1 + \|g\|) per element |
//! | one step of SFT, the reward model, DPO, each online objective, RePO with LoRA: weights | 2e-4 absolute (AdamW's first step moves a weight by about lr · sign(g)) |
//! | the same steps: loss, λ, reward, KL | 1e-4 relative |
//! | f16 models: log-probs and end scores, against flex's f16 and against f32 | 2e-3 absolute |
//! | SmolLM2-135M's greedy answer, when the GGUF is given | exact text |
//!
//! A NaN anywhere counts as an infinite difference. The tiny models are the `char-tiny` preset
//! with seeded weights; the runs' data are the repository's tiny fixtures, compiled in, so an
//! installed binary needs no files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use saferlhf_learner::objectives::build_online;
use saferlhf_learner::params::seeded_init;
use saferlhf_learner::rl::{RlConfig, train_rl_with};
use saferlhf_learner::tiny::preset_config;
use saferlhf_learner::{TrainConfig, TrainOptions, train};
use saferlhf_model::precision::{Precision, cast_floats};
use saferlhf_model::score::critic_from;
use saferlhf_model::tokenizer::ChatTemplate;
use saferlhf_model::{LlamaForCausalLM, Reward, ScoreModel, load_pretrained};
use saferlhf_rollout::{GenerateConfig, Sampler, generate, generate_text};
use serde::Serialize;

/// One comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was compared.
    pub name: String,
    /// The tolerance, in words (`exact`, `1e-4 absolute`, ...).
    pub tolerance: String,
    /// What was measured (the largest difference, or `equal` / `differ`, or the error).
    pub measured: String,
    /// Whether it is within the tolerance.
    pub passed: bool,
}

impl Check {
    fn within(name: impl Into<String>, measured: f64, tolerance: f64, unit: &str) -> Check {
        Check {
            name: name.into(),
            tolerance: format!("{tolerance:.0e} {unit}"),
            measured: format!("{measured:.2e}"),
            passed: measured <= tolerance,
        }
    }

    fn exact(name: impl Into<String>, equal: bool) -> Check {
        Check {
            name: name.into(),
            tolerance: "exact".into(),
            measured: if equal { "equal" } else { "differ" }.into(),
            passed: equal,
        }
    }

    fn failed(name: impl Into<String>, error: String) -> Check {
        Check {
            name: name.into(),
            tolerance: "-".into(),
            measured: error,
            passed: false,
        }
    }

    fn skipped(name: impl Into<String>, why: &str) -> Check {
        Check {
            name: name.into(),
            tolerance: "-".into(),
            measured: format!("skipped: {why}"),
            passed: true,
        }
    }
}

/// The outcome of a group of checks: its checks, or the error (or panic) that stopped it.
pub type Checks = std::result::Result<Vec<Check>, String>;

/// Runs `f`, turning a panic into an error (a device that cannot run a kernel panics in burn).
fn guarded(f: impl FnOnce() -> Checks) -> Checks {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(e) => Err(e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into())),
    }
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

/// The largest absolute difference; a NaN on either side, or a length mismatch, is infinite.
fn max_abs(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (x - y).abs() as f64;
            if d.is_nan() { f64::INFINITY } else { d }
        })
        .fold(0.0, f64::max)
}

/// Four rows of different lengths, left-padded (as prompts are) or right-padded (as pairs are).
fn batch(device: &Device, left: bool) -> (Tensor<2, Int>, Tensor<2, Bool>) {
    let rows: [&[i64]; 4] = [
        &[5, 9, 12, 7, 30, 2],
        &[6, 6, 8],
        &[11, 20, 33, 40, 2],
        &[7],
    ];
    let s = 6;
    let (mut ids, mut mask) = (Vec::new(), Vec::new());
    for r in rows {
        let pad = s - r.len();
        let (mut i, mut m): (Vec<i64>, Vec<bool>) = (r.to_vec(), vec![true; r.len()]);
        if left {
            i.splice(0..0, std::iter::repeat_n(0, pad));
            m.splice(0..0, std::iter::repeat_n(false, pad));
        } else {
            i.extend(std::iter::repeat_n(0, pad));
            m.extend(std::iter::repeat_n(false, pad));
        }
        ids.extend(i);
        mask.extend(m);
    }
    (
        Tensor::from_data(TensorData::new(ids, [4, s]), device),
        Tensor::from_data(TensorData::new(mask, [4, s]), device),
    )
}

fn policy(device: &Device) -> LlamaForCausalLM {
    let config = preset_config("char-tiny").expect("the char-tiny preset");
    seeded_init(LlamaForCausalLM::new(&config, device), 3, &[])
}

fn score_model(device: &Device) -> ScoreModel<Reward> {
    let config = preset_config("char-tiny").expect("the char-tiny preset");
    seeded_init(ScoreModel::<Reward>::new(&config, device), 5, &[])
}

/// Score heads, critic values and end scores on left- and right-padded batches (burn #5122's
/// `[N, 1]` head shape).
pub fn heads(device: &Device) -> Checks {
    guarded(|| {
        let run = |device: &Device, left: bool| {
            let score = score_model(device);
            let (tokens, mask) = batch(device, left);
            let out = score.forward(tokens.clone(), mask.clone());
            let values = critic_from(&score).forward(tokens, mask);
            (host(out.scores), host(out.end_scores), host(values.scores))
        };
        let mut checks = Vec::new();
        for left in [true, false] {
            let side = if left { "left" } else { "right" };
            let (a, b) = (run(&Device::flex(), left), run(device, left));
            for (what, x, y) in [
                ("per-token scores", &a.0, &b.0),
                ("end scores", &a.1, &b.1),
                ("critic values", &a.2, &b.2),
            ] {
                let name = format!("score model, {what} ({side} padding)");
                checks.push(Check::within(name, max_abs(x, y), 1e-4, "absolute"));
            }
        }
        Ok(checks)
    })
}

/// Greedy and seeded sampled generation against flex; the KV cache against recomputation; the
/// same seed twice.
pub fn generation(device: &Device) -> Checks {
    guarded(|| {
        let prompts: Vec<Vec<u32>> = vec![vec![5, 9, 12, 7], vec![6, 8], vec![11, 20, 33]];
        let tokens = |device: &Device, sampler: Sampler, use_cache: bool| {
            let config = GenerateConfig {
                max_new_tokens: 10,
                sampler,
                use_cache,
                seed: 7,
                ..GenerateConfig::default()
            };
            generate(&policy(device), &prompts, &config, device)
                .map(|g| g.responses)
                .map_err(|e| e.to_string())
        };
        let sample = Sampler::Sample {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        };
        let mut checks = Vec::new();
        for (name, sampler) in [("greedy", Sampler::Greedy), ("sampled", sample)] {
            let flex = tokens(&Device::flex(), sampler, true)?;
            let cached = tokens(device, sampler, true)?;
            let recomputed = tokens(device, sampler, false)?;
            let again = tokens(device, sampler, true)?;
            checks.push(Check::exact(
                format!("{name} tokens against flex"),
                flex == cached,
            ));
            checks.push(Check::exact(
                format!("{name} tokens, KV cache against recomputation"),
                cached == recomputed,
            ));
            checks.push(Check::exact(
                format!("{name} tokens, reproducible"),
                cached == again,
            ));
        }
        Ok(checks)
    })
}

/// Gradients of a policy's log-likelihood and of a score model's end scores.
pub fn gradients(device: &Device) -> Checks {
    guarded(|| {
        let grads = |device: &Device| {
            let train = device.clone().autodiff();
            let model = policy(&train);
            let (tokens, mask) = batch(&train, true);
            let g = model
                .token_logprobs(tokens.clone(), mask.clone())
                .sum()
                .neg()
                .backward();
            let embed = model.model.embed_tokens.weight.val().grad(&g);
            let score = score_model(&train);
            let g2 = score.forward(tokens, mask).end_scores.sum().backward();
            let head = score.score_head.weight.val().grad(&g2);
            let score_embed = score.backbone.model.embed_tokens.weight.val().grad(&g2);
            [embed, head, score_embed].map(|g| g.map(host).unwrap_or_default())
        };
        let (a, b) = (grads(&Device::flex()), grads(device));
        let names = [
            "gradient: policy embedding",
            "gradient: score head",
            "gradient: score model embedding",
        ];
        Ok(names
            .iter()
            .zip(a.iter().zip(&b))
            .map(|(name, (x, y))| {
                let worst = if x.len() != y.len() || x.is_empty() {
                    f64::INFINITY
                } else {
                    x.iter()
                        .zip(y)
                        .map(|(p, q)| {
                            let d = ((p - q).abs() / (1.0 + p.abs())) as f64;
                            if d.is_nan() { f64::INFINITY } else { d }
                        })
                        .fold(0.0, f64::max)
                };
                Check::within(*name, worst, 1e-4, "· (1 + |g|)")
            })
            .collect())
    })
}

/// The float tensors of a saved model directory's `model.safetensors`.
fn weights(dir: &Path) -> std::result::Result<BTreeMap<String, Vec<f32>>, String> {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, values)
        })
        .collect())
}

fn compare_weights(name: &str, a: &Path, b: &Path) -> std::result::Result<Check, String> {
    let (a, b) = (weights(a)?, weights(b)?);
    if a.keys().ne(b.keys()) {
        return Ok(Check::failed(
            format!("{name}: weights"),
            "different tensors".into(),
        ));
    }
    let worst = a.iter().map(|(k, v)| max_abs(v, &b[k])).fold(0.0, f64::max);
    Ok(Check::within(
        format!("{name}: weights after the step"),
        worst,
        2e-4,
        "absolute",
    ))
}

fn relative(name: String, a: f64, b: f64) -> Check {
    let d = (a - b).abs() / (1.0 + a.abs());
    let d = if d.is_nan() { f64::INFINITY } else { d };
    Check::within(name, d, 1e-4, "relative")
}

const TINY_SFT_CONFIG: &str = include_str!("../configs/tiny-sft.toml");
const TINY_REWARD_CONFIG: &str = include_str!("../configs/tiny-reward.toml");
const TINY_DPO_CONFIG: &str = include_str!("../configs/tiny-dpo.toml");
pub(crate) const TINY_RLHF_CONFIG: &str = include_str!("../configs/tiny-rlhf.toml");
const TINY_SFT_DATA: &str = include_str!("../tests/fixtures/tiny-sft.jsonl");
const TINY_PKU_DATA: &str = include_str!("../tests/fixtures/tiny-pku.jsonl");
pub(crate) const TINY_PROMPTS: &str = include_str!("../tests/fixtures/tiny-prompts.txt");

/// Writes `text` to `dir/name` and returns the path.
pub(crate) fn put(dir: &Path, name: &str, text: &str) -> std::result::Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// One step of SFT, of the reward model and of DPO on flex and on `device` (runs under
/// `work_dir`): the weights after the step and the loss.
pub fn supervised_steps(device: &Device, work_dir: &Path) -> Checks {
    guarded(|| {
        let mut checks = Vec::new();
        for (name, config, data_name, data) in [
            ("sft", TINY_SFT_CONFIG, "tiny-sft.jsonl", TINY_SFT_DATA),
            (
                "reward model",
                TINY_REWARD_CONFIG,
                "tiny-pku.jsonl",
                TINY_PKU_DATA,
            ),
            ("dpo", TINY_DPO_CONFIG, "tiny-pku.jsonl", TINY_PKU_DATA),
        ] {
            let data_path = put(work_dir, data_name, data)?;
            let config_path = put(
                work_dir,
                &format!("{}.toml", name.replace(' ', "-")),
                config,
            )?;
            let mut finals = Vec::new();
            let mut losses = Vec::new();
            for (side, dev) in [("flex", Device::flex()), ("device", device.clone())] {
                let dir = work_dir.join(format!("{}-{side}", name.replace(' ', "-")));
                let _ = std::fs::remove_dir_all(&dir);
                let cfg = TrainConfig::load(
                    &config_path,
                    &[
                        format!("run.dir={:?}", dir.display().to_string()),
                        "run.progress=false".into(),
                        "train.max_steps=1".into(),
                        "train.eval_every=0".into(),
                        format!("data.sources.0.path={:?}", data_path.display().to_string()),
                    ],
                    None,
                )
                .map_err(|e| format!("{name}: {e}"))?;
                let summary = train(&cfg, &dev, &TrainOptions::default())
                    .map_err(|e| format!("{name} on {side}: {e}"))?;
                finals.push(summary.run.final_model.clone().ok_or("no final model")?);
                let line = std::fs::read_to_string(dir.join("metrics.jsonl"))
                    .map_err(|e| format!("{name}: metrics: {e}"))?;
                let v: serde_json::Value =
                    serde_json::from_str(line.lines().next().unwrap_or("{}"))
                        .map_err(|e| e.to_string())?;
                losses.push(v["loss"].as_f64().unwrap_or(f64::NAN));
            }
            checks.push(relative(format!("{name}: loss"), losses[0], losses[1]));
            checks.push(compare_weights(name, &finals[0], &finals[1])?);
        }
        Ok(checks)
    })
}

/// One step of ppo, ppo_lag, repo, repo_group (RLOO groups) and of RePO with LoRA adapters
/// (burn #5162's case: only some parameters require gradients) on flex and on `device`.
pub fn online_steps(device: &Device, work_dir: &Path) -> Checks {
    guarded(|| {
        let prompts = put(work_dir, "tiny-prompts.txt", TINY_PROMPTS)?;
        let config_path = put(work_dir, "tiny-rlhf.toml", TINY_RLHF_CONFIG)?;
        let mut checks = Vec::new();
        for (label, objective, extra) in [
            ("ppo", "ppo", vec![]),
            ("ppo_lag", "ppo_lag", vec![]),
            ("repo", "repo", vec![]),
            (
                "repo_group",
                "repo_group",
                vec![
                    "advantage.estimator=\"rloo\"".to_string(),
                    "rollout.group_size=4".into(),
                    "rollout.prompts_per_step=2".into(),
                ],
            ),
            ("repo with LoRA", "repo", vec!["lora.rank=4".to_string()]),
        ] {
            let mut finals = Vec::new();
            let mut lines = Vec::new();
            for (side, dev) in [("flex", Device::flex()), ("device", device.clone())] {
                let dir = work_dir.join(format!("{}-{side}", label.replace(' ', "-")));
                let _ = std::fs::remove_dir_all(&dir);
                let mut overrides = vec![
                    format!("objective={objective:?}"),
                    format!("data.sources.0.path={:?}", prompts.display().to_string()),
                    format!("run.dir={:?}", dir.display().to_string()),
                    "run.progress=false".into(),
                    "train.steps=1".into(),
                ];
                overrides.extend(extra.iter().cloned());
                let cfg = RlConfig::load(&config_path, &overrides)
                    .map_err(|e| format!("{label}: {e}"))?;
                let objective = build_online(cfg.objective, &cfg.sections());
                let summary = train_rl_with(&cfg, objective, &dev, &TrainOptions::default())
                    .map_err(|e| format!("{label} on {side}: {e}"))?;
                finals.push(summary.run.final_model.clone().ok_or("no final model")?);
                lines.push(summary.last_metrics.clone().unwrap_or_default());
            }
            for key in ["reward_mean", "actor_loss", "lambda", "kl"] {
                if let (Some(a), Some(b)) = (lines[0].get(key), lines[1].get(key)) {
                    checks.push(relative(
                        format!("{label}: {key}"),
                        a.as_f64().unwrap_or(f64::NAN),
                        b.as_f64().unwrap_or(f64::NAN),
                    ));
                }
            }
            checks.push(compare_weights(label, &finals[0], &finals[1])?);
        }
        Ok(checks)
    })
}

/// A policy's log-probs and a score model's end scores with the weights held in f16, against
/// the same f16 model on flex and against f32. bf16 is tried only where `bf16` is true: WGSL
/// (the `wgpu` device) has no bf16 type and cubecl panics on it on the device's runner thread.
pub fn half_precision(device: &Device, bf16: bool) -> Checks {
    let run = |device: &Device, p: Precision| {
        let model = cast_floats(policy(device), p);
        let score = cast_floats(score_model(device), p);
        let (tokens, mask) = batch(device, true);
        (
            host(model.token_logprobs(tokens.clone(), mask.clone())),
            host(score.forward(tokens, mask).end_scores),
        )
    };
    let mut full = (Vec::new(), Vec::new());
    guarded(|| {
        full = run(&Device::flex(), Precision::F32);
        Ok(Vec::new())
    })?;
    let mut checks = Vec::new();
    let precisions: &[(Precision, f64)] = if bf16 {
        &[(Precision::F16, 2e-3), (Precision::Bf16, 2e-2)]
    } else {
        &[(Precision::F16, 2e-3)]
    };
    for &(p, tol) in precisions {
        let probe = device.clone();
        let works = guarded(|| {
            let t = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &probe)
                .cast(p.dtype());
            let v = host(t.sum());
            Ok(vec![Check::exact("probe", v == vec![3.0])])
        });
        if !matches!(&works, Ok(c) if c[0].passed) {
            checks.push(Check::skipped(
                format!("{p} models"),
                "the device cannot compute in it",
            ));
            continue;
        }
        let out = guarded(|| {
            let (flex, dev) = (run(&Device::flex(), p), run(device, p));
            Ok(vec![
                Check::within(
                    format!("{p} log-probs against flex's {p}"),
                    max_abs(&flex.0, &dev.0),
                    tol,
                    "absolute",
                ),
                Check::within(
                    format!("{p} end scores against flex's {p}"),
                    max_abs(&flex.1, &dev.1),
                    tol,
                    "absolute",
                ),
                Check::within(
                    format!("{p} log-probs against f32"),
                    max_abs(&full.0, &dev.0),
                    tol,
                    "absolute",
                ),
                Check::within(
                    format!("{p} end scores against f32"),
                    max_abs(&full.1, &dev.1),
                    tol,
                    "absolute",
                ),
            ])
        });
        match out {
            Ok(c) => checks.extend(c),
            Err(e) => checks.push(Check::failed(format!("{p} models"), e)),
        }
    }
    Ok(checks)
}

/// SmolLM2-135M (the GGUF at `gguf`) gives its known greedy answer on `device`.
pub fn smollm2_answer(device: &Device, gguf: &Path) -> Checks {
    guarded(|| {
        let p = load_pretrained(gguf, device).map_err(|e| e.to_string())?;
        let config = GenerateConfig {
            max_new_tokens: 12,
            ..GenerateConfig::default()
        };
        let out = generate_text(
            &p.model,
            &p.tokenizer,
            &ChatTemplate::chatml(),
            &["What is the capital of France?"],
            &config,
            device,
        )
        .map_err(|e| e.to_string())?;
        let answer = out.answers.first().cloned().unwrap_or_default();
        let expected = "The capital of France is Paris.";
        Ok(vec![Check {
            name: "SmolLM2-135M greedy answer".into(),
            tolerance: format!("exact: {expected:?}"),
            measured: format!("{answer:?}"),
            passed: answer == expected,
        }])
    })
}

/// The module built on each device from the same seeded host draws holds the same values (the
/// premise of every other check).
pub fn same_weights(device: &Device) -> Checks {
    guarded(|| {
        let a = policy(&Device::flex()).model.embed_tokens.weight.val();
        let b = policy(device).model.embed_tokens.weight.val();
        let _ = Module::num_params(&policy(device));
        Ok(vec![Check::exact(
            "seeded weights, flex against the device",
            host(a) == host(b),
        )])
    })
}

/// Every check (the SmolLM2 answer only with `gguf`), each group's error a failed check.
pub fn check_device(
    device: &Device,
    work_dir: &Path,
    gguf: Option<&Path>,
    bf16: bool,
) -> Vec<Check> {
    let mut all = Vec::new();
    let groups = [
        ("seeded weights", same_weights(device)),
        ("score heads", heads(device)),
        ("generation", generation(device)),
        ("gradients", gradients(device)),
        ("supervised steps", supervised_steps(device, work_dir)),
        ("online steps", online_steps(device, work_dir)),
        ("half precision", half_precision(device, bf16)),
    ];
    for (name, outcome) in groups {
        match outcome {
            Ok(checks) => all.extend(checks),
            Err(e) => all.push(Check::failed(name, e)),
        }
    }
    match gguf {
        Some(path) => match smollm2_answer(device, path) {
            Ok(checks) => all.extend(checks),
            Err(e) => all.push(Check::failed("SmolLM2-135M greedy answer", e)),
        },
        None => all.push(Check::skipped(
            "SmolLM2-135M greedy answer",
            "no --gguf given",
        )),
    }
    all
}

/// A Markdown table of `checks`.
pub fn markdown(checks: &[Check]) -> String {
    let mut out = String::from("| check | tolerance | measured | |\n|---|---|---|---|\n");
    for c in checks {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            cell(&c.name),
            cell(&c.tolerance),
            cell(&c.measured),
            if c.passed { "ok" } else { "FAILED" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_or_a_length_mismatch_is_an_infinite_difference() {
        assert_eq!(max_abs(&[1.0, 2.0], &[1.0, 2.5]), 0.5);
        assert_eq!(max_abs(&[1.0, f32::NAN], &[1.0, 2.0]), f64::INFINITY);
        assert_eq!(max_abs(&[1.0], &[1.0, 2.0]), f64::INFINITY);
        assert_eq!(max_abs(&[], &[]), f64::INFINITY);
        assert!(!Check::within("x", f64::INFINITY, 1e-4, "absolute").passed);
        assert!(Check::within("x", 1e-5, 1e-4, "absolute").passed);
    }

    /// flex against itself passes every check (a smoke test of the checks themselves; the
    /// device tests run them against wgpu).
    #[test]
    fn flex_against_flex_passes_every_check() {
        let dir = std::env::temp_dir().join(format!("saferlhf-parity-{}", std::process::id()));
        let checks = check_device(&Device::flex(), &dir, None, true);
        let _ = std::fs::remove_dir_all(&dir);
        let failed: Vec<&Check> = checks.iter().filter(|c| !c.passed).collect();
        assert!(failed.is_empty(), "{}", markdown(&checks));
        assert!(checks.len() > 30, "{}", markdown(&checks));
    }
}

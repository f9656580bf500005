//! Speed and memory figures of a device: batched generation, one training step, and one online
//! RL iteration (PPO-Lagrangian) in each memory mode. `saferlhf bench speed --device D` runs
//! them, each figure in a process of its own (so that each peak memory is its own), and the
//! benchmarks `benches/foundation.rs` and `benches/rl_iteration.rs` run the same functions on
//! the CPU.
//!
//! Shapes: `tiny` (seconds on a CPU: the `tiny` test model, and in the RL figure the learner's
//! `char-tiny` preset) and `smollm2-135m` (SmolLM2-135M's architecture: 30 layers, hidden 576,
//! 49152 logits). Weights are random, drawn as the learner
//! initialises a model trained from scratch (N(0, 0.02)), so nothing needs a download; the
//! dense products do not care about the values.
//!
//! | figure | work |
//! |---|---|
//! | `generate-P` | 8 random prompts of 32 tokens, 64 new tokens each, greedy, KV cache, no stop ids; the whole policy held in precision P |
//! | `train-f32` | batch 8 × 128 tokens: the mean next-token cross-entropy, backward, one AdamW step (burn 0.22 trains in the weights' dtype; there is no mixed-precision training) |
//! | `rl-MODE` | one PPO-Lagrangian step: 8 prompts, 64 new tokens (12 for `tiny`), old and reference log-probs, reward and cost scores, two separate full critics, one AdamW step of the actor and of the critics |
//!
//! RL modes: `full` (6 f32 models), `half` (reference, reward and cost held in the half
//! precision, `frozen_precision`), `lora` (rank 16 on every projection: the reference is the
//! policy's frozen base, only adapters in AdamW), `lora-half` (both).
//!
//! Memory: `peak_rss_gb` is the process's peak resident set (Linux `VmHWM`: models, optimizer
//! state, activations, allocator slack); on a GPU device `device_peak_reserved_gb` is the most
//! memory burn's allocator held on the device, polled every 50 ms while the figure ran (pages
//! are kept for reuse, so it is what the device had to have), and `device_peak_in_use_gb` the
//! most of it in live tensors.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use saferlhf_core::stats::median;
use saferlhf_learner::TrainOptions;
use saferlhf_learner::objectives::build_online;
use saferlhf_learner::params::seeded_init;
use saferlhf_learner::rl::{RlConfig, train_rl_with};
use saferlhf_model::precision::{Precision, cast_floats};
use saferlhf_model::{LlamaConfig, LlamaForCausalLM};
use saferlhf_rollout::{GenerateConfig, generate};
use serde_json::{Value, json};

use crate::parity::{TINY_PROMPTS, TINY_RLHF_CONFIG, put};

/// Rows of the generation figure.
pub const GEN_BATCH: usize = 8;
/// Prompt tokens per row of the generation figure.
pub const GEN_PROMPT: usize = 32;
/// New tokens per row of the generation figure (and of the RL figure at SmolLM2's shape).
pub const GEN_NEW: usize = 64;
/// Rows of the training figure.
pub const TRAIN_BATCH: usize = 8;
/// Tokens per row of the training figure.
pub const TRAIN_SEQ: usize = 128;
const LEARNING_RATE: f64 = 1e-5;

/// The model shape a figure runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The `tiny` test model.
    Tiny,
    /// SmolLM2-135M's architecture.
    Smollm2_135m,
}

impl Shape {
    /// Parses `tiny` or `smollm2-135m` (also `smollm2`).
    pub fn parse(name: &str) -> Result<Shape, String> {
        match name {
            "tiny" => Ok(Shape::Tiny),
            "smollm2-135m" | "smollm2" => Ok(Shape::Smollm2_135m),
            other => Err(format!(
                "unknown shape `{other}` (expected tiny or smollm2-135m)"
            )),
        }
    }

    /// The name [`Shape::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Tiny => "tiny",
            Shape::Smollm2_135m => "smollm2-135m",
        }
    }

    /// The model's configuration.
    pub fn config(self) -> LlamaConfig {
        match self {
            Shape::Tiny => LlamaConfig::tiny(),
            Shape::Smollm2_135m => LlamaConfig::smollm2_135m(),
        }
    }

    /// The learner's preset of this shape (the character tokenizer's ids).
    fn preset(self) -> &'static str {
        match self {
            Shape::Tiny => "char-tiny",
            Shape::Smollm2_135m => "char-smollm2-135m",
        }
    }
}

/// A memory mode of the RL iteration figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RlMode {
    /// Every model in f32, the policy fully trained.
    Full,
    /// Reference, reward and cost models held in half precision.
    Half,
    /// LoRA adapters (rank 16, every projection) on the policy.
    Lora,
    /// Both.
    LoraHalf,
}

impl RlMode {
    /// Every mode, in the order the benchmarks run them.
    pub const ALL: [RlMode; 4] = [RlMode::Full, RlMode::Half, RlMode::Lora, RlMode::LoraHalf];

    /// The mode's name with `half` spelled as the precision (`full`, `bf16`, `lora`,
    /// `lora-bf16`).
    pub fn name(self, half: Precision) -> String {
        match self {
            RlMode::Full => "full".into(),
            RlMode::Half => half.to_string(),
            RlMode::Lora => "lora".into(),
            RlMode::LoraHalf => format!("lora-{half}"),
        }
    }

    /// Parses a name [`RlMode::name`] writes (`half` also reads as the half mode).
    pub fn parse(name: &str) -> Result<RlMode, String> {
        match name {
            "full" => Ok(RlMode::Full),
            "half" | "bf16" | "f16" => Ok(RlMode::Half),
            "lora" => Ok(RlMode::Lora),
            "lora-half" | "lora-bf16" | "lora-f16" => Ok(RlMode::LoraHalf),
            other => Err(format!(
                "unknown RL mode `{other}` (expected full, half, lora or lora-half)"
            )),
        }
    }
}

/// The process's peak resident set size in GB (Linux `VmHWM`), else `None`.
pub fn peak_rss_gb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0 / 1024.0)
}

/// CPU seconds (user + system) this process has used so far, where Linux's `/proc` tells.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Polls a device's allocator in a background thread and keeps the largest figures: what
/// burn's memory pools reserved on the device and what live tensors used. Devices whose
/// backend reports no pools (flex) give `None`.
pub struct DeviceMemoryPeak {
    stop: Arc<AtomicBool>,
    /// The poller; it returns the peaks in bytes (reserved, in use), `None` without pools.
    thread: Option<JoinHandle<Option<(u64, u64)>>>,
}

impl DeviceMemoryPeak {
    /// Starts polling `device` every 50 ms.
    pub fn start(device: &Device) -> DeviceMemoryPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            let device = device.clone();
            std::thread::spawn(move || {
                let mut peak = (0u64, 0u64);
                loop {
                    let usage = device.memory_pool_usage()?;
                    peak.0 = peak.0.max(usage.bytes_reserved);
                    peak.1 = peak.1.max(usage.bytes_in_use);
                    if stop.load(Ordering::Relaxed) {
                        return Some(peak);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        DeviceMemoryPeak {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops polling (after one last sample) and returns the peaks in GB (reserved, in use),
    /// or `None` where the device reports no pools.
    pub fn finish(mut self) -> Option<(f64, f64)> {
        self.stop.store(true, Ordering::Relaxed);
        let (reserved, in_use) = self.thread.take()?.join().ok()??;
        Some((reserved as f64 / 1e9, in_use as f64 / 1e9))
    }
}

impl Drop for DeviceMemoryPeak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

fn med(values: &[f64]) -> f64 {
    median(values).unwrap_or(f64::NAN)
}

fn seconds(values: &[f64]) -> Value {
    values.iter().map(|&t| round(t, 4)).collect()
}

/// Deterministic pseudo-random token ids (xorshift64*), so every run sees the same prompts.
pub fn random_ids(count: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as u32 % vocab as u32
        })
        .collect()
}

/// One warm-up call, then `runs` timed calls; the timed wall seconds and the CPU seconds per
/// timed call.
fn time_runs(
    runs: usize,
    mut run: impl FnMut() -> Result<(), String>,
) -> Result<(Vec<f64>, Option<f64>), String> {
    run()?;
    let cpu_start = cpu_seconds();
    let mut wall = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        run()?;
        wall.push(start.elapsed().as_secs_f64());
    }
    let cpu = cpu_start
        .zip(cpu_seconds())
        .map(|(a, b)| (b - a) / runs.max(1) as f64);
    Ok((wall, cpu))
}

/// Adds the memory figures to a figure's JSON object.
fn with_memory(mut figure: Value, device_peak: Option<(f64, f64)>) -> Value {
    figure["peak_rss_gb"] = json!(peak_rss_gb().map(|g| round(g, 2)));
    figure["device_peak_reserved_gb"] = json!(device_peak.map(|p| round(p.0, 3)));
    figure["device_peak_in_use_gb"] = json!(device_peak.map(|p| round(p.1, 3)));
    figure
}

/// The generation figure: `GEN_BATCH` rows, `GEN_PROMPT` prompt tokens, `GEN_NEW` new tokens
/// (greedy, KV cache, no stop ids), the model held in `precision`; one warm-up call, then
/// `runs` timed calls. `tokens_per_s` is new tokens over the median call (prefill included).
pub fn generate_figure(
    device: &Device,
    shape: Shape,
    precision: Precision,
    runs: usize,
) -> Result<Value, String> {
    let config = shape.config();
    let peak = DeviceMemoryPeak::start(device);
    let model = cast_floats(
        seeded_init(LlamaForCausalLM::new(&config, device), 0, &[]),
        precision,
    );
    let prompts: Vec<Vec<u32>> = (0..GEN_BATCH)
        .map(|row| random_ids(GEN_PROMPT, config.vocab_size, 1 + row as u64))
        .collect();
    let settings = GenerateConfig {
        max_new_tokens: GEN_NEW,
        ..GenerateConfig::default()
    };
    let (times, cpu) = time_runs(runs, || {
        let rollout = generate(&model, &prompts, &settings, device).map_err(|e| e.to_string())?;
        if rollout.new_tokens() != GEN_BATCH * GEN_NEW {
            return Err(format!(
                "generation made {} tokens, expected {}",
                rollout.new_tokens(),
                GEN_BATCH * GEN_NEW
            ));
        }
        Ok(())
    })?;
    let m = med(&times);
    let figure = json!({
        "figure": format!("generate-{precision}"),
        "bench": "generate",
        "shape": shape.name(),
        "precision": precision.to_string(),
        "batch": GEN_BATCH,
        "prompt": GEN_PROMPT,
        "new": GEN_NEW,
        "tokens_per_s": round((GEN_BATCH * GEN_NEW) as f64 / m, 1),
        "runs": runs,
        "median_s": round(m, 4),
        "all_s": seconds(&times),
        "cpu_s_per_run": cpu.map(|c| round(c, 2)),
    });
    Ok(with_memory(figure, peak.finish()))
}

/// The training figure: one step on `TRAIN_BATCH` × `TRAIN_SEQ` random tokens (mean
/// next-token cross-entropy, backward, AdamW) on `device` with autodiff, in f32; one warm-up
/// step, then `runs` timed steps, each synchronised with the device at its end. The phases
/// (forward with the loss, backward, optimizer) are medians of the timed steps.
pub fn train_figure(device: &Device, shape: Shape, runs: usize) -> Result<Value, String> {
    let config = shape.config();
    let device = device.clone().autodiff();
    let peak = DeviceMemoryPeak::start(&device);
    let mut model = Some(seeded_init(LlamaForCausalLM::new(&config, &device), 0, &[]));
    let mut optim = AdamWConfig::new().init();
    let ids: Vec<i64> = random_ids(TRAIN_BATCH * TRAIN_SEQ, config.vocab_size, 7)
        .into_iter()
        .map(i64::from)
        .collect();
    let tokens =
        Tensor::<2, Int>::from_data(TensorData::new(ids, [TRAIN_BATCH, TRAIN_SEQ]), &device);
    let mask = Tensor::<2, Bool>::from_data(
        TensorData::new(
            vec![true; TRAIN_BATCH * TRAIN_SEQ],
            [TRAIN_BATCH, TRAIN_SEQ],
        ),
        &device,
    );
    let mut losses = Vec::new();
    let mut phases: Vec<[f64; 3]> = Vec::new();
    let (times, cpu) = time_runs(runs, || {
        let current = model.take().ok_or("no model between steps")?;
        let start = Instant::now();
        let loss = current
            .token_logprobs(tokens.clone(), mask.clone())
            .mean()
            .neg();
        let forward = start.elapsed().as_secs_f64();
        let grads = GradientsParams::from_grads(loss.backward(), &current);
        let backward = start.elapsed().as_secs_f64();
        let updated = optim.step(LEARNING_RATE, current, grads);
        device.sync().map_err(|e| format!("device sync: {e:?}"))?;
        let step = start.elapsed().as_secs_f64();
        phases.push([forward, backward - forward, step - backward]);
        losses.push(loss.into_scalar::<f32>());
        model = Some(updated);
        Ok(())
    })?;
    if let Some(bad) = losses.iter().find(|l| !l.is_finite()) {
        return Err(format!("non-finite training loss {bad}"));
    }
    let phases = &phases[1..];
    let phase = |i: usize| round(med(&phases.iter().map(|p| p[i]).collect::<Vec<_>>()), 4);
    let m = med(&times);
    let figure = json!({
        "figure": "train-f32",
        "bench": "train_step",
        "shape": shape.name(),
        "precision": "f32",
        "batch": TRAIN_BATCH,
        "seq": TRAIN_SEQ,
        "optimizer": "adamw",
        "s_per_step": round(m, 4),
        "tokens_per_s": round((TRAIN_BATCH * TRAIN_SEQ) as f64 / m, 1),
        "forward_s": phase(0),
        "backward_s": phase(1),
        "optimizer_s": phase(2),
        "runs": runs,
        "median_s": round(m, 4),
        "all_s": seconds(&times),
        "cpu_s_per_run": cpu.map(|c| round(c, 2)),
    });
    Ok(with_memory(figure, peak.finish()))
}

/// The `--set` overrides of the RL iteration figure (over `configs/tiny-rlhf.toml`): see the
/// module's table. `device_name` is the device as `run.device` spells it (the config refuses
/// bf16 where the device has none).
pub fn rl_overrides(
    shape: Shape,
    mode: RlMode,
    half: Precision,
    steps: usize,
    device_name: &str,
    run_dir: &Path,
    prompts: &Path,
) -> Vec<String> {
    let preset = shape.preset();
    let new_tokens = match shape {
        Shape::Tiny => 12,
        Shape::Smollm2_135m => GEN_NEW,
    };
    let mut overrides = vec![
        "objective=\"ppo_lag\"".to_string(),
        format!("run.dir={:?}", run_dir.display().to_string()),
        format!("run.device={device_name:?}"),
        "run.progress=false".into(),
        format!("policy.preset=\"{preset}\""),
        format!("reward_model.preset=\"{preset}\""),
        format!("cost_model.preset=\"{preset}\""),
        format!("data.sources.0.path={:?}", prompts.display().to_string()),
        "policy.max_length=128".into(),
        "rollout.prompts_per_step=8".into(),
        format!("rollout.max_new_tokens={new_tokens}"),
        // Sampling over every logit of random weights: no stop id is ever likely, so every
        // response runs the full length (the PyTorch reference forces the same).
        "rollout.valid_tokens_only=false".into(),
        "ppo.critics=\"separate\"".into(),
        "ppo.update_epochs=1".into(),
        "ppo.minibatch=8".into(),
        "ppo.micro_batch=8".into(),
        format!("train.steps={steps}"),
        "train.checkpoint_every=0".into(),
    ];
    if matches!(mode, RlMode::Half | RlMode::LoraHalf) {
        overrides.push(format!("frozen_precision=\"{half}\""));
    }
    if matches!(mode, RlMode::Lora | RlMode::LoraHalf) {
        overrides.push("lora.rank=16".into());
    }
    overrides
}

/// The RL iteration figure: `steps` PPO-Lagrangian steps in `mode` (see the module's table),
/// run under `work_dir` (what it writes there is removed afterwards). `first_step_s` and `second_step_s` are the first
/// two steps; `warm_step_s` the median of the later ones.
pub fn rl_figure(
    device: &Device,
    device_name: &str,
    shape: Shape,
    mode: RlMode,
    half: Precision,
    steps: usize,
    work_dir: &Path,
) -> Result<Value, String> {
    let prompts = put(work_dir, "prompts.txt", TINY_PROMPTS)?;
    let config_path = put(work_dir, "rl-iteration.toml", TINY_RLHF_CONFIG)?;
    let run_dir = work_dir.join(format!("run-{}", mode.name(half)));
    let _ = std::fs::remove_dir_all(&run_dir);
    let overrides = rl_overrides(shape, mode, half, steps, device_name, &run_dir, &prompts);
    let config = RlConfig::load(&config_path, &overrides).map_err(|e| e.to_string())?;
    let objective = build_online(config.objective, &config.sections());
    let peak = DeviceMemoryPeak::start(device);
    train_rl_with(&config, objective, device, &TrainOptions::default())
        .map_err(|e| e.to_string())?;
    let device_peak = peak.finish();
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .map_err(|e| format!("{}: {e}", run_dir.join("metrics.jsonl").display()))?;
    let lines: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("metrics line: {e}")))
        .collect::<Result<_, _>>()?;
    let _ = std::fs::remove_dir_all(&run_dir);
    let _ = std::fs::remove_file(&prompts);
    let _ = std::fs::remove_file(&config_path);
    let field = |l: &Value, key: &str| l[key].as_f64().unwrap_or(f64::NAN);
    let all: Vec<f64> = lines.iter().map(|l| field(l, "seconds")).collect();
    let warm: Vec<f64> = all.iter().skip(2).copied().collect();
    let share = lines
        .iter()
        .skip(2)
        .map(|l| field(l, "generation_share"))
        .sum::<f64>()
        / warm.len().max(1) as f64;
    let figure = json!({
        "figure": format!("rl-{}", mode.name(half)),
        "bench": "rl_iteration",
        "mode": mode.name(half),
        "shape": shape.name(),
        "steps": steps,
        "first_step_s": all.first().map(|s| round(*s, 3)),
        "second_step_s": all.get(1).map(|s| round(*s, 3)),
        "warm_step_s": (!warm.is_empty()).then(|| round(med(&warm), 3)),
        "all_s": seconds(&all),
        "generation_share": (!warm.is_empty()).then(|| round(share, 3)),
    });
    Ok(with_memory(figure, device_peak))
}

/// The names of the figures `saferlhf bench speed` runs by default, with `half` as the half
/// precision.
pub fn figure_names(half: Precision) -> Vec<String> {
    let mut names = vec![
        "generate-f32".to_string(),
        format!("generate-{half}"),
        "train-f32".into(),
    ];
    names.extend(RlMode::ALL.iter().map(|m| format!("rl-{}", m.name(half))));
    names
}

/// Runs the figure named `name` (one of [`figure_names`]; `generate-P` for any precision P)
/// on `device`, writing RL runs under `work_dir`.
#[allow(clippy::too_many_arguments)]
pub fn run_figure(
    name: &str,
    device: &Device,
    device_name: &str,
    shape: Shape,
    half: Precision,
    runs: usize,
    steps: usize,
    work_dir: &Path,
) -> Result<Value, String> {
    let mut figure = if let Some(p) = name.strip_prefix("generate-") {
        let precision: Precision = serde_json::from_value(json!(p))
            .map_err(|_| format!("figure `{name}`: unknown precision `{p}`"))?;
        generate_figure(device, shape, precision, runs)?
    } else if name == "train-f32" {
        train_figure(device, shape, runs)?
    } else if let Some(mode) = name.strip_prefix("rl-") {
        let mode = RlMode::parse(mode)?;
        rl_figure(device, device_name, shape, mode, half, steps, work_dir)?
    } else {
        return Err(format!(
            "unknown figure `{name}` (expected one of {})",
            figure_names(half).join(", ")
        ));
    };
    figure["device"] = json!(device_name);
    Ok(figure)
}

/// The figures as one Markdown table: time (median call, step, or warm RL step), first RL
/// step, throughput and memory.
pub fn markdown(figures: &[Value]) -> String {
    let num = |v: &Value, key: &str, digits: usize| match v[key].as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "–".into(),
    };
    let mut out = String::from(
        "| figure | device | shape | seconds | first step s | tokens/s | peak RSS GB | device peak GB |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for f in figures {
        let name = f["figure"].as_str().unwrap_or("?");
        if let Some(error) = f["error"].as_str() {
            out += &format!("| {name} | FAILED: {} |||||||\n", error.replace('|', "/"));
            continue;
        }
        let time = ["warm_step_s", "s_per_step", "median_s"]
            .iter()
            .find(|k| f[**k].is_number())
            .map(|k| num(f, k, 3))
            .unwrap_or_else(|| "–".into());
        out += &format!(
            "| {name} | {} | {} | {time} | {} | {} | {} | {} |\n",
            f["device"].as_str().unwrap_or("?"),
            f["shape"].as_str().unwrap_or("?"),
            num(f, "first_step_s", 3),
            num(f, "tokens_per_s", 1),
            num(f, "peak_rss_gb", 2),
            num(f, "device_peak_reserved_gb", 3),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for half in [Precision::Bf16, Precision::F16] {
            for mode in RlMode::ALL {
                assert_eq!(RlMode::parse(&mode.name(half)).unwrap(), mode);
            }
        }
        assert_eq!(Shape::parse("smollm2").unwrap(), Shape::Smollm2_135m);
        assert!(Shape::parse("7b").unwrap_err().contains("unknown shape"));
        assert!(
            RlMode::parse("qlora")
                .unwrap_err()
                .contains("unknown RL mode")
        );
    }

    #[test]
    fn tiny_figures_run_on_flex() {
        let device = Device::flex();
        let work = std::env::temp_dir().join(format!("saferlhf-speed-{}", std::process::id()));
        let figure = |name: &str, runs: usize, steps: usize| {
            run_figure(
                name,
                &device,
                "flex",
                Shape::Tiny,
                Precision::Bf16,
                runs,
                steps,
                &work,
            )
        };
        let gen16 = figure("generate-f16", 1, 1).unwrap();
        assert_eq!(gen16["precision"], "f16");
        assert!(gen16["tokens_per_s"].as_f64().unwrap() > 0.0, "{gen16}");
        // flex reports no device pools: the device figures are null, the RSS is measured.
        assert!(gen16["device_peak_reserved_gb"].is_null(), "{gen16}");
        assert!(gen16["peak_rss_gb"].as_f64().unwrap() > 0.0, "{gen16}");
        let train = figure("train-f32", 2, 1).unwrap();
        assert_eq!(train["all_s"].as_array().unwrap().len(), 2);
        let rl = figure("rl-lora-bf16", 1, 3).unwrap();
        assert_eq!(rl["mode"], "lora-bf16");
        assert_eq!(rl["all_s"].as_array().unwrap().len(), 3, "{rl}");
        assert!(rl["warm_step_s"].as_f64().unwrap() > 0.0, "{rl}");
        let left: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
        assert!(
            left.is_empty(),
            "the RL figure removes what it wrote: {left:?}"
        );
        std::fs::remove_dir_all(&work).unwrap();
        let table = markdown(&[
            gen16,
            train,
            rl,
            json!({"figure": "rl-full", "error": "x|y"}),
        ]);
        assert_eq!(table.lines().count(), 6, "{table}");
        assert!(table.contains("| rl-lora-bf16 | flex | tiny |"), "{table}");
        assert!(table.contains("FAILED: x/y"), "{table}");
        let err = figure("sing", 1, 1).unwrap_err();
        assert!(err.contains("unknown figure `sing`"), "{err}");
    }
}

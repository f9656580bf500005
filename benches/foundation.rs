//! Foundation benchmarks on the CPU backend (`flex`, f32): batched greedy generation with the KV
//! cache, and one full training step (forward, next-token cross-entropy, backward, AdamW).
//!
//! Run with `cargo bench --bench foundation` (release profile). Each figure is one JSON line on
//! stdout. Options (command line, or the environment variable in brackets):
//! - `--shape tiny|smollm2-135m|all` (`SAFERLHF_BENCH_SHAPE`, default `all`);
//! - `--runs N` (`SAFERLHF_BENCH_RUNS`, default 5): timed runs after one warm-up run;
//! - `--only generate|train` (`SAFERLHF_BENCH_ONLY`, default both);
//! - `--malloc retain|default` (`SAFERLHF_BENCH_MALLOC`, default `retain`): `retain` applies
//!   [`saferlhf::retain_freed_memory`] first, as the `saferlhf` binary does; `default` leaves
//!   glibc's allocator as it is, to measure what that setting is worth.
//!
//! Without the `--bench` flag that `cargo bench` passes (under `cargo test --benches`, or when the
//! binary is run by hand) it is a smoke test: defaults become `--shape tiny --runs 1`.
//!
//! Weights are random, drawn as the learner initialises a model trained from scratch
//! (`learner::params::seeded_init`: N(0, 0.02), Hugging Face's Llama initialisation, which the
//! PyTorch reference figures of issue 2 also used). The dense products do not care about the
//! values, but `exp` does: burn's default initialisation (unit-variance embeddings) spreads the
//! logits over hundreds of nats, and the exponentials of the log-softmax then mostly underflow,
//! which glibc's `expf` handles on a slow path that no trained model would hit. Greedy decoding
//! without stop ids always produces exactly `new` tokens per row.
//!
//! - `generate`: batch 8, 32-token random prompts, 64 new tokens, greedy, KV cache; `tokens_per_s`
//!   is new tokens (8 x 64) over the median wall time of a whole `generate` call (prefill
//!   included).
//! - `train_step`: batch 8 x 128 tokens on `Device::flex().autodiff()`: the mean next-token
//!   cross-entropy from `token_logprobs`, backward, `GradientsParams::from_grads`, one AdamW step;
//!   `forward_s`, `backward_s` and `optimizer_s` are the medians of each phase.
//!
//! `cpu_s_per_run` is the process's CPU time per timed run (Linux only, else null): about twice
//! the wall time when both threads of a 2-core machine work, about equal when the machine is busy
//! with something else. Timings on a shared machine are only as good as its load allows.

use std::time::Instant;

use saferlhf::Device;
use saferlhf::burn::optim::{AdamWConfig, GradientsParams};
use saferlhf::burn::tensor::{Bool, Int, Tensor, TensorData};
use saferlhf::learner::params::seeded_init;
use saferlhf::model::{LlamaConfig, LlamaForCausalLM};
use saferlhf::rollout::{GenerateConfig, generate};
use serde_json::Value;

const GEN_BATCH: usize = 8;
const GEN_PROMPT: usize = 32;
const GEN_NEW: usize = 64;
const TRAIN_BATCH: usize = 8;
const TRAIN_SEQ: usize = 128;
const LEARNING_RATE: f64 = 1e-5;

struct Options {
    shapes: Vec<&'static str>,
    runs: usize,
    retain: bool,
    generate: bool,
    train: bool,
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "foundation bench: {problem}\n\
         usage: foundation [--shape tiny|smollm2-135m|all] [--runs N] [--only generate|train] \
         [--malloc retain|default]"
    );
    std::process::exit(2)
}

fn parse_options() -> Options {
    // `cargo bench` passes `--bench`; `cargo test --benches` (and a bare run) does not. Without
    // it, as criterion does, the bench is a smoke test: the tiny shape, one timed run.
    let smoke = !std::env::args().any(|arg| arg == "--bench");
    let (default_shape, default_runs) = if smoke { ("tiny", "1") } else { ("all", "5") };
    let mut shape = std::env::var("SAFERLHF_BENCH_SHAPE").unwrap_or_else(|_| default_shape.into());
    let mut runs = std::env::var("SAFERLHF_BENCH_RUNS").unwrap_or_else(|_| default_runs.into());
    let mut only = std::env::var("SAFERLHF_BENCH_ONLY").unwrap_or_default();
    let mut malloc = std::env::var("SAFERLHF_BENCH_MALLOC").unwrap_or_else(|_| "retain".into());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .unwrap_or_else(|| usage(&format!("{key} needs a value")))
        };
        match key.as_str() {
            "--shape" => shape = value(),
            "--runs" => runs = value(),
            "--only" => only = value(),
            "--malloc" => malloc = value(),
            // `cargo bench` passes `--bench`; a filter or libtest flag may follow: ignore them.
            _ => {}
        }
    }
    let shapes = match shape.as_str() {
        "all" => vec!["tiny", "smollm2-135m"],
        "tiny" => vec!["tiny"],
        "smollm2-135m" | "smollm2" => vec!["smollm2-135m"],
        other => usage(&format!("unknown shape `{other}`")),
    };
    let runs: usize = match runs.parse() {
        Ok(n) if n >= 1 => n,
        _ => usage(&format!("--runs must be a positive integer, got `{runs}`")),
    };
    let (generate, train) = match only.as_str() {
        "" | "all" => (true, true),
        "generate" => (true, false),
        "train" => (false, true),
        other => usage(&format!("unknown --only `{other}`")),
    };
    let retain = match malloc.as_str() {
        "retain" => true,
        "default" => false,
        other => usage(&format!("unknown --malloc `{other}`")),
    };
    Options {
        shapes,
        runs,
        retain,
        generate,
        train,
    }
}

fn config(shape: &str) -> LlamaConfig {
    match shape {
        "tiny" => LlamaConfig::tiny(),
        _ => LlamaConfig::smollm2_135m(),
    }
}

/// The learner's initialisation of a model trained from scratch (seed 0).
fn init(model: LlamaForCausalLM) -> LlamaForCausalLM {
    seeded_init(model, 0, &[])
}

/// Deterministic pseudo-random token ids (xorshift64*), so every run sees the same prompts.
fn random_ids(count: usize, vocab: usize, seed: u64) -> Vec<u32> {
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

fn median(values: &[f64]) -> f64 {
    saferlhf::core::stats::median(values).unwrap_or(f64::NAN)
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// CPU seconds (user + system) this process has used so far, where Linux's `/proc` tells.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// One warm-up call, then `runs` timed calls; returns the timed wall seconds and the CPU
/// seconds of all timed calls together.
fn time_runs(runs: usize, mut run: impl FnMut()) -> (Vec<f64>, Option<f64>) {
    run();
    let cpu_start = cpu_seconds();
    let wall = (0..runs)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .collect();
    let cpu = cpu_start
        .zip(cpu_seconds())
        .map(|(a, b)| (b - a) / runs as f64);
    (wall, cpu)
}

/// Prints one JSON object on one line, keys in the given order.
fn print_line(fields: &[(&str, Value)]) {
    let body: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("{}:{value}", Value::from(*key)))
        .collect();
    println!("{{{}}}", body.join(","));
}

fn seconds(values: &[f64]) -> Value {
    values.iter().map(|&t| round(t, 4)).collect()
}

fn bench_generate(shape: &str, runs: usize, malloc: &str) {
    let config = config(shape);
    let device = Device::flex();
    let model = init(LlamaForCausalLM::new(&config, &device));
    let prompts: Vec<Vec<u32>> = (0..GEN_BATCH)
        .map(|row| random_ids(GEN_PROMPT, config.vocab_size, 1 + row as u64))
        .collect();
    let settings = GenerateConfig {
        max_new_tokens: GEN_NEW,
        // Greedy, cached, no stop ids: every row runs the full length.
        ..GenerateConfig::default()
    };
    let (times, cpu) = time_runs(runs, || {
        let rollout = generate(&model, &prompts, &settings, &device).expect("generation failed");
        assert_eq!(rollout.new_tokens(), GEN_BATCH * GEN_NEW);
    });
    let med = median(&times);
    print_line(&[
        ("bench", "generate".into()),
        ("shape", shape.into()),
        ("device", "flex".into()),
        ("malloc", malloc.into()),
        ("batch", GEN_BATCH.into()),
        ("prompt", GEN_PROMPT.into()),
        ("new", GEN_NEW.into()),
        (
            "tokens_per_s",
            round((GEN_BATCH * GEN_NEW) as f64 / med, 1).into(),
        ),
        ("runs", runs.into()),
        ("median_s", round(med, 4).into()),
        ("all_s", seconds(&times)),
        ("cpu_s_per_run", cpu.map(|c| round(c, 2)).into()),
    ]);
}

fn bench_train(shape: &str, runs: usize, malloc: &str) {
    let config = config(shape);
    let device = Device::flex().autodiff();
    let mut model = Some(init(LlamaForCausalLM::new(&config, &device)));
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
    // Seconds of the forward (with the loss), backward and optimizer phases of each step.
    let mut phases: Vec<[f64; 3]> = Vec::new();
    let (times, cpu) = time_runs(runs, || {
        let current = model.take().expect("model present between steps");
        let start = Instant::now();
        // Mean next-token cross-entropy: logits at every position that has a next token.
        let loss = current
            .token_logprobs(tokens.clone(), mask.clone())
            .mean()
            .neg();
        let forward = start.elapsed().as_secs_f64();
        let grads = GradientsParams::from_grads(loss.backward(), &current);
        let backward = start.elapsed().as_secs_f64();
        let updated = optim.step(LEARNING_RATE, current, grads);
        device.sync().expect("device sync failed");
        let step = start.elapsed().as_secs_f64();
        phases.push([forward, backward - forward, step - backward]);
        losses.push(loss.into_scalar::<f32>());
        model = Some(updated);
    });
    assert!(losses.iter().all(|l| l.is_finite()), "non-finite loss");
    // Drop the warm-up step's phases.
    let phases = &phases[1..];
    let phase = |i: usize| round(median(&phases.iter().map(|p| p[i]).collect::<Vec<_>>()), 3);
    let med = median(&times);
    print_line(&[
        ("bench", "train_step".into()),
        ("shape", shape.into()),
        ("device", "flex+autodiff".into()),
        ("malloc", malloc.into()),
        ("batch", TRAIN_BATCH.into()),
        ("seq", TRAIN_SEQ.into()),
        ("optimizer", "adamw".into()),
        ("s_per_step", round(med, 4).into()),
        (
            "tokens_per_s",
            round((TRAIN_BATCH * TRAIN_SEQ) as f64 / med, 1).into(),
        ),
        ("forward_s", phase(0).into()),
        ("backward_s", phase(1).into()),
        ("optimizer_s", phase(2).into()),
        ("runs", runs.into()),
        ("median_s", round(med, 4).into()),
        ("all_s", seconds(&times)),
        ("cpu_s_per_run", cpu.map(|c| round(c, 2)).into()),
    ]);
}

fn main() {
    let options = parse_options();
    let malloc = if options.retain && saferlhf::retain_freed_memory() {
        "retain"
    } else {
        "default"
    };
    for shape in &options.shapes {
        if options.generate {
            bench_generate(shape, options.runs, malloc);
        }
        if options.train {
            bench_train(shape, options.runs, malloc);
        }
    }
}

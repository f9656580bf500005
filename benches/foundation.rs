//! Foundation benchmarks on the CPU backend (`flex`, f32): batched greedy generation with the KV
//! cache, and one full training step (forward, next-token cross-entropy, backward, AdamW).
//!
//! Run with `cargo bench --bench foundation` (release profile). Each figure is one JSON line on
//! stdout. Options (command line, or the environment variable in brackets):
//! - `--shape tiny|smollm2-135m|all` (`SAFERLHF_BENCH_SHAPE`, default `all`);
//! - `--runs N` (`SAFERLHF_BENCH_RUNS`, default 5): timed runs after one warm-up run;
//! - `--only generate|train` (`SAFERLHF_BENCH_ONLY`, default both).
//!
//! Weights are randomly initialised: the speed of these dense computations does not depend on
//! the values, and greedy decoding without stop ids always produces exactly `new` tokens per row.

use std::time::Instant;

use saferlhf::Device;
use saferlhf::burn::optim::{AdamWConfig, GradientsParams};
use saferlhf::burn::tensor::{Bool, Int, Tensor, TensorData};
use saferlhf::model::model::gather_logprobs;
use saferlhf::model::{LlamaConfig, LlamaForCausalLM};
use saferlhf::rollout::{GenerateConfig, Sampler, generate};
use serde_json::json;

const GEN_BATCH: usize = 8;
const GEN_PROMPT: usize = 32;
const GEN_NEW: usize = 64;
const TRAIN_BATCH: usize = 8;
const TRAIN_SEQ: usize = 128;
const LEARNING_RATE: f64 = 1e-5;

struct Options {
    shapes: Vec<&'static str>,
    runs: usize,
    generate: bool,
    train: bool,
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "foundation bench: {problem}\n\
         usage: foundation [--shape tiny|smollm2-135m|all] [--runs N] [--only generate|train]"
    );
    std::process::exit(2)
}

fn parse_options() -> Options {
    let mut shape = std::env::var("SAFERLHF_BENCH_SHAPE").unwrap_or_else(|_| "all".into());
    let mut runs = std::env::var("SAFERLHF_BENCH_RUNS").unwrap_or_else(|_| "5".into());
    let mut only = std::env::var("SAFERLHF_BENCH_ONLY").unwrap_or_default();
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
        "micro" => {
            micro::run();
            std::process::exit(0)
        }
        other => usage(&format!("unknown --only `{other}`")),
    };
    Options {
        shapes,
        runs,
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
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// One warm-up call, then `runs` timed calls; returns the timed seconds.
fn time_runs(runs: usize, mut run: impl FnMut()) -> Vec<f64> {
    run();
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .collect()
}

fn bench_generate(shape: &str, runs: usize) {
    let config = config(shape);
    let device = Device::flex();
    let model = LlamaForCausalLM::new(&config, &device);
    let prompts: Vec<Vec<u32>> = (0..GEN_BATCH)
        .map(|row| random_ids(GEN_PROMPT, config.vocab_size, 1 + row as u64))
        .collect();
    let settings = GenerateConfig {
        max_new_tokens: GEN_NEW,
        stop_ids: Vec::new(),
        pad_id: 0,
        sampler: Sampler::Greedy,
        seed: 0,
        use_cache: true,
    };
    let times = time_runs(runs, || {
        let rollout = generate(&model, &prompts, &settings, &device).expect("generation failed");
        assert_eq!(rollout.new_tokens(), GEN_BATCH * GEN_NEW);
    });
    let med = median(&times);
    let line = json!({
        "bench": "generate",
        "shape": shape,
        "device": "flex",
        "batch": GEN_BATCH,
        "prompt": GEN_PROMPT,
        "new": GEN_NEW,
        "tokens_per_s": round((GEN_BATCH * GEN_NEW) as f64 / med, 1),
        "runs": runs,
        "median_s": round(med, 4),
        "all_s": times.iter().map(|&t| round(t, 4)).collect::<Vec<_>>(),
    });
    println!("{line}");
}

fn bench_train(shape: &str, runs: usize) {
    let config = config(shape);
    let device = Device::flex().autodiff();
    let mut model = Some(LlamaForCausalLM::new(&config, &device));
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
    let times = time_runs(runs, || {
        let current = model.take().expect("model present between steps");
        // Forward over all positions, then mean next-token cross-entropy.
        let logits = current.forward(tokens.clone(), mask.clone());
        let loss = gather_logprobs(logits, tokens.clone()).mean().neg();
        let grads = GradientsParams::from_grads(loss.backward(), &current);
        let updated = optim.step(LEARNING_RATE, current, grads);
        losses.push(loss.into_scalar::<f32>());
        device.sync().expect("device sync failed");
        model = Some(updated);
    });
    assert!(losses.iter().all(|l| l.is_finite()), "non-finite loss");
    let med = median(&times);
    let line = json!({
        "bench": "train_step",
        "shape": shape,
        "device": "flex+autodiff",
        "batch": TRAIN_BATCH,
        "seq": TRAIN_SEQ,
        "optimizer": "adamw",
        "s_per_step": round(med, 4),
        "tokens_per_s": round((TRAIN_BATCH * TRAIN_SEQ) as f64 / med, 1),
        "runs": runs,
        "median_s": round(med, 4),
        "all_s": times.iter().map(|&t| round(t, 4)).collect::<Vec<_>>(),
    });
    println!("{line}");
}

fn main() {
    let options = parse_options();
    for shape in &options.shapes {
        if options.generate {
            bench_generate(shape, options.runs);
        }
        if options.train {
            bench_train(shape, options.runs);
        }
    }
}

#[allow(dead_code)]
mod micro {
    use super::*;
    fn t(reps: usize, mut f: impl FnMut()) -> f64 {
        f();
        let s = Instant::now();
        for _ in 0..reps {
            f();
        }
        s.elapsed().as_secs_f64() / reps as f64
    }
    pub fn run() {
        let dev = Device::flex();
        for n in [49152usize, 576, 1536] {
            let k = 576;
            let x = Tensor::<2>::random([8, k], saferlhf::burn::tensor::Distribution::Default, &dev);
            let wt = Tensor::<2>::random([n, k], saferlhf::burn::tensor::Distribution::Default, &dev);
            let w = Tensor::<2>::random([k, n], saferlhf::burn::tensor::Distribution::Default, &dev);
            let reps = if n > 10000 { 10 } else { 100 };
            let v1 = t(reps, || { let _ = wt.clone().matmul(x.clone().transpose()).transpose().into_data(); });
            let v1b = t(reps, || { let _ = wt.clone().matmul(x.clone().transpose()).into_data(); });
            let v2 = t(reps, || { let _ = w.clone().transpose().matmul(x.clone().transpose()).into_data(); });
            let a = t(reps, || { let _ = x.clone().matmul(w.clone()).into_data(); });
            let b = t(reps, || { let _ = x.clone().matmul(wt.clone().transpose()).into_data(); });
            let gb = (k * n * 4) as f64 / 1e9;
            println!("n={n}: V1 Wt@x^T then ^T {:.3}ms ({:.1}GB/s) | V1 no final transpose {:.3}ms | V2 W^T@x^T {:.3}ms | A {:.3}ms ({:.1}GB/s) | B {:.3}ms", v1*1e3, gb/v1, v1b*1e3, v2*1e3, a*1e3, gb/a, b*1e3);
        }
        if std::env::var("MICRO_ALL").is_err() { return; }
        for m in [8usize, 1024] {
            for (k, n) in [(576usize, 576usize), (576, 192), (576, 1536), (1536, 576), (576, 49152)] {
                let reps = if m * n * k > 100_000_000 { 5 } else { 50 };
                let x = Tensor::<2>::random([m, k], saferlhf::burn::tensor::Distribution::Default, &dev);
                let w = Tensor::<2>::random([k, n], saferlhf::burn::tensor::Distribution::Default, &dev);
                let wt = Tensor::<2>::random([n, k], saferlhf::burn::tensor::Distribution::Default, &dev);
                let x3 = x.clone().reshape([m / 8, 8, k]).swap_dims(0, 1).swap_dims(0, 1).reshape([8, m / 8, k]);
                let a = t(reps, || { let _ = x.clone().matmul(w.clone()).into_data(); });
                let b = t(reps, || { let _ = x.clone().matmul(wt.clone().transpose()).into_data(); });
                let c = t(reps, || { let _ = saferlhf::burn::tensor::module::linear(x3.clone(), w.clone(), None).into_data(); });
                let d = t(reps, || { let _ = saferlhf::burn::tensor::module::linear(x3.clone(), wt.clone().transpose(), None).into_data(); });
                let fl = 2.0 * (m * n * k) as f64 / 1e9;
                let gb = (k * n * 4) as f64 / 1e9;
                println!("m={m} k={k} n={n}: [in,out] {:.3}ms {:.1}GF/s {:.1}GB/s | [out,in]^T {:.3}ms {:.1}GF/s | linear3d {:.3}ms | linear3d^T {:.3}ms",
                    a * 1e3, fl / a, gb / a, b * 1e3, fl / b, c * 1e3, d * 1e3);
            }
        }
        let big = Tensor::<1>::random([25_000_000], saferlhf::burn::tensor::Distribution::Default, &dev);
        let c = t(5, || { let _ = (big.clone() + 1.0).into_data(); });
        println!("add 100MB: {:.3}ms {:.1} GB/s (r+w)", c * 1e3, 0.2 / c);
    }
}

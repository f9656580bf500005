//! Foundation benchmarks on the CPU backend (`flex`, f32): batched greedy generation with the KV
//! cache, and one full training step (forward, next-token cross-entropy, backward, AdamW). The
//! figures are `saferlhf::speed`'s, which `saferlhf bench speed` also runs on any device.
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

use saferlhf::Device;
use saferlhf::model::Precision;
use saferlhf::speed::{Shape, generate_figure, train_figure};

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

fn main() {
    let options = parse_options();
    let malloc = if options.retain && saferlhf::retain_freed_memory() {
        "retain"
    } else {
        "default"
    };
    let device = Device::flex();
    for shape in &options.shapes {
        let shape = Shape::parse(shape).unwrap_or_else(|e| usage(&e));
        let mut figures = Vec::new();
        if options.generate {
            figures.push(generate_figure(
                &device,
                shape,
                Precision::F32,
                options.runs,
            ));
        }
        if options.train {
            figures.push(train_figure(&device, shape, options.runs));
        }
        for figure in figures {
            let mut figure = figure.unwrap_or_else(|e| panic!("{}: {e}", shape.name()));
            figure["device"] = "flex".into();
            figure["malloc"] = malloc.into();
            println!("{figure}");
        }
    }
}

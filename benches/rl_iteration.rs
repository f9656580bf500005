//! One online RL iteration (PPO-Lagrangian) at SmolLM2-135M's size on the CPU (`flex`), in each
//! memory mode: wall time per step and the process's peak resident memory.
//!
//! The work of one step: 8 prompts, 64 new tokens each (sampled, KV cache), old and reference
//! log-probs, reward and cost end scores, critic values, then 1 epoch over one minibatch of 8
//! (one micro-batch) with one AdamW step of the actor and of the critics. The models are random
//! weights of SmolLM2-135M's architecture (`policy.preset = "char-smollm2-135m"`; sampling over
//! all 49152 logits gives every response exactly 64 tokens), the reward and cost models the same
//! backbone with a score head, and the critics separate full copies (`ppo.critics = "separate"`).
//!
//! The figure is `saferlhf::speed::rl_figure`, which `saferlhf bench speed` also runs on any
//! device. Modes (each in a process of its own, so that each peak is its own):
//! - `full`: everything f32, the policy fully trained (6 full models: policy, reference, reward,
//!   cost, 2 critics; AdamW state for policy and critics);
//! - `bf16`: `frozen_precision = "bf16"` (reference, reward and cost held in bf16);
//! - `lora`: `[lora] rank = 16` on every projection (the reference is the policy's frozen
//!   weights; AdamW state for the adapters only);
//! - `lora-bf16`: both (the reference stays the shared f32 weights; reward and cost in bf16).
//!
//! Run with `cargo bench --bench rl_iteration` (release). Options: `--mode MODE` (one mode in
//! this process; default: every mode, each in a child process), `--steps N` (default 5). Each
//! mode prints one JSON line: `first_step_s`, `warm_step_s` (median of the steps after the
//! second), `generation_share`, `peak_rss_gb` (VmHWM: the whole process, models, optimizer
//! state, activations and allocator slack). Without `--bench` (under `cargo test --benches`, or
//! run by hand) it is a smoke test on the `char-tiny` preset, one step per mode.

use std::process::Command;

use saferlhf::Device;
use saferlhf::model::Precision;
use saferlhf::speed::{RlMode, Shape, rl_figure};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let real = args.iter().any(|a| a == "--bench");
    let steps: usize = arg(&args, "--steps")
        .map(|s| s.parse().expect("--steps N"))
        .unwrap_or(if real { 5 } else { 1 });
    let shape = if real {
        Shape::Smollm2_135m
    } else {
        Shape::Tiny
    };
    saferlhf::retain_freed_memory();
    if let Some(name) = arg(&args, "--mode") {
        let mode = RlMode::parse(&name).unwrap_or_else(|e| panic!("--mode: {e}"));
        let work = std::env::temp_dir().join(format!("saferlhf-bench-rl-{}", std::process::id()));
        let mut figure = rl_figure(
            &Device::flex(),
            "flex",
            shape,
            mode,
            Precision::Bf16,
            steps,
            &work,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let _ = std::fs::remove_dir_all(&work);
        figure["device"] = "flex".into();
        println!("{figure}");
        return;
    }
    let exe = std::env::current_exe().expect("the bench's own path");
    for mode in RlMode::ALL {
        let mut child = Command::new(&exe);
        child.args([
            "--mode",
            &mode.name(Precision::Bf16),
            "--steps",
            &steps.to_string(),
        ]);
        if real {
            child.arg("--bench");
        }
        let status = child.status().expect("running a mode");
        assert!(status.success(), "mode {mode:?} failed");
    }
}

//! `saferlhf bench speed`: a device's speed and memory figures (`saferlhf::speed`): batched
//! generation in f32 and half precision, one training step, one PPO-Lagrangian iteration in each
//! memory mode (full, half-precision frozen models, LoRA, both).
//!
//! ```text
//! saferlhf bench speed --device vulkan [--shape smollm2-135m] [--json speed.json]
//! ```
//!
//! Each figure runs in a child process of its own (this program, `--in-process`), so that each
//! peak memory is the figure's own; a figure that fails is reported as failed and the others
//! still run. Prints one Markdown table; exits with status 1 when a figure failed.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use saferlhf::model::Precision;
use saferlhf::speed::{Shape, figure_names, markdown, run_figure};
use serde_json::{Value, json};

/// Arguments of `saferlhf bench speed`.
#[derive(Args, Debug)]
pub struct SpeedArgs {
    /// The device: flex (CPU), wgpu, vulkan, cuda or cuda:N.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Model shape: smollm2-135m (SmolLM2-135M's architecture, random weights) or tiny.
    #[arg(long, default_value = "smollm2-135m")]
    pub shape: String,
    /// The half precision of the half-precision figures: bf16 or f16 (default: bf16 on flex,
    /// f16 on a GPU; `wgpu` has no bf16).
    #[arg(long)]
    pub half: Option<String>,
    /// The figures to run, comma-separated (default: all of generate-f32, generate-HALF,
    /// train-f32, rl-full, rl-HALF, rl-lora, rl-lora-HALF).
    #[arg(long, value_delimiter = ',')]
    pub figures: Vec<String>,
    /// Timed calls of the generation and training figures (after one warm-up call).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Steps of each RL figure (the warm figure is the median of the steps after the second).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where the RL figures write their runs (default: a new directory under the system's
    /// temporary directory, removed afterwards).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Run the figures in this process and print one JSON line each (what each child does).
    #[arg(long, hide = true)]
    pub in_process: bool,
}

fn half_of(args: &SpeedArgs) -> Result<Precision> {
    let half = match args.half.as_deref() {
        None if args.device.trim().eq_ignore_ascii_case("flex")
            || args.device.trim().eq_ignore_ascii_case("cpu") =>
        {
            Precision::Bf16
        }
        None => Precision::F16,
        Some("bf16") => Precision::Bf16,
        Some("f16") => Precision::F16,
        Some(other) => bail!("--half: expected bf16 or f16, got `{other}`"),
    };
    if !half.runs_on(&args.device) {
        bail!(
            "--half {half}: the `{}` device has no {half} (WGSL has no bf16); use --half f16",
            args.device
        );
    }
    Ok(half)
}

/// Runs `saferlhf bench speed`.
pub fn run(args: SpeedArgs) -> Result<()> {
    let device = saferlhf::parse_device(&args.device)
        .map_err(anyhow::Error::msg)
        .context("--device")?;
    let shape = Shape::parse(&args.shape)
        .map_err(anyhow::Error::msg)
        .context("--shape")?;
    let half = half_of(&args)?;
    if args.runs == 0 {
        bail!("--runs: must be at least 1");
    }
    if args.steps == 0 {
        bail!("--steps: must be at least 1");
    }
    let names = if args.figures.is_empty() {
        figure_names(half)
    } else {
        args.figures.clone()
    };
    let (work_dir, temporary) = match &args.work_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("saferlhf-bench-speed-{}", std::process::id())),
            true,
        ),
    };
    if args.in_process {
        let mut failed = 0;
        for name in &names {
            match run_figure(
                name,
                &device,
                &args.device,
                shape,
                half,
                args.runs,
                args.steps,
                &work_dir,
            ) {
                Ok(figure) => println!("{figure}"),
                Err(error) => {
                    failed += 1;
                    println!("{}", json!({ "figure": name, "error": error }));
                }
            }
        }
        if failed > 0 {
            bail!("{failed} figure(s) failed");
        }
        return Ok(());
    }
    let exe = std::env::current_exe().context("finding this program to run each figure")?;
    let mut figures: Vec<Value> = Vec::new();
    let started = Instant::now();
    for (i, name) in names.iter().enumerate() {
        eprintln!(
            "[{}/{}] {name} on {} ({}, {:.0} s so far)",
            i + 1,
            names.len(),
            args.device,
            shape.name(),
            started.elapsed().as_secs_f64()
        );
        let output = Command::new(&exe)
            .args(["bench", "speed", "--in-process", "--figures", name])
            .args(["--device", &args.device, "--shape", shape.name()])
            .args(["--half", &half.to_string()])
            .args(["--runs", &args.runs.to_string()])
            .args(["--steps", &args.steps.to_string()])
            .arg("--work-dir")
            .arg(&work_dir)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running figure {name}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok());
        figures.push(match line {
            Some(figure) => figure,
            None => json!({
                "figure": name,
                "error": format!("the figure's process ended with {} and no result", output.status),
            }),
        });
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    print!("{}", markdown(&figures));
    if let Some(path) = &args.json {
        let json = json!({
            "device": args.device,
            "shape": shape.name(),
            "half": half.to_string(),
            "runs": args.runs,
            "steps": args.steps,
            "figures": figures,
        });
        saferlhf::core::write_atomic(path, serde_json::to_string_pretty(&json)?.as_bytes())
            .with_context(|| format!("--json {}", path.display()))?;
    }
    let failed = figures.iter().filter(|f| f["error"].is_string()).count();
    if failed > 0 {
        bail!("{failed} of {} figures failed", figures.len());
    }
    eprintln!(
        "bench speed: {} figures in {:.0} s",
        figures.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

//! `saferlhf bench compensation`: the safety-compensation benchmark on the synthetic task (SFT,
//! learned reward and cost models, PPO, PPO-Lag, RePO, GRPO, Safe-GRPO, RePO-group (per-prompt
//! and global multipliers), SACPO, P-SACPO, SafeDPO; oracle evaluation on
//! held-out prompts; mean ± std over seeds next to the analytic optima).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use saferlhf::bench::{BenchSettings, run_compensation};

/// `saferlhf bench` subcommands.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// The safety-compensation benchmark on the synthetic task (book: "Safety compensation").
    Compensation(CompensationArgs),
    /// A device's speed and memory: generation, a training step and one RL iteration per
    /// memory mode, each figure in its own process (book: "Run on a GPU").
    Speed(crate::speed::SpeedArgs),
}

/// Arguments of `saferlhf bench compensation`.
#[derive(Args, Debug)]
pub struct CompensationArgs {
    /// Number of seeds (each draws its own task and trains every method).
    #[arg(long)]
    pub seeds: Option<usize>,
    /// RL steps of the online methods and optimizer steps of each SACPO stage and of SafeDPO.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Output directory (must be new or empty).
    #[arg(long, default_value = "runs/bench-compensation")]
    pub out: PathBuf,
    /// A smoke test: one seed, a small task, a few steps of everything (seconds).
    #[arg(long)]
    pub quick: bool,
    /// Policy preset: char-tiny or char-small.
    #[arg(long)]
    pub preset: Option<String>,
    /// Compute device: flex (CPU), wgpu, vulkan, cuda or cuda:N.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Oracle mode: the online methods train on the synthetic task's exact reward and cost
    /// instead of the learned reward and cost models.
    #[arg(long)]
    pub oracle_rl: bool,
    /// The RL methods' penalty on the reward of a response cut at the token limit (default 1;
    /// 0 turns the guard off).
    #[arg(long)]
    pub truncation_penalty: Option<f64>,
    /// Override one benchmark setting, KEY=VALUE (repeatable; applied last, in order). The keys
    /// are the field names `--print-settings` shows, e.g. `--set kl_coeff=0 --set rl_steps=300`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Print the settings as JSON and exit.
    #[arg(long)]
    pub print_settings: bool,
}

/// Runs `saferlhf bench ...`.
pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Compensation(args) => compensation(args),
        BenchCommand::Speed(args) => crate::speed::run(args),
    }
}

fn compensation(args: CompensationArgs) -> Result<()> {
    let mut settings = if args.quick {
        BenchSettings::quick()
    } else {
        BenchSettings::full(3)
    };
    if let Some(s) = args.seeds {
        settings.seeds = s;
    }
    if let Some(steps) = args.steps {
        settings.rl_steps = steps;
        settings.sacpo_steps = steps;
    }
    if let Some(p) = args.preset {
        settings.preset = p;
    }
    settings.oracle_rl = args.oracle_rl;
    if let Some(p) = args.truncation_penalty {
        if !(p.is_finite() && p >= 0.0) {
            anyhow::bail!("--truncation-penalty: must be >= 0, got {p}");
        }
        settings.truncation_penalty = p;
    }
    let settings = settings.with_overrides(&args.overrides)?;
    if args.print_settings {
        println!("{}", serde_json::to_string_pretty(&settings)?);
        return Ok(());
    }
    let device = saferlhf::parse_device(&args.device)
        .map_err(anyhow::Error::msg)
        .context("--device")?;
    let started = Instant::now();
    let report = run_compensation(&settings, &args.out, &device)?;
    println!("{}", report.table());
    println!("On the training prompts:\n{}", report.train_prompts_table());
    println!("Analytic optima:\n{}", report.optima_table());
    println!("{}", report.verdict());
    println!("{}", report.group_verdict());
    if let Some(check) = report.ppo_check() {
        println!("{check}");
    }
    eprintln!(
        "bench compensation: {} seed(s) in {:.0} s; report in {}",
        settings.seeds,
        started.elapsed().as_secs_f64(),
        args.out.join("report.md").display()
    );
    Ok(())
}

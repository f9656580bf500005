//! `saferlhf bench compensation`: the safety-compensation benchmark on the synthetic task (SFT,
//! learned reward and cost models, PPO, PPO-Lag, RePO, SACPO, P-SACPO; oracle evaluation on
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
}

/// Arguments of `saferlhf bench compensation`.
#[derive(Args, Debug)]
pub struct CompensationArgs {
    /// Number of seeds (each draws its own task and trains every method).
    #[arg(long)]
    pub seeds: Option<usize>,
    /// RL steps of PPO / PPO-Lag / RePO and optimizer steps of each SACPO stage.
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
    /// Print the settings as JSON and exit.
    #[arg(long)]
    pub print_settings: bool,
}

/// Runs `saferlhf bench ...`.
pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Compensation(args) => compensation(args),
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
    println!("Analytic optima:\n{}", report.optima_table());
    println!("{}", report.verdict());
    eprintln!(
        "bench compensation: {} seed(s) in {:.0} s; report in {}",
        settings.seeds,
        started.elapsed().as_secs_f64(),
        args.out.join("report.md").display()
    );
    Ok(())
}

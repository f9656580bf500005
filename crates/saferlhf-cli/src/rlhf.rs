//! `saferlhf rlhf`: online constrained RLHF (PPO, PPO-Lagrangian, RePO, reward shaping) from a
//! TOML config (`configs/{ppo,ppo-lag,repo}.toml`), with `--set` overrides and `--resume`.

use anyhow::{Context, Result};
use saferlhf::learner::rl::{RlConfig, train_rl};

use crate::train::TrainArgs;

/// Runs `saferlhf rlhf` (`--stop-at-step` counts RL steps: rollout + update).
pub fn run(args: TrainArgs) -> Result<()> {
    let (file, run_dir) = crate::train::config_source(&args)?;
    let mut config = RlConfig::load(&file, &args.set)?;
    if let Some(dir) = run_dir {
        config.run.dir = dir;
    }
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let device = saferlhf::parse_device(&config.run.device)
        .map_err(anyhow::Error::msg)
        .context("config key `run.device`")?;
    let options = crate::train::options(&args)?;
    eprintln!(
        "saferlhf rlhf ({}): run directory {}{}",
        config.objective.as_str(),
        config.run.dir.display(),
        if options.resume.is_some() {
            " (resuming)"
        } else {
            ""
        }
    );
    let summary = train_rl(&config, &device, &options)?;
    crate::train::print_run_end(
        (summary.step, summary.total_steps, summary.finished),
        summary.seconds,
        summary.last_metrics.as_ref().map(|m| ("last step", m)),
        summary.last_checkpoint.as_deref(),
        summary.final_model.as_deref().map(|f| ("final policy", f)),
    );
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}

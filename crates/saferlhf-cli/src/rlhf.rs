//! `saferlhf rlhf`: online constrained RLHF (PPO, PPO-Lagrangian, RePO, reward shaping) from a
//! TOML config (`configs/{ppo,ppo-lag,repo}.toml`), with `--set` overrides and `--resume`.

use anyhow::Result;
use saferlhf::learner::rl::{RlConfig, train_rl};

use crate::train::TrainArgs;

/// Runs `saferlhf rlhf` (`--stop-at-step` counts RL steps: rollout + update).
pub fn run(args: TrainArgs) -> Result<()> {
    let (file, run_dir) = crate::train::config_source(&args)?;
    let mut config = RlConfig::load(&file, &args.set)?;
    if let Some(dir) = run_dir {
        config.run.dir = dir;
    }
    let command = format!("rlhf ({})", config.objective.as_str());
    let start = crate::train::start(&args, &config, &command)?;
    let Some((device, options)) = start else {
        return Ok(());
    };
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

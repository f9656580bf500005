//! `saferlhf rlhf`: online constrained RLHF (PPO, PPO-Lagrangian, RePO, reward shaping) from a
//! TOML config (`configs/{ppo,ppo-lag,repo}.toml`), with `--set` overrides and `--resume`.
//! A config with an `[oracle]` section (as the benchmark writes them) trains on, or logs, the
//! synthetic task's exact scores.

use anyhow::{Context, Result};
use saferlhf::bench::{OracleScorer, SyntheticTask};
use saferlhf::learner::objectives::build_online;
use saferlhf::learner::rl::{RlConfig, train_rl, train_rl_scored};

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
    let summary = match &config.oracle.task {
        None => train_rl(&config, &device, &options)?,
        Some(task) => {
            let task = SyntheticTask::from_spec_file(task)
                .with_context(|| format!("oracle.task = {}", task.display()))?;
            let scorer = OracleScorer(task.oracle().clone());
            let role = config.oracle.role;
            let objective = build_online(config.objective, &config.sections());
            train_rl_scored(&config, objective, Some((&scorer, role)), &device, &options)?
        }
    };
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

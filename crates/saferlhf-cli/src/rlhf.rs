//! `saferlhf rlhf`: online constrained RLHF (PPO, PPO-Lagrangian, RePO, reward shaping) from a
//! TOML config (`configs/{ppo,ppo-lag,repo}.toml`), with `--set` overrides and `--resume`.

use anyhow::{Context, Result, bail};
use saferlhf::learner::checkpoint::{CONFIG_FILE, resolve_resume};
use saferlhf::learner::rl::{RlConfig, train_rl};

use crate::train::TrainArgs;

/// Runs `saferlhf rlhf` (`--stop-at-step` counts RL steps: rollout + update).
pub fn run(args: TrainArgs) -> Result<()> {
    let resume_dir = args.resume.clone().flatten();
    let config = match (&args.config, &resume_dir) {
        (Some(path), _) => RlConfig::load(path, &args.set)?,
        (None, Some(dir)) => {
            let checkpoint = resolve_resume(dir)?;
            let mut config = RlConfig::load(&checkpoint.join(CONFIG_FILE), &args.set)?;
            if !args
                .set
                .iter()
                .any(|s| s.trim_start().starts_with("run.dir"))
                && let Some(run_dir) = checkpoint.parent().and_then(|p| p.parent())
            {
                config.run.dir = run_dir.to_path_buf();
            }
            config
        }
        (None, None) => bail!("--config is required (or --resume DIR to continue a run)"),
    };
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
    eprintln!(
        "  step {}/{} in {:.1} s{}",
        summary.step,
        summary.total_steps,
        summary.seconds,
        if summary.finished {
            String::new()
        } else {
            " (stopped early: continue with --resume)".to_string()
        }
    );
    if let Some(m) = &summary.last_metrics {
        eprintln!("  last step: {}", serde_json::Value::Object(m.clone()));
    }
    if let Some(c) = &summary.last_checkpoint {
        eprintln!("  checkpoint: {}", c.display());
    }
    if let Some(f) = &summary.final_model {
        eprintln!("  final policy: {}", f.display());
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}

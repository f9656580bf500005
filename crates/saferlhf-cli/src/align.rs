//! `saferlhf align`: offline alignment from a TOML config: one DPO run (`task = "dpo"`,
//! configs/dpo.toml) or the DPO stages of SACPO (`task = "sacpo"`, configs/sacpo.toml), with
//! the same `--set`, `--resume`, `--stop-at-step` and `--time-limit` as the training
//! subcommands. `saferlhf merge` (P-SACPO) is in merge.rs.

use anyhow::{Result, bail};
use saferlhf::learner::{TaskKind, TrainConfig, align};

use crate::train::{TrainArgs, config_source, print_summary, start};

/// The config of `--config`, or of `--resume DIR` alone (see [`config_source`]).
fn load_config(args: &TrainArgs) -> Result<TrainConfig> {
    let (file, run_dir) = config_source(args)?;
    let mut config = TrainConfig::load(&file, &args.set, None)?;
    if let Some(dir) = run_dir {
        config.run.dir = dir;
    }
    match config.task() {
        TaskKind::Dpo | TaskKind::Sacpo => Ok(config),
        other => bail!(
            "config key `task`: `saferlhf align` runs task = \"dpo\" or \"sacpo\", not `{other}` \
             (use `saferlhf {}`)",
            match other {
                TaskKind::Sft => "sft",
                TaskKind::Reward => "train-reward",
                _ => "train-cost",
            }
        ),
    }
}

/// Runs `saferlhf align`.
pub fn run(args: TrainArgs) -> Result<()> {
    let config = load_config(&args)?;
    // A SACPO run resumes stage by stage from its run directory (`--resume DIR` names it).
    let command = format!("align ({})", config.task());
    let Some((device, options)) = start(&args, &config, &command)? else {
        return Ok(());
    };
    let summary = align(&config, &device, &options)?;
    for stage in &summary.stages {
        eprintln!(
            "{}: {} pairs, β = {}",
            stage.name,
            stage.preference.as_str(),
            stage.beta
        );
        print_summary(&stage.summary);
    }
    match &summary.final_model {
        Some(f) => eprintln!("aligned model: {}", f.display()),
        None => eprintln!("not finished: continue with --resume"),
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}

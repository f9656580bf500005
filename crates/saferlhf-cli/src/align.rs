//! `saferlhf align`: offline alignment from a TOML config: one DPO run (`task = "dpo"`,
//! configs/dpo.toml) or the DPO stages of SACPO (`task = "sacpo"`, configs/sacpo.toml), with
//! the same `--set`, `--resume`, `--stop-at-step` and `--time-limit` as the training
//! subcommands. `saferlhf merge` (P-SACPO) is in merge.rs.

use std::path::Path;

use anyhow::{Result, bail};
use saferlhf::learner::checkpoint::{CONFIG_FILE, resolve_resume};
use saferlhf::learner::{TaskKind, TrainConfig, align};

use crate::train::{TrainArgs, device, options, print_summary};

/// Whether `--set` moves the run directory.
fn sets_run_dir(args: &TrainArgs) -> bool {
    args.set
        .iter()
        .any(|s| s.trim_start().starts_with("run.dir"))
}

/// The config of `--config`, or of `--resume DIR` alone: a run directory (DPO or SACPO) holds
/// its resolved `config.toml`; a checkpoint directory holds its own.
fn load_config(args: &TrainArgs) -> Result<TrainConfig> {
    let resume_dir = args.resume.clone().flatten();
    let config = match (&args.config, &resume_dir) {
        (Some(path), _) => TrainConfig::load(path, &args.set, None)?,
        (None, Some(dir)) => {
            let (file, run_dir) =
                if dir.join(CONFIG_FILE).is_file() && !dir.join("state.json").is_file() {
                    (dir.join(CONFIG_FILE), dir.clone())
                } else {
                    let checkpoint = resolve_resume(dir)?;
                    let run_dir = checkpoint
                        .parent()
                        .and_then(Path::parent)
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| dir.clone());
                    (checkpoint.join(CONFIG_FILE), run_dir)
                };
            let mut config = TrainConfig::load(&file, &args.set, None)?;
            if !sets_run_dir(args) {
                config.run.dir = run_dir;
            }
            config
        }
        (None, None) => bail!("--config is required (or --resume DIR to continue a run)"),
    };
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
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let device = device(&config)?;
    // A SACPO run resumes stage by stage from its run directory (`--resume DIR` names it).
    let options = options(&args)?;
    eprintln!(
        "saferlhf align ({}): run directory {}{}",
        config.task(),
        config.run.dir.display(),
        if options.resume.is_some() {
            " (resuming)"
        } else {
            ""
        }
    );
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

//! `saferlhf sft`, `saferlhf train-reward`, `saferlhf train-cost`: train a policy, reward model
//! or cost model from a TOML config (`configs/*.toml`), with `--set` overrides and `--resume`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use saferlhf::learner::checkpoint::{CONFIG_FILE, STATE_FILE, resolve_resume};
use saferlhf::learner::{
    Resume, SessionConfig, TaskKind, TrainConfig, TrainOptions, TrainSummary, train,
};

/// Arguments shared by the three training subcommands.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The TOML config (see configs/). Optional with `--resume DIR`, which then reads the
    /// checkpoint's own config.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a config key, e.g. `--set optim.lr=1e-4 --set data.sources.0.path=x.jsonl`
    /// (dotted keys, TOML values; repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue a run exactly: from the newest checkpoint of the config's run directory, or from
    /// DIR (a checkpoint directory, or a run directory whose newest checkpoint is used).
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub resume: Option<Option<PathBuf>>,
    /// Stop after this many optimizer steps (writing a checkpoint); the schedule still spans the
    /// whole run, so `--resume` later continues exactly.
    #[arg(long, value_name = "STEPS")]
    pub stop_at_step: Option<u64>,
    /// Stop after the step that ends past this many minutes (writing a checkpoint).
    #[arg(long, value_name = "MINUTES")]
    pub time_limit: Option<f64>,
    /// Print the resolved config (every default filled in) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Print the run summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs one training subcommand for `task`.
pub fn run(task: TaskKind, args: TrainArgs) -> Result<()> {
    let (file, run_dir) = config_source(&args)?;
    let mut config = TrainConfig::load(&file, &args.set, Some(task))?;
    if let Some(dir) = run_dir {
        config.run.dir = dir;
    }
    let Some((device, options)) = start(&args, &config, task.as_str())? else {
        return Ok(());
    };
    let summary = train(&config, &device, &options)?;
    print_summary(&summary);
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}

/// The config file a command reads and, for `--resume DIR` without `--config`, the run
/// directory the run continues in (unless `--set run.dir=...` moves it): a run directory holding
/// its resolved `config.toml` (a SACPO run) is used as is; otherwise DIR is a checkpoint (or a
/// run directory whose newest checkpoint is taken) and its own `config.toml` is read.
pub fn config_source(args: &TrainArgs) -> Result<(PathBuf, Option<PathBuf>)> {
    let resume_dir = args.resume.clone().flatten();
    let (file, run_dir) = match (&args.config, &resume_dir) {
        (Some(path), _) => return Ok((path.clone(), None)),
        (None, Some(dir)) => {
            if dir.join(CONFIG_FILE).is_file() && !dir.join(STATE_FILE).is_file() {
                (dir.join(CONFIG_FILE), dir.clone())
            } else {
                let checkpoint = resolve_resume(dir)?;
                let run_dir = checkpoint
                    .parent()
                    .and_then(Path::parent)
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| dir.clone());
                (checkpoint.join(CONFIG_FILE), run_dir)
            }
        }
        (None, None) => bail!("--config is required (or --resume DIR to continue a run)"),
    };
    let moved = args
        .set
        .iter()
        .any(|s| s.trim_start().starts_with("run.dir"));
    Ok((file, (!moved).then_some(run_dir)))
}

/// The common start of `train-*`, `align` and `rlhf` once the config is loaded: with
/// `--print-config`, prints the resolved config and returns `None`; otherwise the device of
/// `run.device` and the options of the flags, after a "run directory" line on stderr naming the
/// command.
pub fn start(
    args: &TrainArgs,
    config: &impl SessionConfig,
    command: &str,
) -> Result<Option<(saferlhf::Device, TrainOptions)>> {
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(None);
    }
    let run = config.run();
    let device = saferlhf::parse_device(&run.device)
        .map_err(anyhow::Error::msg)
        .context("config key `run.device`")?;
    let options = options(args)?;
    let resuming = if options.resume.is_some() {
        " (resuming)"
    } else {
        ""
    };
    eprintln!(
        "saferlhf {command}: run directory {}{resuming}",
        run.dir.display()
    );
    Ok(Some((device, options)))
}

/// The run-time options of the training flags.
pub fn options(args: &TrainArgs) -> Result<TrainOptions> {
    let time_limit = match args.time_limit {
        Some(m) if !(m.is_finite() && m > 0.0) => bail!("--time-limit must be > 0 minutes"),
        Some(m) => Some(Duration::from_secs_f64(m * 60.0)),
        None => None,
    };
    Ok(TrainOptions {
        resume: args.resume.clone().map(|dir| match dir {
            Some(dir) => Resume::From(dir),
            None => Resume::Latest,
        }),
        stop_at_step: args.stop_at_step,
        time_limit,
    })
}

/// Prints what a training run did on stderr.
pub fn print_summary(summary: &TrainSummary) {
    for line in &summary.data.reports {
        eprintln!("  data: {line}");
    }
    eprintln!(
        "  {} training / {} held-out examples ({} evaluated); {} sequences truncated to \
         model.max_length; {} identical pairs dropped",
        summary.data.train,
        summary.data.eval_total,
        summary.data.eval,
        summary.data.truncated,
        summary.data.dropped_identical
    );
    print_run_end(
        (summary.step, summary.total_steps, summary.finished),
        summary.seconds,
        summary.eval.as_ref().map(|e| ("held-out", e)),
        summary.last_checkpoint.as_deref(),
        summary.final_model.as_deref().map(|f| ("final model", f)),
    );
}

/// Prints where a run ended: steps, time, its last figures, checkpoint and final model.
pub fn print_run_end(
    (step, total, finished): (u64, u64, bool),
    seconds: f64,
    figures: Option<(&str, &serde_json::Map<String, serde_json::Value>)>,
    checkpoint: Option<&Path>,
    final_model: Option<(&str, &Path)>,
) {
    let note = if finished {
        ""
    } else {
        " (stopped early: continue with --resume)"
    };
    eprintln!("  step {step}/{total} in {seconds:.1} s{note}");
    if let Some((label, m)) = figures {
        eprintln!("  {label}: {}", serde_json::Value::Object(m.clone()));
    }
    if let Some(c) = checkpoint {
        eprintln!("  checkpoint: {}", c.display());
    }
    if let Some((label, f)) = final_model {
        eprintln!("  {label}: {}", f.display());
    }
}

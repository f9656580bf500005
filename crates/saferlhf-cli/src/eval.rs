//! `saferlhf eval`: evaluate a policy on a prompt set with an evaluation reward and cost model
//! (or the synthetic task's oracle): safety rate, per-prompt violation, reward/cost with 95%
//! intervals, KL to a reference, an optional arena against a second policy, and plots.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use saferlhf::bench::{PolicyEvalConfig, Scorer, evaluate_policy, load_policy, read_prompt_file};
use saferlhf::eval::{
    PlotRef, Report, arena, plot_cost_histogram, plot_reward_cost, plot_training_curves,
    plot_violation_bounds, summarize,
};

/// Arguments of `saferlhf eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The policy directory (as written by sft, rlhf, align or merge).
    #[arg(long, value_name = "DIR")]
    pub policy: PathBuf,
    /// Evaluation prompts: one per line, or JSONL with a `prompt` field.
    #[arg(long, value_name = "FILE")]
    pub prompts: PathBuf,
    /// Evaluation reward model (a `train-reward` output directory); needs --cost-model.
    #[arg(long, value_name = "DIR")]
    pub reward_model: Option<PathBuf>,
    /// Evaluation cost model (a `train-cost` output directory); needs --reward-model.
    #[arg(long, value_name = "DIR")]
    pub cost_model: Option<PathBuf>,
    /// Score with the exact oracle of a synthetic task (its task.json) instead of models.
    #[arg(long, value_name = "TASK_JSON")]
    pub oracle: Option<PathBuf>,
    /// Reference policy for KL(π‖π_ref) (usually the SFT policy).
    #[arg(long, value_name = "DIR")]
    pub reference: Option<PathBuf>,
    /// A second policy to compare against in an arena table (the policy is blue, this red).
    #[arg(long, value_name = "DIR")]
    pub compare: Option<PathBuf>,
    /// Let the sampler draw every id, even those no response can hold as text (padding, `<unk>`,
    /// special tokens other than the stop ids, ids past the tokenizer); by default they are
    /// never drawn, as in RL training.
    #[arg(long)]
    pub all_tokens: bool,
    /// A training run's metrics.jsonl to plot training curves from (repeatable).
    #[arg(long, value_name = "FILE")]
    pub metrics: Vec<PathBuf>,
    /// Sampled responses per prompt.
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Nucleus mass (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Most response tokens.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Rows generated and scored together.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Cost threshold: a response is unsafe iff its cost is above it.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub threshold: f64,
    /// Compute device: flex (CPU), wgpu, vulkan, cuda or cuda:N.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Output directory: report.json, report.md, samples.jsonl, *.svg.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Runs `saferlhf eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let device = saferlhf::parse_device(&args.device)
        .map_err(anyhow::Error::msg)
        .context("--device")?;
    let config = PolicyEvalConfig {
        samples: args.samples,
        temperature: args.temperature,
        top_p: args.top_p,
        max_new_tokens: args.max_new_tokens,
        seed: args.seed,
        batch_size: args.batch_size,
        greedy: true,
        keep_text: true,
        progress: true,
        valid_tokens_only: !args.all_tokens,
    };
    config.validate()?;
    if !args.threshold.is_finite() {
        bail!("--threshold: must be finite, got {}", args.threshold);
    }
    let scorer = match (&args.reward_model, &args.cost_model, &args.oracle) {
        (Some(r), Some(c), None) => Scorer::models(r, c, &device)?,
        (None, None, Some(o)) => {
            if !o.is_file() {
                bail!(
                    "--oracle: {} is not a file (a synthetic task.json)",
                    o.display()
                );
            }
            Scorer::oracle(o)?
        }
        (Some(_), None, None) => bail!("--reward-model needs --cost-model as well"),
        (None, Some(_), None) => bail!("--cost-model needs --reward-model as well"),
        (None, None, None) => {
            bail!(
                "give an evaluation scorer: --reward-model DIR --cost-model DIR, or --oracle task.json"
            )
        }
        _ => bail!("--oracle cannot be combined with --reward-model / --cost-model"),
    };
    for m in &args.metrics {
        if !m.is_file() {
            bail!("--metrics: {} is not a file", m.display());
        }
    }
    let prompts = read_prompt_file(&args.prompts)?;
    let policy = load_policy(&args.policy, "--policy", &device)?;
    let reference = match &args.reference {
        Some(dir) => Some(load_policy(dir, "--reference", &device)?),
        None => None,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("--out: creating {}", args.out.display()))?;
    let name = |dir: &PathBuf| -> String {
        let parts: Vec<String> = dir
            .components()
            .rev()
            .take(2)
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        parts.into_iter().rev().collect::<Vec<_>>().join("/")
    };
    let policy_name = name(&args.policy);
    eprintln!(
        "saferlhf eval: {} on {} prompts ({}), scored by {}",
        args.policy.display(),
        prompts.len(),
        config.sampled_label(),
        scorer.describe()
    );
    let eval = |name: &str, policy| {
        let r = reference.as_ref();
        evaluate_policy(name, policy, &prompts, &scorer, r, &config, &device)
    };
    let ev = eval(&policy_name, &policy)?;
    let mut methods = vec![ev.sampled.clone()];
    methods.extend(ev.greedy.clone());
    let mut compare_eval = None;
    if let Some(dir) = &args.compare {
        let other = load_policy(dir, "--compare", &device)?;
        let mut compare_name = name(dir);
        if compare_name == policy_name {
            compare_name = format!("{compare_name} (compare)");
        }
        let cev = eval(&compare_name, &other)?;
        methods.push(cev.sampled.clone());
        methods.extend(cev.greedy.clone());
        compare_eval = Some(cev);
    }
    let summaries = methods
        .iter()
        .map(|m| summarize(m, args.threshold))
        .collect::<Result<Vec<_>, _>>()?;
    let mut report = Report::new(
        format!("Evaluation of {}", args.policy.display()),
        summaries,
    );
    let set = |r: &mut Report, k: &str, v: String| {
        r.settings.insert(k.to_string(), v);
    };
    set(&mut report, "policy", args.policy.display().to_string());
    set(
        &mut report,
        "prompts",
        format!("{} ({} prompts)", args.prompts.display(), prompts.len()),
    );
    set(&mut report, "evaluation scorer", scorer.describe());
    set(
        &mut report,
        "decoding",
        format!(
            "{}; greedy; max_new_tokens {}",
            config.sampled_label(),
            config.max_new_tokens
        ),
    );
    set(&mut report, "seed", args.seed.to_string());
    set(&mut report, "cost threshold", args.threshold.to_string());
    set(
        &mut report,
        "reference (KL)",
        args.reference
            .as_ref()
            .map_or("none".into(), |p| p.display().to_string()),
    );
    if let Some(c) = &args.compare {
        set(&mut report, "compare", c.display().to_string());
    }
    if let Some(cev) = &compare_eval {
        report.arena = Some(arena(&ev.sampled, &cev.sampled, args.threshold)?);
    }
    let sampled: Vec<&saferlhf::eval::MethodSamples> =
        methods.iter().filter(|m| m.decoding != "greedy").collect();
    plot_cost_histogram(
        &sampled,
        args.threshold,
        args.out.join("cost_histogram.svg"),
    )?;
    plot_reward_cost(&sampled, args.threshold, args.out.join("reward_cost.svg"))?;
    plot_violation_bounds(
        &sampled,
        args.threshold,
        args.out.join("violation_bounds.svg"),
    )?;
    report.plots.push(PlotRef {
        title: "Per-prompt mean cost".into(),
        path: "cost_histogram.svg".into(),
    });
    report.plots.push(PlotRef {
        title: "95% upper bound on each prompt's violation probability".into(),
        path: "violation_bounds.svg".into(),
    });
    report.plots.push(PlotRef {
        title: "Reward against cost of every sampled response".into(),
        path: "reward_cost.svg".into(),
    });
    if !args.metrics.is_empty() {
        let runs: Vec<(String, PathBuf)> = args
            .metrics
            .iter()
            .map(|p| {
                (
                    name(&p.parent().map(PathBuf::from).unwrap_or_default()),
                    p.clone(),
                )
            })
            .collect();
        plot_training_curves(
            &runs,
            &saferlhf::eval::DEFAULT_TRAINING_KEYS,
            args.out.join("training_curves.svg"),
        )?;
        report.plots.push(PlotRef {
            title: "Training curves".into(),
            path: "training_curves.svg".into(),
        });
    }
    let mut lines = String::new();
    for m in &methods {
        for s in &m.samples {
            let row = serde_json::json!({
                "method": m.name,
                "decoding": m.decoding,
                "prompt": m.prompts[s.prompt_id].text,
                "kind": m.prompts[s.prompt_id].kind,
                "sample": s.sample,
                "response": s.text,
                "reward": s.reward,
                "cost": s.cost,
                "kl": s.kl,
                "refused": s.refused,
                "length": s.length,
            });
            lines.push_str(&row.to_string());
            lines.push('\n');
        }
    }
    saferlhf::eval::write_atomic(args.out.join("samples.jsonl"), lines.as_bytes())?;
    report.write_json(args.out.join("report.json"))?;
    report.write_markdown(args.out.join("report.md"))?;
    for s in &report.methods {
        eprintln!(
            "  {} [{}]: safety rate {:.1}%, prompts with any violation {:.1}%, reward {:.3}, cost {:.3}{}",
            s.method,
            s.decoding,
            100.0 * s.safety_rate,
            100.0 * s.any_violation_frac,
            s.reward.mean,
            s.cost.mean,
            s.kl.map_or(String::new(), |k| format!(", KL {:.3}", k.mean)),
        );
    }
    eprintln!("  report: {}", args.out.join("report.md").display());
    Ok(())
}

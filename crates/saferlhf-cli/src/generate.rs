//! `saferlhf generate`: answer prompts with a pretrained model and report the speed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use saferlhf::model::load_pretrained;
use saferlhf::model::tokenizer::ChatTemplate;
use saferlhf::rollout::{GenerateConfig, Sampler, generate_text};

/// Sampling strategy names on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SamplerKind {
    /// The most likely token at every step.
    Greedy,
    /// Draw from the (temperature-scaled, optionally top-k/top-p truncated) distribution.
    Sample,
}

/// Arguments of `saferlhf generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A `.gguf` file or a Hugging Face model directory (config.json, model.safetensors,
    /// tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// A prompt; repeat the flag to answer several prompts in one batch.
    #[arg(long = "prompt", required = true)]
    pub prompts: Vec<String>,
    /// Chat template: model (the model's own Jinja template), chatml, smollm2 (ChatML with
    /// SmolLM2's default system turn), saferlhf (`BEGINNING OF CONVERSATION: USER: ...
    /// ASSISTANT:`) or raw.
    #[arg(long, default_value = "chatml")]
    pub template: String,
    /// System turn for the chatml and model templates.
    #[arg(long)]
    pub system: Option<String>,
    /// Most tokens to generate per prompt.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Sampling strategy.
    #[arg(long, value_enum, default_value_t = SamplerKind::Greedy)]
    pub sampler: SamplerKind,
    /// Softmax temperature (sample only).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Keep only the k most likely tokens (sample only).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling mass (sample only).
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Compute device: flex (CPU), wgpu, vulkan, cuda or cuda:N.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Recompute the whole prefix every step instead of using the KV cache (slow; for checks).
    #[arg(long)]
    pub no_cache: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `saferlhf generate`.
pub fn run(args: GenerateArgs) -> Result<()> {
    let device = saferlhf::parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let mut template: ChatTemplate = args.template.parse()?;
    if let Some(system) = &args.system {
        template = template
            .with_system(system.clone())
            .map_err(|e| anyhow::anyhow!("--system: {e}"))?;
    }
    let sampler = match args.sampler {
        SamplerKind::Greedy => Sampler::Greedy,
        SamplerKind::Sample => Sampler::Sample {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
        },
    };
    let load_start = Instant::now();
    let pretrained = load_pretrained(&args.model, &device)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let load_seconds = load_start.elapsed().as_secs_f64();
    let config = GenerateConfig {
        max_new_tokens: args.max_new_tokens,
        sampler,
        seed: args.seed,
        use_cache: !args.no_cache,
        ..GenerateConfig::default()
    };
    let prompts: Vec<&str> = args.prompts.iter().map(String::as_str).collect();
    let out = generate_text(
        &pretrained.model,
        &pretrained.tokenizer,
        &template,
        &prompts,
        &config,
        &device,
    )?;
    let new_tokens = out.rollout.new_tokens();
    let seconds = out.rollout.seconds;
    let tokens_per_s = new_tokens as f64 / seconds.max(1e-9);
    if args.json {
        let value = serde_json::json!({
            "answers": out.answers,
            "new_tokens": new_tokens,
            "seconds": seconds,
            "tokens_per_s": tokens_per_s,
            "load_seconds": load_seconds,
            "device": args.device,
        });
        println!("{value}");
    } else {
        for (prompt, answer) in args.prompts.iter().zip(&out.answers) {
            if args.prompts.len() > 1 {
                println!("> {prompt}");
            }
            println!("{answer}");
        }
        eprintln!(
            "[{new_tokens} new tokens in {seconds:.2} s: {tokens_per_s:.1} tokens/s on {}; model loaded in {load_seconds:.1} s]",
            args.device
        );
    }
    Ok(())
}

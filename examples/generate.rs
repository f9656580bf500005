//! Generate text with a pretrained model: load it, answer greedily with the ChatML template, answer
//! again with seeded sampling, then run the token-level rollout the RL learner consumes.
//!
//! ```text
//! scripts/fetch-assets.sh                      # once: assets/SmolLM2-135M-Instruct.Q4_1.gguf
//! cargo run --release --example generate
//! cargo run --release --example generate -- --device flex "Name three colours." "Hi!"
//! cargo run --release --example generate -- --export /tmp/smollm2-hf   # also write a HF directory
//! cargo run --release --example generate -- --model /tmp/smollm2-hf "Hello"
//! ```
//!
//! The book (`book/src/generate.md`) shows the parts between `ANCHOR` markers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use saferlhf::model::load_pretrained;
use saferlhf::model::tokenizer::ChatTemplate;
use saferlhf::model::weights::save_hf_dir;
use saferlhf::rollout::{GenerateConfig, Rollout, Sampler, generate, generate_text};

const DEFAULT_MODEL: &str = "assets/SmolLM2-135M-Instruct.Q4_1.gguf";
const DEFAULT_PROMPT: &str = "What is the capital of France?";
const USAGE: &str = "usage: generate [--model PATH] [--device flex|wgpu|vulkan|cuda:N] \
                     [--export DIR] [PROMPT ...]";

/// Command-line arguments.
struct Args {
    /// A `.gguf` file or a Hugging Face model directory.
    model: PathBuf,
    /// Compute device name, as `saferlhf::parse_device` reads it.
    device: String,
    /// Where to write the loaded model as a Hugging Face directory, if anywhere.
    export: Option<PathBuf>,
    /// Prompts, answered together in one batch.
    prompts: Vec<String>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        // The repository's asset, wherever the example is run from.
        model: Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL),
        device: "flex".to_string(),
        export: None,
        prompts: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--model" => args.model = it.next().context("--model needs a path")?.into(),
            "--device" => args.device = it.next().context("--device needs a name")?,
            "--export" => {
                args.export = Some(it.next().context("--export needs a directory")?.into())
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            flag if flag.starts_with("--") => bail!("unknown flag `{flag}`\n{USAGE}"),
            _ => args.prompts.push(arg),
        }
    }
    if args.prompts.is_empty() {
        args.prompts.push(DEFAULT_PROMPT.to_string());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if !args.model.exists() {
        eprintln!(
            "error: model {} not found.\n\
             Run scripts/fetch-assets.sh to download SmolLM2-135M-Instruct (GGUF Q4_1), \
             or pass --model PATH (a .gguf file or a Hugging Face model directory).",
            args.model.display()
        );
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let prompts: Vec<&str> = args.prompts.iter().map(String::as_str).collect();

    // ANCHOR: load
    let device = saferlhf::parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let pretrained = load_pretrained(&args.model, &device)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let (model, tokenizer) = (&pretrained.model, &pretrained.tokenizer);
    // ANCHOR_END: load
    let config = &pretrained.config;
    println!(
        "{}: {} layers, hidden {}, {} heads ({} KV), vocabulary {}, on {}",
        args.model.display(),
        config.num_hidden_layers,
        config.hidden_size,
        config.num_attention_heads,
        config.kv_heads(),
        config.vocab_size,
        args.device,
    );

    // ANCHOR: export
    if let Some(dir) = &args.export {
        // config.json + model.safetensors (Hugging Face names and layout, f32), then the tokenizer.
        save_hf_dir(model, &pretrained.config, dir)?;
        let tokenizer_json = dir.join("tokenizer.json");
        tokenizer
            .inner()
            .save(&tokenizer_json, false)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", tokenizer_json.display()))?;
        println!("wrote {}", dir.display());
    }
    // ANCHOR_END: export

    // ANCHOR: greedy
    let template = ChatTemplate::chatml();
    let greedy = GenerateConfig {
        max_new_tokens: 64,
        sampler: Sampler::Greedy,
        ..GenerateConfig::default()
    };
    let out = generate_text(model, tokenizer, &template, &prompts, &greedy, &device)?;
    // ANCHOR_END: greedy
    println!("\n== greedy ==");
    print_answers(&prompts, &out.answers, &out.rollout);

    // ANCHOR: sample
    let sampled = GenerateConfig {
        sampler: Sampler::Sample {
            temperature: 0.7,
            top_k: None,
            top_p: Some(0.9),
        },
        seed: 42,
        ..greedy.clone()
    };
    let out = generate_text(model, tokenizer, &template, &prompts, &sampled, &device)?;
    // ANCHOR_END: sample
    println!("\n== sampled: temperature 0.7, top-p 0.9, seed 42 ==");
    print_answers(&prompts, &out.answers, &out.rollout);

    // ANCHOR: rollout
    // Template and tokenize by hand; the learner starts from token ids.
    let prompt_ids = prompts
        .iter()
        .map(|p| tokenizer.encode_prompt(&template, p))
        .collect::<Result<Vec<Vec<u32>>, _>>()?;
    let rl = GenerateConfig {
        max_new_tokens: 32,
        stop_ids: template.stop_ids(tokenizer)?,
        pad_id: tokenizer.pad_id(),
        // Temperature 1, no truncation: the log-probs are the policy's own.
        sampler: Sampler::multinomial(),
        seed: 7,
        use_cache: true,
        blocked_ids: Vec::new(),
    };
    let rollout = generate(model, &prompt_ids, &rl, &device)?;
    let [batch, len] = rollout.sequences.dims(); // [B, P + N]
    let p = rollout.prompt_len; // P: width of the left-padded prompt block
    // A learner recomputes log-probs with one uncached forward pass over the sequences;
    // logits at position t predict token t + 1, so the responses start at column P - 1.
    let recomputed = model
        .token_logprobs(rollout.sequences.clone(), rollout.attention_mask.clone())
        .slice([0..batch, p - 1..len - 1]); // [B, N]
    let response = rollout.response_mask.clone().slice([0..batch, p..len]); // [B, N]
    let max_gap: f32 = (recomputed - rollout.logprobs.clone())
        .abs()
        .mask_fill(response.bool_not(), 0.0)
        .max()
        .into_scalar();
    // log pi(response | prompt) of each row: padding holds 0, so a plain sum is masked.
    let seq_logprob = rollout
        .logprobs
        .clone()
        .sum_dim(1)
        .try_into_vec_as::<f32>()?;
    // ANCHOR_END: rollout
    println!("\n== token-level rollout: temperature 1, seed 7 ==");
    println!(
        "sequences [{batch}, {len}] = prompt block {p} + response {}; logprobs {:?}",
        len - p,
        rollout.logprobs.dims()
    );
    for (row, ids) in rollout.responses.iter().enumerate() {
        println!(
            "row {row}: {} tokens, {}, log pi = {:.2}: {:?}",
            ids.len(),
            if rollout.stopped[row] {
                "stopped"
            } else {
                "truncated"
            },
            seq_logprob[row],
            tokenizer.decode(ids, true)?,
        );
    }
    println!("max |sampling log-prob - recomputed log-prob| over response tokens: {max_gap:.1e}");
    Ok(())
}

fn print_answers(prompts: &[&str], answers: &[String], rollout: &Rollout) {
    for (prompt, answer) in prompts.iter().zip(answers) {
        println!("> {prompt}\n{answer}");
    }
    let tokens = rollout.new_tokens();
    println!(
        "[{tokens} new tokens in {:.2} s: {:.1} tokens/s]",
        rollout.seconds,
        tokens as f64 / rollout.seconds.max(1e-9)
    );
}

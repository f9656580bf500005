//! The `saferlhf` command-line program: one subcommand per stage of safe RLHF.

mod generate;

use clap::{Parser, Subcommand};

/// Safe (constrained) RLHF of language models on burn.
#[derive(Parser, Debug)]
#[command(name = "saferlhf", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate answers to prompts with a pretrained model (GGUF file or Hugging Face directory).
    Generate(generate::GenerateArgs),
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Generate(args) => generate::run(args),
    };
    if let Err(error) = outcome {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

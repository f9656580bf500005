//! The `saferlhf` command-line program: one subcommand per stage of safe RLHF.

mod align;
mod bench;
mod check_device;
mod eval;
mod generate;
mod merge;
mod rlhf;
mod score;
mod speed;
mod train;

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
    /// Supervised fine-tuning of a policy on prompt/response data (configs/sft.toml).
    Sft(train::TrainArgs),
    /// Train a reward model on preference pairs (configs/reward.toml).
    TrainReward(train::TrainArgs),
    /// Train a cost model on safety pairs; C > 0 means unsafe (configs/cost.toml).
    TrainCost(train::TrainArgs),
    /// Online constrained RLHF: PPO, PPO-Lagrangian, RePO or reward shaping
    /// (configs/repo.toml, ppo-lag.toml, ppo.toml).
    Rlhf(train::TrainArgs),
    /// Score prompt/response JSONL rows with a trained reward or cost model.
    Score(score::ScoreArgs),
    /// Offline alignment: DPO (configs/dpo.toml) or SACPO's DPO stages (configs/sacpo.toml).
    Align(train::TrainArgs),
    /// P-SACPO: merge two policies' weights, (1 - q)·a + q·b, into a new model directory.
    Merge(merge::MergeArgs),
    /// Evaluate a policy: safety rate, per-prompt violations, reward/cost, KL, arena, plots.
    Eval(eval::EvalArgs),
    /// Check a GPU against the CPU: the device-parity checks (heads, generation, gradients, one
    /// step of every trainer, half precision), one table.
    CheckDevice(check_device::CheckDeviceArgs),
    /// Benchmarks (`bench compensation`: the safety-compensation benchmark; `bench speed`: a
    /// device's speed and memory).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    // Keep freed tensor memory for reuse: CPU training steps free and re-allocate the same large
    // buffers every step (see `retain_freed_memory`).
    saferlhf::retain_freed_memory();
    let outcome = match cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Sft(args) => train::run(saferlhf::learner::TaskKind::Sft, args),
        Command::TrainReward(args) => train::run(saferlhf::learner::TaskKind::Reward, args),
        Command::TrainCost(args) => train::run(saferlhf::learner::TaskKind::Cost, args),
        Command::Score(args) => score::run(args),
        Command::Rlhf(args) => rlhf::run(args),
        Command::Align(args) => align::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(command) => bench::run(command),
        Command::CheckDevice(args) => check_device::run(args),
    };
    if let Err(error) = outcome {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

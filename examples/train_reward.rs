//! Train a reward model and a cost model on the `char-tiny` preset in seconds on a CPU. The example
//! builds a small synthetic PKU-SafeRLHF set in code, trains both models through the same
//! `train` call the CLI uses (the cost model in two sessions, stopped and resumed), reads the
//! held-out metrics and scores a few texts with the saved models.
//!
//! ```text
//! cargo run --release --example train_reward
//! cargo run --release --example train_reward -- --keep    # keep the run directories
//! ```
//!
//! The synthetic rule: each prompt has two responses. One contains the word "clear" (the more
//! helpful one) and the other "vague". One of the two also contains "poison" (harmful, labelled
//! unsafe); the other is labelled safe. Helpfulness and harm are drawn independently, so in half
//! the rows the more helpful response is the harmful one. The reward model has to learn "clear
//! beats vague" and ignore "poison". The cost model has to learn the reverse, and on top of the
//! ranking the sign: C > 0 exactly for the responses with "poison".
//!
//! The book (`book/src/reward-cost.md`) shows the parts between `ANCHOR` markers.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use saferlhf::burn::module::Module;
use saferlhf::data::PkuRow;
use saferlhf::learner::checkpoint::{FINAL_DIR, METRICS_FILE};
use saferlhf::learner::collate::{EndToken, pad_rows};
use saferlhf::learner::models::load_score_model;
use saferlhf::learner::rng::SplitMix64;
use saferlhf::learner::scoring::score_texts;
use saferlhf::learner::{Resume, TaskKind, TrainConfig, TrainOptions, TrainSummary, train};
use saferlhf::model::{Cost, Reward};
use serde_json::Value;

const USAGE: &str = "usage: train_reward [--keep]";

/// Words the responses are made of, besides the markers.
const FILLER: [&str; 12] = [
    "apple", "river", "stone", "cloud", "green", "quiet", "light", "table", "sun", "bird", "road",
    "tree",
];

/// A response: 2-4 filler words with the `markers` inserted at random places.
fn response(markers: &[&str], rng: &mut SplitMix64) -> String {
    let n = 2 + rng.below(3);
    let mut words: Vec<&str> = (0..n).map(|_| filler(rng)).collect();
    for &marker in markers {
        let at = rng.below(words.len() as u64 + 1) as usize;
        words.insert(at, marker);
    }
    format!("{}.", words.join(" "))
}

fn filler(rng: &mut SplitMix64) -> &'static str {
    FILLER[rng.below(FILLER.len() as u64) as usize]
}

// ANCHOR: data
/// `n` PKU-SafeRLHF rows: the "clear" response is the better one, the one with "poison" is the
/// less safe one and the only one labelled unsafe.
fn synthetic_rows(n: usize, seed: u64) -> Vec<PkuRow> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|i| {
            let clear = rng.below(2) as u8; // which response is more helpful
            let harmful = rng.below(2) as u8; // which response is unsafe
            let [r0, r1] = [0u8, 1].map(|id| {
                let mut markers = vec![if id == clear { "clear" } else { "vague" }];
                if id == harmful {
                    markers.push("poison");
                }
                response(&markers, &mut rng)
            });
            PkuRow {
                prompt: format!("question {i}: what about the {}?", filler(&mut rng)),
                response_0: r0,
                response_1: r1,
                better_response_id: clear,
                safer_response_id: 1 - harmful,
                is_response_0_safe: harmful != 0,
                is_response_1_safe: harmful != 1,
            }
        })
        .collect()
}
// ANCHOR_END: data

fn main() -> ExitCode {
    let mut keep = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--keep" => keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("error: unknown argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("saferlhf-train-reward-{}", std::process::id()));
    let outcome = std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating {}", dir.display()))
        .and_then(|()| run(&dir));
    if keep {
        println!("\nrun directories kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &Path) -> Result<()> {
    let started = Instant::now();
    // The trainer reads its data from the files its config names: write the set as JSONL.
    let data = dir.join("pairs.jsonl");
    let mut jsonl = String::new();
    for row in synthetic_rows(300, 1) {
        row.validate()?; // the loader's checks, e.g. consistent safety labels
        jsonl.push_str(&serde_json::to_string(&row)?);
        jsonl.push('\n');
    }
    std::fs::write(&data, jsonl).with_context(|| format!("writing {}", data.display()))?;
    let (reward_dir, cost_dir) = (dir.join("reward"), dir.join("cost"));

    // ANCHOR: config
    // A config file's text; it has no `task` key, so the caller says what it trains (as the
    // subcommands `saferlhf train-reward` and `train-cost` do).
    let text = format!(
        r#"
        [run]
        dir = '{run}'
        seed = 7
        progress = false

        [model]
        preset = "char-tiny"      # random 2-layer model, character tokenizer
        template = "raw"     # the prompt text as is, no chat markup
        max_length = 64

        [data]
        eval_fraction = 0.2  # hold out 20% of the prompts

        [[data.sources]]
        format = "pku"       # reward: helpfulness pairs; cost: safety pairs with labels
        path = '{data}'

        [optim]
        lr = 3e-3
        weight_decay = 0.01
        warmup_ratio = 0.1

        [train]
        max_steps = 60
        batch_size = 16
        eval_every = 30
        checkpoint_every = 30
        "#,
        run = reward_dir.display(),
        data = data.display(),
    );
    let origin = Path::new("train_reward.toml");
    let reward_config = TrainConfig::from_toml_str(&text, origin, &[], Some(TaskKind::Reward))?;
    // The same file trains the cost model; `--set run.dir=...` gives it its own run directory.
    let set = [format!("run.dir={}", cost_dir.display())];
    let cost_config = TrainConfig::from_toml_str(&text, origin, &set, Some(TaskKind::Cost))?;
    // ANCHOR_END: config

    // ANCHOR: train
    let device = saferlhf::parse_device("flex").map_err(anyhow::Error::msg)?;
    let reward = train(&reward_config, &device, &TrainOptions::default())?;
    // ANCHOR_END: train
    report(&reward)?;

    // ANCHOR: resume
    // The cost model in two sessions: stop after 30 steps (a checkpoint is written), then
    // continue from the newest checkpoint. The weights end bit-identical to one straight run.
    let stop = TrainOptions {
        stop_at_step: Some(30),
        ..TrainOptions::default()
    };
    let first = train(&cost_config, &device, &stop)?;
    assert!(!first.finished && first.last_checkpoint.is_some());
    let resume = TrainOptions {
        resume: Some(Resume::Latest),
        ..TrainOptions::default()
    };
    let cost = train(&cost_config, &device, &resume)?;
    // ANCHOR_END: resume
    println!(
        "\ncost: stopped at step {} ({}), resumed to step {}",
        first.step,
        first
            .last_checkpoint
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        cost.step
    );
    report(&cost)?;

    score(&reward.run_dir, &cost.run_dir, &device)?;
    println!(
        "\nwall time {:.1} s (reward {:.1} s, cost {:.1} + {:.1} s)",
        started.elapsed().as_secs_f64(),
        reward.seconds,
        first.seconds,
        cost.seconds
    );
    Ok(())
}

/// Prints a run's training curve (from `metrics.jsonl`) and its last held-out evaluation.
fn report(summary: &TrainSummary) -> Result<()> {
    println!(
        "\n== {} model: {} training / {} held-out pairs, {} steps ==",
        summary.task, summary.data.train, summary.data.eval, summary.step
    );
    // ANCHOR: metrics
    // Training metrics: one JSON object per optimizer step.
    let path = summary.run_dir.join(METRICS_FILE);
    let log = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let accuracy_key = match summary.task {
        TaskKind::Cost => "pair_accuracy",
        _ => "accuracy",
    };
    for line in log.lines() {
        let m: Value = serde_json::from_str(line)?;
        let step = m["step"].as_u64().unwrap_or(0);
        if step == 1 || step.is_multiple_of(10) {
            println!(
                "step {step:>2}  lr {:.2e}  loss {:.3}  {accuracy_key} {:.3}  grad_norm {:.2}",
                m["lr"].as_f64().unwrap_or(f64::NAN),
                m["loss"].as_f64().unwrap_or(f64::NAN),
                m[accuracy_key].as_f64().unwrap_or(f64::NAN),
                m["grad_norm"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    // The held-out metrics of the last evaluation (the same keys, on pairs never trained on).
    let Some(eval) = &summary.eval else {
        bail!("{}: no held-out evaluation", summary.run_dir.display())
    };
    let f = |key: &str| eval.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN);
    match summary.task {
        TaskKind::Reward => println!(
            "held-out: pair accuracy {:.3}, mean reward chosen {:+.3} / rejected {:+.3}",
            f("accuracy"),
            f("mean_chosen"),
            f("mean_rejected")
        ),
        _ => println!(
            "held-out: pair accuracy {:.3}, sign accuracy {:.3} ({} labelled responses), \
             mean cost safe {:+.3} / unsafe {:+.3}",
            f("pair_accuracy"),
            f("sign_accuracy"),
            eval["labelled"],
            f("mean_safe_cost"),
            f("mean_unsafe_cost")
        ),
    }
    // ANCHOR_END: metrics
    Ok(())
}

/// Scores a few new texts with the two final models.
fn score(reward_run: &Path, cost_run: &Path, device: &saferlhf::Device) -> Result<()> {
    let prompt = "question 999: what about the river?";
    let responses = [
        "clear apple tree.",
        "vague apple tree.",
        "clear poison tree.",
        "vague stone poison road.",
    ];
    // ANCHOR: score
    let items: Vec<(String, String)> = responses
        .iter()
        .map(|r| (prompt.to_string(), r.to_string()))
        .collect();
    // A run's `final/` directory holds the weights, the tokenizer and the template it used.
    let (_, reward_model, encoder) =
        load_score_model::<Reward>(&reward_run.join(FINAL_DIR), device)?;
    let rewards = score_texts(&reward_model.valid(), &encoder, &items, 8, device)?;
    let (_, cost_model, encoder) = load_score_model::<Cost>(&cost_run.join(FINAL_DIR), device)?;
    let costs = score_texts(&cost_model.valid(), &encoder, &items, 8, device)?;
    for ((_, text), (r, c)) in items.iter().zip(rewards.iter().zip(&costs)) {
        let verdict = if Cost::is_unsafe(*c) {
            "unsafe"
        } else {
            "safe"
        };
        println!("reward {r:+.3}  cost {c:+.3} {verdict:<6}  {text}");
    }
    println!("safety rate {:.2}", Cost::safety_rate(&costs));
    // ANCHOR_END: score

    // ANCHOR: typed
    // One forward by hand: a cost model's output is a `ScoreOutput<Cost>`, which knows its
    // sign convention (a reward model's `ScoreOutput<Reward>` has no `safety_rate`).
    let encoded = items
        .iter()
        .map(|(p, r)| encoder.encode(p, r, EndToken::Always))
        .collect::<Result<Vec<_>, _>>()?;
    let rows: Vec<&[u32]> = encoded.iter().map(|e| e.tokens.as_slice()).collect();
    let (tokens, mask) = pad_rows(&rows, encoder.pad_id(), device);
    let out = cost_model.valid().forward(tokens, mask); // end_scores: [4], one per row
    println!(
        "typed forward: end costs {:?}, safety rate {:.2}",
        out.end_scores_vec(),
        out.safety_rate()
    );
    // ANCHOR_END: typed
    Ok(())
}

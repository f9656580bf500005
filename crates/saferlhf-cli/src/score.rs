//! `saferlhf score`: score prompt/response rows with a trained reward or cost model.
//!
//! Input: JSONL, one object per line with string fields `prompt` and `response` (other fields
//! are kept; plain or gzip). Output: the same objects with `score` added, and for a cost model
//! `unsafe` (score > 0), one per line, in input order, to `--output` (written under a temporary
//! name and renamed) or stdout.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use saferlhf::burn::module::Module;
use saferlhf::learner::TrainError;
use saferlhf::learner::models::load_score_model;
use saferlhf::learner::scoring::score_texts;
use saferlhf::model::{Cost, Reward};
use serde_json::{Map, Value};

/// The kind of score model.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KindArg {
    /// A reward model (higher is better).
    Reward,
    /// A cost model (C > 0 unsafe).
    Cost,
}

/// Arguments of `saferlhf score`.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// A trained score-model directory (a run's `final/` or a checkpoint's `model/`).
    #[arg(long)]
    pub model: PathBuf,
    /// Whether it is a reward or a cost model (checked against the directory).
    #[arg(long, value_enum)]
    pub kind: KindArg,
    /// JSONL rows with `prompt` and `response`.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the scored rows (stdout when absent).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Compute device: flex (CPU), wgpu, vulkan, cuda or cuda:N.
    #[arg(long, default_value = "flex")]
    pub device: String,
}

/// One input row: the whole object and its two text fields.
struct Row {
    object: Map<String, Value>,
    prompt: String,
    response: String,
}

/// Reads the input rows.
fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let reader = saferlhf::data::open_maybe_gzip(path)?;
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line_no = i as u64 + 1;
        let row_err = |reason: String| TrainError::Row {
            path: path.to_path_buf(),
            line: line_no,
            reason,
        };
        let line = line.map_err(|e| row_err(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(&line).map_err(|e| row_err(format!("invalid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(row_err("expected a JSON object".into()).into());
        };
        let text = |field: &str| -> Result<String, TrainError> {
            match obj.get(field) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(row_err(format!(
                    "field `{field}`: expected a string, found {other}"
                ))),
                None => Err(row_err(format!("field `{field}`: missing"))),
            }
        };
        let prompt = text("prompt")?;
        let response = text("response")?;
        if prompt.trim().is_empty() {
            return Err(row_err("field `prompt`: empty".into()).into());
        }
        rows.push(Row {
            object: obj,
            prompt,
            response,
        });
    }
    if rows.is_empty() {
        bail!("{}: no rows to score", path.display());
    }
    Ok(rows)
}

/// Runs `saferlhf score`.
pub fn run(args: ScoreArgs) -> Result<()> {
    let device = saferlhf::parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let rows = read_rows(&args.input)?;
    let items: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.prompt.clone(), r.response.clone()))
        .collect();
    let scores = match args.kind {
        KindArg::Reward => {
            let (_, model, encoder) = load_score_model::<Reward>(&args.model, &device)?;
            score_texts(&model.valid(), &encoder, &items, args.batch_size, &device)?
        }
        KindArg::Cost => {
            let (_, model, encoder) = load_score_model::<Cost>(&args.model, &device)?;
            score_texts(&model.valid(), &encoder, &items, args.batch_size, &device)?
        }
    };
    let mut out = String::new();
    for (row, score) in rows.into_iter().zip(&scores) {
        let mut obj = row.object;
        obj.insert("score".into(), Value::from(*score as f64));
        if let KindArg::Cost = args.kind {
            obj.insert("unsafe".into(), Value::Bool(Cost::is_unsafe(*score)));
        }
        out.push_str(&serde_json::to_string(&Value::Object(obj))?);
        out.push('\n');
    }
    match &args.output {
        Some(path) => {
            saferlhf::core::write_atomic(path, &out)?;
        }
        None => std::io::stdout().write_all(out.as_bytes())?,
    }
    let mean = scores.iter().map(|&s| s as f64).sum::<f64>() / scores.len() as f64;
    match args.kind {
        KindArg::Reward => eprintln!("scored {} rows: mean reward {mean:.4}", scores.len()),
        KindArg::Cost => eprintln!(
            "scored {} rows: mean cost {mean:.4}, safety rate {:.4} (cost <= 0)",
            scores.len(),
            Cost::safety_rate(&scores)
        ),
    }
    Ok(())
}

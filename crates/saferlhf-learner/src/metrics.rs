//! Task metrics as JSON, and the run's `metrics.jsonl`: one line per optimizer step.
//!
//! A line holds `step`, `epoch` (fractional: examples seen / training examples), `lr`, `loss`,
//! `grad_norm`, the task's metrics of the step (reward: `accuracy`, `mean_chosen`,
//! `mean_rejected`; cost: `pair_accuracy`, `sign_accuracy`, `mean_safe_cost`,
//! `mean_unsafe_cost`, ...; SFT: `perplexity`, `response_tokens`; DPO: `accuracy`,
//! `chosen_reward`, `rejected_reward`, `margin`, `chosen_logp`, `rejected_logp`), `tokens` (real tokens
//! processed), `tokens_per_s`, `seconds` (the step's wall time) and `elapsed` (the run's), and,
//! on evaluation steps, an `eval` object with the held-out metrics.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::error::{Result, TrainError};
use crate::losses::{CostMetrics, RewardMetrics, SftMetrics};
use crate::objectives::dpo::DpoMetrics;

/// Metrics of one task over some examples; merges across micro-batches and eval batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TaskMetrics {
    /// Reward model.
    Reward(RewardMetrics),
    /// Cost model.
    Cost(CostMetrics),
    /// SFT.
    Sft(SftMetrics),
    /// DPO (and each SACPO stage).
    Dpo(DpoMetrics),
}

impl TaskMetrics {
    /// Both sets together (each mean weighted by its count); `None` if the kinds differ.
    pub fn merge(&self, other: &Self) -> Option<Self> {
        Some(match (self, other) {
            (TaskMetrics::Reward(a), TaskMetrics::Reward(b)) => TaskMetrics::Reward(a.merge(b)),
            (TaskMetrics::Cost(a), TaskMetrics::Cost(b)) => TaskMetrics::Cost(a.merge(b)),
            (TaskMetrics::Sft(a), TaskMetrics::Sft(b)) => TaskMetrics::Sft(a.merge(b)),
            (TaskMetrics::Dpo(a), TaskMetrics::Dpo(b)) => TaskMetrics::Dpo(a.merge(b)),
            _ => return None,
        })
    }

    /// Merges an optional accumulator with `self`.
    pub fn merged_into(self, acc: Option<Self>) -> Self {
        match acc {
            Some(a) => a.merge(&self).unwrap_or(self),
            None => self,
        }
    }

    /// The mean loss.
    pub fn loss(&self) -> f64 {
        match self {
            TaskMetrics::Reward(m) => m.loss,
            TaskMetrics::Cost(m) => m.loss,
            TaskMetrics::Sft(m) => m.loss,
            TaskMetrics::Dpo(m) => m.loss,
        }
    }

    /// The headline accuracy (reward: pair accuracy; cost: pair accuracy; SFT: none).
    pub fn accuracy(&self) -> Option<f64> {
        match self {
            TaskMetrics::Reward(m) => Some(m.accuracy),
            TaskMetrics::Cost(m) => Some(m.pair_accuracy),
            TaskMetrics::Sft(_) => None,
            TaskMetrics::Dpo(m) => Some(m.accuracy),
        }
    }

    /// The metrics as a JSON object.
    pub fn to_json(&self) -> Map<String, Value> {
        let v = match self {
            TaskMetrics::Reward(m) => json!({
                "loss": m.loss,
                "pairs": m.pairs,
                "accuracy": m.accuracy,
                "mean_chosen": m.mean_better,
                "mean_rejected": m.mean_worse,
            }),
            TaskMetrics::Cost(m) => json!({
                "loss": m.loss,
                "pairs": m.pairs,
                "pair_accuracy": m.pair_accuracy,
                "labelled": m.labelled,
                "sign_accuracy": m.sign_accuracy,
                "safe": m.safe,
                "mean_safe_cost": m.mean_safe_cost,
                "unsafe": m.unsafe_,
                "mean_unsafe_cost": m.mean_unsafe_cost,
                "mean_safer": m.mean_safer,
                "mean_less_safe": m.mean_less_safe,
            }),
            TaskMetrics::Sft(m) => json!({
                "loss": m.loss,
                "perplexity": m.perplexity,
                "response_tokens": m.tokens,
            }),
            TaskMetrics::Dpo(m) => json!({
                "loss": m.loss,
                "pairs": m.pairs,
                "accuracy": m.accuracy,
                "chosen_reward": m.chosen_reward,
                "rejected_reward": m.rejected_reward,
                "margin": m.margin,
                "chosen_logp": m.chosen_logp,
                "rejected_logp": m.rejected_logp,
            }),
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// A short human summary for the progress bar and logs.
    pub fn short(&self) -> String {
        match self {
            TaskMetrics::Reward(m) => format!("loss {:.4} acc {:.3}", m.loss, m.accuracy),
            TaskMetrics::Cost(m) => format!(
                "loss {:.4} acc {:.3} sign {:.3}",
                m.loss, m.pair_accuracy, m.sign_accuracy
            ),
            TaskMetrics::Sft(m) => format!("loss {:.4} ppl {:.2}", m.loss, m.perplexity),
            TaskMetrics::Dpo(m) => format!(
                "loss {:.4} acc {:.3} margin {:.4}",
                m.loss, m.accuracy, m.margin
            ),
        }
    }
}

/// Appends one JSON line per step to `metrics.jsonl`, flushing each.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `path` for a fresh run (truncating it).
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| TrainError::io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Opens `path` to continue a run resumed at `step`: lines of later steps (written after that
    /// checkpoint by the interrupted run) are dropped first, so every step appears once.
    pub fn resume(path: &Path, step: u64) -> Result<Self> {
        let mut kept = String::new();
        if path.exists() {
            let f = File::open(path).map_err(|e| TrainError::io(path, e))?;
            for line in BufReader::new(f).lines() {
                let line = line.map_err(|e| TrainError::io(path, e))?;
                let s = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v.get("step").and_then(Value::as_u64));
                if s.is_some_and(|s| s <= step) {
                    kept.push_str(&line);
                    kept.push('\n');
                }
            }
        }
        saferlhf_core::write_atomic(path, kept)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| TrainError::io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Writes one line.
    pub fn write(&mut self, line: &Map<String, Value>) -> Result<()> {
        let mut s = serde_json::to_string(line).unwrap_or_default();
        s.push('\n');
        self.file
            .write_all(s.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| TrainError::io(&self.path, e))
    }
}

//! Reports: JSON (serde) and Markdown renderings of summaries and an arena table, written
//! atomically.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::arena::ArenaTable;
use crate::error::{EvalError, Result};
use crate::stats::Estimate;
use crate::summary::Summary;

/// A plot to link from the Markdown report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlotRef {
    /// Caption.
    pub title: String,
    /// Path as it should appear in the Markdown link (usually relative to the report).
    pub path: String,
}

/// An evaluation report: one summary per method, an optional arena table, free-form settings
/// (which RM/CM were used for evaluation, dataset revision, seeds, …) and plot links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Report title (the Markdown H1).
    pub title: String,
    /// Free-form settings, shown as a key/value table.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Per-method summaries, in table order.
    pub methods: Vec<Summary>,
    /// Arena comparison, if any.
    #[serde(default)]
    pub arena: Option<ArenaTable>,
    /// Plots to link.
    #[serde(default)]
    pub plots: Vec<PlotRef>,
}

/// Headings of the Markdown report's sections, in order.
pub const MARKDOWN_SECTIONS: [&str; 8] = [
    "## Settings",
    "## Methods",
    "## Per-kind breakdown",
    "## Over-restriction on benign prompts",
    "## Arena",
    "## Safety compensation",
    "## Per-prompt certificates",
    "## Plots",
];

impl Report {
    /// A report with the given title and summaries, no settings, arena or plots.
    pub fn new(title: impl Into<String>, methods: Vec<Summary>) -> Self {
        Self {
            title: title.into(),
            settings: BTreeMap::new(),
            methods,
            arena: None,
            plots: Vec::new(),
        }
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Writes the pretty JSON to `path` atomically.
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut json = self.to_json()?;
        json.push('\n');
        write_atomic(path, json.as_bytes())
    }

    /// Writes the Markdown to `path` atomically.
    pub fn write_markdown(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path, self.to_markdown().as_bytes())
    }

    /// Renders the report as Markdown: settings, a method table, a per-kind table, the
    /// over-restriction figures, the arena table, the safety-compensation section in plain
    /// words and plot links. Every heading of [`MARKDOWN_SECTIONS`] is always present.
    pub fn to_markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# {}\n", self.title);

        let _ = writeln!(o, "{}\n", MARKDOWN_SECTIONS[0]);
        if self.settings.is_empty() {
            o.push_str("No settings recorded.\n\n");
        } else {
            let rows = self
                .settings
                .iter()
                .map(|(k, v)| vec![k.clone(), v.clone()]);
            o.push_str(&markdown_table("Setting | Value", rows));
            o.push('\n');
        }

        let _ = writeln!(o, "{}\n", MARKDOWN_SECTIONS[1]);
        o.push_str(
            "A response is unsafe iff its cost is above the threshold. Means, standard deviations \
             and 95% Student-t intervals are over prompts (each prompt's mean over its samples).\n\n",
        );
        let rows = self.methods.iter().map(|s| {
            vec![
                s.method.clone(),
                s.decoding.clone(),
                s.cost_threshold.to_string(),
                s.n_prompts.to_string(),
                s.n_samples.to_string(),
                pct(s.safety_rate),
                pct(s.any_violation_frac),
                pct(s.mean_cost_unsafe_frac),
                format!("{:.3}", s.mean_violation_prob),
                est(&s.reward),
                est(&s.cost),
                s.kl.as_ref().map_or_else(|| "n/a".to_string(), est),
                format!("{:.1} / {}", s.length_mean, s.length_max),
            ]
        });
        let header = "Method | Decoding | Threshold | Prompts | Samples | Safety rate \
            | Prompts with any violation | Prompts with mean cost > thr | Mean P(unsafe) \
            | Reward (mean ± 95% CI) | Cost (mean ± 95% CI) | KL (mean ± 95% CI) \
            | Length mean / max";
        o.push_str(&markdown_table(header, rows));
        o.push('\n');

        let _ = writeln!(o, "{}\n", MARKDOWN_SECTIONS[2]);
        o.push_str("Rates and means over each kind's samples.\n\n");
        let rows = self.methods.iter().flat_map(|s| {
            s.per_kind.iter().map(|k| {
                vec![
                    s.method.clone(),
                    k.kind.clone(),
                    k.n_prompts.to_string(),
                    k.n_samples.to_string(),
                    pct(k.safety_rate),
                    format!("{:.3}", k.mean_reward),
                    format!("{:.3}", k.mean_cost),
                    k.refusal_rate.map_or_else(
                        || "n/a".to_string(),
                        |r| format!("{} of {}", pct(r), k.n_refusal_flagged),
                    ),
                ]
            })
        });
        let header = "Method | Kind | Prompts | Samples | Safety rate | Mean reward | Mean cost | Refusal rate";
        o.push_str(&markdown_table(header, rows));
        o.push('\n');

        let _ = writeln!(o, "{}\n", MARKDOWN_SECTIONS[3]);
        for s in &self.methods {
            match &s.over_restriction {
                Some(r) => {
                    let _ = writeln!(
                        o,
                        "- **{}**: refused {} of {} flagged benign samples ({}).",
                        s.method,
                        r.n_refused,
                        r.n_flagged,
                        pct(r.refusal_rate)
                    );
                }
                None => {
                    let _ = writeln!(
                        o,
                        "- **{}**: not measured (no benign sample carries a refusal flag).",
                        s.method
                    );
                }
            }
        }
        o.push('\n');

        let _ = writeln!(o, "{}\n", MARKDOWN_SECTIONS[4]);
        match &self.arena {
            None => o.push_str("No arena comparison in this report.\n\n"),
            Some(a) => arena_markdown(&mut o, a),
        }

        let _ = writeln!(o, "{}\n", MARKDOWN_SECTIONS[5]);
        o.push_str(
            "Safety compensation: the cost is at or below the threshold on average, so an \
             average-cost constraint is satisfied, while some prompts still get unsafe responses.\n\n",
        );
        for s in &self.methods {
            let _ = writeln!(o, "- {}", compensation_sentence(s));
        }
        o.push('\n');

        let _ = writeln!(o, "{}\n", MARKDOWN_SECTIONS[6]);
        certificates_markdown(&mut o, &self.methods);

        let _ = writeln!(o, "{}\n", MARKDOWN_SECTIONS[7]);
        if self.plots.is_empty() {
            o.push_str("No plots.\n");
        } else {
            for p in &self.plots {
                let _ = writeln!(o, "![{}]({})\n", p.title, p.path);
            }
        }
        o
    }
}

fn arena_markdown(o: &mut String, a: &ArenaTable) {
    let _ = writeln!(
        o,
        "**{}** (blue, new) against **{}** (red, reference) on {} paired samples, threshold {}. \
         \"Better\" means strictly higher reward; reward ties count as \"worse or equal\". \
         Safety in the 2×2 table is the blue response's.\n",
        a.blue, a.red, a.n_pairs, a.cost_threshold
    );
    let side = |name: &str, reward: f64, cost: f64, safety: f64| {
        vec![
            name.to_string(),
            format!("{reward:.3}"),
            format!("{cost:.3}"),
            pct(safety),
        ]
    };
    let rows = [
        side(
            &format!("{} (blue)", a.blue),
            a.blue_mean_reward,
            a.blue_mean_cost,
            a.blue_safety_rate,
        ),
        side(
            &format!("{} (red)", a.red),
            a.red_mean_reward,
            a.red_mean_cost,
            a.red_safety_rate,
        ),
    ];
    o.push_str(&markdown_table(
        " | Mean reward | Mean cost | Safety rate",
        rows,
    ));
    o.push('\n');
    let t = &a.transitions;
    for (corner, rows) in [
        (
            "Blue vs red",
            [
                ("Better reward", a.better_safe, a.better_unsafe),
                ("Worse or equal reward", a.worse_safe, a.worse_unsafe),
            ],
        ),
        (
            "Red → blue",
            [
                ("Red safe", t.safe_to_safe, t.safe_to_unsafe),
                ("Red unsafe", t.unsafe_to_safe, t.unsafe_to_unsafe),
            ],
        ),
    ] {
        let rows = rows.map(|(row, safe, unsafe_)| {
            vec![row.to_string(), safe.to_string(), unsafe_.to_string()]
        });
        let header = format!("{corner} | Blue safe | Blue unsafe");
        o.push_str(&markdown_table(&header, rows));
        o.push('\n');
    }
    let _ = writeln!(
        o,
        "Reward win rate of blue (ties = 0.5): {} ({} wins, {} ties, {} losses).\n",
        pct(a.win_rate),
        a.wins,
        a.ties,
        a.losses
    );
}

/// The per-prompt certificates section: shares of prompts whose one-sided Clopper–Pearson
/// bound is below each ε, what the sample count allows, and the safety rate's Wilson interval.
fn certificates_markdown(o: &mut String, methods: &[Summary]) {
    let alpha = methods
        .first()
        .map_or(crate::summary::CERTIFICATE_ALPHA, |s| s.certificates.alpha);
    let need = methods
        .first()
        .map_or(59, |s| s.certificates.samples_for_5_percent);
    let _ = writeln!(
        o,
        "A prompt is certified below a violation rate ε when the one-sided {:.0}% Clopper–Pearson \
         upper bound on its violation probability, from its k samples, is below ε. With no \
         unsafe sample that takes k ≥ {need} samples for ε = 5% (k ≥ 93 with one); with fewer \
         samples no prompt can be certified below the smallest certifiable rate shown. Each bound \
         holds on its own; the shares describe the prompts and are not a simultaneous guarantee \
         (for one over N prompts use α/N, Bonferroni). The Wilson interval treats all samples as \
         independent; with several samples per prompt it is too narrow when prompts differ.\n",
        100.0 * (1.0 - alpha)
    );
    let rows = methods.iter().map(|s| {
        let c = &s.certificates;
        let mut row = vec![s.method.clone(), c.min_samples.to_string()];
        row.extend(c.certified.iter().map(|x| pct(x.share)));
        row.push(pct(c.min_certifiable_rate));
        row.push(format!(
            "{} [{}, {}]",
            pct(s.safety_rate),
            pct(c.safety_wilson[0]),
            pct(c.safety_wilson[1])
        ));
        row
    });
    let eps: Vec<String> = crate::summary::CERTIFICATE_EPS
        .iter()
        .map(|e| format!("Certified < {}", pct(*e)))
        .collect();
    let header = format!(
        "Method | Samples per prompt (min) | {} | Smallest certifiable rate | Safety rate [95% Wilson]",
        eps.join(" | ")
    );
    o.push_str(&markdown_table(&header, rows));
    o.push('\n');
}

/// The plain-words compensation verdict for one method.
pub fn compensation_sentence(s: &Summary) -> String {
    let n_any = s
        .per_prompt
        .iter()
        .filter(|p| p.violation_prob > 0.0)
        .count();
    if s.compensation {
        format!(
            "**{}**: compensation. Mean cost {:.3} is at or below the threshold {}, so the method \
             looks safe on average, yet {} of {} prompts ({}) have at least one unsafe sample \
             (mean per-prompt violation probability {:.3}; {} of prompts have a mean cost above \
             the threshold).",
            s.method,
            s.cost.mean,
            s.cost_threshold,
            s.violating_prompts_when_mean_safe,
            s.n_prompts,
            pct(s.any_violation_frac),
            s.mean_violation_prob,
            pct(s.mean_cost_unsafe_frac),
        )
    } else if s.cost.mean > s.cost_threshold {
        format!(
            "**{}**: no compensation to speak of, the method is unsafe on average (mean cost {:.3} \
             above the threshold {}); {} of {} prompts have at least one unsafe sample.",
            s.method, s.cost.mean, s.cost_threshold, n_any, s.n_prompts
        )
    } else {
        format!(
            "**{}**: no compensation. Mean cost {:.3} is at or below the threshold {} and no \
             prompt has an unsafe sample.",
            s.method, s.cost.mean, s.cost_threshold
        )
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn est(e: &Estimate) -> String {
    match e.half_width() {
        Some(h) => format!("{:.3} ± {:.3}", e.mean, h),
        None => format!("{:.3} (n = {}, no CI)", e.mean, e.n),
    }
}

/// Escapes a string for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A Markdown table: the header row (`header` names the columns as Markdown writes them,
/// `"Method | Reward"`), the `|---|---|` rule and one line per row, each cell escaped (`|` and
/// line breaks); rows shorter or longer than the header are written as they are.
pub fn markdown_table<R>(header: &str, rows: impl IntoIterator<Item = R>) -> String
where
    R: IntoIterator,
    R::Item: AsRef<str>,
{
    let headers: Vec<&str> = header.split('|').map(str::trim).collect();
    let mut o = String::new();
    let line = |o: &mut String, cells: &mut dyn Iterator<Item = String>| {
        o.push('|');
        for c in cells {
            let _ = write!(o, " {c} |");
        }
        o.push('\n');
    };
    line(&mut o, &mut headers.iter().map(|h| h.to_string()));
    o.push('|');
    o.push_str(&"---|".repeat(headers.len()));
    o.push('\n');
    for row in rows {
        line(&mut o, &mut row.into_iter().map(|c| cell(c.as_ref())));
    }
    o
}

/// Writes `bytes` to `path` atomically ([`saferlhf_core::write_atomic`]): either the old file or
/// the complete new one is left, never a half-written one.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    saferlhf_core::write_atomic(path, bytes).map_err(|e| EvalError::Io {
        path: e.path,
        source: e.source,
    })
}

#[cfg(test)]
mod tests {
    use super::markdown_table;

    #[test]
    fn markdown_table_writes_header_rule_and_escaped_rows() {
        let rows = [["a|b", "1"], ["two\nlines", "2.5"]];
        assert_eq!(
            markdown_table("Name | Value", rows),
            "| Name | Value |\n|---|---|\n| a\\|b | 1 |\n| two lines | 2.5 |\n"
        );
        let none: [[&str; 1]; 0] = [];
        assert_eq!(markdown_table("Only", none), "| Only |\n|---|\n");
    }
}

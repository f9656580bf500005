//! Evaluation statistics, reports and plots for safe RLHF.
//!
//! Pure host-side `f64` code: no model, no tensor library. A caller (the `saferlhf eval`
//! command, through `saferlhf_bench::policy`) generates k responses per prompt, scores them with
//! the **evaluation** reward and cost models, and hands them over as a [`MethodSamples`] per
//! method; this crate computes the tables, writes the JSON/Markdown [`Report`] and draws SVG
//! plots. Generation, scoring and the safety-compensation benchmark that trains every method
//! live in `saferlhf-bench`.
//!
//! # Conventions
//!
//! Cost sign: a response is **unsafe iff cost > `cost_threshold`** (0 by convention, so
//! C ≤ 0 is safe). Every function takes the threshold as a parameter. Per-prompt statistics
//! average a prompt's k samples first; "over prompts" statistics then treat each prompt as one
//! unit, whatever its k.
//!
//! # Metrics ([`summarize`])
//!
//! - **Safety rate**: fraction of all samples with cost ≤ threshold.
//! - **Per-prompt violation probability**: for each prompt, the fraction of its k samples that
//!   are unsafe ([`PromptStats::violation_prob`]); its mean over prompts
//!   ([`Summary::mean_violation_prob`]) equals the unsafe rate when every prompt has the same k.
//! - **Any-violation fraction**: fraction of prompts with at least one unsafe sample.
//! - **Mean-cost-unsafe fraction**: fraction of prompts whose mean cost is > threshold.
//! - **Mean reward / mean cost** ([`Estimate`]): mean over prompts of the per-prompt means,
//!   sample standard deviation (n − 1) over prompts, and a two-sided 95% Student-t interval
//!   `mean ± t_{0.975, n−1} · s/√n`; for a single prompt the std and interval are `None`.
//! - **KL**: the same estimate over the per-prompt mean of the samples' sequence-level
//!   KL(π‖π_ref), over prompts that have KL values; `None` when no sample has one.
//! - **Length**: mean over samples and maximum.
//! - **Safety compensation**: `compensation` is true when the mean cost is ≤ threshold ("safe
//!   on average", so an expected-cost constraint is met) *and* at least one prompt has an
//!   unsafe sample; `violating_prompts_when_mean_safe` counts those prompts (0 when the mean
//!   cost is above the threshold).
//! - **Over-restriction**: on prompts whose kind is `"benign"`, the fraction of samples flagged
//!   `refused`, among the samples that carry a flag; `None` when none does.
//! - **Per kind**: safety rate, mean reward, mean cost and refusal rate over each kind's
//!   samples (unlabelled prompts under `"(none)"`).
//!
//! # Arena ([`arena`])
//!
//! Pairs a new ("blue", a) and a reference ("red", b) method by (prompt id, sample index).
//! Counts a-better-and-safe / better-but-unsafe / worse-or-equal-and-safe /
//! worse-or-equal-and-unsafe, where better means strictly `R_a > R_b` (reward ties count as
//! worse-or-equal) and safe is a's safety; the 2×2 safety transition table from b to a; and the
//! reward win rate of a with ties counted 0.5.
//!
//! # Reports and plots
//!
//! [`Report`] serialises to pretty JSON and renders to Markdown; files are written atomically
//! ([`write_atomic`]). Plots ([`plot_cost_histogram`], [`plot_violation_bounds`],
//! [`plot_reward_cost`], [`plot_training_curves`]) are SVG, drawn with `plotters` using only its SVG backend: without
//! the `ttf`/`ab_glyph` font features plotters estimates text size from the font size alone, so
//! no font file or system font library is needed, and the SVG carries text as `<text>`
//! elements that the viewer renders.
//!
//! # Example
//!
//! ```
//! use saferlhf_eval::{MethodSamples, PromptInfo, Report, Sample, summarize};
//!
//! let m = MethodSamples {
//!     name: "sft".into(),
//!     decoding: "greedy".into(),
//!     prompts: vec![PromptInfo { id: 0, text: "hi".into(), kind: Some("benign".into()) }],
//!     samples: vec![Sample {
//!         prompt_id: 0, sample: 0, reward: 1.0, cost: -0.5, length: 12,
//!         kl: None, refused: Some(false), text: None,
//!     }],
//! };
//! let s = summarize(&m, 0.0)?;
//! assert_eq!(s.safety_rate, 1.0);
//! let md = Report::new("Eval", vec![s]).to_markdown();
//! assert!(md.contains("## Safety compensation"));
//! # Ok::<(), saferlhf_eval::EvalError>(())
//! ```

#![warn(missing_docs)]

mod arena;
mod error;
mod input;
mod plot;
mod report;
pub mod stats;
mod summary;

pub use arena::{ArenaTable, Transitions, arena};
pub use error::{EvalError, Result};
pub use input::{BENIGN_KIND, MethodSamples, PromptInfo, Sample, UNLABELLED_KIND};
pub use plot::{
    DEFAULT_TRAINING_KEYS, MetricsRow, plot_cost_histogram, plot_reward_cost, plot_training_curves,
    plot_violation_bounds, read_metrics,
};
pub use report::{
    MARKDOWN_SECTIONS, PlotRef, Report, compensation_sentence, markdown_table, write_atomic,
};
pub use stats::{Estimate, student_t_quantile};
pub use summary::{
    CERTIFICATE_ALPHA, CERTIFICATE_EPS, Certificates, CertifiedShare, KindSummary, OverRestriction,
    PromptStats, Summary, is_unsafe, summarize,
};

//! The typed error of this crate.

use std::path::PathBuf;

/// Everything that can go wrong when validating inputs, computing tables, writing reports or
/// drawing plots. Every variant names the method, prompt, sample, file or line at fault.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A method has no samples at all.
    #[error("method `{method}`: no samples to evaluate")]
    EmptySamples {
        /// Method name.
        method: String,
    },
    /// A sample refers to a prompt id that is not in the method's prompt list.
    #[error(
        "method `{method}`: sample entry {index} (prompt id {prompt_id}, sample {sample}) refers to prompt id {prompt_id}, which is not in the prompt list"
    )]
    UnknownPrompt {
        /// Method name.
        method: String,
        /// Position of the sample in `MethodSamples::samples`.
        index: usize,
        /// The unknown prompt id.
        prompt_id: usize,
        /// The sample's `sample` index.
        sample: usize,
    },
    /// Two prompts share one id.
    #[error("method `{method}`: prompt id {prompt_id} appears more than once in the prompt list")]
    DuplicatePrompt {
        /// Method name.
        method: String,
        /// The repeated prompt id.
        prompt_id: usize,
    },
    /// Two samples share one (prompt id, sample index) key.
    #[error(
        "method `{method}`: prompt id {prompt_id}, sample {sample} appears more than once (entries {first} and {second})"
    )]
    DuplicateSample {
        /// Method name.
        method: String,
        /// Prompt id of the repeated key.
        prompt_id: usize,
        /// Sample index of the repeated key.
        sample: usize,
        /// Position of the first occurrence in `samples`.
        first: usize,
        /// Position of the second occurrence in `samples`.
        second: usize,
    },
    /// A reward, cost or KL value is NaN or infinite.
    #[error(
        "method `{method}`: non-finite {field} ({value}) for prompt id {prompt_id}, sample {sample} (entry {index})"
    )]
    NonFinite {
        /// Method name.
        method: String,
        /// `"reward"`, `"cost"` or `"kl"`.
        field: &'static str,
        /// The offending value.
        value: f64,
        /// Prompt id of the sample.
        prompt_id: usize,
        /// The sample's `sample` index.
        sample: usize,
        /// Position of the sample in `samples`.
        index: usize,
    },
    /// The cost threshold is NaN or infinite.
    #[error("cost threshold must be finite, got {0}")]
    BadThreshold(f64),
    /// The two methods of an arena comparison cannot be paired sample by sample.
    #[error("arena `{blue}` vs `{red}`: {detail}")]
    ArenaMismatch {
        /// The new ("blue", a) method.
        blue: String,
        /// The reference ("red", b) method.
        red: String,
        /// What does not match.
        detail: String,
    },
    /// A plot was asked for with nothing to draw.
    #[error("plot {path}: {detail}")]
    NothingToPlot {
        /// The output file.
        path: PathBuf,
        /// Why there is nothing to plot.
        detail: String,
    },
    /// The plotting backend failed.
    #[error("plot {path}: drawing failed: {detail}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// The backend's message.
        detail: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line of a metrics JSONL file is malformed.
    #[error("{path}:{line}: {detail}")]
    Metrics {
        /// The metrics file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        detail: String,
    },

    /// A bad argument of policy evaluation or the benchmark (names the argument).
    #[error("{arg}: {detail}")]
    InvalidArgument {
        /// The argument or input at fault, e.g. `--policy` or `prompts`.
        arg: String,
        /// What is wrong.
        detail: String,
    },

    /// Loading, training or running a model failed.
    #[error("{context}: {detail}")]
    Model {
        /// What was being done (and on which path).
        context: String,
        /// The underlying error.
        detail: String,
    },

    /// Serialising a report to JSON failed.
    #[error("serialising report to JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Shorthand for this crate's results.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;

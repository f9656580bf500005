//! The error type of the training machinery: every variant names the file, line or config key
//! at fault.

use std::path::PathBuf;

use saferlhf_data::DataError;
use saferlhf_model::ModelError;

/// Errors raised while configuring, running, checkpointing or resuming a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A config file could not be parsed (bad TOML, an unknown key, a value of the wrong type).
    /// `message` is the TOML parser's, which names the key and shows the line.
    #[error("{}: {message}", path.display())]
    ConfigParse {
        /// The config file (or `<overrides>` when the error comes from `--set`).
        path: PathBuf,
        /// What is wrong, with line and column where the parser gives them.
        message: String,
    },
    /// A config value is out of range or inconsistent with another.
    #[error("config key `{key}`: {reason}")]
    Config {
        /// The dotted key, e.g. `optim.lr`.
        key: String,
        /// Why the value is rejected.
        reason: String,
    },
    /// A `--set key=value` override is malformed.
    #[error("--set {spec:?}: {reason}")]
    Override {
        /// The override as given.
        spec: String,
        /// Why it cannot be applied.
        reason: String,
    },
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the run directory's lock (the message names it).
    #[error("{0}")]
    Locked(String),
    /// A dataset could not be loaded (the message names file and line).
    #[error(transparent)]
    Data(#[from] DataError),
    /// A model, tokenizer or weight file could not be loaded or saved.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A checkpoint is missing, incomplete, corrupt or does not fit the run.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint directory or file at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An input row (e.g. of `saferlhf score`) is unusable.
    #[error("{}:{line}: {reason}", path.display())]
    Row {
        /// The file holding the row.
        path: PathBuf,
        /// Its 1-based line.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// Training produced a non-finite loss or gradient norm.
    #[error("step {step}: {what} is not finite ({value}); lower optim.lr or check the data")]
    NonFinite {
        /// The optimizer step at which it happened.
        step: u64,
        /// `loss` or `gradient norm`.
        what: &'static str,
        /// The value.
        value: f64,
    },
}

impl From<saferlhf_core::FsError> for TrainError {
    fn from(e: saferlhf_core::FsError) -> Self {
        TrainError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl TrainError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }

    /// A config error naming `key`.
    pub fn config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        TrainError::Config {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// A checkpoint error naming `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        TrainError::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias of the training machinery.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// An error naming the step and the quantity when `value` is not finite.
pub(crate) fn check_finite(step: u64, what: &'static str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(TrainError::NonFinite { step, what, value })
    }
}

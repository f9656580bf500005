//! The one error type of the model crate: every variant names the file, tensor or field at fault.

use std::path::PathBuf;

/// Errors raised while building, loading, saving or feeding a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is not a valid file of the expected format (truncated, bad magic, bad offsets...).
    #[error("{path}: invalid {format} file: {reason}")]
    Format {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    /// A tensor is stored with a data type this crate cannot decode.
    #[error("{path}: tensor `{tensor}` has unsupported type {dtype}")]
    UnsupportedTensorType {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    /// A file's checksum is not the expected one.
    #[error("{path}: sha256 mismatch: expected {expected}, found {actual}")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// A configuration value is missing or out of range.
    #[error("config field `{field}`: {reason}")]
    Config { field: String, reason: String },
    /// Weights do not fit the configuration (missing tensor, wrong shape...).
    #[error("weights do not match the config: {0}")]
    WeightMismatch(String),
    /// The tokenizer could not be built, or failed on some text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Input given to the model is unusable (empty prompt, too long for the context...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A file lacks a tensor that was asked for by name.
    #[error("{path}: no tensor named `{tensor}`")]
    MissingTensor { path: PathBuf, tensor: String },
    /// A file's metadata key is missing or holds a value of the wrong type.
    #[error("{path}: metadata `{key}` {reason}")]
    Metadata {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

impl From<saferlhf_core::FsError> for ModelError {
    fn from(e: saferlhf_core::FsError) -> Self {
        ModelError::io(e.path, e.source)
    }
}

impl ModelError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias of the model crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

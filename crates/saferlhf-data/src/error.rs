//! Errors: [`DataError`] for a whole load (it names the file and, for a row, the 1-based line) and
//! [`RowError`] for what is wrong with one row (it names the field).

use std::path::{Path, PathBuf};

/// An error from loading a dataset file; its message names the file and, where it applies, the line.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read (also: a corrupt gzip stream).
    #[error("{}{}: {source}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The 1-based line being read when the error happened, when known.
        line: Option<u64>,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// One row is malformed or breaks an invariant (and `skip_invalid` is off).
    #[error("{}:{line}: {error}", path.display())]
    Row {
        /// The file holding the row.
        path: PathBuf,
        /// The 1-based line on which the row starts.
        line: u64,
        /// What is wrong with the row.
        error: RowError,
    },
    /// The file as a whole is unusable (e.g. a CSV header without the required columns).
    #[error("{}:{line}: {message}", path.display())]
    Format {
        /// The file at fault.
        path: PathBuf,
        /// The 1-based line at fault (the header line for CSV).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The file holds no usable row: it is empty, or every row was invalid and skipped.
    #[error(
        "{}: no usable rows ({rows_read} rows read, {skipped} skipped as invalid); a dataset must hold at least one valid row",
        path.display()
    )]
    NoUsableRows {
        /// The file at fault.
        path: PathBuf,
        /// Data rows read (blank lines are not rows).
        rows_read: u64,
        /// Rows skipped as invalid.
        skipped: u64,
    },
    /// A caller-supplied argument is out of range (e.g. a hold-out fraction outside 0..=1).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// What is wrong with one row; `Display` gives e.g. "field `better_response_id`: expected 0 or 1, found 2".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowError {
    /// The line is not valid UTF-8.
    #[error("invalid UTF-8: {0}")]
    InvalidUtf8(String),
    /// The line is not valid JSON.
    #[error("invalid JSON: {0}")]
    BadJson(String),
    /// The line is valid JSON but not an object.
    #[error("expected a JSON object, found {found}")]
    NotAnObject {
        /// The JSON type that was found.
        found: String,
    },
    /// A required field is absent.
    #[error("field `{field}`: missing")]
    MissingField {
        /// The field's name.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("field `{field}`: expected {expected}, found {found}")]
    WrongType {
        /// The field's name.
        field: String,
        /// The type that was expected.
        expected: &'static str,
        /// What was found (type and a short rendering of the value).
        found: String,
    },
    /// A response id is not 0 or 1.
    #[error("field `{field}`: expected 0 or 1, found {found}")]
    IdOutOfRange {
        /// The field's name.
        field: String,
        /// The value that was found.
        found: String,
    },
    /// A text field is empty or only whitespace.
    #[error("field `{field}`: empty")]
    EmptyField {
        /// The field's name.
        field: String,
    },
    /// PKU-SafeRLHF: the "safer" response is labelled unsafe while the other one is labelled safe.
    #[error(
        "inconsistent safety labels: `safer_response_id` is {safer} but response_{safer} is labelled unsafe and response_{other} safe",
        other = 1 - safer
    )]
    InconsistentSafety {
        /// The value of `safer_response_id`.
        safer: u8,
    },
    /// The two responses of a pair are identical (after trimming whitespace), so the pair teaches nothing.
    #[error("the two responses are identical")]
    IdenticalResponses,
    /// HH-RLHF: a dialogue has no "\n\nAssistant:" turn.
    #[error("field `{field}`: dialogue has no \"\\n\\nAssistant:\" turn")]
    NoAssistantTurn {
        /// `chosen` or `rejected`.
        field: String,
    },
    /// HH-RLHF: the final assistant response of a dialogue is empty.
    #[error("field `{field}`: the final Assistant response is empty")]
    EmptyResponse {
        /// `chosen` or `rejected`.
        field: String,
    },
    /// HH-RLHF: the final response contains a "\n\nHuman:" turn (the dialogue ends with the human).
    #[error("field `{field}`: the final Assistant response is followed by a \"\\n\\nHuman:\" turn")]
    HumanTurnInResponse {
        /// `chosen` or `rejected`.
        field: String,
    },
    /// HH-RLHF: the chosen and rejected dialogues do not share the prompt before the final response.
    #[error(
        "the chosen and rejected dialogues do not share the prompt up to the final \"\\n\\nAssistant:\" \
         (prompts of {chosen_len} and {rejected_len} bytes, first difference at byte {first_difference})"
    )]
    PrefixMismatch {
        /// Length in bytes of the chosen dialogue's prompt.
        chosen_len: usize,
        /// Length in bytes of the rejected dialogue's prompt.
        rejected_len: usize,
        /// Byte offset of the first difference between the two prompts.
        first_difference: usize,
    },
    /// CSV: the row has a different number of fields than the header.
    #[error("expected {expected} fields (as in the header), found {found}")]
    FieldCount {
        /// Fields in the header.
        expected: usize,
        /// Fields in this row.
        found: usize,
    },
    /// A numeric field does not hold a finite number.
    #[error("field `{field}`: expected a number, found {found:?}")]
    NotANumber {
        /// The field's name.
        field: String,
        /// The text that was found.
        found: String,
    },
    /// A score lies outside its documented range.
    #[error("field `{field}`: score {value} is outside {min}..={max}")]
    ScoreOutOfRange {
        /// The field's name.
        field: String,
        /// The value that was found.
        value: f32,
        /// Lowest allowed value.
        min: f32,
        /// Highest allowed value.
        max: f32,
    },
    /// PyRIT: the row's `data_type` is not `text` (e.g. an image path), which this crate cannot use.
    #[error("field `data_type`: expected \"text\", found {found:?}")]
    UnsupportedDataType {
        /// The data type that was found.
        found: String,
    },
    /// CSV: the record could not be parsed.
    #[error("malformed CSV: {0}")]
    BadCsv(String),
}

impl RowError {
    /// A short stable name for this kind of error, used to count skipped rows by reason.
    pub fn kind(&self) -> &'static str {
        match self {
            RowError::InvalidUtf8(_) => "invalid_utf8",
            RowError::BadJson(_) => "bad_json",
            RowError::NotAnObject { .. } => "not_an_object",
            RowError::MissingField { .. } => "missing_field",
            RowError::WrongType { .. } => "wrong_type",
            RowError::IdOutOfRange { .. } => "id_out_of_range",
            RowError::EmptyField { .. } => "empty_field",
            RowError::InconsistentSafety { .. } => "inconsistent_safety",
            RowError::IdenticalResponses => "identical_responses",
            RowError::NoAssistantTurn { .. } => "no_assistant_turn",
            RowError::EmptyResponse { .. } => "empty_response",
            RowError::HumanTurnInResponse { .. } => "human_turn_in_response",
            RowError::PrefixMismatch { .. } => "prefix_mismatch",
            RowError::FieldCount { .. } => "field_count",
            RowError::NotANumber { .. } => "not_a_number",
            RowError::ScoreOutOfRange { .. } => "score_out_of_range",
            RowError::UnsupportedDataType { .. } => "unsupported_data_type",
            RowError::BadCsv(_) => "bad_csv",
        }
    }
}

impl DataError {
    /// An I/O error on `path`, at no particular line; `map_err(DataError::io_at(path))`.
    pub fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
        move |source| DataError::Io {
            path: path.to_path_buf(),
            line: None,
            source,
        }
    }

    /// The 1-based line this error points at, if it points at one.
    pub fn line(&self) -> Option<u64> {
        match self {
            DataError::Io { line, .. } => *line,
            DataError::Row { line, .. } | DataError::Format { line, .. } => Some(*line),
            DataError::NoUsableRows { .. } | DataError::InvalidArgument(_) => None,
        }
    }

    /// The row-level error inside, if this is a [`DataError::Row`].
    pub fn row_error(&self) -> Option<&RowError> {
        match self {
            DataError::Row { error, .. } => Some(error),
            _ => None,
        }
    }
}

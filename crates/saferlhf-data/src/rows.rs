//! The streaming machinery every loader shares: opening a file (plain or gzip, detected by its magic
//! bytes), reading it line by line, the [`Rows`] iterator that validates, skips (when asked) and
//! reports, and the [`LoadReport`] it fills in.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{DataError, RowError};

/// What a whole-file loader returns: the rows and the load report.
pub type Loaded<T> = Result<(Vec<T>, LoadReport), DataError>;

/// Options every loader takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// When false (the default) the first malformed row stops the load with a [`DataError::Row`];
    /// when true malformed rows are skipped, counted and listed in the [`LoadReport`] instead.
    pub skip_invalid: bool,
}

impl LoadOptions {
    /// Stop at the first malformed row (the default).
    pub fn strict() -> Self {
        Self {
            skip_invalid: false,
        }
    }

    /// Skip malformed rows, counting and listing them in the report.
    pub fn skip_invalid() -> Self {
        Self { skip_invalid: true }
    }
}

/// One row that was skipped because it was invalid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedRow {
    /// The 1-based line on which the row starts.
    pub line: u64,
    /// The kind of error ([`RowError::kind`]).
    pub kind: &'static str,
    /// The full error message.
    pub reason: String,
}

/// What a load read, kept and skipped; nothing is dropped without appearing here.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadReport {
    /// The file that was read.
    pub path: PathBuf,
    /// Data rows read (blank lines and CSV headers/comments are not rows).
    pub rows_read: u64,
    /// Rows that passed validation and were returned.
    pub rows_kept: u64,
    /// Blank (whitespace-only) lines, which are not rows and are ignored.
    pub blank_lines: u64,
    /// Every row skipped as invalid (only with `skip_invalid`), in file order.
    pub skipped: Vec<SkippedRow>,
}

impl LoadReport {
    /// A fresh, empty report for `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }

    /// The number of skipped rows for each kind of error.
    pub fn counts_by_kind(&self) -> BTreeMap<&'static str, u64> {
        let mut counts = BTreeMap::new();
        for s in &self.skipped {
            *counts.entry(s.kind).or_insert(0) += 1;
        }
        counts
    }

    /// The number of skipped rows.
    pub fn skipped_count(&self) -> u64 {
        self.skipped.len() as u64
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} rows read, {} kept, {} skipped",
            self.path.display(),
            self.rows_read,
            self.rows_kept,
            self.skipped.len()
        )?;
        if !self.skipped.is_empty() {
            let parts: Vec<String> = self
                .counts_by_kind()
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            write!(f, " ({})", parts.join(", "))?;
        }
        if self.blank_lines > 0 {
            write!(f, ", {} blank lines ignored", self.blank_lines)?;
        }
        Ok(())
    }
}

/// What a format-specific source yields for one step.
pub(crate) enum RawRow<T> {
    /// A data row starting on `line`, parsed or not.
    Row {
        line: u64,
        parsed: Result<T, RowError>,
    },
    /// A blank line (not a row).
    Blank,
}

type Source<T> = Box<dyn FnMut() -> Option<Result<RawRow<T>, DataError>> + Send>;

/// A streaming, validating iterator over the rows of one file.
///
/// Yields each valid row as `Ok`. A malformed row ends the stream with `Err(DataError::Row)`, or,
/// with `skip_invalid`, is recorded in [`Rows::report`] and passed over. I/O errors always end the
/// stream. When the file is exhausted without a single valid row the stream yields one final
/// `Err(DataError::NoUsableRows)`: an empty dataset is an error, never a silent empty `Vec`.
pub struct Rows<T> {
    source: Source<T>,
    skip_invalid: bool,
    report: LoadReport,
    done: bool,
}

impl<T> Rows<T> {
    pub(crate) fn new(path: &Path, opts: &LoadOptions, source: Source<T>) -> Self {
        Self {
            source,
            skip_invalid: opts.skip_invalid,
            report: LoadReport::new(path),
            done: false,
        }
    }

    /// The report so far (complete once the iterator has returned `None`).
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// Consumes the iterator, returning its report.
    pub fn into_report(self) -> LoadReport {
        self.report
    }

    /// Drains the stream into a `Vec`, returning it with the report; the first error is returned as is.
    pub fn collect_with_report(mut self) -> Loaded<T> {
        let mut out = Vec::new();
        for item in self.by_ref() {
            out.push(item?);
        }
        if !self.report.skipped.is_empty() {
            log::warn!("{}", self.report);
        } else {
            log::debug!("{}", self.report);
        }
        Ok((out, self.report))
    }

    /// Maps each valid row through `f`, keeping the report and the error behaviour.
    pub fn map_rows<U>(self, mut f: impl FnMut(T) -> U + Send + 'static) -> Rows<U>
    where
        T: 'static,
    {
        let mut source = self.source;
        Rows {
            source: Box::new(move || {
                source().map(|r| {
                    r.map(|raw| match raw {
                        RawRow::Row { line, parsed } => RawRow::Row {
                            line,
                            parsed: parsed.map(&mut f),
                        },
                        RawRow::Blank => RawRow::Blank,
                    })
                })
            }),
            skip_invalid: self.skip_invalid,
            report: self.report,
            done: self.done,
        }
    }
}

impl<T> Iterator for Rows<T> {
    type Item = Result<T, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            match (self.source)() {
                None => {
                    self.done = true;
                    if self.report.rows_kept == 0 {
                        return Some(Err(DataError::NoUsableRows {
                            path: self.report.path.clone(),
                            rows_read: self.report.rows_read,
                            skipped: self.report.skipped_count(),
                        }));
                    }
                    return None;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Some(Ok(RawRow::Blank)) => self.report.blank_lines += 1,
                Some(Ok(RawRow::Row { line, parsed })) => {
                    self.report.rows_read += 1;
                    match parsed {
                        Ok(row) => {
                            self.report.rows_kept += 1;
                            return Some(Ok(row));
                        }
                        Err(error) if self.skip_invalid => {
                            log::debug!("{}:{line}: skipped: {error}", self.report.path.display());
                            self.report.skipped.push(SkippedRow {
                                line,
                                kind: error.kind(),
                                reason: error.to_string(),
                            });
                        }
                        Err(error) => {
                            self.done = true;
                            return Some(Err(DataError::Row {
                                path: self.report.path.clone(),
                                line,
                                error,
                            }));
                        }
                    }
                }
            }
        }
    }
}

/// Opens `path` for buffered reading, transparently decompressing gzip (detected by the magic
/// bytes 1f 8b, whatever the extension).
pub fn open_maybe_gzip(path: &Path) -> Result<Box<dyn BufRead + Send>, DataError> {
    let file = File::open(path).map_err(DataError::io_at(path))?;
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 2];
    let mut have = 0;
    // Peek without consuming: fill_buf may return fewer bytes than asked, so read into a small
    // buffer and chain it back in front of the rest.
    while have < 2 {
        let n = reader
            .read(&mut magic[have..])
            .map_err(DataError::io_at(path))?;
        if n == 0 {
            break;
        }
        have += n;
    }
    let head = std::io::Cursor::new(magic[..have].to_vec());
    let whole = head.chain(reader);
    if have == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
            whole,
        ))))
    } else {
        Ok(Box::new(BufReader::new(whole)))
    }
}

/// A 1-based line number with the line's text (or why it is not valid UTF-8).
pub(crate) type NumberedLine<'a> = (u64, Result<&'a str, RowError>);

/// Reads physical lines from a reader, numbering them from 1, stripping the line terminator and
/// (on line 1) a UTF-8 byte-order mark.
pub(crate) struct LineReader {
    reader: Box<dyn BufRead + Send>,
    path: PathBuf,
    line: u64,
    buf: Vec<u8>,
}

impl LineReader {
    pub(crate) fn new(reader: Box<dyn BufRead + Send>, path: &Path) -> Self {
        Self {
            reader,
            path: path.to_path_buf(),
            line: 0,
            buf: Vec::new(),
        }
    }

    /// The next line as (1-based number, text or UTF-8 error), `None` at end of file.
    pub(crate) fn next_line(&mut self) -> Option<Result<NumberedLine<'_>, DataError>> {
        self.buf.clear();
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => None,
            Ok(_) => {
                self.line += 1;
                let mut bytes: &[u8] = &self.buf;
                if let Some(rest) = bytes.strip_suffix(b"\n") {
                    bytes = rest;
                }
                if let Some(rest) = bytes.strip_suffix(b"\r") {
                    bytes = rest;
                }
                if self.line == 1
                    && let Some(rest) = bytes.strip_prefix(b"\xef\xbb\xbf")
                {
                    bytes = rest;
                }
                let text =
                    std::str::from_utf8(bytes).map_err(|e| RowError::InvalidUtf8(e.to_string()));
                Some(Ok((self.line, text)))
            }
            Err(source) => Some(Err(DataError::Io {
                path: self.path.clone(),
                line: Some(self.line + 1),
                source,
            })),
        }
    }
}

/// A [`Rows`] over a line-oriented file where each non-blank line is parsed by `parse`.
pub(crate) fn line_rows<T: 'static>(
    path: &Path,
    opts: &LoadOptions,
    mut parse: impl FnMut(&str) -> Result<T, RowError> + Send + 'static,
) -> Result<Rows<T>, DataError> {
    let mut lines = LineReader::new(open_maybe_gzip(path)?, path);
    let source: Source<T> = Box::new(move || {
        let (line, text) = match lines.next_line()? {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        let raw = match text {
            Ok(t) if t.trim().is_empty() => RawRow::Blank,
            Ok(t) => RawRow::Row {
                line,
                parsed: parse(t),
            },
            Err(e) => RawRow::Row {
                line,
                parsed: Err(e),
            },
        };
        Some(Ok(raw))
    });
    Ok(Rows::new(path, opts, source))
}

/// A [`Rows`] over a JSON-lines file: each non-blank line must be a JSON object, handed to `parse`.
pub(crate) fn jsonl_rows<T: 'static>(
    path: &Path,
    opts: &LoadOptions,
    mut parse: impl FnMut(&Map<String, Value>) -> Result<T, RowError> + Send + 'static,
) -> Result<Rows<T>, DataError> {
    line_rows(path, opts, move |text| {
        let value: Value =
            serde_json::from_str(text).map_err(|e| RowError::BadJson(e.to_string()))?;
        match value {
            Value::Object(obj) => parse(&obj),
            other => Err(RowError::NotAnObject {
                found: json_type(&other).to_string(),
            }),
        }
    })
}

/// The JSON type name of a value.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short description of a value for error messages: its type and, for scalars, the value.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => {
            let short: String = s.chars().take(40).collect();
            let ell = if short.len() < s.len() { "…" } else { "" };
            format!("string {short:?}{ell}")
        }
        other => json_type(other).to_string(),
    }
}

/// Field `name` of `obj` as a string (present, of string type; may be empty).
pub(crate) fn get_str<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, RowError> {
    match obj.get(name) {
        None => Err(RowError::MissingField {
            field: name.to_string(),
        }),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(RowError::WrongType {
            field: name.to_string(),
            expected: "a string",
            found: describe(other),
        }),
    }
}

/// Field `name` of `obj` as a non-empty (not only whitespace) string.
pub(crate) fn get_text(obj: &Map<String, Value>, name: &str) -> Result<String, RowError> {
    let s = get_str(obj, name)?;
    if s.trim().is_empty() {
        return Err(RowError::EmptyField {
            field: name.to_string(),
        });
    }
    Ok(s.to_string())
}

/// Field `name` of `obj` as a boolean.
pub(crate) fn get_bool(obj: &Map<String, Value>, name: &str) -> Result<bool, RowError> {
    match obj.get(name) {
        None => Err(RowError::MissingField {
            field: name.to_string(),
        }),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(RowError::WrongType {
            field: name.to_string(),
            expected: "a boolean",
            found: describe(other),
        }),
    }
}

/// Field `name` of `obj` as a response id: the integer 0 or 1.
pub(crate) fn get_id(obj: &Map<String, Value>, name: &str) -> Result<u8, RowError> {
    match obj.get(name) {
        None => Err(RowError::MissingField {
            field: name.to_string(),
        }),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => Ok(0),
            Some(1) => Ok(1),
            _ => Err(RowError::IdOutOfRange {
                field: name.to_string(),
                found: n.to_string(),
            }),
        },
        Some(other) => Err(RowError::WrongType {
            field: name.to_string(),
            expected: "0 or 1",
            found: describe(other),
        }),
    }
}

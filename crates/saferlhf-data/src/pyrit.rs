//! PyRIT's human-scored harm data (PyPI `pyrit==1.1.0`, MIT), and pairs formed from it.
//!
//! The wheel ships `pyrit/datasets/scorer_evals/harm/*.csv` (11 files, 1,005 rows; `*_metrics.jsonl`
//! beside them are scorer results, not data). Each file opens with one `#` comment line
//! (`# dataset_version=1.0, harm_definition=violence.yaml, harm_definition_version=1.0,,`), then a
//! header and quoted, often multi-line, records:
//!
//! | column | meaning |
//! |---|---|
//! | `harm_category` | e.g. `violence`, `hate_speech`, `SEXUAL_CONTENT` (optional here) |
//! | `objective` | the user prompt → [`ScoredResponse::prompt`] |
//! | `assistant_response` | the response → [`ScoredResponse::response`] |
//! | `human_score_1` [, `human_score_2`, `human_score_3`] or `human_score` | one column per rater |
//! | `data_type` | `text` in every shipped row (optional here; other types are rejected) |
//!
//! Scores are already on PyRIT's 0..=1 float scale (the harm definitions' 1..5 Likert levels mapped
//! by (level − 1) / 4, so the values seen are 0, 0.25, 0.5, 0.75, 1). Every column whose name
//! starts with `human_score` is a rater; [`ScoreAggregate`] says how raters are combined (PyRIT
//! itself uses the median as the gold label; the default here is the mean, which keeps finer
//! grades). A score outside 0..=1 or not a number is an error naming the column.
//!
//! Leading lines starting with `#` are skipped; a record whose fields are all empty is treated like
//! a blank line (PyRIT drops such rows too). Line numbers in errors are the physical line on which
//! the record starts, comment lines included.

use std::collections::HashMap;
use std::io::{BufRead, Cursor, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, RowError};
use crate::rows::{LoadOptions, LoadReport, Loaded, RawRow, Rows, open_maybe_gzip};
use crate::types::{PreferencePair, ScoredResponse};

/// How several raters' scores of one response are combined into one harm value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScoreAggregate {
    /// The arithmetic mean (the default).
    #[default]
    Mean,
    /// The median (mean of the two middle scores for an even count), PyRIT's gold label.
    Median,
}

impl ScoreAggregate {
    /// Combines `scores` (at least one) into one value.
    pub fn apply(self, scores: &[f32]) -> f32 {
        match self {
            ScoreAggregate::Mean => scores.iter().sum::<f32>() / scores.len() as f32,
            // Computed in f64 and rounded to f32.
            ScoreAggregate::Median => {
                let wide: Vec<f64> = scores.iter().map(|&s| s as f64).collect();
                saferlhf_core::stats::median(&wide).unwrap_or(f64::NAN) as f32
            }
        }
    }
}

struct Columns {
    n: usize,
    objective: usize,
    response: usize,
    scores: Vec<(usize, String)>,
    category: Option<usize>,
    data_type: Option<usize>,
}

impl Columns {
    fn from_header(names: &[String]) -> Result<Self, String> {
        let find = |name: &str| names.iter().position(|n| n == name);
        let scores: Vec<(usize, String)> = names
            .iter()
            .enumerate()
            .filter(|(_, n)| n.starts_with("human_score"))
            .map(|(i, n)| (i, n.clone()))
            .collect();
        let mut missing = Vec::new();
        let objective = find("objective");
        let response = find("assistant_response");
        if objective.is_none() {
            missing.push("`objective`");
        }
        if response.is_none() {
            missing.push("`assistant_response`");
        }
        if scores.is_empty() {
            missing.push("a `human_score*` column");
        }
        match (objective, response) {
            (Some(objective), Some(response)) if missing.is_empty() => Ok(Self {
                n: names.len(),
                objective,
                response,
                scores,
                category: find("harm_category"),
                data_type: find("data_type"),
            }),
            _ => Err(format!(
                "CSV header lacks {} (found columns: {}); a PyRIT harm CSV has objective, \
                 assistant_response, human_score_1.. (or human_score), optionally harm_category and data_type",
                missing.join(", "),
                names.join(", ")
            )),
        }
    }

    fn parse(
        &self,
        rec: &csv::ByteRecord,
        aggregate: ScoreAggregate,
    ) -> Result<ScoredResponse, RowError> {
        if rec.len() != self.n {
            return Err(RowError::FieldCount {
                expected: self.n,
                found: rec.len(),
            });
        }
        let field = |i: usize, name: &str| {
            std::str::from_utf8(&rec[i])
                .map_err(|e| RowError::InvalidUtf8(format!("field `{name}`: {e}")))
        };
        let text = |i: usize, name: &str| {
            let s = field(i, name)?;
            if s.trim().is_empty() {
                Err(RowError::EmptyField {
                    field: name.to_string(),
                })
            } else {
                Ok(s.to_string())
            }
        };
        let prompt = text(self.objective, "objective")?;
        let response = text(self.response, "assistant_response")?;
        let mut scores = Vec::with_capacity(self.scores.len());
        for (i, name) in &self.scores {
            let raw = field(*i, name)?.trim();
            let value: f32 = raw
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .ok_or_else(|| RowError::NotANumber {
                    field: name.clone(),
                    found: raw.to_string(),
                })?;
            if !(0.0..=1.0).contains(&value) {
                return Err(RowError::ScoreOutOfRange {
                    field: name.clone(),
                    value,
                    min: 0.0,
                    max: 1.0,
                });
            }
            scores.push(value);
        }
        if let Some(i) = self.data_type {
            let dt = field(i, "data_type")?.trim();
            if !dt.is_empty() && dt != "text" {
                return Err(RowError::UnsupportedDataType {
                    found: dt.to_string(),
                });
            }
        }
        let category = match self.category {
            Some(i) => {
                Some(field(i, "harm_category")?.trim().to_string()).filter(|c| !c.is_empty())
            }
            None => None,
        };
        Ok(ScoredResponse {
            prompt,
            response,
            harm: aggregate.apply(&scores),
            category,
        })
    }
}

fn csv_error(path: &Path, line: u64, err: csv::Error) -> Result<RawRow<ScoredResponse>, DataError> {
    let line = err.position().map_or(line, |p| p.line());
    match err.into_kind() {
        csv::ErrorKind::Io(source) => Err(DataError::Io {
            path: path.to_path_buf(),
            line: Some(line),
            source,
        }),
        other => Ok(RawRow::Row {
            line,
            parsed: Err(RowError::BadCsv(format!("{other:?}"))),
        }),
    }
}

/// Streams the responses of one PyRIT harm CSV (plain or gzip), validating each.
pub fn read_pyrit_harm(
    path: impl AsRef<Path>,
    aggregate: ScoreAggregate,
    opts: &LoadOptions,
) -> Result<Rows<ScoredResponse>, DataError> {
    let path = path.as_ref();
    let io_err = |line, source| DataError::Io {
        path: path.to_path_buf(),
        line: Some(line),
        source,
    };
    let mut reader = open_maybe_gzip(path)?;
    // Skip leading `#` comment lines; hand the first other line back to the CSV reader.
    let mut comments = 0u64;
    let mut first = Vec::new();
    loop {
        first.clear();
        let n = reader
            .read_until(b'\n', &mut first)
            .map_err(|e| io_err(comments + 1, e))?;
        if comments == 0 && first.starts_with(b"\xef\xbb\xbf") {
            first.drain(..3);
        }
        if n == 0 || !first.starts_with(b"#") {
            break;
        }
        log::debug!(
            "{}:{}: {}",
            path.display(),
            comments + 1,
            String::from_utf8_lossy(&first).trim_end()
        );
        comments += 1;
    }
    let input: Box<dyn Read + Send> = Box::new(Cursor::new(first).chain(reader));
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);

    let mut header = csv::ByteRecord::new();
    let header_line = comments + 1;
    let has_header = match csv.read_byte_record(&mut header) {
        Ok(has) => has,
        Err(e) => {
            return match csv_error(path, header_line, e) {
                Err(e) => Err(e),
                Ok(_) => Err(DataError::Format {
                    path: path.to_path_buf(),
                    line: header_line,
                    message: "malformed CSV header".to_string(),
                }),
            };
        }
    };
    let source_path: PathBuf = path.to_path_buf();
    let mut columns = None;
    if has_header {
        let line = header.position().map_or(1, |p| p.line()) + comments;
        let names: Vec<String> = header
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_string())
            .collect();
        columns = Some(
            Columns::from_header(&names).map_err(|message| DataError::Format {
                path: path.to_path_buf(),
                line,
                message,
            })?,
        );
    }
    let mut record = csv::ByteRecord::new();
    let mut last_line = header_line;
    let source = Box::new(move || {
        let columns = columns.as_ref()?;
        match csv.read_byte_record(&mut record) {
            Ok(false) => None,
            Ok(true) => {
                let line = record.position().map_or(last_line + 1, |p| p.line()) + comments;
                last_line = line;
                if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                    return Some(Ok(RawRow::Blank));
                }
                Some(Ok(RawRow::Row {
                    line,
                    parsed: columns.parse(&record, aggregate),
                }))
            }
            Err(e) => Some(csv_error(&source_path, last_line + 1, e)),
        }
    });
    Ok(Rows::new(path, opts, source))
}

/// Loads one PyRIT harm CSV; errors if it holds no valid row.
pub fn load_pyrit_harm(
    path: impl AsRef<Path>,
    aggregate: ScoreAggregate,
    opts: &LoadOptions,
) -> Loaded<ScoredResponse> {
    read_pyrit_harm(path, aggregate, opts)?.collect_with_report()
}

/// Loads every `*.csv` / `*.csv.gz` in `dir` (sorted by file name), with one report per file.
///
/// The shipped files overlap (`mini_hate_speech.csv` repeats 15 rows of
/// `hate_speech_multi_score.csv`) and a few files repeat a (prompt, response) with different
/// scores: pass the result through [`dedup_scored`] before forming pairs.
pub fn load_pyrit_harm_dir(
    dir: impl AsRef<Path>,
    aggregate: ScoreAggregate,
    opts: &LoadOptions,
) -> Result<(Vec<ScoredResponse>, Vec<LoadReport>), DataError> {
    let dir = dir.as_ref();
    let entries = std::fs::read_dir(dir).map_err(DataError::io_at(dir))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(DataError::io_at(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if (name.ends_with(".csv") || name.ends_with(".csv.gz")) && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    if files.is_empty() {
        return Err(DataError::NoUsableRows {
            path: dir.to_path_buf(),
            rows_read: 0,
            skipped: 0,
        });
    }
    files.sort();
    let mut all = Vec::new();
    let mut reports = Vec::new();
    for f in files {
        let (rows, report) = load_pyrit_harm(&f, aggregate, opts)?;
        all.extend(rows);
        reports.push(report);
    }
    Ok((all, reports))
}

/// Merges responses with the same (prompt, response) text into one whose harm is the mean of
/// theirs (first occurrence's position and category kept); returns the merged list and how many
/// duplicates were folded in.
pub fn dedup_scored(items: Vec<ScoredResponse>) -> (Vec<ScoredResponse>, usize) {
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut out: Vec<ScoredResponse> = Vec::new();
    let mut sums: Vec<(f64, u32)> = Vec::new();
    let mut merged = 0;
    for item in items {
        let key = (item.prompt.clone(), item.response.clone());
        match index.get(&key) {
            Some(&i) => {
                sums[i].0 += f64::from(item.harm);
                sums[i].1 += 1;
                merged += 1;
            }
            None => {
                index.insert(key, out.len());
                sums.push((f64::from(item.harm), 1));
                out.push(item);
            }
        }
    }
    for (item, (sum, n)) in out.iter_mut().zip(sums) {
        item.harm = (sum / f64::from(n)) as f32;
    }
    (out, merged)
}

/// How [`harm_pairs`] forms preference pairs from scored responses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairOptions {
    /// A response is labelled safe iff `harm < safe_threshold`. Default 0.5: PyRIT levels 0 and
    /// 0.25 ("none", "minimal") are safe; 0.5 ("significant") and above are unsafe.
    pub safe_threshold: f32,
    /// Two responses form a pair only if their harm differs by more than this (default 0.0, i.e.
    /// any difference).
    pub min_margin: f32,
    /// At most this many pairs per prompt, the largest harm differences first (default: no limit).
    pub max_pairs_per_prompt: Option<usize>,
}

impl Default for PairOptions {
    fn default() -> Self {
        Self {
            safe_threshold: 0.5,
            min_margin: 0.0,
            max_pairs_per_prompt: None,
        }
    }
}

/// Forms preference pairs from responses to the same prompt (exact text match) with different harm:
/// chosen = the less harmful one, each labelled safe iff `harm < safe_threshold`.
///
/// Deterministic: prompts in order of first appearance; within a prompt, pairs sorted by harm
/// difference, largest first, ties in file order (i < j). Responses identical after trimming are
/// never paired.
pub fn harm_pairs(
    items: &[ScoredResponse],
    opts: &PairOptions,
) -> Result<Vec<PreferencePair>, DataError> {
    if !opts.safe_threshold.is_finite() {
        return Err(DataError::InvalidArgument(format!(
            "safe_threshold must be finite, got {}",
            opts.safe_threshold
        )));
    }
    if !(opts.min_margin >= 0.0 && opts.min_margin.is_finite()) {
        return Err(DataError::InvalidArgument(format!(
            "min_margin must be finite and >= 0, got {}",
            opts.min_margin
        )));
    }
    let mut order: Vec<&str> = Vec::new();
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        groups
            .entry(item.prompt.as_str())
            .or_insert_with(|| {
                order.push(item.prompt.as_str());
                Vec::new()
            })
            .push(i);
    }
    let mut pairs = Vec::new();
    for prompt in order {
        let idx = &groups[prompt];
        let mut cands: Vec<(f32, usize, usize)> = Vec::new();
        for (a, &i) in idx.iter().enumerate() {
            for &j in &idx[a + 1..] {
                let (x, y) = (&items[i], &items[j]);
                let margin = (x.harm - y.harm).abs();
                if margin > opts.min_margin && x.response.trim() != y.response.trim() {
                    cands.push((margin, i, j));
                }
            }
        }
        cands.sort_by(|a, b| b.0.total_cmp(&a.0));
        if let Some(k) = opts.max_pairs_per_prompt {
            cands.truncate(k);
        }
        for (_, i, j) in cands {
            let (c, r) = if items[i].harm < items[j].harm {
                (&items[i], &items[j])
            } else {
                (&items[j], &items[i])
            };
            pairs.push(PreferencePair {
                prompt: prompt.to_string(),
                chosen: c.response.clone(),
                rejected: r.response.clone(),
                chosen_safe: Some(c.is_safe(opts.safe_threshold)),
                rejected_safe: Some(r.is_safe(opts.safe_threshold)),
            });
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;

    const HEADER3: &str = "# dataset_version=1.0, harm_definition=violence.yaml, harm_definition_version=1.0,,,,\n\
        harm_category,objective,assistant_response,human_score_1,human_score_2,human_score_3,data_type\n";

    fn csv_text(rows: &[&str]) -> String {
        let mut s = HEADER3.to_string();
        for r in rows {
            s.push_str(r);
            s.push('\n');
        }
        s
    }

    #[test]
    fn round_trip_with_comment_multiline_fields_and_raters() {
        let dir = TempDir::new("pyrit-rt");
        let text = csv_text(&[
            "violence,How do I fight?,\"I won't help, sorry.\",0,0.25,0,text",
            "violence,How do I fight?,\"Step 1: \"\"punch\"\".\nStep 2: kick.\",1,0.75,0.5,text",
            "violence,Other prompt,Fine answer,0.25,0.25,1,text",
        ]);
        let path = dir.write("violence_multi_score.csv", &text);
        let (rows, report) =
            load_pyrit_harm(&path, ScoreAggregate::Mean, &LoadOptions::strict()).unwrap();
        assert_eq!((report.rows_read, report.rows_kept), (3, 3));
        assert_eq!(rows[0].prompt, "How do I fight?");
        assert_eq!(rows[0].response, "I won't help, sorry.");
        assert!((rows[0].harm - 0.25 / 3.0).abs() < 1e-6);
        assert_eq!(rows[1].response, "Step 1: \"punch\".\nStep 2: kick.");
        assert!((rows[1].harm - 0.75).abs() < 1e-6);
        assert_eq!(rows[1].category.as_deref(), Some("violence"));
        let (med, _) =
            load_pyrit_harm(&path, ScoreAggregate::Median, &LoadOptions::strict()).unwrap();
        assert_eq!(
            med.iter().map(|r| r.harm).collect::<Vec<_>>(),
            [0.0, 0.75, 0.25]
        );
        // gzip, detected by magic bytes.
        let gz = dir.write_gz("violence.csv.gz", &text);
        let (g, _) = load_pyrit_harm(&gz, ScoreAggregate::Mean, &LoadOptions::strict()).unwrap();
        assert_eq!(g, rows);
        // A single `human_score` column and no optional columns.
        let p = dir.write(
            "single.csv",
            "objective,assistant_response,human_score\nq,a,0.5\n",
        );
        let (s, _) = load_pyrit_harm(&p, ScoreAggregate::Mean, &LoadOptions::strict()).unwrap();
        assert_eq!((s[0].harm, s[0].category.clone()), (0.5, None));
    }

    #[test]
    fn wrong_columns_is_a_file_error_at_the_header_line() {
        let dir = TempDir::new("pyrit-cols");
        let p = dir.write(
            "x.csv",
            "# comment\nharm_category,prompt,response,score\nv,a,b,0\n",
        );
        let err =
            load_pyrit_harm(&p, ScoreAggregate::Mean, &LoadOptions::skip_invalid()).unwrap_err();
        assert!(matches!(err, DataError::Format { line: 2, .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("`objective`")
                && msg.contains("`assistant_response`")
                && msg.contains("human_score"),
            "{msg}"
        );
        assert!(
            msg.contains("found columns: harm_category, prompt, response, score"),
            "{msg}"
        );
    }

    fn bad_row(row: &str) -> (String, RowError) {
        let dir = TempDir::new("pyrit-bad");
        // Line 3 holds a two-line record, so the bad row starts on line 5.
        let text = csv_text(&["v,q,\"ok\nstill ok\",0,0,0,text", row]);
        let path = dir.write("x.csv", &text);
        let err = load_pyrit_harm(&path, ScoreAggregate::Mean, &LoadOptions::strict()).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.line(), Some(5), "{msg}");
        assert!(msg.starts_with(&format!("{}:5: ", path.display())), "{msg}");
        (msg, err.row_error().unwrap().clone())
    }

    #[test]
    fn each_bad_row_names_line_and_column() {
        let (msg, e) = bad_row("v,q,a,0,high,0,text");
        assert_eq!(e.kind(), "not_a_number");
        assert!(
            msg.ends_with("field `human_score_2`: expected a number, found \"high\""),
            "{msg}"
        );
        let (_, e) = bad_row("v,q,a,0,,0,text");
        assert_eq!(e.kind(), "not_a_number");
        let (_, e) = bad_row("v,q,a,0,NaN,0,text");
        assert_eq!(e.kind(), "not_a_number");
        let (msg, e) = bad_row("v,q,a,0,3,0,text");
        assert_eq!(e.kind(), "score_out_of_range");
        assert!(
            msg.ends_with("field `human_score_2`: score 3 is outside 0..=1"),
            "{msg}"
        );
        let (msg, e) = bad_row("v,q,a,0,0,text");
        assert_eq!(
            e,
            RowError::FieldCount {
                expected: 7,
                found: 6
            }
        );
        assert!(
            msg.ends_with("expected 7 fields (as in the header), found 6"),
            "{msg}"
        );
        let (_, e) = bad_row("v, ,a,0,0,0,text");
        assert_eq!(
            e,
            RowError::EmptyField {
                field: "objective".into()
            }
        );
        let (_, e) = bad_row("v,q,,0,0,0,text");
        assert_eq!(
            e,
            RowError::EmptyField {
                field: "assistant_response".into()
            }
        );
        let (_, e) = bad_row("v,q,img.png,0,0,0,image_path");
        assert_eq!(
            e,
            RowError::UnsupportedDataType {
                found: "image_path".into()
            }
        );
    }

    #[test]
    fn skip_invalid_counts_and_blank_records_are_ignored() {
        let dir = TempDir::new("pyrit-skip");
        let text = csv_text(&[
            "v,q,a,0,0,0,text",
            "v,q,b,x,0,0,text",
            ",,,,,,",
            "v,q,c,1,1,1,text",
            "v,q,d,2,0,0,text",
        ]);
        let path = dir.write("x.csv", &text);
        let (rows, report) =
            load_pyrit_harm(&path, ScoreAggregate::Mean, &LoadOptions::skip_invalid()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((report.rows_read, report.blank_lines), (4, 1));
        assert_eq!(
            report
                .skipped
                .iter()
                .map(|s| (s.line, s.kind))
                .collect::<Vec<_>>(),
            [(4, "not_a_number"), (7, "score_out_of_range")]
        );
        let only_header = dir.write("h.csv", HEADER3);
        assert!(matches!(
            load_pyrit_harm(&only_header, ScoreAggregate::Mean, &LoadOptions::strict()),
            Err(DataError::NoUsableRows { .. })
        ));
        let empty = dir.write("e.csv", "");
        assert!(matches!(
            load_pyrit_harm(&empty, ScoreAggregate::Mean, &LoadOptions::strict()),
            Err(DataError::NoUsableRows { .. })
        ));
    }

    fn sr(prompt: &str, response: &str, harm: f32) -> ScoredResponse {
        ScoredResponse {
            prompt: prompt.into(),
            response: response.into(),
            harm,
            category: None,
        }
    }

    /// (prompt, chosen, rejected, chosen_safe, rejected_safe)
    type Summary<'a> = (&'a str, &'a str, &'a str, Option<bool>, Option<bool>);

    #[test]
    fn pairs_prefer_lower_harm_with_threshold_labels() {
        let items = [
            sr("p", "refuse", 0.0),
            sr("p", "partial", 0.5),
            sr("q", "x", 0.25),
            sr("p", "full", 1.0),
            sr("p", "tie", 0.5),
            sr("q", " x ", 0.9),
            sr("r", "alone", 0.3),
        ];
        let pairs = harm_pairs(&items, &PairOptions::default()).unwrap();
        let got: Vec<Summary> = pairs
            .iter()
            .map(|p| {
                (
                    p.prompt.as_str(),
                    p.chosen.as_str(),
                    p.rejected.as_str(),
                    p.chosen_safe,
                    p.rejected_safe,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                // Largest difference first, then file order; partial/tie (equal harm) and the two
                // `q` responses (identical after trimming) are not paired.
                ("p", "refuse", "full", Some(true), Some(false)),
                ("p", "refuse", "partial", Some(true), Some(false)),
                ("p", "refuse", "tie", Some(true), Some(false)),
                ("p", "partial", "full", Some(false), Some(false)),
                ("p", "tie", "full", Some(false), Some(false)),
            ]
        );
        let opts = PairOptions {
            safe_threshold: 0.75,
            min_margin: 0.5,
            max_pairs_per_prompt: Some(1),
        };
        let pairs = harm_pairs(&items, &opts).unwrap();
        assert_eq!(pairs.len(), 1);
        assert_eq!(
            (pairs[0].chosen.as_str(), pairs[0].rejected.as_str()),
            ("refuse", "full")
        );
        let pairs = harm_pairs(
            &items,
            &PairOptions {
                safe_threshold: 0.75,
                ..PairOptions::default()
            },
        )
        .unwrap();
        assert_eq!(
            (pairs[3].chosen.as_str(), pairs[3].chosen_safe),
            ("partial", Some(true))
        );
        assert!(
            harm_pairs(
                &items,
                &PairOptions {
                    min_margin: -1.0,
                    ..PairOptions::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn dedup_merges_identical_rows() {
        let (out, merged) = dedup_scored(vec![
            sr("p", "a", 0.0),
            sr("p", "b", 1.0),
            sr("p", "a", 0.5),
            sr("q", "a", 1.0),
        ]);
        assert_eq!(merged, 1);
        assert_eq!(out.len(), 3);
        assert_eq!((out[0].response.as_str(), out[0].harm), ("a", 0.25));
    }

    /// The real PyRIT 1.1.0 harm CSVs, fetched by scripts/fetch-assets.sh into assets/pyrit/.
    #[test]
    fn real_pyrit_harm_csvs() {
        let Some(dir) = saferlhf_testkit::asset("pyrit/scorer_evals/harm") else {
            return;
        };
        let (rows, reports) =
            load_pyrit_harm_dir(&dir, ScoreAggregate::Mean, &LoadOptions::strict()).unwrap();
        for r in &reports {
            eprintln!("PyRIT: {r}");
        }
        assert_eq!(reports.len(), 11);
        assert_eq!(rows.len(), 1005);
        assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r.harm)));
        let (rows, merged) = dedup_scored(rows);
        assert_eq!((rows.len(), merged), (984, 21));
        let safe = rows.iter().filter(|r| r.is_safe(0.5)).count();
        let pairs = harm_pairs(&rows, &PairOptions::default()).unwrap();
        let capped = harm_pairs(
            &rows,
            &PairOptions {
                max_pairs_per_prompt: Some(8),
                ..PairOptions::default()
            },
        )
        .unwrap();
        let mixed = pairs
            .iter()
            .filter(|p| p.chosen_safe != p.rejected_safe)
            .count();
        eprintln!(
            "PyRIT: {} responses after dedup ({safe} safe at harm < 0.5), {} pairs ({mixed} safe-vs-unsafe), {} with at most 8 per prompt",
            rows.len(),
            pairs.len(),
            capped.len()
        );
        assert!(pairs.iter().all(|p| p.chosen != p.rejected));
        assert!(!capped.is_empty() && capped.len() < pairs.len());
    }
}

//! PKU-SafeRLHF (JSON lines, one object per line) and its derived views.
//!
//! Each row holds `prompt`, `response_0`, `response_1`, `better_response_id` and
//! `safer_response_id` (each the integer 0 or 1), and `is_response_0_safe` / `is_response_1_safe`
//! (booleans). Other fields (the 2024 release adds harm categories and severities) are ignored.
//!
//! Validation, beyond types: prompt and responses must not be empty or whitespace-only; the two
//! responses must differ (after trimming whitespace; the learner should still drop pairs that
//! tokenize identically); and the safety labels must be consistent with `safer_response_id`: a row
//! whose "safer" response is labelled unsafe while the other is labelled safe is rejected
//! ([`RowError::InconsistentSafety`]), as safe-rlhf does. With `skip_invalid`
//! such rows are counted in the report under `inconsistent_safety`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{DataError, RowError};
use crate::rows::{LoadOptions, Loaded, Rows, get_bool, get_id, get_text, jsonl_rows};
use crate::types::{PreferencePair, UnaryExample};

/// One PKU-SafeRLHF row: a prompt, two responses, which is more helpful, which is safer, and a
/// safe/unsafe label for each.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PkuRow {
    /// The user prompt.
    pub prompt: String,
    /// Response 0.
    pub response_0: String,
    /// Response 1.
    pub response_1: String,
    /// Which response is more helpful: 0 or 1.
    pub better_response_id: u8,
    /// Which response is safer (less harmful): 0 or 1.
    pub safer_response_id: u8,
    /// Whether response 0 is labelled safe.
    pub is_response_0_safe: bool,
    /// Whether response 1 is labelled safe.
    pub is_response_1_safe: bool,
}

impl PkuRow {
    /// The prompt (the prompt-only view used for PPO rollouts).
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// Response `id` (0 gives `response_0`, anything else `response_1`).
    pub fn response(&self, id: u8) -> &str {
        if id == 0 {
            &self.response_0
        } else {
            &self.response_1
        }
    }

    /// Whether response `id` is labelled safe (0 gives response 0, anything else response 1).
    pub fn is_safe(&self, id: u8) -> bool {
        if id == 0 {
            self.is_response_0_safe
        } else {
            self.is_response_1_safe
        }
    }

    /// Helpfulness pair (reward model, helpful DPO): chosen = the better response. The safety
    /// labels of both responses ride along, as facts about the responses.
    pub fn helpfulness_pair(&self) -> PreferencePair {
        self.pair(self.better_response_id)
    }

    /// Safety pair (cost model, safety DPO): chosen = the safer response, each with its safe/unsafe label.
    pub fn safety_pair(&self) -> PreferencePair {
        self.pair(self.safer_response_id)
    }

    /// Safety KTO view: each response on its own, desirable iff labelled safe (two samples).
    pub fn safety_unary(&self) -> [UnaryExample; 2] {
        [0u8, 1].map(|id| UnaryExample {
            prompt: self.prompt.clone(),
            response: self.response(id).to_string(),
            desirable: self.is_safe(id),
        })
    }

    /// Helpfulness KTO view: the better response desirable, the other undesirable (two samples).
    pub fn helpfulness_unary(&self) -> [UnaryExample; 2] {
        let better = self.better_response_id.min(1);
        [better, 1 - better].map(|id| UnaryExample {
            prompt: self.prompt.clone(),
            response: self.response(id).to_string(),
            desirable: id == better,
        })
    }

    /// Checks the invariants the loader enforces (non-empty texts, ids 0/1, distinct responses,
    /// consistent safety labels); useful for rows built in code.
    pub fn validate(&self) -> Result<(), RowError> {
        for (field, text) in [
            ("prompt", &self.prompt),
            ("response_0", &self.response_0),
            ("response_1", &self.response_1),
        ] {
            if text.trim().is_empty() {
                return Err(RowError::EmptyField {
                    field: field.to_string(),
                });
            }
        }
        for (field, id) in [
            ("better_response_id", self.better_response_id),
            ("safer_response_id", self.safer_response_id),
        ] {
            if id > 1 {
                return Err(RowError::IdOutOfRange {
                    field: field.to_string(),
                    found: id.to_string(),
                });
            }
        }
        if self.response_0.trim() == self.response_1.trim() {
            return Err(RowError::IdenticalResponses);
        }
        let safer = self.safer_response_id;
        if !self.is_safe(safer) && self.is_safe(1 - safer) {
            return Err(RowError::InconsistentSafety { safer });
        }
        Ok(())
    }

    fn pair(&self, chosen: u8) -> PreferencePair {
        let chosen = chosen.min(1);
        let rejected = 1 - chosen;
        PreferencePair {
            prompt: self.prompt.clone(),
            chosen: self.response(chosen).to_string(),
            rejected: self.response(rejected).to_string(),
            chosen_safe: Some(self.is_safe(chosen)),
            rejected_safe: Some(self.is_safe(rejected)),
        }
    }
}

/// Parses and validates one PKU-SafeRLHF JSON object.
pub fn parse_pku_object(obj: &Map<String, Value>) -> Result<PkuRow, RowError> {
    let row = PkuRow {
        prompt: get_text(obj, "prompt")?,
        response_0: get_text(obj, "response_0")?,
        response_1: get_text(obj, "response_1")?,
        better_response_id: get_id(obj, "better_response_id")?,
        safer_response_id: get_id(obj, "safer_response_id")?,
        is_response_0_safe: get_bool(obj, "is_response_0_safe")?,
        is_response_1_safe: get_bool(obj, "is_response_1_safe")?,
    };
    row.validate()?;
    Ok(row)
}

/// Streams the rows of a PKU-SafeRLHF JSONL file (plain or gzip), validating each.
pub fn read_pku(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Rows<PkuRow>, DataError> {
    jsonl_rows(path.as_ref(), opts, parse_pku_object)
}

/// Loads a whole PKU-SafeRLHF JSONL file; errors if it holds no valid row.
pub fn load_pku(path: impl AsRef<Path>, opts: &LoadOptions) -> Loaded<PkuRow> {
    read_pku(path, opts)?.collect_with_report()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{TempDir, jsonl};
    use serde_json::json;

    fn row(prompt: &str, r0: &str, r1: &str, better: u8, safer: u8, s0: bool, s1: bool) -> PkuRow {
        PkuRow {
            prompt: prompt.into(),
            response_0: r0.into(),
            response_1: r1.into(),
            better_response_id: better,
            safer_response_id: safer,
            is_response_0_safe: s0,
            is_response_1_safe: s1,
        }
    }

    fn good() -> serde_json::Value {
        json!({
            "prompt": "How do I pick a lock?",
            "response_0": "Here is how to pick it: ...",
            "response_1": "I can't help with breaking into property.",
            "better_response_id": 0,
            "safer_response_id": 1,
            "is_response_0_safe": false,
            "is_response_1_safe": true,
            "prompt_source": "extra fields are ignored",
            "response_0_severity_level": 2
        })
    }

    fn with(field: &str, value: serde_json::Value) -> serde_json::Value {
        let mut v = good();
        v[field] = value;
        v
    }

    fn without(field: &str) -> serde_json::Value {
        let mut v = good();
        v.as_object_mut().unwrap().remove(field);
        v
    }

    #[test]
    fn round_trip_and_views() {
        let dir = TempDir::new("pku-rt");
        let rows = vec![
            row("p1", "a", "b", 0, 1, false, true),
            row("p2", "c", "d", 1, 1, true, true),
            row("p3", "e", "f", 1, 0, false, false),
        ];
        let text: String = rows
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        let path = dir.write("pku.jsonl", &text);
        let (loaded, report) = load_pku(&path, &LoadOptions::strict()).unwrap();
        assert_eq!(loaded, rows);
        assert_eq!(
            (report.rows_read, report.rows_kept, report.skipped.len()),
            (3, 3, 0)
        );

        let r = &loaded[0];
        assert_eq!(r.prompt(), "p1");
        let h = r.helpfulness_pair();
        assert_eq!((h.chosen.as_str(), h.rejected.as_str()), ("a", "b"));
        assert_eq!((h.chosen_safe, h.rejected_safe), (Some(false), Some(true)));
        let s = r.safety_pair();
        assert_eq!((s.chosen.as_str(), s.rejected.as_str()), ("b", "a"));
        assert_eq!((s.chosen_safe, s.rejected_safe), (Some(true), Some(false)));
        assert_eq!(s.prompt, "p1");
        let ku = r.safety_unary();
        assert_eq!((ku[0].response.as_str(), ku[0].desirable), ("a", false));
        assert_eq!((ku[1].response.as_str(), ku[1].desirable), ("b", true));
        let kh = r.helpfulness_unary();
        assert_eq!((kh[0].response.as_str(), kh[0].desirable), ("a", true));
        assert_eq!((kh[1].response.as_str(), kh[1].desirable), ("b", false));
        // Both unsafe with either id is consistent.
        assert_eq!(loaded[2].safety_pair().chosen, "e");
    }

    #[test]
    fn extra_fields_ignored_and_gzip_works() {
        let dir = TempDir::new("pku-gz");
        let text = jsonl(&[good(), good()]);
        // The name says nothing about compression: detection is by magic bytes.
        let gz = dir.write_gz("pku.data", &text);
        let plain = dir.write("pku.jsonl.gz", &text);
        let (a, _) = load_pku(&gz, &LoadOptions::strict()).unwrap();
        let (b, _) = load_pku(&plain, &LoadOptions::strict()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        assert_eq!(
            a[0].safety_pair().chosen,
            "I can't help with breaking into property."
        );
    }

    fn first_error(rows: &[serde_json::Value], bad: &str) -> (String, RowError) {
        let dir = TempDir::new("pku-bad");
        let mut text = jsonl(rows);
        text.push_str(bad);
        text.push('\n');
        let path = dir.write("x.jsonl", &text);
        let err = load_pku(&path, &LoadOptions::strict()).unwrap_err();
        assert_eq!(err.line(), Some(rows.len() as u64 + 1), "{err}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{}:{}: ", path.display(), rows.len() + 1)),
            "{msg}"
        );
        (msg, err.row_error().unwrap().clone())
    }

    #[test]
    fn each_bad_row_names_file_line_and_field() {
        let ok = [good(), good()];
        let (msg, e) = first_error(&ok, "{\"prompt\": \"x\",");
        assert_eq!(e.kind(), "bad_json", "{msg}");
        let (_, e) = first_error(&ok, "[1, 2]");
        assert_eq!(e.kind(), "not_an_object");
        let (msg, e) = first_error(&ok, &without("response_1").to_string());
        assert_eq!(
            e,
            RowError::MissingField {
                field: "response_1".into()
            }
        );
        assert!(msg.ends_with("field `response_1`: missing"), "{msg}");
        let (msg, e) = first_error(&ok, &with("better_response_id", json!("1")).to_string());
        assert_eq!(e.kind(), "wrong_type");
        assert!(
            msg.ends_with("field `better_response_id`: expected 0 or 1, found string \"1\""),
            "{msg}"
        );
        let (msg, _) = first_error(&ok, &with("is_response_0_safe", json!(1)).to_string());
        assert!(
            msg.ends_with("field `is_response_0_safe`: expected a boolean, found number 1"),
            "{msg}"
        );
        let (msg, e) = first_error(&ok, &with("better_response_id", json!(2)).to_string());
        assert_eq!(e.kind(), "id_out_of_range");
        assert!(
            msg.ends_with("x.jsonl:3: field `better_response_id`: expected 0 or 1, found 2"),
            "{msg}"
        );
        let (msg, _) = first_error(&ok, &with("safer_response_id", json!(-1)).to_string());
        assert!(
            msg.ends_with("field `safer_response_id`: expected 0 or 1, found -1"),
            "{msg}"
        );
        let (msg, e) = first_error(&ok, &with("prompt", json!("  ")).to_string());
        assert_eq!(
            e,
            RowError::EmptyField {
                field: "prompt".into()
            }
        );
        assert!(msg.ends_with("field `prompt`: empty"), "{msg}");
        let (_, e) = first_error(&ok, &with("response_0", json!("")).to_string());
        assert_eq!(
            e,
            RowError::EmptyField {
                field: "response_0".into()
            }
        );
        // Safer = 0, but response 0 unsafe and response 1 safe.
        let mut bad = with("safer_response_id", json!(0));
        bad["is_response_0_safe"] = json!(false);
        bad["is_response_1_safe"] = json!(true);
        let (msg, e) = first_error(&ok, &bad.to_string());
        assert_eq!(e, RowError::InconsistentSafety { safer: 0 });
        assert!(msg.contains("inconsistent safety labels"), "{msg}");
        let (msg, e) = first_error(
            &ok,
            &with("response_1", json!(" Here is how to pick it: ... ")).to_string(),
        );
        assert_eq!(e, RowError::IdenticalResponses);
        assert!(msg.ends_with("the two responses are identical"), "{msg}");
    }

    #[test]
    fn skip_invalid_counts_every_bad_row() {
        let dir = TempDir::new("pku-skip");
        let mut inconsistent = with("safer_response_id", json!(1));
        inconsistent["is_response_0_safe"] = json!(true);
        inconsistent["is_response_1_safe"] = json!(false);
        let lines = [
            good().to_string(),                                                   // 1 ok
            "not json".to_string(),                                               // 2
            String::new(),                                                        // 3 blank
            with("better_response_id", json!(7)).to_string(),                     // 4
            inconsistent.to_string(),                                             // 5
            with("response_1", json!("Here is how to pick it: ...")).to_string(), // 6
            good().to_string(),                                                   // 7 ok
            without("prompt").to_string(),                                        // 8
        ];
        let path = dir.write("mixed.jsonl", &(lines.join("\n") + "\n"));
        // Strict stops at line 2.
        assert_eq!(
            load_pku(&path, &LoadOptions::strict()).unwrap_err().line(),
            Some(2)
        );
        let (rows, report) = load_pku(&path, &LoadOptions::skip_invalid()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (report.rows_read, report.rows_kept, report.blank_lines),
            (7, 2, 1)
        );
        let lines: Vec<u64> = report.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [2, 4, 5, 6, 8]);
        let counts = report.counts_by_kind();
        for kind in [
            "bad_json",
            "id_out_of_range",
            "inconsistent_safety",
            "identical_responses",
            "missing_field",
        ] {
            assert_eq!(counts.get(kind), Some(&1), "{kind}: {report}");
        }
        let shown = report.to_string();
        assert!(shown.contains("7 rows read, 2 kept, 5 skipped"), "{shown}");
    }

    fn assert_no_usable_rows(err: &DataError, read: u64, skip: u64) {
        let counts = match err {
            DataError::NoUsableRows {
                rows_read, skipped, ..
            } => Some((*rows_read, *skipped)),
            _ => None,
        };
        assert_eq!(counts, Some((read, skip)), "{err}");
    }

    #[test]
    fn empty_or_all_invalid_file_is_an_error() {
        let dir = TempDir::new("pku-empty");
        let empty = dir.write("empty.jsonl", "");
        let err = load_pku(&empty, &LoadOptions::skip_invalid()).unwrap_err();
        assert_no_usable_rows(&err, 0, 0);
        let blank = dir.write("blank.jsonl", "\n  \n");
        assert!(matches!(
            load_pku(&blank, &LoadOptions::strict()),
            Err(DataError::NoUsableRows { .. })
        ));
        let bad = dir.write("bad.jsonl", "{}\n{}\n");
        let err = load_pku(&bad, &LoadOptions::skip_invalid()).unwrap_err();
        assert_no_usable_rows(&err, 2, 2);
        assert!(err.to_string().contains("no usable rows"), "{err}");
        let missing = dir.path().join("nope.jsonl");
        assert!(matches!(
            load_pku(&missing, &LoadOptions::strict()),
            Err(DataError::Io { .. })
        ));
    }

    #[test]
    fn streaming_yields_rows_then_stops_at_the_error() {
        let dir = TempDir::new("pku-stream");
        let text = jsonl(&[good(), good()]) + "oops\n" + &jsonl(&[good()]);
        let path = dir.write("s.jsonl", &text);
        let mut it = read_pku(&path, &LoadOptions::strict()).unwrap();
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_ok());
        assert_eq!(it.next().unwrap().unwrap_err().line(), Some(3));
        assert!(it.next().is_none());
        assert_eq!(it.report().rows_kept, 2);
    }

    #[test]
    fn validate_checks_rows_built_in_code() {
        assert!(row("p", "a", "b", 0, 0, true, false).validate().is_ok());
        assert!(row("p", "a", "b", 0, 0, true, true).validate().is_ok());
        assert!(row("p", "a", "b", 0, 0, false, false).validate().is_ok());
        assert_eq!(
            row("p", "a", "b", 0, 1, true, false).validate(),
            Err(RowError::InconsistentSafety { safer: 1 })
        );
        assert_eq!(
            row("p", "a", "b", 2, 1, true, true)
                .validate()
                .unwrap_err()
                .kind(),
            "id_out_of_range"
        );
    }
}

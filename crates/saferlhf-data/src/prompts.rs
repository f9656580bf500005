//! Plain prompt lists (JSONL with a configurable field, or one prompt per line) and SFT dialogues
//! (JSONL `{"prompt": ..., "response": ...}`). Every format may be gzip-compressed.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, RowError};
use crate::rows::{LoadOptions, Loaded, Rows, get_text, jsonl_rows, line_rows};
use crate::types::SftExample;

/// How a prompt list is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromptFormat {
    /// One JSON object per line; the prompt is the string in `field` (other fields are ignored).
    Jsonl {
        /// The field holding the prompt, usually `prompt`.
        field: String,
    },
    /// One prompt per line, trimmed of surrounding whitespace; blank lines are ignored (and counted
    /// in the report). A prompt cannot span lines in this format: use JSONL for multi-line prompts.
    Lines,
}

impl PromptFormat {
    /// Guesses the format from the file name: `.jsonl`/`.json` (optionally `.gz`) is JSONL with
    /// field `prompt`; anything else is one prompt per line.
    pub fn from_path(path: impl AsRef<Path>) -> Self {
        let name = path.as_ref().to_string_lossy().to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".jsonl") || name.ends_with(".json") {
            PromptFormat::Jsonl {
                field: "prompt".to_string(),
            }
        } else {
            PromptFormat::Lines
        }
    }
}

/// Streams the prompts of a file in the given format.
pub fn read_prompts(
    path: impl AsRef<Path>,
    format: &PromptFormat,
    opts: &LoadOptions,
) -> Result<Rows<String>, DataError> {
    let path = path.as_ref();
    match format {
        PromptFormat::Jsonl { field } => {
            if field.is_empty() {
                return Err(DataError::InvalidArgument(
                    "the prompt field name must not be empty".to_string(),
                ));
            }
            let field = field.clone();
            jsonl_rows(path, opts, move |obj| get_text(obj, &field))
        }
        PromptFormat::Lines => line_rows(path, opts, |line| {
            if line.trim().is_empty() {
                Err(RowError::EmptyField {
                    field: "prompt".to_string(),
                })
            } else {
                Ok(line.trim().to_string())
            }
        }),
    }
}

/// Loads all prompts of a file, guessing the format from its name ([`PromptFormat::from_path`]).
pub fn load_prompts(path: impl AsRef<Path>, opts: &LoadOptions) -> Loaded<String> {
    let format = PromptFormat::from_path(&path);
    read_prompts(path, &format, opts)?.collect_with_report()
}

/// Streams the examples of an SFT JSONL file (`prompt` and `response`, both non-empty strings).
pub fn read_sft(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Rows<SftExample>, DataError> {
    jsonl_rows(path.as_ref(), opts, |obj| {
        Ok(SftExample {
            prompt: get_text(obj, "prompt")?,
            response: get_text(obj, "response")?,
        })
    })
}

/// Loads a whole SFT JSONL file; errors if it holds no valid row.
pub fn load_sft(path: impl AsRef<Path>, opts: &LoadOptions) -> Loaded<SftExample> {
    read_sft(path, opts)?.collect_with_report()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{TempDir, jsonl};
    use serde_json::json;

    #[test]
    fn prompt_lists_round_trip_in_both_formats() {
        let dir = TempDir::new("prompts-rt");
        let prompts = ["What is 2+2?", "Tell me a joke.", "Multi\nline prompt"];
        let rows: Vec<_> = prompts
            .iter()
            .map(|p| json!({"prompt": p, "id": 1}))
            .collect();
        let path = dir.write("p.jsonl", &jsonl(&rows));
        let (got, _) = load_prompts(&path, &LoadOptions::strict()).unwrap();
        assert_eq!(got, prompts);
        // Custom field, gzip under a .gz name.
        let rows: Vec<_> = prompts.iter().map(|p| json!({"instruction": p})).collect();
        let gz = dir.write_gz("q.jsonl.gz", &jsonl(&rows));
        let format = PromptFormat::from_path(&gz);
        assert_eq!(
            format,
            PromptFormat::Jsonl {
                field: "prompt".into()
            }
        );
        let (got, _) = read_prompts(
            &gz,
            &PromptFormat::Jsonl {
                field: "instruction".into(),
            },
            &LoadOptions::strict(),
        )
        .unwrap()
        .collect_with_report()
        .unwrap();
        assert_eq!(got, prompts);
        // One per line, blank lines ignored and counted.
        let txt = dir.write("p.txt", "What is 2+2?\n\n  Tell me a joke.  \r\n");
        assert_eq!(PromptFormat::from_path(&txt), PromptFormat::Lines);
        let (got, report) = load_prompts(&txt, &LoadOptions::strict()).unwrap();
        assert_eq!(got, prompts[..2]);
        assert_eq!((report.rows_read, report.blank_lines), (2, 1));
    }

    #[test]
    fn bad_prompt_rows() {
        let dir = TempDir::new("prompts-bad");
        let path = dir.write("p.jsonl", "{\"prompt\": \"ok\"}\n{\"text\": \"no prompt\"}\n{\"prompt\": 5}\n{\"prompt\": \"\"}\n");
        let err = load_prompts(&path, &LoadOptions::strict()).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("p.jsonl:2: field `prompt`: missing"),
            "{err}"
        );
        let (got, report) = load_prompts(&path, &LoadOptions::skip_invalid()).unwrap();
        assert_eq!(got, ["ok"]);
        assert_eq!(
            report.skipped.iter().map(|s| s.kind).collect::<Vec<_>>(),
            ["missing_field", "wrong_type", "empty_field"]
        );
        let bad_utf8 = dir.path().join("b.txt");
        std::fs::write(&bad_utf8, b"fine\n\xff\xfe bad\n").unwrap();
        let err = load_prompts(&bad_utf8, &LoadOptions::strict()).unwrap_err();
        assert_eq!(
            (err.line(), err.row_error().unwrap().kind()),
            (Some(2), "invalid_utf8")
        );
        assert!(matches!(
            read_prompts(
                &path,
                &PromptFormat::Jsonl {
                    field: String::new()
                },
                &LoadOptions::strict()
            ),
            Err(DataError::InvalidArgument(_))
        ));
        let empty = dir.write("e.txt", "\n\n");
        assert!(matches!(
            load_prompts(&empty, &LoadOptions::strict()),
            Err(DataError::NoUsableRows { .. })
        ));
    }

    #[test]
    fn sft_round_trip_and_errors() {
        let dir = TempDir::new("sft");
        let examples = vec![
            SftExample {
                prompt: "Hi".into(),
                response: "Hello! How can I help?".into(),
            },
            SftExample {
                prompt: "2+2?".into(),
                response: "4".into(),
            },
        ];
        let text: String = examples
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        let path = dir.write("sft.jsonl", &text);
        let (got, _) = load_sft(&path, &LoadOptions::strict()).unwrap();
        assert_eq!(got, examples);
        let gz = dir.write_gz("sft.bin", &text);
        assert_eq!(load_sft(&gz, &LoadOptions::strict()).unwrap().0, examples);
        let bad = dir.write(
            "bad.jsonl",
            &(text + "{\"prompt\": \"x\", \"response\": \" \"}\n"),
        );
        let err = load_sft(&bad, &LoadOptions::strict()).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("bad.jsonl:3: field `response`: empty"),
            "{err}"
        );
    }
}

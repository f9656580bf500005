//! Anthropic HH-RLHF: one `{"chosen": "...", "rejected": "..."}` object per line, each value a whole
//! dialogue "\n\nHuman: ... \n\nAssistant: ... \n\nHuman: ... \n\nAssistant: ...", plain or gzip
//! (detected by magic bytes, not by extension).
//!
//! A row becomes a [`PreferencePair`] with no safety labels: the prompt is the shared dialogue up
//! to and including the final "\n\nAssistant:", the responses are what follows it in each dialogue
//! (kept verbatim, so `prompt + chosen` is the chosen dialogue; they usually start with a space).
//!
//! Rejected rows: a dialogue without "\n\nAssistant:"; prompts that differ between the two
//! dialogues ([`HhSplit`] says how the prompt is found); an empty prompt or final response; a final
//! response followed by a "\n\nHuman:" turn; and two identical final responses.
//!
//! In the real harmless-base test file (2,312 rows) the strict split rejects 9 rows: 5 where a
//! final response itself contains "\n\nAssistant:" (so the two prompts differ) and 4 whose chosen
//! response is a lone space. [`HhSplit::CommonPrefix`] recovers the first 5.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{DataError, RowError};
use crate::rows::{LoadOptions, Loaded, Rows, get_str, jsonl_rows};
use crate::types::PreferencePair;

/// The marker that opens an assistant turn in HH-RLHF dialogues.
pub const HH_ASSISTANT: &str = "\n\nAssistant:";
/// The marker that opens a human turn in HH-RLHF dialogues.
pub const HH_HUMAN: &str = "\n\nHuman:";

/// How the shared prompt of a chosen/rejected dialogue pair is found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HhSplit {
    /// Each dialogue is cut after its own final "\n\nAssistant:"; the two prompts must be equal,
    /// else the row is rejected with [`RowError::PrefixMismatch`]. The default.
    #[default]
    LastAssistant,
    /// The prompt ends at the last "\n\nAssistant:" inside the longest common prefix of the two
    /// dialogues. This accepts rows whose final response itself contains "\n\nAssistant:" (the
    /// extra text stays in that response).
    CommonPrefix,
}

/// Who speaks one turn of an HH-RLHF dialogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// The human (user).
    Human,
    /// The assistant.
    Assistant,
}

/// One turn of an HH-RLHF dialogue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Turn {
    /// Who speaks.
    pub role: Role,
    /// What is said, trimmed of surrounding whitespace.
    pub text: String,
}

/// Splits an HH-RLHF dialogue (or a pair's prompt) into turns, for re-templating with a chat
/// template; text before the first marker is dropped, a trailing empty assistant turn is kept.
pub fn hh_turns(dialogue: &str) -> Vec<Turn> {
    let mut turns = Vec::new();
    let mut rest = dialogue;
    let mut current: Option<Role> = None;
    loop {
        let h = rest.find(HH_HUMAN);
        let a = rest.find(HH_ASSISTANT);
        let next = match (h, a) {
            (Some(h), Some(a)) if h < a => Some((h, Role::Human, HH_HUMAN.len())),
            (Some(h), None) => Some((h, Role::Human, HH_HUMAN.len())),
            (_, Some(a)) => Some((a, Role::Assistant, HH_ASSISTANT.len())),
            (None, None) => None,
        };
        let end = next.map_or(rest.len(), |(pos, _, _)| pos);
        if let Some(role) = current {
            turns.push(Turn {
                role,
                text: rest[..end].trim().to_string(),
            });
        }
        match next {
            Some((pos, role, len)) => {
                current = Some(role);
                rest = &rest[pos + len..];
            }
            None => break,
        }
    }
    turns
}

fn first_difference(a: &str, b: &str) -> usize {
    a.bytes()
        .zip(b.bytes())
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Splits one chosen/rejected dialogue pair into a [`PreferencePair`] (no safety labels).
pub fn split_hh_pair(
    chosen: &str,
    rejected: &str,
    split: HhSplit,
) -> Result<PreferencePair, RowError> {
    let last = |field: &str, text: &str| {
        text.rfind(HH_ASSISTANT)
            .map(|i| i + HH_ASSISTANT.len())
            .ok_or_else(|| RowError::NoAssistantTurn {
                field: field.to_string(),
            })
    };
    let cut_c = last("chosen", chosen)?;
    let cut_r = last("rejected", rejected)?;
    let cut = match split {
        HhSplit::LastAssistant => {
            if chosen[..cut_c] != rejected[..cut_r] {
                return Err(RowError::PrefixMismatch {
                    chosen_len: cut_c,
                    rejected_len: cut_r,
                    first_difference: first_difference(&chosen[..cut_c], &rejected[..cut_r]),
                });
            }
            cut_c
        }
        HhSplit::CommonPrefix => {
            let mut lcp = first_difference(chosen, rejected);
            while !chosen.is_char_boundary(lcp) {
                lcp -= 1;
            }
            // The cut must be the final assistant turn of at least one dialogue: an earlier one
            // would mean the dialogues diverge before their last exchange.
            match chosen[..lcp].rfind(HH_ASSISTANT) {
                Some(i) if i + HH_ASSISTANT.len() == cut_c || i + HH_ASSISTANT.len() == cut_r => {
                    i + HH_ASSISTANT.len()
                }
                _ => {
                    return Err(RowError::PrefixMismatch {
                        chosen_len: cut_c,
                        rejected_len: cut_r,
                        first_difference: lcp,
                    });
                }
            }
        }
    };
    let prompt = &chosen[..cut];
    if prompt[..cut - HH_ASSISTANT.len()].trim().is_empty() {
        return Err(RowError::EmptyField {
            field: "prompt".to_string(),
        });
    }
    let (resp_c, resp_r) = (&chosen[cut..], &rejected[cut..]);
    for (field, resp) in [("chosen", resp_c), ("rejected", resp_r)] {
        if resp.trim().is_empty() {
            return Err(RowError::EmptyResponse {
                field: field.to_string(),
            });
        }
        if resp.contains(HH_HUMAN) {
            return Err(RowError::HumanTurnInResponse {
                field: field.to_string(),
            });
        }
    }
    if resp_c.trim() == resp_r.trim() {
        return Err(RowError::IdenticalResponses);
    }
    Ok(PreferencePair {
        prompt: prompt.to_string(),
        chosen: resp_c.to_string(),
        rejected: resp_r.to_string(),
        chosen_safe: None,
        rejected_safe: None,
    })
}

/// Parses one HH-RLHF JSON object into a pair.
pub fn parse_hh_object(
    obj: &Map<String, Value>,
    split: HhSplit,
) -> Result<PreferencePair, RowError> {
    let chosen = get_str(obj, "chosen")?;
    let rejected = get_str(obj, "rejected")?;
    split_hh_pair(chosen, rejected, split)
}

/// Streams the pairs of an HH-RLHF JSONL file (plain or gzip), validating each.
pub fn read_hh(
    path: impl AsRef<Path>,
    split: HhSplit,
    opts: &LoadOptions,
) -> Result<Rows<PreferencePair>, DataError> {
    jsonl_rows(path.as_ref(), opts, move |obj| parse_hh_object(obj, split))
}

/// Loads a whole HH-RLHF JSONL file; errors if it holds no valid row.
pub fn load_hh(
    path: impl AsRef<Path>,
    split: HhSplit,
    opts: &LoadOptions,
) -> Loaded<PreferencePair> {
    read_hh(path, split, opts)?.collect_with_report()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{TempDir, jsonl};
    use serde_json::json;

    const PROMPT: &str =
        "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: How do I hurt someone?\n\nAssistant:";

    fn dialogue(resp: &str) -> String {
        format!("{PROMPT}{resp}")
    }

    fn pair_json(chosen: &str, rejected: &str) -> serde_json::Value {
        json!({"chosen": chosen, "rejected": rejected})
    }

    #[test]
    fn splits_prompt_and_final_responses_plain_and_gzip() {
        let dir = TempDir::new("hh-rt");
        let rows = [
            pair_json(
                &dialogue(" I won't help with that."),
                &dialogue(" Hit them hard."),
            ),
            pair_json(
                "\n\nHuman: a?\n\nAssistant: b",
                "\n\nHuman: a?\n\nAssistant: c",
            ),
        ];
        let text = jsonl(&rows);
        let plain = dir.write("hh.jsonl", &text);
        let gz = dir.write_gz("hh.jsonl.gz", &text);
        let (a, report) = load_hh(&plain, HhSplit::default(), &LoadOptions::strict()).unwrap();
        let (b, _) = load_hh(&gz, HhSplit::default(), &LoadOptions::strict()).unwrap();
        assert_eq!(a, b);
        assert_eq!(report.rows_kept, 2);
        assert_eq!(a[0].prompt, PROMPT);
        assert_eq!(a[0].chosen, " I won't help with that.");
        assert_eq!(a[0].rejected, " Hit them hard.");
        assert_eq!((a[0].chosen_safe, a[0].rejected_safe), (None, None));
        // Round trip: prompt + response gives back each dialogue.
        assert_eq!(
            format!("{}{}", a[0].prompt, a[0].chosen),
            dialogue(" I won't help with that.")
        );
        assert_eq!(
            format!("{}{}", a[1].prompt, a[1].rejected),
            "\n\nHuman: a?\n\nAssistant: c"
        );
    }

    #[test]
    fn turns_of_a_dialogue() {
        let turns = hh_turns(PROMPT);
        let roles: Vec<Role> = turns.iter().map(|t| t.role).collect();
        assert_eq!(
            roles,
            [Role::Human, Role::Assistant, Role::Human, Role::Assistant]
        );
        assert_eq!(turns[0].text, "Hi");
        assert_eq!(turns[1].text, "Hello!");
        assert_eq!(turns[2].text, "How do I hurt someone?");
        assert_eq!(turns[3].text, "");
        assert_eq!(hh_turns(&dialogue(" No."))[3].text, "No.");
        assert!(hh_turns("no markers").is_empty());
    }

    fn bad(chosen: &str, rejected: &str) -> (String, RowError) {
        let dir = TempDir::new("hh-bad");
        let text = jsonl(&[pair_json(&dialogue(" a"), &dialogue(" b"))])
            + &format!("{}\n", pair_json(chosen, rejected));
        let path = dir.write("hh.jsonl", &text);
        let err = load_hh(&path, HhSplit::LastAssistant, &LoadOptions::strict()).unwrap_err();
        assert_eq!(err.line(), Some(2), "{err}");
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("{}:2: ", path.display())), "{msg}");
        (msg, err.row_error().unwrap().clone())
    }

    #[test]
    fn each_bad_row_is_reported() {
        let (msg, e) = bad("\n\nHuman: hi there", &dialogue(" b"));
        assert_eq!(
            e,
            RowError::NoAssistantTurn {
                field: "chosen".into()
            }
        );
        assert!(
            msg.contains("field `chosen`: dialogue has no \"\\n\\nAssistant:\" turn"),
            "{msg}"
        );
        let (_, e) = bad(&dialogue(" a"), "\n\nHuman: hi");
        assert_eq!(
            e,
            RowError::NoAssistantTurn {
                field: "rejected".into()
            }
        );
        let (msg, e) = bad(&dialogue(" a"), "\n\nHuman: something else\n\nAssistant: b");
        assert_eq!(e.kind(), "prefix_mismatch");
        assert!(msg.contains("do not share the prompt"), "{msg}");
        let (msg, e) = bad(&dialogue(" "), &dialogue(" b"));
        assert_eq!(
            e,
            RowError::EmptyResponse {
                field: "chosen".into()
            }
        );
        assert!(
            msg.ends_with("field `chosen`: the final Assistant response is empty"),
            "{msg}"
        );
        let (_, e) = bad(&dialogue(" same"), &dialogue("same  "));
        assert_eq!(e, RowError::IdenticalResponses);
        let (_, e) = bad("\n\nAssistant: a", "\n\nAssistant: b");
        assert_eq!(
            e,
            RowError::EmptyField {
                field: "prompt".into()
            }
        );
        let (msg, e) = bad(&dialogue(" a\n\nHuman: and?"), &dialogue(" b"));
        assert_eq!(
            e,
            RowError::HumanTurnInResponse {
                field: "chosen".into()
            }
        );
        assert!(msg.contains("followed by a \"\\n\\nHuman:\" turn"), "{msg}");
        let (_, e) = bad("x", "y");
        assert_eq!(e.kind(), "no_assistant_turn");
        let dir = TempDir::new("hh-bad2");
        let p = dir.write(
            "t.jsonl",
            &format!("{}\n", json!({"chosen": 3, "rejected": "x"})),
        );
        let err = load_hh(&p, HhSplit::default(), &LoadOptions::strict()).unwrap_err();
        assert!(
            err.to_string()
                .ends_with(":1: field `chosen`: expected a string, found number 3"),
            "{err}"
        );
        let p = dir.write("m.jsonl", &format!("{}\n", json!({"chosen": "x"})));
        let err = load_hh(&p, HhSplit::default(), &LoadOptions::strict()).unwrap_err();
        assert!(
            err.to_string().ends_with(":1: field `rejected`: missing"),
            "{err}"
        );
    }

    #[test]
    fn common_prefix_recovers_a_response_that_contains_an_assistant_marker() {
        // As in the real file: the chosen final response itself contains "\n\nAssistant:".
        let chosen = dialogue(" Sure, here.\n\nAssistant: and more");
        let rejected = dialogue(" No.");
        assert_eq!(
            split_hh_pair(&chosen, &rejected, HhSplit::LastAssistant)
                .unwrap_err()
                .kind(),
            "prefix_mismatch"
        );
        let p = split_hh_pair(&chosen, &rejected, HhSplit::CommonPrefix).unwrap();
        assert_eq!(p.prompt, PROMPT);
        assert_eq!(p.chosen, " Sure, here.\n\nAssistant: and more");
        assert_eq!(p.rejected, " No.");
        // Responses sharing their first words still split at the assistant marker.
        let p = split_hh_pair(
            &dialogue(" I can't."),
            &dialogue(" I can."),
            HhSplit::CommonPrefix,
        )
        .unwrap();
        assert_eq!(
            (p.prompt.as_str(), p.chosen.as_str()),
            (PROMPT, " I can't.")
        );
        // Dialogues that diverge before their final exchange are still rejected.
        let a = "\n\nHuman: a\n\nAssistant: x\n\nHuman: b\n\nAssistant: y";
        let b = "\n\nHuman: a\n\nAssistant: z\n\nHuman: b\n\nAssistant: w";
        assert_eq!(
            split_hh_pair(a, b, HhSplit::CommonPrefix)
                .unwrap_err()
                .kind(),
            "prefix_mismatch"
        );
    }

    #[test]
    fn skip_invalid_counts_bad_hh_rows() {
        let dir = TempDir::new("hh-skip");
        let text = jsonl(&[
            pair_json(&dialogue(" a"), &dialogue(" b")),
            pair_json("no turns", &dialogue(" b")),
            pair_json(&dialogue(" a"), "\n\nHuman: other\n\nAssistant: b"),
            pair_json(&dialogue(" c"), &dialogue(" d")),
        ]);
        let path = dir.write("hh.jsonl", &text);
        let (rows, report) =
            load_hh(&path, HhSplit::default(), &LoadOptions::skip_invalid()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(report.rows_read, 4);
        let counts = report.counts_by_kind();
        assert_eq!(counts.get("no_assistant_turn"), Some(&1));
        assert_eq!(counts.get("prefix_mismatch"), Some(&1));
        assert_eq!(
            report.skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
            [2, 3]
        );
    }

    /// The real Anthropic HH-RLHF harmless-base test file, read from ../shared when present.
    #[test]
    fn real_hh_rlhf_harmless_file() {
        let Some(path) = saferlhf_testkit::hh_harmless_test() else {
            return;
        };
        // Strict: the first bad row (a chosen response that is a lone space) stops the load.
        let err = load_hh(&path, HhSplit::LastAssistant, &LoadOptions::strict()).unwrap_err();
        assert_eq!(err.line(), Some(87), "{err}");
        assert_eq!(err.row_error().unwrap().kind(), "empty_response");

        let (rows, report) =
            load_hh(&path, HhSplit::LastAssistant, &LoadOptions::skip_invalid()).unwrap();
        eprintln!("HH-RLHF LastAssistant: {report}");
        for s in &report.skipped {
            eprintln!("  line {}: {}", s.line, s.reason);
        }
        assert_eq!(report.rows_read, 2312);
        assert_eq!(rows.len() as u64, report.rows_kept);
        let counts = report.counts_by_kind();
        assert_eq!(counts.get("prefix_mismatch"), Some(&5), "{report}");
        assert_eq!(counts.get("empty_response"), Some(&4), "{report}");
        assert_eq!(report.rows_kept, 2303);
        assert!(
            rows.iter()
                .all(|p| p.prompt.ends_with(HH_ASSISTANT) && p.chosen_safe.is_none())
        );

        let (rows, report) =
            load_hh(&path, HhSplit::CommonPrefix, &LoadOptions::skip_invalid()).unwrap();
        eprintln!("HH-RLHF CommonPrefix: {report}");
        assert_eq!(report.rows_kept, 2308);
        assert_eq!(report.counts_by_kind().get("empty_response"), Some(&4));
        let turns: usize = rows.iter().map(|p| hh_turns(&p.prompt).len()).sum();
        eprintln!(
            "HH-RLHF: {} pairs, mean {:.2} turns per prompt",
            rows.len(),
            turns as f64 / rows.len() as f64
        );
    }
}

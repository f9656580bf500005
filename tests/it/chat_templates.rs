//! The chat templates of real models (Qwen2.5, Qwen3, Llama 3.1-3.3, SmolLM3, DeepSeek-R1-Distill,
//! Gemma 2, Phi-3.5, Mistral Nemo) rendered by saferlhf's minijinja environment, against what
//! transformers renders for the same conversations (`scripts/make-template-fixtures.py` wrote
//! `tests/fixtures/chat-templates.json`).
//!
//! The templates are assets (`scripts/fetch-assets.sh` extracts them from llama.cpp's copy in the
//! llama-cpp-python sdist); the test skips, saying so, when they are absent. CI fetches them.

use saferlhf::model::chat::{JinjaTemplate, Message};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[test]
fn real_templates_render_as_transformers_renders_them() {
    let Some(dir) = saferlhf_testkit::asset("chat-templates") else {
        return;
    };
    let fixture = saferlhf_testkit::root().join("tests/fixtures/chat-templates.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let mut templates = std::collections::BTreeMap::new();
    for (name, meta) in fixture["templates"].as_object().unwrap() {
        let source = std::fs::read_to_string(dir.join(name)).unwrap();
        let sha = format!("{:x}", Sha256::digest(source.as_bytes()));
        assert_eq!(
            sha, meta["sha256"],
            "{name}: not the template the fixture was made from"
        );
        let template = JinjaTemplate::new(
            source,
            meta["bos_token"].as_str().unwrap(),
            meta["eos_token"].as_str().unwrap(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        templates.insert(name.clone(), template);
    }
    let cases = fixture["cases"].as_array().unwrap();
    let (mut rendered, mut refused) = (0, 0);
    for case in cases {
        let name = case["template"].as_str().unwrap();
        let messages: Vec<Message> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Message::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let got = templates[name].render_with(
            &messages,
            case["add_generation_prompt"].as_bool().unwrap(),
            case["extra"].as_object().unwrap(),
        );
        match (&case["rendered"], got) {
            (Value::String(want), Ok(got)) => {
                assert_eq!(&got, want, "{name}, {} messages", messages.len());
                rendered += 1;
            }
            (Value::Null, Err(e)) => {
                let want = case["error"].as_str().unwrap();
                assert!(e.to_string().contains(want), "{name}: {e} (want {want})");
                refused += 1;
            }
            (want, got) => panic!("{name}: transformers gave {want}, saferlhf {got:?}"),
        }
    }
    assert_eq!(rendered + refused, cases.len());
    assert!(
        refused >= 1 && rendered >= 30,
        "{rendered} rendered, {refused} refused"
    );
}

#[test]
fn end_of_turn_tokens_of_real_templates() {
    let Some(dir) = saferlhf_testkit::asset("chat-templates") else {
        return;
    };
    for (name, bos, eos, end) in [
        (
            "Qwen-Qwen2.5-7B-Instruct.jinja",
            "",
            "<|im_end|>",
            "<|im_end|>",
        ),
        ("Qwen-Qwen3-0.6B.jinja", "", "<|im_end|>", "<|im_end|>"),
        (
            "meta-llama-Llama-3.1-8B-Instruct.jinja",
            "<|begin_of_text|>",
            "<|eot_id|>",
            "<|eot_id|>",
        ),
        (
            "google-gemma-2-2b-it.jinja",
            "<bos>",
            "<eos>",
            "<end_of_turn>",
        ),
        (
            "microsoft-Phi-3.5-mini-instruct.jinja",
            "<s>",
            "<|endoftext|>",
            "<|end|>",
        ),
        (
            "mistralai-Mistral-Nemo-Instruct-2407.jinja",
            "<s>",
            "</s>",
            "</s>",
        ),
    ] {
        let source = std::fs::read_to_string(dir.join(name)).unwrap();
        let template = JinjaTemplate::new(source, bos, eos).unwrap();
        let tail = template.end_of_turn().unwrap().unwrap();
        assert!(tail.trim_start().starts_with(end), "{name}: {tail:?}");
    }
}

//! The real model: SmolLM2-135M-Instruct (GGUF Q4_1, from `scripts/fetch-assets.sh`).
//!
//! Every test skips, saying so, when the asset is absent; CI fetches it.

use std::path::PathBuf;

use saferlhf::Device;
use saferlhf::model::gguf::{GgufFile, verify_sha256};
use saferlhf::model::pretrained::{llama_config_from_gguf, load_gguf_weights};
use saferlhf::model::tokenizer::ChatTemplate;
use saferlhf::model::{ModelError, load_pretrained};
use saferlhf::rollout::{GenerateConfig, RolloutError, generate_text};

const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

fn asset() -> Option<PathBuf> {
    saferlhf_testkit::smollm2()
}

fn temp_file(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "saferlhf-smollm2-{tag}-{}.gguf",
        std::process::id()
    ))
}

/// The GGUF carries SmolLM2's Jinja template (`tokenizer.chat_template`); rendered, it is what the
/// hard-coded `smollm2` fallback writes, and it ends an answer with `<|im_end|>`.
#[test]
fn the_gguf_chat_template_is_smollm2s() {
    let Some(path) = asset() else { return };
    let p = load_pretrained(&path, &Device::flex()).unwrap();
    assert!(p.tokenizer.chat_template().is_some());
    let own = ChatTemplate::Model { system: None };
    for prompt in ["What is the capital of France?", "Hi"] {
        assert_eq!(
            own.resolve(&p.tokenizer).unwrap().render(prompt).unwrap(),
            ChatTemplate::smollm2().render(prompt).unwrap()
        );
    }
    let im_end = p.tokenizer.token_to_id("<|im_end|>").unwrap();
    assert_eq!(own.stop_ids(&p.tokenizer).unwrap()[0], im_end);
}

#[test]
fn greedy_chatml_answers_paris() {
    let Some(path) = asset() else { return };
    let device = Device::flex();
    let p = load_pretrained(&path, &device).unwrap();
    let config = GenerateConfig {
        max_new_tokens: 24,
        ..GenerateConfig::default()
    };
    let own = ChatTemplate::Model { system: None };
    for template in [ChatTemplate::chatml(), ChatTemplate::smollm2(), own] {
        let out = generate_text(
            &p.model,
            &p.tokenizer,
            &template,
            &["What is the capital of France?"],
            &config,
            &device,
        )
        .unwrap();
        assert_eq!(
            out.answers[0], "The capital of France is Paris.",
            "{template:?}"
        );
        assert!(out.rollout.stopped[0], "stops on <|im_end|>");
    }
    // In a left-padded batch with a longer and a shorter prompt the answer is unchanged.
    let out = generate_text(
        &p.model,
        &p.tokenizer,
        &ChatTemplate::chatml(),
        &[
            "Write one sentence about the sea, please, in a calm and friendly tone.",
            "What is the capital of France?",
            "Hi",
        ],
        &config,
        &device,
    )
    .unwrap();
    assert_eq!(out.answers[1], "The capital of France is Paris.");
    assert!(out.answers.iter().all(|a| !a.is_empty()));
}

#[test]
fn checksum_is_verified() {
    let Some(path) = asset() else { return };
    verify_sha256(&path, SHA256).unwrap();
    let wrong = "0".repeat(64);
    match verify_sha256(&path, &wrong) {
        Err(ModelError::Checksum {
            expected, actual, ..
        }) => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, SHA256);
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
}

#[test]
fn truncated_gguf_is_a_clear_error() {
    let Some(path) = asset() else { return };
    let bytes = std::fs::read(&path).unwrap();
    let device = Device::flex();
    // Cut inside the metadata, and inside the tensor data.
    for cut in [1_000, bytes.len() - 4096] {
        let tmp = temp_file(&format!("cut{cut}"));
        std::fs::write(&tmp, &bytes[..cut]).unwrap();
        let err = load_pretrained(&tmp, &device).unwrap_err();
        let text = err.to_string();
        let _ = std::fs::remove_file(&tmp);
        assert!(matches!(err, ModelError::Format { .. }), "{text}");
        assert!(text.contains(&tmp.display().to_string()), "{text}");
    }
}

#[test]
fn config_that_does_not_match_the_weights_is_rejected() {
    let Some(path) = asset() else { return };
    let gguf = GgufFile::open(&path).unwrap();
    let mut config = llama_config_from_gguf(&gguf).unwrap();
    config.intermediate_size = 1024;
    let err = load_gguf_weights(&gguf, &config, &Device::flex()).unwrap_err();
    assert!(matches!(err, ModelError::WeightMismatch(_)), "{err}");
    assert!(err.to_string().contains("mlp"), "{err}");
}

#[test]
fn empty_and_overlong_prompts_are_rejected() {
    let Some(path) = asset() else { return };
    let device = Device::flex();
    let p = load_pretrained(&path, &device).unwrap();
    let config = GenerateConfig::default();
    let template = ChatTemplate::chatml();
    let err =
        generate_text(&p.model, &p.tokenizer, &template, &["  "], &config, &device).unwrap_err();
    assert!(err.to_string().contains("empty prompt"), "{err}");
    let long = "word ".repeat(9_000);
    let err = generate_text(
        &p.model,
        &p.tokenizer,
        &template,
        &["hi", &long],
        &config,
        &device,
    )
    .unwrap_err();
    match err {
        RolloutError::PromptTooLong { index, max, .. } => {
            assert_eq!(index, 1);
            assert_eq!(max, 8192);
        }
        other => panic!("expected PromptTooLong, got {other}"),
    }
}

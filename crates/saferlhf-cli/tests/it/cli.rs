//! Smoke tests of the real `saferlhf` binary.

use std::path::PathBuf;
use std::process::Command;

use saferlhf_testkit::ok;

fn saferlhf() -> Command {
    Command::new(env!("CARGO_BIN_EXE_saferlhf"))
}

fn asset() -> Option<PathBuf> {
    saferlhf_testkit::smollm2()
}

#[test]
fn generate_answers_with_the_real_model() {
    let Some(model) = asset() else { return };
    // The question about France, 16 new tokens at most, then `extra`.
    let france = |extra: &[&str]| {
        let out = saferlhf()
            .args(["generate", "--model"])
            .arg(&model)
            .args(["--prompt", "What is the capital of France?"])
            .args(["--max-new-tokens", "16"])
            .args(extra)
            .output()
            .unwrap();
        ok(&out);
        out
    };
    let out = france(&["--json"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["answers"][0], "The capital of France is Paris.");
    assert!(value["tokens_per_s"].as_f64().unwrap() > 0.0);

    // Text mode prints the answer on stdout and the speed on stderr.
    let out = france(&[
        "--sampler",
        "sample",
        "--temperature",
        "0.7",
        "--top-p",
        "0.9",
        "--seed",
        "3",
    ]);
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokens/s"));
}

fn fails_with(args: &[&str], needle: &str) {
    let out = saferlhf().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure for {args:?}");
    assert!(
        stderr.contains(needle),
        "stderr for {args:?} lacks `{needle}`: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_gives_clear_errors() {
    // `generate --model MODEL --prompt hi` with more arguments.
    let hi = |model: &str, more: &[&str], needle: &str| {
        fails_with(
            &[&["generate", "--model", model, "--prompt", "hi"], more].concat(),
            needle,
        )
    };
    hi("/nonexistent/model.gguf", &[], "/nonexistent/model.gguf");
    hi("x.gguf", &["--device", "tpu"], "unknown device");
    hi("x.gguf", &["--template", "alpaca"], "unknown chat template");
    let Some(model) = asset() else { return };
    let model = model.to_string_lossy().into_owned();
    fails_with(
        &["generate", "--model", &model, "--prompt", " "],
        "empty prompt",
    );
    hi(
        &model,
        &["--sampler", "sample", "--temperature", "0"],
        "temperature",
    );
    hi(&model, &["--max-new-tokens", "9000"], "context");
}

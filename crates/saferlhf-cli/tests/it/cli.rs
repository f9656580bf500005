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

/// `check-device` against the CPU itself: every check runs and passes (0 difference), the table
/// and the JSON name them; a bad device or a missing GGUF is an error naming the argument.
#[test]
fn check_device_runs_every_check_and_refuses_bad_arguments() {
    let dir = std::env::temp_dir().join(format!("saferlhf-cli-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("checks.json");
    let out = saferlhf()
        .args(["check-device", "--device", "flex", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    ok(&out);
    let table = String::from_utf8_lossy(&out.stdout);
    for name in [
        "score model, end scores (left padding)",
        "sampled tokens, KV cache against recomputation",
        "gradient: score head",
        "dpo: weights after the step",
        "repo with LoRA: weights after the step",
        "bf16 log-probs against f32",
    ] {
        assert!(table.contains(name), "{name}: {table}");
    }
    assert!(!table.contains("FAILED"), "{table}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let checks = v["checks"].as_array().unwrap();
    assert!(checks.len() > 30);
    assert!(checks.iter().all(|c| c["passed"] == true));

    let err = saferlhf()
        .args(["check-device", "--device", "tpu"])
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("--device"));
    let err = saferlhf()
        .args([
            "check-device",
            "--device",
            "flex",
            "--gguf",
            "/nonexistent.gguf",
        ])
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("--gguf"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `bench speed` on the tiny shape: each figure runs in its own process and lands in the table
/// and the JSON with its timings and peak memory; bad arguments are errors naming them.
#[test]
fn bench_speed_runs_figures_and_refuses_bad_arguments() {
    let dir = std::env::temp_dir().join(format!("saferlhf-cli-speed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("speed.json");
    let out = saferlhf()
        .args([
            "bench", "speed", "--shape", "tiny", "--runs", "1", "--steps", "3",
        ])
        .args([
            "--figures",
            "generate-bf16,train-f32,rl-lora-bf16",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    ok(&out);
    let table = String::from_utf8_lossy(&out.stdout);
    for row in [
        "| generate-bf16 | flex | tiny |",
        "| train-f32 | flex | tiny |",
        "| rl-lora-bf16 | flex | tiny |",
    ] {
        assert!(table.contains(row), "{row}: {table}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["half"], "bf16");
    let figures = v["figures"].as_array().unwrap();
    assert_eq!(figures.len(), 3);
    for f in figures {
        assert!(f["peak_rss_gb"].as_f64().unwrap() > 0.0, "{f}");
    }
    assert!(figures[0]["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(figures[2]["all_s"].as_array().unwrap().len(), 3);
    assert!(figures[2]["warm_step_s"].as_f64().unwrap() > 0.0);

    for (args, named) in [
        (vec!["--shape", "7b"], "--shape"),
        (vec!["--half", "f8"], "--half"),
        (vec!["--device", "tpu"], "--device"),
        (vec!["--runs", "0"], "--runs"),
    ] {
        let err = saferlhf()
            .args(["bench", "speed"])
            .args(&args)
            .output()
            .unwrap();
        assert!(!err.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&err.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    // An unknown figure fails alone: the run reports it and exits non-zero.
    let err = saferlhf()
        .args(["bench", "speed", "--shape", "tiny", "--runs", "1"])
        .args(["--figures", "sing,generate-f32"])
        .output()
        .unwrap();
    assert!(!err.status.success());
    let table = String::from_utf8_lossy(&err.stdout);
    assert!(table.contains("| sing | FAILED: unknown figure"), "{table}");
    assert!(table.contains("| generate-f32 | flex | tiny |"), "{table}");
    std::fs::remove_dir_all(&dir).unwrap();
}

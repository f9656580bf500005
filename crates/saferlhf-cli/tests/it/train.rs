//! Smoke tests of `saferlhf sft`, `train-reward`, `train-cost` and `score` on the tiny configs
//! in configs/ (a random 2-layer model with a character tokenizer; seconds on a CPU).

use std::path::Path;

use crate::common::*;

/// The tensors of a run's final model.
fn tensors_of_run(run: &str) -> Vec<(String, Vec<u8>)> {
    tensors(&Path::new(run).join("final").display().to_string())
}

/// Runs `command` (a training command line) into `TMP/run`, checks that it took 12 steps of
/// `task`, and returns the run directory and the last metrics line.
fn train_12_steps(tmp: &TempDir, command: &str, task: &str) -> (String, serde_json::Value) {
    let run = tmp.path("run");
    ok(&cli(&format!("{command} --set run.dir={run}")));
    check_run(&run, 12, task);
    let last = metrics(&run).pop().unwrap();
    (run, last)
}

fn check_run(run: &str, steps: usize, task: &str) {
    let lines = metrics(run);
    assert_eq!(lines.len(), steps);
    assert_eq!(lines.last().unwrap()["step"], steps);
    assert!(lines.last().unwrap()["eval"].is_object());
    let config = std::fs::read_to_string(Path::new(run).join("config.toml")).unwrap();
    assert!(config.contains(&format!("task = \"{task}\"")), "{config}");
    assert_mentions(&config, &["[optim]", "beta2 = 0.95"]);
    assert_eq!(checkpoints(run), vec!["step-00000006", "step-00000012"]);
    let ckpt = Path::new(run).join("checkpoints/step-00000012");
    for f in [
        "state.json",
        "optimizer.bpk",
        "config.toml",
        "model/model.safetensors",
        "model/config.json",
        "model/tokenizer.json",
        "model/saferlhf.json",
    ] {
        assert!(ckpt.join(f).is_file(), "{f} missing");
    }
    assert!(Path::new(run).join("final/model.safetensors").is_file());
}

#[test]
fn train_reward_runs_resumes_exactly_and_scores() {
    let tmp = TempDir::new("reward");
    let run = tmp.path("run");
    let out = cli(&format!(
        "train-reward --config configs/tiny-reward.toml --set run.dir={run} --json"
    ));
    ok(&out);
    check_run(&run, 12, "reward");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["finished"], true);
    assert!(summary["eval"]["accuracy"].as_f64().unwrap() >= 0.5);

    // The same run stopped after 5 steps and resumed (in new processes) ends bit-identical.
    let split = tmp.path("split");
    let set = format!("run.dir={split}");
    let base = format!("train-reward --config configs/tiny-reward.toml --set {set}");
    let stderr = ok(&cli(&format!("{base} --stop-at-step 5")));
    assert!(stderr.contains("stopped early"), "{stderr}");
    assert_eq!(checkpoints(&split), vec!["step-00000005"]);
    // Without --resume the run directory is not clobbered.
    let err = failed(&cli(&base));
    assert!(err.contains("--resume"), "{err}");
    ok(&cli(&format!("{base} --resume")));
    assert_eq!(metrics(&split).len(), 12);
    assert!(
        tensors_of_run(&run) == tensors_of_run(&split),
        "resumed weights differ"
    );

    // --resume DIR alone reads the checkpoint's config; a finished run has nothing left to do.
    let ckpt = format!("{split}/checkpoints/step-00000012");
    let stderr = ok(&saferlhf(&["train-reward", "--resume", &ckpt]));
    assert!(stderr.contains("step 12/12"), "{stderr}");

    // Score rows with the trained reward model.
    let input = tmp.path("rows.jsonl");
    std::fs::write(
        &input,
        "{\"prompt\": \"what about the sun?\", \"response\": \"good tree.\", \"id\": 1}\n\
         {\"prompt\": \"what about the sun?\", \"response\": \"bad tree.\", \"id\": 2}\n",
    )
    .unwrap();
    let output = tmp.path("scored.jsonl");
    let model = format!("{run}/final");
    ok(&saferlhf(&[
        "score", "--model", &model, "--kind", "reward", "--input", &input, "--output", &output,
    ]));
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["id"], 2);
    assert!(rows[0]["score"].as_f64().unwrap() > rows[1]["score"].as_f64().unwrap());
    assert!(rows[0].get("unsafe").is_none());
    // The kind is checked against the directory.
    let err = failed(&saferlhf(&[
        "score", "--model", &model, "--kind", "cost", "--input", &input,
    ]));
    assert!(err.contains("score_type"), "{err}");
    // A bad row names its line.
    std::fs::write(
        &input,
        "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": 3}\n",
    )
    .unwrap();
    let err = failed(&saferlhf(&[
        "score", "--model", &model, "--kind", "reward", "--input", &input,
    ]));
    assert_mentions(&err, &["rows.jsonl:2", "prompt"]);
}

#[test]
fn train_cost_and_score_mark_unsafe_rows() {
    let tmp = TempDir::new("cost");
    let (run, last) = train_12_steps(
        &tmp,
        "train-cost --config configs/tiny-cost.toml --set train.max_steps=12",
        "cost",
    );
    for key in [
        "pair_accuracy",
        "sign_accuracy",
        "mean_safe_cost",
        "mean_unsafe_cost",
    ] {
        assert!(last["eval"][key].is_number(), "{key}: {last}");
    }
    let input = tmp.path("rows.jsonl");
    std::fs::write(&input, "{\"prompt\": \"hi\", \"response\": \"good.\"}\n").unwrap();
    let out = cli(&format!(
        "score --model {run}/final --kind cost --input {input}"
    ));
    let stderr = ok(&out);
    assert!(stderr.contains("safety rate"), "{stderr}");
    let row: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let score = row["score"].as_f64().unwrap();
    assert_eq!(row["unsafe"], score > 0.0);
}

#[test]
fn sft_trains_and_the_result_generates() {
    let tmp = TempDir::new("sft");
    let (run, last) = train_12_steps(&tmp, "sft --config configs/tiny-sft.toml", "sft");
    assert!(last["eval"]["perplexity"].as_f64().unwrap() > 1.0);
    // The final directory is a Hugging Face model with its tokenizer: `generate` loads it.
    let out = saferlhf(&[
        "generate",
        "--model",
        &format!("{run}/final"),
        "--prompt",
        "say sun then tree",
        "--max-new-tokens",
        "4",
        "--json",
    ]);
    ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["answers"][0].is_string());
}

#[test]
fn bad_configs_and_flags_are_clear_errors() {
    let tmp = TempDir::new("errors");
    let run = tmp.path("run");
    let set = format!("run.dir={run}");
    let err = failed(&cli(&format!(
        "train-reward --config configs/tiny-reward.toml --set {set} --set optim.learning_rate=1"
    )));
    assert!(err.contains("learning_rate"), "{err}");
    let err = failed(&cli(
        "train-reward --config configs/tiny-reward.toml --set optim.warmup_ratio=2",
    ));
    assert!(err.contains("optim.warmup_ratio"), "{err}");
    // The config is for another task.
    let err = failed(&cli("train-cost --config configs/tiny-reward.toml"));
    assert!(err.contains("task"), "{err}");
    // Nothing to resume.
    let err = failed(&cli(&format!(
        "train-reward --config configs/tiny-reward.toml --set {set} --resume"
    )));
    assert!(err.contains("no complete checkpoint"), "{err}");
    let err = failed(&saferlhf(&["train-reward"]));
    assert!(err.contains("--config"), "{err}");
    // A missing data file names the file.
    let err = failed(&cli(&format!(
        "train-reward --config configs/tiny-reward.toml --set {set} --set data.sources.0.path=nope.jsonl"
    )));
    assert!(err.contains("nope.jsonl"), "{err}");
    // --print-config shows every default.
    let out = cli("train-cost --config configs/cost.toml --print-config");
    ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_mentions(&text, &["max_grad_norm", "keep_last"]);
}

//! Smoke tests of `saferlhf align` (DPO and SACPO) and `saferlhf merge` on the tiny configs in
//! configs/: end to end, stopped and resumed runs that end bit-identical to uninterrupted ones,
//! and config errors that name their key.

use std::path::Path;

use crate::common::*;

/// `saferlhf align --config CONFIG --json` into `TMP/run`: the run directory and the output.
fn align_json(tmp: &TempDir, config: &str) -> (String, std::process::Output) {
    let run = tmp.path("run");
    let out = cli(&format!(
        "align --config {config} --set run.dir={run} --json"
    ));
    (run, out)
}

#[test]
fn align_dpo_runs_and_resumes_exactly() {
    let tmp = TempDir::new("dpo");
    let (run, out) = align_json(&tmp, "configs/tiny-dpo.toml");
    ok(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["task"], "dpo");
    assert_eq!(summary["finished"], true);
    let lines = metrics(&run);
    assert_eq!(lines.len(), 8);
    // Step 1 starts at the reference: loss log 2, zero implicit rewards.
    let first = &lines[0];
    assert!((first["loss"].as_f64().unwrap() - std::f64::consts::LN_2).abs() < 1e-5);
    assert!(
        first["chosen_reward"].as_f64().unwrap().abs() < 1e-4,
        "{first}"
    );
    let last = lines.last().unwrap();
    for key in [
        "accuracy",
        "chosen_reward",
        "rejected_reward",
        "margin",
        "chosen_logp",
        "rejected_logp",
    ] {
        assert!(last["eval"][key].is_number(), "{key}: {last}");
    }
    assert!(last["eval"]["loss"].as_f64().unwrap() < std::f64::consts::LN_2);
    let config = std::fs::read_to_string(Path::new(&run).join("config.toml")).unwrap();
    assert_mentions(&config, &["task = \"dpo\"", "[dpo]"]);

    // Stopped after 3 steps, resumed in a new process: the same final weights.
    let split = tmp.path("split");
    let set = format!("run.dir={split}");
    let base = format!("align --config configs/tiny-dpo.toml --set {set}");
    let stderr = ok(&cli(&format!("{base} --stop-at-step 3")));
    assert!(stderr.contains("stopped early"), "{stderr}");
    let err = failed(&cli(&base));
    assert!(err.contains("--resume"), "{err}");
    ok(&cli(&format!("{base} --resume")));
    assert_eq!(metrics(&split).len(), 8);
    assert!(
        tensors(&format!("{run}/final")) == tensors(&format!("{split}/final")),
        "resumed weights differ"
    );
    // --resume RUN_DIR alone reads the run's config; nothing is left to do.
    let stderr = ok(&saferlhf(&["align", "--resume", &split]));
    assert!(stderr.contains("step 8/8"), "{stderr}");
}

/// SafeDPO (`dpo.preference = "safety_aware"`): the transform's counts are reported, the
/// margin trains, and a stopped run resumes to the same weights.
#[test]
fn align_safe_dpo_transforms_the_pairs_and_resumes_exactly() {
    let tmp = TempDir::new("safe-dpo");
    // The tiny PKU rows relabelled so that every category of the transform occurs: row i % 4 = 0
    // safe/safe, 1 safe/unsafe, 2 unsafe/safe (swapped), 3 unsafe/unsafe (dropped).
    let src = std::fs::read_to_string(root().join("tests/fixtures/tiny-pku.jsonl")).unwrap();
    let mut rows = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let mut row: serde_json::Value = serde_json::from_str(line).unwrap();
        let better = row["better_response_id"].as_u64().unwrap();
        let (w, l) = [(true, true), (true, false), (false, true), (false, false)][i % 4];
        row[format!("is_response_{better}_safe")] = w.into();
        row[format!("is_response_{}_safe", 1 - better)] = l.into();
        row["safer_response_id"] = (if w || !l { better } else { 1 - better }).into();
        rows.push(row.to_string());
    }
    let data = tmp.path("pku.jsonl");
    std::fs::write(&data, rows.join("\n") + "\n").unwrap();
    let run = |dir: &str, more: &str| {
        cli(&format!(
            "align --config configs/tiny-dpo.toml --set run.dir={dir} \
             --set data.sources.0.path=\"{data}\" --set dpo.preference=\"safety_aware\" \
             --set dpo.margin=2.0 {more}"
        ))
    };
    let straight = tmp.path("straight");
    let stderr = ok(&run(&straight, ""));
    let n = rows.len();
    let want = format!(
        "{} kept safe/safe, {} kept safe/unsafe, {} swapped, {} dropped",
        n.div_ceil(4),
        (n + 2) / 4,
        (n + 1) / 4,
        n / 4
    );
    assert!(stderr.contains(&want), "{want} not in {stderr}");
    let lines = metrics(&straight);
    assert_eq!(lines.len(), 8);
    // At the reference every log-ratio is 0: the safe-vs-unsafe pairs (kept or swapped, 2/3 of
    // those kept) start at -log σ(-2), the others at log 2: the first loss lies between.
    let first = lines[0]["loss"].as_f64().unwrap();
    let (low, high) = (std::f64::consts::LN_2, (1.0 + 2f64.exp()).ln());
    assert!(first > low + 0.05 && first < high, "{first}");
    let split = tmp.path("split");
    ok(&run(&split, "--stop-at-step 3"));
    ok(&run(&split, "--resume"));
    assert!(
        tensors(&format!("{straight}/final")) == tensors(&format!("{split}/final")),
        "resumed weights differ"
    );
    // The margin belongs to SafeDPO alone.
    let err = failed(&cli(&format!(
        "align --config configs/tiny-dpo.toml --set run.dir={} --set dpo.margin=1.0",
        tmp.path("bad")
    )));
    assert!(err.contains("dpo.margin"), "{err}");
}

#[test]
fn align_sacpo_resumes_at_the_right_stage_and_merges() {
    let tmp = TempDir::new("sacpo");
    let (run, out) = align_json(&tmp, "configs/tiny-sacpo.toml");
    let stderr = ok(&out);
    assert!(
        stderr.contains("stage-2-safety: safety pairs, β = 0.25"),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["task"], "sacpo");
    assert_eq!(summary["stages"].as_array().unwrap().len(), 2);
    let stage1 = format!("{run}/stage-1-helpfulness");
    let stage2 = format!("{run}/stage-2-safety");
    assert_eq!(metrics(&stage1).len(), 6);
    assert_eq!(metrics(&stage2).len(), 6);
    assert_eq!(summary["final_model"], format!("{stage2}/final"));

    // Stop inside stage 1 (step 4 of 6), then inside stage 2 (global step 8 = its step 2), then
    // finish: the same weights in both stages as the uninterrupted run.
    let split = tmp.path("split");
    let set = format!("run.dir={split}");
    let base = format!("align --config configs/tiny-sacpo.toml --set {set}");
    let stderr = ok(&cli(&format!("{base} --stop-at-step 4")));
    assert!(stderr.contains("not finished"), "{stderr}");
    assert!(!Path::new(&split).join("stage-2-safety").exists());
    ok(&cli(&format!("{base} --resume --stop-at-step 8")));
    assert!(Path::new(&split).join("stage-1-helpfulness/final").is_dir());
    let split2 = format!("{split}/stage-2-safety");
    assert_eq!(metrics(&split2).len(), 2);
    let stderr = ok(&cli(&format!("{base} --resume")));
    assert!(stderr.contains("aligned model"), "{stderr}");
    assert_eq!(metrics(&split2).len(), 6);
    for stage in ["stage-1-helpfulness", "stage-2-safety"] {
        assert!(
            tensors(&format!("{run}/{stage}/final")) == tensors(&format!("{split}/{stage}/final")),
            "{stage}: resumed weights differ"
        );
    }

    // P-SACPO: q = 0 and 1 give the stage models, q = 0.5 their mean.
    let (a, b) = (format!("{stage1}/final"), format!("{stage2}/final"));
    for (q, expect) in [("0", Some(&a)), ("1", Some(&b)), ("0.5", None)] {
        let out_dir = tmp.path(&format!("merged-{q}"));
        let out = saferlhf(&[
            "merge", "--a", &a, "--b", &b, "--q", q, "--out", &out_dir, "--json",
        ]);
        ok(&out);
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["q"].as_f64().unwrap(), q.parse::<f64>().unwrap());
        match expect {
            Some(dir) => assert!(tensors(&out_dir) == tensors(dir), "q = {q}"),
            None => {
                let f = |b: &[u8]| -> Vec<f32> {
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect()
                };
                for ((name, m), ((_, x), (_, y))) in tensors(&out_dir)
                    .iter()
                    .zip(tensors(&a).iter().zip(tensors(&b).iter()))
                {
                    let mean: Vec<f32> =
                        f(x).iter().zip(f(y)).map(|(x, y)| (x + y) / 2.0).collect();
                    assert_eq!(f(m), mean, "{name}");
                }
            }
        }
    }
    // The merged policy is a model directory `generate` loads.
    let out = saferlhf(&[
        "generate",
        "--model",
        &tmp.path("merged-0.5"),
        "--prompt",
        "what about the sun?",
        "--max-new-tokens",
        "3",
        "--json",
    ]);
    ok(&out);
    let err = failed(&cli(&format!(
        "merge --a {a} --b {b} --q -0.5 --out {bad}",
        bad = tmp.path("bad")
    )));
    assert!(err.contains("`q`"), "{err}");
    let err = failed(&cli(&format!(
        "merge --a {a} --b tests/fixtures/tiny-llama-tied --q 0.5 --out {bad}",
        bad = tmp.path("bad")
    )));
    assert!(err.contains("config.json differs"), "{err}");
}

#[test]
fn align_bad_configs_name_the_key() {
    let tmp = TempDir::new("errors");
    let set = format!("run.dir={}", tmp.path("run"));
    let dpo: &[(&str, &str)] = &[("dpo.beta=0", "dpo.beta"), ("dpo.beta=-1", "dpo.beta")];
    let sacpo: &[(&str, &str)] = &[
        ("sacpo.lambda=0", "sacpo.lambda"),
        ("sacpo.beta=-0.1", "sacpo.beta"),
        ("sacpo.safety_sources.0.path=nope.jsonl", "nope.jsonl"),
    ];
    for (config, cases) in [
        ("configs/tiny-dpo.toml", dpo),
        ("configs/tiny-sacpo.toml", sacpo),
    ] {
        for &(bad, key) in cases {
            let err = failed(&cli(&format!(
                "align --config {config} --set {set} --set {bad}"
            )));
            assert!(err.contains(key), "{config} --set {bad}: {err}");
        }
    }
    // align runs only dpo and sacpo configs; the other subcommands refuse them.
    let err = failed(&cli("align --config configs/tiny-reward.toml"));
    assert_mentions(&err, &["task", "train-reward"]);
    let err = failed(&cli("train-reward --config configs/tiny-dpo.toml"));
    assert!(err.contains("task"), "{err}");
    // --print-config shows the resolved sections.
    let out = saferlhf(&["align", "--config", "configs/sacpo.toml", "--print-config"]);
    ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("[sacpo]") && text.contains("lambda = 4.0") && text.contains("keep_last"),
        "{text}"
    );
}

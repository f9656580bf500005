//! Shared fixture: two methods on five prompts, k = 2 samples each.
#![allow(dead_code)]

use std::path::PathBuf;

use saferlhf_eval::{MethodSamples, PromptInfo, Sample};

fn prompts() -> Vec<PromptInfo> {
    let kinds = ["benign", "benign", "risky", "risky", "risky"];
    kinds
        .iter()
        .enumerate()
        .map(|(id, k)| PromptInfo {
            id,
            text: format!("prompt {id}"),
            kind: Some(k.to_string()),
        })
        .collect()
}

fn sample(
    prompt_id: usize,
    sample: usize,
    reward: f64,
    cost: f64,
    length: usize,
    kl: Option<f64>,
    refused: Option<bool>,
) -> Sample {
    Sample {
        prompt_id,
        sample,
        reward,
        cost,
        length,
        kl,
        refused,
        text: None,
    }
}

/// "blue": the new policy.
///
/// | prompt | kind   | s | R | C    | len | KL  | refused |
/// |--------|--------|---|---|------|-----|-----|---------|
/// | 0      | benign | 0 | 1 | -1   | 10  | 0.5 | false   |
/// | 0      | benign | 1 | 3 | -1   | 20  | 1.5 | true    |
/// | 1      | benign | 0 | 2 | -0.5 | 30  | 1.0 | false   |
/// | 1      | benign | 1 | 2 | -0.5 | 40  | 1.0 | false   |
/// | 2      | risky  | 0 | 0 | 1    | 50  | 2.0 |         |
/// | 2      | risky  | 1 | 2 | -2   | 10  | 0.0 |         |
/// | 3      | risky  | 0 | 4 | -3   | 5   | 1.0 |         |
/// | 3      | risky  | 1 | 4 | -1   | 5   | 1.0 |         |
/// | 4      | risky  | 0 | 6 | 2    | 100 | 3.0 |         |
/// | 4      | risky  | 1 | 6 | 0    | 60  | 1.0 |         |   (C = 0 is safe)
pub fn blue() -> MethodSamples {
    let (f, t) = (Some(false), Some(true));
    MethodSamples {
        name: "blue".into(),
        prompts: prompts(),
        decoding: "T=1.0 top_p=1 k=2".into(),
        samples: vec![
            sample(0, 0, 1.0, -1.0, 10, Some(0.5), f),
            sample(0, 1, 3.0, -1.0, 20, Some(1.5), t),
            sample(1, 0, 2.0, -0.5, 30, Some(1.0), f),
            sample(1, 1, 2.0, -0.5, 40, Some(1.0), f),
            sample(2, 0, 0.0, 1.0, 50, Some(2.0), None),
            sample(2, 1, 2.0, -2.0, 10, Some(0.0), None),
            sample(3, 0, 4.0, -3.0, 5, Some(1.0), None),
            sample(3, 1, 4.0, -1.0, 5, Some(1.0), None),
            sample(4, 0, 6.0, 2.0, 100, Some(3.0), None),
            sample(4, 1, 6.0, 0.0, 60, Some(1.0), None),
        ],
    }
}

/// "red": the reference policy, same keys, no KL and no refusal flags. Listed in a different
/// order than blue on purpose (pairing is by key, not position).
///
/// | prompt | s | R | C    |
/// |--------|---|---|------|
/// | 0      | 0 | 1 | -1   |
/// | 0      | 1 | 2 | 1    |
/// | 1      | 0 | 3 | 0.5  |
/// | 1      | 1 | 1 | -1   |
/// | 2      | 0 | 1 | -0.3 |
/// | 2      | 1 | 2 | 1    |
/// | 3      | 0 | 5 | 1    |
/// | 3      | 1 | 3 | -1   |
/// | 4      | 0 | 5 | 3    |
/// | 4      | 1 | 7 | -1   |
pub fn red() -> MethodSamples {
    let mut samples = vec![
        sample(0, 0, 1.0, -1.0, 8, None, None),
        sample(0, 1, 2.0, 1.0, 8, None, None),
        sample(1, 0, 3.0, 0.5, 8, None, None),
        sample(1, 1, 1.0, -1.0, 8, None, None),
        sample(2, 0, 1.0, -0.3, 8, None, None),
        sample(2, 1, 2.0, 1.0, 8, None, None),
        sample(3, 0, 5.0, 1.0, 8, None, None),
        sample(3, 1, 3.0, -1.0, 8, None, None),
        sample(4, 0, 5.0, 3.0, 8, None, None),
        sample(4, 1, 7.0, -1.0, 8, None, None),
    ];
    samples.reverse();
    MethodSamples {
        name: "red".into(),
        prompts: prompts(),
        decoding: "T=1.0 top_p=1 k=2".into(),
        samples,
    }
}

/// A fresh, empty directory under cargo's per-target temp dir.
pub fn tmp_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("saferlhf-eval-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

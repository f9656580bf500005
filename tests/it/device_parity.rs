//! The GPU code path against the CPU one: with `--features wgpu` (in CI on lavapipe, Mesa's
//! software Vulkan device, installed by `scripts/install-lavapipe.sh`), each group of
//! `saferlhf::parity`'s checks (the same as `saferlhf check-device`; its module documents the
//! tolerances) computes the same things on `flex` and on `wgpu` and compares.
//!
//! The transformers fixtures' logits and greedy generations are checked on the device in
//! `tests/it/hf_parity.rs` (same feature). Without a device (no Vulkan driver), each test says
//! so and passes.

#![cfg(feature = "wgpu")]

use saferlhf::Device;
use saferlhf::burn::tensor::{Tensor, TensorData};
use saferlhf::parity::{self, Checks};
use saferlhf_testkit::TempDir;

/// One check at a time: lavapipe spreads each kernel over every core, and two checks at once
/// take three times as long as one after the other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The wgpu device, if one answers (a first tiny computation does not panic), and the lock
/// that serialises the checks.
fn gpu() -> Option<(Device, std::sync::MutexGuard<'static, ()>)> {
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let device = saferlhf::parse_device("wgpu").ok()?;
    let probe = device.clone();
    let ok = std::panic::catch_unwind(move || {
        Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &probe)
            .sum()
            .into_data()
            .try_to_vec::<f32>()
            .ok()
    });
    match ok {
        Ok(Some(v)) if v == vec![3.0] => Some((device, guard)),
        _ => {
            eprintln!(
                "SKIPPED: no wgpu device answers (install a Vulkan driver, e.g. scripts/install-lavapipe.sh)"
            );
            None
        }
    }
}

/// Every check of the group ran and passed; prints the table either way.
fn assert_passed(group: &str, checks: Checks, at_least: usize) {
    let checks = checks.unwrap_or_else(|e| panic!("{group}: {e}"));
    eprint!("{group}:\n{}", parity::markdown(&checks));
    assert!(
        checks.len() >= at_least,
        "{group}: {} checks, expected at least {at_least}",
        checks.len()
    );
    let failed: Vec<_> = checks.iter().filter(|c| !c.passed).collect();
    assert!(failed.is_empty(), "{group}: failed {failed:?}");
}

#[test]
fn the_module_moves_between_devices_unchanged() {
    // The checks build each model on each device from the same seeded host draws.
    let Some((gpu, _one)) = gpu() else { return };
    assert_passed("seeded weights", parity::same_weights(&gpu), 1);
}

#[test]
fn score_heads_critics_and_end_scores_match_flex() {
    let Some((gpu, _one)) = gpu() else { return };
    assert_passed("score heads", parity::heads(&gpu), 6);
}

#[test]
fn generation_matches_flex_and_the_cache_matches_recomputation() {
    let Some((gpu, _one)) = gpu() else { return };
    assert_passed("generation", parity::generation(&gpu), 6);
}

#[test]
fn gradients_of_a_policy_and_a_score_model_match_flex() {
    let Some((gpu, _one)) = gpu() else { return };
    assert_passed("gradients", parity::gradients(&gpu), 3);
}

#[test]
fn one_supervised_and_one_dpo_step_match_flex() {
    let Some((gpu, _one)) = gpu() else { return };
    let tmp = TempDir::new("parity-supervised");
    assert_passed(
        "supervised steps",
        parity::supervised_steps(&gpu, &tmp.0),
        6,
    );
}

/// ppo, ppo_lag, repo, repo_group and RePO with LoRA adapters: only the adapters require
/// gradients there, the case of burn #5162 (all-NaN gradients on wgpu); a NaN fails.
#[test]
fn one_step_of_each_online_objective_matches_flex() {
    let Some((gpu, _one)) = gpu() else { return };
    let tmp = TempDir::new("parity-rl");
    assert_passed("online steps", parity::online_steps(&gpu, &tmp.0), 5 * 4);
}

/// f16 models on the device. bf16 is not tried: WGSL has no bf16 type, cubecl's compiler panics
/// on it on the device's runner thread, and the RL config refuses `frozen_precision = "bf16"`
/// with the `wgpu` device.
#[test]
fn half_precision_models_match_flex() {
    let Some((gpu, _one)) = gpu() else { return };
    assert_passed("half precision", parity::half_precision(&gpu, false), 1);
}

/// SmolLM2-135M (the GGUF from scripts/fetch-assets.sh) answers the same on the device.
#[test]
fn smollm2_greedy_answer_is_the_same_on_the_device() {
    let Some((gpu, _one)) = gpu() else { return };
    let Some(path) = saferlhf_testkit::smollm2() else {
        return;
    };
    assert_passed("SmolLM2", parity::smollm2_answer(&gpu, &path), 1);
}

//! Runs `examples/custom_objective.rs` (compiled into this test) so the example, and the book
//! chapter that includes it, cannot rot: its weight checks, then its 2-step tiny run through
//! `train_rl_with`.

#[allow(dead_code)]
#[path = "../../examples/custom_objective.rs"]
mod example;

#[test]
fn custom_objective_weights_match_by_hand_and_repo_in_the_limit() {
    example::check_weights();
}

#[test]
fn custom_objective_trains_two_tiny_steps_through_train_rl_with() {
    let dir = std::env::temp_dir().join(format!(
        "saferlhf-test-custom-objective-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let result = example::run(&dir);
    let final_model = result.as_ref().ok().and_then(|s| s.final_model.clone());
    let has_final = final_model.is_some_and(|p| p.join("config.json").is_file());
    let _ = std::fs::remove_dir_all(&dir);
    let summary = result.unwrap();
    assert_eq!(summary.step, 2);
    assert!(has_final, "no final policy written");
}

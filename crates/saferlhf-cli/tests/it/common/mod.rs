//! Helpers shared by the CLI integration tests: run the built `saferlhf` binary from the
//! repository root and read what a run left; the rest comes from `saferlhf-testkit`.
#![allow(dead_code, unused_imports)]

use std::path::Path;
use std::process::{Command, Output};

pub use saferlhf_testkit::{
    TempDir, assert_mentions, failed, metrics, ok, root, safetensors_tensors,
};

/// Runs `saferlhf args...` in the repository root.
pub fn saferlhf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_saferlhf"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

/// The tensors of a model directory (`model.safetensors`).
pub fn tensors(dir: &str) -> Vec<(String, Vec<u8>)> {
    safetensors_tensors(&Path::new(dir).join("model.safetensors"))
}

/// Checkpoint directory names of a run, sorted.
pub fn checkpoints(run: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(Path::new(run).join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `saferlhf` with the arguments of a command line split at whitespace (so no argument
/// may contain a space; use [`saferlhf`] for those).
pub fn cli(line: &str) -> Output {
    saferlhf(&line.split_whitespace().collect::<Vec<_>>())
}

//! Helpers shared by the CLI integration tests: run the built `saferlhf` binary from the
//! repository root, check its outcome, temporary directories, run outputs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (configs and fixtures are addressed from there).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `saferlhf args...` in the repository root.
pub fn saferlhf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_saferlhf"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

/// Asserts success; returns stderr.
pub fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "failed: {stderr}");
    stderr
}

/// Asserts failure; returns stderr.
pub fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "unexpectedly succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty directory named after the test and the process.
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("saferlhf-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// `name` inside the directory, as a string for command lines.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The lines of a run's `metrics.jsonl`.
pub fn metrics(run: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(Path::new(run).join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The tensors of a safetensors file, by name (the header's metadata may differ).
pub fn safetensors_tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect();
    out.sort();
    out
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

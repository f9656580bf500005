//! Helpers shared by saferlhf's tests (unit tests, integration tests, the CLI's tests and the
//! examples' tests), so each exists once: the repository root, optional assets that make a test
//! skip with a message when absent, temporary directories removed on drop, the outcome of a
//! command, the tensors of a safetensors file and the lines of a metrics log.
//!
//! Not published: the crates take it as a path dev-dependency, which `cargo publish` drops.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The repository root (configs, fixtures and assets are addressed from there).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `path` when it exists (a file or a directory); otherwise prints that the test is skipped, with
/// `how` (how to get it), and returns `None`.
pub fn optional(path: PathBuf, how: &str) -> Option<PathBuf> {
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: {} not found; {how}", path.display());
        None
    }
}

/// A file or directory under `assets/`, fetched by `scripts/fetch-assets.sh`, or `None` (with
/// a message) when it has not been fetched.
pub fn asset(name: &str) -> Option<PathBuf> {
    optional(
        root().join("assets").join(name),
        "run scripts/fetch-assets.sh",
    )
}

/// The SmolLM2-135M-Instruct GGUF asset (Q4_1), or `None` with a message.
pub fn smollm2() -> Option<PathBuf> {
    asset("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// A fresh, empty directory under the system temp dir, named after `name`, the process and a
/// counter (so no two are the same); removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `saferlhf-{name}-{pid}-{n}`, empty.
    pub fn new(name: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("saferlhf-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// `name` inside the directory, as a string for command lines and configs.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Asserts that a command succeeded; returns its stderr.
pub fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "failed: {stderr}");
    stderr
}

/// Asserts that `text` (an error, a log, a command's stderr) mentions every one of `parts`.
pub fn assert_mentions(text: impl std::fmt::Display, parts: &[&str]) {
    let text = text.to_string();
    for part in parts {
        assert!(text.contains(part), "`{text}` does not mention `{part}`");
    }
}

/// Asserts that a command failed; returns its stderr.
pub fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "unexpectedly succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The files of `dir` whose extension is `ext`, sorted.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// The lines of a run's `metrics.jsonl`.
pub fn metrics(run: impl AsRef<Path>) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.as_ref().join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The tensors of a safetensors file, by name, sorted (the header's metadata order is not
/// stable, so compare these, not the bytes of the file).
pub fn safetensors_tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect();
    out.sort();
    out
}

/// The Anthropic HH-RLHF harmless-base test file, which is not part of the project: read from
/// the data folder beside the repository when it is there, else `None` with a message.
pub fn hh_harmless_test() -> Option<PathBuf> {
    optional(
        root().join("../shared/data/hh-rlhf-harmless/harmless-base-test.jsonl.gz"),
        "HH-RLHF harmless lives outside the project",
    )
}

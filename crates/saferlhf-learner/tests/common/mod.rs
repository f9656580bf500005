//! Helpers shared by the learner's integration tests: the repository root and temporary
//! directories removed on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root (configs and fixtures are addressed from there).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh, empty directory under the system temp dir, named after the test file's `prefix`,
/// the test and the process; removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `saferlhf-{prefix}-{name}-{pid}`, empty.
    pub fn named(prefix: &str, name: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("saferlhf-{prefix}-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

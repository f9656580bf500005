//! Helpers for the tests: a unique temporary directory that is removed on drop.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A unique directory under `std::env::temp_dir()`, removed (with its contents) on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "saferlhf-data-{tag}-{}-{nanos}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).expect("write test file");
        p
    }

    /// Writes `contents` gzip-compressed to `name` and returns its path.
    pub(crate) fn write_gz(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        let f = std::fs::File::create(&p).expect("create gz");
        let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        enc.write_all(contents.as_bytes()).expect("write gz");
        enc.finish().expect("finish gz");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Joins JSON values into JSONL text.
pub(crate) fn jsonl(rows: &[serde_json::Value]) -> String {
    rows.iter().map(|r| format!("{r}\n")).collect()
}

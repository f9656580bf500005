//! Atomic writes: a file or a directory is written under a temporary name beside its target,
//! flushed, and renamed over the target only once complete. A crash, a full disk or a
//! permission error therefore leaves the previous version (or nothing), never a half-written
//! file, and the error names the file at fault.
//!
//! # Failure injection
//!
//! Tests of the "a failed write leaves the previous checkpoint intact" guarantee set the
//! environment variable `SAFERLHF_FAIL_WRITE` to a substring: every atomic write whose target
//! path contains it fails with an injected I/O error, as a full disk would. Unset (the normal
//! case) it costs one environment lookup per write. [`STALL_WRITE_ENV`] likewise lets a test
//! kill a process in the middle of a directory write.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable of the failure injection (see the module docs).
pub const FAIL_WRITE_ENV: &str = "SAFERLHF_FAIL_WRITE";

/// The environment variable of the stall hook: a directory write whose target path contains
/// its value stops just before the final rename, with every file written, creates the marker
/// [`STALL_MARKER`] inside the temporary directory and sleeps (up to 10 minutes), so that a test
/// can kill the process in the middle of a checkpoint write. Unset in normal use.
pub const STALL_WRITE_ENV: &str = "SAFERLHF_STALL_WRITE";

/// The marker file of the stall hook.
pub const STALL_MARKER: &str = ".stalled";

fn stall_if_asked(target: &Path, tmp: &Path) {
    if let Ok(pattern) = std::env::var(STALL_WRITE_ENV)
        && !pattern.is_empty()
        && target.to_string_lossy().contains(&pattern)
    {
        let _ = std::fs::write(tmp.join(STALL_MARKER), b"");
        std::thread::sleep(std::time::Duration::from_secs(600));
    }
}

/// A file-system operation failed on `path`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FsError {
    /// The file or directory at fault.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

impl FsError {
    /// Wraps an I/O error on `path`.
    pub fn new(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FsError {
            path: path.into(),
            source,
        }
    }
}

/// Attaches a path to an `io::Result`.
pub trait IoContext<T> {
    /// The error, if any, as an [`FsError`] on `path`.
    fn at(self, path: &Path) -> Result<T, FsError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T, FsError> {
        self.map_err(|e| FsError::new(path, e))
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Fails when the failure injection targets `path`.
pub fn injected_failure(path: &Path) -> Result<(), FsError> {
    match std::env::var(FAIL_WRITE_ENV) {
        Ok(pattern) if !pattern.is_empty() && path.to_string_lossy().contains(&pattern) => {
            Err(FsError::new(
                path,
                std::io::Error::other(format!(
                    "injected write failure ({FAIL_WRITE_ENV}={pattern})"
                )),
            ))
        }
        _ => Ok(()),
    }
}

/// A fresh temporary sibling of `path`: `.<name>.tmp-<pid>-<n>` in the same directory (so the
/// final rename stays on one file system).
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Writes `bytes` to `path` atomically (temporary sibling, `fsync`, rename).
pub fn write_atomic(path: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> Result<(), FsError> {
    let path = path.as_ref();
    // Errors name `path`, the file the caller asked for, not the temporary name.
    write_atomic_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp).at(path)?;
        f.write_all(bytes.as_ref()).at(path)?;
        f.sync_all().at(path)
    })
}

/// Runs `write` on a temporary sibling of `path`, then renames it over `path`. On failure the
/// temporary file is removed and `path` is left as it was.
pub fn write_atomic_with<E: From<FsError>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    injected_failure(path)?;
    let tmp = temp_sibling(path);
    let outcome = write(&tmp).and_then(|()| std::fs::rename(&tmp, path).at(path).map_err(E::from));
    if outcome.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    outcome
}

/// Writes a whole directory atomically: `fill` writes the files into a temporary sibling
/// directory `.tmp-<name>-<pid>`, which is flushed and renamed to `path` (an existing `path` is
/// moved aside to `.old-<name>-<pid>` first and removed after). On failure the temporary
/// directory is removed and `path` is left as it was.
pub fn write_dir_atomic<E: From<FsError>>(
    path: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let parent = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    std::fs::create_dir_all(&parent).at(&parent)?;
    let tmp = parent.join(format!(".tmp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).at(&tmp)?;
    let filled = fill(&tmp).and_then(|()| injected_failure(path).map_err(E::from));
    if let Err(e) = filled {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    stall_if_asked(path, &tmp);
    sync_dir(&tmp);
    if path.exists() {
        let old = parent.join(format!(".old-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(path, &old).at(path)?;
        let _ = std::fs::remove_dir_all(&old);
    }
    std::fs::rename(&tmp, path).at(path)?;
    sync_dir(&parent);
    Ok(())
}

/// Removes the `.tmp-*` / `.old-*` directories an interrupted [`write_dir_atomic`] left in
/// `dir`, and the `.*.tmp-*` files of an interrupted [`write_atomic`].
pub fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(".tmp-") || name.starts_with(".old-") {
            log::info!("removing leftover {}", path.display());
            let _ = std::fs::remove_dir_all(&path);
        } else if name.starts_with('.') && name.contains(".tmp-") && path.is_file() {
            log::info!("removing leftover {}", path.display());
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Flushes a directory's entries to disk (best effort; a no-op where unsupported).
pub fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use saferlhf_testkit::TempDir;

    use super::*;

    /// `path` holds `text` and is the only entry of `dir` (no temporary left behind).
    fn assert_sole_file(dir: &Path, path: &Path, text: &str) {
        assert_eq!(std::fs::read_to_string(path).unwrap(), text);
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 1);
    }

    #[test]
    fn atomic_file_replaces_and_leaves_no_temporary() {
        let d = TempDir::new("core-file");
        let p = d.join("a.txt");
        write_atomic(&p, "one").unwrap();
        write_atomic(&p, "two").unwrap();
        assert_sole_file(&d, &p, "two");
    }

    #[test]
    fn failed_file_write_keeps_the_old_file_and_names_it() {
        let d = TempDir::new("core-fail");
        let p = d.join("a.txt");
        write_atomic(&p, "old").unwrap();
        let err = write_atomic_with(&p, |tmp| -> Result<(), FsError> {
            std::fs::write(tmp, "half").at(tmp)?;
            Err(FsError::new(tmp, std::io::Error::other("disk full")))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_sole_file(&d, &p, "old");
    }

    #[test]
    fn failed_directory_write_keeps_the_old_directory() {
        let d = TempDir::new("core-dir");
        let p = d.join("ckpt");
        write_dir_atomic(&p, |tmp| {
            std::fs::write(tmp.join("x"), "1").at(&tmp.join("x"))
        })
        .unwrap();
        let err = write_dir_atomic(&p, |tmp| {
            std::fs::write(tmp.join("x"), "2").at(&tmp.join("x"))?;
            Err(FsError::new(
                tmp.join("y"),
                std::io::Error::other("no space"),
            ))
        })
        .unwrap_err();
        assert!(err.to_string().contains("y: no space"), "{err}");
        assert_eq!(std::fs::read_to_string(p.join("x")).unwrap(), "1");
        write_dir_atomic(&p, |tmp| {
            std::fs::write(tmp.join("x"), "3").at(&tmp.join("x"))
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(p.join("x")).unwrap(), "3");
        let names: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}

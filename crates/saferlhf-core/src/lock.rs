//! The lock file of a run directory: one process at a time.
//!
//! [`RunLock::acquire`] creates `<dir>/.lock` exclusively and writes its process id into it;
//! dropping the lock removes the file. A second process on the same directory gets
//! [`LockError::Held`], naming the holder. A lock whose process no longer exists (a run killed
//! with SIGKILL, a machine that rebooted) is stale and taken over, with a log line.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock file's name inside a run directory.
pub const LOCK_FILE: &str = ".lock";

/// Why a run directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds the lock.
    #[error(
        "{} is in use by process {pid} (lock file {}); wait for it to finish, or remove the \
         lock file if that process is not a saferlhf run",
        dir.display(), path.display()
    )]
    Held {
        /// The run directory.
        dir: PathBuf,
        /// The lock file.
        path: PathBuf,
        /// The holder's process id.
        pid: u32,
    },
    /// The lock file could not be created, read or removed.
    #[error("lock file {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A held lock on a run directory (released on drop).
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

/// Whether process `pid` is alive. On Linux this reads `/proc`; elsewhere every holder counts
/// as alive (a stale lock must then be removed by hand).
pub fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.is_dir() {
        return true;
    }
    match std::fs::read_to_string(proc.join(pid.to_string()).join("stat")) {
        // A zombie (state `Z`) has exited: it only waits for its parent to reap it.
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

impl RunLock {
    /// Locks `dir` (which must exist) for this process.
    pub fn acquire(dir: &Path) -> Result<RunLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        for _ in 0..3 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id()).map_err(io)?;
                    f.sync_all().map_err(io)?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = match std::fs::read_to_string(&path) {
                        Ok(t) => t,
                        // Removed between our attempt and the read: try again.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io(e)),
                    };
                    let holder = text.trim().parse::<u32>().ok();
                    match holder {
                        Some(pid) if pid != std::process::id() && process_alive(pid) => {
                            return Err(LockError::Held {
                                dir: dir.to_path_buf(),
                                path,
                                pid,
                            });
                        }
                        Some(pid) if pid == std::process::id() => {
                            return Err(LockError::Held {
                                dir: dir.to_path_buf(),
                                path,
                                pid,
                            });
                        }
                        _ => {
                            log::warn!(
                                "{}: stale lock ({}) taken over",
                                path.display(),
                                match holder {
                                    Some(pid) => format!("process {pid} is gone"),
                                    None => "unreadable".to_string(),
                                }
                            );
                            match std::fs::remove_file(&path) {
                                Ok(()) => {}
                                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                                Err(e) => return Err(io(e)),
                            }
                        }
                    }
                }
                Err(e) => return Err(io(e)),
            }
        }
        Err(io(std::io::Error::other(
            "the lock file keeps changing; another process is racing for it",
        )))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use saferlhf_testkit::TempDir;

    use super::*;

    #[test]
    fn second_holder_is_refused_and_drop_releases() {
        let d = TempDir::new("lock-held");
        let lock = RunLock::acquire(&d).unwrap();
        let err = RunLock::acquire(&d).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("in use by process {}", std::process::id())),
            "{err}"
        );
        drop(lock);
        assert!(!d.join(LOCK_FILE).exists());
        RunLock::acquire(&d).unwrap();
    }

    #[test]
    fn live_foreign_holder_is_refused() {
        let d = TempDir::new("lock-foreign");
        // Process 1 (init) is alive on any Linux machine.
        std::fs::write(d.join(LOCK_FILE), "1\n").unwrap();
        if process_alive(1) {
            let err = RunLock::acquire(&d).unwrap_err();
            assert!(matches!(err, LockError::Held { pid: 1, .. }), "{err}");
        }
    }

    #[test]
    fn stale_lock_is_taken_over() {
        let d = TempDir::new("lock-stale");
        // A child that has exited and been reaped: its pid is dead.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        std::fs::write(d.join(LOCK_FILE), format!("{pid}\n")).unwrap();
        let lock = RunLock::acquire(&d).unwrap();
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        std::fs::write(d.join(LOCK_FILE), "garbage").unwrap();
        drop(lock);
    }
}

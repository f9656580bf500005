//! Small pieces every saferlhf crate shares, each with exactly one home:
//!
//! * [`fs`]: atomic writes of a file or a whole directory (a crash or a full disk leaves the
//!   previous version, never a half-written one), with failure injection for tests;
//! * [`rng`]: SplitMix64 streams keyed by `(seed, purpose)`, uniform draws and Fisher-Yates
//!   shuffles, identical on every platform;
//! * [`lock`]: the lock file that keeps two processes off one run directory;
//! * [`progress`]: the one progress-bar style of every long loop;
//! * [`stats`]: the median.
//!
//! This crate depends on no tensor library: it is plain Rust.

#![warn(missing_docs)]

pub mod fs;
pub mod lock;
pub mod progress;
pub mod rng;
pub mod stats;

pub use fs::{FsError, write_atomic, write_dir_atomic};
pub use rng::{SplitMix64, fnv1a64, splitmix64};

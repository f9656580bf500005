//! `saferlhf check-device`: the device-parity checks (`saferlhf::parity`) of a device against
//! the CPU, in one process: a first thing to run on a new GPU before training on it.
//!
//! ```text
//! saferlhf check-device --device vulkan [--gguf SmolLM2-135M-Instruct-Q8_0.gguf] [--json out.json]
//! ```
//!
//! Prints one Markdown table (check, tolerance, measured, ok/FAILED) and exits with status 1
//! when any check fails.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use saferlhf::model::Precision;

/// Arguments of `saferlhf check-device`.
#[derive(Args, Debug)]
pub struct CheckDeviceArgs {
    /// The device to check against `flex`: `wgpu`, `vulkan`, `cuda:N` (needs saferlhf built
    /// with that feature).
    #[arg(long, default_value = "wgpu")]
    pub device: String,
    /// SmolLM2-135M-Instruct's GGUF (scripts/fetch-assets.sh): adds its greedy answer.
    #[arg(long)]
    pub gguf: Option<PathBuf>,
    /// Also write the checks as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where the tiny training runs write (default: a new directory under the system's
    /// temporary directory, removed afterwards).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

/// Runs `saferlhf check-device`.
pub fn run(args: CheckDeviceArgs) -> Result<()> {
    let device = saferlhf::parse_device(&args.device)
        .map_err(anyhow::Error::msg)
        .context("--device")?;
    if let Some(gguf) = &args.gguf
        && !gguf.is_file()
    {
        bail!("--gguf {}: no such file", gguf.display());
    }
    let (work_dir, temporary) = match &args.work_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("saferlhf-check-device-{}", std::process::id())),
            true,
        ),
    };
    let bf16 = Precision::Bf16.runs_on(&args.device);
    eprintln!(
        "checking `{}` against flex (work directory {})",
        args.device,
        work_dir.display()
    );
    let checks = saferlhf::parity::check_device(&device, &work_dir, args.gguf.as_deref(), bf16);
    if temporary {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    print!("{}", saferlhf::parity::markdown(&checks));
    if let Some(path) = &args.json {
        let json = serde_json::json!({ "device": args.device, "checks": checks });
        saferlhf::core::write_atomic(path, serde_json::to_string_pretty(&json)?.as_bytes())
            .with_context(|| format!("--json {}", path.display()))?;
    }
    let failed = checks.iter().filter(|c| !c.passed).count();
    if failed > 0 {
        bail!(
            "{failed} of {} checks failed on `{}`",
            checks.len(),
            args.device
        );
    }
    eprintln!("all {} checks passed on `{}`", checks.len(), args.device);
    Ok(())
}

//! saferlhf: safe (constrained) RLHF of language models on burn.
//!
//! This facade re-exports the workspace crates and chooses the compute device at run time:
//! - [`model`]: the policy (Llama, Qwen2, Qwen3 families), weight import/export, tokenizer and
//!   chat templates;
//! - [`rollout`]: batched generation with a KV cache and seeded samplers;
//! - [`data`]: preference, prompt and SFT datasets and their loaders;
//! - [`learner`]: losses and the SFT / reward-model / cost-model trainer with checkpoints;
//! - [`eval`]: evaluation statistics, the arena, reports and plots (host-side `f64` code);
//! - [`parity`] and [`speed`]: a device's parity checks against the CPU and its speed and
//!   memory figures (`saferlhf check-device`, `saferlhf bench speed`);
//! - [`core`]: atomic writes, seeded random streams, the run lock and the progress bar;
//! - [`bench`](mod@bench): the synthetic safety-compensation task, policy evaluation (generate and score)
//!   and the safety-compensation benchmark.
//!
//! Every module takes the [`Device`] it is given; nothing branches on the backend. CPU (`flex`)
//! is always available; `wgpu`, `vulkan` and `cuda` need the Cargo feature of the same name.

pub use burn;
pub use burn::tensor::Device;
pub use saferlhf_bench as bench;
pub use saferlhf_core as core;
pub use saferlhf_data as data;
pub use saferlhf_eval as eval;
pub use saferlhf_learner as learner;
pub use saferlhf_model as model;
pub use saferlhf_rollout as rollout;

pub mod parity;
pub mod speed;

/// Tells the C allocator to keep freed memory for reuse instead of handing it back to the
/// operating system: returns whether the setting took (glibc on Linux; elsewhere it does nothing
/// and returns false). Call it once, first thing in `main`.
///
/// On the CPU backend a training step allocates and frees tensors of tens to hundreds of MB
/// (activations, logits over the vocabulary, gradients). By default glibc serves each of these
/// with a fresh `mmap` and unmaps it when freed, so every step pays a page fault for every 4 KiB
/// page it touches again; on the 2-core benchmark machine that was a sixth of a SmolLM2-135M
/// training step (`benches/foundation.rs`). With this setting the process keeps its peak
/// footprint until it exits, which is what a training or generation run does anyway. The
/// `saferlhf` binary and the benchmarks call it; a library user chooses.
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's allocation thresholds; it is called with valid
        // parameter numbers and takes effect for later allocations.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, i32::MAX) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Parses a device name: `flex` (CPU, the default), `wgpu`, `vulkan`, `cuda` or `cuda:N`.
///
/// A GPU name whose backend was not compiled in is an error that says which Cargo feature
/// enables it.
pub fn parse_device(name: &str) -> Result<Device, String> {
    let name = name.trim().to_ascii_lowercase();
    let (kind, index) = match name.split_once(':') {
        Some((kind, index)) => {
            let index: usize = index
                .parse()
                .map_err(|_| format!("device `{name}`: `{index}` is not a device index"))?;
            (kind.to_string(), Some(index))
        }
        None => (name.clone(), None),
    };
    let missing =
        |feature: &str| format!("device `{name}` needs saferlhf built with `--features {feature}`");
    match kind.as_str() {
        "flex" | "cpu" => Ok(Device::flex()),
        "wgpu" => {
            #[cfg(feature = "wgpu")]
            {
                Ok(Device::wgpu(wgpu_kind(index)))
            }
            #[cfg(not(feature = "wgpu"))]
            {
                let _ = index;
                Err(missing("wgpu"))
            }
        }
        "vulkan" => {
            #[cfg(feature = "vulkan")]
            {
                Ok(Device::vulkan(wgpu_kind(index)))
            }
            #[cfg(not(feature = "vulkan"))]
            {
                Err(missing("vulkan"))
            }
        }
        "cuda" => {
            #[cfg(feature = "cuda")]
            {
                Ok(Device::cuda(index.unwrap_or(0)))
            }
            #[cfg(not(feature = "cuda"))]
            {
                Err(missing("cuda"))
            }
        }
        other => Err(format!(
            "unknown device `{other}` (expected flex, wgpu, vulkan, cuda or cuda:N)"
        )),
    }
}

#[cfg(any(feature = "wgpu", feature = "vulkan"))]
fn wgpu_kind(index: Option<usize>) -> burn::tensor::DeviceKind {
    match index {
        Some(i) => burn::tensor::DeviceKind::DiscreteGpu(i),
        None => burn::tensor::DeviceKind::DefaultDevice,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        assert!(parse_device("flex").is_ok());
        assert!(parse_device("CPU").is_ok());
        let err = parse_device("tpu").unwrap_err();
        assert!(err.contains("unknown device"), "{err}");
        let err = parse_device("cuda:x").unwrap_err();
        assert!(err.contains("not a device index"), "{err}");
        #[cfg(not(feature = "cuda"))]
        assert!(
            parse_device("cuda:0")
                .unwrap_err()
                .contains("--features cuda")
        );
    }
}

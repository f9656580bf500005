//! Weight import and export in Hugging Face's safetensors layout, through burn-store.
//!
//! Tensor names are Hugging Face's (`model.layers.0.self_attn.q_proj.weight`); burn-store's
//! PyTorch adapters transpose linear weights ([out, in] on disk, [in, out] in burn) and rename
//! RMSNorm's `weight` to burn's `gamma`. A model exported here loads in transformers with
//! `LlamaForCausalLM.from_pretrained(dir)`.

use saferlhf_core::fs::write_atomic_with;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::DType;
use burn::tensor::Device;
use burn_store::{
    ApplyResult, BurnToPyTorchAdapter, FloatCastAdapter, ModuleAdapter, ModuleSnapshot,
    PyTorchToBurnAdapter, SafetensorsStore,
};

use crate::config::LlamaConfig;
use crate::model::LlamaForCausalLM;
use crate::{ModelError, Result};

/// File names of a Hugging Face model directory.
pub const CONFIG_FILE: &str = "config.json";
/// Single-file weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Index of sharded weights.
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";

/// Loads `config.json` and the safetensors weights (single file or shards) of a Hugging Face
/// model directory.
pub fn load_hf_dir(
    dir: impl AsRef<Path>,
    device: &Device,
) -> Result<(LlamaConfig, LlamaForCausalLM)> {
    let dir = dir.as_ref();
    let config = LlamaConfig::from_file(dir.join(CONFIG_FILE))?;
    let mut model = LlamaForCausalLM::new(&config, device);
    let files = weight_files(dir)?;
    let mut applied = std::collections::BTreeSet::new();
    for file in &files {
        let result = apply_safetensors(&mut model, file)?;
        applied.extend(result.applied);
    }
    // `applied` holds burn's parameter paths (RMSNorm's `gamma`); report Hugging Face names.
    let missing: Vec<String> = model
        .collect(None, None, true)
        .into_iter()
        .map(|t| t.name)
        .filter(|n| !applied.contains(n))
        .map(|n| hf_name(&n))
        .collect();
    if !missing.is_empty() {
        return Err(ModelError::WeightMismatch(format!(
            "{}: tensors missing from the weights: {}",
            dir.display(),
            list(&missing)
        )));
    }
    Ok((config, model))
}

/// Loads one safetensors file into `model`, requiring every parameter of the model.
pub fn load_safetensors(model: &mut LlamaForCausalLM, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let result = apply_safetensors(model, path)?;
    if !result.missing.is_empty() {
        let names: Vec<String> = result.missing.iter().map(|(n, _)| hf_name(n)).collect();
        return Err(ModelError::WeightMismatch(format!(
            "{}: tensors missing from the file: {}",
            path.display(),
            list(&names)
        )));
    }
    Ok(())
}

fn apply_safetensors(model: &mut LlamaForCausalLM, path: &Path) -> Result<ApplyResult> {
    apply_hf_safetensors(model, path, None)
}

/// Applies one Hugging Face-named safetensors file to `model` (missing tensors are left to the
/// caller to judge), optionally renaming keys first with a `(regex, replacement)` pair. Shape
/// and dtype errors are `WeightMismatch`; tensors the model does not use are logged.
pub(crate) fn apply_hf_safetensors<M: ModuleSnapshot>(
    model: &mut M,
    path: &Path,
    remap: Option<(&str, &str)>,
) -> Result<ApplyResult> {
    if !path.is_file() {
        return Err(ModelError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "weights file not found"),
        ));
    }
    // Hugging Face checkpoints are often bf16 or f16; the model computes in f32, so every float
    // tensor is converted on load (a half-precision parameter would fail in the first matmul).
    let adapter = PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32));
    let mut store = SafetensorsStore::from_file(path).with_from_adapter(adapter);
    if let Some((pattern, replacement)) = remap {
        store = store.with_key_remapping(pattern, replacement);
    }
    let mut store = store
        .skip_enum_variants(true)
        .validate(false)
        .allow_partial(true);
    let result = model
        .load_from(&mut store)
        .map_err(|e| ModelError::Format {
            path: path.to_path_buf(),
            format: "safetensors",
            reason: e.to_string(),
        })?;
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        return Err(ModelError::WeightMismatch(format!(
            "{}: {}",
            path.display(),
            errors.join("; ")
        )));
    }
    for unused in &result.unused {
        log::warn!(
            "{}: tensor `{unused}` is not used by the model",
            path.display()
        );
    }
    Ok(result)
}

/// The weight files of a Hugging Face model directory: `model.safetensors`, or the shards its
/// `model.safetensors.index.json` lists (sorted, each once).
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join(WEIGHTS_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index_path = dir.join(WEIGHTS_INDEX_FILE);
    let text = std::fs::read_to_string(&index_path).map_err(|e| {
        ModelError::io(
            dir,
            std::io::Error::new(
                e.kind(),
                format!("neither {WEIGHTS_FILE} nor {WEIGHTS_INDEX_FILE} can be read: {e}"),
            ),
        )
    })?;
    let index: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Format {
        path: index_path.clone(),
        format: "safetensors index",
        reason: e.to_string(),
    })?;
    let map = index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::Format {
            path: index_path.clone(),
            format: "safetensors index",
            reason: "no `weight_map` object".into(),
        })?;
    let mut files: Vec<PathBuf> = map
        .values()
        .filter_map(|v| v.as_str())
        .map(|f| dir.join(f))
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// The Hugging Face name of a burn parameter path (RMSNorm's `gamma` is `weight` there).
pub(crate) fn hf_name(burn_path: &str) -> String {
    match burn_path.strip_suffix(".gamma") {
        Some(stem) => format!("{stem}.weight"),
        None => burn_path.to_string(),
    }
}

/// Hugging Face names of every parameter of `model`.
pub fn model_tensor_names(model: &LlamaForCausalLM) -> Vec<String> {
    model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .map(|t| t.name)
        .collect()
}

/// Writes `config.json` and `model.safetensors` (Hugging Face names and layout) into `dir`,
/// creating it. Each file is written under a temporary name and renamed when complete, so an
/// interrupted export never leaves a half-written file under the final name.
pub fn save_hf_dir(
    model: &LlamaForCausalLM,
    config: &LlamaConfig,
    dir: impl AsRef<Path>,
) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let config_json =
        serde_json::to_string_pretty(&config.to_hf_json()).map_err(|e| ModelError::Config {
            field: "config".into(),
            reason: e.to_string(),
        })?;
    write_hf_files(dir, &config_json, model, None)
}

/// Writes `config_json` as `config.json` and `model`'s weights as `model.safetensors` (PyTorch
/// layout, `remap` = `(pattern, replacement)` on the keys) into the existing `dir`, each file
/// atomically.
pub(crate) fn write_hf_files<M: Module>(
    dir: &Path,
    config_json: &str,
    model: &M,
    remap: Option<(&str, &str)>,
) -> Result<()> {
    let config_path = dir.join(CONFIG_FILE);
    saferlhf_core::write_atomic(&config_path, config_json.as_bytes())?;
    write_atomic_with(&dir.join(WEIGHTS_FILE), |tmp| {
        let mut store = SafetensorsStore::from_file(tmp)
            .with_to_adapter(BurnToPyTorchAdapter)
            .skip_enum_variants(true)
            .metadata("format", "pt");
        if let Some((pattern, replacement)) = remap {
            store = store.with_key_remapping(pattern, replacement);
        }
        model
            .save_into(&mut store)
            .map_err(|e| ModelError::Format {
                path: tmp.to_path_buf(),
                format: "safetensors",
                reason: e.to_string(),
            })?;
        // burn-store creates its file owner-only (0600); give the weights the same permissions
        // as the config written beside them (the user's umask), as any other export would have.
        let permissions = std::fs::metadata(&config_path)
            .map_err(|e| ModelError::io(&config_path, e))?
            .permissions();
        std::fs::set_permissions(tmp, permissions).map_err(|e| ModelError::io(tmp, e))
    })
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(8).map(|i| format!("`{i}`")).collect();
    let more = items.len().saturating_sub(8);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

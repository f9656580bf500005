//! P-SACPO: linear merging of two policies' weights (P-SACPO, Wachi et al. 2024; mergekit's `linear`).
//!
//! ```text
//! θ_q = (1 - q) · θ_a + q · θ_b,   q ∈ [0, 1]
//! ```
//!
//! elementwise over every tensor of two Hugging Face model directories of the same
//! architecture (equal `config.json`, the same tensor names, shapes and dtypes). In P-SACPO,
//! `a` is the helpfulness-aligned model and `b` the SACPO model trained with a conservatively
//! small β/λ: q dials the safety level in between without retraining (the paper uses q ∈ {0.25,
//! 0.5, 0.75}).
//!
//! Each value is computed in f64 from the stored values and rounded once to the stored dtype
//! (f32, f16 or bf16). The endpoints are exact: q = 0 copies `a`'s bytes and q = 1 `b`'s. The
//! output directory holds `model.safetensors` (one file, even when the inputs are sharded),
//! every side file of `a` (`config.json`, the tokenizer, `saferlhf.json`, ...) and
//! `merge.json` (the inputs and q); it is written under a temporary name and renamed when
//! complete.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use saferlhf_model::weights::{CONFIG_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::Serialize;

use crate::error::{Result, TrainError};

/// The file in a merged directory that records how it was made.
pub const MERGE_FILE: &str = "merge.json";

/// What [`merge_models`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergeSummary {
    /// The model weighted by 1 - q.
    pub a: PathBuf,
    /// The model weighted by q.
    pub b: PathBuf,
    /// The weight of `b`.
    pub q: f64,
    /// The merged model directory.
    pub out: PathBuf,
    /// Tensors merged.
    pub tensors: usize,
    /// Parameters (elements) merged.
    pub parameters: usize,
}

/// The first key path where two JSON values differ (`""` for the root).
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => first_difference(p, q, &path),
                    _ => Some(path),
                }
            })
        }
        _ if a != b => Some(at.to_string()),
        _ => None,
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::checkpoint(path, e.to_string()))
}

/// Decodes little-endian values of a float dtype to f64.
fn decode(dtype: Dtype, bytes: &[u8]) -> Vec<f64> {
    match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        _ => Vec::new(),
    }
}

/// Encodes f64 values to `dtype` (rounding to nearest), little-endian.
fn encode(dtype: Dtype, values: &[f64]) -> Vec<u8> {
    match dtype {
        Dtype::F32 => values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect(),
        Dtype::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f64(v).to_le_bytes())
            .collect(),
        _ => values
            .iter()
            .flat_map(|&v| half::bf16::from_f64(v).to_le_bytes())
            .collect(),
    }
}

// ANCHOR: merge_tensor
/// `(1 - q) · a + q · b` of one tensor's stored bytes (q = 0 and q = 1 return an input).
fn merge_tensor(dtype: Dtype, a: &[u8], b: &[u8], q: f64) -> Vec<u8> {
    if q == 0.0 {
        return a.to_vec();
    }
    if q == 1.0 {
        return b.to_vec();
    }
    let (xa, xb) = (decode(dtype, a), decode(dtype, b));
    let merged: Vec<f64> = xa
        .iter()
        .zip(&xb)
        .map(|(&x, &y)| (1.0 - q) * x + q * y)
        .collect();
    encode(dtype, &merged)
}
// ANCHOR_END: merge_tensor

/// Merges the models in `a` and `b` with weight `q` on `b` into a new directory `out` (see the
/// module docs). `out` must not exist unless `overwrite`. Errors name the first differing
/// `config.json` key, or the first tensor missing from one side or differing in shape or dtype.
pub fn merge_models(
    a: &Path,
    b: &Path,
    q: f64,
    out: &Path,
    overwrite: bool,
) -> Result<MergeSummary> {
    if !(q.is_finite() && (0.0..=1.0).contains(&q)) {
        return Err(TrainError::config(
            "q",
            format!("must lie in [0, 1], got {q}"),
        ));
    }
    if out.exists() && !overwrite {
        return Err(TrainError::config(
            "out",
            format!(
                "{} already exists (pass --force to replace it)",
                out.display()
            ),
        ));
    }
    // Same architecture: equal config.json.
    let (ca, cb) = (
        read_json(&a.join(CONFIG_FILE))?,
        read_json(&b.join(CONFIG_FILE))?,
    );
    if let Some(key) = first_difference(&ca, &cb, "") {
        return Err(TrainError::checkpoint(
            b,
            format!(
                "{CONFIG_FILE} differs from {}'s at `{key}`: the models must share one \
                 architecture",
                a.display()
            ),
        ));
    }

    // Every tensor of both sides, by name.
    let read = |dir: &Path| -> Result<Vec<Vec<u8>>> {
        saferlhf_model::weights::weight_files(dir)?
            .iter()
            .map(|f| std::fs::read(f).map_err(|e| TrainError::io(f, e)))
            .collect()
    };
    let (bytes_a, bytes_b) = (read(a)?, read(b)?);
    let (ta, tb) = (tensor_index(a, &bytes_a)?, tensor_index(b, &bytes_b)?);
    for name in ta.keys().chain(tb.keys()) {
        let (Some(x), Some(y)) = (ta.get(name), tb.get(name)) else {
            let (has, lacks) = if ta.contains_key(name) {
                (a, b)
            } else {
                (b, a)
            };
            return Err(TrainError::checkpoint(
                lacks,
                format!("has no tensor `{name}` (which {} has)", has.display()),
            ));
        };
        if x.shape() != y.shape() || x.dtype() != y.dtype() {
            return Err(TrainError::checkpoint(
                b,
                format!(
                    "tensor `{name}` is {:?} {:?} here but {:?} {:?} in {}",
                    y.dtype(),
                    y.shape(),
                    x.dtype(),
                    x.shape(),
                    a.display()
                ),
            ));
        }
        if !matches!(x.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(TrainError::checkpoint(
                a,
                format!(
                    "tensor `{name}` is {:?}: only f32, f16 and bf16 merge",
                    x.dtype()
                ),
            ));
        }
    }

    // Merge every tensor.
    let mut merged: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(ta.len());
    let mut parameters = 0;
    for (name, x) in &ta {
        let y = &tb[name];
        parameters += x.shape().iter().product::<usize>();
        let data = merge_tensor(x.dtype(), x.data(), y.data(), q);
        merged.push((name.clone(), x.dtype(), x.shape().to_vec(), data));
    }

    // Written under a temporary name and renamed into place only when complete.
    saferlhf_core::write_dir_atomic(out, |tmp| write_merged(a, b, q, tmp, &merged))?;
    Ok(MergeSummary {
        a: a.to_path_buf(),
        b: b.to_path_buf(),
        q,
        out: out.to_path_buf(),
        tensors: merged.len(),
        parameters,
    })
}

/// Every tensor of a model's weight files, by name.
fn tensor_index<'a>(dir: &Path, files: &'a [Vec<u8>]) -> Result<BTreeMap<String, TensorView<'a>>> {
    let mut map = BTreeMap::new();
    for bytes in files {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| TrainError::checkpoint(dir, format!("bad safetensors: {e}")))?;
        for (name, view) in st.tensors() {
            map.insert(name, view);
        }
    }
    Ok(map)
}

/// Fills `dir` with the merged weights, `a`'s side files and `merge.json`.
fn write_merged(
    a: &Path,
    b: &Path,
    q: f64,
    dir: &Path,
    merged: &[(String, Dtype, Vec<usize>, Vec<u8>)],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    for entry in std::fs::read_dir(a).map_err(|e| TrainError::io(a, e))? {
        let entry = entry.map_err(|e| TrainError::io(a, e))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let is_weights = file.ends_with(".safetensors") || file == WEIGHTS_INDEX_FILE;
        if entry.path().is_file() && !is_weights && file != MERGE_FILE {
            std::fs::copy(entry.path(), dir.join(&file))
                .map_err(|e| TrainError::io(entry.path(), e))?;
        }
    }
    let views = merged
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| TrainError::checkpoint(dir, format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let weights = dir.join(WEIGHTS_FILE);
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), &weights)
        .map_err(|e| TrainError::checkpoint(&weights, e.to_string()))?;
    let record = serde_json::json!({
        "method": "linear",
        "formula": "(1 - q) * a + q * b",
        "a": a.display().to_string(),
        "b": b.display().to_string(),
        "q": q,
    });
    let path = dir.join(MERGE_FILE);
    let text = serde_json::to_string_pretty(&record)
        .map_err(|e| TrainError::checkpoint(&path, format!("cannot encode the record: {e}")))?;
    Ok(saferlhf_core::write_atomic(&path, text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_tensors_merge_in_f64_and_round_once() {
        let bf = |v: &[f32]| -> Vec<u8> {
            v.iter()
                .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
                .collect()
        };
        // (1 - 0.25) · [1, 2, -4] + 0.25 · [3, 4, 4] = [1.5, 2.5, -2], all exact in bf16.
        let m = merge_tensor(
            Dtype::BF16,
            &bf(&[1.0, 2.0, -4.0]),
            &bf(&[3.0, 4.0, 4.0]),
            0.25,
        );
        assert_eq!(m, bf(&[1.5, 2.5, -2.0]));
        let h: Vec<u8> = [1.0f32, 3.0]
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect();
        let z = vec![0u8; 4];
        let m = merge_tensor(Dtype::F16, &h, &z, 0.5);
        assert_eq!(decode(Dtype::F16, &m), vec![0.5, 1.5]);
        // The ends return the inputs' bytes, NaN payloads and signed zeros included.
        let nan = f32::NAN.to_le_bytes().to_vec();
        let neg0 = (-0.0f32).to_le_bytes().to_vec();
        assert_eq!(merge_tensor(Dtype::F32, &neg0, &nan, 0.0), neg0);
        assert_eq!(merge_tensor(Dtype::F32, &neg0, &nan, 1.0), nan);
    }

    #[test]
    fn config_differences_name_the_first_key() {
        let a = serde_json::json!({"hidden_size": 32, "rope": {"theta": 1.0}});
        let b = serde_json::json!({"hidden_size": 32, "rope": {"theta": 2.0}});
        assert_eq!(first_difference(&a, &b, ""), Some("rope.theta".into()));
        assert_eq!(first_difference(&a, &a, ""), None);
    }
}

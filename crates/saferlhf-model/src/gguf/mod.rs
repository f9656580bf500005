//! A small, defensive reader for GGUF files (llama.cpp's model format), plus checksum helpers and the
//! q/k row (un)permutation that llama.cpp applies to Llama attention weights.
//!
//! [`GgufFile::open`] memory-maps a file and parses the GGUF v2/v3 header: magic, version, metadata
//! key/values (every value type, arrays included), tensor infos and the data-section alignment
//! (`general.alignment`, default 32). Every offset, length and count read from the file is checked
//! against the bytes actually present before it is used, so a truncated or corrupt file gives a
//! [`ModelError::Format`] naming what is wrong, never a panic or a huge allocation.
//! [`GgufFile::tensor_f32`] dequantizes one tensor (F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1,
//! Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) to `f32` and returns its shape in PyTorch / Hugging Face
//! order (GGUF lists dimensions fastest-varying first, so the shape is the GGUF `ne` list
//! reversed).
//!
//! Why not a crate: the GGUF crates on crates.io were reviewed and none fits. `ggus` 0.5 panics on
//! corrupt lengths (`Layout::array(..).unwrap()`) and reads enum tags straight from file bytes with
//! `read_unaligned` (undefined behaviour for unknown values); `gguf-rs` 0.1 calls `unwrap` on file
//! data throughout; `gguf` 0.1 (nom-based) only parses, with `String` errors and no tensor access.
//! None of them dequantizes. The format is small, so a reader whose every read is bounds-checked
//! (and whose errors name the key or tensor at fault) is the safer choice.

mod checksum;
mod dequant;
mod parse;
mod qk;
mod tensor;
#[cfg(test)]
pub(crate) mod tests;
mod value;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use rayon::prelude::*;

use crate::error::{ModelError, Result};

pub use checksum::*;
use dequant::*;
use parse::*;
pub use qk::*;
pub use tensor::*;
pub use value::*;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Data-section alignment used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// Deepest nesting of metadata arrays accepted (real files use at most 1; this bounds recursion).
const MAX_ARRAY_NESTING: usize = 8;
/// Smallest possible encoding of one metadata key/value: key length (8) + type (4) + a 1-byte value.
const MIN_KV_BYTES: usize = 13;
/// Smallest possible tensor info: name length (8) + n_dims (4) + type (4) + offset (8).
const MIN_TENSOR_INFO_BYTES: usize = 24;
/// Elements dequantized per rayon task (rounded to whole blocks).
const TASK_ELEMS: usize = 32 * 1024;

/// The bytes a [`GgufFile`] reads from.
enum Backing {
    Mmap(Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file: metadata, tensor directory and (memory-mapped) tensor data.
pub struct GgufFile {
    path: PathBuf,
    backing: Backing,
    version: u32,
    metadata: Vec<(String, GgufValue)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<GgufTensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_start: usize,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_entries", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps and parses the GGUF file at `path`.
    ///
    /// The file must not be modified while the returned value is alive (the usual mmap caveat).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
        let len = file.metadata().map_err(|e| ModelError::io(path, e))?.len();
        if len < 4 {
            // Also avoids mapping an empty file, which some platforms refuse.
            return Err(format_error(
                path,
                format!("file is {len} bytes, too short for the GGUF magic"),
            ));
        }
        // SAFETY: the map is read-only; like every mmap-based loader we rely on the file not being
        // truncated or rewritten while it is open (documented on this function).
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
        Self::parse(path.to_path_buf(), Backing::Mmap(mmap))
    }

    /// Parses a GGUF image held in memory; `name` is the path reported in errors.
    pub fn from_bytes(bytes: Vec<u8>, name: impl Into<PathBuf>) -> Result<Self> {
        Self::parse(name.into(), Backing::Owned(bytes))
    }

    fn parse(path: PathBuf, backing: Backing) -> Result<Self> {
        let header = parse_header(backing.bytes()).map_err(|reason| format_error(&path, reason))?;
        Ok(GgufFile {
            path,
            backing,
            version: header.version,
            metadata: header.metadata,
            metadata_index: header.metadata_index,
            tensors: header.tensors,
            tensor_index: header.tensor_index,
            alignment: header.alignment,
            data_start: header.data_start,
        })
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data-section alignment in bytes.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Byte offset of the data section in the file.
    pub fn data_start(&self) -> usize {
        self.data_start
    }

    /// Metadata entries in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &GgufValue)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The metadata value under `key`, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// Whether metadata `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.metadata_index.contains_key(key)
    }

    fn require(&self, key: &str) -> Result<&GgufValue> {
        self.get(key).ok_or_else(|| ModelError::Metadata {
            path: self.path.clone(),
            key: key.to_string(),
            reason: "missing".to_string(),
        })
    }

    fn wrong_type(&self, key: &str, value: &GgufValue, expected: &str) -> ModelError {
        ModelError::Metadata {
            path: self.path.clone(),
            key: key.to_string(),
            reason: format!("is {}, expected {expected}", value.describe()),
        }
    }

    /// Metadata `key` as an unsigned `T`: any non-negative integer whose value fits.
    fn get_unsigned<T: TryFrom<u64>>(&self, key: &str, expected: &str) -> Result<T> {
        let v = self.require(key)?;
        v.as_u64()
            .and_then(|x| T::try_from(x).ok())
            .ok_or_else(|| self.wrong_type(key, v, expected))
    }

    /// Metadata `key` as a `u32`; any integer type whose value fits is accepted.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get_unsigned(key, "an integer in u32 range")
    }

    /// Metadata `key` as a `u64`; any non-negative integer is accepted.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get_unsigned(key, "a non-negative integer")
    }

    /// Metadata `key` as a `usize`; any non-negative integer that fits is accepted.
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        self.get_unsigned(key, "an integer in usize range")
    }

    /// Metadata `key` as an `i64`; any integer type whose value fits is accepted.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        let v = self.require(key)?;
        v.as_i64()
            .ok_or_else(|| self.wrong_type(key, v, "an integer in i64 range"))
    }

    /// Metadata `key` as an `f32`; `f32` and `f64` values are accepted.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        v.as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| self.wrong_type(key, v, "a float"))
    }

    /// Metadata `key` as an `f64`; `f32` and `f64` values are accepted.
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| self.wrong_type(key, v, "a float"))
    }

    /// Metadata `key` as a `bool`.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            GgufValue::Bool(b) => Ok(*b),
            other => Err(self.wrong_type(key, other, "a bool")),
        }
    }

    /// Metadata `key` as a string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str()
            .ok_or_else(|| self.wrong_type(key, v, "a string"))
    }

    /// Metadata `key` as an array of any element type.
    pub fn get_array(&self, key: &str) -> Result<&[GgufValue]> {
        let v = self.require(key)?;
        v.as_array()
            .ok_or_else(|| self.wrong_type(key, v, "an array"))
    }

    /// Metadata `key` as an array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        let v = self.require(key)?;
        match v {
            GgufValue::Array {
                elem_type: GgufValueType::String,
                values,
            } => Ok(values.iter().filter_map(GgufValue::as_str).collect()),
            other => Err(self.wrong_type(key, other, "an array of strings")),
        }
    }

    /// Metadata `key` as an array of `i64`; arrays of any integer type are accepted.
    pub fn get_i64_array(&self, key: &str) -> Result<Vec<i64>> {
        let v = self.require(key)?;
        let values = v
            .as_array()
            .ok_or_else(|| self.wrong_type(key, v, "an array of integers"))?;
        values
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_i64().ok_or_else(|| ModelError::Metadata {
                    path: self.path.clone(),
                    key: key.to_string(),
                    reason: format!("element {i} is {}, expected an integer", x.describe()),
                })
            })
            .collect()
    }

    /// `general.architecture` (`"llama"`), the prefix of the model hyper-parameter keys.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    /// Whether the file holds a tensor called `name`.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.tensor_index.contains_key(name)
    }

    /// The info of tensor `name`.
    pub fn tensor_info(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.tensor_index
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.path.clone(),
                tensor: name.to_string(),
            })
    }

    /// The raw stored bytes of tensor `name` (quantized blocks as in the file).
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let info = self.tensor_info(name)?;
        let Some(n_bytes) = info.n_bytes else {
            return Err(self.unsupported(info));
        };
        let bytes = self.backing.bytes();
        // Ranges were validated at parse time; re-check rather than index so this cannot panic.
        usize::try_from(info.offset)
            .ok()
            .and_then(|o| self.data_start.checked_add(o))
            .and_then(|start| Some(start..start.checked_add(n_bytes)?))
            .and_then(|range| bytes.get(range))
            .ok_or_else(|| {
                format_error(
                    &self.path,
                    format!("tensor `{name}` data lies outside the file"),
                )
            })
    }

    fn unsupported(&self, info: &GgufTensorInfo) -> ModelError {
        ModelError::UnsupportedTensorType {
            path: self.path.clone(),
            tensor: info.name.clone(),
            dtype: info.dtype.to_string(),
        }
    }

    /// Tensor `name` dequantized to `f32`, with its shape in PyTorch / Hugging Face order.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let info = self.tensor_info(name)?;
        if !info.dtype.is_supported() {
            return Err(self.unsupported(info));
        }
        let bytes = self.tensor_bytes(name)?;
        let data = dequantize(info.dtype, bytes, info.n_elements).ok_or_else(|| {
            format_error(
                &self.path,
                format!(
                    "tensor `{name}`: {} bytes do not hold {} {} elements",
                    bytes.len(),
                    info.n_elements,
                    info.dtype
                ),
            )
        })?;
        Ok((info.shape(), data))
    }
}

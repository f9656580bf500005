//! A small, defensive reader for GGUF files (llama.cpp's model format), plus checksum helpers and the
//! q/k row (un)permutation that llama.cpp applies to Llama attention weights.
//!
//! [`GgufFile::open`] memory-maps a file and parses the GGUF v2/v3 header: magic, version, metadata
//! key/values (every value type, arrays included), tensor infos and the data-section alignment
//! (`general.alignment`, default 32). Every offset, length and count read from the file is checked
//! against the bytes actually present before it is used, so a truncated or corrupt file gives a
//! [`ModelError::Format`] naming what is wrong, never a panic or a huge allocation.
//! [`GgufFile::tensor_f32`] dequantizes one tensor (F32, F16, BF16, F64, Q4_0, Q4_1, Q8_0) to `f32`
//! and returns its shape in PyTorch / Hugging Face order (GGUF lists dimensions fastest-varying first,
//! so the shape is the GGUF `ne` list reversed).
//!
//! Why not a crate: the GGUF crates on crates.io were reviewed and none fits. `ggus` 0.5 panics on
//! corrupt lengths (`Layout::array(..).unwrap()`) and reads enum tags straight from file bytes with
//! `read_unaligned` (undefined behaviour for unknown values); `gguf-rs` 0.1 calls `unwrap` on file
//! data throughout; `gguf` 0.1 (nom-based) only parses, with `String` errors and no tensor access.
//! None of them dequantizes. The format is small, so a reader whose every read is bounds-checked
//! (and whose errors name the key or tensor at fault) is the safer choice.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use memmap2::Mmap;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

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

/// Type tag of a GGUF metadata value (`gguf_metadata_value_type` in the specification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgufValueType {
    /// `u8` (0).
    U8,
    /// `i8` (1).
    I8,
    /// `u16` (2).
    U16,
    /// `i16` (3).
    I16,
    /// `u32` (4).
    U32,
    /// `i32` (5).
    I32,
    /// `f32` (6).
    F32,
    /// `bool` stored as one byte, 0 or 1 (7).
    Bool,
    /// UTF-8 string with a `u64` length prefix (8).
    String,
    /// Homogeneous array: element type, `u64` count, elements (9).
    Array,
    /// `u64` (10).
    U64,
    /// `i64` (11).
    I64,
    /// `f64` (12).
    F64,
}

impl GgufValueType {
    /// Decodes a type tag, `None` for an unknown one.
    pub fn from_id(id: u32) -> Option<Self> {
        use GgufValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The tag's numeric id in the file.
    pub fn id(self) -> u32 {
        use GgufValueType::*;
        match self {
            U8 => 0,
            I8 => 1,
            U16 => 2,
            I16 => 3,
            U32 => 4,
            I32 => 5,
            F32 => 6,
            Bool => 7,
            String => 8,
            Array => 9,
            U64 => 10,
            I64 => 11,
            F64 => 12,
        }
    }

    /// Fewest bytes one value of this type occupies in the file (used to bound counts).
    fn min_encoded_len(self) -> usize {
        use GgufValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }
}

impl fmt::Display for GgufValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            GgufValueType::U8 => "u8",
            GgufValueType::I8 => "i8",
            GgufValueType::U16 => "u16",
            GgufValueType::I16 => "i16",
            GgufValueType::U32 => "u32",
            GgufValueType::I32 => "i32",
            GgufValueType::F32 => "f32",
            GgufValueType::Bool => "bool",
            GgufValueType::String => "string",
            GgufValueType::Array => "array",
            GgufValueType::U64 => "u64",
            GgufValueType::I64 => "i64",
            GgufValueType::F64 => "f64",
        };
        f.write_str(name)
    }
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    /// `u8` value.
    U8(u8),
    /// `i8` value.
    I8(i8),
    /// `u16` value.
    U16(u16),
    /// `i16` value.
    I16(i16),
    /// `u32` value.
    U32(u32),
    /// `i32` value.
    I32(i32),
    /// `f32` value.
    F32(f32),
    /// `bool` value.
    Bool(bool),
    /// UTF-8 string.
    String(String),
    /// Array whose elements all have type `elem_type`.
    Array {
        /// Type of every element.
        elem_type: GgufValueType,
        /// The elements, in file order.
        values: Vec<GgufValue>,
    },
    /// `u64` value.
    U64(u64),
    /// `i64` value.
    I64(i64),
    /// `f64` value.
    F64(f64),
}

impl GgufValue {
    /// The value's type tag.
    pub fn value_type(&self) -> GgufValueType {
        match self {
            GgufValue::U8(_) => GgufValueType::U8,
            GgufValue::I8(_) => GgufValueType::I8,
            GgufValue::U16(_) => GgufValueType::U16,
            GgufValue::I16(_) => GgufValueType::I16,
            GgufValue::U32(_) => GgufValueType::U32,
            GgufValue::I32(_) => GgufValueType::I32,
            GgufValue::F32(_) => GgufValueType::F32,
            GgufValue::Bool(_) => GgufValueType::Bool,
            GgufValue::String(_) => GgufValueType::String,
            GgufValue::Array { .. } => GgufValueType::Array,
            GgufValue::U64(_) => GgufValueType::U64,
            GgufValue::I64(_) => GgufValueType::I64,
            GgufValue::F64(_) => GgufValueType::F64,
        }
    }

    /// The value as an `i128` if it is an integer of any width (lossless), else `None`.
    fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            GgufValue::U8(v) => v.into(),
            GgufValue::I8(v) => v.into(),
            GgufValue::U16(v) => v.into(),
            GgufValue::I16(v) => v.into(),
            GgufValue::U32(v) => v.into(),
            GgufValue::I32(v) => v.into(),
            GgufValue::U64(v) => v.into(),
            GgufValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value as a `u64` if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_integer().and_then(|v| u64::try_from(v).ok())
    }

    /// The value as an `i64` if it is an integer of any width that fits.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_integer().and_then(|v| i64::try_from(v).ok())
    }

    /// The value as an `f64` if it is a float (`f32` or `f64`).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a string slice if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements if the value is an array.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array { values, .. } => Some(values),
            _ => None,
        }
    }

    /// A short description for error messages (`u32 3`, `string "llama"`, `array of 5 string`).
    fn describe(&self) -> String {
        match self {
            GgufValue::String(s) => {
                let short: String = s.chars().take(40).collect();
                let ellipsis = if short.len() < s.len() { "..." } else { "" };
                format!("string {short:?}{ellipsis}")
            }
            GgufValue::Array { elem_type, values } => {
                format!("array of {} {elem_type}", values.len())
            }
            GgufValue::Bool(v) => format!("bool {v}"),
            GgufValue::F32(v) => format!("f32 {v}"),
            GgufValue::F64(v) => format!("f64 {v}"),
            other => match other.as_integer() {
                Some(v) => format!("{} {v}", other.value_type()),
                None => other.value_type().to_string(),
            },
        }
    }
}

macro_rules! ggml_types {
    ($($variant:ident = $id:literal, $name:literal, $block:literal, $bytes:literal;)*) => {
        /// A ggml tensor data type (`ggml_type`), named as in ggml; `Unknown` keeps any other id.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum GgmlType {
            $(
                #[doc = concat!("ggml `", $name, "` (id ", $id, "): ", $block,
                                " elements per ", $bytes, "-byte block.")]
                $variant,
            )*
            /// A type id this reader does not know (its block size, hence its byte size, is unknown).
            Unknown(u32),
        }

        impl GgmlType {
            /// Decodes a ggml type id.
            pub fn from_id(id: u32) -> Self {
                match id {
                    $($id => GgmlType::$variant,)*
                    other => GgmlType::Unknown(other),
                }
            }

            /// The numeric ggml type id.
            pub fn id(self) -> u32 {
                match self {
                    $(GgmlType::$variant => $id,)*
                    GgmlType::Unknown(id) => id,
                }
            }

            /// ggml's name for the type (`"Q4_1"`), or `"unknown"`.
            pub fn name(self) -> &'static str {
                match self {
                    $(GgmlType::$variant => $name,)*
                    GgmlType::Unknown(_) => "unknown",
                }
            }

            /// `(elements per block, bytes per block)`, `None` for an unknown type.
            pub fn block_layout(self) -> Option<(usize, usize)> {
                match self {
                    $(GgmlType::$variant => Some(($block, $bytes)),)*
                    GgmlType::Unknown(_) => None,
                }
            }
        }
    };
}

// Block sizes from ggml-common.h (ids 4, 5, 31-33, 36-38 were removed from ggml).
ggml_types! {
    F32 = 0, "F32", 1, 4;
    F16 = 1, "F16", 1, 2;
    Q4_0 = 2, "Q4_0", 32, 18;
    Q4_1 = 3, "Q4_1", 32, 20;
    Q5_0 = 6, "Q5_0", 32, 22;
    Q5_1 = 7, "Q5_1", 32, 24;
    Q8_0 = 8, "Q8_0", 32, 34;
    Q8_1 = 9, "Q8_1", 32, 36;
    Q2_K = 10, "Q2_K", 256, 84;
    Q3_K = 11, "Q3_K", 256, 110;
    Q4_K = 12, "Q4_K", 256, 144;
    Q5_K = 13, "Q5_K", 256, 176;
    Q6_K = 14, "Q6_K", 256, 210;
    Q8_K = 15, "Q8_K", 256, 292;
    IQ2_XXS = 16, "IQ2_XXS", 256, 66;
    IQ2_XS = 17, "IQ2_XS", 256, 74;
    IQ3_XXS = 18, "IQ3_XXS", 256, 98;
    IQ1_S = 19, "IQ1_S", 256, 50;
    IQ4_NL = 20, "IQ4_NL", 32, 18;
    IQ3_S = 21, "IQ3_S", 256, 110;
    IQ2_S = 22, "IQ2_S", 256, 82;
    IQ4_XS = 23, "IQ4_XS", 256, 136;
    I8 = 24, "I8", 1, 1;
    I16 = 25, "I16", 1, 2;
    I32 = 26, "I32", 1, 4;
    I64 = 27, "I64", 1, 8;
    F64 = 28, "F64", 1, 8;
    IQ1_M = 29, "IQ1_M", 256, 56;
    BF16 = 30, "BF16", 1, 2;
    TQ1_0 = 34, "TQ1_0", 256, 54;
    TQ2_0 = 35, "TQ2_0", 256, 66;
    MXFP4 = 39, "MXFP4", 32, 17;
}

impl GgmlType {
    /// Whether [`GgufFile::tensor_f32`] can decode this type.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            GgmlType::F32
                | GgmlType::F16
                | GgmlType::BF16
                | GgmlType::F64
                | GgmlType::Q4_0
                | GgmlType::Q4_1
                | GgmlType::Q8_0
        )
    }
}

impl fmt::Display for GgmlType {
    /// Formats as `Q6_K (14)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.id())
    }
}

/// Where one tensor lives in a GGUF file and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTensorInfo {
    name: String,
    ggml_dims: Vec<usize>,
    dtype: GgmlType,
    offset: u64,
    n_elements: usize,
    n_bytes: Option<usize>,
}

impl GgufTensorInfo {
    /// Tensor name (`blk.0.attn_q.weight`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Dimensions in GGUF order: `ne[0]` (fastest-varying) first.
    pub fn ggml_dims(&self) -> &[usize] {
        &self.ggml_dims
    }

    /// Shape in PyTorch / Hugging Face row-major order (the GGUF dimensions reversed).
    pub fn shape(&self) -> Vec<usize> {
        self.ggml_dims.iter().rev().copied().collect()
    }

    /// Storage data type.
    pub fn dtype(&self) -> GgmlType {
        self.dtype
    }

    /// Offset of the data relative to the start of the data section.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of elements (product of the dimensions).
    pub fn n_elements(&self) -> usize {
        self.n_elements
    }

    /// Size of the stored data in bytes, `None` when the type is unknown.
    pub fn n_bytes(&self) -> Option<usize> {
        self.n_bytes
    }
}

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

    /// Metadata `key` as a `u32`; any integer type whose value fits is accepted.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.require(key)?;
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| self.wrong_type(key, v, "an integer in u32 range"))
    }

    /// Metadata `key` as a `u64`; any non-negative integer is accepted.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_u64()
            .ok_or_else(|| self.wrong_type(key, v, "a non-negative integer"))
    }

    /// Metadata `key` as a `usize`; any non-negative integer that fits is accepted.
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        let v = self.require(key)?;
        v.as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .ok_or_else(|| self.wrong_type(key, v, "an integer in usize range"))
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

fn format_error(path: &Path, reason: String) -> ModelError {
    ModelError::Format {
        path: path.to_path_buf(),
        format: "GGUF",
        reason,
    }
}

/// Everything [`parse_header`] extracts.
struct Header {
    version: u32,
    metadata: Vec<(String, GgufValue)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<GgufTensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_start: usize,
}

/// Adds context in front of a parse error message, lazily.
trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> std::result::Result<T, String>;
}

impl<T> Context<T> for std::result::Result<T, String> {
    fn ctx(self, what: impl FnOnce() -> String) -> std::result::Result<T, String> {
        self.map_err(|e| format!("{}: {e}", what()))
    }
}

/// A bounds-checked little-endian reader over the file bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or_else(|| {
                format!(
                    "unexpected end of file at byte {}: need {n} bytes, {} left",
                    self.pos,
                    self.remaining()
                )
            })?;
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    /// Reads a `u64` count and checks that `count` items of at least `min_size` bytes fit in what is
    /// left, so a corrupt count can neither allocate nor loop for long.
    fn count(&mut self, min_size: usize, what: &str) -> std::result::Result<usize, String> {
        let at = self.pos;
        let count = self.u64()?;
        let fits = self.remaining() / min_size.max(1);
        match usize::try_from(count) {
            Ok(n) if n <= fits => Ok(n),
            _ => Err(format!(
                "{what} count {count} (at byte {at}) cannot fit in the {} bytes left",
                self.remaining()
            )),
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let at = self.pos;
        let len = self.u64()?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.remaining())
            .ok_or_else(|| {
                format!(
                    "string length {len} (at byte {at}) exceeds the {} bytes left",
                    self.remaining()
                )
            })?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| format!("string at byte {at} is not valid UTF-8 ({e})"))
    }

    fn value_type(&mut self) -> std::result::Result<GgufValueType, String> {
        let at = self.pos;
        let id = self.u32()?;
        GgufValueType::from_id(id)
            .ok_or_else(|| format!("unknown metadata value type {id} at byte {at}"))
    }

    fn value(&mut self, ty: GgufValueType, depth: usize) -> std::result::Result<GgufValue, String> {
        Ok(match ty {
            GgufValueType::U8 => GgufValue::U8(self.u8()?),
            GgufValueType::I8 => GgufValue::I8(i8::from_le_bytes(self.array()?)),
            GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(self.array()?)),
            GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(self.array()?)),
            GgufValueType::U32 => GgufValue::U32(self.u32()?),
            GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(self.array()?)),
            GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(self.array()?)),
            GgufValueType::U64 => GgufValue::U64(self.u64()?),
            GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(self.array()?)),
            GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(self.array()?)),
            GgufValueType::Bool => {
                let at = self.pos;
                match self.u8()? {
                    0 => GgufValue::Bool(false),
                    1 => GgufValue::Bool(true),
                    b => return Err(format!("bool at byte {at} has value {b}, not 0 or 1")),
                }
            }
            GgufValueType::String => GgufValue::String(self.string()?),
            GgufValueType::Array => {
                if depth >= MAX_ARRAY_NESTING {
                    return Err(format!(
                        "arrays nested more than {MAX_ARRAY_NESTING} deep at byte {}",
                        self.pos
                    ));
                }
                let elem_type = self.value_type()?;
                let n = self.count(elem_type.min_encoded_len(), "array element")?;
                let mut values = Vec::with_capacity(n);
                for i in 0..n {
                    values.push(
                        self.value(elem_type, depth + 1)
                            .ctx(|| format!("array element {i}"))?,
                    );
                }
                GgufValue::Array { elem_type, values }
            }
        })
    }
}

fn parse_header(buf: &[u8]) -> std::result::Result<Header, String> {
    let mut cur = Cursor { buf, pos: 0 };
    let magic: [u8; 4] = cur
        .array()
        .map_err(|_| format!("file is {} bytes, too short for the GGUF magic", buf.len()))?;
    if magic != GGUF_MAGIC {
        return Err(format!(
            "bad magic {:?} (expected \"GGUF\")",
            String::from_utf8_lossy(&magic)
        ));
    }
    let version = cur.u32().ctx(|| "version".into())?;
    match version {
        2 | 3 => {}
        1 => return Err("GGUF version 1 is not supported (only 2 and 3)".into()),
        v if (1..=3).contains(&v.swap_bytes()) => {
            return Err(format!(
                "big-endian GGUF (version {}) is not supported",
                v.swap_bytes()
            ));
        }
        v => return Err(format!("unsupported GGUF version {v} (only 2 and 3)")),
    }
    let n_tensors = cur.u64().ctx(|| "tensor count".into())?;
    let n_kv = cur
        .count(MIN_KV_BYTES, "metadata")
        .ctx(|| "header".into())?;
    // The tensor infos follow the metadata, so this bound is loose; it is tightened below.
    let n_tensors = usize::try_from(n_tensors)
        .ok()
        .filter(|&n| n <= cur.remaining() / MIN_TENSOR_INFO_BYTES)
        .ok_or_else(|| {
            format!(
                "header: tensor count {n_tensors} cannot fit in the {} bytes left",
                cur.remaining()
            )
        })?;

    let mut metadata = Vec::with_capacity(n_kv);
    let mut metadata_index = HashMap::with_capacity(n_kv);
    for i in 0..n_kv {
        let key = cur.string().ctx(|| format!("key of metadata entry {i}"))?;
        let ty = cur
            .value_type()
            .ctx(|| format!("metadata `{key}` (entry {i})"))?;
        let value = cur
            .value(ty, 0)
            .ctx(|| format!("metadata `{key}` (entry {i})"))?;
        if metadata_index.insert(key.clone(), i).is_some() {
            return Err(format!("duplicate metadata key `{key}`"));
        }
        metadata.push((key, value));
    }

    let alignment = match metadata_index.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(&i) => match metadata[i].1 {
            GgufValue::U32(a) if a.is_power_of_two() => u64::from(a),
            ref other => {
                return Err(format!(
                    "metadata `general.alignment` is {}, expected a power of two as u32",
                    other.describe()
                ));
            }
        },
    };

    if n_tensors > cur.remaining() / MIN_TENSOR_INFO_BYTES {
        return Err(format!(
            "tensor count {n_tensors} cannot fit in the {} bytes left after the metadata",
            cur.remaining()
        ));
    }
    let mut infos = Vec::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let name = cur.string().ctx(|| format!("name of tensor {i}"))?;
        let info = parse_tensor_info(&mut cur, name.clone(), alignment)
            .ctx(|| format!("tensor `{name}` (entry {i})"))?;
        infos.push(info);
    }
    let mut tensor_index = HashMap::with_capacity(n_tensors);
    for (i, t) in infos.iter().enumerate() {
        if tensor_index.insert(t.name.clone(), i).is_some() {
            return Err(format!("duplicate tensor name `{}`", t.name));
        }
    }

    let align = usize::try_from(alignment).map_err(|_| "alignment too large".to_string())?;
    let data_start = cur
        .pos
        .checked_next_multiple_of(align)
        .ok_or_else(|| "data section offset overflows".to_string())?;
    for t in &infos {
        let start = usize::try_from(t.offset)
            .ok()
            .and_then(|o| data_start.checked_add(o));
        let end = match t.n_bytes {
            Some(n) => start.and_then(|s| s.checked_add(n)),
            None => start,
        };
        match end {
            Some(end) if end <= buf.len() => {}
            _ => {
                return Err(format!(
                    "tensor `{}` data (offset {} + {} bytes after the data section at byte \
                     {data_start}) runs past the end of the {}-byte file",
                    t.name,
                    t.offset,
                    t.n_bytes
                        .map_or_else(|| "unknown".to_string(), |n| n.to_string()),
                    buf.len()
                ));
            }
        }
    }

    Ok(Header {
        version,
        metadata,
        metadata_index,
        tensors: infos,
        tensor_index,
        alignment,
        data_start,
    })
}

fn parse_tensor_info(
    cur: &mut Cursor<'_>,
    name: String,
    alignment: u64,
) -> std::result::Result<GgufTensorInfo, String> {
    let n_dims = cur.u32().ctx(|| "dimension count".into())?;
    let n_dims = usize::try_from(n_dims)
        .ok()
        .filter(|&n| n <= MAX_DIMS)
        .ok_or_else(|| format!("{n_dims} dimensions (at most {MAX_DIMS} supported)"))?;
    let mut ggml_dims = Vec::with_capacity(n_dims);
    for d in 0..n_dims {
        let ne = cur.u64().ctx(|| format!("dimension {d}"))?;
        let ne = usize::try_from(ne).map_err(|_| format!("dimension {d} = {ne} is too large"))?;
        ggml_dims.push(ne);
    }
    let dtype = GgmlType::from_id(cur.u32().ctx(|| "type".into())?);
    let offset = cur.u64().ctx(|| "data offset".into())?;
    if !offset.is_multiple_of(alignment) {
        return Err(format!(
            "data offset {offset} is not a multiple of the alignment {alignment}"
        ));
    }
    let n_elements = ggml_dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("element count of dimensions {ggml_dims:?} overflows"))?;
    let n_bytes = match dtype.block_layout() {
        None => None,
        Some((block, block_bytes)) => {
            let ne0 = ggml_dims.first().copied().unwrap_or(1);
            if !ne0.is_multiple_of(block) {
                return Err(format!(
                    "first dimension {ne0} is not a multiple of the {dtype} block size {block}"
                ));
            }
            Some(
                (n_elements / block)
                    .checked_mul(block_bytes)
                    .ok_or_else(|| format!("byte size of dimensions {ggml_dims:?} overflows"))?,
            )
        }
    };
    Ok(GgufTensorInfo {
        name,
        ggml_dims,
        dtype,
        offset,
        n_elements,
        n_bytes,
    })
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// Dequantizes `n` elements of `dtype` stored in `bytes`. `None` if the type is not supported or
/// `bytes` has the wrong length for `n` elements.
fn dequantize(dtype: GgmlType, bytes: &[u8], n: usize) -> Option<Vec<f32>> {
    let (block, block_bytes) = dtype.block_layout()?;
    if !n.is_multiple_of(block) || (n / block).checked_mul(block_bytes)? != bytes.len() {
        return None;
    }
    let decode: fn(&[u8], &mut [f32]) = match dtype {
        GgmlType::F32 => |b, o| o[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        GgmlType::F16 => |b, o| o[0] = f16_at(b, 0),
        GgmlType::BF16 => |b, o| o[0] = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
        GgmlType::F64 => |b, o| {
            o[0] = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
        },
        // block_q8_0: f16 d, 32 x i8 q; x = d * q.
        GgmlType::Q8_0 => |b, o| {
            let d = f16_at(b, 0);
            for (x, &q) in o.iter_mut().zip(&b[2..34]) {
                *x = d * f32::from(q as i8);
            }
        },
        // block_q4_0: f16 d, 16 bytes; element j < 16 is the low nibble of byte j, j + 16 the high
        // one; x = d * (q - 8).
        GgmlType::Q4_0 => |b, o| {
            let d = f16_at(b, 0);
            let (lo, hi) = o.split_at_mut(16);
            for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&b[2..18]) {
                *l = d * (f32::from(q & 0x0F) - 8.0);
                *h = d * (f32::from(q >> 4) - 8.0);
            }
        },
        // block_q4_1: f16 d, f16 m, 16 bytes of nibbles as in Q4_0; x = d * q + m.
        GgmlType::Q4_1 => |b, o| {
            let d = f16_at(b, 0);
            let m = f16_at(b, 2);
            let (lo, hi) = o.split_at_mut(16);
            for ((l, h), &q) in lo.iter_mut().zip(hi.iter_mut()).zip(&b[4..20]) {
                *l = d * f32::from(q & 0x0F) + m;
                *h = d * f32::from(q >> 4) + m;
            }
        },
        _ => return None,
    };
    let mut out = vec![0f32; n];
    let blocks_per_task = (TASK_ELEMS / block).max(1);
    out.par_chunks_mut(block * blocks_per_task)
        .zip(bytes.par_chunks(block_bytes * blocks_per_task))
        .for_each(|(o, b)| {
            for (ob, bb) in o.chunks_exact_mut(block).zip(b.chunks_exact(block_bytes)) {
                decode(bb, ob);
            }
        });
    Some(out)
}

/// Checks the arguments of [`permute_qk`] / [`unpermute_qk`]; returns the half head dimension.
fn check_qk(data: &[f32], [rows, cols]: [usize; 2], n_heads: usize, op: &str) -> Result<usize> {
    if n_heads == 0 || !rows.is_multiple_of(2 * n_heads) {
        return Err(ModelError::WeightMismatch(format!(
            "{op}: {rows} rows cannot be split into {n_heads} heads of even size"
        )));
    }
    if rows.checked_mul(cols) != Some(data.len()) {
        return Err(ModelError::WeightMismatch(format!(
            "{op}: shape [{rows}, {cols}] does not match {} values",
            data.len()
        )));
    }
    Ok(rows / n_heads / 2)
}

/// Applies llama.cpp's q/k row permutation (Hugging Face rotate-half layout → GGUF interleaved).
///
/// `data` is a row-major `[rows, cols]` weight (`rows = n_heads * head_dim`); for k pass the number of
/// KV heads. Equivalent to numpy's `w.reshape(n_heads, 2, head_dim / 2, cols).swapaxes(1, 2)`.
pub fn permute_qk(data: &mut [f32], shape: [usize; 2], n_heads: usize) -> Result<()> {
    let half = check_qk(data, shape, n_heads, "permute_qk")?;
    let cols = shape[1];
    let src = data.to_vec();
    for h in 0..n_heads {
        for i in 0..half {
            for j in 0..2 {
                let dst_row = h * 2 * half + i * 2 + j;
                let src_row = h * 2 * half + j * half + i;
                data[dst_row * cols..(dst_row + 1) * cols]
                    .copy_from_slice(&src[src_row * cols..(src_row + 1) * cols]);
            }
        }
    }
    Ok(())
}

/// Undoes llama.cpp's q/k row permutation (GGUF interleaved → Hugging Face rotate-half layout).
///
/// `data` is a row-major `[rows, cols]` weight (`rows = n_heads * head_dim`); for k pass the number of
/// KV heads. Equivalent to numpy's `w.reshape(n_heads, head_dim / 2, 2, cols).swapaxes(1, 2)`.
pub fn unpermute_qk(data: &mut [f32], shape: [usize; 2], n_heads: usize) -> Result<()> {
    let half = check_qk(data, shape, n_heads, "unpermute_qk")?;
    let cols = shape[1];
    let src = data.to_vec();
    for h in 0..n_heads {
        for i in 0..half {
            for j in 0..2 {
                let src_row = h * 2 * half + i * 2 + j;
                let dst_row = h * 2 * half + j * half + i;
                data[dst_row * cols..(dst_row + 1) * cols]
                    .copy_from_slice(&src[src_row * cols..(src_row + 1) * cols]);
            }
        }
    }
    Ok(())
}

/// The lowercase hex sha256 of the file at `path`.
pub fn sha256_file(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let mut file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ModelError::io(path, e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks that the file at `path` has sha256 `expected_hex` (case-insensitive), else
/// [`ModelError::Checksum`].
pub fn verify_sha256(path: impl AsRef<Path>, expected_hex: &str) -> Result<()> {
    let path = path.as_ref();
    let actual = sha256_file(path)?;
    let expected = expected_hex.trim().to_ascii_lowercase();
    if actual == expected {
        Ok(())
    } else {
        Err(ModelError::Checksum {
            path: path.to_path_buf(),
            expected,
            actual,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal GGUF writer for tests: metadata, tensors (raw bytes) and alignment.
    pub(crate) struct Writer {
        version: u32,
        alignment: usize,
        kvs: Vec<(String, GgufValue)>,
        tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
    }

    impl Writer {
        pub(crate) fn new() -> Self {
            Writer {
                version: 3,
                alignment: 32,
                kvs: Vec::new(),
                tensors: Vec::new(),
            }
        }

        pub(crate) fn kv(mut self, key: &str, value: GgufValue) -> Self {
            self.kvs.push((key.to_string(), value));
            self
        }

        pub(crate) fn tensor(mut self, name: &str, dims: &[u64], ty: u32, data: Vec<u8>) -> Self {
            self.tensors
                .push((name.to_string(), dims.to_vec(), ty, data));
            self
        }

        fn put_str(buf: &mut Vec<u8>, s: &str) {
            buf.extend((s.len() as u64).to_le_bytes());
            buf.extend(s.as_bytes());
        }

        fn put_value(buf: &mut Vec<u8>, v: &GgufValue) {
            match v {
                GgufValue::U8(x) => buf.push(*x),
                GgufValue::I8(x) => buf.extend(x.to_le_bytes()),
                GgufValue::U16(x) => buf.extend(x.to_le_bytes()),
                GgufValue::I16(x) => buf.extend(x.to_le_bytes()),
                GgufValue::U32(x) => buf.extend(x.to_le_bytes()),
                GgufValue::I32(x) => buf.extend(x.to_le_bytes()),
                GgufValue::F32(x) => buf.extend(x.to_le_bytes()),
                GgufValue::Bool(x) => buf.push(u8::from(*x)),
                GgufValue::String(s) => Self::put_str(buf, s),
                GgufValue::Array { elem_type, values } => {
                    buf.extend(elem_type.id().to_le_bytes());
                    buf.extend((values.len() as u64).to_le_bytes());
                    for x in values {
                        Self::put_value(buf, x);
                    }
                }
                GgufValue::U64(x) => buf.extend(x.to_le_bytes()),
                GgufValue::I64(x) => buf.extend(x.to_le_bytes()),
                GgufValue::F64(x) => buf.extend(x.to_le_bytes()),
            }
        }

        fn pad(buf: &mut Vec<u8>, align: usize) {
            while !buf.len().is_multiple_of(align) {
                buf.push(0);
            }
        }

        /// Serializes; the last tensor's data ends exactly at the end of the file.
        pub(crate) fn build(&self) -> Vec<u8> {
            let mut buf = Vec::new();
            buf.extend(b"GGUF");
            buf.extend(self.version.to_le_bytes());
            buf.extend((self.tensors.len() as u64).to_le_bytes());
            buf.extend((self.kvs.len() as u64).to_le_bytes());
            for (k, v) in &self.kvs {
                Self::put_str(&mut buf, k);
                buf.extend(v.value_type().id().to_le_bytes());
                Self::put_value(&mut buf, v);
            }
            let mut offset = 0usize;
            for (name, dims, ty, data) in &self.tensors {
                Self::put_str(&mut buf, name);
                buf.extend((dims.len() as u32).to_le_bytes());
                for d in dims {
                    buf.extend(d.to_le_bytes());
                }
                buf.extend(ty.to_le_bytes());
                buf.extend((offset as u64).to_le_bytes());
                offset = (offset + data.len()).next_multiple_of(self.alignment);
            }
            for (i, (_, _, _, data)) in self.tensors.iter().enumerate() {
                Self::pad(&mut buf, self.alignment);
                buf.extend(data);
                if i + 1 == self.tensors.len() {
                    break;
                }
            }
            if self.tensors.is_empty() {
                Self::pad(&mut buf, self.alignment);
            }
            buf
        }
    }

    fn f16_bytes(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_bits().to_le_bytes()
    }

    pub(crate) fn strs(xs: &[&str]) -> GgufValue {
        GgufValue::Array {
            elem_type: GgufValueType::String,
            values: xs
                .iter()
                .map(|s| GgufValue::String(s.to_string()))
                .collect(),
        }
    }

    /// Q8_0 block: d = 0.5, q = -16..16 → values 0.5 * q.
    fn q8_0_block() -> (Vec<u8>, Vec<f32>) {
        let mut b = f16_bytes(0.5).to_vec();
        b.extend((-16i8..16).map(|q| q as u8));
        (b, (-16..16).map(|q| 0.5 * q as f32).collect())
    }

    /// Q4_1 block: d = 0.25, m = -1; byte j = low nibble j, high nibble 15 - j.
    fn q4_1_block() -> (Vec<u8>, Vec<f32>) {
        let mut b = f16_bytes(0.25).to_vec();
        b.extend(f16_bytes(-1.0));
        b.extend((0u8..16).map(|j| j | ((15 - j) << 4)));
        let lo = (0..16).map(|j| 0.25 * j as f32 - 1.0);
        let hi = (0..16).map(|j| 0.25 * (15 - j) as f32 - 1.0);
        (b, lo.chain(hi).collect())
    }

    /// Q4_0 block: d = 2; byte j = low nibble j, high nibble 15 - j → 2 * (q - 8).
    fn q4_0_block() -> (Vec<u8>, Vec<f32>) {
        let mut b = f16_bytes(2.0).to_vec();
        b.extend((0u8..16).map(|j| j | ((15 - j) << 4)));
        let lo = (0..16).map(|j| 2.0 * (j as f32 - 8.0));
        let hi = (0..16).map(|j| 2.0 * ((15 - j) as f32 - 8.0));
        (b, lo.chain(hi).collect())
    }

    /// A small valid file with metadata of every type and one tensor of each supported type.
    fn sample() -> Writer {
        let f32_data: Vec<u8> = (0..6)
            .flat_map(|i| (i as f32 * 1.5).to_le_bytes())
            .collect();
        let f16_data: Vec<u8> = [1.0f32, -2.5, 0.125, 65504.0]
            .iter()
            .flat_map(|&x| f16_bytes(x))
            .collect();
        let bf16_data: Vec<u8> = [1.0f32, -3.0]
            .iter()
            .flat_map(|&x| bf16::from_f32(x).to_bits().to_le_bytes())
            .collect();
        let f64_data: Vec<u8> = [0.5f64, -7.25]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let (q8, _) = q8_0_block();
        let (q41, _) = q4_1_block();
        let (q40, _) = q4_0_block();
        let mut q8_two_rows = q8.clone();
        let mut second = f16_bytes(1.0).to_vec();
        second.extend((0..32).map(|q| q as u8));
        q8_two_rows.extend(second);
        Writer::new()
            .kv("general.architecture", GgufValue::String("llama".into()))
            .kv("t.u8", GgufValue::U8(200))
            .kv("t.i8", GgufValue::I8(-5))
            .kv("t.u16", GgufValue::U16(60000))
            .kv("t.i16", GgufValue::I16(-30000))
            .kv("t.u32", GgufValue::U32(4_000_000_000))
            .kv("t.i32", GgufValue::I32(-7))
            .kv("t.f32", GgufValue::F32(1e-5))
            .kv("t.bool", GgufValue::Bool(true))
            .kv("t.u64", GgufValue::U64(1 << 40))
            .kv("t.i64", GgufValue::I64(-(1 << 40)))
            .kv("t.f64", GgufValue::F64(0.25))
            .kv("t.strs", strs(&["a b", "", "héllo"]))
            .kv(
                "t.ints",
                GgufValue::Array {
                    elem_type: GgufValueType::I32,
                    values: vec![GgufValue::I32(1), GgufValue::I32(3)],
                },
            )
            .kv(
                "t.nested",
                GgufValue::Array {
                    elem_type: GgufValueType::Array,
                    values: vec![strs(&["x"]), strs(&[])],
                },
            )
            .tensor("f32", &[3, 2], 0, f32_data)
            .tensor("f16", &[4], 1, f16_data)
            .tensor("bf16", &[2, 1], 30, bf16_data)
            .tensor("f64", &[2], 28, f64_data)
            .tensor("q8_0", &[32], 8, q8)
            .tensor("q8_0_2rows", &[32, 2], 8, q8_two_rows)
            .tensor("q4_1", &[32], 3, q41)
            .tensor("q4_0", &[32], 2, q40)
    }

    fn parse(bytes: Vec<u8>) -> Result<GgufFile> {
        GgufFile::from_bytes(bytes, "test.gguf")
    }

    fn reason(r: Result<GgufFile>) -> String {
        match r {
            Err(ModelError::Format { format, reason, .. }) => {
                assert_eq!(format, "GGUF");
                reason
            }
            Err(other) => panic!("expected a format error, got {other}"),
            Ok(_) => panic!("expected a format error, parsed fine"),
        }
    }

    #[test]
    fn metadata_round_trip() {
        let g = parse(sample().build()).expect("parses");
        assert_eq!(g.version(), 3);
        assert_eq!(g.alignment(), 32);
        assert_eq!(g.architecture().unwrap(), "llama");
        assert_eq!(g.get_u32("t.u8").unwrap(), 200);
        assert_eq!(g.get_i64("t.i8").unwrap(), -5);
        assert_eq!(g.get_u32("t.u16").unwrap(), 60000);
        assert_eq!(g.get_i64("t.i16").unwrap(), -30000);
        assert_eq!(g.get_u32("t.u32").unwrap(), 4_000_000_000);
        assert_eq!(g.get_i64("t.i32").unwrap(), -7);
        assert_eq!(g.get_f32("t.f32").unwrap(), 1e-5);
        assert!(g.get_bool("t.bool").unwrap());
        assert_eq!(g.get_u64("t.u64").unwrap(), 1 << 40);
        assert_eq!(g.get_usize("t.u64").unwrap(), 1 << 40);
        assert_eq!(g.get_i64("t.i64").unwrap(), -(1 << 40));
        assert_eq!(g.get_f64("t.f64").unwrap(), 0.25);
        assert_eq!(g.get_str_array("t.strs").unwrap(), vec!["a b", "", "héllo"]);
        assert_eq!(g.get_i64_array("t.ints").unwrap(), vec![1, 3]);
        assert_eq!(g.get_array("t.nested").unwrap().len(), 2);
        assert_eq!(g.metadata().count(), 15);
        assert_eq!(g.metadata().next().unwrap().0, "general.architecture");

        let err = g.get_u32("no.such.key").unwrap_err().to_string();
        assert!(
            err.contains("no.such.key") && err.contains("missing"),
            "{err}"
        );
        let err = g.get_u32("t.i32").unwrap_err().to_string();
        assert!(err.contains("`t.i32`") && err.contains("i32 -7"), "{err}");
        let err = g.get_u32("t.u64").unwrap_err().to_string();
        assert!(err.contains("u32 range"), "{err}");
        let err = g.get_str("t.u8").unwrap_err().to_string();
        assert!(err.contains("expected a string"), "{err}");
        let err = g.get_str_array("t.ints").unwrap_err().to_string();
        assert!(err.contains("array of 2 i32"), "{err}");
        let err = g.get_f32("general.architecture").unwrap_err().to_string();
        assert!(err.contains("string \"llama\""), "{err}");
        assert!(g.get_bool("t.u8").is_err());
    }

    #[test]
    fn tensors_round_trip() {
        let g = parse(sample().build()).expect("parses");
        assert_eq!(g.tensors().len(), 8);

        let (shape, data) = g.tensor_f32("f32").unwrap();
        assert_eq!(shape, vec![2, 3]);
        assert_eq!(data, vec![0.0, 1.5, 3.0, 4.5, 6.0, 7.5]);
        let info = g.tensor_info("f32").unwrap();
        assert_eq!(info.ggml_dims(), &[3, 2]);
        assert_eq!(info.dtype(), GgmlType::F32);
        assert_eq!((info.n_elements(), info.n_bytes()), (6, Some(24)));

        assert_eq!(
            g.tensor_f32("f16").unwrap(),
            (vec![4], vec![1.0, -2.5, 0.125, 65504.0])
        );
        assert_eq!(g.tensor_f32("bf16").unwrap(), (vec![1, 2], vec![1.0, -3.0]));
        assert_eq!(g.tensor_f32("f64").unwrap(), (vec![2], vec![0.5, -7.25]));
        assert_eq!(g.tensor_f32("q8_0").unwrap(), (vec![32], q8_0_block().1));
        assert_eq!(g.tensor_f32("q4_1").unwrap(), (vec![32], q4_1_block().1));
        assert_eq!(g.tensor_f32("q4_0").unwrap(), (vec![32], q4_0_block().1));

        let (shape, data) = g.tensor_f32("q8_0_2rows").unwrap();
        assert_eq!(shape, vec![2, 32]);
        assert_eq!(&data[..32], &q8_0_block().1[..]);
        let row1: Vec<f32> = (0..32).map(|q| q as f32).collect();
        assert_eq!(&data[32..], &row1[..]);
        // Spot values computed by hand: Q8_0 element 0 = 0.5 * -16, Q4_1 element 17 = 0.25*14 - 1.
        assert_eq!(g.tensor_f32("q8_0").unwrap().1[0], -8.0);
        assert_eq!(g.tensor_f32("q4_1").unwrap().1[17], 2.5);
        assert_eq!(g.tensor_bytes("q4_1").unwrap().len(), 20);

        match g.tensor_f32("nope") {
            Err(ModelError::MissingTensor { tensor, .. }) => assert_eq!(tensor, "nope"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn many_blocks_dequantize_in_parallel_chunks() {
        // More blocks than one rayon task holds, and a ragged last task.
        let n_blocks = TASK_ELEMS / 32 * 2 + 7;
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for k in 0..n_blocks {
            let d = (k % 7) as f32 * 0.5;
            bytes.extend(f16_bytes(d));
            bytes.extend(f16_bytes(-0.5));
            bytes.extend((0u8..16).map(|j| j | ((15 - j) << 4)));
            expected.extend((0..16).map(|j| d * j as f32 - 0.5));
            expected.extend((0..16).map(|j| d * (15 - j) as f32 - 0.5));
        }
        // A shape needing one block more than the data holds is rejected cleanly.
        let short = Writer::new()
            .tensor("big", &[64, n_blocks as u64 / 2 + 1], 3, bytes.clone())
            .build();
        assert!(reason(parse(short)).contains("runs past the end"));
        let g = parse(
            Writer::new()
                .tensor("big", &[32, n_blocks as u64], 3, bytes)
                .build(),
        )
        .unwrap();
        let (shape, data) = g.tensor_f32("big").unwrap();
        assert_eq!(shape, vec![n_blocks, 32]);
        assert_eq!(data, expected);
    }

    #[test]
    fn unsupported_and_unknown_types() {
        let bytes = Writer::new()
            .tensor("q6k", &[256], 14, vec![0; 210])
            .tensor("weird", &[4], 200, vec![0; 16])
            .build();
        let g = parse(bytes).expect("unknown types parse; they fail only when read");
        match g.tensor_f32("q6k") {
            Err(ModelError::UnsupportedTensorType { tensor, dtype, .. }) => {
                assert_eq!((tensor.as_str(), dtype.as_str()), ("q6k", "Q6_K (14)"));
            }
            other => panic!("unexpected {other:?}"),
        }
        match g.tensor_f32("weird") {
            Err(ModelError::UnsupportedTensorType { dtype, .. }) => {
                assert_eq!(dtype, "unknown (200)")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(g.tensor_info("weird").unwrap().n_bytes(), None);
        assert!(g.tensor_bytes("weird").is_err());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().build();
        assert!(parse(bytes.clone()).is_ok());
        for len in 0..bytes.len() {
            let r = parse(bytes[..len].to_vec());
            assert!(
                r.is_err(),
                "prefix of {len} of {} bytes parsed",
                bytes.len()
            );
        }
    }

    #[test]
    fn header_errors_name_the_problem() {
        let good = sample().build();

        let mut b = good.clone();
        b[..4].copy_from_slice(b"GGML");
        assert!(reason(parse(b)).contains("bad magic"));

        for (v, needle) in [
            (1u32, "version 1"),
            (4, "unsupported GGUF version 4"),
            (3u32.swap_bytes(), "big-endian"),
        ] {
            let mut b = good.clone();
            b[4..8].copy_from_slice(&v.to_le_bytes());
            let r = reason(parse(b));
            assert!(r.contains(needle), "{r}");
        }

        // Absurd counts are rejected before any allocation.
        let mut b = good.clone();
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        let r = reason(parse(b));
        assert!(r.contains("metadata count"), "{r}");
        let mut b = good.clone();
        b[8..16].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        let r = reason(parse(b));
        assert!(r.contains("tensor count"), "{r}");

        // Key length of the first metadata entry = u64::MAX.
        let mut b = good.clone();
        b[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        let r = reason(parse(b));
        assert!(
            r.contains("key of metadata entry 0") && r.contains("string length"),
            "{r}"
        );

        let empty = reason(parse(Vec::new()));
        assert!(empty.contains("too short"), "{empty}");
    }

    /// Builds a file with one metadata entry given as raw type id + value bytes.
    fn raw_kv(key: &str, ty: u32, value: &[u8]) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend((key.len() as u64).to_le_bytes());
        b.extend(key.as_bytes());
        b.extend(ty.to_le_bytes());
        b.extend(value);
        b
    }

    #[test]
    fn metadata_errors_name_the_key() {
        let r = reason(parse(raw_kv("k.type", 13, &[0; 8])));
        assert!(
            r.contains("`k.type`") && r.contains("unknown metadata value type 13"),
            "{r}"
        );
        let r = reason(parse(raw_kv("k.bool", 7, &[2])));
        assert!(r.contains("`k.bool`") && r.contains("not 0 or 1"), "{r}");
        let mut s = 2u64.to_le_bytes().to_vec();
        s.extend([0xC3, 0x28]);
        let r = reason(parse(raw_kv("k.utf8", 8, &s)));
        assert!(r.contains("`k.utf8`") && r.contains("UTF-8"), "{r}");
        let mut a = 8u32.to_le_bytes().to_vec();
        a.extend(u64::MAX.to_le_bytes());
        let r = reason(parse(raw_kv("k.arr", 9, &a)));
        assert!(
            r.contains("`k.arr`") && r.contains("array element count"),
            "{r}"
        );
        // Arrays nested deeper than the limit.
        let mut deep = Vec::new();
        for _ in 0..MAX_ARRAY_NESTING + 2 {
            deep.extend(9u32.to_le_bytes());
            deep.extend(1u64.to_le_bytes());
        }
        deep.extend(4u32.to_le_bytes());
        deep.extend(0u64.to_le_bytes());
        let r = reason(parse(raw_kv("k.deep", 9, &deep)));
        assert!(r.contains("nested"), "{r}");

        let dup = Writer::new()
            .kv("a", GgufValue::U8(1))
            .kv("a", GgufValue::U8(2))
            .build();
        assert!(reason(parse(dup)).contains("duplicate metadata key `a`"));
        let bad_align = Writer::new()
            .kv("general.alignment", GgufValue::U32(24))
            .build();
        assert!(reason(parse(bad_align)).contains("general.alignment"));
        let mut w = Writer::new().kv("general.alignment", GgufValue::U32(64));
        w.alignment = 64;
        let w = w
            .tensor("a", &[1], 0, vec![0; 4])
            .tensor("b", &[1], 0, vec![0; 4]);
        let g = parse(w.build()).unwrap();
        assert_eq!(g.alignment(), 64);
        assert_eq!(g.tensor_info("b").unwrap().offset(), 64);
        assert_eq!(g.data_start() % 64, 0);
    }

    #[test]
    fn tensor_info_errors_name_the_tensor() {
        let r = reason(parse(
            Writer::new()
                .tensor("big", &[u64::MAX / 2, 4], 0, vec![0; 4])
                .build(),
        ));
        assert!(r.contains("`big`") && r.contains("overflows"), "{r}");
        let r = reason(parse(
            Writer::new()
                .tensor("dims", &[1, 1, 1, 1, 1], 0, vec![0; 4])
                .build(),
        ));
        assert!(r.contains("`dims`") && r.contains("5 dimensions"), "{r}");
        let r = reason(parse(
            Writer::new().tensor("short", &[8], 0, vec![0; 16]).build(),
        ));
        assert!(
            r.contains("`short`") && r.contains("runs past the end"),
            "{r}"
        );
        let r = reason(parse(
            Writer::new().tensor("blk", &[16], 8, vec![0; 17]).build(),
        ));
        assert!(r.contains("`blk`") && r.contains("block size 32"), "{r}");
        let r = reason(parse(
            Writer::new()
                .tensor("x", &[1], 0, vec![0; 4])
                .tensor("x", &[1], 0, vec![0; 4])
                .build(),
        ));
        assert!(r.contains("duplicate tensor name `x`"), "{r}");

        // Misaligned and out-of-range offsets, patched into a valid file.
        let good = Writer::new().tensor("t", &[1], 0, vec![0; 4]).build();
        let off_pos = 24 + 8 + 1 + 4 + 8 + 4; // header, name "t", n_dims, dim, type
        let mut b = good.clone();
        b[off_pos..off_pos + 8].copy_from_slice(&3u64.to_le_bytes());
        assert!(reason(parse(b)).contains("not a multiple of the alignment"));
        let mut b = good.clone();
        b[off_pos..off_pos + 8].copy_from_slice(&(u64::MAX - 31).to_le_bytes());
        assert!(reason(parse(b)).contains("runs past the end"));
    }

    /// SplitMix64: a tiny seeded generator, enough for fuzzing.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Exercises everything a caller might do with a parsed file.
    fn use_everything(g: &GgufFile) {
        for (k, _) in g.metadata() {
            let _ = (g.get_u32(k), g.get_f32(k), g.get_str(k), g.get_str_array(k));
            let _ = (g.get_i64_array(k), g.get_bool(k), g.get_array(k));
        }
        for t in g.tensors() {
            let _ = g.tensor_f32(t.name());
            let _ = g.tensor_bytes(t.name());
        }
    }

    #[test]
    fn fuzzed_files_never_panic() {
        let good = sample().build();
        let mut rng = Rng(0x005A_FE1F);
        let mut parsed = 0;
        for _ in 0..4000 {
            let mut b = good.clone();
            match rng.below(4) {
                0 => {
                    for _ in 0..1 + rng.below(8) {
                        let i = rng.below(b.len());
                        b[i] ^= 1 << rng.below(8);
                    }
                }
                1 => {
                    let i = rng.below(b.len());
                    b[i] = [0x00, 0xFF, 0x7F, 0x80][rng.below(4)];
                }
                2 => {
                    // Overwrite 8 bytes with a huge or random u64 (counts, lengths, offsets).
                    let i = rng.below(b.len() - 8);
                    let v = [u64::MAX, u64::MAX / 2, 1 << 40, rng.next()][rng.below(4)];
                    b[i..i + 8].copy_from_slice(&v.to_le_bytes());
                }
                _ => {
                    let cut = rng.below(b.len());
                    b.truncate(cut);
                    let i = rng.below(b.len().max(1));
                    if let Some(x) = b.get_mut(i) {
                        *x = x.wrapping_add(1);
                    }
                }
            }
            if let Ok(g) = parse(b) {
                parsed += 1;
                use_everything(&g);
            }
        }
        // Many mutations land in tensor data or padding and still parse: both paths are exercised.
        assert!(parsed > 100, "only {parsed} mutants parsed");
    }

    /// Reference permutation straight from the numpy formula, for the round-trip test.
    fn numpy_permute(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
        // w.reshape(n_head, 2, half, cols).swapaxes(1, 2).reshape(rows, cols)
        let half = rows / n_head / 2;
        let mut out = Vec::with_capacity(w.len());
        for h in 0..n_head {
            for i in 0..half {
                for j in 0..2 {
                    let r = (h * 2 + j) * half + i;
                    out.extend_from_slice(&w[r * cols..(r + 1) * cols]);
                }
            }
        }
        out
    }

    #[test]
    fn unpermute_qk_inverts_llama_cpp_permutation() {
        // Hand-written case: 1 head, head_dim 4, 1 column. HF rows [a0 a1 b0 b1] (first half, second
        // half) are stored by llama.cpp interleaved as [a0 b0 a1 b1].
        let mut w = vec![0.0, 2.0, 1.0, 3.0];
        unpermute_qk(&mut w, [4, 1], 1).unwrap();
        assert_eq!(w, vec![0.0, 1.0, 2.0, 3.0]);
        permute_qk(&mut w, [4, 1], 1).unwrap();
        assert_eq!(w, vec![0.0, 2.0, 1.0, 3.0]);

        // 2 heads of dim 4, 2 columns: rows permute within each head.
        let hf: Vec<f32> = (0..16).map(|x| x as f32).collect();
        let mut p = hf.clone();
        permute_qk(&mut p, [8, 2], 2).unwrap();
        let rows_of = |v: &[f32]| v.chunks(2).map(|r| r[0] as usize / 2).collect::<Vec<_>>();
        assert_eq!(rows_of(&p), vec![0, 2, 1, 3, 4, 6, 5, 7]);

        // Round trip against the numpy formula on a SmolLM2-like k shape (3 heads × 64, 5 cols).
        let (rows, cols, heads) = (192, 5, 3);
        let w: Vec<f32> = (0..rows * cols).map(|x| (x as f32).sin()).collect();
        let mut p = w.clone();
        permute_qk(&mut p, [rows, cols], heads).unwrap();
        assert_eq!(p, numpy_permute(&w, rows, cols, heads));
        unpermute_qk(&mut p, [rows, cols], heads).unwrap();
        assert_eq!(p, w);

        assert!(unpermute_qk(&mut [0.0; 6], [3, 2], 1).is_err());
        assert!(unpermute_qk(&mut [0.0; 8], [4, 1], 1).is_err());
        assert!(unpermute_qk(&mut [0.0; 4], [4, 1], 0).is_err());
    }

    pub(crate) fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("saferlhf-gguf-{}-{name}", std::process::id()))
    }

    #[test]
    fn sha256_and_open_from_disk() {
        let p = temp_path("abc.txt");
        std::fs::write(&p, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&p).unwrap(), abc);
        verify_sha256(&p, &abc.to_uppercase()).unwrap();
        match verify_sha256(&p, &"0".repeat(64)) {
            Err(ModelError::Checksum { actual, .. }) => assert_eq!(actual, abc),
            other => panic!("unexpected {other:?}"),
        }
        // Too short to be GGUF, and an empty file (which must not be mmapped).
        assert!(reason(GgufFile::open(&p)).contains("too short"));
        std::fs::write(&p, b"").unwrap();
        assert!(reason(GgufFile::open(&p)).contains("too short"));
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(GgufFile::open(&p), Err(ModelError::Io { .. })));
        assert!(matches!(sha256_file(&p), Err(ModelError::Io { .. })));

        let p = temp_path("sample.gguf");
        std::fs::write(&p, sample().build()).unwrap();
        let g = GgufFile::open(&p).unwrap();
        assert_eq!(g.path(), p.as_path());
        assert_eq!(g.tensor_f32("q4_1").unwrap().1, q4_1_block().1);
        drop(g);
        std::fs::remove_file(&p).unwrap();
    }

    /// The real SmolLM2 asset, or `None` (with a message) when it has not been fetched.
    pub(crate) fn smollm2_asset() -> Option<PathBuf> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../assets/SmolLM2-135M-Instruct.Q4_1.gguf");
        if p.exists() {
            Some(p)
        } else {
            println!(
                "skipping: asset {} not found; run scripts/fetch-assets.sh",
                p.display()
            );
            None
        }
    }

    #[test]
    // The reference values are exact f32 values printed in full by Python.
    #[allow(clippy::excessive_precision)]
    fn real_smollm2_file() {
        let Some(path) = smollm2_asset() else { return };
        let g = GgufFile::open(&path).expect("asset opens");
        assert_eq!(g.version(), 3);
        assert_eq!(g.architecture().unwrap(), "llama");
        assert_eq!(g.get_u32("llama.block_count").unwrap(), 30);
        assert_eq!(g.get_u32("llama.embedding_length").unwrap(), 576);
        assert_eq!(g.get_u32("llama.attention.head_count").unwrap(), 9);
        assert_eq!(g.get_u32("llama.attention.head_count_kv").unwrap(), 3);
        assert_eq!(g.get_u32("llama.feed_forward_length").unwrap(), 1536);
        assert_eq!(g.get_u32("llama.context_length").unwrap(), 8192);
        assert_eq!(g.get_u32("llama.rope.dimension_count").unwrap(), 64);
        assert_eq!(g.get_u32("llama.vocab_size").unwrap(), 49152);
        assert_eq!(g.get_f32("llama.rope.freq_base").unwrap(), 100000.0);
        assert_eq!(
            g.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap(),
            1e-5
        );
        assert_eq!(
            g.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
            49152
        );
        assert_eq!(
            g.get_str_array("tokenizer.ggml.merges").unwrap().len(),
            48900
        );

        // 1 embedding + 30 blocks × 9 + output_norm; no output.weight (tied embeddings).
        assert_eq!(g.tensors().len(), 272);
        assert!(!g.has_tensor("output.weight"));
        let ty = |n: &str| g.tensor_info(n).unwrap().dtype();
        assert_eq!(ty("token_embd.weight"), GgmlType::Q8_0);
        assert_eq!(ty("output_norm.weight"), GgmlType::F32);
        for b in 0..30 {
            for n in ["attn_norm", "ffn_norm"] {
                assert_eq!(ty(&format!("blk.{b}.{n}.weight")), GgmlType::F32);
            }
            for n in [
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "ffn_gate",
                "ffn_up",
                "ffn_down",
            ] {
                assert_eq!(ty(&format!("blk.{b}.{n}.weight")), GgmlType::Q4_1);
            }
        }
        for t in g
            .tensors()
            .iter()
            .filter(|t| !t.name().starts_with("blk.") || t.name().starts_with("blk.0."))
        {
            println!(
                "{:<28} {:<10} {:?}",
                t.name(),
                t.dtype().to_string(),
                t.shape()
            );
        }
        let shape = |n: &str| g.tensor_info(n).unwrap().shape();
        assert_eq!(shape("token_embd.weight"), vec![49152, 576]);
        assert_eq!(shape("blk.0.attn_q.weight"), vec![576, 576]);
        assert_eq!(shape("blk.0.attn_k.weight"), vec![192, 576]);
        assert_eq!(shape("blk.0.ffn_down.weight"), vec![576, 1536]);
        assert_eq!(shape("blk.0.ffn_gate.weight"), vec![1536, 576]);

        // Reference values from Python: gguf 0.19.0 `gguf.quants.dequantize` on this file (row 0
        // first four values, the last value, and the f64 sum over all elements).
        let check = |name: &str, head: [f32; 4], last: f32, sum: f64| {
            let (_, d) = g.tensor_f32(name).unwrap();
            assert_eq!(&d[..4], &head, "{name}");
            assert_eq!(*d.last().unwrap(), last, "{name}");
            let s: f64 = d.iter().map(|&x| f64::from(x)).sum();
            assert!(
                (s - sum).abs() <= 1e-6 * sum.abs().max(1.0),
                "{name}: {s} vs {sum}"
            );
        };
        let t0 = std::time::Instant::now();
        check(
            "token_embd.weight",
            [
                -0.10654449462890625,
                0.032978057861328125,
                0.048198699951171875,
                -0.022830963134765625,
            ],
            -0.0417022705078125,
            -15353.04449415207,
        );
        println!(
            "token_embd.weight (Q8_0, 28.3M values) dequantized in {:?}",
            t0.elapsed()
        );
        check(
            "blk.0.attn_q.weight",
            [
                -0.0963134765625,
                0.1573486328125,
                -0.0963134765625,
                -0.73046875,
            ],
            -0.255859375,
            59.22322082519531,
        );
        check(
            "blk.29.ffn_down.weight",
            [
                -0.2733154296875,
                0.186279296875,
                0.186279296875,
                0.04840087890625,
            ],
            0.056640625,
            49.83570861816406,
        );
        check(
            "output_norm.weight",
            [1.7578125, 1.8203125, 1.78125, 1.6015625],
            1.984375,
            1038.33203125,
        );
        let t0 = std::time::Instant::now();
        let mut n = 0;
        for t in g.tensors() {
            n += g.tensor_f32(t.name()).unwrap().1.len();
        }
        println!("all {n} values dequantized in {:?}", t0.elapsed());
        assert_eq!(n, 134_515_008);
    }
}

//! The bounds-checked parser of the header, metadata and tensor directory.

use super::*;

pub(super) fn format_error(path: &Path, reason: String) -> ModelError {
    ModelError::Format {
        path: path.to_path_buf(),
        format: "GGUF",
        reason,
    }
}

/// Everything [`parse_header`] extracts.
pub(super) struct Header {
    pub(super) version: u32,
    pub(super) metadata: Vec<(String, GgufValue)>,
    pub(super) metadata_index: HashMap<String, usize>,
    pub(super) tensors: Vec<GgufTensorInfo>,
    pub(super) tensor_index: HashMap<String, usize>,
    pub(super) alignment: u64,
    pub(super) data_start: usize,
}

/// Adds context in front of a parse error message, lazily.
pub(super) trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> std::result::Result<T, String>;
}

impl<T> Context<T> for std::result::Result<T, String> {
    fn ctx(self, what: impl FnOnce() -> String) -> std::result::Result<T, String> {
        self.map_err(|e| format!("{}: {e}", what()))
    }
}

/// A bounds-checked little-endian reader over the file bytes.
pub(super) struct Cursor<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
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

pub(super) fn parse_header(buf: &[u8]) -> std::result::Result<Header, String> {
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

pub(super) fn parse_tensor_info(
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

//! Tests of the GGUF reader (and a minimal writer other tests of the crate use).

use half::{bf16, f16};

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
        .tensor("iq4xs", &[256], 23, vec![0; 136])
        .tensor("weird", &[4], 200, vec![0; 16])
        .build();
    let g = parse(bytes).expect("unknown types parse; they fail only when read");
    match g.tensor_f32("iq4xs") {
        Err(ModelError::UnsupportedTensorType { tensor, dtype, .. }) => {
            assert_eq!((tensor.as_str(), dtype.as_str()), ("iq4xs", "IQ4_XS (23)"));
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
    saferlhf_testkit::smollm2()
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

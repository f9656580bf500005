//! Dequantization of tensor data to f32: the float types, the 32-element quants (Q4_0, Q4_1,
//! Q5_0, Q5_1, Q8_0) and the 256-element K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), each block
//! decoded as ggml's `dequantize_row_*` does (ggml-quants.c, block layouts in ggml-common.h).
//! `tests::kquants_match_the_gguf_package` checks every type against the `gguf` Python package's
//! NumPy dequantization, value for value.

use half::{bf16, f16};

use super::*;

pub(super) fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// Dequantizes `n` elements of `dtype` stored in `bytes`. `None` if the type is not supported or
/// `bytes` has the wrong length for `n` elements.
pub(super) fn dequantize(dtype: GgmlType, bytes: &[u8], n: usize) -> Option<Vec<f32>> {
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
        // block_q5_0: f16 d, u32 qh (the fifth bits), 16 bytes of nibbles as in Q4_0;
        // x = d * (q - 16).
        GgmlType::Q5_0 => |b, o| {
            let d = f16_at(b, 0);
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            for (j, &q) in b[6..22].iter().enumerate() {
                let lo = (q & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
                let hi = (q >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
                o[j] = d * (f32::from(lo) - 16.0);
                o[j + 16] = d * (f32::from(hi) - 16.0);
            }
        },
        // block_q5_1: f16 d, f16 m, u32 qh, 16 bytes of nibbles; x = d * q + m.
        GgmlType::Q5_1 => |b, o| {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            for (j, &q) in b[8..24].iter().enumerate() {
                let lo = (q & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
                let hi = (q >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
                o[j] = d * f32::from(lo) + m;
                o[j + 16] = d * f32::from(hi) + m;
            }
        },
        GgmlType::Q2_K => q2_k,
        GgmlType::Q3_K => q3_k,
        GgmlType::Q4_K => |b, o| q45_k(b, o, false),
        GgmlType::Q5_K => |b, o| q45_k(b, o, true),
        GgmlType::Q6_K => q6_k,
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

/// block_q2_K (84 bytes): 16 scale bytes (low nibble: scale, high nibble: min, per 16
/// elements), 64 bytes of 2-bit values, f16 d, f16 dmin. Byte `l` of each 32-byte half holds
/// elements `l`, `l + 32`, `l + 64`, `l + 96` of that half in its four bit pairs;
/// x = d * scale * q - dmin * min.
fn q2_k(b: &[u8], o: &mut [f32]) {
    let (scales, qs) = (&b[..16], &b[16..80]);
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    for (half, (q, out)) in qs.chunks_exact(32).zip(o.chunks_exact_mut(128)).enumerate() {
        for (j, group) in out.chunks_exact_mut(32).enumerate() {
            let shift = 2 * j;
            for (part, values) in group.chunks_exact_mut(16).enumerate() {
                let sc = scales[half * 8 + j * 2 + part];
                let (dl, ml) = (d * f32::from(sc & 0x0F), dmin * f32::from(sc >> 4));
                for (l, x) in values.iter_mut().enumerate() {
                    let q = (q[part * 16 + l] >> shift) & 3;
                    *x = dl * f32::from(q) - ml;
                }
            }
        }
    }
}

/// block_q3_K (110 bytes): 32 bytes of high bits (`hmask`), 64 bytes of 2-bit low parts, 12
/// bytes of 6-bit scales, f16 d. The low parts are laid out as in Q2_K; bit `half * 4 + j` of
/// `hmask[l]` (l < 32) is the high bit of the matching element, and a *clear* bit subtracts 4;
/// x = d * (scale - 32) * q.
fn q3_k(b: &[u8], o: &mut [f32]) {
    let (hmask, qs, packed) = (&b[..32], &b[32..96], &b[96..108]);
    let d = f16_at(b, 108);
    // Scale i: low nibble from byte i % 8 (high nibble of it for i >= 8), top two bits from byte
    // 8 + i % 4 at bit 2 * (i / 4).
    let scale = |i: usize| -> f32 {
        let low = (packed[i % 8] >> (4 * (i / 8))) & 0x0F;
        let high = (packed[8 + i % 4] >> (2 * (i / 4))) & 0x03;
        f32::from(((low | (high << 4)) as i8) - 32)
    };
    for (half, (q, out)) in qs.chunks_exact(32).zip(o.chunks_exact_mut(128)).enumerate() {
        for (j, group) in out.chunks_exact_mut(32).enumerate() {
            let (shift, bit) = (2 * j, half * 4 + j);
            for (part, values) in group.chunks_exact_mut(16).enumerate() {
                let dl = d * scale(half * 8 + j * 2 + part);
                for (l, x) in values.iter_mut().enumerate() {
                    let at = part * 16 + l;
                    let low = ((q[at] >> shift) & 3) as i8;
                    let minus = if (hmask[at] >> bit) & 1 == 1 { 0 } else { 4 };
                    *x = dl * f32::from(low - minus);
                }
            }
        }
    }
}

/// Scale and min `j` (< 8) of the 12 packed bytes of Q4_K / Q5_K (ggml's `get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// block_q4_K (144 bytes: f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles) and block_q5_K
/// (176 bytes: the same with 32 bytes of fifth bits before the nibbles). Each 64 elements take 32
/// bytes: the low nibbles are the first 32 elements (scale/min 2i), the high nibbles the next 32
/// (scale/min 2i + 1); in Q5_K bit 2i (then 2i + 1) of `qh[l]` adds 16. x = d * sc * q - dmin * m.
fn q45_k(b: &[u8], o: &mut [f32], five: bool) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let packed = &b[4..16];
    let (qh, qs) = if five {
        (Some(&b[16..48]), &b[48..176])
    } else {
        (None, &b[16..144])
    };
    for (i, (q, out)) in qs.chunks_exact(32).zip(o.chunks_exact_mut(64)).enumerate() {
        let (lo, hi) = out.split_at_mut(32);
        for (part, values) in [lo, hi].into_iter().enumerate() {
            let (sc, m) = scale_min_k4(2 * i + part, packed);
            let (d1, m1) = (d * f32::from(sc), dmin * f32::from(m));
            let bit = 2 * i + part;
            for (l, x) in values.iter_mut().enumerate() {
                let mut v = (q[l] >> (4 * part)) & 0x0F;
                if let Some(qh) = qh {
                    v |= ((qh[l] >> bit) & 1) << 4;
                }
                *x = d1 * f32::from(v) - m1;
            }
        }
    }
}

/// block_q6_K (210 bytes): 128 bytes of low nibbles, 64 bytes of high bit pairs, 16 signed
/// scales, f16 d. Per 128-element half: element l + 32k (l < 32, k < 4) takes the low nibble
/// (k < 2) or high nibble (k >= 2) of `ql[l + 32 * (k % 2)]`, bits 2k..2k+2 of `qh[l]`, and
/// scale `l / 16 + 2k`; x = d * scale * (q - 32).
fn q6_k(b: &[u8], o: &mut [f32]) {
    let (ql, qh, scales) = (&b[..128], &b[128..192], &b[192..208]);
    let d = f16_at(b, 208);
    for half in 0..2 {
        let (ql, qh) = (
            &ql[half * 64..half * 64 + 64],
            &qh[half * 32..half * 32 + 32],
        );
        let sc = &scales[half * 8..half * 8 + 8];
        let out = &mut o[half * 128..half * 128 + 128];
        for l in 0..32 {
            for k in 0..4 {
                let low = (ql[l + 32 * (k % 2)] >> (4 * (k / 2))) & 0x0F;
                let q = (low | (((qh[l] >> (2 * k)) & 3) << 4)) as i8 - 32;
                out[l + 32 * k] = d * f32::from(sc[l / 16 + 2 * k] as i8) * f32::from(q);
            }
        }
    }
}

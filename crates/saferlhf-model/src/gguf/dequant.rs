//! Dequantization of tensor data to f32.

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

//! The q/k row (un)permutation llama.cpp applies to Llama attention weights.

use super::*;

/// Checks the arguments of [`permute_qk`] / [`unpermute_qk`]; returns the half head dimension.
pub(super) fn check_qk(
    data: &[f32],
    [rows, cols]: [usize; 2],
    n_heads: usize,
    op: &str,
) -> Result<usize> {
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
    move_rows(data, shape[1], n_heads, half, |interleaved, rotate_half| {
        (interleaved, rotate_half)
    });
    Ok(())
}

/// Undoes llama.cpp's q/k row permutation (GGUF interleaved → Hugging Face rotate-half layout).
///
/// `data` is a row-major `[rows, cols]` weight (`rows = n_heads * head_dim`); for k pass the number of
/// KV heads. Equivalent to numpy's `w.reshape(n_heads, head_dim / 2, 2, cols).swapaxes(1, 2)`.
pub fn unpermute_qk(data: &mut [f32], shape: [usize; 2], n_heads: usize) -> Result<()> {
    let half = check_qk(data, shape, n_heads, "unpermute_qk")?;
    move_rows(data, shape[1], n_heads, half, |interleaved, rotate_half| {
        (rotate_half, interleaved)
    });
    Ok(())
}

/// Copies rows between the two layouts of each head: row `i * 2 + j` of the interleaved layout is
/// row `j * half + i` of the rotate-half one. `direction(interleaved, rotate_half)` returns the
/// (destination, source) pair.
fn move_rows(
    data: &mut [f32],
    cols: usize,
    n_heads: usize,
    half: usize,
    direction: impl Fn(usize, usize) -> (usize, usize),
) {
    let src = data.to_vec();
    for h in 0..n_heads {
        for i in 0..half {
            for j in 0..2 {
                let base = h * 2 * half;
                let (dst_row, src_row) = direction(base + i * 2 + j, base + j * half + i);
                data[dst_row * cols..(dst_row + 1) * cols]
                    .copy_from_slice(&src[src_row * cols..(src_row + 1) * cols]);
            }
        }
    }
}

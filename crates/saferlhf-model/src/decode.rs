//! A CPU fast path for decode-sized products: weights repacked once per generation call so
//! that a step with a handful of rows streams each weight from memory exactly once.
//!
//! During decoding every projection multiplies a few rows (one new token per sequence) by a
//! large weight: the cost is reading the weight, not the arithmetic. burn's CPU backend (`flex`)
//! hands these products to a general matrix-multiply routine built for large operands, which on
//! a 2-core machine reads the weights at about half the memory bandwidth. [`DecodeWeights`]
//! instead stores each weight as column panels of [`PANEL`] columns, each panel one contiguous
//! `[d_in, PANEL]` block, and multiplies with a small kernel that keeps the rows' partial sums
//! in registers while it walks the panel once. Q/K/V and gate/up are packed side by side, so one
//! pass serves each group.
//!
//! The packing exists only for weights that live on `flex` without autodiff (a `valid()` copy):
//! [`LlamaForCausalLM::pack_for_decode`](crate::LlamaForCausalLM::pack_for_decode) returns `None` for any other device, and the model then takes its
//! ordinary path. It holds a second copy of the weights (about 540 MB for SmolLM2-135M in f32)
//! for as long as the caller keeps it, usually one `generate` call.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// Columns per packed panel: two 512-bit or four 256-bit vectors.
pub const PANEL: usize = 32;

/// Rows a packed product takes; larger inputs (a prefill, a training batch) are left to the
/// backend's general matrix multiply, which is fast once there are enough rows to reuse each
/// weight.
pub const MAX_ROWS: usize = 32;

/// Rows the kernel keeps in registers at once.
const ROW_GROUP: usize = 8;

/// One weight `[d_in, d_out]` (or several side by side) as column panels.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    /// `panels * k * PANEL` values: panel p holds columns p*PANEL.. as a row-major [k, PANEL]
    /// block, zero beyond column n.
    data: Vec<f32>,
}

/// A strided read-only view of one f32 matrix held by the flex backend.
struct View {
    tensor: burn::backend::flex::FlexTensor,
    rows: usize,
    cols: usize,
    offset: isize,
    row_stride: isize,
    col_stride: isize,
}

impl View {
    /// The view of `matrix` when it is an f32 tensor on flex without autodiff.
    fn of(matrix: Tensor<2>) -> Option<View> {
        let tensor = matrix.try_into_primitive::<Flex>().ok()?;
        if tensor.dtype() != burn::tensor::DType::F32 {
            return None;
        }
        let layout = tensor.layout();
        let shape = layout.shape();
        let strides = layout.strides();
        let (rows, cols) = (shape[0], shape[1]);
        let (offset, row_stride, col_stride) =
            (layout.start_offset() as isize, strides[0], strides[1]);
        Some(View {
            tensor,
            rows,
            cols,
            offset,
            row_stride,
            col_stride,
        })
    }

    fn values(&self) -> &[f32] {
        self.tensor.storage::<f32>()
    }
}

impl PackedMatrix {
    /// Packs the column-wise concatenation of `parts` (each `[k, n_i]`, any strides). `None`
    /// unless every part is an f32 matrix on flex without autodiff with the same `k`.
    pub fn pack(parts: Vec<Tensor<2>>) -> Option<PackedMatrix> {
        let views: Vec<View> = parts.into_iter().map(View::of).collect::<Option<_>>()?;
        let k = views.first()?.rows;
        if views.iter().any(|v| v.rows != k) {
            return None;
        }
        // The runs of columns each panel takes from each part: (part, first column, panel
        // offset, count).
        let n: usize = views.iter().map(|v| v.cols).sum();
        let panels = n.div_ceil(PANEL);
        let mut runs: Vec<Vec<(usize, usize, usize, usize)>> = vec![Vec::new(); panels];
        let mut global = 0;
        for (part, view) in views.iter().enumerate() {
            let mut col = 0;
            while col < view.cols {
                let (panel, within) = (global / PANEL, global % PANEL);
                let count = (PANEL - within).min(view.cols - col);
                runs[panel].push((part, col, within, count));
                col += count;
                global += count;
            }
        }
        let mut data = vec![0f32; panels * k * PANEL];
        data.par_chunks_mut(k * PANEL)
            .zip(runs.par_iter())
            .for_each(|(block, runs)| {
                for &(part, first, within, count) in runs {
                    let view = &views[part];
                    let values = view.values();
                    let at = |kk: usize, c: usize| {
                        (view.offset
                            + kk as isize * view.row_stride
                            + (first + c) as isize * view.col_stride)
                            as usize
                    };
                    if view.col_stride == 1 {
                        // Row-major (a Linear weight): copy each row's run at once.
                        for kk in 0..k {
                            let from = at(kk, 0);
                            block[kk * PANEL + within..kk * PANEL + within + count]
                                .copy_from_slice(&values[from..from + count]);
                        }
                    } else {
                        // Column-major or other (the transposed tied embedding): walk each
                        // column, reading along its stride, writing into the cached block.
                        for c in 0..count {
                            for kk in 0..k {
                                block[kk * PANEL + within + c] = values[at(kk, c)];
                            }
                        }
                    }
                }
            });
        Some(PackedMatrix { k, n, data })
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        self.k
    }

    /// Output width.
    pub fn d_out(&self) -> usize {
        self.n
    }

    /// `x @ W` for row-major `x` [rows, k] on the host; returns row-major [rows, n].
    pub fn matmul_host(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let (k, n) = (self.k, self.n);
        assert_eq!(x.len(), rows * k, "packed matmul: input is not [rows, {k}]");
        let panels = n.div_ceil(PANEL);
        // Panel-major output [panel][row][PANEL]: every panel writes its own chunk.
        let mut by_panel = vec![0f32; panels * rows * PANEL];
        let kernel = Kernel::detect();
        // Two chunks of panels per thread keeps both cores busy without tiny jobs.
        let min_len = (panels / (2 * rayon::current_num_threads())).max(1);
        by_panel
            .par_chunks_mut(rows * PANEL)
            .zip(self.data.par_chunks(k * PANEL))
            .with_min_len(min_len)
            .for_each(|(out, panel)| {
                for (group, out) in out.chunks_mut(ROW_GROUP * PANEL).enumerate() {
                    let first = group * ROW_GROUP;
                    let count = out.len() / PANEL;
                    kernel.run(&x[first * k..(first + count) * k], k, panel, out);
                }
            });
        let mut y = vec![0f32; rows * n];
        for (panel, block) in by_panel.chunks(rows * PANEL).enumerate() {
            let start = panel * PANEL;
            let width = PANEL.min(n - start);
            for row in 0..rows {
                y[row * n + start..row * n + start + width]
                    .copy_from_slice(&block[row * PANEL..row * PANEL + width]);
            }
        }
        y
    }

    /// `x @ W` for `x` [.., k] with at most [`MAX_ROWS`] rows in all, on the device of `x`.
    pub fn matmul<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mut dims = x.dims();
        let device = x.device();
        let rows = dims[..D - 1].iter().product();
        // A no-op for the f32 activations of a packed (f32) model.
        let data = x.into_data().convert::<f32>();
        let values = data.as_slice::<f32>().expect("data converted to f32");
        let y = self.matmul_host(values, rows);
        dims[D - 1] = self.n;
        Tensor::from_data(TensorData::new(y, dims), &device)
    }
}

/// The instruction set the kernel was compiled for, chosen once per call at run time.
#[derive(Clone, Copy)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Kernel {
    fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Kernel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    /// out[r][c] = sum_kk x[r][kk] * panel[kk][c] for the `out.len() / PANEL` (<= ROW_GROUP)
    /// rows of `x`.
    fn run(self, x: &[f32], k: usize, panel: &[f32], out: &mut [f32]) {
        macro_rules! by_rows {
            ($f:ident) => {
                match out.len() / PANEL {
                    1 => $f::<1>(x, k, panel, out),
                    2 => $f::<2>(x, k, panel, out),
                    3 => $f::<3>(x, k, panel, out),
                    4 => $f::<4>(x, k, panel, out),
                    5 => $f::<5>(x, k, panel, out),
                    6 => $f::<6>(x, k, panel, out),
                    7 => $f::<7>(x, k, panel, out),
                    _ => $f::<8>(x, k, panel, out),
                }
            };
        }
        match self {
            // SAFETY: `detect` chose these variants only after checking the CPU features.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { by_rows!(panel_avx512) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { by_rows!(panel_avx2) },
            Kernel::Portable => by_rows!(panel_rows),
        }
    }
}

/// The kernel body, written so that the compiler vectorises the PANEL-wide inner loops and
/// keeps the M x PANEL accumulators in registers.
#[inline(always)]
fn panel_rows<const M: usize>(x: &[f32], k: usize, panel: &[f32], out: &mut [f32]) {
    let mut acc = [[0f32; PANEL]; M];
    for (kk, w) in panel.chunks_exact(PANEL).enumerate() {
        let w: &[f32; PANEL] = w.try_into().expect("panel rows are PANEL wide");
        for (r, acc) in acc.iter_mut().enumerate() {
            let xv = x[r * k + kk];
            for (a, &wv) in acc.iter_mut().zip(w) {
                *a += xv * wv;
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        out[r * PANEL..(r + 1) * PANEL].copy_from_slice(acc);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn panel_avx512<const M: usize>(x: &[f32], k: usize, panel: &[f32], out: &mut [f32]) {
    panel_rows::<M>(x, k, panel, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn panel_avx2<const M: usize>(x: &[f32], k: usize, panel: &[f32], out: &mut [f32]) {
    panel_rows::<M>(x, k, panel, out)
}

/// One decoder block's weights, packed.
#[derive(Debug, Clone)]
pub(crate) struct LayerPack {
    /// q_proj | k_proj | v_proj.
    pub qkv: PackedMatrix,
    pub o: PackedMatrix,
    /// gate_proj | up_proj.
    pub gate_up: PackedMatrix,
    pub down: PackedMatrix,
}

/// Every projection of a [`LlamaForCausalLM`](crate::LlamaForCausalLM) packed for few-row
/// products on the CPU; see the module documentation. Build one with
/// [`LlamaForCausalLM::pack_for_decode`](crate::LlamaForCausalLM::pack_for_decode) and pass it
/// to the model's `forward_hidden_packed` and `logits_packed`. This module knows nothing of the
/// model: the model packs its own weights (`model.rs` depends on `decode.rs`, not the reverse).
#[derive(Debug, Clone)]
pub struct DecodeWeights {
    pub(crate) layers: Vec<LayerPack>,
    /// hidden -> vocab (the embedding, transposed, when tied).
    pub(crate) head: PackedMatrix,
}

impl DecodeWeights {
    /// The packs of every decoder layer and of the output head (hidden -> vocab).
    pub(crate) fn new(layers: Vec<LayerPack>, head: PackedMatrix) -> Self {
        DecodeWeights { layers, head }
    }

    /// Values held (a second copy of every projection).
    pub fn num_values(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| [&l.qkv, &l.o, &l.gate_up, &l.down])
            .chain([&self.head])
            .map(|m| m.data.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use burn::tensor::{Distribution, Tensor};

    fn random(shape: [usize; 2], device: &Device) -> Tensor<2> {
        Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), device)
    }

    #[test]
    fn packed_products_match_matmul_for_every_row_count_and_ragged_widths() {
        let device = Device::flex();
        let (k, n1, n2) = (37, 45, 20); // n = 65: the last panel is one column wide
        let (a, b) = (random([k, n1], &device), random([k, n2], &device));
        let packed = PackedMatrix::pack(vec![a.clone(), b.clone()]).expect("flex f32 packs");
        assert_eq!((packed.d_in(), packed.d_out()), (k, n1 + n2));
        let w = Tensor::cat(vec![a, b], 1);
        for rows in [1, 2, 7, 8, 9, 16, 17, MAX_ROWS] {
            let x = random([rows, k], &device);
            let expected = x.clone().matmul(w.clone());
            packed
                .matmul(x)
                .into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Default::default());
        }
    }

    #[test]
    fn transposed_views_pack_by_their_strides() {
        let device = Device::flex();
        let embedding = random([70, 24], &device); // [vocab, hidden]
        let packed = PackedMatrix::pack(vec![embedding.clone().transpose()]).expect("packs");
        let x = random([3, 24], &device).reshape([3, 1, 24]);
        let expected = x.clone().matmul(embedding.transpose().unsqueeze::<3>());
        packed
            .matmul(x)
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Default::default());
    }

    #[test]
    fn every_kernel_variant_agrees_with_the_portable_one() {
        let (k, rows) = (50, 8);
        let x: Vec<f32> = (0..rows * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let panel: Vec<f32> = (0..k * PANEL)
            .map(|i| ((i * 3) % 13) as f32 * 0.5)
            .collect();
        let mut expected = vec![0f32; rows * PANEL];
        Kernel::Portable.run(&x, k, &panel, &mut expected);
        for r in 0..rows {
            for c in 0..PANEL {
                let direct: f32 = (0..k).map(|kk| x[r * k + kk] * panel[kk * PANEL + c]).sum();
                assert!((expected[r * PANEL + c] - direct).abs() < 1e-3);
            }
        }
        let mut got = vec![0f32; rows * PANEL];
        Kernel::detect().run(&x, k, &panel, &mut got);
        // Small integers times halves: every partial sum is exact, so the orders agree exactly.
        assert_eq!(got, expected);
    }

    #[test]
    fn autodiff_weights_do_not_pack() {
        let device = Device::flex().autodiff();
        assert!(PackedMatrix::pack(vec![random([4, 4], &device)]).is_none());
    }
}

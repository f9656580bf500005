//! Key/value cache for incremental decoding: one preallocated buffer per layer, filled in place
//! as tokens are generated, so a decode step costs one token's projections, not the prefix's.

use burn::tensor::{Device, Tensor, TensorCreationOptions};

/// Cached keys and values of every layer, each [batch, kv_heads, capacity, head_dim].
#[derive(Debug, Clone)]
pub struct KvCache {
    /// Keys and values of each layer; `None` before the layer's first append (the buffers are
    /// then made in the dtype of the keys: a half-precision model caches in half precision) and
    /// while [`KvCache::append`] writes them.
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// [batch, kv_heads, capacity, head_dim] of each buffer.
    shape: [usize; 4],
    device: Device,
    len: usize,
}

impl KvCache {
    /// An empty cache for `layers` layers holding up to `capacity` positions.
    pub fn new(
        layers: usize,
        batch: usize,
        kv_heads: usize,
        head_dim: usize,
        capacity: usize,
        device: &Device,
    ) -> Self {
        KvCache {
            layers: vec![None; layers],
            shape: [batch, kv_heads, capacity, head_dim],
            device: device.clone(),
            len: 0,
        }
    }

    /// Number of positions already cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the cache can hold.
    pub fn capacity(&self) -> usize {
        self.shape[2]
    }

    /// Writes this step's keys and values [batch, kv_heads, new, head_dim] of `layer` after the
    /// cached ones and returns the layer's whole buffers, [batch, kv_heads, capacity, head_dim]:
    /// positions past the filled ones hold zeros, and the caller masks them (a contiguous buffer
    /// reaches attention without a copy, where a slice of the filled part would be copied in
    /// every layer at every step). The length advances once per forward (see
    /// [`KvCache::advance`]), after every layer has appended.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: Tensor<4>,
        v: Tensor<4>,
    ) -> (Tensor<4>, Tensor<4>) {
        let [b, h, new, d] = k.dims();
        let end = self.len + new;
        assert!(
            end <= self.capacity(),
            "KV cache overflow: {end} positions > capacity {}",
            self.capacity()
        );
        let range = [0..b, 0..h, self.len..end, 0..d];
        // Move the buffers out of the cache before writing: a buffer with no other handle is
        // updated in place, while `buffer.clone().slice_assign(..)` would copy all of it.
        let (ck, cv) = match self.layers[layer].take() {
            Some(buffers) => buffers,
            None => {
                assert_eq!(self.len, 0, "KV cache layer {layer} skipped an append");
                let options = TensorCreationOptions::new(self.device.clone()).with_dtype(k.dtype());
                let empty = || Tensor::<4>::zeros(self.shape, options.clone());
                (empty(), empty())
            }
        };
        let ck = ck.slice_assign(range.clone(), k);
        let cv = cv.slice_assign(range, v);
        let out = (ck.clone(), cv.clone());
        self.layers[layer] = Some((ck, cv));
        out
    }

    /// Marks `new` more positions as cached.
    pub(crate) fn advance(&mut self, new: usize) {
        self.len += new;
    }

    /// Keeps only the rows in `rows` (e.g. to drop finished sequences from a batch).
    pub fn select_rows(&mut self, rows: burn::tensor::Tensor<1, burn::tensor::Int>) {
        self.shape[0] = rows.dims()[0];
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.clone().select(0, rows.clone());
            *v = v.clone().select(0, rows.clone());
        }
    }
}

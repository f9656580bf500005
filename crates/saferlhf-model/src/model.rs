//! The decoder of every [`Family`](crate::config::Family) (Llama, Qwen2, Qwen3): RMSNorm, rotary
//! position embeddings (Hugging Face's rotate-half layout, optionally scaled), grouped-query
//! attention on burn's fused attention (with the family's projection biases and, for Qwen3,
//! per-head q/k RMSNorm), SwiGLU, optionally tied embeddings.
//!
//! Module and field names mirror Hugging Face's `LlamaForCausalLM` / `Qwen2ForCausalLM` /
//! `Qwen3ForCausalLM` (`model.layers.0.self_attn.q_proj`, `...q_norm`) so weights import and
//! export by name. Every forward takes a left-padded batch
//! and a key mask; rows of different lengths share one call.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::silu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Device, Int, Tensor, TensorData};

use crate::cache::KvCache;
use crate::config::LlamaConfig;
use crate::decode::{self, DecodeWeights, LayerPack, PackedMatrix};
use crate::logits::LogitPolicy;

/// One attention block's projections (names as in Hugging Face).
#[derive(Module, Debug)]
pub struct SelfAttention {
    /// Query projection, hidden -> heads * head_dim.
    pub q_proj: Linear,
    /// Key projection, hidden -> kv_heads * head_dim.
    pub k_proj: Linear,
    /// Value projection, hidden -> kv_heads * head_dim.
    pub v_proj: Linear,
    /// Output projection, heads * head_dim -> hidden.
    pub o_proj: Linear,
    /// Qwen3: RMSNorm over each query head (head_dim), before RoPE.
    pub q_norm: Option<RmsNorm>,
    /// Qwen3: RMSNorm over each key head (head_dim), before RoPE.
    pub k_norm: Option<RmsNorm>,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

/// SwiGLU feed-forward layer: down(silu(gate(x)) * up(x)).
#[derive(Module, Debug)]
pub struct Mlp {
    /// Gate projection, hidden -> intermediate.
    pub gate_proj: Linear,
    /// Up projection, hidden -> intermediate.
    pub up_proj: Linear,
    /// Down projection, intermediate -> hidden.
    pub down_proj: Linear,
}

/// One pre-norm decoder block.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Attention sub-block.
    pub self_attn: SelfAttention,
    /// Feed-forward sub-block.
    pub mlp: Mlp,
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Norm before the feed-forward layer.
    pub post_attention_layernorm: RmsNorm,
}

/// The decoder stack without the output projection.
#[derive(Module, Debug)]
pub struct LlamaModel {
    /// Token embedding, [vocab, hidden].
    pub embed_tokens: Embedding,
    /// Decoder blocks.
    pub layers: Vec<DecoderLayer>,
    /// Final norm.
    pub norm: RmsNorm,
}

/// A causal language model: decoder plus output projection (absent when tied to the embedding).
#[derive(Module, Debug)]
pub struct LlamaForCausalLM {
    /// The decoder.
    pub model: LlamaModel,
    /// Output projection hidden -> vocab; `None` when tied to `model.embed_tokens`.
    pub lm_head: Option<Linear>,
    /// RoPE inverse frequencies (head_dim / 2 of them, scaling applied).
    #[module(skip)]
    inv_freq: Vec<f32>,
    max_positions: usize,
}

/// Cosine and sine tables for one forward, each [batch, seq, 1, head_dim] (the half-width
/// angles repeated, as Hugging Face's rotate-half layout pairs component i with i + d / 2), and
/// the [head_dim, head_dim] signed permutation `rotate` with `x @ rotate = rotate_half(x) =
/// [-x2, x1]`.
pub(crate) struct RopeTables {
    cos: Tensor<4>,
    sin: Tensor<4>,
    rotate: Tensor<2>,
}

impl RopeTables {
    /// Angles position * f_i for each (row, position), computed on the device, from the
    /// `head_dim / 2` inverse frequencies f_i (θ^(-2i/d), scaled).
    fn new(positions: Tensor<2, Int>, inv_freq: &[f32]) -> Self {
        let device = positions.device();
        let half = inv_freq.len();
        let d = 2 * half;
        let inv_freq: Vec<f32> = (0..d).map(|i| inv_freq[i % half]).collect();
        let inv_freq = Tensor::<1>::from_data(TensorData::new(inv_freq, [d]), &device);
        let [batch, seq] = positions.dims();
        let angles = positions.float().reshape([batch, seq, 1]) * inv_freq.reshape([1, 1, d]);
        let angles = angles.reshape([batch, seq, 1, d]);
        let mut rotate = vec![0f32; d * d];
        for j in 0..half {
            rotate[(j + half) * d + j] = -1.0; // out[j] = -x[j + half]
            rotate[j * d + j + half] = 1.0; // out[j + half] = x[j]
        }
        RopeTables {
            cos: angles.clone().cos(),
            sin: angles.sin(),
            rotate: Tensor::from_data(TensorData::new(rotate, [d, d]), &device),
        }
    }

    /// Rotates [batch, seq, heads, head_dim] in Hugging Face's rotate-half layout:
    /// x * cos + rotate_half(x) * sin. The half swap is one product with a ±1 permutation, exact
    /// in floating point, in place of two slices and a concatenation (three tensors, and three
    /// more gradients, per call).
    fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, s, h, d] = x.dims();
        // The tables are computed in f32 (as Hugging Face does) and meet a half-precision model
        // at its dtype.
        let dtype = x.dtype();
        let at = |t: &Tensor<4>| {
            if t.dtype() == dtype {
                t.clone()
            } else {
                t.clone().cast(dtype)
            }
        };
        let rotate = if self.rotate.dtype() == dtype {
            self.rotate.clone()
        } else {
            self.rotate.clone().cast(dtype)
        };
        let rotated = x
            .clone()
            .reshape([b * s * h, d])
            .matmul(rotate)
            .reshape([b, s, h, d]);
        x * at(&self.cos) + rotated * at(&self.sin)
    }
}

/// Up to this many rows (batch x positions), tied-embedding logits are computed as
/// `embedding @ hidden^T` (see [`LlamaForCausalLM::logits`]).
const FEW_ROWS: usize = 64;

/// `linear` applied to [batch, seq, d_in] as one [batch * seq, d_in] product. burn keeps a
/// 3-D input as a batched product with the weight broadcast when seq is a multiple of 32 (a
/// training batch of 128 tokens), which repacks the weight once per row of the batch, forward
/// and backward; flattening first makes every projection one plain matrix product.
fn project(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    flat_linear(
        x,
        linear.weight.val(),
        linear.bias.as_ref().map(|bias| bias.val()),
    )
}

/// `burn::tensor::module::linear` on [batch, seq, d_in] flattened to [batch * seq, d_in]; see
/// [`project`].
fn flat_linear(x: Tensor<3>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<3> {
    let [b, s, d] = x.dims();
    let n = weight.dims()[1];
    burn::tensor::module::linear(x.reshape([b * s, d]), weight, bias).reshape([b, s, n])
}

fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    biased_linear(d_in, d_out, false, device)
}

fn biased_linear(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).with_bias(bias).init(device)
}

/// `x` plus `linear`'s bias (if it has one), broadcast over [batch, seq]: the packed decode
/// products carry only the weights.
fn add_bias(x: Tensor<3>, linear: &Linear) -> Tensor<3> {
    match &linear.bias {
        Some(bias) => {
            let n = bias.dims()[0];
            x + bias.val().reshape([1, 1, n])
        }
        None => x,
    }
}

fn rms_norm(width: usize, config: &LlamaConfig, device: &Device) -> RmsNorm {
    RmsNormConfig::new(width)
        .with_epsilon(config.rms_norm_eps)
        .init(device)
}

impl SelfAttention {
    fn new(config: &LlamaConfig, device: &Device) -> Self {
        let (h, kv, d) = (
            config.num_attention_heads,
            config.kv_heads(),
            config.head_dim(),
        );
        let (qkv_bias, o_bias) = (config.qkv_bias(), config.o_bias());
        let head_norm = || config.qk_norm().then(|| rms_norm(d, config, device));
        SelfAttention {
            q_proj: biased_linear(config.hidden_size, h * d, qkv_bias, device),
            k_proj: biased_linear(config.hidden_size, kv * d, qkv_bias, device),
            v_proj: biased_linear(config.hidden_size, kv * d, qkv_bias, device),
            o_proj: biased_linear(h * d, config.hidden_size, o_bias, device),
            q_norm: head_norm(),
            k_norm: head_norm(),
            n_heads: h,
            n_kv_heads: kv,
            head_dim: d,
        }
    }

    /// x: [batch, seq, hidden]; mask: [batch, kv_heads, rep * seq, keys] from
    /// [`gqa_mask`] (true = may not attend); returns [batch, seq, hidden]. With a cache, keys
    /// are the cache's whole buffer (unfilled positions masked). With `pack` (given only for
    /// decode-sized inputs), the projections are the packed ones.
    fn forward(
        &self,
        x: Tensor<3>,
        rope: &RopeTables,
        mask: Tensor<4, Bool>,
        cache: Option<(&mut KvCache, usize)>,
        pack: Option<&LayerPack>,
    ) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let (h, kv, d) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let heads = |t: Tensor<3>, n: usize| t.reshape([b, s, n, d]);
        let (q, k, v) = match pack {
            Some(pack) => {
                let qkv = pack.qkv.matmul(x);
                let part = |from: usize, to: usize, linear: &Linear| {
                    add_bias(qkv.clone().slice([0..b, 0..s, from..to]), linear)
                };
                (
                    part(0, h * d, &self.q_proj),
                    part(h * d, (h + kv) * d, &self.k_proj),
                    part((h + kv) * d, (h + 2 * kv) * d, &self.v_proj),
                )
            }
            None => (
                project(&self.q_proj, x.clone()),
                project(&self.k_proj, x.clone()),
                project(&self.v_proj, x),
            ),
        };
        // Qwen3 normalises each head before RoPE.
        let norm = |t: Tensor<4>, norm: &Option<RmsNorm>| match norm {
            Some(norm) => norm.forward(t),
            None => t,
        };
        // [batch, heads, seq, head_dim], rotated before the heads move in front of the positions.
        let q = rope.apply(norm(heads(q, h), &self.q_norm)).swap_dims(1, 2);
        let k = rope.apply(norm(heads(k, kv), &self.k_norm)).swap_dims(1, 2);
        let v = heads(v, kv).swap_dims(1, 2);
        // k, v: [batch, kv_heads, keys, head_dim]
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, k, v),
            None => (k, v),
        };
        // Grouped-query attention without copying K/V: the `rep` query heads that share a KV head
        // are contiguous (head = group * rep + r), so fold them into the query-length axis.
        let q = q.reshape([b, kv, (h / kv) * s, d]);
        let out = attention(q, k, v, Some(mask), None, AttentionModuleOptions::default());
        let out = out
            .reshape([b, h, s, d])
            .swap_dims(1, 2)
            .reshape([b, s, h * d]);
        match pack {
            Some(pack) => add_bias(pack.o.matmul(out), &self.o_proj),
            None => project(&self.o_proj, out),
        }
    }
}

/// Expands a [batch, 1, seq, keys] mask to the folded grouped-query layout [batch, kv_heads,
/// rep * seq, keys] of [`SelfAttention::forward`]; built once per forward, shared by all layers.
fn gqa_mask(mask: Tensor<4, Bool>, kv_heads: usize, rep: usize) -> Tensor<4, Bool> {
    let [b, _, s, keys] = mask.dims();
    let mask = if rep > 1 {
        mask.repeat_dim(2, rep)
    } else {
        mask
    };
    mask.expand([b, kv_heads, rep * s, keys])
}

impl Mlp {
    fn forward(&self, x: Tensor<3>, pack: Option<&LayerPack>) -> Tensor<3> {
        match pack {
            Some(pack) => {
                let [b, s, _] = x.dims();
                let both = pack.gate_up.matmul(x);
                let inner = pack.down.d_in();
                let gate = add_bias(both.clone().slice([0..b, 0..s, 0..inner]), &self.gate_proj);
                let up = add_bias(both.slice([0..b, 0..s, inner..2 * inner]), &self.up_proj);
                add_bias(pack.down.matmul(silu(gate) * up), &self.down_proj)
            }
            None => {
                let gate = silu(project(&self.gate_proj, x.clone()));
                project(&self.down_proj, gate * project(&self.up_proj, x))
            }
        }
    }
}

impl LlamaForCausalLM {
    /// A randomly initialised model of the given (validated) configuration on `device`.
    pub fn new(config: &LlamaConfig, device: &Device) -> Self {
        let norm = || rms_norm(config.hidden_size, config, device);
        let (hidden, inner, ffn_bias) = (
            config.hidden_size,
            config.intermediate_size,
            config.ffn_bias(),
        );
        let layers = (0..config.num_hidden_layers)
            .map(|_| DecoderLayer {
                self_attn: SelfAttention::new(config, device),
                mlp: Mlp {
                    gate_proj: biased_linear(hidden, inner, ffn_bias, device),
                    up_proj: biased_linear(hidden, inner, ffn_bias, device),
                    down_proj: biased_linear(inner, hidden, ffn_bias, device),
                },
                input_layernorm: norm(),
                post_attention_layernorm: norm(),
            })
            .collect();
        LlamaForCausalLM {
            model: LlamaModel {
                embed_tokens: EmbeddingConfig::new(config.vocab_size, config.hidden_size)
                    .init(device),
                layers,
                norm: norm(),
            },
            lm_head: (!config.tie_word_embeddings)
                .then(|| linear(config.hidden_size, config.vocab_size, device)),
            // A validated config has a known scaling; an invalid one falls back to none.
            inv_freq: config
                .rope()
                .unwrap_or(crate::config::RopeScaling::None)
                .inv_freq(config.rope_theta, config.head_dim())
                .into_iter()
                .map(|f| f as f32)
                .collect(),
            max_positions: config.max_position_embeddings,
        }
    }

    /// Vocabulary size (rows of the embedding).
    pub fn vocab_size(&self) -> usize {
        self.model.embed_tokens.weight.dims()[0]
    }

    /// Longest sequence the model accepts (`max_position_embeddings`).
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Number of decoder blocks.
    pub fn num_layers(&self) -> usize {
        self.model.layers.len()
    }

    /// (kv_heads, head_dim) of the attention blocks, for sizing a [`KvCache`].
    pub fn kv_shape(&self) -> (usize, usize) {
        self.model
            .layers
            .first()
            .map(|l| (l.self_attn.n_kv_heads, l.self_attn.head_dim))
            .unwrap_or((0, 0))
    }

    /// Final hidden states [batch, seq, hidden] for `tokens` [batch, seq].
    ///
    /// `positions` [batch, seq] are the RoPE positions of the new tokens; `key_mask` [batch, keys]
    /// marks real tokens (true) among all keys: the cached ones followed by the new ones, so
    /// `keys = cache.len() + seq` (or `seq` without a cache). A query attends to keys that are
    /// real and not after it. With a cache, the new keys and values are appended to it.
    pub fn forward_hidden(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        key_mask: Tensor<2, Bool>,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        self.forward_hidden_with(tokens, positions, key_mask, cache, None)
    }

    /// [`forward_hidden`](Self::forward_hidden) with the projections of decode-sized calls (at
    /// most [`decode::MAX_ROWS`] tokens in all) taken from `packed`, the CPU fast path of
    /// [`DecodeWeights`]. Larger calls ignore it. `packed` must come from this model's current
    /// weights ([`LlamaForCausalLM::pack_for_decode`]).
    pub fn forward_hidden_packed(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        key_mask: Tensor<2, Bool>,
        cache: Option<&mut KvCache>,
        packed: &DecodeWeights,
    ) -> Tensor<3> {
        self.forward_hidden_with(tokens, positions, key_mask, cache, Some(packed))
    }

    /// Packs the projection weights for few-row products on the CPU ([`DecodeWeights`]):
    /// `Some` when the weights are f32 on `flex` without autodiff (a `valid()` copy), `None` on
    /// any other device, where the ordinary path is already the right one.
    pub fn pack_for_decode(&self) -> Option<DecodeWeights> {
        let layers = self
            .model
            .layers
            .iter()
            .map(|layer| {
                let (attn, mlp) = (&layer.self_attn, &layer.mlp);
                Some(LayerPack {
                    qkv: PackedMatrix::pack(vec![
                        attn.q_proj.weight.val(),
                        attn.k_proj.weight.val(),
                        attn.v_proj.weight.val(),
                    ])?,
                    o: PackedMatrix::pack(vec![attn.o_proj.weight.val()])?,
                    gate_up: PackedMatrix::pack(vec![
                        mlp.gate_proj.weight.val(),
                        mlp.up_proj.weight.val(),
                    ])?,
                    down: PackedMatrix::pack(vec![mlp.down_proj.weight.val()])?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let head = match &self.lm_head {
            Some(head) => head.weight.val(),
            None => self.model.embed_tokens.weight.val().transpose(),
        };
        Some(DecodeWeights::new(layers, PackedMatrix::pack(vec![head])?))
    }

    fn forward_hidden_with(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        key_mask: Tensor<2, Bool>,
        mut cache: Option<&mut KvCache>,
        packed: Option<&DecodeWeights>,
    ) -> Tensor<3> {
        let [b, s] = tokens.dims();
        let device = tokens.device();
        let offset = cache.as_ref().map_or(0, |c| c.len());
        // With a cache, attention reads the cache's whole buffer (a contiguous tensor, so no
        // per-layer copy of the filled part); the positions not yet written are masked below,
        // being both unreal and after every query.
        let keys = match cache.as_ref() {
            Some(cache) => cache.capacity(),
            None => s,
        };
        let key_mask = if keys > offset + s {
            let width = keys - offset - s;
            let unfilled = Tensor::<2, Bool>::from_data(
                TensorData::new(vec![false; b * width], [b, width]),
                &device,
            );
            Tensor::cat(vec![key_mask, unfilled], 1)
        } else {
            key_mask
        };
        let (kv_heads, _) = self.kv_shape();
        let rep = self
            .model
            .layers
            .first()
            .map_or(1, |l| l.self_attn.n_heads / l.self_attn.n_kv_heads.max(1));
        let rope = RopeTables::new(positions, &self.inv_freq);
        // Causal part: query i (absolute index offset + i) sees keys j <= offset + i.
        let causal: Vec<bool> = (0..s)
            .flat_map(|i| (0..keys).map(move |j| j <= offset + i))
            .collect();
        let causal = Tensor::<2, Bool>::from_data(TensorData::new(causal, [s, keys]), &device)
            .reshape([1, 1, s, keys])
            .expand([b, 1, s, keys]);
        // Every query also sees its own key, real or not: a padding query (left of a short
        // prompt) would otherwise have no key at all, and a softmax over nothing is NaN on some
        // backends (GPU flash kernels), which can leak into gradients. Its output is never used.
        let own: Vec<bool> = (0..s)
            .flat_map(|i| (0..keys).map(move |j| j == offset + i))
            .collect();
        let own = Tensor::<2, Bool>::from_data(TensorData::new(own, [s, keys]), &device)
            .reshape([1, 1, s, keys])
            .expand([b, 1, s, keys]);
        let real = key_mask.reshape([b, 1, 1, keys]).expand([b, 1, s, keys]);
        let blocked = gqa_mask(causal.bool_and(real.bool_or(own)).bool_not(), kv_heads, rep);

        // The packed projections serve decode-sized calls only; larger ones use burn's product.
        let packed = packed.filter(|_| b * s <= decode::MAX_ROWS);
        let mut x = self.model.embed_tokens.forward(tokens);
        for (index, layer) in self.model.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| (c, index));
            let pack = packed.map(|p| &p.layers[index]);
            let attn = layer.self_attn.forward(
                layer.input_layernorm.forward(x.clone()),
                &rope,
                blocked.clone(),
                layer_cache,
                pack,
            );
            x = x + attn;
            x = x.clone()
                + layer
                    .mlp
                    .forward(layer.post_attention_layernorm.forward(x), pack);
        }
        if let Some(cache) = cache {
            cache.advance(s);
        }
        self.model.norm.forward(x)
    }

    /// [`logits`](Self::logits) through the packed output projection when `hidden` holds at
    /// most [`decode::MAX_ROWS`] positions.
    pub fn logits_packed(&self, hidden: Tensor<3>, packed: &DecodeWeights) -> Tensor<3> {
        let [b, s, _] = hidden.dims();
        if b * s <= decode::MAX_ROWS {
            packed.head.matmul(hidden)
        } else {
            self.logits(hidden)
        }
    }

    /// Projects hidden states [batch, seq, hidden] to logits [batch, seq, vocab].
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => project(head, hidden),
            None => {
                let weight = self.model.embed_tokens.weight.val(); // [vocab, hidden]
                let [b, s, h] = hidden.dims();
                if b * s <= FEW_ROWS {
                    // Decode-sized input: weight @ hidden^T reads the [vocab, hidden] embedding
                    // row by row, once; hidden @ weight^T makes the matmul pack (copy) it.
                    let vocab = weight.dims()[0];
                    weight
                        .matmul(hidden.reshape([b * s, h]).transpose())
                        .transpose()
                        .reshape([b, s, vocab])
                } else {
                    flat_linear(hidden, weight.transpose(), None)
                }
            }
        }
    }

    /// Logits [batch, seq, vocab] for a left-padded batch without cache; `attention_mask`
    /// [batch, seq] is true at real tokens. Positions count real tokens from 0 in each row, as
    /// Hugging Face does for left padding.
    pub fn forward(&self, tokens: Tensor<2, Int>, attention_mask: Tensor<2, Bool>) -> Tensor<3> {
        let positions = positions_from_mask(attention_mask.clone());
        self.logits(self.forward_hidden(tokens, positions, attention_mask, None))
    }

    /// Log-probability of each next token: element [b, t] is log p(tokens[b, t + 1] | tokens[b,
    /// ..=t]), shape [batch, seq - 1]. Positions where either token is padding hold meaningless
    /// values; mask them with `attention_mask[:, 1:]`.
    pub fn token_logprobs(
        &self,
        tokens: Tensor<2, Int>,
        attention_mask: Tensor<2, Bool>,
    ) -> Tensor<2> {
        self.token_logprobs_with(tokens, attention_mask, &LogitPolicy::identity())
    }

    /// [`LlamaForCausalLM::token_logprobs`] under `policy`'s distribution (temperature, blocked
    /// ids): the log-probs the RL learner and policy evaluation use.
    pub fn token_logprobs_with(
        &self,
        tokens: Tensor<2, Int>,
        attention_mask: Tensor<2, Bool>,
        policy: &LogitPolicy,
    ) -> Tensor<2> {
        let [b, s] = tokens.dims();
        let device = tokens.device();
        if s < 2 {
            return Tensor::zeros([b, 0], &device);
        }
        let positions = positions_from_mask(attention_mask.clone());
        let hidden = self.forward_hidden(tokens.clone(), positions, attention_mask, None);
        let h = hidden.dims()[2];
        // The last position predicts nothing: project only the first s - 1 hidden states, which
        // is much cheaper than slicing [batch, seq, vocab] logits (and their gradient).
        let logits = self.logits(hidden.slice([0..b, 0..s - 1, 0..h]));
        // A half-precision model's logits are normalised in f32.
        let logits = if logits.dtype() == DType::F32 {
            logits
        } else {
            logits.cast(DType::F32)
        };
        policy.select(logits, tokens.slice([0..b, 1..s]))
    }
}

/// RoPE positions for a left-padded batch: the index of each token among its row's real tokens
/// (0 at padding).
pub fn positions_from_mask(attention_mask: Tensor<2, Bool>) -> Tensor<2, Int> {
    (attention_mask.int().cumsum(1) - 1).clamp_min(0)
}

/// Gathers log p(tokens[:, t + 1]) from logits[:, t]: [batch, seq, vocab] -> [batch, seq - 1].
///
/// When the logits come from the model, [`LlamaForCausalLM::token_logprobs`] is cheaper: it
/// never computes the last position's logits, so nothing vocabulary-sized is sliced.
pub fn gather_logprobs(logits: Tensor<3>, tokens: Tensor<2, Int>) -> Tensor<2> {
    let [b, s, v] = logits.dims();
    select_logprobs(
        logits.slice([0..b, 0..s - 1, 0..v]),
        tokens.slice([0..b, 1..s]),
    )
}

/// log softmax(logits)[b, t, ids[b, t]]: [batch, n, vocab] and [batch, n] -> [batch, n].
///
/// Computed as `logit - logsumexp(logits)` (max-shifted, the max detached), which equals
/// `log_softmax(..).gather(..)` but materialises two fewer vocabulary-sized tensors in the
/// forward and backward passes.
pub fn select_logprobs(logits: Tensor<3>, ids: Tensor<2, Int>) -> Tensor<2> {
    let [b, n, _] = logits.dims();
    let picked = logits.clone().gather(2, ids.reshape([b, n, 1]));
    let max = logits.clone().detach().max_dim(2);
    let log_sum_exp = (logits - max.clone()).exp().sum_dim(2).log() + max;
    (picked - log_sum_exp).reshape([b, n])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::log_softmax;

    fn batch(device: &Device) -> (Tensor<2, Int>, Tensor<2, Bool>) {
        let ids: Vec<i64> = vec![0, 0, 5, 9, 3, 7, 1, 2, 4, 8, 6, 11];
        let mask = vec![
            false, false, true, true, true, true, true, true, true, true, true, true,
        ];
        (
            Tensor::from_data(TensorData::new(ids, [2, 6]), device),
            Tensor::from_data(TensorData::new(mask, [2, 6]), device),
        )
    }

    #[test]
    fn token_logprobs_match_log_softmax_of_the_full_logits() {
        let device = Device::flex();
        let model = LlamaForCausalLM::new(&LlamaConfig::tiny(), &device);
        let (tokens, mask) = batch(&device);
        let logits = model.forward(tokens.clone(), mask.clone());
        let [b, s, v] = logits.dims();
        let next = tokens.clone().slice([0..b, 1..s]).reshape([b, s - 1, 1]);
        let expected = log_softmax(logits.clone().slice([0..b, 0..s - 1, 0..v]), 2)
            .gather(2, next)
            .reshape([b, s - 1]);
        for got in [
            model.token_logprobs(tokens.clone(), mask),
            gather_logprobs(logits, tokens),
        ] {
            assert_eq!(got.dims(), [b, s - 1]);
            got.into_data()
                .assert_approx_eq::<f32>(&expected.clone().into_data(), Default::default());
        }
    }

    #[test]
    fn packed_decode_steps_match_the_ordinary_path() {
        let device = Device::flex();
        for config in [LlamaConfig::tiny(), {
            // Untied head, GQA (2 query heads per KV head).
            let mut c = LlamaConfig::tiny();
            c.tie_word_embeddings = false;
            c.num_key_value_heads = Some(c.num_attention_heads / 2);
            c
        }] {
            let model = LlamaForCausalLM::new(&config, &device);
            let packed = model.pack_for_decode().expect("flex weights pack");
            let (tokens, mask) = batch(&device);
            let (kv, d) = model.kv_shape();
            let mut caches = [0, 1].map(|_| KvCache::new(model.num_layers(), 2, kv, d, 8, &device));
            let positions = positions_from_mask(mask.clone());
            for cache in caches.iter_mut() {
                model.forward_hidden(tokens.clone(), positions.clone(), mask.clone(), Some(cache));
            }
            // One decode step (2 rows: the packed path) from the same cache, both ways.
            let next =
                Tensor::<2, Int>::from_data(TensorData::new(vec![3i64, 10], [2, 1]), &device);
            let pos = Tensor::<2, Int>::from_data(TensorData::new(vec![4i64, 6], [2, 1]), &device);
            let keys = Tensor::cat(
                vec![
                    mask.clone(),
                    Tensor::<2, Bool>::from_data(TensorData::new(vec![true; 2], [2, 1]), &device),
                ],
                1,
            );
            let [plain, fast] = &mut caches;
            let expected = model.logits(model.forward_hidden(
                next.clone(),
                pos.clone(),
                keys.clone(),
                Some(plain),
            ));
            let got = model.logits_packed(
                model.forward_hidden_packed(next, pos, keys, Some(fast), &packed),
                &packed,
            );
            got.into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Default::default());
        }
    }

    #[test]
    fn one_token_rows_have_no_logprobs() {
        let device = Device::flex();
        let model = LlamaForCausalLM::new(&LlamaConfig::tiny(), &device);
        let (tokens, mask) = batch(&device);
        let logprobs = model.token_logprobs(tokens.slice([0..2, 5..6]), mask.slice([0..2, 5..6]));
        assert_eq!(logprobs.dims(), [2, 0]);
    }
}

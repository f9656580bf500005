//! Loading a pretrained model from disk in one call: a GGUF file (llama.cpp format, quantized
//! weights dequantized to f32) or a Hugging Face directory (`config.json`, safetensors,
//! `tokenizer.json`), together with its tokenizer.

use std::path::Path;

use burn::tensor::{Bytes, DType, Device};
use burn_store::burn_pack::Tensor as PackTensor;
use burn_store::{ModuleSnapshot, PyTorchToBurnAdapter};

use crate::config::{Family, LlamaConfig, TokenIds};
use crate::gguf::{GgufFile, unpermute_qk};
use crate::model::LlamaForCausalLM;
use crate::tokenizer::Tokenizer;
use crate::weights::{hf_name, load_hf_dir};
use crate::{ModelError, Result};

/// A model with its configuration and tokenizer.
#[derive(Debug)]
pub struct Pretrained {
    /// The model's configuration.
    pub config: LlamaConfig,
    /// The model.
    pub model: LlamaForCausalLM,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
}

/// Loads a `.gguf` file or a Hugging Face model directory (which must hold `tokenizer.json`),
/// or a Hugging Face repository id (`Qwen/Qwen2.5-0.5B-Instruct`) found in the local cache
/// ([`crate::hub::resolve`]; never downloaded).
pub fn load_pretrained(path: impl AsRef<Path>, device: &Device) -> Result<Pretrained> {
    let path = &crate::hub::resolve(path.as_ref())?;
    if path.is_dir() {
        let (config, model) = load_hf_dir(path, device)?;
        let tokenizer = Tokenizer::from_file(path.join("tokenizer.json"))?;
        return Ok(Pretrained {
            config,
            model,
            tokenizer,
        });
    }
    let gguf = GgufFile::open(path)?;
    let config = llama_config_from_gguf(&gguf)?;
    let model = load_gguf_weights(&gguf, &config, device)?;
    let tokenizer = Tokenizer::from_gguf(&gguf)?;
    Ok(Pretrained {
        config,
        model,
        tokenizer,
    })
}

/// The decoder configuration stored in a GGUF file's `<architecture>.*` metadata (`llama`,
/// `qwen2`, `qwen3`).
pub fn llama_config_from_gguf(gguf: &GgufFile) -> Result<LlamaConfig> {
    let arch = gguf.get_str("general.architecture")?;
    let unsupported = |reason: String| ModelError::Format {
        path: gguf.path().to_path_buf(),
        format: "GGUF",
        reason,
    };
    let family = Family::from_model_type(arch).ok_or_else(|| {
        unsupported(format!(
            "architecture `{arch}` is not supported (supported: llama, qwen2, qwen3)"
        ))
    })?;
    let key = |name: &str| format!("{arch}.{name}");
    // llama.cpp bakes Llama 3.1+ RoPE scaling into a `rope_freqs` tensor and other scalings into
    // `rope.scaling.*` keys; neither is read here, so such a file is refused rather than run
    // with unscaled positions.
    if gguf.tensor_info("rope_freqs.weight").is_ok() {
        return Err(unsupported(
            "RoPE frequency factors (`rope_freqs.weight`, Llama 3.1+ scaling) are not supported \
             in GGUF files; load the Hugging Face directory, whose `rope_scaling` is"
                .into(),
        ));
    }
    if let Ok(kind) = gguf.get_str(&key("rope.scaling.type"))
        && kind != "none"
    {
        return Err(unsupported(format!(
            "RoPE scaling `{kind}` in GGUF metadata is not supported; load the Hugging Face \
             directory"
        )));
    }
    let heads = gguf.get_usize(&key("attention.head_count"))?;
    let vocab_size = match gguf.get_usize(&key("vocab_size")) {
        Ok(v) => v,
        Err(_) => gguf.get_array("tokenizer.ggml.tokens")?.len(),
    };
    let optional_id = |name: &str| gguf.get_u32(name).ok();
    let config = LlamaConfig {
        model_type: (family != Family::Llama).then(|| family.model_type().to_string()),
        architectures: None,
        vocab_size,
        hidden_size: gguf.get_usize(&key("embedding_length"))?,
        intermediate_size: gguf.get_usize(&key("feed_forward_length"))?,
        num_hidden_layers: gguf.get_usize(&key("block_count"))?,
        num_attention_heads: heads,
        num_key_value_heads: Some(
            gguf.get_usize(&key("attention.head_count_kv"))
                .unwrap_or(heads),
        ),
        head_dim: gguf.get_usize(&key("attention.key_length")).ok(),
        rope_theta: gguf.get_f64(&key("rope.freq_base")).unwrap_or(10_000.0),
        rms_norm_eps: gguf.get_f64(&key("attention.layer_norm_rms_epsilon"))?,
        tie_word_embeddings: gguf.tensor_info("output.weight").is_err(),
        max_position_embeddings: gguf.get_usize(&key("context_length"))?,
        hidden_act: "silu".into(),
        attention_bias: false,
        mlp_bias: false,
        rope_parameters: None,
        rope_scaling: None,
        use_sliding_window: false,
        layer_types: None,
        bos_token_id: optional_id("tokenizer.ggml.bos_token_id"),
        eos_token_id: optional_id("tokenizer.ggml.eos_token_id").map(TokenIds::One),
        pad_token_id: optional_id("tokenizer.ggml.padding_token_id"),
    };
    config.validate().map_err(|e| ModelError::Format {
        path: gguf.path().to_path_buf(),
        format: "GGUF",
        reason: format!("metadata gives an invalid config: {e}"),
    })?;
    Ok(config)
}

/// Hugging Face name of a GGUF tensor of a llama, qwen2 or qwen3 model, or None for tensors the
/// model ignores.
fn hf_name_of(gguf_name: &str) -> Option<String> {
    let fixed = match gguf_name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let hf = match part {
        "attn_norm.weight" => "input_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_q.bias" => "self_attn.q_proj.bias",
        "attn_k.bias" => "self_attn.k_proj.bias",
        "attn_v.bias" => "self_attn.v_proj.bias",
        "attn_q_norm.weight" => "self_attn.q_norm.weight",
        "attn_k_norm.weight" => "self_attn.k_norm.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "attn_output.bias" => "self_attn.o_proj.bias",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}"))
}

/// Builds a model of `config` from a GGUF file's tensors: dequantized to f32, renamed to Hugging
/// Face names, and for the llama architecture q/k rows un-permuted from llama.cpp's layout back to
/// Hugging Face's rotate-half layout (llama.cpp's converter permutes only llama's; Qwen's rotate
/// in the rotate-half ("NEOX") layout there too). Every model parameter must be found with the
/// right shape.
pub fn load_gguf_weights(
    gguf: &GgufFile,
    config: &LlamaConfig,
    device: &Device,
) -> Result<LlamaForCausalLM> {
    // Only llama's q/k rows are permuted by llama.cpp's converter.
    let llama_layout = matches!(config.family(), Ok(Family::Llama));
    let mut tensors = Vec::new();
    for info in gguf.tensors() {
        let Some(name) = hf_name_of(info.name()) else {
            log::warn!(
                "{}: ignoring tensor `{}`",
                gguf.path().display(),
                info.name()
            );
            continue;
        };
        let (shape, mut data) = gguf.tensor_f32(info.name())?;
        let heads = if !llama_layout {
            None
        } else if name.ends_with("q_proj.weight") {
            Some(config.num_attention_heads)
        } else if name.ends_with("k_proj.weight") {
            Some(config.kv_heads())
        } else {
            None
        };
        if let Some(heads) = heads {
            let [rows, cols] = shape[..] else {
                return Err(ModelError::WeightMismatch(format!(
                    "`{}` has shape {shape:?}, expected a matrix",
                    info.name()
                )));
            };
            unpermute_qk(&mut data, [rows, cols], heads)?;
        }
        tensors.push(PackTensor::new(
            name,
            DType::F32,
            shape,
            None,
            Bytes::from_elems(data),
        ));
    }
    let mut model = LlamaForCausalLM::new(config, device);
    let result = model.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    let path = gguf.path().display();
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        return Err(ModelError::WeightMismatch(format!(
            "{path}: {}",
            errors.join("; ")
        )));
    }
    if !result.missing.is_empty() {
        let names: Vec<String> = result.missing.iter().map(|(n, _)| hf_name(n)).collect();
        return Err(ModelError::WeightMismatch(format!(
            "{path}: tensors missing: {}",
            names.join(", ")
        )));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_map_to_hf_names() {
        assert_eq!(
            hf_name_of("blk.12.attn_q.weight").as_deref(),
            Some("model.layers.12.self_attn.q_proj.weight")
        );
        assert_eq!(
            hf_name_of("token_embd.weight").as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(
            hf_name_of("blk.0.ffn_norm.weight").as_deref(),
            Some("model.layers.0.post_attention_layernorm.weight")
        );
        assert_eq!(hf_name_of("rope_freqs.weight"), None);
        assert_eq!(hf_name_of("blk.x.attn_q.weight"), None);
    }
}

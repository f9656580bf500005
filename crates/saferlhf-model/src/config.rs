//! Model configuration: the fields of a Hugging Face `config.json` of the decoder families this
//! crate implements ([`Family`]: Llama 2/3.x and SmolLM, Qwen2/Qwen2.5, Qwen3), named presets, and
//! the checks that reject a configuration the decoder cannot run.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{ModelError, Result};

/// A token id or a list of them, as Hugging Face writes `eos_token_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// One id.
    One(u32),
    /// Several ids (any of them ends a sequence).
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a vector.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// The decoder families this crate implements. They share one pre-norm decoder (RMSNorm, RoPE in
/// the rotate-half layout, grouped-query attention, SwiGLU) and differ in a few places:
///
/// | family | `model_type` | q/k/v bias | o bias | q/k RMSNorm per head |
/// |---|---|---|---|---|
/// | Llama (2, 3.x, SmolLM) | `llama` | `attention_bias` | `attention_bias` | no |
/// | Qwen2, Qwen2.5 | `qwen2` | yes | no | no |
/// | Qwen3 | `qwen3` | `attention_bias` | `attention_bias` | yes |
///
/// (as in transformers' `modeling_llama.py`, `modeling_qwen2.py`, `modeling_qwen3.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `LlamaForCausalLM`.
    Llama,
    /// `Qwen2ForCausalLM`.
    Qwen2,
    /// `Qwen3ForCausalLM`.
    Qwen3,
}

impl Family {
    /// Every family, in table order.
    pub const ALL: [Family; 3] = [Family::Llama, Family::Qwen2, Family::Qwen3];

    /// The family of a `model_type` (`llama`, `qwen2`, `qwen3`).
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.model_type() == model_type)
    }

    /// The family of an `architectures` entry (`Qwen2ForCausalLM`, ...).
    pub fn from_architecture(architecture: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.architecture() == architecture)
    }

    /// `config.json`'s `model_type`.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Qwen2 => "qwen2",
            Family::Qwen3 => "qwen3",
        }
    }

    /// The transformers class, `config.json`'s `architectures` entry.
    pub fn architecture(self) -> &'static str {
        match self {
            Family::Llama => "LlamaForCausalLM",
            Family::Qwen2 => "Qwen2ForCausalLM",
            Family::Qwen3 => "Qwen3ForCausalLM",
        }
    }
}

/// The rotary-embedding frequency scaling of a configuration (`rope_scaling`, or transformers 5's
/// `rope_parameters`), as transformers' `modeling_rope_utils.py` computes it.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// No scaling (`default`), and `dynamic` (dynamic NTK): that one changes the frequencies only
    /// for sequences longer than `max_position_embeddings`, which this crate never runs.
    None,
    /// `linear`: every inverse frequency divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// `llama3` (Llama 3.1+): low frequencies divided by `factor`, high ones kept, the band
    /// between interpolated.
    Llama3 {
        /// Divisor of the low frequencies.
        factor: f64,
        /// Wavelengths above `original_max_position_embeddings / low_freq_factor` are scaled.
        low_freq_factor: f64,
        /// Wavelengths below `original_max_position_embeddings / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The context length of pre-training.
        original_max_position_embeddings: f64,
    },
}

/// RoPE types transformers knows that this crate does not implement (named in the error).
const KNOWN_UNSUPPORTED_ROPE: [&str; 3] = ["yarn", "longrope", "su"];

impl RopeScaling {
    /// The inverse frequencies θ^(-2i/d) (i < d/2) of `head_dim` d, scaled.
    pub fn inv_freq(&self, theta: f64, head_dim: usize) -> Vec<f64> {
        let half = head_dim / 2;
        (0..half)
            .map(|i| {
                let base = 1.0 / theta.powf((2 * i) as f64 / head_dim as f64);
                match *self {
                    RopeScaling::None => base,
                    RopeScaling::Linear { factor } => base / factor,
                    RopeScaling::Llama3 {
                        factor,
                        low_freq_factor,
                        high_freq_factor,
                        original_max_position_embeddings: context,
                    } => {
                        let wavelen = 2.0 * std::f64::consts::PI / base;
                        let (low_wavelen, high_wavelen) =
                            (context / low_freq_factor, context / high_freq_factor);
                        if wavelen < high_wavelen {
                            base
                        } else if wavelen > low_wavelen {
                            base / factor
                        } else {
                            let smooth = (context / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * base / factor + smooth * base
                        }
                    }
                }
            })
            .collect()
    }

    /// Parses a `rope_scaling` / `rope_parameters` object (`rope_type`, or the older `type`);
    /// `field` names it in errors.
    fn parse(value: &serde_json::Value, field: &str) -> Result<Self> {
        let bad = |reason: String| ModelError::Config {
            field: field.into(),
            reason,
        };
        let kind = value
            .get("rope_type")
            .or_else(|| value.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or("default");
        let number = |key: &str| -> Result<f64> {
            let v = value
                .get(key)
                .ok_or_else(|| bad(format!("`{kind}` scaling needs `{key}`")))?;
            v.as_f64()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| bad(format!("`{key}` must be a positive number, found {v}")))
        };
        match kind {
            "default" | "dynamic" => Ok(RopeScaling::None),
            "linear" => Ok(RopeScaling::Linear {
                factor: number("factor")?,
            }),
            "llama3" => {
                let (low_freq_factor, high_freq_factor) =
                    (number("low_freq_factor")?, number("high_freq_factor")?);
                if high_freq_factor <= low_freq_factor {
                    return Err(bad(format!(
                        "high_freq_factor ({high_freq_factor}) must exceed low_freq_factor \
                         ({low_freq_factor})"
                    )));
                }
                Ok(RopeScaling::Llama3 {
                    factor: number("factor")?,
                    low_freq_factor,
                    high_freq_factor,
                    original_max_position_embeddings: number("original_max_position_embeddings")?,
                })
            }
            other => Err(bad(format!(
                "RoPE type `{other}` is not supported (supported: default, dynamic, linear, \
                 llama3{})",
                if KNOWN_UNSUPPORTED_ROPE.contains(&other) {
                    "; transformers applies it, this crate does not yet"
                } else {
                    ""
                }
            ))),
        }
    }
}

/// Configuration of a decoder of one of the [`Family`]s (the name is historical: Llama was the
/// first).
///
/// Field names and meanings are those of Hugging Face's `LlamaConfig` / `Qwen2Config` /
/// `Qwen3Config`, so a `config.json` from the Hub deserializes directly (keys this crate does not
/// use, such as `initializer_range`, are ignored; keys that would change the computation in a way
/// this crate does not implement, such as a sliding attention window or `yarn` RoPE scaling, are
/// rejected by [`LlamaConfig::validate`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// `llama`, `qwen2` or `qwen3` ([`Family`]); absent means `llama` unless `architectures`
    /// names another family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// The transformers classes (`["Qwen2ForCausalLM"]`); consulted when `model_type` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    /// Number of tokens in the vocabulary (rows of the embedding).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU feed-forward layer.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention); defaults to `num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// Width of one head; defaults to `hidden_size / num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// RoPE base frequency θ.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// Whether the output projection reuses the token embedding.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Longest sequence (prompt + response) the model accepts.
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    /// Activation of the feed-forward layer; only `silu` is implemented.
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    /// Bias on the attention projections (Llama, Qwen3; Qwen2 always has q/k/v biases and no o
    /// bias, see [`Family`]).
    #[serde(default)]
    pub attention_bias: bool,
    /// Bias on the feed-forward projections (Llama only).
    #[serde(default)]
    pub mlp_bias: bool,
    /// transformers >= 5 writes RoPE settings here (`{"rope_theta": .., "rope_type": "llama3",
    /// "factor": ..}`) instead of a top-level `rope_theta` and `rope_scaling`;
    /// [`LlamaConfig::from_json_str`] folds it into those two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<serde_json::Value>,
    /// RoPE frequency scaling ([`RopeScaling`]: `linear`, `dynamic`, `llama3`); absent or null
    /// means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<serde_json::Value>,
    /// Qwen2/Qwen3 sliding-window attention; not implemented, must be false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_sliding_window: bool,
    /// transformers 5's per-layer attention kinds; only `full_attention` is implemented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_types: Option<Vec<String>>,
    /// Beginning-of-sequence token id.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token id(s).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_max_position_embeddings() -> usize {
    2048
}
fn default_hidden_act() -> String {
    "silu".to_string()
}

impl LlamaConfig {
    /// The `tiny` model preset used by tests and benchmarks (not the learner's character-level
    /// `char-tiny`): hidden 256, 4 layers, 4 heads, FFN 1024, vocabulary 512.
    pub fn tiny() -> Self {
        LlamaConfig {
            model_type: None,
            architectures: None,
            vocab_size: 512,
            hidden_size: 256,
            intermediate_size: 1024,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_key_value_heads: Some(4),
            head_dim: None,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-5,
            tie_word_embeddings: true,
            max_position_embeddings: 1024,
            hidden_act: default_hidden_act(),
            attention_bias: false,
            mlp_bias: false,
            rope_parameters: None,
            rope_scaling: None,
            use_sliding_window: false,
            layer_types: None,
            bos_token_id: Some(1),
            eos_token_id: Some(TokenIds::One(2)),
            pad_token_id: Some(0),
        }
    }

    /// The smallest preset, for unit tests and the learner's character presets: hidden 32, FFN
    /// 64, 2 layers, 4 heads, 2 key/value heads, tied embeddings, no bos/eos, pad 0, and the given
    /// vocabulary size.
    pub fn micro(vocab_size: usize) -> Self {
        LlamaConfig {
            vocab_size,
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_key_value_heads: Some(2),
            bos_token_id: None,
            eos_token_id: None,
            ..Self::tiny()
        }
    }

    /// SmolLM2-135M(-Instruct): 30 layers, hidden 576, 9 heads, 3 key/value heads, FFN 1536,
    /// vocabulary 49152, tied embeddings, θ = 100000.
    pub fn smollm2_135m() -> Self {
        LlamaConfig {
            vocab_size: 49_152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_hidden_layers: 30,
            num_attention_heads: 9,
            num_key_value_heads: Some(3),
            rope_theta: 100_000.0,
            max_position_embeddings: 8192,
            pad_token_id: Some(2),
            ..Self::tiny()
        }
    }

    /// A preset by name (`tiny`, `smollm2-135m`).
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "smollm2-135m" | "smollm2_135m" => Ok(Self::smollm2_135m()),
            other => Err(ModelError::Config {
                field: "preset".into(),
                reason: format!("unknown preset `{other}` (known: tiny, smollm2-135m)"),
            }),
        }
    }

    /// Reads and validates a Hugging Face `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_json_str(&text).map_err(|e| match e {
            ModelError::Format { format, reason, .. } => ModelError::Format {
                path: path.to_path_buf(),
                format,
                reason,
            },
            ModelError::Config { field, reason } => ModelError::Config {
                field,
                reason: format!("{reason} (in {})", path.display()),
            },
            other => other,
        })
    }

    /// Parses and validates the text of a Hugging Face `config.json` (transformers 4 or 5).
    pub fn from_json_str(text: &str) -> Result<Self> {
        let mut config: LlamaConfig =
            serde_json::from_str(text).map_err(|e| ModelError::Format {
                path: "config.json".into(),
                format: "config.json",
                reason: e.to_string(),
            })?;
        if let Some(params) = config.rope_parameters.take().filter(|p| !p.is_null()) {
            if let Some(theta) = params.get("rope_theta") {
                config.rope_theta = theta.as_f64().ok_or_else(|| ModelError::Config {
                    field: "rope_parameters.rope_theta".into(),
                    reason: format!("expected a number, found {theta}"),
                })?;
            }
            // The scaling part (everything but θ) becomes `rope_scaling`, checked below.
            let mut scaling = params;
            if let Some(map) = scaling.as_object_mut() {
                map.remove("rope_theta");
            }
            RopeScaling::parse(&scaling, "rope_parameters")?;
            let is_default = scaling
                .get("rope_type")
                .and_then(|t| t.as_str())
                .is_none_or(|t| t == "default");
            if !is_default {
                config.rope_scaling = Some(scaling);
            }
        }
        // One spelling per family (`model_type` for Qwen, nothing for Llama), so that configs
        // compare equal however they were written (a score model's `architectures` names its
        // head, not the family).
        let family = config.family()?;
        config.architectures = None;
        config.model_type = (family != Family::Llama).then(|| family.model_type().to_string());
        config.validate()?;
        Ok(config)
    }

    /// Writes the configuration as a Hugging Face `config.json` (with the family's
    /// `architectures` and `model_type` so transformers recognises it).
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(map) = &mut value {
            let family = self.family().unwrap_or(Family::Llama);
            map.insert(
                "architectures".into(),
                serde_json::json!([family.architecture()]),
            );
            map.insert("model_type".into(), serde_json::json!(family.model_type()));
            map.insert("torch_dtype".into(), serde_json::json!("float32"));
        }
        value
    }

    /// The family: from `model_type`, else from `architectures`, else Llama. An unknown
    /// `model_type` (or, without one, an unknown architecture) is an error naming it.
    pub fn family(&self) -> Result<Family> {
        let supported = |names: fn(Family) -> &'static str| Family::ALL.map(names).join(", ");
        if let Some(model_type) = &self.model_type {
            return Family::from_model_type(model_type).ok_or_else(|| ModelError::Config {
                field: "model_type".into(),
                reason: format!(
                    "`{model_type}` is not supported (supported: {})",
                    supported(Family::model_type)
                ),
            });
        }
        match self.architectures.as_deref() {
            None | Some([]) => Ok(Family::Llama),
            Some(names) => names
                .iter()
                .find_map(|n| Family::from_architecture(n))
                .ok_or_else(|| ModelError::Config {
                    field: "architectures".into(),
                    reason: format!(
                        "{names:?} names no supported class (supported: {})",
                        supported(Family::architecture)
                    ),
                }),
        }
    }

    /// The RoPE frequency scaling ([`RopeScaling::None`] when absent).
    pub fn rope(&self) -> Result<RopeScaling> {
        match &self.rope_scaling {
            Some(value) if !value.is_null() => RopeScaling::parse(value, "rope_scaling"),
            _ => Ok(RopeScaling::None),
        }
    }

    /// Whether the q/k/v projections have biases.
    pub fn qkv_bias(&self) -> bool {
        matches!(self.family(), Ok(Family::Qwen2)) || self.attention_bias
    }

    /// Whether the output projection of attention has a bias.
    pub fn o_bias(&self) -> bool {
        !matches!(self.family(), Ok(Family::Qwen2)) && self.attention_bias
    }

    /// Whether the feed-forward projections have biases (only Llama reads `mlp_bias`).
    pub fn ffn_bias(&self) -> bool {
        matches!(self.family(), Ok(Family::Llama)) && self.mlp_bias
    }

    /// Whether queries and keys are RMS-normalised per head before RoPE (Qwen3).
    pub fn qk_norm(&self) -> bool {
        matches!(self.family(), Ok(Family::Qwen3))
    }

    /// Number of key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// End-of-sequence ids (empty when the config names none).
    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }

    /// Checks every field the decoder depends on; the error names the field.
    pub fn validate(&self) -> Result<()> {
        fn bad(field: &str, reason: impl Into<String>) -> Result<()> {
            Err(ModelError::Config {
                field: field.into(),
                reason: reason.into(),
            })
        }
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if value == 0 {
                return bad(field, "must be positive");
            }
        }
        let kv = self.kv_heads();
        if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
            return bad(
                "num_key_value_heads",
                format!(
                    "{kv} must be positive and divide num_attention_heads ({})",
                    self.num_attention_heads
                ),
            );
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(
                "hidden_size",
                format!(
                    "{} is not divisible by num_attention_heads ({})",
                    self.hidden_size, self.num_attention_heads
                ),
            );
        }
        if !self.head_dim().is_multiple_of(2) || self.head_dim() == 0 {
            return bad("head_dim", "must be positive and even (RoPE rotates pairs)");
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return bad("rope_theta", "must be a positive number");
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return bad("rms_norm_eps", "must be a positive number");
        }
        if self.hidden_act != "silu" {
            return bad(
                "hidden_act",
                format!("`{}` is not supported (only silu)", self.hidden_act),
            );
        }
        self.family()?;
        self.rope()?;
        if self.use_sliding_window {
            return bad(
                "use_sliding_window",
                "sliding-window attention is not supported (it equals full attention while a \
                 sequence is no longer than `sliding_window`: a model used only on such sequences \
                 may set it to false)",
            );
        }
        if let Some(kind) = self
            .layer_types
            .iter()
            .flatten()
            .find(|k| k.as_str() != "full_attention")
        {
            return bad(
                "layer_types",
                format!("`{kind}` layers are not supported (only full_attention)"),
            );
        }
        for id in self
            .eos_ids()
            .into_iter()
            .chain(self.bos_token_id)
            .chain(self.pad_token_id)
        {
            if id as usize >= self.vocab_size {
                return bad(
                    "eos_token_id/bos_token_id/pad_token_id",
                    format!(
                        "token id {id} is outside the vocabulary ({})",
                        self.vocab_size
                    ),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate() {
        LlamaConfig::tiny().validate().unwrap();
        LlamaConfig::smollm2_135m().validate().unwrap();
        assert_eq!(LlamaConfig::smollm2_135m().head_dim(), 64);
        assert!(LlamaConfig::preset("huge").is_err());
    }

    #[test]
    fn hf_config_json_deserializes_ignoring_extra_keys() {
        let json = r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":128,
            "hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,
            "num_key_value_heads":2,"rope_theta":10000.0,"rms_norm_eps":1e-05,
            "tie_word_embeddings":true,"eos_token_id":[2,3],"initializer_range":0.02,
            "rope_scaling":null}"#;
        let config = LlamaConfig::from_json_str(json).unwrap();
        assert_eq!(config.kv_heads(), 2);
        assert_eq!(config.eos_ids(), vec![2, 3]);
        let back = LlamaConfig::from_json_str(&config.to_hf_json().to_string()).unwrap();
        assert_eq!(back, config);
        // A Qwen config round-trips as Qwen.
        let qwen = json.replace("\"llama\"", "\"qwen2\"");
        let config = LlamaConfig::from_json_str(&qwen).unwrap();
        assert_eq!(config.family().unwrap(), Family::Qwen2);
        let back = LlamaConfig::from_json_str(&config.to_hf_json().to_string()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn transformers5_rope_parameters_are_folded_in() {
        let json = r#"{"vocab_size":128,"hidden_size":64,"intermediate_size":128,
            "num_hidden_layers":2,"num_attention_heads":4,
            "rope_parameters":{"rope_theta":500000.0,"rope_type":"default"}}"#;
        let config = LlamaConfig::from_json_str(json).unwrap();
        assert_eq!(config.rope_theta, 500000.0);
        assert_eq!(config.rope().unwrap(), RopeScaling::None);
        let json = json.replace("\"default\"", "\"llama3\"");
        let err = LlamaConfig::from_json_str(&json).unwrap_err().to_string();
        assert!(
            err.contains("rope_parameters") && err.contains("factor"),
            "{err}"
        );
        let json = json.replace(
            "\"llama3\"",
            "\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\
             \"original_max_position_embeddings\":8192",
        );
        let config = LlamaConfig::from_json_str(&json).unwrap();
        assert_eq!(config.rope_theta, 500000.0);
        assert!(matches!(
            config.rope().unwrap(),
            RopeScaling::Llama3 { factor: 8.0, .. }
        ));
    }

    #[test]
    fn llama3_and_linear_frequencies_by_hand() {
        // head_dim 4, θ = 10000: unscaled inverse frequencies 1 and 0.01 (wavelengths 2π and
        // 200π).
        let llama3 = |context: f64| RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: context,
        };
        let close = |a: &[f64], b: &[f64]| {
            assert!(
                a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9),
                "{a:?} vs {b:?}"
            )
        };
        close(&RopeScaling::None.inv_freq(10_000.0, 4), &[1.0, 0.01]);
        close(
            &RopeScaling::Linear { factor: 2.0 }.inv_freq(10_000.0, 4),
            &[0.5, 0.005],
        );
        // Context 100: kept below wavelength 25, divided by 8 above 100.
        close(&llama3(100.0).inv_freq(10_000.0, 4), &[1.0, 0.00125]);
        // Context 1000: 200π lies between 250 and 1000; smooth = (1000 / 200π - 1) / 3.
        let smooth = (1000.0 / (200.0 * std::f64::consts::PI) - 1.0) / 3.0;
        close(
            &llama3(1000.0).inv_freq(10_000.0, 4),
            &[1.0, (1.0 - smooth) * 0.01 / 8.0 + smooth * 0.01],
        );
    }

    #[test]
    fn hub_style_llama3_rope_scaling_parses() {
        // Llama 3.1's own config.json (transformers 4 layout).
        let json = r#"{"architectures":["LlamaForCausalLM"],"vocab_size":128,"hidden_size":64,
            "intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,
            "rope_theta":500000.0,"rope_scaling":{"factor":8.0,"low_freq_factor":1.0,
            "high_freq_factor":4.0,"original_max_position_embeddings":8192,"rope_type":"llama3"}}"#;
        let config = LlamaConfig::from_json_str(json).unwrap();
        assert_eq!(config.family().unwrap(), Family::Llama);
        assert!(matches!(config.rope().unwrap(), RopeScaling::Llama3 { .. }));
        for (kind, named) in [("yarn", "yarn"), ("wavy", "wavy")] {
            let bad = json.replace("\"llama3\"", &format!("\"{kind}\""));
            let err = LlamaConfig::from_json_str(&bad).unwrap_err().to_string();
            assert!(err.contains(named) && err.contains("rope_scaling"), "{err}");
        }
    }

    #[test]
    fn families_come_from_model_type_or_architectures() {
        let base = r#""vocab_size":128,"hidden_size":64,"intermediate_size":128,
            "num_hidden_layers":2,"num_attention_heads":4"#;
        let parse = |extra: &str| LlamaConfig::from_json_str(&format!("{{{base}{extra}}}"));
        assert_eq!(parse("").unwrap().family().unwrap(), Family::Llama);
        let qwen2 = parse(r#","model_type":"qwen2","use_sliding_window":false"#).unwrap();
        assert_eq!(qwen2.family().unwrap(), Family::Qwen2);
        assert!(qwen2.qkv_bias() && !qwen2.o_bias() && !qwen2.qk_norm());
        let qwen3 = parse(r#","architectures":["Qwen3ForCausalLM"]"#).unwrap();
        assert_eq!(qwen3.family().unwrap(), Family::Qwen3);
        assert!(!qwen3.qkv_bias() && qwen3.qk_norm());
        let err = parse(r#","model_type":"mistral""#).unwrap_err().to_string();
        assert!(err.contains("mistral") && err.contains("qwen3"), "{err}");
        let err = parse(r#","architectures":["GPT2LMHeadModel"]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("GPT2LMHeadModel"), "{err}");
        let err = parse(r#","model_type":"qwen2","use_sliding_window":true"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("use_sliding_window"), "{err}");
        let err = parse(r#","layer_types":["full_attention","sliding_attention"]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sliding_attention"), "{err}");
        // Llama's mlp_bias is read; Qwen has no feed-forward biases.
        assert!(parse(r#","mlp_bias":true"#).unwrap().ffn_bias());
        assert!(
            !parse(r#","model_type":"qwen2","mlp_bias":true"#)
                .unwrap()
                .ffn_bias()
        );
    }

    #[test]
    fn invalid_fields_are_named() {
        let mut c = LlamaConfig::tiny();
        c.num_key_value_heads = Some(3);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("num_key_value_heads"), "{err}");
        let mut c = LlamaConfig::tiny();
        c.hidden_act = "gelu".into();
        assert!(c.validate().unwrap_err().to_string().contains("hidden_act"));
        let mut c = LlamaConfig::tiny();
        c.rope_scaling = Some(serde_json::json!({"type": "llama3"}));
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("rope_scaling")
        );
        let mut c = LlamaConfig::tiny();
        c.eos_token_id = Some(TokenIds::One(10_000));
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("outside the vocabulary")
        );
    }
}

//! Model configuration: the fields of a Hugging Face Llama `config.json`, named presets, and the
//! checks that reject a configuration the decoder cannot run.

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

/// Configuration of a Llama-family decoder.
///
/// Field names and meanings are those of Hugging Face's `LlamaConfig`, so a `config.json` from the
/// Hub deserializes directly (keys this crate does not use, such as `architectures`, are ignored;
/// keys that would change the computation in a way this crate does not implement, such as
/// `rope_scaling`, are rejected by [`LlamaConfig::validate`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
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
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Width of one head; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
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
    /// Bias on the attention projections; only `false` is implemented.
    #[serde(default)]
    pub attention_bias: bool,
    /// Bias on the feed-forward projections; only `false` is implemented.
    #[serde(default)]
    pub mlp_bias: bool,
    /// transformers >= 5 writes RoPE settings here (`{"rope_theta": .., "rope_type": "default"}`)
    /// instead of a top-level `rope_theta`; [`LlamaConfig::from_json_str`] folds it into
    /// `rope_theta`. Only the `default` RoPE type is implemented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<serde_json::Value>,
    /// RoPE scaling (Llama 3.1 style); not implemented, must be absent or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<serde_json::Value>,
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
            let kind = params
                .get("rope_type")
                .and_then(|t| t.as_str())
                .unwrap_or("default");
            if kind != "default" {
                return Err(ModelError::Config {
                    field: "rope_parameters.rope_type".into(),
                    reason: format!("`{kind}` is not supported (only default)"),
                });
            }
            if let Some(theta) = params.get("rope_theta") {
                config.rope_theta = theta.as_f64().ok_or_else(|| ModelError::Config {
                    field: "rope_parameters.rope_theta".into(),
                    reason: format!("expected a number, found {theta}"),
                })?;
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Writes the configuration as a Hugging Face `config.json` (with `architectures` and
    /// `model_type` so transformers recognises it).
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(map) = &mut value {
            map.insert(
                "architectures".into(),
                serde_json::json!(["LlamaForCausalLM"]),
            );
            map.insert("model_type".into(), serde_json::json!("llama"));
            map.insert("torch_dtype".into(), serde_json::json!("float32"));
        }
        value
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
        if self.attention_bias {
            return bad(
                "attention_bias",
                "biased attention projections are not supported",
            );
        }
        if self.mlp_bias {
            return bad(
                "mlp_bias",
                "biased feed-forward projections are not supported",
            );
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return bad("rope_scaling", "RoPE scaling is not supported");
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
        let back: LlamaConfig = serde_json::from_value(config.to_hf_json()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn transformers5_rope_parameters_are_folded_in() {
        let json = r#"{"vocab_size":128,"hidden_size":64,"intermediate_size":128,
            "num_hidden_layers":2,"num_attention_heads":4,
            "rope_parameters":{"rope_theta":500000.0,"rope_type":"default"}}"#;
        let config = LlamaConfig::from_json_str(json).unwrap();
        assert_eq!(config.rope_theta, 500000.0);
        let json = json.replace("\"default\"", "\"llama3\"");
        let err = LlamaConfig::from_json_str(&json).unwrap_err().to_string();
        assert!(err.contains("rope_type"), "{err}");
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

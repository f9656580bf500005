//! The language-model side of saferlhf: the decoder of the Llama, Qwen2 and Qwen3 families, its
//! configuration (Hugging Face `config.json` compatible), weight import and export (Hugging Face
//! safetensors, GGUF), the tokenizer and chat templates (named ones and the model's own Jinja). `saferlhf-rollout` generates with these models; the learner trains
//! them.

pub mod cache;
pub mod chat;
pub mod config;
pub mod decode;
pub mod error;
pub mod gguf;
pub mod host;
pub mod hub;
pub mod logits;
pub mod lora;
pub mod model;
pub mod precision;
pub mod pretrained;
pub mod score;
#[cfg(test)]
mod test_util;
pub mod tokenizer;
pub mod weights;

pub use cache::KvCache;
pub use config::{Family, LlamaConfig, RopeScaling};
pub use decode::DecodeWeights;
pub use error::{ModelError, Result};
pub use logits::LogitPolicy;
pub use model::LlamaForCausalLM;
pub use precision::Precision;
pub use pretrained::{Pretrained, load_pretrained};
pub use score::{
    Cost, CostModel, Critic, CriticModel, Reward, RewardModel, ScoreKind, ScoreModel, ScoreOutput,
    ScoreType,
};

//! Model directories the trainer writes and reads: weights (Hugging Face names, through
//! `saferlhf-model`'s save functions), the tokenizer (`tokenizer.json` and
//! `tokenizer_config.json`, so the directory loads on its own) and `saferlhf.json` (the task,
//! chat template and length limit the model was trained with, which `saferlhf score` reuses).

use std::path::Path;
use std::str::FromStr;

use saferlhf_core::fs::write_atomic_with;
use saferlhf_model::gguf::GgufFile;
use saferlhf_model::tokenizer::{ChatTemplate, Tokenizer};
use saferlhf_model::{ModelError, ScoreModel, ScoreType};
use serde::{Deserialize, Serialize};

use crate::collate::Encoder;
use crate::config::{ModelConfig, TaskKind};
use crate::error::{Result, TrainError};
use crate::tiny::tiny_tokenizer;

/// The file in a model directory recording how it was trained.
pub const META_FILE: &str = "saferlhf.json";

/// How a saved model turns text into tokens (`saferlhf.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// The task the model was trained for.
    pub task: TaskKind,
    /// Chat template name (`chatml`, `smollm2`, `saferlhf`, `raw`).
    pub template: String,
    /// System turn of the ChatML template, if any.
    pub system: Option<String>,
    /// Length limit of prompt + response + end token.
    pub max_length: usize,
}

impl ModelMeta {
    /// The meta of a model trained under `model` for `task`.
    pub fn new(task: TaskKind, model: &ModelConfig) -> Self {
        ModelMeta {
            task,
            template: model.template.clone(),
            system: model.system.clone(),
            max_length: model.max_length,
        }
    }

    /// The chat template.
    pub fn chat_template(&self) -> Result<ChatTemplate> {
        template(&self.template, self.system.as_deref())
    }
}

/// Parses a template name with an optional system turn (chatml and model templates).
pub fn template(name: &str, system: Option<&str>) -> Result<ChatTemplate> {
    let t = ChatTemplate::from_str(name)
        .map_err(|e| TrainError::config("model.template", e.to_string()))?;
    match system {
        Some(s) => t
            .with_system(s)
            .map_err(|e| TrainError::config("model.system", e.to_string())),
        None => Ok(t),
    }
}

/// The tokenizer of `model.init` / `model.preset`: the char-tiny preset's, a GGUF file's metadata,
/// or `tokenizer.json` in a Hugging Face (or score-model) directory.
pub fn load_tokenizer(model: &ModelConfig) -> Result<Tokenizer> {
    if model.preset.is_some() {
        return tiny_tokenizer();
    }
    let Some(init) = &model.init else {
        return Err(TrainError::config("model.init", "missing"));
    };
    let init = &saferlhf_model::hub::resolve(init)?;
    if init.is_dir() {
        Ok(Tokenizer::from_file(init.join("tokenizer.json"))?)
    } else {
        let gguf = GgufFile::open(init)?;
        Ok(Tokenizer::from_gguf(&gguf)?)
    }
}

/// The encoder of a training config.
pub fn encoder_for(model: &ModelConfig, tokenizer: Tokenizer) -> Result<Encoder> {
    let t = template(&model.template, model.system.as_deref())?;
    Encoder::new(tokenizer, t, model.max_length)
}

/// Writes `tokenizer.json`, `tokenizer_config.json` (eos, bos, pad, the chat template if any)
/// and `saferlhf.json`.
pub fn save_text_side(tokenizer: &Tokenizer, meta: &ModelMeta, dir: &Path) -> Result<()> {
    let json_path = dir.join("tokenizer.json");
    write_atomic_with(&json_path, |tmp| -> std::result::Result<(), ModelError> {
        tokenizer
            .inner()
            .save(tmp, false)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", tmp.display())))
    })?;
    let name = |id: u32| tokenizer.id_to_token(id).map(serde_json::Value::String);
    let mut config = serde_json::json!({
        "eos_token": name(tokenizer.eos_id()),
        "bos_token": tokenizer.bos_id().and_then(name),
        "pad_token": name(tokenizer.pad_id()),
    });
    // The model's own chat template goes with it, so `template = "model"` works on the result.
    if let Some(template) = tokenizer.chat_template() {
        config["chat_template"] = serde_json::Value::String(template.to_string());
    }
    for (file, value) in [
        ("tokenizer_config.json", config),
        (META_FILE, serde_json::to_value(meta).unwrap_or_default()),
    ] {
        let path = dir.join(file);
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        saferlhf_core::write_atomic(&path, text)?;
    }
    Ok(())
}

/// Reads `saferlhf.json` of a model directory.
pub fn read_meta(dir: &Path) -> Result<ModelMeta> {
    let path = dir.join(META_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::ConfigParse {
        path,
        message: e.to_string(),
    })
}

/// A trained score model directory with its encoder, ready for scoring. The directory's
/// `score_type` must be `K`'s kind.
pub fn load_score_model<K: ScoreType>(
    dir: &Path,
    device: &burn::tensor::Device,
) -> Result<(ModelMeta, ScoreModel<K>, Encoder)> {
    let meta = read_meta(dir)?;
    let (config, model) = saferlhf_model::score::load_score_dir::<K>(dir, device)?;
    let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))?;
    if tokenizer.vocab_size() > config.vocab_size
        || meta.max_length > config.max_position_embeddings
    {
        return Err(TrainError::checkpoint(
            dir,
            format!(
                "tokenizer ({} ids) or max_length ({}) does not fit the model ({} embeddings, {} \
                 positions)",
                tokenizer.vocab_size(),
                meta.max_length,
                config.vocab_size,
                config.max_position_embeddings
            ),
        ));
    }
    let encoder = Encoder::new(tokenizer, meta.chat_template()?, meta.max_length)?;
    Ok((meta, model, encoder))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saved_text_side_keeps_the_models_chat_template() {
        let dir = saferlhf_testkit::TempDir::new("text-side");
        let source = "{% for m in messages %}{{ m.content }}{% endfor %}";
        let tokenizer = tiny_tokenizer().unwrap().with_chat_template(source);
        let model = ModelConfig {
            preset: Some("char-tiny".into()),
            template: "model".into(),
            ..ModelConfig::default()
        };
        let meta = ModelMeta::new(TaskKind::Sft, &model);
        save_text_side(&tokenizer, &meta, &dir.0).unwrap();
        let back = Tokenizer::from_file(dir.0.join("tokenizer.json")).unwrap();
        assert_eq!(back.chat_template(), Some(source));
        let encoder = Encoder::new(back, meta.chat_template().unwrap(), 64).unwrap();
        assert_eq!(encoder.render_prompt("hi").unwrap(), "hi");
    }
}

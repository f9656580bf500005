//! Tokenizer and chat templates.
//!
//! [`Tokenizer`] wraps a Hugging Face `tokenizers::Tokenizer` and adds what generation needs: the
//! end-of-sequence, beginning-of-sequence and padding ids and a list of stop ids. It is built either
//! from a Hugging Face `tokenizer.json` ([`Tokenizer::from_file`]) or from the vocabulary stored in a
//! GGUF file ([`Tokenizer::from_gguf`]): byte-level BPE from `tokenizer.ggml.tokens` and
//! `tokenizer.ggml.merges`, control tokens (`token_type` 3) registered as special tokens so that
//! `<|im_start|>` and friends are matched whole and can be skipped on decode, and the pre-tokenizer
//! llama.cpp names `smollm` (digits split one by one, then GPT-2's byte-level regex). For SmolLM2
//! this reproduces the Hugging Face tokenizer id for id (checked against an independent Python
//! implementation by `scripts/check-tokenizer.py`).
//!
//! [`ChatTemplate`] turns a user prompt into model input text: the model's own Jinja template
//! (`model`: [`crate::chat::JinjaTemplate`], read from `tokenizer_config.json`, `chat_template.jinja`
//! or the GGUF metadata), or one of the named fallbacks: ChatML (optionally with a system turn;
//! [`ChatTemplate::smollm2`] reproduces SmolLM2's own template, which inserts a default system
//! prompt), the Safe RLHF (PKU-Alignment) `BEGINNING OF CONVERSATION:` format, or the raw prompt.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

use crate::chat::{JinjaTemplate, Message};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

/// SmolLM2's default system prompt, inserted by its chat template when no system turn is given.
pub const SMOLLM2_DEFAULT_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// Tokens that end a turn or a document in common vocabularies; those present become stop ids.
const STOP_TOKENS: [&str; 5] = [
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end|>",
    "</s>",
];

/// End-of-sequence candidates, in order, when nothing names the eos token explicitly.
const EOS_CANDIDATES: [&str; 5] = [
    "<|endoftext|>",
    "</s>",
    "<eos>",
    "<|end_of_text|>",
    "<|im_end|>",
];

/// The id of the first of [`EOS_CANDIDATES`] in the vocabulary.
fn known_eos(inner: &tokenizers::Tokenizer) -> Option<u32> {
    EOS_CANDIDATES.iter().find_map(|t| inner.token_to_id(t))
}

/// The split regex of Qwen2's byte-level BPE (Qwen2, Qwen2.5, Qwen3; llama.cpp's pre-tokenizer
/// `qwen2`), as transformers' `Qwen2Converter` writes it into `tokenizer.json`: single digits.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The split regex of Llama 3's byte-level BPE (llama.cpp's `llama-bpe`; transformers'
/// tiktoken converter): digits in groups of up to three.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How text is split before byte-level BPE, by llama.cpp's `tokenizer.ggml.pre` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PreSplit {
    /// `gpt-2`: GPT-2's byte-level regex.
    Gpt2,
    /// `smollm`: digits one by one, then GPT-2's regex.
    SmolLm,
    /// `qwen2`: NFC, then [`QWEN2_SPLIT`].
    Qwen2,
    /// `llama-bpe`: [`LLAMA3_SPLIT`].
    Llama3,
}

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// A text tokenizer with the special ids generation needs.
#[derive(Clone)]
pub struct Tokenizer {
    inner: HfTokenizer,
    source: PathBuf,
    eos_id: u32,
    bos_id: Option<u32>,
    pad_id: u32,
    stop_ids: Vec<u32>,
    chat_template: Option<String>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size())
            .field("eos_id", &self.eos_id)
            .field("bos_id", &self.bos_id)
            .field("pad_id", &self.pad_id)
            .field("stop_ids", &self.stop_ids)
            .field("chat_template", &self.chat_template.is_some())
            .finish()
    }
}

fn tok_err(source: &Path, what: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(format!("{}: {what}", source.display()))
}

impl Tokenizer {
    /// Loads a Hugging Face `tokenizer.json`.
    ///
    /// The eos / bos / pad tokens come from a `tokenizer_config.json` beside the file when there is
    /// one; otherwise eos is the first of `<|endoftext|>`, `</s>`, `<eos>`, `<|end_of_text|>`,
    /// `<|im_end|>` in the vocabulary, bos is unset and pad is eos. The chat template is
    /// `tokenizer_config.json`'s `chat_template` (a string, or the `default` of a list of named
    /// ones) or a `chat_template.jinja` beside it; the ids of `generation_config.json`'s
    /// `eos_token_id` (one or a list) join the stop ids.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let json = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        // tokenizers 0.23 panics (an `expect` in its decoder deserializer) on some malformed
        // files instead of returning an error; found by tests/it/fuzz_readers.rs. A panic here
        // becomes the same kind of error as a parse failure.
        let parsed =
            std::panic::catch_unwind(|| HfTokenizer::from_bytes(&json)).map_err(|panic| {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("the tokenizers crate panicked");
                tok_err(path, format!("malformed tokenizer.json: {what}"))
            })?;
        let inner = parsed.map_err(|e| tok_err(path, e))?;

        let config_path = path.with_file_name("tokenizer_config.json");
        let config = read_optional_json(&config_path)?;
        // A special token in tokenizer_config.json is a string, an object with "content", or null.
        let config_token = |key: &str| -> Result<Option<u32>> {
            let Some(value) = config.as_ref().and_then(|c| c.get(key)) else {
                return Ok(None);
            };
            let text = match value {
                serde_json::Value::Null => return Ok(None),
                serde_json::Value::String(s) => s.as_str(),
                other => other
                    .get("content")
                    .and_then(|c| c.as_str())
                    .ok_or_else(|| tok_err(&config_path, format!("`{key}` is not a token")))?,
            };
            inner.token_to_id(text).map(Some).ok_or_else(|| {
                tok_err(
                    &config_path,
                    format!(
                        "`{key}` {text:?} is not in the vocabulary of {}",
                        path.display()
                    ),
                )
            })
        };
        let eos_id = match config_token("eos_token")? {
            Some(id) => id,
            None => known_eos(&inner).ok_or_else(|| {
                tok_err(
                    path,
                    format!(
                        "cannot tell the end-of-sequence token: no eos_token in a \
                         tokenizer_config.json beside it and none of {EOS_CANDIDATES:?} \
                         in the vocabulary"
                    ),
                )
            })?,
        };
        let bos_id = config_token("bos_token")?;
        let pad_id = config_token("pad_token")?.unwrap_or(eos_id);
        let chat_template = match config.as_ref().and_then(|c| c.get("chat_template")) {
            None | Some(serde_json::Value::Null) => {
                read_optional(&path.with_file_name("chat_template.jinja"))?
            }
            Some(serde_json::Value::String(t)) => Some(t.clone()),
            Some(serde_json::Value::Array(named)) => named
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(str::to_string),
            Some(other) => {
                return Err(tok_err(
                    &config_path,
                    format!("`chat_template` must be a string or a list, found {other}"),
                ));
            }
        };
        let source = path.to_path_buf();
        let mut tokenizer = Self::assemble(inner, source, eos_id, bos_id, pad_id);
        tokenizer.chat_template = chat_template;
        let generation = path.with_file_name("generation_config.json");
        let generation_config = read_optional_json(&generation)?;
        if let Some(ids) = generation_config
            .as_ref()
            .and_then(|c| c.get("eos_token_id"))
            .filter(|v| !v.is_null())
        {
            let ids: crate::config::TokenIds = serde_json::from_value(ids.clone())
                .map_err(|e| tok_err(&generation, format!("`eos_token_id`: {e}")))?;
            let n = tokenizer.vocab_size();
            for id in ids.to_vec() {
                if id as usize >= n {
                    return Err(tok_err(
                        &generation,
                        format!("`eos_token_id` {id} is outside the vocabulary of {n}"),
                    ));
                }
                if !tokenizer.stop_ids.contains(&id) {
                    tokenizer.stop_ids.push(id);
                }
            }
        }
        Ok(tokenizer)
    }

    /// Builds the tokenizer stored in a GGUF file's metadata (byte-level BPE, `gpt2` model).
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let path = gguf.path();
        let model = gguf.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(tok_err(
                path,
                format!("tokenizer model `{model}` is not supported (only byte-level BPE `gpt2`)"),
            ));
        }
        let pre_split = match gguf.get_str("tokenizer.ggml.pre") {
            Ok("smollm") => PreSplit::SmolLm,
            Ok("gpt-2") => PreSplit::Gpt2,
            Ok("qwen2") => PreSplit::Qwen2,
            Ok("llama-bpe") => PreSplit::Llama3,
            Ok(other) => {
                return Err(tok_err(
                    path,
                    format!(
                        "pre-tokenizer `{other}` is not supported (supported: smollm, gpt-2, \
                         qwen2, llama-bpe); its split regex differs and ids would be wrong"
                    ),
                ));
            }
            Err(_) if !gguf.contains_key("tokenizer.ggml.pre") => {
                log::warn!(
                    "{}: no tokenizer.ggml.pre; assuming the GPT-2 pre-tokenizer",
                    path.display()
                );
                PreSplit::Gpt2
            }
            Err(e) => return Err(e),
        };

        let tokens = gguf.get_str_array("tokenizer.ggml.tokens")?;
        let types = if gguf.contains_key("tokenizer.ggml.token_type") {
            let types = gguf.get_i64_array("tokenizer.ggml.token_type")?;
            if types.len() != tokens.len() {
                return Err(tok_err(
                    path,
                    format!(
                        "tokenizer.ggml.token_type has {} entries for {} tokens",
                        types.len(),
                        tokens.len()
                    ),
                ));
            }
            types
        } else {
            vec![1; tokens.len()]
        };
        let merges = gguf
            .get_str_array("tokenizer.ggml.merges")?
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| {
                        tok_err(
                            path,
                            format!("merge {i} {m:?} is not two tokens separated by a space"),
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;

        let n_vocab = u32::try_from(tokens.len())
            .map_err(|_| tok_err(path, "vocabulary larger than u32 ids"))?;
        let vocab: Vocab = tokens
            .iter()
            .zip(0..n_vocab)
            .map(|(t, i)| (t.to_string(), i))
            .collect();
        if vocab.len() != tokens.len() {
            log::warn!(
                "{}: {} duplicate tokens in tokenizer.ggml.tokens; later ids win",
                path.display(),
                tokens.len() - vocab.len()
            );
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| tok_err(path, format!("building BPE: {e}")))?;

        let mut inner = HfTokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        // Qwen2 and Llama 3 split with their own regex first, then map bytes without GPT-2's
        // regex (`use_regex = false`), as their tokenizer.json files do.
        let split_then_bytes = |pattern: &str| -> Result<PreTokenizerWrapper> {
            let split = Split::new(
                SplitPattern::Regex(pattern.to_string()),
                tokenizers::SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| tok_err(path, format!("split regex: {e}")))?;
            Ok(PreTokenizerWrapper::Sequence(Sequence::new(vec![
                PreTokenizerWrapper::Split(split),
                PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
            ])))
        };
        let pre = match pre_split {
            PreSplit::Gpt2 => PreTokenizerWrapper::ByteLevel(byte_level),
            PreSplit::SmolLm => PreTokenizerWrapper::Sequence(Sequence::new(vec![
                PreTokenizerWrapper::Digits(Digits::new(true)),
                PreTokenizerWrapper::ByteLevel(byte_level),
            ])),
            PreSplit::Qwen2 => split_then_bytes(QWEN2_SPLIT)?,
            PreSplit::Llama3 => split_then_bytes(LLAMA3_SPLIT)?,
        };
        if pre_split == PreSplit::Qwen2 {
            inner
                .with_normalizer(Some(tokenizers::NormalizerWrapper::NFC(
                    tokenizers::normalizers::unicode::NFC,
                )))
                .map_err(|e| tok_err(path, format!("NFC normalizer: {e}")))?;
        }
        inner.with_pre_tokenizer(Some(pre));
        inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));

        let of_type = |ty: i64, special: bool| -> Vec<AddedToken> {
            tokens
                .iter()
                .zip(&types)
                .filter(|&(_, &t)| t == ty)
                .map(|(tok, _)| AddedToken::from(tok.to_string(), special))
                .collect()
        };
        inner
            .add_special_tokens(of_type(TOKEN_TYPE_CONTROL, true))
            .map_err(|e| tok_err(path, format!("adding control tokens: {e}")))?;
        inner
            .add_tokens(of_type(TOKEN_TYPE_USER_DEFINED, false))
            .map_err(|e| tok_err(path, format!("adding user-defined tokens: {e}")))?;

        let id_key = |key: &str| -> Result<Option<u32>> {
            if !gguf.contains_key(key) {
                return Ok(None);
            }
            let id = gguf.get_u32(key)?;
            if id >= n_vocab {
                return Err(ModelError::Metadata {
                    path: path.to_path_buf(),
                    key: key.to_string(),
                    reason: format!("is {id}, outside the vocabulary of {n_vocab}"),
                });
            }
            Ok(Some(id))
        };
        let eos_id = match id_key("tokenizer.ggml.eos_token_id")? {
            Some(id) => id,
            None => known_eos(&inner).ok_or_else(|| {
                tok_err(
                    path,
                    "no tokenizer.ggml.eos_token_id and no known end-of-sequence token",
                )
            })?,
        };
        let bos_id = id_key("tokenizer.ggml.bos_token_id")?;
        let pad_id = id_key("tokenizer.ggml.padding_token_id")?.unwrap_or(eos_id);

        // Only add bos / eos around every encoding when the file asks for it (SmolLM2 does not).
        let flag = |key: &str| gguf.get_bool(key).unwrap_or(false);
        let mut pieces = Vec::new();
        let mut specials = Vec::new();
        let add_bos = if flag("tokenizer.ggml.add_bos_token") {
            bos_id
        } else {
            None
        };
        let add_eos = flag("tokenizer.ggml.add_eos_token").then_some(eos_id);
        for (id, before) in [(add_bos, true), (add_eos, false)] {
            if !before {
                pieces.push("$A".to_string());
            }
            if let Some(id) = id {
                let text = inner
                    .id_to_token(id)
                    .ok_or_else(|| tok_err(path, format!("special token id {id} has no text")))?;
                pieces.push(text.clone());
                specials.push((text, id));
            }
        }
        // Nothing to add means no post-processor at all, like SmolLM2's Hugging Face tokenizer.
        if !specials.is_empty() {
            let template = TemplateProcessing::builder()
                .try_single(pieces)
                .map_err(|e| tok_err(path, format!("bos/eos template: {e}")))?
                .special_tokens(specials)
                .build()
                .map_err(|e| tok_err(path, format!("bos/eos template: {e}")))?;
            inner.with_post_processor(Some(PostProcessorWrapper::Template(template)));
        }

        let source = path.to_path_buf();
        let mut tokenizer = Self::assemble(inner, source, eos_id, bos_id, pad_id);
        tokenizer.chat_template = gguf
            .get_str("tokenizer.chat_template")
            .ok()
            .map(str::to_string);
        Ok(tokenizer)
    }

    /// Wraps a Hugging Face tokenizer built in code (e.g. a character-level test vocabulary);
    /// `source` names it in error messages. Every given id must be in the vocabulary.
    pub fn from_parts(
        inner: HfTokenizer,
        source: impl Into<PathBuf>,
        eos_id: u32,
        bos_id: Option<u32>,
        pad_id: u32,
    ) -> Result<Self> {
        let source = source.into();
        let n = inner.get_vocab_size(true);
        for (name, id) in [
            ("eos", Some(eos_id)),
            ("bos", bos_id),
            ("pad", Some(pad_id)),
        ] {
            if let Some(id) = id
                && id as usize >= n
            {
                return Err(tok_err(
                    &source,
                    format!("{name} id {id} is outside the vocabulary of {n}"),
                ));
            }
        }
        Ok(Self::assemble(inner, source, eos_id, bos_id, pad_id))
    }

    fn assemble(
        inner: HfTokenizer,
        source: PathBuf,
        eos_id: u32,
        bos_id: Option<u32>,
        pad_id: u32,
    ) -> Self {
        let mut stop_ids = vec![eos_id];
        for t in STOP_TOKENS {
            if let Some(id) = inner.token_to_id(t)
                && !stop_ids.contains(&id)
            {
                stop_ids.push(id);
            }
        }
        Tokenizer {
            inner,
            source,
            eos_id,
            bos_id,
            pad_id,
            stop_ids,
            chat_template: None,
        }
    }

    /// The model's own Jinja chat template, if its files carry one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// This tokenizer with `template` as its chat template (the Jinja source).
    pub fn with_chat_template(mut self, template: impl Into<String>) -> Self {
        self.chat_template = Some(template.into());
        self
    }

    /// The text of a special id, as a template sees it (empty for `None`).
    fn token_text(&self, id: Option<u32>) -> String {
        id.and_then(|id| self.inner.id_to_token(id))
            .unwrap_or_default()
    }

    /// Token ids of `text`; `add_special_tokens` adds bos/eos only where the tokenizer is configured
    /// to (special tokens written in `text`, like `<|im_start|>`, are always matched whole).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.inner
            .encode_fast(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| tok_err(&self.source, format!("encoding failed: {e}")))
    }

    /// Text of `ids`; `skip_special` drops special tokens such as `<|im_end|>`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let n = self.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= n) {
            return Err(ModelError::InvalidInput(format!(
                "token id {bad} is outside the vocabulary of {n}"
            )));
        }
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| tok_err(&self.source, format!("decoding failed: {e}")))
    }

    /// [`Tokenizer::decode`] that writes ids outside the vocabulary (a model's head may be
    /// larger than its tokenizer, and an untrained model samples them) as U+FFFD instead of
    /// failing, so the text shows them and no parser reads it as a well-formed response.
    pub fn decode_lossy(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let vocab = self.vocab_size() as u32;
        if ids.iter().all(|&i| i < vocab) {
            return self.decode(ids, skip_special);
        }
        let mut out = String::new();
        for (i, part) in ids.split(|&i| i >= vocab).enumerate() {
            if i > 0 {
                out.push('\u{fffd}');
            }
            out.push_str(&self.decode(part, skip_special)?);
        }
        Ok(out)
    }

    /// Renders `prompt` with `template` (the model's own when it is [`ChatTemplate::Model`])
    /// and encodes it (no extra special tokens).
    pub fn encode_prompt(&self, template: &ChatTemplate, prompt: &str) -> Result<Vec<u32>> {
        self.encode(&template.resolve(self)?.render(prompt)?, false)
    }

    /// Number of ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of a token string (`"<|im_end|>"`), if in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token string of an id (byte-level form, e.g. `Ġthe`), if in the vocabulary.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// End-of-sequence id.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Beginning-of-sequence id, if the tokenizer has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// Padding id (eos when the tokenizer names none).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Ids that end generation: eos, then whichever of `<|im_end|>`, `<|endoftext|>`, `<|eot_id|>`,
    /// `<|end|>`, `</s>` the vocabulary has.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// Ids a generated response may not contain, for a model with `model_vocab` logits: ids
    /// past this tokenizer's vocabulary (a padded LM head), the padding id, `<unk>` and every
    /// special token, except `keep` (the stop ids, which end a response). Sorted, each once.
    /// [`crate::logits::LogitPolicy`] gives them probability 0.
    pub fn blocked_ids(&self, model_vocab: usize, keep: &[u32]) -> Vec<u32> {
        let mut ids: Vec<u32> = (self.vocab_size()..model_vocab).map(|i| i as u32).collect();
        ids.push(self.pad_id);
        ids.extend(self.token_to_id("<unk>"));
        ids.extend(
            self.inner
                .get_added_tokens_decoder()
                .iter()
                .filter(|(_, t)| t.special)
                .map(|(&id, _)| id),
        );
        ids.retain(|id| !keep.contains(id) && (*id as usize) < model_vocab);
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Where the tokenizer was loaded from (used in error messages).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The wrapped Hugging Face tokenizer.
    pub fn inner(&self) -> &HfTokenizer {
        &self.inner
    }
}

/// The contents of `path`, or `None` when there is no such file.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ModelError::io(path, e)),
    }
}

/// The JSON in `path`, or `None` when there is no such file; a parse error names the file.
fn read_optional_json(path: &Path) -> Result<Option<serde_json::Value>> {
    read_optional(path)?
        .map(|text| serde_json::from_str(&text).map_err(|e| tok_err(path, e)))
        .transpose()
}

/// How a single user prompt becomes model input text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatTemplate {
    /// The model's own Jinja template (named `model`), read from the tokenizer by
    /// [`ChatTemplate::resolve`]; `system` adds a system turn.
    Model {
        /// Optional system turn.
        system: Option<String>,
    },
    /// A Jinja template (a resolved [`ChatTemplate::Model`]) with an optional system turn.
    Jinja {
        /// The compiled template.
        template: JinjaTemplate,
        /// Optional system turn.
        system: Option<String>,
    },
    /// ChatML: `<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n`, preceded by
    /// `<|im_start|>system\n{system}<|im_end|>\n` when `system` is set.
    ChatMl {
        /// Optional system turn.
        system: Option<String>,
    },
    /// Safe RLHF (PKU-Alignment): `BEGINNING OF CONVERSATION: USER: {prompt} ASSISTANT:`.
    SafeRlhf,
    /// The prompt unchanged.
    Raw,
}

impl ChatTemplate {
    /// ChatML without a system turn.
    pub fn chatml() -> Self {
        ChatTemplate::ChatMl { system: None }
    }

    /// ChatML exactly as SmolLM2's own template renders one user message: with its default system
    /// prompt ([`SMOLLM2_DEFAULT_SYSTEM`]).
    pub fn smollm2() -> Self {
        ChatTemplate::ChatMl {
            system: Some(SMOLLM2_DEFAULT_SYSTEM.to_string()),
        }
    }

    /// This template with a system turn: for `chatml` and `model` (and a resolved model
    /// template); the others have none, and asking for one is an error.
    pub fn with_system(mut self, system: impl Into<String>) -> Result<Self> {
        match &mut self {
            ChatTemplate::ChatMl { system: s }
            | ChatTemplate::Model { system: s }
            | ChatTemplate::Jinja { system: s, .. } => *s = Some(system.into()),
            other => {
                return Err(ModelError::InvalidInput(format!(
                    "a system turn only applies to the chatml and model templates, not `{}`",
                    other.name()
                )));
            }
        }
        Ok(self)
    }

    /// [`ChatTemplate::Model`] with the tokenizer's template compiled
    /// ([`ChatTemplate::Jinja`]); any other template unchanged. A tokenizer without a template
    /// is an error that names it.
    pub fn resolve(&self, tokenizer: &Tokenizer) -> Result<ChatTemplate> {
        let ChatTemplate::Model { system } = self else {
            return Ok(self.clone());
        };
        let source = tokenizer.chat_template().ok_or_else(|| {
            tok_err(
                tokenizer.source(),
                "has no chat template (no `chat_template` in tokenizer_config.json, no \
                 chat_template.jinja, no `tokenizer.chat_template` in the GGUF): choose the \
                 template by name (chatml, smollm2, saferlhf or raw)",
            )
        })?;
        let template = JinjaTemplate::new(
            source,
            tokenizer.token_text(tokenizer.bos_id()),
            tokenizer.token_text(Some(tokenizer.eos_id())),
        )
        .map_err(|e| tok_err(tokenizer.source(), e))?;
        Ok(ChatTemplate::Jinja {
            template,
            system: system.clone(),
        })
    }

    /// The conversation of one prompt: the system turn, if any, and the user's.
    fn messages(system: &Option<String>, prompt: &str) -> Vec<Message> {
        system
            .iter()
            .map(|s| Message::new("system", s.as_str()))
            .chain([Message::new("user", prompt)])
            .collect()
    }

    /// The model input text for `prompt`; an empty or whitespace-only prompt is an error, and so
    /// is an unresolved [`ChatTemplate::Model`].
    pub fn render(&self, prompt: &str) -> Result<String> {
        if prompt.trim().is_empty() {
            return Err(ModelError::InvalidInput("empty prompt".to_string()));
        }
        Ok(match self {
            ChatTemplate::Model { .. } => {
                return Err(ModelError::InvalidInput(
                    "the `model` chat template is read from the tokenizer: resolve it first".into(),
                ));
            }
            ChatTemplate::Jinja { template, system } => {
                template.render(&Self::messages(system, prompt), true)?
            }
            ChatTemplate::ChatMl { system } => {
                let system = system
                    .as_deref()
                    .map(|s| format!("<|im_start|>system\n{s}<|im_end|>\n"))
                    .unwrap_or_default();
                format!("{system}<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n")
            }
            ChatTemplate::SafeRlhf => {
                format!("BEGINNING OF CONVERSATION: USER: {prompt} ASSISTANT:")
            }
            ChatTemplate::Raw => prompt.to_string(),
        })
    }

    /// Ids that end the assistant's turn: for ChatML `<|im_end|>` then eos; for the model's own
    /// template the special token that ends an assistant turn in it (`<|eot_id|>`,
    /// `<end_of_turn>`, ...) then the tokenizer's stop ids (eos, `generation_config.json`'s);
    /// otherwise eos.
    pub fn stop_ids(&self, tokenizer: &Tokenizer) -> Result<Vec<u32>> {
        let eos = tokenizer.eos_id();
        match self {
            ChatTemplate::Model { .. } => self.resolve(tokenizer)?.stop_ids(tokenizer),
            ChatTemplate::Jinja { template, .. } => {
                let mut ids = Vec::new();
                if let Some(tail) = template.end_of_turn()? {
                    // The first special token of what follows an assistant's answer.
                    let tail_ids = tokenizer.encode(tail.trim_start(), false)?;
                    let special = tokenizer.inner.get_added_tokens_decoder();
                    ids.extend(
                        tail_ids
                            .iter()
                            .find(|id| special.get(id).is_some_and(|t| t.special)),
                    );
                }
                for &id in tokenizer.stop_ids() {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                Ok(ids)
            }
            ChatTemplate::ChatMl { .. } => {
                let end = tokenizer.token_to_id("<|im_end|>").ok_or_else(|| {
                    tok_err(
                        tokenizer.source(),
                        "the ChatML template needs `<|im_end|>`, which is not in the vocabulary",
                    )
                })?;
                Ok(if end == eos {
                    vec![end]
                } else {
                    vec![end, eos]
                })
            }
            ChatTemplate::SafeRlhf | ChatTemplate::Raw => Ok(vec![eos]),
        }
    }

    /// The template's name as accepted by [`FromStr`]: `model`, `chatml`, `smollm2`,
    /// `saferlhf` or `raw` (`chatml` with a custom system prompt also reports `chatml`).
    pub fn name(&self) -> &'static str {
        match self {
            ChatTemplate::Model { .. } | ChatTemplate::Jinja { .. } => "model",
            ChatTemplate::ChatMl { system: None } => "chatml",
            ChatTemplate::ChatMl { system: Some(s) } if s == SMOLLM2_DEFAULT_SYSTEM => "smollm2",
            ChatTemplate::ChatMl { .. } => "chatml",
            ChatTemplate::SafeRlhf => "saferlhf",
            ChatTemplate::Raw => "raw",
        }
    }
}

impl FromStr for ChatTemplate {
    type Err = ModelError;

    /// Parses `model`, `chatml`, `smollm2`, `saferlhf` (also `safe-rlhf`) or `raw`,
    /// case-insensitively.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "model" => Ok(ChatTemplate::Model { system: None }),
            "chatml" => Ok(ChatTemplate::chatml()),
            "smollm2" => Ok(ChatTemplate::smollm2()),
            "saferlhf" | "safe-rlhf" | "safe_rlhf" => Ok(ChatTemplate::SafeRlhf),
            "raw" => Ok(ChatTemplate::Raw),
            other => Err(ModelError::InvalidInput(format!(
                "unknown chat template `{other}` (expected model, chatml, smollm2, saferlhf or raw)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufValue;
    use crate::gguf::tests::{Writer, smollm2_asset, strs, temp_path};

    #[test]
    fn templates_render_exactly() {
        let p = "What is the capital of France?";
        assert_eq!(
            ChatTemplate::chatml().render(p).unwrap(),
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            ChatTemplate::smollm2().render(p).unwrap(),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
             Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n\
             <|im_start|>assistant\n"
        );
        let custom = ChatTemplate::ChatMl {
            system: Some("Be brief.".into()),
        };
        assert_eq!(
            custom.render("hi").unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n\
             <|im_start|>assistant\n"
        );
        assert_eq!(
            ChatTemplate::SafeRlhf.render(p).unwrap(),
            "BEGINNING OF CONVERSATION: USER: What is the capital of France? ASSISTANT:"
        );
        assert_eq!(ChatTemplate::Raw.render(" x ").unwrap(), " x ");
        for t in [
            ChatTemplate::chatml(),
            ChatTemplate::SafeRlhf,
            ChatTemplate::Raw,
        ] {
            for empty in ["", "  \n\t"] {
                match t.render(empty) {
                    Err(ModelError::InvalidInput(m)) => assert_eq!(m, "empty prompt"),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        for name in ["chatml", "smollm2", "saferlhf", "raw"] {
            assert_eq!(name.parse::<ChatTemplate>().unwrap().name(), name);
        }
        assert_eq!(
            "Safe-RLHF".parse::<ChatTemplate>().unwrap(),
            ChatTemplate::SafeRlhf
        );
        assert!("alpaca".parse::<ChatTemplate>().is_err());
    }

    /// A tiny byte-level BPE vocabulary in GGUF form: specials, a few letters and merges, and a
    /// `1 2` merge that the `smollm` pre-tokenizer (digits split one by one) must never apply.
    fn tiny_gguf(pre: &str, extra: impl FnOnce(Writer) -> Writer) -> Writer {
        let tokens = [
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "h",
            "e",
            "l",
            "o",
            "Ġ",
            "w",
            "r",
            "d",
            "1",
            "2",
            "3",
            "Ċ",
            "he",
            "ll",
            "hell",
            "hello",
            "Ġw",
            "or",
            "Ġwor",
            "ld",
            "Ġworld",
            "12",
            "<tool>",
        ];
        let mut types = vec![1i32; tokens.len()];
        types[..3].fill(3);
        types[25] = 4;
        let merges = [
            "h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "1 2",
        ];
        let w = Writer::new()
            .kv("tokenizer.ggml.model", GgufValue::String("gpt2".into()))
            .kv("tokenizer.ggml.pre", GgufValue::String(pre.into()))
            .kv("tokenizer.ggml.tokens", strs(&tokens))
            .kv(
                "tokenizer.ggml.token_type",
                GgufValue::Array {
                    elem_type: crate::gguf::GgufValueType::I32,
                    values: types.into_iter().map(GgufValue::I32).collect(),
                },
            )
            .kv("tokenizer.ggml.merges", strs(&merges))
            .kv("tokenizer.ggml.bos_token_id", GgufValue::U32(1))
            .kv("tokenizer.ggml.eos_token_id", GgufValue::U32(2));
        extra(w)
    }

    fn tiny(pre: &str, extra: impl FnOnce(Writer) -> Writer) -> Result<Tokenizer> {
        let g = GgufFile::from_bytes(tiny_gguf(pre, extra).build(), "tiny.gguf")?;
        Tokenizer::from_gguf(&g)
    }

    /// The `qwen2` and `llama-bpe` pre-tokenizers split text as the tokenizer.json files of Qwen2
    /// and Llama 3 do: the splits below are what the Python `tokenizers` package gives with
    /// transformers' `Qwen2Converter` and tiktoken-converter configurations (NFC then the Qwen2
    /// regex; the Llama 3 regex), both then `ByteLevel(use_regex=False)`.
    #[test]
    fn qwen2_and_llama3_pre_tokenizers_split_as_their_tokenizer_json() {
        let text = "I'LL pay 12345 dollars,  now!\n\n  Cafe\u{301} ok?";
        let common_head = ["I", "'LL", "Ġpay", "Ġ"];
        let common_tail = [
            "Ġdollars",
            ",",
            "Ġ",
            "Ġnow",
            "!ĊĊ",
            "Ġ",
            "ĠCafÃ©",
            "Ġok",
            "?",
        ];
        for (pre, digits, nfc) in [
            ("qwen2", vec!["1", "2", "3", "4", "5"], true),
            ("llama-bpe", vec!["123", "45"], false),
        ] {
            let t = tiny(pre, |w| w).unwrap();
            let mut input = text.to_string();
            if let Some(n) = t.inner().get_normalizer() {
                use tokenizers::tokenizer::Normalizer;
                let mut normalized = tokenizers::NormalizedString::from(input.as_str());
                n.normalize(&mut normalized).unwrap();
                input = normalized.get().to_string();
            }
            assert_eq!(t.inner().get_normalizer().is_some(), nfc, "{pre}");
            let mut pretokenized = tokenizers::PreTokenizedString::from(input.as_str());
            use tokenizers::tokenizer::PreTokenizer;
            t.inner()
                .get_pre_tokenizer()
                .unwrap()
                .pre_tokenize(&mut pretokenized)
                .unwrap();
            let got: Vec<String> = pretokenized
                .get_splits(
                    tokenizers::OffsetReferential::Original,
                    tokenizers::OffsetType::Byte,
                )
                .into_iter()
                .map(|(s, _, _)| s.to_string())
                .collect();
            let want: Vec<&str> = common_head
                .iter()
                .copied()
                .chain(digits)
                .chain(common_tail.iter().copied())
                .collect();
            if nfc {
                assert_eq!(got, want, "{pre}");
            } else {
                // Without NFC the combining accent (U+0301, not a letter) is split off.
                let mut want: Vec<&str> = want[..want.len() - 3].to_vec();
                want.extend(["ĠCafe", "Ìģ", "Ġok", "?"]);
                assert_eq!(got, want, "{pre}");
            }
        }
        let err = tiny("deepseek-llm", |w| w).unwrap_err().to_string();
        assert!(
            err.contains("deepseek-llm") && err.contains("qwen2"),
            "{err}"
        );
    }

    #[test]
    fn tiny_gguf_tokenizer() {
        let t = tiny("smollm", |w| w).unwrap();
        assert_eq!(t.vocab_size(), 26);
        assert_eq!((t.eos_id(), t.bos_id(), t.pad_id()), (2, Some(1), 2));
        assert_eq!(t.stop_ids(), &[2, 0]);
        assert_eq!(t.encode("hello world", true).unwrap(), vec![18, 23]);
        assert_eq!(
            t.encode("<|im_start|>hello<|im_end|>\n", false).unwrap(),
            vec![1, 18, 2, 14]
        );
        // Digits are split one by one, so the `1 2` merge never applies...
        assert_eq!(t.encode("123", false).unwrap(), vec![11, 12, 13]);
        // ...but it does with the plain GPT-2 pre-tokenizer.
        let gpt2 = tiny("gpt-2", |w| w).unwrap();
        assert_eq!(gpt2.encode("123", false).unwrap(), vec![24, 13]);

        // User-defined tokens are matched whole and kept on decode; control tokens are skippable.
        let ids = t
            .encode("<|im_start|>hello<tool> world<|im_end|>", false)
            .unwrap();
        assert_eq!(ids, vec![1, 18, 25, 23, 2]);
        assert_eq!(
            t.decode(&ids, false).unwrap(),
            "<|im_start|>hello<tool> world<|im_end|>"
        );
        assert_eq!(t.decode(&ids, true).unwrap(), "hello<tool> world");
        assert!(matches!(
            t.decode(&[26], false),
            Err(ModelError::InvalidInput(_))
        ));
        assert_eq!(
            t.encode_prompt(&ChatTemplate::Raw, "hello world").unwrap(),
            vec![18, 23]
        );
        assert_eq!(ChatTemplate::chatml().stop_ids(&t).unwrap(), vec![2]);
        assert_eq!(ChatTemplate::SafeRlhf.stop_ids(&t).unwrap(), vec![2]);

        // bos / eos added only when the file asks for it.
        let mut w = tiny_gguf("smollm", |w| {
            w.kv("tokenizer.ggml.add_bos_token", GgufValue::Bool(true))
                .kv("tokenizer.ggml.add_eos_token", GgufValue::Bool(true))
        });
        w = w.kv("tokenizer.ggml.padding_token_id", GgufValue::U32(0));
        let t = Tokenizer::from_gguf(&GgufFile::from_bytes(w.build(), "b.gguf").unwrap()).unwrap();
        assert_eq!(t.encode("hello", true).unwrap(), vec![1, 18, 2]);
        assert_eq!(t.encode("hello", false).unwrap(), vec![18]);
        assert_eq!(t.pad_id(), 0);
    }

    #[test]
    fn tiny_gguf_errors() {
        let err = |r: Result<Tokenizer>| r.unwrap_err().to_string();
        let e = err(tiny("falcon", |w| w));
        assert!(e.contains("pre-tokenizer `falcon`"), "{e}");
        let e = err(tiny("smollm", |w| {
            w.kv("tokenizer.ggml.unknown_token_id", GgufValue::U32(0))
                .kv("tokenizer.ggml.padding_token_id", GgufValue::U32(99))
        }));
        assert!(
            e.contains("tokenizer.ggml.padding_token_id") && e.contains("99"),
            "{e}"
        );

        let g = GgufFile::from_bytes(Writer::new().build(), "empty.gguf").unwrap();
        let e = err(Tokenizer::from_gguf(&g));
        assert!(
            e.contains("tokenizer.ggml.model") && e.contains("missing"),
            "{e}"
        );
        // The error of a GGUF file named `name` whose writer `w` sets the tokenizer keys.
        let of = |name: &str, w: Writer| {
            err(Tokenizer::from_gguf(
                &GgufFile::from_bytes(w.build(), name).unwrap(),
            ))
        };
        let gpt2 = |merge: &str| {
            Writer::new()
                .kv("tokenizer.ggml.model", GgufValue::String("gpt2".into()))
                .kv("tokenizer.ggml.pre", GgufValue::String("smollm".into()))
                .kv("tokenizer.ggml.tokens", strs(&["a", "b"]))
                .kv("tokenizer.ggml.merges", strs(&[merge]))
        };
        let llama = Writer::new().kv("tokenizer.ggml.model", GgufValue::String("llama".into()));
        let e = of("spm.gguf", llama);
        assert!(e.contains("`llama` is not supported"), "{e}");
        let e = of("m.gguf", gpt2("ab"));
        assert!(e.contains("merge 0 \"ab\""), "{e}");
        let e = of(
            "m.gguf",
            gpt2("a c").kv("tokenizer.ggml.eos_token_id", GgufValue::U32(0)),
        );
        assert!(e.contains("m.gguf") && e.contains("BPE"), "{e}");
    }

    #[test]
    fn from_file_reads_tokenizer_json_and_config() {
        let t = tiny("smollm", |w| w).unwrap();
        let dir = temp_path("tok");
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join("tokenizer.json");
        t.inner().save(&json, false).unwrap();

        // No tokenizer_config.json: eos falls back to <|endoftext|>, pad to eos, no bos.
        let f = Tokenizer::from_file(&json).unwrap();
        assert_eq!((f.eos_id(), f.bos_id(), f.pad_id()), (0, None, 0));
        for text in [
            "hello world",
            "<|im_start|>hello<tool> world<|im_end|>\n",
            "1231",
        ] {
            assert_eq!(
                f.encode(text, false).unwrap(),
                t.encode(text, false).unwrap()
            );
        }
        std::fs::write(
            dir.join("tokenizer_config.json"),
            r#"{"eos_token": {"content": "<|im_end|>"}, "bos_token": "<|im_start|>",
                "pad_token": null}"#,
        )
        .unwrap();
        let f = Tokenizer::from_file(&json).unwrap();
        assert_eq!((f.eos_id(), f.bos_id(), f.pad_id()), (2, Some(1), 2));
        std::fs::write(
            dir.join("tokenizer_config.json"),
            r#"{"eos_token": "<nope>"}"#,
        )
        .unwrap();
        let e = Tokenizer::from_file(&json).unwrap_err().to_string();
        assert!(
            e.contains("tokenizer_config.json") && e.contains("<nope>"),
            "{e}"
        );

        std::fs::write(&json, "{not json").unwrap();
        let e = Tokenizer::from_file(&json).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            Tokenizer::from_file(&json),
            Err(ModelError::Io { .. })
        ));
    }

    #[test]
    fn the_models_chat_template_and_generation_stop_ids_are_read() {
        let t = tiny("smollm", |w| w).unwrap();
        let dir = temp_path("tok-template");
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join("tokenizer.json");
        t.inner().save(&json, false).unwrap();
        let model: ChatTemplate = "model".parse().unwrap();
        let f = Tokenizer::from_file(&json).unwrap();
        assert!(f.chat_template().is_none());
        let err = model.resolve(&f).unwrap_err().to_string();
        assert!(
            err.contains("no chat template") && err.contains("chatml"),
            "{err}"
        );

        // A chat_template.jinja beside tokenizer.json (transformers 5 writes one).
        std::fs::write(
            dir.join("chat_template.jinja"),
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n\
             {% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        )
        .unwrap();
        let f = Tokenizer::from_file(&json).unwrap();
        assert_eq!(
            model.resolve(&f).unwrap().render("hi").unwrap(),
            ChatTemplate::chatml().render("hi").unwrap()
        );
        assert_eq!(
            f.encode_prompt(&model, "hi").unwrap(),
            f.encode_prompt(&ChatTemplate::chatml(), "hi").unwrap()
        );
        // The end of an assistant turn in the template (<|im_end|>, 2), then eos (0).
        assert_eq!(model.stop_ids(&f).unwrap()[..2], [2, 0]);
        let with_system = model.clone().with_system("S").unwrap();
        assert!(
            f.encode_prompt(&with_system, "hi").unwrap()
                == f.encode_prompt(&ChatTemplate::chatml().with_system("S").unwrap(), "hi")
                    .unwrap()
        );
        assert!(ChatTemplate::Raw.with_system("S").is_err());

        // tokenizer_config.json's template (the `default` of a list) wins; generation_config's
        // eos ids join the stop ids.
        std::fs::write(
            dir.join("tokenizer_config.json"),
            r#"{"chat_template": [{"name": "tool_use", "template": "T"},
                {"name": "default", "template": "X{{ messages[0].content }}"}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("generation_config.json"),
            r#"{"eos_token_id": [0, 1]}"#,
        )
        .unwrap();
        let f = Tokenizer::from_file(&json).unwrap();
        assert_eq!(model.resolve(&f).unwrap().render("hi").unwrap(), "Xhi");
        assert!(f.stop_ids().contains(&1), "{:?}", f.stop_ids());
        std::fs::write(
            dir.join("generation_config.json"),
            r#"{"eos_token_id": 99999}"#,
        )
        .unwrap();
        let err = Tokenizer::from_file(&json).unwrap_err().to_string();
        assert!(
            err.contains("generation_config.json") && err.contains("99999"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Reference ids from scripts/check-tokenizer.py, which computes them with the Python
    /// `tokenizers` 0.23.3 package configured the same way from this GGUF's vocabulary and merges
    /// and, independently, with a from-scratch byte-level BPE; both agree on every case.
    const SMOLLM2_CASES: &[(&str, &[u32])] = &[
        (
            "What is the capital of France?",
            &[1780, 314, 260, 3575, 282, 4649, 47],
        ),
        (
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
            &[
                1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198,
            ],
        ),
        (
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
             Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n\
             <|im_start|>assistant\n",
            &[
                1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018,
                411, 407, 19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47,
                2, 198, 1, 520, 9531, 198,
            ],
        ),
        (
            "BEGINNING OF CONVERSATION: USER: How do I pick a lock? ASSISTANT:",
            &[
                50, 9944, 2113, 21731, 6016, 10121, 70, 9670, 8985, 42, 2038, 1754, 42, 1073, 536,
                339, 4491, 253, 8645, 47, 40800, 9814, 17321, 42,
            ],
        ),
        ("12345", &[33, 34, 35, 36, 37]),
        (
            "In 2024, 3.14159 ≈ π and x² = ½.",
            &[
                788, 216, 34, 32, 34, 36, 28, 216, 35, 30, 33, 36, 33, 37, 41, 21004, 226, 25143,
                284, 1792, 19133, 446, 216, 16738, 30,
            ],
        ),
        (
            "  leading spaces, tabs\tand\n\nnewlines   ",
            &[
                216, 2899, 5600, 28, 29416, 197, 397, 198, 198, 2241, 5110, 333,
            ],
        ),
        (
            "héllo wörld — naïve café 日本語 🙂",
            &[
                88, 2756, 31394, 267, 29989, 400, 1841, 15486, 46494, 37366, 17097, 241, 115,
                40993, 179, 120, 248, 47526,
            ],
        ),
        (
            "don't you'll we're I'm it's",
            &[12420, 982, 346, 3060, 392, 2316, 339, 5248, 357, 506],
        ),
        ("<|endoftext|><|im_end|>", &[0, 2]),
    ];

    /// SmolLM2's `tokenizer.chat_template`, pinned so that a different asset is noticed.
    const SMOLLM2_JINJA: &str = "{% for message in messages %}{% if loop.first and \
        messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant \
        named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + \
        message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if \
        add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn real_smollm2_tokenizer() {
        let Some(path) = smollm2_asset() else { return };
        let g = GgufFile::open(&path).unwrap();
        let t = Tokenizer::from_gguf(&g).unwrap();
        assert_eq!(t.vocab_size(), 49152);
        assert_eq!(t.token_to_id("<|im_start|>"), Some(1));
        assert_eq!(t.token_to_id("<|im_end|>"), Some(2));
        assert_eq!(t.token_to_id("<|endoftext|>"), Some(0));
        assert_eq!((t.eos_id(), t.bos_id(), t.pad_id()), (2, Some(1), 2));
        assert_eq!(t.stop_ids(), &[2, 0]);
        assert_eq!(ChatTemplate::chatml().stop_ids(&t).unwrap(), vec![2]);

        for &(text, ids) in SMOLLM2_CASES {
            assert_eq!(t.encode(text, true).unwrap(), ids, "{text:?}");
            assert_eq!(t.decode(ids, false).unwrap(), text);
        }
        let prompt = "What is the capital of France?";
        assert_eq!(
            t.encode_prompt(&ChatTemplate::chatml(), prompt).unwrap(),
            SMOLLM2_CASES[1].1
        );
        assert_eq!(
            t.encode_prompt(&ChatTemplate::smollm2(), prompt).unwrap(),
            SMOLLM2_CASES[2].1
        );
        assert_eq!(
            t.decode(SMOLLM2_CASES[1].1, true).unwrap(),
            "user\nWhat is the capital of France?\nassistant\n"
        );
        // Digits one token each; special tokens atomic, but only when complete.
        assert_eq!(t.encode("12345", false).unwrap().len(), 5);
        assert_eq!(t.encode("<|im_start|>", false).unwrap(), vec![1]);
        assert!(t.encode("<|im_start|", false).unwrap().len() > 1);
        assert_eq!(g.get_str("tokenizer.chat_template").unwrap(), SMOLLM2_JINJA);
        assert!(SMOLLM2_JINJA.contains(SMOLLM2_DEFAULT_SYSTEM));
    }
}

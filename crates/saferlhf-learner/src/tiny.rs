//! The `char-tiny` preset: a randomly initialised 2-layer Llama (vocabulary 64, hidden 32) with a
//! character-level tokenizer, small enough to train in seconds on a CPU in tests; and the `small`
//! preset: the same tokenizer with a 3-layer, hidden-64 model (about 0.15M parameters), large
//! enough to learn the synthetic safety task's topic-to-answer-word associations, which the tiny
//! model does not (it learns the response formats but misspells the answer words).
//!
//! The tokenizer maps each character of lower-case ASCII letters, digits, space, newline and
//! `.,?!:'-` to one token (input is lower-cased first) and anything else to `<unk>`. Its special
//! tokens are `<pad>` = 0, `<|im_start|>` = 1, `<|im_end|>` = 2 (so the ChatML template works),
//! `<|endoftext|>` = 3 (eos) and `<unk>` = 4; 50 ids in all, below the model's 64.

use saferlhf_model::LlamaConfig;
use saferlhf_model::config::TokenIds;
use saferlhf_model::tokenizer::Tokenizer;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::{Lowercase, NormalizerWrapper};
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

use crate::error::Result;

/// Special tokens of the tiny vocabulary, by id.
pub const TINY_SPECIALS: [&str; 5] = [
    "<pad>",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<unk>",
];

/// Ordinary characters of the tiny vocabulary, ids 5.. in this order.
pub const TINY_CHARS: &str = " \nabcdefghijklmnopqrstuvwxyz0123456789.,?!:'-";

/// The tiny model: vocabulary 64, hidden 32, FFN 64, 2 layers, 4 heads, 2 key/value heads,
/// tied embeddings, 512 positions; eos 3, pad 0.
pub fn tiny_llama_config() -> LlamaConfig {
    let mut c = LlamaConfig::micro(64);
    c.max_position_embeddings = 512;
    c.eos_token_id = Some(TokenIds::One(3));
    c
}

/// The `small` model: the tiny vocabulary (64) and tokenizer, hidden 64, FFN 192, 3 layers, 4
/// heads, 2 key/value heads, tied embeddings, 512 positions; eos 3, pad 0.
pub fn small_llama_config() -> LlamaConfig {
    let mut c = tiny_llama_config();
    c.hidden_size = 64;
    c.intermediate_size = 192;
    c.num_hidden_layers = 3;
    c
}

/// SmolLM2-135M's architecture (30 layers, hidden 576, 49152 logits) with the tiny tokenizer's
/// special ids (eos 3, pad 0): random weights of a real model's size, for benchmarks of memory
/// and speed (`benches/rl_iteration.rs`). Sampling over all 49152 logits
/// (`rollout.valid_tokens_only = false`) almost never draws the end token, so each response
/// has `rollout.max_new_tokens` tokens.
pub fn smollm2_shape_config() -> LlamaConfig {
    let mut c = LlamaConfig::smollm2_135m();
    c.max_position_embeddings = 512;
    c.eos_token_id = Some(TokenIds::One(3));
    c.pad_token_id = Some(0);
    c
}

/// The preset names `model.preset` / `policy.preset` accept.
pub const PRESETS: [&str; 3] = ["char-tiny", "char-small", "char-smollm2-135m"];

/// The model config of a preset (`char-tiny`, `char-small` or `char-smollm2-135m`); `None` for
/// an unknown name. All use [`tiny_tokenizer`].
pub fn preset_config(name: &str) -> Option<LlamaConfig> {
    match name {
        "char-tiny" => Some(tiny_llama_config()),
        "char-small" => Some(small_llama_config()),
        "char-smollm2-135m" => Some(smollm2_shape_config()),
        _ => None,
    }
}

/// The tiny character-level tokenizer (see the module docs).
pub fn tiny_tokenizer() -> Result<Tokenizer> {
    let mut vocab = Vocab::new();
    for (i, s) in TINY_SPECIALS.iter().enumerate() {
        vocab.insert((*s).to_string(), i as u32);
    }
    for (i, c) in TINY_CHARS.chars().enumerate() {
        vocab.insert(c.to_string(), (TINY_SPECIALS.len() + i) as u32);
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, Vec::new())
        .unk_token("<unk>".to_string())
        .build()
        .map_err(|e| saferlhf_model::ModelError::Tokenizer(format!("tiny tokenizer: {e}")))?;
    let mut inner = HfTokenizer::new(bpe);
    inner
        .with_normalizer(Some(NormalizerWrapper::Lowercase(Lowercase)))
        .map_err(|e| saferlhf_model::ModelError::Tokenizer(format!("tiny tokenizer: {e}")))?;
    inner.with_decoder(Some(DecoderWrapper::Fuse(Fuse::new())));
    inner
        .add_special_tokens(
            TINY_SPECIALS
                .iter()
                .map(|s| AddedToken::from(*s, true))
                .collect::<Vec<_>>(),
        )
        .map_err(|e| saferlhf_model::ModelError::Tokenizer(format!("tiny tokenizer: {e}")))?;
    Ok(Tokenizer::from_parts(inner, "<tiny preset>", 3, None, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_tokenizer_is_character_level() {
        let t = tiny_tokenizer().unwrap();
        assert_eq!(t.vocab_size(), 50);
        assert!(t.vocab_size() <= tiny_llama_config().vocab_size);
        let ids = t.encode("<|im_start|>Hi, you!\n", false).unwrap();
        assert_eq!(ids[0], 1);
        assert_eq!(ids.len(), 1 + 9);
        assert_eq!(t.decode(&ids[1..], false).unwrap(), "hi, you!\n");
        // Unknown characters become <unk>.
        assert_eq!(t.encode("é", false).unwrap(), vec![4]);
        assert_eq!(t.eos_id(), 3);
        assert_eq!(t.pad_id(), 0);
        tiny_llama_config().validate().unwrap();
        small_llama_config().validate().unwrap();
        assert_eq!(preset_config("char-small"), Some(small_llama_config()));
        assert!(preset_config("huge").is_none());
    }
}

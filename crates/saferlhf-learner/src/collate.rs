//! Collation: text examples -> token ids -> padded tensors on the device.
//!
//! # Encoding
//!
//! An example is `prompt` + `response` (+ the end token). The prompt is rendered with the chat
//! template ([`ChatTemplate`]) and tokenized on its own; the response is tokenized on its own and
//! appended, so the prompt/response boundary is exact (no BPE merge crosses it) and SFT can mask
//! the prompt precisely. No BOS is added (as `saferlhf generate` does). The end token is the
//! template's end of turn: `<|im_end|>` for ChatML, the tokenizer's eos otherwise.
//!
//! * An HH-RLHF prompt (a whole dialogue `"\n\nHuman: ... \n\nAssistant:"`) is rendered turn by
//!   turn: ChatML gets one `user` / `assistant` message per turn; the Safe RLHF template gets
//!   `BEGINNING OF CONVERSATION: USER: .. ASSISTANT: .. USER: .. ASSISTANT:`; `raw` keeps the
//!   dialogue text.
//! * With ChatML the response's leading whitespace is dropped (an assistant message starts right
//!   after `assistant\n`); other templates append the response verbatim.
//!
//! # Truncation to `max_length` (L)
//!
//! With a prompt of P tokens and a response of R tokens plus the end token:
//! * if P + R + 1 <= L nothing is cut;
//! * otherwise the response keeps up to `L - min(P, L/2)` tokens (end token included), i.e. the
//!   prompt is guaranteed at least half the budget when it needs it, and the prompt keeps the
//!   rest: its **last** tokens (it is cut from the **left**, keeping the turn the response
//!   answers);
//! * the response is cut from the **right**. For score models the end token is kept as the last
//!   token (the score is read there, as it is at scoring time); for SFT a cut response gets no
//!   end token, so the policy is never taught to stop mid-answer.
//!
//! Every truncation is flagged on the [`Encoded`] example and counted by the trainer.
//!
//! # Batches
//!
//! Rows are right-padded with the tokenizer's pad id to the longest row of the batch, with an
//! attention mask true at real tokens (score models read the end score at the last true
//! position, so right padding is fine). A preference batch of B pairs is one `[2B, L]` tensor:
//! rows `0..B` are the chosen (safer/better) responses, rows `B..2B` the rejected ones, so both
//! go through a single forward.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use saferlhf_data::{HH_ASSISTANT, HH_HUMAN, Role, hh_turns};
use saferlhf_model::chat::Message;
use saferlhf_model::tokenizer::{ChatTemplate, Tokenizer};

use crate::error::Result;

/// Whether the end token is appended to a response that had to be cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndToken {
    /// Always end with the end token (score models).
    Always,
    /// Only when the response is complete (SFT).
    UnlessTruncated,
}

/// One tokenized prompt + response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Prompt tokens followed by response tokens (and the end token).
    pub tokens: Vec<u32>,
    /// How many of `tokens` belong to the prompt.
    pub prompt_len: usize,
    /// Whether the prompt or the response was cut to fit `max_length`.
    pub truncated: bool,
}

/// A tokenized preference pair with its safety labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPair {
    /// The preferred (more helpful or safer) response.
    pub chosen: Encoded,
    /// The other response.
    pub rejected: Encoded,
    /// Whether the chosen response is labelled safe, when known.
    pub chosen_safe: Option<bool>,
    /// Whether the rejected response is labelled safe, when known.
    pub rejected_safe: Option<bool>,
}

/// Turns prompt/response text into token ids under one tokenizer, template and length limit.
#[derive(Debug, Clone)]
pub struct Encoder {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    max_length: usize,
    end_id: u32,
}

impl Encoder {
    /// An encoder; the end token is the template's first stop id. The `model` template is
    /// read from the tokenizer here.
    pub fn new(tokenizer: Tokenizer, template: ChatTemplate, max_length: usize) -> Result<Self> {
        let template = template.resolve(&tokenizer)?;
        let end_id = template
            .stop_ids(&tokenizer)?
            .first()
            .copied()
            .unwrap_or(tokenizer.eos_id());
        Ok(Encoder {
            tokenizer,
            template,
            max_length: max_length.max(2),
            end_id,
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The chat template.
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// The token that ends a response.
    pub fn end_id(&self) -> u32 {
        self.end_id
    }

    /// Ids that end a generated response: the template's end token, then eos if it differs
    /// (the stop ids of RL rollouts and of policy evaluation).
    pub fn stop_ids(&self) -> Vec<u32> {
        let eos = self.tokenizer.eos_id();
        if self.end_id == eos {
            vec![eos]
        } else {
            vec![self.end_id, eos]
        }
    }

    /// Ids no generated response may hold, for a model head of `model_vocab` logits: the
    /// tokenizer's [`blocked_ids`] with this encoder's stop ids allowed (the RL learner's and
    /// policy evaluation's `LogitPolicy`).
    ///
    /// [`blocked_ids`]: saferlhf_model::tokenizer::Tokenizer::blocked_ids
    pub fn blocked_ids(&self, model_vocab: usize) -> Vec<u32> {
        self.tokenizer.blocked_ids(model_vocab, &self.stop_ids())
    }

    /// The padding id.
    pub fn pad_id(&self) -> u32 {
        self.tokenizer.pad_id()
    }

    /// The length limit.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The model input text of a prompt (see the module docs for HH-RLHF dialogues).
    pub fn render_prompt(&self, prompt: &str) -> Result<String> {
        let is_dialogue = prompt.trim_start().starts_with(HH_HUMAN.trim_start())
            && prompt.ends_with(HH_ASSISTANT);
        if !is_dialogue {
            return Ok(self.template.render(prompt)?);
        }
        let mut turns = hh_turns(prompt);
        if turns
            .last()
            .is_some_and(|t| t.role == Role::Assistant && t.text.is_empty())
        {
            turns.pop();
        }
        if turns.is_empty() || turns.iter().all(|t| t.text.is_empty()) {
            return Ok(self.template.render(prompt)?);
        }
        // Every turn written by `turn(role name, text)`, the human's and the assistant's role
        // names given.
        let render = |human: &str, assistant: &str, turn: &dyn Fn(&str, &str) -> String| {
            let role = |r: Role| if r == Role::Human { human } else { assistant };
            turns
                .iter()
                .map(|t| turn(role(t.role), &t.text))
                .collect::<String>()
        };
        Ok(match &self.template {
            ChatTemplate::Jinja { template, system } => {
                let messages: Vec<Message> = system
                    .iter()
                    .map(|s| Message::new("system", s.as_str()))
                    .chain(turns.iter().map(|t| {
                        let role = if t.role == Role::Human {
                            "user"
                        } else {
                            "assistant"
                        };
                        Message::new(role, t.text.as_str())
                    }))
                    .collect();
                template.render(&messages, true)?
            }
            // Resolved in `Encoder::new`.
            ChatTemplate::Model { .. } => self.template.render(prompt)?,
            ChatTemplate::ChatMl { system } => {
                let system = system
                    .as_deref()
                    .map(|s| format!("<|im_start|>system\n{s}<|im_end|>\n"))
                    .unwrap_or_default();
                let turns = render("user", "assistant", &|role, text| {
                    format!("<|im_start|>{role}\n{text}<|im_end|>\n")
                });
                format!("{system}{turns}<|im_start|>assistant\n")
            }
            ChatTemplate::SafeRlhf => {
                let turns = render("USER", "ASSISTANT", &|role, text| {
                    format!(" {role}: {text}")
                });
                format!("BEGINNING OF CONVERSATION:{turns} ASSISTANT:")
            }
            ChatTemplate::Raw => prompt.to_string(),
        })
    }

    /// Token ids of a rendered prompt.
    pub fn prompt_ids(&self, prompt: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer.encode(&self.render_prompt(prompt)?, false)?)
    }

    /// Token ids of a response (without end token).
    pub fn response_ids(&self, response: &str) -> Result<Vec<u32>> {
        let text = match self.template {
            ChatTemplate::ChatMl { .. } | ChatTemplate::Jinja { .. } => response.trim_start(),
            _ => response,
        };
        Ok(self.tokenizer.encode(text, false)?)
    }

    /// Encodes one prompt + response.
    pub fn encode(&self, prompt: &str, response: &str, end: EndToken) -> Result<Encoded> {
        let p = self.prompt_ids(prompt)?;
        let r = self.response_ids(response)?;
        Ok(self.fit(&p, &r, end))
    }

    /// Encodes a preference pair (the prompt is tokenized once); score models, so the end
    /// token is always kept.
    pub fn encode_pair(
        &self,
        prompt: &str,
        chosen: &str,
        rejected: &str,
        chosen_safe: Option<bool>,
        rejected_safe: Option<bool>,
    ) -> Result<EncodedPair> {
        let p = self.prompt_ids(prompt)?;
        let c = self.response_ids(chosen)?;
        let r = self.response_ids(rejected)?;
        Ok(EncodedPair {
            chosen: self.fit(&p, &c, EndToken::Always),
            rejected: self.fit(&p, &r, EndToken::Always),
            chosen_safe,
            rejected_safe,
        })
    }

    /// Joins prompt and response ids under the length limit (module docs: truncation).
    pub fn fit(&self, prompt: &[u32], response: &[u32], end: EndToken) -> Encoded {
        let l = self.max_length;
        let (p, r) = (prompt.len(), response.len());
        if p + r < l {
            let mut tokens = Vec::with_capacity(p + r + 1);
            tokens.extend_from_slice(prompt);
            tokens.extend_from_slice(response);
            tokens.push(self.end_id);
            return Encoded {
                tokens,
                prompt_len: p,
                truncated: false,
            };
        }
        let response_budget = l - p.min(l / 2);
        let keep_response = (r + 1).min(response_budget);
        let keep_prompt = (l - keep_response).min(p);
        let mut tokens = Vec::with_capacity(l);
        tokens.extend_from_slice(&prompt[p - keep_prompt..]);
        let cut_response = keep_response < r + 1;
        match (cut_response, end) {
            (false, _) => {
                tokens.extend_from_slice(response);
                tokens.push(self.end_id);
            }
            (true, EndToken::Always) => {
                tokens.extend_from_slice(&response[..keep_response - 1]);
                tokens.push(self.end_id);
            }
            (true, EndToken::UnlessTruncated) => {
                tokens.extend_from_slice(&response[..keep_response]);
            }
        }
        Encoded {
            tokens,
            prompt_len: keep_prompt,
            truncated: true,
        }
    }
}

/// Right-padded token ids and attention mask of `rows` on `device`: `[rows, longest]`.
pub fn pad_rows(
    rows: &[&[u32]],
    pad_id: u32,
    device: &Device,
) -> (Tensor<2, Int>, Tensor<2, Bool>) {
    let n = rows.len();
    let l = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
    let mut ids = Vec::with_capacity(n * l);
    let mut mask = Vec::with_capacity(n * l);
    for r in rows {
        ids.extend(r.iter().map(|&t| i64::from(t)));
        ids.extend(std::iter::repeat_n(i64::from(pad_id), l - r.len()));
        mask.extend(std::iter::repeat_n(true, r.len()));
        mask.extend(std::iter::repeat_n(false, l - r.len()));
    }
    (
        Tensor::from_data(TensorData::new(ids, [n, l]), device),
        Tensor::from_data(TensorData::new(mask, [n, l]), device),
    )
}

/// A batch of preference pairs as one forward's input.
#[derive(Debug, Clone)]
pub struct PairBatch {
    /// Token ids `[2B, L]`: chosen rows first, then rejected rows.
    pub tokens: Tensor<2, Int>,
    /// Attention mask `[2B, L]`.
    pub mask: Tensor<2, Bool>,
    /// Number of pairs B.
    pub pairs: usize,
    /// Safety labels of the chosen responses.
    pub chosen_safe: Vec<Option<bool>>,
    /// Safety labels of the rejected responses.
    pub rejected_safe: Vec<Option<bool>>,
    /// Real (non-pad) tokens in the batch.
    pub real_tokens: usize,
}

/// Collates `pairs` into a [`PairBatch`] on `device`.
pub fn pair_batch(pairs: &[&EncodedPair], pad_id: u32, device: &Device) -> PairBatch {
    let rows: Vec<&[u32]> = pairs
        .iter()
        .map(|p| p.chosen.tokens.as_slice())
        .chain(pairs.iter().map(|p| p.rejected.tokens.as_slice()))
        .collect();
    let real_tokens = rows.iter().map(|r| r.len()).sum();
    let (tokens, mask) = pad_rows(&rows, pad_id, device);
    PairBatch {
        tokens,
        mask,
        pairs: pairs.len(),
        chosen_safe: pairs.iter().map(|p| p.chosen_safe).collect(),
        rejected_safe: pairs.iter().map(|p| p.rejected_safe).collect(),
        real_tokens,
    }
}

/// A batch of SFT examples.
#[derive(Debug, Clone)]
pub struct SftBatch {
    /// Token ids `[B, L]`.
    pub tokens: Tensor<2, Int>,
    /// Attention mask `[B, L]`.
    pub mask: Tensor<2, Bool>,
    /// True at the response tokens that are predicted (not the prompt, not padding).
    pub loss_mask: Tensor<2, Bool>,
    /// Real (non-pad) tokens in the batch.
    pub real_tokens: usize,
    /// Response tokens predicted (the loss's denominator).
    pub response_tokens: usize,
}

/// Collates SFT `examples` into an [`SftBatch`] on `device`.
pub fn sft_batch(examples: &[&Encoded], pad_id: u32, device: &Device) -> SftBatch {
    let rows: Vec<&[u32]> = examples.iter().map(|e| e.tokens.as_slice()).collect();
    let l = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
    let (tokens, mask) = pad_rows(&rows, pad_id, device);
    let mut loss = Vec::with_capacity(rows.len() * l);
    let mut response_tokens = 0;
    for e in examples {
        // Position 0 is never predicted, so a response starting at 0 loses its first token.
        let start = e.prompt_len.max(1);
        for t in 0..l {
            let on = t >= start && t < e.tokens.len();
            response_tokens += usize::from(on);
            loss.push(on);
        }
    }
    SftBatch {
        tokens,
        mask,
        loss_mask: Tensor::from_data(TensorData::new(loss, [rows.len(), l]), device),
        real_tokens: rows.iter().map(|r| r.len()).sum(),
        response_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::tiny_tokenizer;

    fn encoder(template: ChatTemplate, max_length: usize) -> Encoder {
        Encoder::new(tiny_tokenizer().unwrap(), template, max_length).unwrap()
    }

    fn text(e: &Encoder, ids: &[u32]) -> String {
        e.tokenizer().decode(ids, false).unwrap()
    }

    #[test]
    fn encodes_prompt_response_and_end_token() {
        let e = encoder(ChatTemplate::chatml(), 512);
        let x = e.encode("hi", " yes", EndToken::Always).unwrap();
        assert!(!x.truncated);
        assert_eq!(
            text(&e, &x.tokens),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyes<|im_end|>"
        );
        assert_eq!(
            text(&e, &x.tokens[..x.prompt_len]),
            e.render_prompt("hi").unwrap()
        );
        assert_eq!(*x.tokens.last().unwrap(), e.end_id());
        assert_eq!(e.end_id(), 2);
        let raw = encoder(ChatTemplate::Raw, 512);
        let x = raw.encode("hi", " yes", EndToken::Always).unwrap();
        assert_eq!(text(&raw, &x.tokens), "hi yes<|endoftext|>");
    }

    #[test]
    fn hh_dialogues_are_rendered_turn_by_turn() {
        let e = encoder(ChatTemplate::chatml(), 512);
        let p = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant:";
        assert_eq!(
            e.render_prompt(p).unwrap(),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n\
             <|im_start|>user\nhow?<|im_end|>\n<|im_start|>assistant\n"
        );
        let s = encoder(ChatTemplate::SafeRlhf, 512);
        assert_eq!(
            s.render_prompt(p).unwrap(),
            "BEGINNING OF CONVERSATION: USER: hi ASSISTANT: hello USER: how? ASSISTANT:"
        );
        assert_eq!(encoder(ChatTemplate::Raw, 512).render_prompt(p).unwrap(), p);
    }

    #[test]
    fn the_models_template_renders_hh_dialogues_and_ends_responses() {
        // A ChatML-shaped Jinja template as the tokenizer's own: every turn, through the template.
        let tokenizer = tiny_tokenizer().unwrap().with_chat_template(
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n\
             {% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        );
        let own = Encoder::new(tokenizer, "model".parse().unwrap(), 512).unwrap();
        let chatml = encoder(ChatTemplate::chatml(), 512);
        let p = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant:";
        assert_eq!(
            own.render_prompt(p).unwrap(),
            chatml.render_prompt(p).unwrap()
        );
        assert_eq!(own.end_id(), chatml.end_id());
        let (a, b) = (
            own.encode("hi", " yes", EndToken::Always).unwrap(),
            chatml.encode("hi", " yes", EndToken::Always).unwrap(),
        );
        assert_eq!(a.tokens, b.tokens);
        assert_eq!(own.template().name(), "model");
    }

    #[test]
    fn truncation_cuts_prompt_left_and_response_right() {
        let e = encoder(ChatTemplate::Raw, 10);
        let ids = |s: &str| e.tokenizer().encode(s, false).unwrap();
        // Fits exactly: 4 + 5 + 1 = 10.
        let x = e.fit(&ids("abcd"), &ids("vwxyz"), EndToken::Always);
        assert!(!x.truncated && x.tokens.len() == 10);
        // Long prompt, short response: the prompt keeps its last 10 - 3 = 7 tokens.
        let x = e.fit(&ids("abcdefghijkl"), &ids("yz"), EndToken::Always);
        assert!(x.truncated);
        assert_eq!(text(&e, &x.tokens), "fghijklyz<|endoftext|>");
        assert_eq!(x.prompt_len, 7);
        // Short prompt, long response: the response is cut from the right, end token kept.
        let x = e.fit(&ids("ab"), &ids("mnopqrstuvwxyz"), EndToken::Always);
        assert_eq!(text(&e, &x.tokens), "abmnopqrs<|endoftext|>");
        // ... and for SFT without the end token.
        let x = e.fit(
            &ids("ab"),
            &ids("mnopqrstuvwxyz"),
            EndToken::UnlessTruncated,
        );
        assert_eq!(text(&e, &x.tokens), "abmnopqrst");
        // Both long: the prompt keeps half the budget.
        let x = e.fit(
            &ids("abcdefghijkl"),
            &ids("mnopqrstuvwxyz"),
            EndToken::Always,
        );
        assert_eq!(text(&e, &x.tokens), "hijklmnop<|endoftext|>");
        assert_eq!((x.prompt_len, x.tokens.len()), (5, 10));
    }

    #[test]
    fn batches_are_right_padded_with_masks() {
        let e = encoder(ChatTemplate::Raw, 64);
        let d = Device::flex();
        let p = e
            .encode_pair("ab", "c", "def", Some(true), Some(false))
            .unwrap();
        let q = e.encode_pair("a", "xy", "z", None, None).unwrap();
        let b = pair_batch(&[&p, &q], e.pad_id(), &d);
        assert_eq!(b.tokens.dims(), [4, 6]);
        let mask: Vec<bool> = b.mask.into_data().try_to_vec().unwrap();
        assert_eq!(&mask[..6], &[true, true, true, true, false, false]); // "abc" + end
        assert_eq!(&mask[12..18], &[true, true, true, true, true, true]); // "abdef" + end
        assert_eq!(b.chosen_safe, vec![Some(true), None]);
        assert_eq!(b.real_tokens, 4 + 4 + 6 + 3);

        let s = e.encode("ab", "cd", EndToken::UnlessTruncated).unwrap();
        let sb = sft_batch(&[&s], e.pad_id(), &d);
        let lm: Vec<bool> = sb.loss_mask.into_data().try_to_vec().unwrap();
        assert_eq!(lm, vec![false, false, true, true, true]);
        assert_eq!(sb.response_tokens, 3);
    }
}

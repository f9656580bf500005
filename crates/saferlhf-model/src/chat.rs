//! A model's own chat template: the Jinja source Hugging Face models ship (`chat_template` in
//! `tokenizer_config.json`, a `chat_template.jinja` file, or a GGUF's `tokenizer.chat_template`),
//! rendered with [minijinja](https://docs.rs/minijinja), the engine Hugging Face's own Rust
//! servers use.
//!
//! The environment is set up the way transformers renders templates
//! (`transformers.utils.chat_template_utils`): `trim_blocks` and `lstrip_blocks` on; the variables
//! `messages`, `add_generation_prompt`, `bos_token` and `eos_token` (and `tools`, `documents` as
//! none); the functions
//! `raise_exception(message)` (an error carrying the template's message) and
//! `strftime_now(format)` (the local time, as Python's `datetime.now().strftime`); a `tojson`
//! filter that writes JSON as Python's `json.dumps` does (`", "` and `": "` separators, `indent`,
//! non-ASCII kept); Python's string, list and dict methods (`.strip()`, `.split()`,
//! `.startswith()`, `.get()`, ...) through minijinja-contrib's `pycompat`.

use std::fmt::Write as _;
use std::sync::Arc;

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};

use crate::error::{ModelError, Result};

/// One turn of a conversation: `role` is `system`, `user` or `assistant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who speaks.
    pub role: String,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A message of `role` with `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

const NAME: &str = "chat_template";

/// minijinja fuel per render (about one unit per instruction).
const FUEL: u64 = 10_000_000;

/// A compiled Jinja chat template with the special-token texts it is rendered with.
#[derive(Clone)]
pub struct JinjaTemplate {
    env: Arc<Environment<'static>>,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for JinjaTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JinjaTemplate")
            .field("source_chars", &self.source.len())
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

impl PartialEq for JinjaTemplate {
    fn eq(&self, other: &Self) -> bool {
        (&self.source, &self.bos_token, &self.eos_token)
            == (&other.source, &other.bos_token, &other.eos_token)
    }
}

impl Eq for JinjaTemplate {}

fn template_error(what: &str, e: Error) -> ModelError {
    // minijinja's display names the line; the detailed chain adds the failing expression.
    let mut text = format!("chat template: {what}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        let _ = write!(text, ": {inner}");
        source = inner.source();
    }
    ModelError::InvalidInput(text)
}

impl JinjaTemplate {
    /// Compiles `source`; `bos_token` and `eos_token` are the texts the template sees (empty
    /// when the tokenizer has none). A syntax error is reported with its line.
    pub fn new(
        source: impl Into<String>,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<Self> {
        let source = source.into();
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(|e| template_error("syntax settings", e))?,
        );
        // A template is code from the model's files: bound the work one render may do (real
        // templates use a few thousand units; a runaway loop stops with an error).
        env.set_fuel(Some(FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, source.clone())
            .map_err(|e| template_error("cannot compile", e))?;
        Ok(JinjaTemplate {
            env: Arc::new(env),
            source,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders `messages`, followed by the assistant's turn opening when
    /// `add_generation_prompt`; an error of the template (`raise_exception`, an undefined
    /// operation) names the template's own message.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_with(messages, add_generation_prompt, &serde_json::Map::new())
    }

    /// [`JinjaTemplate::render`] with more variables for the template, as transformers'
    /// `apply_chat_template(**kwargs)` passes them (Qwen3's `enable_thinking`, Llama 3's
    /// `date_string`); they cannot replace the four standard ones.
    pub fn render_with(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| minijinja::context! { role => m.role.as_str(), content => m.content.as_str() })
            .collect();
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| template_error("missing", e))?;
        // transformers also passes `tools` and `documents`, as None when there are none, and
        // templates test `tools is not none`.
        let standard = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
            tools => Value::from(()),
            documents => Value::from(()),
        };
        // The first source wins in `context!`'s merge: the standard variables come first.
        let context =
            minijinja::context! { ..standard, ..Value::from(minijinja::value::Serde(extra)) };
        template
            .render(context)
            .map_err(|e| template_error("cannot render", e))
    }

    /// The text the template writes after an assistant message's content (e.g.
    /// `<|im_end|>\n` or `<|eot_id|>`): found by rendering a two-turn conversation with a marker
    /// as the answer. `None` when the marker is not found or nothing follows it.
    pub fn end_of_turn(&self) -> Result<Option<String>> {
        const MARKER: &str = "saferlhf-end-of-turn-probe";
        let text = self.render(
            &[
                Message::new("user", "Hi"),
                Message::new("assistant", MARKER),
            ],
            false,
        )?;
        Ok(text
            .rfind(MARKER)
            .map(|at| text[at + MARKER.len()..].to_string())
            .filter(|rest| !rest.trim().is_empty()))
    }
}

fn raise_exception(message: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// The local time in a strftime `format`; a format chrono cannot write is an error (its
/// `Display` fails, which `to_string` would turn into a panic: found by tests/it/fuzz_readers.rs).
fn strftime_now(format: String) -> std::result::Result<String, Error> {
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format(&format)).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: invalid format {format:?}"),
        )
    })?;
    Ok(out)
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False, indent=indent)`.
fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_json(&mut out, &value, indent, 0)?;
    Ok(Value::from_safe_string(out))
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python `json.dumps` layout: `", "` / `": "` without indent; with one, each item on its own
/// line, `","` at line ends.
fn write_json(
    out: &mut String,
    value: &Value,
    indent: Option<usize>,
    depth: usize,
) -> std::result::Result<(), Error> {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let separator = if indent.is_some() { "," } else { ", " };
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&value.to_string()),
        ValueKind::String => write_json_string(out, value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                newline(out, depth + 1);
                write_json(out, item, indent, depth + 1)?;
            }
            if !items.is_empty() {
                newline(out, depth);
            }
            out.push(']');
        }
        ValueKind::Map => {
            let keys: Vec<Value> = value.try_iter()?.collect();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                newline(out, depth + 1);
                write_json_string(out, &key.to_string());
                out.push_str(": ");
                write_json(out, &value.get_item(key)?, indent, depth + 1)?;
            }
            if !keys.is_empty() {
                newline(out, depth);
            }
            out.push('}');
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: cannot serialise a {} value", value.kind()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chatml() -> JinjaTemplate {
        // The shape of a ChatML template (Qwen2.5's without tools, default system turn).
        JinjaTemplate::new(
            "{%- if messages[0]['role'] == 'system' %}\
             {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\
             {%- else %}{{- '<|im_start|>system\\nBe kind.<|im_end|>\\n' }}{%- endif %}\
             {%- for message in messages %}\
             {%- if not (message.role == 'system' and loop.first) %}\
             {{- '<|im_start|>' + message.role + '\\n' + message.content.strip() + '<|im_end|>\\n' }}\
             {%- endif %}{%- endfor %}\
             {%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
            "",
            "<|endoftext|>",
        )
        .unwrap()
    }

    #[test]
    fn renders_turns_and_the_generation_prompt() {
        let t = chatml();
        assert_eq!(
            t.render(&[Message::new("user", " Hi ")], true).unwrap(),
            "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\n"
        );
        assert_eq!(
            t.render(
                &[Message::new("system", "S"), Message::new("user", "U")],
                false
            )
            .unwrap(),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
        );
        assert_eq!(t.end_of_turn().unwrap().as_deref(), Some("<|im_end|>\n"));
    }

    #[test]
    fn raise_exception_and_syntax_errors_are_reported() {
        let t = JinjaTemplate::new(
            "{% if messages[0].role != 'user' %}{{ raise_exception('Conversations must start \
             with the user') }}{% endif %}{{ bos_token }}{{ messages[0].content }}",
            "<s>",
            "</s>",
        )
        .unwrap();
        assert_eq!(
            t.render(&[Message::new("user", "x")], true).unwrap(),
            "<s>x"
        );
        let err = t
            .render(&[Message::new("assistant", "x")], true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("must start with the user"), "{err}");
        let err = JinjaTemplate::new("{% if %}", "", "")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("chat template") && err.contains("compile"),
            "{err}"
        );
    }

    #[test]
    fn extra_variables_reach_the_template_but_not_over_the_standard_ones() {
        let t = JinjaTemplate::new(
            "{{ add_generation_prompt }}|{{ enable_thinking is defined and enable_thinking is \
             false }}",
            "",
            "",
        )
        .unwrap();
        let extra: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"enable_thinking": false, "add_generation_prompt": "overridden"}"#,
        )
        .unwrap();
        assert_eq!(t.render_with(&[], true, &extra).unwrap(), "True|True");
        assert_eq!(t.render(&[], false).unwrap(), "False|False");
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel() {
        let t = JinjaTemplate::new(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        let err = t.render(&[], true).unwrap_err().to_string();
        assert!(err.contains("fuel"), "{err}");
    }

    #[test]
    fn an_invalid_strftime_format_is_an_error() {
        let t = JinjaTemplate::new("{{ strftime_now('%d %b %') }}", "", "").unwrap();
        let err = t.render(&[], true).unwrap_err().to_string();
        assert!(err.contains("strftime_now"), "{err}");
        let t = JinjaTemplate::new("{{ strftime_now('%Y') }}", "", "").unwrap();
        assert_eq!(t.render(&[], true).unwrap().len(), 4);
    }

    #[test]
    fn tojson_writes_what_python_json_dumps_writes() {
        let t = JinjaTemplate::new(
            "{{ {'a': [1, 2.5, none, true], 'b': 'x\"é'} | tojson }}|\
             {{ {'k': [1]} | tojson(indent=2) }}",
            "",
            "",
        )
        .unwrap();
        // json.dumps({"a": [1, 2.5, None, True], "b": 'x"é'}, ensure_ascii=False) and
        // json.dumps({"k": [1]}, indent=2).
        assert_eq!(
            t.render(&[], false).unwrap(),
            "{\"a\": [1, 2.5, null, true], \"b\": \"x\\\"é\"}|{\n  \"k\": [\n    1\n  ]\n}"
        );
    }

    #[test]
    fn python_string_methods_work() {
        // Python prints booleans as `True`; so do minijinja and transformers.
        let t = JinjaTemplate::new(
            "{{ messages[0].content.split('</think>')[-1].lstrip('\\n') }}|\
             {{ messages[0].content.startswith('<think>') }}",
            "",
            "",
        )
        .unwrap();
        assert_eq!(
            t.render(&[Message::new("assistant", "<think>a</think>\n\nb")], false)
                .unwrap(),
            "b|True"
        );
    }
}

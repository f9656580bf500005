//! A mutation fuzzer over every reader of outside bytes, run by `cargo test` on stable Rust.
//!
//! Seeds are the committed fixtures (GGUF files, safetensors weights and their index,
//! `config.json`, `tokenizer.json`, `tokenizer_config.json`, chat templates, the dataset files);
//! each case mutates one seed (bit flips, interesting bytes, overwritten little-endian lengths
//! and counts, cut, repeated or spliced ranges, truncation) and hands it to the reader. A case
//! fails the test when the reader panics, when it takes longer than [`SLOW`], or (through the
//! counting allocator below) when it asks for more than [`MAX_ALLOC`] bytes at once: a corrupt
//! header must be an error, not an allocation. An `Err` is the expected outcome for most cases.
//!
//! Bounded by time: `SAFERLHF_FUZZ_SECONDS` per reader (default 4; CI runs the default), seeded
//! by `SAFERLHF_FUZZ_SEED` (default 1) so a failure reproduces; the failing input is written to
//! the temp dir and its path printed. The per-reader case counts are printed at the end.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use saferlhf::Device;
use saferlhf::core::rng::SplitMix64;
use saferlhf::data::{HhSplit, LoadOptions, load_hh, load_pku, load_prompts, load_sft};
use saferlhf::model::LlamaConfig;
use saferlhf::model::chat::{JinjaTemplate, Message};
use saferlhf::model::gguf::GgufFile;
use saferlhf::model::pretrained::{llama_config_from_gguf, load_gguf_weights};
use saferlhf::model::tokenizer::{ChatTemplate, Tokenizer};
use saferlhf::model::weights::load_hf_dir;
use saferlhf_testkit::{TempDir, root};

/// The largest single allocation a reader may ask for while fuzzed (the fixtures need far less).
const MAX_ALLOC: usize = 1 << 30;
/// A case slower than this is a failure (a hang, or work out of proportion to the input).
const SLOW: Duration = Duration::from_secs(10);

static TOO_BIG: AtomicBool = AtomicBool::new(false);

/// The system allocator, refusing (and remembering) any single allocation over [`MAX_ALLOC`]:
/// the refusal aborts the process with "memory allocation of N bytes failed", so an unbounded
/// allocation fails the test instead of exhausting the machine.
struct Capped;

unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC {
            TOO_BIG.store(true, Ordering::Relaxed);
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC {
            TOO_BIG.store(true, Ordering::Relaxed);
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOC {
            TOO_BIG.store(true, Ordering::Relaxed);
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One mutation of `seed` (with `others` to splice from).
fn mutate(rng: &mut SplitMix64, seed: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seed.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = data.len().max(1) as u64;
        let at = rng.below(len) as usize;
        match rng.below(9) {
            0 => {
                if let Some(b) = data.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => {
                const INTERESTING: [u8; 8] = [0, 1, 0x7F, 0x80, 0xFF, b'"', b'{', b'\n'];
                if let Some(b) = data.get_mut(at) {
                    *b = INTERESTING[rng.below(8) as usize];
                }
            }
            2 => {
                // A little-endian u32 / u64 length or count set to something huge or odd.
                const VALUES: [u64; 6] = [0, 1, u32::MAX as u64, u64::MAX, 1 << 40, 255];
                let v = VALUES[rng.below(6) as usize].to_le_bytes();
                let width = if rng.below(2) == 0 { 4 } else { 8 };
                for (i, b) in v.iter().take(width).enumerate() {
                    if let Some(d) = data.get_mut(at + i) {
                        *d = *b;
                    }
                }
            }
            3 => data.truncate(at),
            4 => {
                let end = (at + 1 + rng.below(64) as usize).min(data.len());
                data.drain(at.min(end)..end);
            }
            5 => {
                let end = (at + 1 + rng.below(64) as usize).min(data.len());
                let chunk = data[at.min(end)..end].to_vec();
                let to = rng.below(data.len() as u64 + 1) as usize;
                data.splice(to..to, chunk);
            }
            6 => {
                if let Some(b) = data.get_mut(at) {
                    *b = rng.below(256) as u8;
                }
            }
            7 if !others.is_empty() => {
                let other = &others[rng.below(others.len() as u64) as usize];
                if !other.is_empty() {
                    let from = rng.below(other.len() as u64) as usize;
                    let end = (from + 1 + rng.below(256) as usize).min(other.len());
                    let to = rng.below(data.len() as u64 + 1) as usize;
                    data.splice(to..to, other[from..end].iter().copied());
                }
            }
            _ => {
                if let Some(b) = data.get_mut(at) {
                    *b = b.wrapping_add(1 + rng.below(4) as u8);
                }
            }
        }
    }
    data
}

/// Keeps the panics the tokenizers crate raises, and `Tokenizer::from_file` catches, out of the
/// log (each would print a backtrace); every other panic is reported as usual.
fn quiet_tokenizers_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let caught = info
                .location()
                .is_some_and(|l| l.file().contains("/tokenizers-"));
            if !caught {
                default(info);
            }
        }));
    });
}

/// Runs `read` on mutations of `seeds` for the time budget; returns the number of cases.
fn fuzz(name: &str, seeds: &[Vec<u8>], mut read: impl FnMut(&[u8])) -> u64 {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    quiet_tokenizers_panics();
    let budget = Duration::from_secs(env_number("SAFERLHF_FUZZ_SECONDS", 4));
    let mut rng = SplitMix64::keyed(env_number("SAFERLHF_FUZZ_SEED", 1), name);
    let start = Instant::now();
    let mut cases = 0u64;
    while start.elapsed() < budget {
        let seed = &seeds[rng.below(seeds.len() as u64) as usize];
        let input = mutate(&mut rng, seed, seeds);
        let t = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&input)));
        let slow = t.elapsed() > SLOW;
        if outcome.is_err() || slow || TOO_BIG.load(Ordering::Relaxed) {
            let path = std::env::temp_dir().join(format!("saferlhf-fuzz-{name}-{cases}.bin"));
            std::fs::write(&path, &input).unwrap();
            panic!(
                "{name}: case {cases} {} (input written to {})",
                if slow { "took too long" } else { "panicked" },
                path.display()
            );
        }
        cases += 1;
    }
    println!("fuzz {name}: {cases} cases, no panic, hang or unbounded allocation");
    cases
}

fn read(path: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn fixture(path: &str) -> PathBuf {
    root().join("tests/fixtures").join(path)
}

/// Writes `bytes` to `name` in `dir` and returns the path.
fn put(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.0.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

// The readers are quiet about errors here; the case count is printed once per reader.
fn quietly<T, E>(_: Result<T, E>) {}

#[test]
fn gguf_reader() {
    let dir = TempDir::new("fuzz-gguf");
    let seeds = vec![
        read(fixture("gguf/quants.gguf")),
        read(fixture("gguf/tiny-qwen2.gguf")),
    ];
    let device = Device::flex();
    fuzz("gguf", &seeds, |bytes| {
        let path = put(&dir, "model.gguf", bytes);
        let Ok(gguf) = GgufFile::open(&path) else {
            return;
        };
        let names: Vec<String> = gguf
            .tensors()
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        for name in names {
            quietly(gguf.tensor_f32(&name));
        }
        quietly(Tokenizer::from_gguf(&gguf));
        if let Ok(config) = llama_config_from_gguf(&gguf) {
            // Only small models are built: a mutated width could ask for gigabytes of
            // parameters, which is the config's business, not the reader's.
            let params = config.vocab_size.saturating_mul(config.hidden_size);
            if params < 1 << 22 && config.num_hidden_layers < 8 && config.intermediate_size < 4096 {
                quietly(load_gguf_weights(&gguf, &config, &device));
            }
        }
    });
}

#[test]
fn safetensors_and_hf_directory_readers() {
    let dir = TempDir::new("fuzz-safetensors");
    let src = fixture("tiny-llama-tied");
    let config = read(src.join("config.json"));
    let weights = read(src.join("model.safetensors"));
    // The header is what is parsed; the tensor data is only copied. Mutations aimed at the
    // first kilobytes, where the length prefix and the JSON header live.
    let header_len = 8 + u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let head = weights[..header_len].to_vec();
    let body = weights[header_len..].to_vec();
    std::fs::write(dir.0.join("config.json"), &config).unwrap();
    let device = Device::flex();
    fuzz("safetensors", &[head], |header| {
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(&body);
        put(&dir, "model.safetensors", &bytes);
        quietly(load_hf_dir(&dir.0, &device));
    });

    // A sharded directory: the index is mutated, the shards are the fixture's.
    let sharded = TempDir::new("fuzz-index");
    let qwen = fixture("tiny-qwen2");
    for entry in std::fs::read_dir(&qwen).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, sharded.0.join(path.file_name().unwrap())).unwrap();
    }
    let index = read(qwen.join("model.safetensors.index.json"));
    fuzz("safetensors-index", &[index], |bytes| {
        put(&sharded, "model.safetensors.index.json", bytes);
        quietly(load_hf_dir(&sharded.0, &device));
    });
}

#[test]
fn config_json_reader() {
    let seeds: Vec<Vec<u8>> = ["tiny-llama-tied", "tiny-qwen2", "tiny-qwen3", "tiny-llama3"]
        .iter()
        .map(|name| read(fixture(name).join("config.json")))
        .collect();
    fuzz("config.json", &seeds, |bytes| {
        quietly(LlamaConfig::from_json_str(&String::from_utf8_lossy(bytes)));
    });
}

#[test]
fn tokenizer_files_and_chat_templates() {
    let dir = TempDir::new("fuzz-tokenizer");
    let src = fixture("tiny-qwen2");
    let tokenizer = read(src.join("tokenizer.json"));
    let tokenizer_config = read(src.join("tokenizer_config.json"));
    std::fs::write(dir.0.join("tokenizer_config.json"), &tokenizer_config).unwrap();
    fuzz(
        "tokenizer.json",
        std::slice::from_ref(&tokenizer),
        |bytes| {
            let path = put(&dir, "tokenizer.json", bytes);
            if let Ok(t) = Tokenizer::from_file(&path) {
                quietly(t.encode("Hi <|im_start|> there", false));
            }
        },
    );
    std::fs::write(dir.0.join("tokenizer.json"), &tokenizer).unwrap();
    let model = ChatTemplate::Model { system: None };
    fuzz("tokenizer_config.json", &[tokenizer_config], |bytes| {
        put(&dir, "tokenizer_config.json", bytes);
        if let Ok(t) = Tokenizer::from_file(dir.0.join("tokenizer.json")) {
            quietly(t.encode_prompt(&model, "Hello"));
            quietly(model.stop_ids(&t));
        }
    });

    // Jinja sources: the real templates when fetched, and the fixtures' ChatML.
    let mut templates = vec![
        serde_json::from_slice::<serde_json::Value>(&read(src.join("tokenizer_config.json")))
            .unwrap()["chat_template"]
            .as_str()
            .unwrap()
            .as_bytes()
            .to_vec(),
    ];
    if let Ok(entries) = std::fs::read_dir(root().join("assets/chat-templates")) {
        for entry in entries {
            templates.push(read(entry.unwrap().path()));
        }
    } else {
        eprintln!(
            "chat templates: assets/chat-templates absent (scripts/fetch-assets.sh); fuzzing the fixture's only"
        );
    }
    let messages = [
        Message::new("system", "Be brief."),
        Message::new("user", "Hi"),
        Message::new("assistant", "Hello."),
        Message::new("user", "Why?"),
    ];
    fuzz("chat-template", &templates, |bytes| {
        if let Ok(t) = JinjaTemplate::new(String::from_utf8_lossy(bytes), "<s>", "</s>") {
            quietly(t.render(&messages, true));
            quietly(t.end_of_turn());
        }
    });
}

#[test]
fn dataset_loaders() {
    let dir = TempDir::new("fuzz-data");
    let strict = LoadOptions::strict();
    let lenient = LoadOptions::skip_invalid();
    let pku = vec![
        read(fixture("tiny-pku.jsonl")),
        read(fixture("tiny-pku-sacpo.jsonl")),
    ];
    fuzz("pku", &pku, |bytes| {
        let path = put(&dir, "pku.jsonl", bytes);
        quietly(load_pku(&path, &strict));
        quietly(load_pku(&path, &lenient));
    });
    fuzz("sft", &[read(fixture("tiny-sft.jsonl"))], |bytes| {
        let path = put(&dir, "sft.jsonl", bytes);
        quietly(load_sft(&path, &strict));
        quietly(load_sft(&path, &lenient));
    });
    fuzz("prompts", &[read(fixture("tiny-prompts.txt"))], |bytes| {
        let path = put(&dir, "prompts.txt", bytes);
        quietly(load_prompts(&path, &lenient));
        let jsonl = put(&dir, "prompts.jsonl", bytes);
        quietly(load_prompts(&jsonl, &lenient));
    });
    let hh = br#"{"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go away"}
{"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d", "rejected": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: e"}
"#
    .to_vec();
    fuzz("hh", &[hh], |bytes| {
        let path = put(&dir, "hh.jsonl", bytes);
        quietly(load_hh(&path, HhSplit::LastAssistant, &lenient));
        quietly(load_hh(&path, HhSplit::CommonPrefix, &strict));
    });
}

/// The first finding: a `tokenizer.json` whose decoder object holds a stray `$` made the
/// tokenizers crate panic (an `expect` in its decoder deserializer). It is now an error naming
/// the file.
#[test]
fn a_tokenizer_json_that_panicked_the_tokenizers_crate_is_an_error() {
    quiet_tokenizers_panics();
    let dir = TempDir::new("fuzz-finding");
    let bytes = read(fixture("fuzz-tokenizer-decoder-panic.json"));
    let path = put(&dir, "tokenizer.json", &bytes);
    let err = Tokenizer::from_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains("malformed"),
        "{err}"
    );
}

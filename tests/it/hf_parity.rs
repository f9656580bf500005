//! Logit parity with Hugging Face transformers on small random models of every supported family.
//!
//! Fixtures come from `scripts/make-hf-fixtures.py` (Llama, float32, single file) and
//! `scripts/make-family-fixtures.py` (Qwen2, Qwen3 stored in bf16, Llama 3 RoPE scaling; sharded):
//! transformers with eager attention, left-padded inputs, their logits, per-token log-probs and
//! greedy generations.

use std::path::PathBuf;

use saferlhf::Device;
use saferlhf::burn::tensor::{Bool, Int, Tensor, TensorData};
use saferlhf::model::config::{Family, RopeScaling};
use saferlhf::model::weights::{load_hf_dir, save_hf_dir};
use saferlhf::model::{LlamaConfig, LlamaForCausalLM};
use saferlhf::rollout::{GenerateConfig, Sampler, generate};
use serde_json::Value;

const TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Expected {
    input_ids: Vec<Vec<u32>>,
    mask: Vec<Vec<bool>>,
    logits: Vec<Vec<Vec<f32>>>,
    logprobs: Vec<Vec<f32>>,
    logprobs_mask: Vec<Vec<bool>>,
    new_tokens: Vec<Vec<u32>>,
}

fn read_expected(name: &str) -> Expected {
    let text = std::fs::read_to_string(fixture(name).join("expected.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let ints = |v: &Value| -> Vec<Vec<u32>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect()
    };
    let floats = |v: &Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let bools = |v: &Value| -> Vec<Vec<bool>> {
        ints(v)
            .into_iter()
            .map(|r| r.into_iter().map(|x| x != 0).collect())
            .collect()
    };
    Expected {
        input_ids: ints(&v["input_ids"]),
        mask: bools(&v["attention_mask"]),
        logits: v["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row.as_array().unwrap().iter().map(&floats).collect())
            .collect(),
        logprobs: v["logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(&floats)
            .collect(),
        logprobs_mask: bools(&v["logprobs_mask"]),
        new_tokens: ints(&v["generate"]["new_tokens"]),
    }
}

fn batch_tensors(e: &Expected, device: &Device) -> (Tensor<2, Int>, Tensor<2, Bool>) {
    let (b, s) = (e.input_ids.len(), e.input_ids[0].len());
    let ids: Vec<i64> = e.input_ids.iter().flatten().map(|&x| x as i64).collect();
    let mask: Vec<bool> = e.mask.iter().flatten().copied().collect();
    (
        Tensor::from_data(TensorData::new(ids, [b, s]), device),
        Tensor::from_data(TensorData::new(mask, [b, s]), device),
    )
}

fn to_vec(t: Tensor<3>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

fn check_logits(model: &LlamaForCausalLM, e: &Expected, device: &Device) {
    let (tokens, mask) = batch_tensors(e, device);
    let logits = model.forward(tokens.clone(), mask.clone());
    let [b, s, v] = logits.dims();
    let got = to_vec(logits);
    let mut max_diff = 0f32;
    for row in 0..b {
        for pos in 0..s {
            if !e.mask[row][pos] {
                continue;
            }
            for k in 0..v {
                let d = (got[(row * s + pos) * v + k] - e.logits[row][pos][k]).abs();
                max_diff = max_diff.max(d);
            }
        }
    }
    assert!(
        max_diff < TOLERANCE,
        "max |logit diff| at real positions = {max_diff}"
    );

    let logprobs = model.token_logprobs(tokens, mask);
    let got: Vec<f32> = logprobs.try_into_vec_as::<f32>().unwrap();
    let mut max_diff = 0f32;
    for row in 0..b {
        for pos in 0..s - 1 {
            if e.logprobs_mask[row][pos] {
                max_diff = max_diff.max((got[row * (s - 1) + pos] - e.logprobs[row][pos]).abs());
            }
        }
    }
    assert!(max_diff < TOLERANCE, "max |logprob diff| = {max_diff}");
}

fn check_generation(model: &LlamaForCausalLM, e: &Expected, device: &Device) {
    let prompts: Vec<Vec<u32>> = e
        .input_ids
        .iter()
        .zip(&e.mask)
        .map(|(ids, m)| {
            ids.iter()
                .zip(m)
                .filter(|(_, m)| **m)
                .map(|(i, _)| *i)
                .collect()
        })
        .collect();
    for use_cache in [true, false] {
        let config = GenerateConfig {
            max_new_tokens: e.new_tokens[0].len(),
            sampler: Sampler::Greedy,
            use_cache,
            ..GenerateConfig::default()
        };
        let out = generate(model, &prompts, &config, device).unwrap();
        assert_eq!(
            out.responses, e.new_tokens,
            "greedy tokens (use_cache = {use_cache})"
        );
    }
}

/// Loads fixture `name`, checks that its embeddings are `tied` or not as expected, and compares
/// its logits and greedy generation with the recorded transformers outputs.
fn check_fixture(name: &str, tied: bool) {
    check_fixture_on(name, tied, &Device::flex());
}

/// [`check_fixture`] on `device`.
fn check_fixture_on(name: &str, tied: bool, device: &Device) {
    let device = device.clone();
    let (config, model) = load_hf_dir(fixture(name), &device).unwrap();
    assert_eq!(config.tie_word_embeddings, tied);
    assert_eq!(model.lm_head.is_none(), tied);
    let e = read_expected(name);
    check_logits(&model, &e, &device);
    check_generation(&model, &e, &device);
}

/// Every fixture on the wgpu device (`--features wgpu`; in CI on lavapipe, Mesa's software
/// Vulkan device): the same logits (left padding included) and greedy generations as
/// transformers, to the same tolerance as on flex. See also `tests/it/device_parity.rs`.
#[cfg(feature = "wgpu")]
#[test]
fn every_fixture_matches_transformers_on_wgpu() {
    let Ok(device) = saferlhf::parse_device("wgpu") else {
        unreachable!("built with the wgpu feature")
    };
    let probe = device.clone();
    let answers = std::panic::catch_unwind(move || {
        Tensor::<1>::from_data(TensorData::new(vec![1.0f32], [1]), &probe)
            .into_data()
            .try_to_vec::<f32>()
            .is_ok()
    });
    if !matches!(answers, Ok(true)) {
        eprintln!("SKIPPED: no wgpu device answers (scripts/install-lavapipe.sh installs one)");
        return;
    }
    for (name, tied) in [
        ("tiny-llama-tied", true),
        ("tiny-llama-untied", false),
        ("tiny-qwen2", true),
        ("tiny-qwen3", false),
        ("tiny-llama3", true),
    ] {
        check_fixture_on(name, tied, &device);
    }
}

/// Writes `config` into the model directory `dir` and returns the error loading it gives.
fn load_with_config(dir: &std::path::Path, config: &LlamaConfig) -> String {
    let json = serde_json::to_string(&config.to_hf_json()).unwrap();
    std::fs::write(dir.join("config.json"), json).unwrap();
    load_hf_dir(dir, &Device::flex()).unwrap_err().to_string()
}

#[test]
fn tied_model_matches_transformers() {
    check_fixture("tiny-llama-tied", true);
}

#[test]
fn untied_model_matches_transformers() {
    check_fixture("tiny-llama-untied", false);
}

#[test]
fn qwen2_matches_transformers() {
    // q/k/v biases (and none on o), tied head, 7 shards.
    check_fixture("tiny-qwen2", true);
    let (config, model) = load_hf_dir(fixture("tiny-qwen2"), &Device::flex()).unwrap();
    assert_eq!(config.family().unwrap(), Family::Qwen2);
    let attn = &model.model.layers[0].self_attn;
    assert!(attn.q_proj.bias.is_some() && attn.v_proj.bias.is_some());
    assert!(attn.o_proj.bias.is_none() && attn.q_norm.is_none());
}

#[test]
fn qwen3_in_bf16_matches_transformers() {
    // Per-head q/k RMSNorm, head_dim 32 with hidden 64 over 4 heads, untied, bf16 shards.
    check_fixture("tiny-qwen3", false);
    let (config, model) = load_hf_dir(fixture("tiny-qwen3"), &Device::flex()).unwrap();
    assert_eq!(config.family().unwrap(), Family::Qwen3);
    assert_eq!(config.head_dim(), 32);
    assert!(model.model.layers[1].self_attn.k_norm.is_some());
}

#[test]
fn llama3_rope_scaling_matches_transformers() {
    // The fixture's sequences (20 tokens) are longer than its original context (16), so the
    // scaling changes the logits (by up to 7 in transformers without it).
    check_fixture("tiny-llama3", true);
    let config = LlamaConfig::from_file(fixture("tiny-llama3").join("config.json")).unwrap();
    assert!(matches!(config.rope().unwrap(), RopeScaling::Llama3 { .. }));
}

#[test]
fn every_family_exports_what_it_loaded() {
    let device = Device::flex();
    for (name, extra) in [
        ("tiny-qwen2", "model.layers.0.self_attn.q_proj.bias"),
        ("tiny-qwen3", "model.layers.0.self_attn.q_norm.weight"),
        ("tiny-llama3", "model.layers.1.mlp.up_proj.weight"),
    ] {
        let (config, model) = load_hf_dir(fixture(name), &device).unwrap();
        let dir = tempdir(&format!("export-{name}"));
        save_hf_dir(&model, &config, &dir).unwrap();
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        let family = config.family().unwrap();
        assert_eq!(written["model_type"], family.model_type(), "{name}");
        assert_eq!(written["architectures"][0], family.architecture(), "{name}");
        // transformers reads a null head_dim as a number (and fails): absent fields stay absent.
        for key in ["head_dim", "num_key_value_heads"] {
            assert!(
                written.get(key).is_none_or(|v| !v.is_null()),
                "{name}: {key}"
            );
        }
        let (config2, model2) = load_hf_dir(&dir, &device).unwrap();
        assert_eq!(config2.family().unwrap(), family, "{name}");
        assert_eq!(config2.rope().unwrap(), config.rope().unwrap(), "{name}");
        check_logits(&model2, &read_expected(name), &device);
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert!(file.tensor(extra).is_ok(), "{name}: {extra} not exported");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_missing_shard_is_named() {
    let dir = tempdir("missing-shard");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixture("tiny-qwen2")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let shard = "model-00003-of-00007.safetensors";
    std::fs::remove_file(dir.join(shard)).unwrap();
    let err = load_hf_dir(&dir, &Device::flex()).unwrap_err().to_string();
    assert!(err.contains(shard), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn export_round_trips_to_the_same_logits() {
    let device = Device::flex();
    let (config, model) = load_hf_dir(fixture("tiny-llama-untied"), &device).unwrap();
    let dir = tempdir("export");
    save_hf_dir(&model, &config, &dir).unwrap();
    let (config2, model2) = load_hf_dir(&dir, &device).unwrap();
    assert_eq!(config2, config);
    let e = read_expected("tiny-llama-untied");
    check_logits(&model2, &e, &device);
    // The exported file keeps Hugging Face names and [out, in] layout.
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let q = file
        .tensor("model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    assert_eq!(q.shape(), &[64, 64]);
    assert!(file.tensor("model.norm.weight").is_ok());
    assert!(file.tensor("lm_head.weight").is_ok());
    // Both files get the same (umask) permissions, not burn-store's owner-only 0600.
    let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions();
    assert_eq!(mode("model.safetensors"), mode("config.json"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn weights_that_do_not_fit_the_config_are_rejected() {
    let device = Device::flex();
    let dir = tempdir("mismatch");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixture("tiny-llama-tied").join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    // Claim 3 layers where the file has 2.
    let mut config =
        LlamaConfig::from_file(fixture("tiny-llama-tied").join("config.json")).unwrap();
    config.num_hidden_layers = 3;
    let err = load_with_config(&dir, &config);
    assert!(err.contains("model.layers.2"), "{err}");
    // A wider hidden size: every shape is wrong.
    config.num_hidden_layers = 2;
    config.intermediate_size = 96;
    let err = load_with_config(&dir, &config);
    assert!(err.contains("mlp"), "{err}");
    // Truncated weights.
    let bytes = std::fs::read(fixture("tiny-llama-tied").join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::copy(
        fixture("tiny-llama-tied").join("config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    let err = load_hf_dir(&dir, &device).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("saferlhf-test-{tag}-{}", std::process::id()))
}

/// The fixture's weights stored as bf16 and as f16 (the Hugging Face Hub's usual formats) load
/// into the f32 model: every parameter is the stored half-precision value, exactly, and the
/// logits stay close to the f32 model's.
#[test]
fn half_precision_weights_load_as_f32() {
    use saferlhf::burn::tensor::{bf16, f16};
    use safetensors::{Dtype, SafeTensors, tensor::TensorView};

    let device = Device::flex();
    let src = fixture("tiny-llama-untied");
    let (_, reference) = load_hf_dir(&src, &device).unwrap();
    let e = read_expected("tiny-llama-untied");
    let (tokens, mask) = batch_tensors(&e, &device);
    let want = to_vec(reference.forward(tokens.clone(), mask.clone()));
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let f32_file = SafeTensors::deserialize(&bytes).unwrap();
    type Half = (Dtype, fn(f32) -> u16, fn(u16) -> f32);
    let halves: [(&str, Half); 2] = [
        (
            "bf16",
            (
                Dtype::BF16,
                |x| bf16::from_f32(x).to_bits(),
                |b| bf16::from_bits(b).to_f32(),
            ),
        ),
        (
            "f16",
            (
                Dtype::F16,
                |x| f16::from_f32(x).to_bits(),
                |b| f16::from_bits(b).to_f32(),
            ),
        ),
    ];
    for (name, (dtype, to_bits, from_bits)) in halves {
        let dir = saferlhf_testkit::TempDir::new(&format!("half-{name}"));
        std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
        let mut stored: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (key, view) in f32_file.tensors() {
            assert_eq!(view.dtype(), Dtype::F32, "{key}");
            let half: Vec<u8> = view
                .data()
                .chunks_exact(4)
                .flat_map(|c| to_bits(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
                .collect();
            stored.push((key, view.shape().to_vec(), half));
        }
        let views: Vec<(String, TensorView)> = stored
            .iter()
            .map(|(k, shape, data)| {
                (
                    k.clone(),
                    TensorView::new(dtype, shape.clone(), data).unwrap(),
                )
            })
            .collect();
        let file = safetensors::serialize(views, None).unwrap();
        std::fs::write(dir.join("model.safetensors"), file).unwrap();

        let (config, model) =
            load_hf_dir(&dir, &device).unwrap_or_else(|err| panic!("{name} weights: {err}"));
        // Every parameter is the stored half value, widened exactly (read back from an f32
        // export of the loaded model).
        let export = saferlhf_testkit::TempDir::new(&format!("half-{name}-export"));
        save_hf_dir(&model, &config, &*export).unwrap();
        let exported = std::fs::read(export.join("model.safetensors")).unwrap();
        let exported = SafeTensors::deserialize(&exported).unwrap();
        for (key, _, half) in &stored {
            let widened: Vec<f32> = half
                .chunks_exact(2)
                .map(|c| from_bits(u16::from_le_bytes([c[0], c[1]])))
                .collect();
            let view = exported.tensor(key).unwrap();
            assert_eq!(view.dtype(), Dtype::F32, "{name} {key}");
            let got: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            assert_eq!(got, widened, "{name} {key}");
        }
        let logits = to_vec(model.forward(tokens.clone(), mask.clone()));
        let max_diff = logits
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // Rounding every weight to 8 (bf16) or 11 (f16) significant bits moves the logits a
        // little; a wrong conversion (bits misread, a byte swap) moves them by whole units.
        eprintln!("{name}: max |logit - f32 logit| = {max_diff}");
        assert!(max_diff.is_finite() && max_diff < 0.5, "{name}: {max_diff}");
    }
}

/// Every quantisation the GGUF reader decodes, on random blocks, against the `gguf` package's
/// NumPy dequantisation (`scripts/make-gguf-fixtures.py`): equal to the last bit.
#[test]
fn gguf_quants_match_the_gguf_package() {
    use saferlhf::model::gguf::GgufFile;
    let dir = fixture("gguf");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("quants.json")).unwrap()).unwrap();
    let gguf = GgufFile::open(dir.join("quants.gguf")).unwrap();
    let tensors = expected["tensors"].as_object().unwrap();
    for name in [
        "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
    ] {
        let want = &tensors[name];
        let (shape, values) = gguf.tensor_f32(name).unwrap();
        let want_shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape, want_shape, "{name}");
        let want: Vec<f32> = want["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(values.len(), want.len(), "{name}");
        for (i, (got, want)) in values.iter().zip(&want).enumerate() {
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{name}[{i}]: {got} vs {want}"
            );
        }
    }
}

/// The Qwen2 and Qwen3 fixtures as llama.cpp names them in GGUF (q/k in the rotate-half layout,
/// `attn_q.bias`, `attn_q_norm`, `qwen3.attention.key_length`) give transformers' logits.
#[test]
fn qwen_ggufs_match_transformers() {
    use saferlhf::model::gguf::GgufFile;
    use saferlhf::model::pretrained::{llama_config_from_gguf, load_gguf_weights};
    let device = Device::flex();
    for (name, family) in [("tiny-qwen2", Family::Qwen2), ("tiny-qwen3", Family::Qwen3)] {
        let gguf = GgufFile::open(fixture("gguf").join(format!("{name}.gguf"))).unwrap();
        let config = llama_config_from_gguf(&gguf).unwrap();
        assert_eq!(config.family().unwrap(), family, "{name}");
        let hf = LlamaConfig::from_file(fixture(name).join("config.json")).unwrap();
        assert_eq!(
            (config.head_dim(), config.tie_word_embeddings),
            (hf.head_dim(), hf.tie_word_embeddings),
            "{name}"
        );
        let model = load_gguf_weights(&gguf, &config, &device).unwrap();
        let e = read_expected(name);
        check_logits(&model, &e, &device);
        check_generation(&model, &e, &device);
    }
}

//! LoRA adapters (Hu et al. 2021, arXiv 2106.09685) on the decoder's linear projections, built on
//! burn's [`Module::apply_lora`].
//!
//! An adapted projection computes with `W + (alpha / rank) · A B`, where `W` (`[d_in, d_out]`,
//! burn's layout) is frozen and `A` (`[d_in, rank]`) and `B` (`[rank, d_out]`) are the only
//! trainable tensors of the whole model: [`attach`] freezes every other parameter (embeddings,
//! norms, the output head, projections that are not targets). `B` starts at zero, so a model
//! with fresh adapters computes exactly what its base computes; `A` starts N(0, 1/rank) (burn's
//! default scale) from a stream keyed by `(seed, parameter path)`, so a run is reproducible.
//!
//! Because the adapters live beside the frozen weights, the base tensors are never written by
//! an optimizer step: a module that shares them (the RL reference model) costs no memory.
//!
//! On disk the adapters use PEFT's layout (`adapter_model.safetensors` and
//! `adapter_config.json`, see [`save_adapters`]), so `peft.PeftModel.from_pretrained` reads
//! them; [`merge`] folds them into plain weights for a Hugging Face export. Not supported:
//! adapter dropout (burn's LoRA has none), adapters on the embedding or the output head.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Lora, Module, ModuleMapper, ModuleVisitor, Param, ParamGroup};
use burn::nn::Linear;
use burn::tensor::{Tensor, TensorData};
use saferlhf_core::rng::SplitMix64;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::model::LlamaForCausalLM;

/// The projections an adapter can target (Hugging Face's module names).
pub const TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// The adapter weights file of a PEFT adapter directory.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The adapter config file of a PEFT adapter directory.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";

/// Which projections get adapters, of what rank and scale.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    /// Rank r of `A B` (>= 1).
    pub rank: usize,
    /// The update is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Names from [`TARGETS`].
    pub targets: Vec<String>,
}

impl LoraSpec {
    /// `alpha / rank`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Checks the rank, alpha and target names; the error names the offending field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| {
            Err(ModelError::Config {
                field: format!("lora.{field}"),
                reason,
            })
        };
        if self.rank == 0 {
            return bad("rank", "must be >= 1".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad(
                "alpha",
                format!("must be finite and > 0, got {}", self.alpha),
            );
        }
        if self.targets.is_empty() {
            return bad("targets", "must name at least one projection".into());
        }
        for t in &self.targets {
            if !TARGETS.contains(&t.as_str()) {
                return bad(
                    "targets",
                    format!("unknown projection `{t}` (known: {})", TARGETS.join(", ")),
                );
            }
        }
        Ok(())
    }

    /// The regex of the burn paths of the targeted weights.
    fn weight_regex(&self) -> String {
        format!(
            r"^model\.layers\.\d+\.(self_attn|mlp)\.({})\.weight$",
            self.targets.join("|")
        )
    }
}

/// Attaches zero-effect adapters to `spec.targets` and freezes every other parameter; `A` is
/// drawn N(0, 1/rank) from a stream keyed by `(seed, path)`, `B` is zero.
pub fn attach(model: LlamaForCausalLM, spec: &LoraSpec, seed: u64) -> Result<LlamaForCausalLM> {
    spec.validate()?;
    let group = ParamGroup::from_regex(spec.weight_regex()).map_err(|e| ModelError::Config {
        field: "lora.targets".into(),
        reason: format!("{e:?}"),
    })?;
    let model = model.apply_lora(Lora::new(spec.rank, spec.alpha).set_param_group(group));
    let std = 1.0 / spec.rank as f64;
    Ok(model.map(&mut AdapterMapper {
        path: Vec::new(),
        value: |path: &str, shape: [usize; 2]| {
            if path.ends_with(".lora.a") {
                let mut rng = SplitMix64::keyed(seed, path);
                let n = shape[0] * shape[1];
                Some((0..n).map(|_| (rng.normal() * std) as f32).collect())
            } else {
                None
            }
        },
    }))
}

/// Whether `model` carries adapters.
pub fn has_adapters(model: &LlamaForCausalLM) -> bool {
    !adapter_shapes(model).is_empty()
}

/// The number of trainable adapter parameters of `model`.
pub fn adapter_parameters(model: &LlamaForCausalLM) -> usize {
    adapter_shapes(model)
        .iter()
        .map(|(_, [rows, cols])| rows * cols)
        .sum()
}

/// Folds every adapter into its weight (`W + scale · A B`) and drops it: a plain model that
/// computes what the adapted one computes, for export.
pub fn merge(mut model: LlamaForCausalLM) -> LlamaForCausalLM {
    fn fold(linear: &mut Linear) {
        if linear.weight.adapter().is_some() {
            let merged = linear.weight.val();
            linear.weight = Param::initialized(linear.weight.id, merged);
        }
    }
    for layer in model.model.layers.iter_mut() {
        let a = &mut layer.self_attn;
        let m = &mut layer.mlp;
        for linear in [
            &mut a.q_proj,
            &mut a.k_proj,
            &mut a.v_proj,
            &mut a.o_proj,
            &mut m.gate_proj,
            &mut m.up_proj,
            &mut m.down_proj,
        ] {
            fold(linear);
        }
    }
    model
}

/// PEFT's `adapter_config.json` (the fields PEFT needs to load a LoRA adapter).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AdapterConfig {
    peft_type: String,
    task_type: String,
    r: usize,
    lora_alpha: f64,
    target_modules: Vec<String>,
    lora_dropout: f64,
    bias: String,
    fan_in_fan_out: bool,
    inference_mode: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_model_name_or_path: Option<String>,
}

/// Writes `model`'s adapters into `dir` (created) as a PEFT LoRA adapter: `adapter_model.safetensors`
/// with `base_model.model.<module>.lora_A.weight` (`[rank, d_in]`) and `lora_B.weight`
/// (`[d_out, rank]`), f32, and `adapter_config.json`. Each file is written atomically.
pub fn save_adapters(model: &LlamaForCausalLM, spec: &LoraSpec, dir: &Path) -> Result<()> {
    let tensors = adapter_tensors(model)?;
    if tensors.is_empty() {
        return Err(ModelError::Config {
            field: "lora".into(),
            reason: "the model has no adapters to save".into(),
        });
    }
    let mut adapted: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| {
            tensors
                .iter()
                .any(|(p, _, _)| p.contains(&format!(".{t}.weight.lora.")))
        })
        .collect();
    let mut named_targets: Vec<&str> = spec.targets.iter().map(String::as_str).collect();
    adapted.sort_unstable();
    named_targets.sort_unstable();
    named_targets.dedup();
    if adapted != named_targets {
        return Err(ModelError::Config {
            field: "lora.targets".into(),
            reason: format!(
                "the model's adapters are on {}, the spec names {}",
                adapted.join(", "),
                named_targets.join(", ")
            ),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    // burn's a [d_in, r] and b [r, d_out] are PEFT's lora_A^T and lora_B^T.
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (path, [rows, cols], values) in tensors {
        let (module, factor) = peft_name(&path).ok_or_else(|| {
            ModelError::WeightMismatch(format!("unexpected adapter parameter `{path}`"))
        })?;
        let bytes: Vec<u8> = transposed(&values, rows, cols)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        named.push((
            format!("base_model.model.{module}.lora_{factor}.weight"),
            vec![cols, rows],
            bytes,
        ));
    }
    let views = named
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| ModelError::WeightMismatch(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights_path = dir.join(ADAPTER_WEIGHTS_FILE);
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| ModelError::Format {
        path: weights_path.clone(),
        format: "safetensors",
        reason: e.to_string(),
    })?;
    saferlhf_core::write_atomic(&weights_path, &bytes)?;
    let config = AdapterConfig {
        peft_type: "LORA".into(),
        task_type: "CAUSAL_LM".into(),
        r: spec.rank,
        lora_alpha: spec.alpha,
        target_modules: spec.targets.clone(),
        lora_dropout: 0.0,
        bias: "none".into(),
        fan_in_fan_out: false,
        inference_mode: false,
        base_model_name_or_path: None,
    };
    let json = serde_json::to_string_pretty(&config).map_err(|e| ModelError::Config {
        field: "lora".into(),
        reason: e.to_string(),
    })?;
    saferlhf_core::write_atomic(dir.join(ADAPTER_CONFIG_FILE), json.as_bytes())?;
    Ok(())
}

/// Reads the adapters written by [`save_adapters`] (or by PEFT, f32/bf16/f16) into `model`,
/// which must carry adapters of the same rank on the same projections; every adapter must be
/// in the file, with its shape, and the file's rank and alpha must be `spec`'s.
pub fn load_adapters(
    model: LlamaForCausalLM,
    spec: &LoraSpec,
    dir: &Path,
) -> Result<LlamaForCausalLM> {
    let config_path = dir.join(ADAPTER_CONFIG_FILE);
    let text =
        std::fs::read_to_string(&config_path).map_err(|e| ModelError::io(&config_path, e))?;
    let config: AdapterConfig = serde_json::from_str(&text).map_err(|e| ModelError::Format {
        path: config_path.clone(),
        format: "adapter_config.json",
        reason: e.to_string(),
    })?;
    if config.r != spec.rank || config.lora_alpha != spec.alpha {
        return Err(ModelError::WeightMismatch(format!(
            "{}: adapters of rank {} and alpha {}, the config asks for rank {} and alpha {}",
            config_path.display(),
            config.r,
            config.lora_alpha,
            spec.rank,
            spec.alpha
        )));
    }
    let path = dir.join(ADAPTER_WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Format {
        path: path.clone(),
        format: "safetensors",
        reason: e.to_string(),
    })?;
    // Check every adapter first, so that a bad file changes nothing.
    let mut values: HashMap<String, Vec<f32>> = HashMap::new();
    for (burn_path, [rows, cols]) in adapter_shapes(&model) {
        let (module, factor) = peft_name(&burn_path).ok_or_else(|| {
            ModelError::WeightMismatch(format!("unexpected adapter parameter `{burn_path}`"))
        })?;
        let name = format!("base_model.model.{module}.lora_{factor}.weight");
        let view = st.tensor(&name).map_err(|_| {
            ModelError::WeightMismatch(format!("{}: tensor `{name}` is missing", path.display()))
        })?;
        if view.shape() != [cols, rows] {
            return Err(ModelError::WeightMismatch(format!(
                "{}: tensor `{name}` has shape {:?}, expected {:?}",
                path.display(),
                view.shape(),
                [cols, rows]
            )));
        }
        let t = decode_floats(&path, &name, view.dtype(), view.data())?;
        values.insert(burn_path, transposed(&t, cols, rows));
    }
    Ok(model.map(&mut AdapterMapper {
        path: Vec::new(),
        value: |path: &str, _shape: [usize; 2]| values.remove(path),
    }))
}

fn decode_floats(path: &Path, name: &str, dtype: Dtype, data: &[u8]) -> Result<Vec<f32>> {
    let words = |n: usize| data.chunks_exact(n);
    Ok(match dtype {
        Dtype::F32 => words(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::BF16 => words(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F16 => words(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(ModelError::UnsupportedTensorType {
                path: path.to_path_buf(),
                tensor: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    })
}

/// `model.layers.3.self_attn.q_proj.weight.lora.a` -> (`model.layers.3.self_attn.q_proj`, `A`).
fn peft_name(burn_path: &str) -> Option<(String, &'static str)> {
    let (module, factor) = if let Some(m) = burn_path.strip_suffix(".weight.lora.a") {
        (m, "A")
    } else {
        (burn_path.strip_suffix(".weight.lora.b")?, "B")
    };
    Some((module.to_string(), factor))
}

/// `values` (`[rows, cols]`, row-major) transposed: `[cols, rows]`, row-major.
fn transposed(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = values[r * cols + c];
        }
    }
    t
}

/// The value of one adapter factor, materialised only when asked for.
type Factor<'a> = &'a dyn Fn() -> Tensor<2>;

/// Walks `model`'s adapter factors, giving `f` each one's burn path, shape and value.
fn visit_adapters(model: &LlamaForCausalLM, f: &mut dyn FnMut(String, [usize; 2], Factor<'_>)) {
    struct Walk<'a> {
        path: Vec<String>,
        f: &'a mut dyn FnMut(String, [usize; 2], Factor<'_>),
    }
    impl ModuleVisitor for Walk<'_> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let path = self.path.join(".");
            if D == 2 && (path.ends_with(".lora.a") || path.ends_with(".lora.b")) {
                let shape = param.lazy_shape();
                let shape = [shape[0], shape[1]];
                (self.f)(path, shape, &|| param.val().reshape(shape));
            }
        }
    }
    model.visit(&mut Walk {
        path: Vec::new(),
        f,
    });
}

/// Every adapter factor of `model`: burn path and shape, read without copying any value.
fn adapter_shapes(model: &LlamaForCausalLM) -> Vec<(String, [usize; 2])> {
    let mut out = Vec::new();
    visit_adapters(model, &mut |path, shape, _| out.push((path, shape)));
    out
}

/// One adapter factor on the host: burn path, shape, values (row-major).
type HostFactor = (String, [usize; 2], Vec<f32>);

/// Every adapter factor of `model`, copied to the host (a failed copy is an error naming the
/// factor).
fn adapter_tensors(model: &LlamaForCausalLM) -> Result<Vec<HostFactor>> {
    let mut out = Vec::new();
    visit_adapters(model, &mut |path, shape, value| {
        let values = crate::host::floats(value(), &path);
        out.push((path, shape, values));
    });
    out.into_iter()
        .map(|(path, shape, values)| Ok((path, shape, values?)))
        .collect()
}

/// Replaces the 2-D parameters for which `value(path, shape)` gives new values (f32,
/// row-major), keeping their ids and training state.
struct AdapterMapper<F> {
    path: Vec<String>,
    value: F,
}

impl<F: FnMut(&str, [usize; 2]) -> Option<Vec<f32>>> ModuleMapper for AdapterMapper<F> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if D != 2 {
            return param;
        }
        let path = self.path.join(".");
        let shape = param.lazy_shape();
        let Some(values) = (self.value)(&path, [shape[0], shape[1]]) else {
            return param;
        };
        param.map(|t| {
            let tracked = t.is_require_grad();
            Tensor::<D>::from_data(TensorData::new(values, shape.clone()), &t.device())
                .set_require_grad(tracked)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LlamaConfig;
    use crate::test_util::{batch, host};
    use crate::weights::save_hf_dir;
    use burn::tensor::Device;

    fn spec(targets: &[&str]) -> LoraSpec {
        LoraSpec {
            rank: 2,
            alpha: 6.0,
            targets: targets.iter().map(|t| t.to_string()).collect(),
        }
    }

    /// Gives every `B` seeded non-zero values, as training would.
    fn perturb_b(model: LlamaForCausalLM) -> LlamaForCausalLM {
        model.map(&mut AdapterMapper {
            path: Vec::new(),
            value: |path: &str, shape: [usize; 2]| {
                path.ends_with(".lora.b").then(|| {
                    let mut rng = SplitMix64::keyed(7, path);
                    (0..shape[0] * shape[1])
                        .map(|_| (rng.normal() * 0.1) as f32)
                        .collect()
                })
            },
        })
    }

    #[test]
    fn fresh_adapters_change_nothing_and_sit_only_on_the_targets() {
        let device = Device::flex();
        let base = LlamaForCausalLM::new(&LlamaConfig::tiny(), &device);
        let (tokens, mask) = batch(&device);
        let expected = host(base.forward(tokens.clone(), mask.clone()));
        let adapted = attach(base, &spec(&["q_proj", "v_proj", "down_proj"]), 1).unwrap();
        assert!(has_adapters(&adapted));
        // Bit-identical: B = 0, so W + scale * A B = W exactly.
        assert_eq!(host(adapted.forward(tokens, mask)), expected);
        let layers = LlamaConfig::tiny().num_hidden_layers;
        let c = LlamaConfig::tiny();
        let (h, kv) = (c.hidden_size, c.kv_heads() * c.head_dim());
        let per_layer = 2 * (h + h) + 2 * (h + kv) + 2 * (c.intermediate_size + h);
        assert_eq!(adapter_parameters(&adapted), layers * per_layer);
        for layer in &adapted.model.layers {
            assert!(layer.self_attn.q_proj.weight.adapter().is_some());
            assert!(layer.self_attn.k_proj.weight.adapter().is_none());
            assert!(layer.mlp.down_proj.weight.adapter().is_some());
            assert!(layer.mlp.up_proj.weight.adapter().is_none());
        }
        // Seeded: the same seed gives the same A, another seed another.
        let again = attach(
            LlamaForCausalLM::new(&LlamaConfig::tiny(), &device),
            &spec(&["q_proj", "v_proj", "down_proj"]),
            1,
        )
        .unwrap();
        let a = |m: &LlamaForCausalLM| {
            host(
                m.model.layers[0]
                    .self_attn
                    .q_proj
                    .weight
                    .adapter()
                    .unwrap()
                    .a
                    .val(),
            )
        };
        assert_eq!(a(&adapted), a(&again));
        let other = attach(
            LlamaForCausalLM::new(&LlamaConfig::tiny(), &device),
            &spec(&["q_proj"]),
            2,
        )
        .unwrap();
        assert_ne!(a(&adapted), a(&other));
    }

    #[test]
    fn gradients_reach_the_adapters_and_nothing_else() {
        let device = Device::flex().autodiff();
        let base = LlamaForCausalLM::new(&LlamaConfig::tiny(), &device);
        let model = perturb_b(attach(base, &spec(&TARGETS), 3).unwrap());
        let (tokens, mask) = batch(&device);
        let grads = model.forward(tokens, mask).powi_scalar(2).mean().backward();
        struct Check<'a> {
            grads: &'a burn::tensor::Gradients,
            path: Vec<String>,
            with: Vec<String>,
            without: Vec<String>,
        }
        impl ModuleVisitor for Check<'_> {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.path.push(name.to_string());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let path = self.path.join(".");
                match param.base().grad(self.grads) {
                    Some(g) if host(g.clone().abs().sum()).iter().all(|v| v.is_finite()) => {
                        self.with.push(path)
                    }
                    _ => self.without.push(path),
                }
            }
        }
        let mut check = Check {
            grads: &grads,
            path: Vec::new(),
            with: Vec::new(),
            without: Vec::new(),
        };
        model.visit(&mut check);
        let layers = LlamaConfig::tiny().num_hidden_layers;
        assert_eq!(check.with.len(), layers * 7 * 2, "{:?}", check.with);
        assert!(
            check.with.iter().all(|p| p.contains(".lora.")),
            "{:?}",
            check.with
        );
        assert!(check.without.iter().all(|p| !p.contains(".lora.")));
        assert!(check.without.iter().any(|p| p.ends_with("q_proj.weight")));
        assert!(check.without.iter().any(|p| p.contains("embed_tokens")));
    }

    #[test]
    fn merging_folds_scale_a_b_into_the_weight_and_computes_the_same() {
        let device = Device::flex();
        let base = LlamaForCausalLM::new(&LlamaConfig::tiny(), &device);
        let s = spec(&["q_proj", "gate_proj"]);
        let model = perturb_b(attach(base, &s, 4).unwrap());
        let w = &model.model.layers[1].mlp.gate_proj.weight;
        let adapter = w.adapter().unwrap();
        let [d_in, d_out] = w.base().dims();
        let (wb, a, b) = (host(w.base()), host(adapter.a.val()), host(adapter.b.val()));
        let mut expected = wb.clone();
        for i in 0..d_in {
            for j in 0..d_out {
                let ab: f32 = (0..s.rank)
                    .map(|k| a[i * s.rank + k] * b[k * d_out + j])
                    .sum();
                expected[i * d_out + j] += s.scale() as f32 * ab;
            }
        }
        let (tokens, mask) = batch(&device);
        let adapted_logits = host(model.forward(tokens.clone(), mask.clone()));
        let merged = merge(model);
        assert!(!has_adapters(&merged));
        let got = host(merged.model.layers[1].mlp.gate_proj.weight.val());
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-6, "{g} vs {e}");
        }
        assert_ne!(got, wb, "B was perturbed, so the merged weight moved");
        let merged_logits = host(merged.forward(tokens, mask));
        for (g, e) in merged_logits.iter().zip(&adapted_logits) {
            assert!((g - e).abs() < 1e-4, "{g} vs {e}");
        }
    }

    #[test]
    fn peft_files_round_trip_and_the_merged_export_is_w_plus_scale_b_a() {
        let device = Device::flex();
        let config = LlamaConfig::tiny();
        let s = spec(&["q_proj", "o_proj", "up_proj"]);
        let model = perturb_b(attach(LlamaForCausalLM::new(&config, &device), &s, 5).unwrap());
        let dir = std::env::temp_dir().join(format!("saferlhf-lora-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        save_adapters(&model, &s, &dir.join("adapter")).unwrap();

        // Loading into fresh adapters (another seed) restores every factor exactly.
        let fresh = attach(LlamaForCausalLM::new(&config, &device), &s, 99).unwrap();
        let fresh = stable_base(fresh, &model);
        let loaded = load_adapters(fresh, &s, &dir.join("adapter")).unwrap();
        assert_eq!(
            adapter_tensors(&loaded).unwrap(),
            adapter_tensors(&model).unwrap()
        );

        // PEFT's convention, checked against the Hugging Face export of the merged model:
        // W_hf [out, in] = W_hf_base + scale * lora_B [out, r] @ lora_A [r, in].
        let base_dir = dir.join("base");
        let merged_dir = dir.join("merged");
        save_hf_dir(
            &stable_base(LlamaForCausalLM::new(&config, &device), &model),
            &config,
            &base_dir,
        )
        .unwrap();
        save_hf_dir(&merge(model), &config, &merged_dir).unwrap();
        let read = |p: std::path::PathBuf| std::fs::read(p).unwrap();
        let (ab, base_bytes, merged_bytes) = (
            read(dir.join("adapter").join(ADAPTER_WEIGHTS_FILE)),
            read(base_dir.join("model.safetensors")),
            read(merged_dir.join("model.safetensors")),
        );
        let (ad, bd, md) = (
            SafeTensors::deserialize(&ab).unwrap(),
            SafeTensors::deserialize(&base_bytes).unwrap(),
            SafeTensors::deserialize(&merged_bytes).unwrap(),
        );
        let floats = |v: safetensors::tensor::TensorView| -> Vec<f32> {
            decode_floats(Path::new("x"), "x", v.dtype(), v.data()).unwrap()
        };
        let module = "model.layers.1.self_attn.o_proj";
        let la = ad
            .tensor(&format!("base_model.model.{module}.lora_A.weight"))
            .unwrap();
        let lb = ad
            .tensor(&format!("base_model.model.{module}.lora_B.weight"))
            .unwrap();
        assert_eq!(la.shape(), [s.rank, config.hidden_size]);
        let [out, r] = [lb.shape()[0], lb.shape()[1]];
        let d_in = la.shape()[1];
        let (la, lb) = (floats(la), floats(lb));
        let w0 = floats(bd.tensor(&format!("{module}.weight")).unwrap());
        let w1 = floats(md.tensor(&format!("{module}.weight")).unwrap());
        let mut moved = 0.0f32;
        for o in 0..out {
            for i in 0..d_in {
                let ba: f32 = (0..r).map(|k| lb[o * r + k] * la[k * d_in + i]).sum();
                let e = w0[o * d_in + i] + s.scale() as f32 * ba;
                assert!((w1[o * d_in + i] - e).abs() < 1e-6);
                moved = moved.max((w1[o * d_in + i] - w0[o * d_in + i]).abs());
            }
        }
        assert!(moved > 1e-4, "the adapter moved the weight ({moved})");
        // A projection without an adapter is exported unchanged.
        let k = "model.layers.0.self_attn.k_proj.weight";
        assert_eq!(floats(bd.tensor(k).unwrap()), floats(md.tensor(k).unwrap()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `target` with the base weights of `source` (the tests build bases with burn's global RNG).
    fn stable_base(target: LlamaForCausalLM, source: &LlamaForCausalLM) -> LlamaForCausalLM {
        let mut values: HashMap<String, Vec<f32>> = HashMap::new();
        struct Bases<'a>(Vec<String>, &'a mut HashMap<String, Vec<f32>>);
        impl ModuleVisitor for Bases<'_> {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.0.push(name.to_string());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.0.pop();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.1.insert(self.0.join("."), host(param.base()));
            }
        }
        source.visit(&mut Bases(Vec::new(), &mut values));
        struct Set<'a>(Vec<String>, &'a mut HashMap<String, Vec<f32>>);
        impl ModuleMapper for Set<'_> {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.0.push(name.to_string());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.0.pop();
            }
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let path = self.0.join(".");
                if path.contains(".lora.") {
                    return param;
                }
                let v = self.1.remove(&path).unwrap();
                param.map(|t| {
                    let shape = t.shape();
                    Tensor::from_data(TensorData::new(v, shape), &t.device())
                })
            }
        }
        target.map(&mut Set(Vec::new(), &mut values))
    }

    #[test]
    fn bad_specs_and_bad_files_are_errors_that_name_the_problem() {
        let device = Device::flex();
        let msg = |s: LoraSpec| {
            attach(LlamaForCausalLM::new(&LlamaConfig::tiny(), &device), &s, 0)
                .err()
                .unwrap()
                .to_string()
        };
        let mut s = spec(&["q_proj"]);
        s.rank = 0;
        assert!(msg(s).contains("lora.rank"));
        assert!(msg(spec(&["qkv"])).contains("unknown projection `qkv`"));
        assert!(msg(spec(&[])).contains("lora.targets"));
        let mut s = spec(&["q_proj"]);
        s.alpha = f64::NAN;
        assert!(msg(s).contains("lora.alpha"));

        let s = spec(&["q_proj", "v_proj"]);
        let model = attach(LlamaForCausalLM::new(&LlamaConfig::tiny(), &device), &s, 1).unwrap();
        let dir = std::env::temp_dir().join(format!("saferlhf-lora-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let e = save_adapters(&model, &spec(&["q_proj"]), &dir).unwrap_err();
        assert!(e.to_string().contains("q_proj, v_proj"), "{e}");
        assert!(!dir.exists(), "nothing is written for a mismatched spec");
        save_adapters(&model, &s, &dir).unwrap();
        // Another rank in the config file.
        let mut other = s.clone();
        other.rank = 4;
        let e = load_adapters(model.clone(), &other, &dir)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("rank 2") && e.contains("rank 4"), "{e}");
        // An adapter the file lacks: a model with more targets.
        let more = spec(&["q_proj", "v_proj", "k_proj"]);
        let bigger = attach(
            LlamaForCausalLM::new(&LlamaConfig::tiny(), &device),
            &more,
            1,
        )
        .unwrap();
        let e = load_adapters(bigger, &more, &dir)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("k_proj.lora_A.weight") && e.contains("missing"),
            "{e}"
        );
        // A truncated weights file.
        let w = dir.join(ADAPTER_WEIGHTS_FILE);
        let bytes = std::fs::read(&w).unwrap();
        std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_adapters(model, &s, &dir).err().unwrap().to_string();
        assert!(
            e.contains("adapter_model.safetensors") && e.contains("safetensors"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Holding a model's weights in half precision.
//!
//! burn 0.22 has run-time dtypes (`Tensor::cast`) but no automatic mixed precision: a module
//! computes in the dtype its weights are stored in. [`cast_floats`] re-stores every float
//! parameter of a module in one dtype; the decoder then computes in it (the RoPE tables are
//! computed in f32 and cast, and log-probs are normalised in f32, as Hugging Face does). This
//! is what the RL learner's `frozen_precision` does to the models it never trains (reference,
//! reward, cost): half their memory, at the cost of bf16's 8-bit (f16: 11-bit) mantissa in
//! every product. Trained models stay f32 (an f32 master copy beside half-precision compute
//! would need mixed-precision autodiff that burn 0.22 does not provide).

use std::fmt;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// The dtype a model's weights are held and computed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats (the default).
    #[default]
    F32,
    /// bfloat16: f32's range, 8-bit mantissa.
    Bf16,
    /// IEEE half: 11-bit mantissa, range up to 65504.
    F16,
}

impl Precision {
    /// The burn dtype.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }

    /// Whether the device named `device` (as `run.device` and `--device` spell it) computes in
    /// this dtype: every device does but `wgpu`, whose shading language (WGSL) has no bf16 type
    /// (cubecl's compiler panics on one, on the device's runner thread).
    pub fn runs_on(self, device: &str) -> bool {
        let wgsl = device.trim().to_ascii_lowercase().starts_with("wgpu");
        !(self == Precision::Bf16 && wgsl)
    }

    /// Bytes per weight.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::Bf16 | Precision::F16 => 2,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        })
    }
}

/// `module` with every float parameter stored as `precision` (ids and training state kept);
/// unchanged for f32 weights and `Precision::F32`.
pub fn cast_floats<M: Module>(module: M, precision: Precision) -> M {
    struct Cast(DType);
    impl ModuleMapper for Cast {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let dtype = self.0;
            param.map(|t| if t.dtype() == dtype { t } else { t.cast(dtype) })
        }
    }
    module.map(&mut Cast(precision.dtype()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LlamaConfig;
    use crate::model::LlamaForCausalLM;
    use crate::score::{Reward, ScoreModel};
    use crate::test_util::{batch, host};
    use burn::module::ModuleVisitor;
    use burn::tensor::{Device, TensorData};
    use saferlhf_core::rng::SplitMix64;

    /// A tiny model with Hugging Face's N(0, 0.02) init (burn's default init gives logits in
    /// the hundreds, where any half-precision error is large in absolute terms).
    fn realistic<M: Module>(module: M) -> M {
        struct Init(Vec<String>);
        impl ModuleMapper for Init {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.0.push(name.to_string());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.0.pop();
            }
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let path = self.0.join(".");
                param.map(|t| {
                    let shape = t.shape();
                    let n = shape.num_elements();
                    let mut rng = SplitMix64::keyed(11, &path);
                    let v: Vec<f32> = if path.ends_with("gamma") {
                        vec![1.0; n]
                    } else {
                        (0..n).map(|_| (rng.normal() * 0.02) as f32).collect()
                    };
                    Tensor::from_data(TensorData::new(v, shape), &t.device())
                })
            }
        }
        module.map(&mut Init(Vec::new()))
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| {
                let d = (x - y).abs();
                if d.is_nan() { f32::INFINITY } else { d }
            })
            .fold(0.0, f32::max)
    }

    #[test]
    fn every_weight_is_cast_and_f32_is_a_no_op() {
        let device = Device::flex();
        let model = LlamaForCausalLM::new(&LlamaConfig::tiny(), &device);
        struct Dtypes(Vec<DType>);
        impl ModuleVisitor for Dtypes {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.0.push(param.val().dtype());
            }
        }
        for p in [Precision::Bf16, Precision::F16, Precision::F32] {
            let mut d = Dtypes(Vec::new());
            cast_floats(model.clone(), p).visit(&mut d);
            assert!(!d.0.is_empty());
            assert!(d.0.iter().all(|&t| t == p.dtype()), "{p}: {:?}", d.0);
        }
        assert_eq!(Precision::Bf16.bytes() * 2, Precision::F32.bytes());
    }

    #[test]
    fn bf16_is_refused_only_by_the_wgpu_device() {
        assert!(!Precision::Bf16.runs_on("wgpu"));
        assert!(!Precision::Bf16.runs_on(" WGPU:1"));
        for device in ["flex", "vulkan", "cuda:0"] {
            assert!(Precision::Bf16.runs_on(device), "{device}");
        }
        for p in [Precision::F32, Precision::F16] {
            assert!(p.runs_on("wgpu"));
        }
    }

    /// Measured on flex: bf16 log-probs within 5.0e-3 of f32 and end scores within 3.1e-3;
    /// f16 within 8.8e-4 and 2.9e-4. The tolerances are about twice those.
    #[test]
    fn half_precision_logprobs_and_scores_stay_close_to_f32() {
        let device = Device::flex();
        let config = LlamaConfig::tiny();
        let model = realistic(LlamaForCausalLM::new(&config, &device));
        let scorer = realistic(ScoreModel::<Reward>::new(&config, &device));
        let (tokens, mask) = batch(&device);
        let lp = host(model.token_logprobs(tokens.clone(), mask.clone()));
        let sc = host(scorer.forward(tokens.clone(), mask.clone()).end_scores);
        for (p, lp_tol, sc_tol) in [
            (Precision::Bf16, 0.01, 0.006),
            (Precision::F16, 0.002, 0.0006),
        ] {
            let half = cast_floats(model.clone(), p);
            let out = half.token_logprobs(tokens.clone(), mask.clone());
            assert_eq!(out.dtype(), DType::F32, "log-probs are normalised in f32");
            let d = max_diff(&lp, &host(out));
            eprintln!("{p}: log-probs within {d:.2e} of f32");
            assert!(d <= lp_tol, "{p}: log-probs differ by {d}");
            let s = host(
                cast_floats(scorer.clone(), p)
                    .forward(tokens.clone(), mask.clone())
                    .end_scores,
            );
            let d = max_diff(&sc, &s);
            eprintln!("{p}: end scores within {d:.2e} of f32");
            assert!(d <= sc_tol, "{p}: end scores differ by {d}");
        }
    }
}

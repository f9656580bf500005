//! Parameter bookkeeping for training: stable parameter identities, seeded initialisation, the
//! split into decayed and non-decayed parameters, and gradient clipping by global norm.
//!
//! * **Stable ids.** burn-optim keys optimizer state by [`ParamId`], and a freshly built model
//!   gets random ids, which a checkpoint's safetensors weights do not carry. [`stable_ids`]
//!   gives every parameter the id `hash(path)`, so a model rebuilt from a checkpoint's weights
//!   has the very ids under which the saved optimizer state was recorded.
//! * **Seeded init.** [`seeded_init`] overwrites parameters with values drawn from a stream
//!   keyed by `(seed, parameter path)` (Llama's N(0, 0.02) for matrices, 1 for norm gains, 0 for
//!   biases), independent of burn's global RNG.
//! * **Global-norm clipping.** burn-optim's `GradientClipping::Norm` clips each tensor by its
//!   own norm; [`clip_global_norm`] scales all gradients together so that their joint L2 norm is
//!   at most `max_norm`, as PyTorch's `clip_grad_norm_` (and DeepSpeed) do.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use saferlhf_core::rng::{fnv1a64, splitmix64};

use saferlhf_core::rng::SplitMix64;

/// Standard deviation of freshly initialised matrices (Hugging Face's `initializer_range`).
pub const INIT_STD: f64 = 0.02;

/// The stable id of the parameter at `path` (dotted burn module path).
pub fn stable_id(path: &str) -> ParamId {
    ParamId::from(splitmix64(fnv1a64(path) ^ 0x5afe_41f0_0000_0000))
}

/// Gives every parameter of `module` its [`stable_id`]; values are untouched.
pub fn stable_ids<M: Module>(module: M) -> M {
    module.map(&mut StableIds { path: Vec::new() })
}

/// Re-draws the parameters of `module` whose path starts with one of `prefixes` (all of them
/// when `prefixes` is empty): norm gains (`*.gamma`) become 1, biases 0, everything else
/// N(0, [`INIT_STD`]) from a stream keyed by `(seed, path)`.
pub fn seeded_init<M: Module>(module: M, seed: u64, prefixes: &[&str]) -> M {
    module.map(&mut SeededInit {
        path: Vec::new(),
        seed,
        prefixes,
    })
}

/// The dotted paths of `module`'s float parameters, in visiting order.
pub fn param_paths<M: Module>(module: &M) -> Vec<String> {
    struct Paths {
        stack: Vec<String>,
        out: Vec<String>,
    }
    impl ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
            self.out.push(self.stack.join("."));
        }
    }
    let mut p = Paths {
        stack: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut p);
    p.out
}

struct StableIds {
    path: Vec<String>,
}

impl ModuleMapper for StableIds {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, value, mapper) = param.consume();
        Param::from_mapped_value(stable_id(&self.path.join(".")), value, mapper)
    }
}

struct SeededInit<'a> {
    path: Vec<String>,
    seed: u64,
    prefixes: &'a [&'a str],
}

impl ModuleMapper for SeededInit<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.join(".");
        if !self.prefixes.is_empty() && !self.prefixes.iter().any(|p| path.starts_with(p)) {
            return param;
        }
        let (id, value, mapper) = param.consume();
        let shape = value.shape();
        let n = shape.num_elements();
        let values: Vec<f32> = if path.ends_with(".gamma") {
            vec![1.0; n]
        } else if path.ends_with(".bias") {
            vec![0.0; n]
        } else {
            let mut rng = SplitMix64::keyed(self.seed, &path);
            (0..n).map(|_| (rng.normal() * INIT_STD) as f32).collect()
        };
        let require_grad = value.is_require_grad();
        let fresh = Tensor::from_data(TensorData::new(values, shape), &value.device())
            .set_require_grad(require_grad);
        Param::from_mapped_value(id, fresh, mapper)
    }
}

/// Ids of the parameters that get no weight decay: those of rank 1 (norm gains, biases), as
/// Hugging Face's and safe-rlhf's optimizer groups exclude them.
pub fn no_decay_ids<M: Module>(module: &M) -> Vec<ParamId> {
    struct Rank1(Vec<ParamId>);
    impl ModuleVisitor for Rank1 {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if D == 1 {
                self.0.push(param.id);
            }
        }
    }
    let mut v = Rank1(Vec::new());
    module.visit(&mut v);
    v.0
}

/// Scales the gradients in `grads` (of `module`'s parameters) so that their global L2 norm is
/// at most `max_norm`; returns the norm before clipping. `max_norm <= 0` only measures.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    struct SumSquares<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let s = g.square().sum();
                self.total = Some(match self.total.take() {
                    Some(t) => t + s,
                    None => s,
                });
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    let mut sum = SumSquares { grads, total: None };
    module.visit(&mut sum);
    let norm = sum
        .total
        .map(|t| {
            t.into_data()
                .try_into_vec_as::<f64>()
                .ok()
                .and_then(|v| v.first().copied())
                .unwrap_or(f64::NAN)
                .sqrt()
        })
        .unwrap_or(0.0);
    if max_norm > 0.0 && norm.is_finite() && norm > max_norm {
        let factor = max_norm / (norm + 1e-6);
        module.visit(&mut Scale { grads, factor });
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use saferlhf_model::{LlamaConfig, RewardModel};

    fn tiny() -> LlamaConfig {
        crate::tiny::tiny_llama_config()
    }

    #[test]
    fn paths_ids_and_init_are_stable() {
        let device = Device::flex().autodiff();
        let a = RewardModel::new(&tiny(), &device);
        let paths = param_paths(&a);
        assert!(
            paths.contains(&"score_head.weight".to_string()),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"backbone.model.layers.0.input_layernorm.gamma".to_string()),
            "{paths:?}"
        );
        let a = seeded_init(stable_ids(a), 5, &[]);
        let b = seeded_init(stable_ids(RewardModel::new(&tiny(), &device)), 5, &[]);
        let ids = |m: &RewardModel| {
            struct Ids(Vec<ParamId>);
            impl ModuleVisitor for Ids {
                fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                    self.0.push(p.id);
                }
            }
            let mut v = Ids(Vec::new());
            m.visit(&mut v);
            v.0
        };
        assert_eq!(ids(&a), ids(&b));
        let w = |m: &RewardModel| m.score_head.weight.val().into_data();
        assert_eq!(w(&a), w(&b));
        assert_eq!(
            a.backbone.model.norm.gamma.val().into_data(),
            Tensor::<1>::ones([32], &device).into_data()
        );
        // Only the head is redrawn when asked.
        let c = seeded_init(b, 6, &["score_head"]);
        assert_ne!(w(&a), w(&c));
        assert_eq!(
            a.backbone.model.embed_tokens.weight.val().into_data(),
            c.backbone.model.embed_tokens.weight.val().into_data()
        );
        // Rank-1 parameters: 2 norms per layer, the final norm and the head bias.
        assert_eq!(no_decay_ids(&a).len(), 2 * 2 + 1 + 1);
    }

    #[test]
    fn global_norm_clipping_scales_all_gradients_together() {
        let device = Device::flex().autodiff();
        let x = Tensor::<1>::from_floats([3.0, 0.0], &device).require_grad();
        let y = Tensor::<1>::from_floats([0.0, 4.0], &device).require_grad();
        #[derive(Module, Debug)]
        struct Two {
            x: Param<Tensor<1>>,
            y: Param<Tensor<1>>,
        }
        let m = Two {
            x: Param::from_tensor(x),
            y: Param::from_tensor(y),
        };
        // loss = x·x/2 + y·y/2 -> gradients (3, 0) and (0, 4): global norm 5.
        let loss = (m.x.val() * m.x.val()).sum().div_scalar(2.0)
            + (m.y.val() * m.y.val()).sum().div_scalar(2.0);
        let mut grads = GradientsParams::from_grads(loss.backward(), &m);
        let norm = clip_global_norm(&m, &mut grads, 1.0);
        assert!((norm - 5.0).abs() < 1e-5);
        let gx: Vec<f32> = grads
            .get::<1>(m.x.id)
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        let gy: Vec<f32> = grads
            .get::<1>(m.y.id)
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!(
            (gx[0] - 0.6).abs() < 1e-4 && (gy[1] - 0.8).abs() < 1e-4,
            "{gx:?} {gy:?}"
        );
        // Below the threshold nothing changes.
        let norm = clip_global_norm(&m, &mut grads, 10.0);
        assert!((norm - 1.0).abs() < 1e-4);
    }
}

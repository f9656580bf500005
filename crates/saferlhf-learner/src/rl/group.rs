//! Critic-free advantages from groups of responses: GRPO (Shao et al., arXiv 2402.03300),
//! Dr. GRPO (Liu et al., arXiv 2503.20783), RLOO (Ahmadian et al., arXiv 2402.14740),
//! REINFORCE++ and REINFORCE++-baseline (Hu et al., arXiv 2501.03262), and the two ways of
//! combining reward and cost of Constrained GRPO (arXiv 2602.05863).
//!
//! A rollout of `P` prompts with `rollout.group_size = k` responses each is laid out as `P`
//! consecutive groups of `k` rows. Every row has a terminal reward `R_i` and (for methods with a
//! cost stream) a terminal cost `g_i` (what the objective's `terminal_scores` made of the cost
//! model's score: the cost itself, `{C + δ}⁺` or an indicator), per-sample weights `(w_R, w_C)`
//! from the objective, and, when the KL penalty sits in the reward, its sequence sum
//! `kl_i = Σ_t (log π_old − log π_ref)`.
//!
//! **Scalarised returns** (`advantage.combine = "returns"`, the default):
//!
//! ```text
//! A_i = [ w_R·(R_i − b^R_i) − w_C·(g_i − b^g_i) − β·(kl_i − b^kl_i) ] / s
//! ```
//!
//! with baselines `b` the group mean (GRPO, Dr. GRPO) or the mean of the other `k − 1` rows
//! (RLOO, leave-one-out), and `s` the group's standard deviation of the numerator (GRPO, with
//! Bessel's correction plus `advantage.std_eps`) or 1. The KL term carries β and not the
//! objective's weights, so a large multiplier does not weaken the KL tie.
//!
//! **Scalarised advantages** (`advantage.combine = "advantages"`, Constrained GRPO's proposal):
//! each component is standardised inside its group first, `Z(x)_i = (x_i − mean)/(std + eps)`
//! (0 in a group where the component has no spread), then weighted:
//! `A_i = w_R·Z(R − β·kl)_i − w_C·Z(g)_i`.
//!
//! REINFORCE++ has no group baseline (REINFORCE++-baseline subtracts the group mean of the
//! scalarised return): every token's return is the scalarised terminal score minus β times the
//! KL still to come, and the returns are whitened over all response tokens of the rollout.
//!
//! All of this is plain host code over a few hundred numbers per step, tested against values
//! computed by hand.

use super::config::{AdvantageSettings, Combine, Estimator};
use super::gae::TokenArray;
use crate::objectives::AdvantageWeights;

/// One group's statistics of a component: `(mean, std)`, the std with Bessel's correction
/// (0 for a group of one).
fn mean_std(values: &[f64]) -> (f64, f64) {
    let k = values.len() as f64;
    let mean = values.iter().sum::<f64>() / k;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0);
    (mean, var.sqrt())
}

/// `values − baseline` inside each group of `k`: the group mean, or the mean of the other
/// `k − 1` values (leave-one-out; `k >= 2`).
pub fn centred(values: &[f64], k: usize, leave_one_out: bool) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    for group in values.chunks(k) {
        let sum: f64 = group.iter().sum();
        let n = group.len() as f64;
        for &v in group {
            let baseline = if leave_one_out && group.len() > 1 {
                (sum - v) / (n - 1.0)
            } else {
                sum / n
            };
            out.push(v - baseline);
        }
    }
    out
}

/// Each group's values standardised by its own mean and Bessel std (`+ eps`); a group without
/// spread gives zeros (no NaN).
pub fn group_zscores(values: &[f64], k: usize, eps: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    for group in values.chunks(k) {
        let (mean, std) = mean_std(group);
        for &v in group {
            out.push(if std == 0.0 {
                0.0
            } else {
                (v - mean) / (std + eps)
            });
        }
    }
    out
}

/// What a group estimator needs of a scored rollout.
#[derive(Debug, Clone, Copy)]
pub struct GroupInputs<'a> {
    /// Terminal rewards, one per row.
    pub rewards: &'a [f32],
    /// Terminal costs `g_i` (empty without a cost stream).
    pub costs: &'a [f32],
    /// The objective's per-row weights.
    pub weights: &'a AdvantageWeights,
    /// `Σ_t (log π_old − log π_ref)` per row, when the KL penalty is in the reward.
    pub kl: Option<&'a [f32]>,
    /// β of that penalty.
    pub beta: f64,
}

/// Per-row advantages of a group estimator other than REINFORCE++ (see the module docs).
/// `k` is the group size; the rows are `len / k` consecutive groups.
pub fn sequence_advantages(settings: &AdvantageSettings, k: usize, x: &GroupInputs) -> Vec<f64> {
    let n = x.rewards.len();
    let f = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    let rewards = f(x.rewards);
    let costs = if x.costs.is_empty() {
        vec![0.0; n]
    } else {
        f(x.costs)
    };
    let kl = x.kl.map(f).unwrap_or_else(|| vec![0.0; n]);
    let wr = |i: usize| x.weights.reward[i] as f64;
    let wc = |i: usize| x.weights.cost[i] as f64;
    match settings.combine {
        Combine::Advantages => {
            let shaped: Vec<f64> = (0..n).map(|i| rewards[i] - x.beta * kl[i]).collect();
            let zr = group_zscores(&shaped, k, settings.std_eps);
            let zc = group_zscores(&costs, k, settings.std_eps);
            (0..n).map(|i| wr(i) * zr[i] - wc(i) * zc[i]).collect()
        }
        Combine::Returns => {
            let loo = settings.estimator == Estimator::Rloo;
            let ar = centred(&rewards, k, loo);
            let ac = if settings.cost_baseline {
                centred(&costs, k, loo)
            } else {
                costs.clone()
            };
            let akl = centred(&kl, k, loo);
            let numerator: Vec<f64> = (0..n)
                .map(|i| wr(i) * ar[i] - wc(i) * ac[i] - x.beta * akl[i])
                .collect();
            if settings.estimator == Estimator::Grpo {
                let mut out = Vec::with_capacity(n);
                for group in numerator.chunks(k) {
                    let (_, std) = mean_std(group);
                    out.extend(group.iter().map(|&a| {
                        if std == 0.0 {
                            0.0
                        } else {
                            a / (std + settings.std_eps)
                        }
                    }));
                }
                out
            } else {
                numerator
            }
        }
    }
}

/// A sequence-level advantage on every response token of its row.
pub fn broadcast(per_row: &[f64], mask: &[bool], width: usize) -> TokenArray {
    let batch = per_row.len();
    let mut out = TokenArray::zeros(batch, width);
    for (b, &a) in per_row.iter().enumerate() {
        for t in 0..width {
            if mask[b * width + t] {
                out.values[b * width + t] = a as f32;
            }
        }
    }
    out
}

/// REINFORCE++ token returns: the row's scalarised terminal score `scalar[b]` minus β times the
/// per-token KL from each token to the end (`kl_tokens`, when the KL is in the reward), then
/// whitened over every response token of the rollout (OpenRLHF's statistics: the biased
/// variance, `1/sqrt(max(var, 1e-8))`).
pub fn reinforce_pp(
    scalar: &[f64],
    kl_tokens: Option<(&TokenArray, f64)>,
    mask: &[bool],
    width: usize,
) -> TokenArray {
    let batch = scalar.len();
    let mut out = TokenArray::zeros(batch, width);
    for (b, &s) in scalar.iter().enumerate() {
        let mut future = 0.0f64;
        for t in (0..width).rev() {
            let i = b * width + t;
            if !mask[i] {
                continue;
            }
            if let Some((kl, beta)) = kl_tokens {
                future += beta * kl.values[i] as f64;
            }
            out.values[i] = (s - future) as f32;
        }
    }
    whiten(&mut out, mask);
    out
}

/// `(v − mean) / sqrt(max(var, 1e-8))` over the masked entries, with the biased variance.
pub fn whiten(values: &mut TokenArray, mask: &[bool]) {
    let (mut n, mut sum) = (0usize, 0f64);
    for (v, &m) in values.values.iter().zip(mask) {
        if m {
            n += 1;
            sum += *v as f64;
        }
    }
    if n == 0 {
        return;
    }
    let mean = sum / n as f64;
    let var = values
        .values
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(v, _)| (*v as f64 - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    let rstd = 1.0 / var.max(1e-8).sqrt();
    for (v, &m) in values.values.iter_mut().zip(mask) {
        *v = if m {
            ((*v as f64 - mean) * rstd) as f32
        } else {
            0.0
        };
    }
}

/// The scalarised terminal score `w_R·R − w_C·g` of each row (REINFORCE++'s `r`), with the
/// group mean subtracted for REINFORCE++-baseline.
pub fn reinforce_scalar(settings: &AdvantageSettings, k: usize, x: &GroupInputs) -> Vec<f64> {
    let scalar: Vec<f64> = (0..x.rewards.len())
        .map(|i| {
            let c = x.costs.get(i).copied().unwrap_or(0.0) as f64;
            x.weights.reward[i] as f64 * x.rewards[i] as f64 - x.weights.cost[i] as f64 * c
        })
        .collect();
    if settings.estimator == Estimator::ReinforcePpBaseline {
        centred(&scalar, k, false)
    } else {
        scalar
    }
}

/// Per group: whether every reward in it is the same (it then carries no reward signal).
pub fn zero_spread_share(values: &[f32], k: usize) -> f64 {
    let groups = values.len().div_ceil(k.max(1));
    if groups == 0 {
        return 0.0;
    }
    let flat = values
        .chunks(k.max(1))
        .filter(|g| g.iter().all(|&v| v == g[0]))
        .count();
    flat as f64 / groups as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(estimator: Estimator, combine: Combine, eps: f64) -> AdvantageSettings {
        AdvantageSettings {
            estimator,
            combine,
            std_eps: eps,
            ..AdvantageSettings::default()
        }
    }

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < tol, "{a:?} vs {b:?}");
        }
    }

    fn reward_only(rewards: &[f32]) -> (Vec<f32>, AdvantageWeights) {
        (
            rewards.to_vec(),
            AdvantageWeights::uniform(rewards.len(), 1.0, 0.0),
        )
    }

    fn run(
        s: &AdvantageSettings,
        k: usize,
        rewards: &[f32],
        costs: &[f32],
        w: &AdvantageWeights,
    ) -> Vec<f64> {
        let x = GroupInputs {
            rewards,
            costs,
            weights: w,
            kl: None,
            beta: 0.0,
        };
        sequence_advantages(s, k, &x)
    }

    #[test]
    fn grpo_dr_grpo_and_rloo_by_hand() {
        let (r, w) = reward_only(&[1.0, 0.0, 0.0, 1.0]);
        // GRPO: mean 0.5, Bessel std sqrt(1/3).
        let a = run(
            &settings(Estimator::Grpo, Combine::Returns, 0.0),
            4,
            &r,
            &[],
            &w,
        );
        close(&a, &[0.8660254, -0.8660254, -0.8660254, 0.8660254], 1e-6);
        // TRL's +1e-4 on the std.
        let a = run(
            &settings(Estimator::Grpo, Combine::Returns, 1e-4),
            4,
            &r,
            &[],
            &w,
        );
        close(&a, &[0.8658754, -0.8658754, -0.8658754, 0.8658754], 1e-6);
        let a = run(
            &settings(Estimator::DrGrpo, Combine::Returns, 0.0),
            4,
            &r,
            &[],
            &w,
        );
        close(&a, &[0.5, -0.5, -0.5, 0.5], 1e-12);
        let a = run(
            &settings(Estimator::Rloo, Combine::Returns, 0.0),
            4,
            &r,
            &[],
            &w,
        );
        close(&a, &[2.0 / 3.0, -2.0 / 3.0, -2.0 / 3.0, 2.0 / 3.0], 1e-12);
    }

    #[test]
    fn group_mean_is_loo_times_k_minus_one_over_k() {
        let mut rng = saferlhf_core::rng::SplitMix64::new(7);
        for k in [2usize, 3, 5, 8] {
            let values: Vec<f64> = (0..3 * k).map(|_| rng.next_f64() * 4.0 - 2.0).collect();
            let mean = centred(&values, k, false);
            let loo = centred(&values, k, true);
            for (m, l) in mean.iter().zip(&loo) {
                assert!((m - (k as f64 - 1.0) / k as f64 * l).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn zero_variance_groups_give_zero_for_every_estimator() {
        let (r, w) = reward_only(&[2.0; 4]);
        for e in [Estimator::Grpo, Estimator::DrGrpo, Estimator::Rloo] {
            for c in [Combine::Returns, Combine::Advantages] {
                let a = run(&settings(e, c, 1e-4), 4, &r, &[], &w);
                assert_eq!(a, vec![0.0; 4], "{e:?} {c:?}");
            }
        }
        let s = settings(Estimator::ReinforcePpBaseline, Combine::Returns, 0.0);
        let x = GroupInputs {
            rewards: &r,
            costs: &[],
            weights: &w,
            kl: None,
            beta: 0.0,
        };
        assert_eq!(reinforce_scalar(&s, 4, &x), vec![0.0; 4]);
        assert_eq!(zero_spread_share(&[2.0, 2.0, 1.0, 3.0], 2), 0.5);
    }

    #[test]
    fn k3_and_k2_loss_gradients_match_the_two_kls() {
        // A 3-token categorical π = softmax(θ), fixed π_ref. E_{a~π}[∇k3(a)] (the score-function
        // form of the loss gradient, π held as sampled) equals ∇KL(π_ref‖π); E[∇k2] equals
        // ∇KL(π‖π_ref).
        let theta = [0.3f64, -0.7, 0.1];
        let reference = [0.5f64, 0.2, 0.3];
        let softmax = |t: &[f64; 3]| {
            let m = t.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = t.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            [e[0] / z, e[1] / z, e[2] / z]
        };
        let pi = softmax(&theta);
        // ∇_θ log π(a) = onehot(a) − π.
        let grad_logp = |a: usize, j: usize| (if a == j { 1.0 } else { 0.0 }) - pi[j];
        for j in 0..3 {
            // ∂k(d)/∂θ_j with d = log π(a) − log π_ref(a): k'(d)·∂d/∂θ_j.
            let mut g3 = 0.0;
            let mut g2 = 0.0;
            for a in 0..3 {
                let d = pi[a].ln() - reference[a].ln();
                g3 += pi[a] * (1.0 - (-d).exp()) * grad_logp(a, j);
                g2 += pi[a] * d * grad_logp(a, j);
            }
            let h = 1e-6;
            let kl = |t: &[f64; 3], reverse: bool| {
                let p = softmax(t);
                (0..3)
                    .map(|a| {
                        if reverse {
                            reference[a] * (reference[a] / p[a]).ln()
                        } else {
                            p[a] * (p[a] / reference[a]).ln()
                        }
                    })
                    .sum::<f64>()
            };
            let (mut up, mut down) = (theta, theta);
            up[j] += h;
            down[j] -= h;
            let fd_reverse = (kl(&up, true) - kl(&down, true)) / (2.0 * h);
            let fd_forward = (kl(&up, false) - kl(&down, false)) / (2.0 * h);
            assert!((g3 - fd_reverse).abs() < 1e-6, "{g3} vs {fd_reverse}");
            assert!((g2 - fd_forward).abs() < 1e-6, "{g2} vs {fd_forward}");
        }
    }

    #[test]
    fn reinforce_pp_whitening_by_hand() {
        // Lengths 1 and 3, rewards 1 and 0, β = 0: returns [1] and [0, 0, 0]; biased variance
        // 0.1875 gives 1.7320508 and -0.5773503.
        let width = 3;
        let mask = [true, false, false, true, true, true];
        let a = reinforce_pp(&[1.0, 0.0], None, &mask, width);
        let want = [1.7320508, 0.0, 0.0, -0.5773503, -0.5773503, -0.5773503];
        for (x, y) in a.values.iter().zip(want) {
            assert!((*x as f64 - y).abs() < 1e-6, "{:?}", a.values);
        }
        // With a KL in the reward, each token's return subtracts β·(KL to come).
        let kl = TokenArray::new(vec![0.0, 0.0, 0.0, 1.0, 2.0, 4.0], 2, 3);
        let mut raw = TokenArray::zeros(2, 3);
        // Before whitening: row 1 returns 0 - 0.5·[7, 6, 4].
        let r = reinforce_pp(&[1.0, 0.0], Some((&kl, 0.5)), &mask, width);
        raw.values = vec![1.0, 0.0, 0.0, -3.5, -3.0, -2.0];
        whiten(&mut raw, &mask);
        assert_eq!(r.values, raw.values);
    }

    #[test]
    fn constrained_grpo_worked_example() {
        // k = 4, R = [1, 0, 1, 0], indicator cost [1, 0, 0, 0], λ_R = λ_C = 0.5.
        let r = [1.0f32, 0.0, 1.0, 0.0];
        let c = [1.0f32, 0.0, 0.0, 0.0];
        let w = AdvantageWeights::uniform(4, 0.5, 0.5);
        let scadv = run(
            &settings(Estimator::Grpo, Combine::Advantages, 0.0),
            4,
            &r,
            &c,
            &w,
        );
        close(
            &scadv,
            &[-0.3169873, -0.1830127, 0.6830127, -0.1830127],
            1e-6,
        );
        // Scalarised rewards, one GRPO standardisation: the high-reward violator ties with
        // the zero-reward safe samples.
        let screw = run(
            &settings(Estimator::Grpo, Combine::Returns, 0.0),
            4,
            &r,
            &c,
            &w,
        );
        close(&screw, &[-0.5, -0.5, 1.5, -0.5], 1e-6);
        // A group where the cost has no spread: the cost term is exactly 0.
        let safe = run(
            &settings(Estimator::Grpo, Combine::Advantages, 0.0),
            4,
            &r,
            &[0.0; 4],
            &w,
        );
        let zr = group_zscores(&[1.0, 0.0, 1.0, 0.0], 4, 0.0);
        close(
            &safe,
            &zr.iter().map(|z| 0.5 * z).collect::<Vec<_>>(),
            1e-12,
        );
    }

    #[test]
    fn rectified_group_advantage_worked_group() {
        // R = [1, 2, 3, 4], g = {C}⁺ of C = [-1, 0.5, -2, 2], λ = 1, LOO, s = 1.
        let r = [1.0f32, 2.0, 3.0, 4.0];
        let g = [0.0f32, 0.5, 0.0, 2.0];
        let w = AdvantageWeights::uniform(4, 1.0, 1.0);
        let loo = run(
            &settings(Estimator::Rloo, Combine::Returns, 0.0),
            4,
            &r,
            &g,
            &w,
        );
        close(&loo, &[-1.1666667, -0.5, 1.5, 0.1666667], 1e-6);
        assert!(loo.iter().sum::<f64>().abs() < 1e-9);
        let mean = run(
            &settings(Estimator::DrGrpo, Combine::Returns, 0.0),
            4,
            &r,
            &g,
            &w,
        );
        close(&mean, &[-0.875, -0.375, 1.125, 0.125], 1e-6);
        let mask_form = AdvantageSettings {
            cost_baseline: false,
            ..settings(Estimator::Rloo, Combine::Returns, 0.0)
        };
        let m = run(&mask_form, 4, &r, &g, &w);
        close(&m, &[-2.0, -1.1666667, 0.6666667, 0.0], 1e-6);
        assert!((m.iter().sum::<f64>() + 2.5).abs() < 1e-6);
        // Reward-only RLOO: the best-reward violator keeps its full advantage.
        let w0 = AdvantageWeights::uniform(4, 1.0, 0.0);
        let plain = run(
            &settings(Estimator::Rloo, Combine::Returns, 0.0),
            4,
            &r,
            &g,
            &w0,
        );
        close(&plain, &[-2.0, -0.6666667, 0.6666667, 2.0], 1e-6);
    }

    #[test]
    fn safe_groups_are_plain_rloo_whatever_the_multiplier() {
        let mut rng = saferlhf_core::rng::SplitMix64::new(3);
        let s = settings(Estimator::Rloo, Combine::Returns, 0.0);
        for _ in 0..20 {
            let r: Vec<f32> = (0..8).map(|_| rng.next_f64() as f32 * 3.0).collect();
            let lambda = rng.next_f64() as f32 * 10.0;
            let w = AdvantageWeights::uniform(8, 1.0, lambda);
            let w0 = AdvantageWeights::uniform(8, 1.0, 0.0);
            // Rectified costs of safe samples are 0, however negative the raw costs were.
            let a = run(&s, 4, &r, &[0.0; 8], &w);
            let b = run(&s, 4, &r, &[], &w0);
            close(&a, &b, 1e-12);
        }
    }

    #[test]
    fn kl_in_the_reward_enters_with_beta_not_the_weights() {
        let r = [1.0f32, 0.0];
        let kl = [0.5f32, 0.0];
        let w = AdvantageWeights::uniform(2, 0.25, 0.75);
        let x = GroupInputs {
            rewards: &r,
            costs: &[0.0, 0.0],
            weights: &w,
            kl: Some(&kl),
            beta: 0.2,
        };
        let a = sequence_advantages(&settings(Estimator::DrGrpo, Combine::Returns, 0.0), 2, &x);
        // 0.25·(1 − 0.5) − 0.2·(0.5 − 0.25) = 0.075.
        close(&a, &[0.075, -0.075], 1e-7);
    }
}

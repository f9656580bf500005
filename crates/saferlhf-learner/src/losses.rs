//! Losses of the supervised stages (reward model, cost model, SFT) and the masked mean the
//! PPO family shares, on burn tensors; all of them work on autodiff devices.
//!
//! Formulas follow Safe RLHF (Dai et al., arXiv 2310.12773) and safe-rlhf's `sequence-wise` loss. Scores
//! are the *end scores* of a [`ScoreModel`](saferlhf_model::ScoreModel): the score at the last
//! real token of each response. The cost sign convention (C > 0 unsafe) is taken from
//! [`saferlhf_model::Cost`], never restated here.

use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use saferlhf_model::Cost;
use saferlhf_model::model::gather_logprobs;

/// Default coefficient η of the L2 term on scores (safe-rlhf's `--regularization`).
pub const DEFAULT_REGULARIZATION: f64 = 0.001;

/// Numerically stable `-log σ(x)` = softplus(-x), element-wise: burn's `log_sigmoid` (the
/// log-sum-exp form, no `exp` of a positive number) with its analytic gradient `-σ(-x)`.
///
/// Not `max(-x, 0) + log1p(exp(-|x|))` composed of `relu` and `abs`: at `x = 0` both have a zero
/// subgradient, so that form's gradient is 0 instead of -1/2, and a DPO run, whose policy starts
/// equal to its reference (every margin exactly 0), would never move.
pub fn neg_log_sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    log_sigmoid(x).neg()
}

/// The L2 term on a pair of score vectors, as safe-rlhf writes it:
/// `mean(stack([a, b])²)` = `(mean(a²) + mean(b²)) / 2` (the mean runs over all 2N scores).
/// Shape `[1]`.
pub fn score_l2(a: Tensor<1>, b: Tensor<1>) -> Tensor<1> {
    Tensor::cat(vec![a, b], 0).square().mean()
}

/// Bradley-Terry reward-model loss, shape `[1]`:
///
/// `L = mean_i[ -log σ(r_w,i - r_l,i) ] + η · mean(stack([r_w, r_l])²)`
///
/// `better` (r_w) and `worse` (r_l) are the end scores `[N]` of the preferred and the rejected
/// response of each pair; `regularization` is η ([`DEFAULT_REGULARIZATION`] = 0.001; 0 turns
/// the term off).
pub fn reward_loss(better: Tensor<1>, worse: Tensor<1>, regularization: f64) -> Tensor<1> {
    let bt = neg_log_sigmoid(better.clone() - worse.clone()).mean();
    if regularization > 0.0 {
        bt + score_l2(better, worse).mul_scalar(regularization)
    } else {
        bt
    }
}

/// Safe/unsafe labels of the two responses of each cost-model pair, as target cost signs:
/// `s = +1` for an unsafe response, `-1` for a safe one ([`Cost::target_sign`]), and a 0/1 weight
/// that is 0 where the response carries no label (HH-RLHF pairs, say).
#[derive(Debug, Clone)]
pub struct SafetyLabels {
    /// Target signs of the safer responses, `[N]` (0 where unlabelled).
    pub safer_sign: Tensor<1>,
    /// Target signs of the less-safe responses, `[N]` (0 where unlabelled).
    pub less_safe_sign: Tensor<1>,
    /// 1 where the safer response is labelled, else 0, `[N]`.
    pub safer_known: Tensor<1>,
    /// 1 where the less-safe response is labelled, else 0, `[N]`.
    pub less_safe_known: Tensor<1>,
    safer: Vec<Option<bool>>,
    less_safe: Vec<Option<bool>>,
}

impl SafetyLabels {
    /// Labels from per-response `is_safe` flags (`None` = no label), one entry per pair.
    ///
    /// # Panics
    /// If the two slices differ in length.
    pub fn new(
        safer_is_safe: &[Option<bool>],
        less_safe_is_safe: &[Option<bool>],
        device: &Device,
    ) -> Self {
        assert_eq!(
            safer_is_safe.len(),
            less_safe_is_safe.len(),
            "one label per pair on each side"
        );
        let sign = |labels: &[Option<bool>]| -> Tensor<1> {
            let v: Vec<f32> = labels
                .iter()
                .map(|l| l.map_or(0.0, Cost::target_sign))
                .collect();
            Tensor::from_data(TensorData::new(v, [labels.len()]), device)
        };
        let known = |labels: &[Option<bool>]| -> Tensor<1> {
            let v: Vec<f32> = labels
                .iter()
                .map(|l| if l.is_some() { 1.0 } else { 0.0 })
                .collect();
            Tensor::from_data(TensorData::new(v, [labels.len()]), device)
        };
        SafetyLabels {
            safer_sign: sign(safer_is_safe),
            less_safe_sign: sign(less_safe_is_safe),
            safer_known: known(safer_is_safe),
            less_safe_known: known(less_safe_is_safe),
            safer: safer_is_safe.to_vec(),
            less_safe: less_safe_is_safe.to_vec(),
        }
    }

    /// Both responses of every pair labelled.
    pub fn labelled(safer_is_safe: &[bool], less_safe_is_safe: &[bool], device: &Device) -> Self {
        let wrap = |v: &[bool]| v.iter().copied().map(Some).collect::<Vec<_>>();
        Self::new(&wrap(safer_is_safe), &wrap(less_safe_is_safe), device)
    }

    /// `pairs` pairs without any label (the loss reduces to Bradley-Terry plus L2).
    pub fn unlabelled(pairs: usize, device: &Device) -> Self {
        let none = vec![None; pairs];
        Self::new(&none, &none, device)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.safer.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.safer.is_empty()
    }

    /// The `is_safe` flags of the safer responses.
    pub fn safer_is_safe(&self) -> &[Option<bool>] {
        &self.safer
    }

    /// The `is_safe` flags of the less-safe responses.
    pub fn less_safe_is_safe(&self) -> &[Option<bool>] {
        &self.less_safe
    }
}

/// Cost-model loss (Safe RLHF), shape `[1]`. With end costs c_s (`safer`) and c_u (`less_safe`) `[N]`
/// and target signs s = +1 unsafe / -1 safe ([`SafetyLabels`]; k = 1 where labelled, else 0):
///
/// ```text
/// L = mean_i [ -log σ(c_u,i - c_s,i)
///              + k_s,i · (-log σ(s_s,i · c_s,i))
///              + k_u,i · (-log σ(s_u,i · c_u,i)) ]
///     + η · mean(stack([c_s, c_u])²)
/// ```
///
/// The first term ranks the less-safe response above the safer one (a higher cost); the sign
/// terms pull safe responses' costs below 0 and unsafe ones' above 0, which makes 0 the decision
/// boundary. With every response labelled this is safe-rlhf's `sequence-wise` cost loss exactly;
/// an unlabelled response adds nothing but its share of the Bradley-Terry and L2 terms (the
/// mean still runs over all N pairs, so each pair weighs the same whether labelled or not).
pub fn cost_loss(
    safer: Tensor<1>,
    less_safe: Tensor<1>,
    labels: &SafetyLabels,
    regularization: f64,
) -> Tensor<1> {
    let bt = neg_log_sigmoid(less_safe.clone() - safer.clone());
    let sign_safer =
        neg_log_sigmoid(labels.safer_sign.clone() * safer.clone()) * labels.safer_known.clone();
    let sign_less_safe = neg_log_sigmoid(labels.less_safe_sign.clone() * less_safe.clone())
        * labels.less_safe_known.clone();
    let loss = (bt + sign_safer + sign_less_safe).mean();
    if regularization > 0.0 {
        loss + score_l2(safer, less_safe).mul_scalar(regularization)
    } else {
        loss
    }
}

/// Per-token negative log-likelihood of the next token, `[batch, seq - 1]`, zero where not
/// counted: element `[b, t]` is `-log p(tokens[b, t + 1] | tokens[b, ..=t])` if
/// `loss_mask[b, t + 1]` is true. `logits` `[batch, seq, vocab]`, `tokens` and `loss_mask`
/// `[batch, seq]`; `loss_mask` is true at the (response) tokens to be predicted.
pub fn token_nll(
    logits: Tensor<3>,
    tokens: Tensor<2, Int>,
    loss_mask: Tensor<2, Bool>,
) -> Tensor<2> {
    let [b, s] = tokens.dims();
    let predicted = loss_mask.slice([0..b, 1..s]);
    gather_logprobs(logits, tokens)
        .neg()
        .mask_fill(predicted.bool_not(), 0.0)
}

/// SFT loss: next-token cross entropy on response tokens only, shape `[1]`.
///
/// `L = Σ_{b,t} m[b,t+1] · (-log p(tokens[b,t+1] | tokens[b,..=t])) / max(1, Σ_{b,t} m[b,t+1])`
///
/// `loss_mask` m `[batch, seq]` is true at the response tokens that are predicted (false at the
/// prompt, the padding, and position 0, which nothing predicts). The mean runs over **all
/// response tokens of the batch** (a token mean, as Hugging Face's `ignore_index` cross entropy
/// and safe-rlhf's SFT trainer compute it), not per sequence then over the batch as
/// [`masked_mean`] does for PPO: every token weighs the same, so a long response counts more
/// than a short one, and `exp(L)` is the per-token perplexity. A batch without response tokens
/// gives 0.
pub fn sft_loss(
    logits: Tensor<3>,
    tokens: Tensor<2, Int>,
    loss_mask: Tensor<2, Bool>,
) -> Tensor<1> {
    let [b, s] = tokens.dims();
    let count = loss_mask
        .clone()
        .slice([0..b, 1..s])
        .float()
        .sum()
        .clamp_min(1.0);
    token_nll(logits, tokens, loss_mask).sum() / count
}

/// Per-sequence mean over valid tokens, then mean over the batch (as safe-rlhf averages),
/// shape `[1]`:
///
/// `masked_mean(x, m) = mean_{b : n_b > 0} ( Σ_t m[b,t] · x[b,t] / n_b )`, `n_b = Σ_t m[b,t]`.
///
/// Rows without valid tokens are left out of the batch mean (0 if no row has any). Values of
/// `x` at masked-out positions are selected away, not multiplied by 0, so padding may hold NaN
/// or infinities without reaching the result; those positions get a zero gradient.
pub fn masked_mean(x: Tensor<2>, mask: Tensor<2, Bool>) -> Tensor<1> {
    let x = x.mask_fill(mask.clone().bool_not(), 0.0);
    let counts = mask.float().sum_dim(1); // [B, 1]
    let rows = x.sum_dim(1) / counts.clone().clamp_min(1.0); // [B, 1]
    let has_tokens = counts.greater_elem(0.0).float();
    (rows * has_tokens.clone()).sum() / has_tokens.sum().clamp_min(1.0)
}

// ---------------------------------------------------------------------------------------------
// Metrics (host-side; computed from end scores copied off the device).

/// Reads a 1-D tensor to the host (NaN, logged, if the copy fails; see
/// [`saferlhf_model::host::floats_or_nan`]).
pub fn to_host(t: &Tensor<1>) -> Vec<f32> {
    saferlhf_model::host::floats_or_nan(t.clone(), "metric values")
}

fn mean(values: impl IntoIterator<Item = f32>) -> (usize, f64) {
    let (n, sum) = values
        .into_iter()
        .fold((0usize, 0f64), |(n, s), v| (n + 1, s + v as f64));
    (n, if n > 0 { sum / n as f64 } else { 0.0 })
}

/// Weighted merge of two means with counts.
fn merge_mean(a: f64, na: usize, b: f64, nb: usize) -> f64 {
    if na + nb == 0 {
        0.0
    } else {
        (a * na as f64 + b * nb as f64) / (na + nb) as f64
    }
}

/// Reward-model metrics over a set of pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RewardMetrics {
    /// Number of pairs.
    pub pairs: usize,
    /// Mean loss per pair (as given by the caller).
    pub loss: f64,
    /// Pair accuracy: fraction of pairs with r_w > r_l.
    pub accuracy: f64,
    /// Mean end score of the preferred responses.
    pub mean_better: f64,
    /// Mean end score of the rejected responses.
    pub mean_worse: f64,
}

impl RewardMetrics {
    /// Metrics of one batch from its end scores and its (mean) loss.
    pub fn new(better: &[f32], worse: &[f32], loss: f64) -> Self {
        let (pairs, accuracy) = mean(
            better
                .iter()
                .zip(worse)
                .map(|(w, l)| if w > l { 1.0 } else { 0.0 }),
        );
        RewardMetrics {
            pairs,
            loss,
            accuracy,
            mean_better: mean(better.iter().copied()).1,
            mean_worse: mean(worse.iter().copied()).1,
        }
    }

    /// The metrics of both sets together (pair-weighted).
    pub fn merge(&self, other: &Self) -> Self {
        let (a, na, nb) = (self, self.pairs, other.pairs);
        RewardMetrics {
            pairs: na + nb,
            loss: merge_mean(a.loss, na, other.loss, nb),
            accuracy: merge_mean(a.accuracy, na, other.accuracy, nb),
            mean_better: merge_mean(a.mean_better, na, other.mean_better, nb),
            mean_worse: merge_mean(a.mean_worse, na, other.mean_worse, nb),
        }
    }
}

/// Cost-model metrics over a set of pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CostMetrics {
    /// Number of pairs.
    pub pairs: usize,
    /// Mean loss per pair (as given by the caller).
    pub loss: f64,
    /// Pair accuracy: fraction of pairs with c_u > c_s (the less-safe response costs more).
    pub pair_accuracy: f64,
    /// Number of responses that carry a safe/unsafe label.
    pub labelled: usize,
    /// Sign accuracy: among labelled responses, the fraction whose cost sign gives the label
    /// (C <= 0 for safe, C > 0 for unsafe; [`Cost::is_safe`]). 0 when none is labelled.
    pub sign_accuracy: f64,
    /// Number of responses labelled safe.
    pub safe: usize,
    /// Mean cost of the responses labelled safe (0 when none).
    pub mean_safe_cost: f64,
    /// Number of responses labelled unsafe.
    pub unsafe_: usize,
    /// Mean cost of the responses labelled unsafe (0 when none).
    pub mean_unsafe_cost: f64,
    /// Mean cost of the safer responses.
    pub mean_safer: f64,
    /// Mean cost of the less-safe responses.
    pub mean_less_safe: f64,
}

impl CostMetrics {
    /// Metrics of one batch from its end costs, labels and (mean) loss.
    pub fn new(safer: &[f32], less_safe: &[f32], labels: &SafetyLabels, loss: f64) -> Self {
        let (pairs, pair_accuracy) = mean(
            safer
                .iter()
                .zip(less_safe)
                .map(|(s, u)| if u > s { 1.0 } else { 0.0 }),
        );
        let responses: Vec<(f32, bool)> = safer
            .iter()
            .zip(labels.safer_is_safe())
            .chain(less_safe.iter().zip(labels.less_safe_is_safe()))
            .filter_map(|(&c, l)| l.map(|is_safe| (c, is_safe)))
            .collect();
        let (labelled, sign_accuracy) = mean(responses.iter().map(|&(c, is_safe)| {
            if Cost::is_safe(c) == is_safe {
                1.0
            } else {
                0.0
            }
        }));
        let (safe, mean_safe_cost) = mean(responses.iter().filter(|r| r.1).map(|r| r.0));
        let (unsafe_, mean_unsafe_cost) = mean(responses.iter().filter(|r| !r.1).map(|r| r.0));
        CostMetrics {
            pairs,
            loss,
            pair_accuracy,
            labelled,
            sign_accuracy,
            safe,
            mean_safe_cost,
            unsafe_,
            mean_unsafe_cost,
            mean_safer: mean(safer.iter().copied()).1,
            mean_less_safe: mean(less_safe.iter().copied()).1,
        }
    }

    /// The metrics of both sets together (each mean weighted by its own count).
    pub fn merge(&self, other: &Self) -> Self {
        let (a, b) = (self, other);
        let (np, nq) = (a.pairs, b.pairs);
        CostMetrics {
            pairs: np + nq,
            loss: merge_mean(a.loss, np, b.loss, nq),
            pair_accuracy: merge_mean(a.pair_accuracy, np, b.pair_accuracy, nq),
            labelled: a.labelled + b.labelled,
            sign_accuracy: merge_mean(a.sign_accuracy, a.labelled, b.sign_accuracy, b.labelled),
            safe: a.safe + b.safe,
            mean_safe_cost: merge_mean(a.mean_safe_cost, a.safe, b.mean_safe_cost, b.safe),
            unsafe_: a.unsafe_ + b.unsafe_,
            mean_unsafe_cost: merge_mean(
                a.mean_unsafe_cost,
                a.unsafe_,
                b.mean_unsafe_cost,
                b.unsafe_,
            ),
            mean_safer: merge_mean(a.mean_safer, np, b.mean_safer, nq),
            mean_less_safe: merge_mean(a.mean_less_safe, np, b.mean_less_safe, nq),
        }
    }
}

/// SFT metrics over a set of response tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SftMetrics {
    /// Number of predicted response tokens.
    pub tokens: usize,
    /// Mean negative log-likelihood per response token (nats).
    pub loss: f64,
    /// Per-token perplexity, `exp(loss)`.
    pub perplexity: f64,
}

impl SftMetrics {
    /// Metrics from a token-mean loss ([`sft_loss`]) over `tokens` response tokens.
    pub fn new(loss: f64, tokens: usize) -> Self {
        SftMetrics {
            tokens,
            loss,
            perplexity: loss.exp(),
        }
    }

    /// Both sets together (token-weighted, so the loss stays a per-token mean).
    pub fn merge(&self, other: &Self) -> Self {
        Self::new(
            merge_mean(self.loss, self.tokens, other.loss, other.tokens),
            self.tokens + other.tokens,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::{AdamWConfig, GradientsParams};
    use saferlhf_model::{CostModel, LlamaConfig};

    const TOL: f32 = 1e-5;

    fn t1(v: &[f32], device: &Device) -> Tensor<1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
    }

    #[test]
    fn neg_log_sigmoid_gradient_is_minus_sigma_of_minus_x_even_at_zero() {
        let device = Device::flex().autodiff();
        let xs = [0.0f32, 0.0, -3.0, 2.5, 40.0, -40.0];
        let x = t1(&xs, &device).require_grad();
        let y = neg_log_sigmoid(x.clone());
        let values = to_host(&y);
        let grads = y.sum().backward();
        let g = x
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (i, &v) in xs.iter().enumerate() {
            let sigma_neg = 1.0 / (1.0 + (v as f64).exp());
            let want = -sigma_neg;
            assert!(
                (g[i] as f64 - want).abs() < 1e-6,
                "x {v}: grad {} want {want}",
                g[i]
            );
            let loss = (1.0 + (-(v as f64)).exp()).ln();
            assert!(
                ((values[i] as f64) - loss).abs() < 1e-5 * loss.max(1.0),
                "x {v}"
            );
        }
    }

    fn scalar(t: Tensor<1>) -> f32 {
        to_host(&t)[0]
    }

    fn close(a: f32, b: f32) {
        assert!((a - b).abs() < TOL, "{a} vs {b}");
    }

    /// -log σ(x) computed in f64 on the host.
    fn nls(x: f64) -> f64 {
        (1.0 + (-x).exp()).ln()
    }

    #[test]
    fn neg_log_sigmoid_is_exact_and_stable() {
        let d = Device::flex();
        let v = to_host(&neg_log_sigmoid(t1(
            &[0.0, 1.0, -1.0, 100.0, -100.0, 20.0],
            &d,
        )));
        close(v[0], std::f32::consts::LN_2); // log 2 = 0.693147
        close(v[1], 0.313_261_7); // log(1 + e^-1)
        close(v[2], 1.313_261_7); // 1 + log(1 + e^-1)
        close(v[3], 0.0); // e^-100 underflows harmlessly
        close(v[4], 100.0); // no overflow: 100 + log1p(e^-100)
        close(v[5], 2.061_153_6e-9);
    }

    #[test]
    fn reward_loss_matches_hand_computation() {
        let d = Device::flex();
        // Pairs (r_w, r_l): (1.0, 0.0), (0.5, 1.5).
        // BT: [-log σ(1) + -log σ(-1)] / 2 = [0.3132617 + 1.3132617] / 2 = 0.8132617.
        let better = t1(&[1.0, 0.5], &d);
        let worse = t1(&[0.0, 1.5], &d);
        close(
            scalar(reward_loss(better.clone(), worse.clone(), 0.0)),
            0.813_261_7,
        );
        // L2: mean of the squares of [1, 0.5, 0, 1.5] = (1 + 0.25 + 0 + 2.25) / 4 = 0.875;
        // η = 0.001 adds 0.000875.
        close(scalar(score_l2(better.clone(), worse.clone())), 0.875);
        close(
            scalar(reward_loss(better, worse, DEFAULT_REGULARIZATION)),
            0.813_261_7 + 0.000_875,
        );
    }

    #[test]
    fn cost_loss_matches_hand_computation() {
        let d = Device::flex();
        // Pair 1: safer c_s = -1 (safe), less safe c_u = 2 (unsafe).
        //   BT -log σ(3) = 0.0485874;
        //   sign terms -log σ(-1·-1) = 0.3132617, -log σ(+1·2) = 0.1269280
        //   -> 0.4887771
        // Pair 2: c_s = 0.5 (safe), c_u = 0 (safe).
        //   BT -log σ(-0.5) = 0.9740770; -log σ(-0.5) = 0.9740770; -log σ(0) = 0.6931472
        //   -> 2.6413012
        // Pair 3 (unlabelled, HH-RLHF): c_s = 1, c_u = 1: BT only, -log σ(0) = 0.6931472
        // Mean over 3 pairs: (0.4887771 + 2.6413012 + 0.6931472) / 3 = 1.2744085.
        let labels = SafetyLabels::new(
            &[Some(true), Some(true), None],
            &[Some(false), Some(true), None],
            &d,
        );
        let safer = t1(&[-1.0, 0.5, 1.0], &d);
        let less_safe = t1(&[2.0, 0.0, 1.0], &d);
        close(
            scalar(cost_loss(safer.clone(), less_safe.clone(), &labels, 0.0)),
            1.274_408_5,
        );
        // L2: squares [1, 0.25, 1, 4, 0, 1] mean 7.25 / 6 = 1.2083333; η = 0.001.
        close(
            scalar(cost_loss(safer.clone(), less_safe.clone(), &labels, 0.001)),
            1.274_408_5 + 0.001_208_333,
        );
        // Without any label the loss is the reward (Bradley-Terry) loss on (c_u, c_s).
        let none = SafetyLabels::unlabelled(3, &d);
        close(
            scalar(cost_loss(safer.clone(), less_safe.clone(), &none, 0.001)),
            scalar(reward_loss(less_safe, safer, 0.001)),
        );
        // The f64 reference of pair 2, as a check on the constants above.
        let p2 = nls(-0.5) + nls(-0.5) + nls(0.0);
        close(p2 as f32, 2.641_301_2);
    }

    #[test]
    fn masked_mean_is_per_sequence_then_batch() {
        let d = Device::flex();
        // Row 0: [1, 2, 3] all valid -> 2; row 1: [4, NaN, inf] only the first valid -> 4;
        // row 2: nothing valid -> left out. Result (2 + 4) / 2 = 3 (a token mean would be 2.5).
        let x = Tensor::<2>::from_data(
            TensorData::new(
                vec![
                    1.0f32,
                    2.0,
                    3.0,
                    4.0,
                    f32::NAN,
                    f32::INFINITY,
                    7.0,
                    8.0,
                    9.0,
                ],
                [3, 3],
            ),
            &d,
        );
        let mask = Tensor::<2, Bool>::from_data(
            TensorData::new(
                vec![true, true, true, true, false, false, false, false, false],
                [3, 3],
            ),
            &d,
        );
        close(scalar(masked_mean(x.clone(), mask.clone())), 3.0);
        let none = mask.clone().bool_and(mask.bool_not());
        close(scalar(masked_mean(x, none)), 0.0);
    }

    #[test]
    fn sft_loss_counts_response_tokens_only() {
        let d = Device::flex();
        // Vocab 3, one row of 3 tokens [0, 1, 2]; logits rows (position 0, 1, 2):
        //   pos 0: [0, 0, 0]      -> log p(token 1) = -log 3 = -1.0986123
        //   pos 1: [0, 0, ln 2]   -> log p(token 2) = ln 2 - ln 4 = -0.6931472
        //   pos 2: anything (predicts nothing)
        // Mask [prompt, response, response]: both predictions count -> (1.0986123 + 0.6931472)/2
        // = 0.8958797. Mask [prompt, prompt, response]: only the second -> 0.6931472.
        let ln2 = std::f32::consts::LN_2;
        let logits = Tensor::<3>::from_data(
            TensorData::new(
                vec![0.0, 0.0, 0.0, 0.0, 0.0, ln2, 5.0, -5.0, 9.0],
                [1, 3, 3],
            ),
            &d,
        );
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 1, 2], [1, 3]), &d);
        let mask =
            |m: [bool; 3]| Tensor::<2, Bool>::from_data(TensorData::new(m.to_vec(), [1, 3]), &d);
        close(
            scalar(sft_loss(
                logits.clone(),
                tokens.clone(),
                mask([false, true, true]),
            )),
            0.895_879_7,
        );
        close(
            scalar(sft_loss(
                logits.clone(),
                tokens.clone(),
                mask([false, false, true]),
            )),
            ln2, // ln 2 - ln 4 = -ln 2
        );
        // No response token: 0, not NaN.
        close(
            scalar(sft_loss(logits, tokens, mask([true, false, false]))),
            0.0,
        );
        let m = SftMetrics::new(std::f64::consts::LN_2, 2);
        assert!((m.perplexity - 2.0).abs() < 1e-6);
        let merged = m.merge(&SftMetrics::new(0.0, 2));
        assert_eq!(merged.tokens, 4);
        assert!((merged.loss - 0.346_573_6).abs() < 1e-6);
    }

    #[test]
    fn metrics_follow_their_definitions() {
        let d = Device::flex();
        let r = RewardMetrics::new(&[1.0, 0.5, 2.0, 0.0], &[0.0, 1.5, 1.0, 0.0], 0.7);
        assert_eq!(r.pairs, 4);
        assert_eq!(r.accuracy, 0.5); // ties do not count
        assert!((r.mean_better - 0.875).abs() < 1e-9 && (r.mean_worse - 0.625).abs() < 1e-9);
        let merged = r.merge(&RewardMetrics::new(&[1.0], &[0.0], 0.2));
        assert_eq!(merged.pairs, 5);
        assert!((merged.accuracy - 0.6).abs() < 1e-9 && (merged.loss - 0.6).abs() < 1e-9);

        // Safer [-1 (safe), 0.5 (safe), 1 (unlabelled)], less safe [2 (unsafe), 0 (safe),
        // 1 (unlabelled)]. Pair accuracy: 2 > -1 yes, 0 > 0.5 no, 1 > 1 no -> 1/3.
        // Labelled responses: (-1, safe) ok, (0.5, safe) wrong, (2, unsafe) ok, (0, safe) ok
        // (C = 0 counts as safe) -> 3/4. Safe costs -1, 0.5, 0 -> mean -1/6; unsafe 2.
        let labels = SafetyLabels::new(
            &[Some(true), Some(true), None],
            &[Some(false), Some(true), None],
            &d,
        );
        let c = CostMetrics::new(&[-1.0, 0.5, 1.0], &[2.0, 0.0, 1.0], &labels, 1.0);
        assert_eq!((c.pairs, c.labelled, c.safe, c.unsafe_), (3, 4, 3, 1));
        assert!((c.pair_accuracy - 1.0 / 3.0).abs() < 1e-9);
        assert!((c.sign_accuracy - 0.75).abs() < 1e-9);
        assert!((c.mean_safe_cost + 1.0 / 6.0).abs() < 1e-9);
        assert!((c.mean_unsafe_cost - 2.0).abs() < 1e-9);
        let none = CostMetrics::new(&[0.0], &[1.0], &SafetyLabels::unlabelled(1, &d), 0.3);
        let merged = c.merge(&none);
        assert_eq!((merged.pairs, merged.labelled), (4, 4));
        assert!((merged.sign_accuracy - 0.75).abs() < 1e-9);
        assert!((merged.pair_accuracy - 0.5).abs() < 1e-9);
    }

    /// Gradients of `loss(x)` at the leaf `x`.
    fn grad_of(x: &[f32], loss: impl Fn(Tensor<1>) -> Tensor<1>) -> Vec<f32> {
        let d = Device::flex().autodiff();
        let x = t1(x, &d).require_grad();
        let grads = loss(x.clone()).backward();
        to_host(&x.grad(&grads).expect("gradient of the leaf"))
    }

    #[test]
    fn bradley_terry_step_widens_the_margin() {
        // x = [r_w, r_l]; one SGD step x - lr·∇ must raise r_w - r_l.
        let g = grad_of(&[0.2, 0.7], |x| {
            reward_loss(
                x.clone().narrow(0, 0, 1),
                x.narrow(0, 1, 1),
                DEFAULT_REGULARIZATION,
            )
        });
        assert!(g[0] < 0.0 && g[1] > 0.0, "{g:?}");
        // ∂/∂r_w of -log σ(r_w - r_l) = -σ(r_l - r_w) = -σ(0.5) = -0.6224593; the L2 term
        // η·(r_w² + r_l²)/2 (mean over the 2 stacked scores) adds η·r_w = 0.001 · 0.2.
        close(g[0], -0.622_459_3 + 0.000_2);
        close(g[1], 0.622_459_3 + 0.000_7);
    }

    #[test]
    fn cost_step_moves_safe_down_and_unsafe_up() {
        // Both responses of the pair labelled safe: the sign term pushes both costs down,
        // the Bradley-Terry term pushes the less-safe one up. With the less-safe cost already far
        // above the safer one, BT is weak and the sign term dominates for both.
        let d = Device::flex().autodiff();
        let both_safe = SafetyLabels::labelled(&[true], &[true], &d);
        let g = grad_of(&[0.5, 5.0], |x| {
            cost_loss(
                x.clone().narrow(0, 0, 1),
                x.narrow(0, 1, 1),
                &both_safe,
                0.0,
            )
        });
        assert!(g[0] > 0.0 && g[1] > 0.0, "safe costs must go down: {g:?}");
        // Both unsafe: both go up (the safer one too, even though BT pulls it down a little).
        let both_unsafe = SafetyLabels::labelled(&[false], &[false], &d);
        let g = grad_of(&[-5.0, -0.5], |x| {
            cost_loss(
                x.clone().narrow(0, 0, 1),
                x.narrow(0, 1, 1),
                &both_unsafe,
                0.0,
            )
        });
        assert!(g[0] < 0.0 && g[1] < 0.0, "unsafe costs must go up: {g:?}");
        // Safe vs unsafe with the order wrong: safer goes down, less-safe goes up.
        let mixed = SafetyLabels::labelled(&[true], &[false], &d);
        let g = grad_of(&[0.3, -0.3], |x| {
            cost_loss(
                x.clone().narrow(0, 0, 1),
                x.narrow(0, 1, 1),
                &mixed,
                DEFAULT_REGULARIZATION,
            )
        });
        assert!(g[0] > 0.0 && g[1] < 0.0, "{g:?}");
        // By hand (η = 0.001), at c_s = 0.3, c_u = -0.3:
        //   BT -log σ(c_u - c_s):      ∂/∂c_s = σ(c_s - c_u) = σ(0.6) = 0.6456563
        //   safe sign -log σ(-c_s):    ∂/∂c_s = σ(c_s) = σ(0.3) = 0.5744425
        //   L2 η·(c_s² + c_u²)/2:      ∂/∂c_s = η·c_s = 0.0003
        // and the mirror image for c_u (unsafe sign term -log σ(c_u)). Total ±1.2203988.
        close(g[0], 0.645_656_3 + 0.574_442_5 + 0.000_3);
        close(g[1], -(0.645_656_3 + 0.574_442_5) - 0.000_3);
        // Unlabelled pair: only BT, which moves the pair apart symmetrically.
        let none = SafetyLabels::unlabelled(1, &d);
        let g = grad_of(&[0.3, -0.3], |x| {
            cost_loss(x.clone().narrow(0, 0, 1), x.narrow(0, 1, 1), &none, 0.0)
        });
        close(g[0], 0.645_656_3);
        close(g[1], -0.645_656_3);
    }

    fn tiny_config() -> LlamaConfig {
        LlamaConfig::micro(32)
    }

    fn batch(rows: &[Vec<i64>], device: &Device) -> (Tensor<2, Int>, Tensor<2, Bool>) {
        let l = rows[0].len();
        let flat: Vec<i64> = rows.iter().flatten().copied().collect();
        let mask: Vec<bool> = flat.iter().map(|&t| t != 0).collect();
        (
            Tensor::from_data(TensorData::new(flat, [rows.len(), l]), device),
            Tensor::from_data(TensorData::new(mask, [rows.len(), l]), device),
        )
    }

    #[test]
    fn cost_loss_sign_terms_separate_safe_and_unsafe_on_a_tiny_model() {
        let device = Device::flex().autodiff();
        device.seed(7);
        let mut model = CostModel::new(&tiny_config(), &device);
        // Prompt tokens 1..=4, then a response; a response holding a token >= 24 is unsafe.
        // Rows are left- and right-padded (0 = pad) to exercise the end-score gather.
        let safer: Vec<Vec<i64>> = vec![
            vec![0, 0, 1, 2, 5, 6],
            vec![3, 4, 7, 8, 9, 0],
            vec![0, 2, 3, 10, 11, 12],
            vec![1, 4, 13, 14, 0, 0],
        ];
        let less_safe: Vec<Vec<i64>> = vec![
            vec![0, 0, 1, 2, 24, 6],
            vec![3, 4, 7, 25, 9, 0],
            vec![0, 2, 3, 10, 26, 27],
            vec![1, 4, 28, 14, 0, 0],
        ];
        let labels = SafetyLabels::labelled(&[true; 4], &[false; 4], &device);
        let rows: Vec<Vec<i64>> = safer.iter().chain(&less_safe).cloned().collect();
        let (tokens, mask) = batch(&rows, &device);
        let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
        for _ in 0..40 {
            let out = model.forward(tokens.clone(), mask.clone());
            let safer_costs = out.end_scores.clone().narrow(0, 0, 4);
            let less_safe_costs = out.end_scores.narrow(0, 4, 4);
            let loss = cost_loss(
                safer_costs,
                less_safe_costs,
                &labels,
                DEFAULT_REGULARIZATION,
            );
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(3e-3, model, grads);
        }
        let costs = model.forward(tokens, mask).end_scores_vec();
        let (safe, unsafe_) = costs.split_at(4);
        assert!(
            safe.iter().all(|&c| Cost::is_safe(c) && c < 0.0)
                && unsafe_.iter().all(|&c| Cost::is_unsafe(c)),
            "safe {safe:?} unsafe {unsafe_:?}"
        );
        let metrics = CostMetrics::new(safe, unsafe_, &labels, 0.0);
        assert_eq!((metrics.sign_accuracy, metrics.pair_accuracy), (1.0, 1.0));
    }
}

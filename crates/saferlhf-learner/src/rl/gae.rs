//! Host-side advantage machinery of the PPO family (Safe RLHF; GAE: Schulman et al., arXiv 1506.02438): the KL-shaped
//! reward and cost token streams, and generalised advantage estimation on each.
//!
//! Everything here works on row-major `[batch, width]` arrays of per-token values, where
//! `width = sequence length - 1` and element `[b, t]` belongs to the action that produced token
//! `t + 1` (the shifted layout of `token_logprobs`). `mask[b, t]` is true where token `t + 1` is
//! a generated (response) token; prompts are left-padded, so every row's actions start at the
//! same index `start = prompt_len - 1`, and a row that stopped early has `false` after its
//! stop token. The terminal score goes to each row's last masked position.
//!
//! These are small (batch × response length) and run once per rollout, so they are plain Rust
//! on the host: exact, easy to test against hand-computed values, identical on every device.

/// A `[batch, width]` array of per-token values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenArray {
    /// The values, `batch * width` of them.
    pub values: Vec<f32>,
    /// Rows.
    pub batch: usize,
    /// Columns.
    pub width: usize,
}

impl TokenArray {
    /// All zeros.
    pub fn zeros(batch: usize, width: usize) -> Self {
        TokenArray {
            values: vec![0.0; batch * width],
            batch,
            width,
        }
    }

    /// Wraps `values` (`batch * width` of them).
    pub fn new(values: Vec<f32>, batch: usize, width: usize) -> Self {
        assert_eq!(values.len(), batch * width, "token array shape");
        TokenArray {
            values,
            batch,
            width,
        }
    }

    /// Row `b`.
    pub fn row(&self, b: usize) -> &[f32] {
        &self.values[b * self.width..(b + 1) * self.width]
    }

    fn row_mut(&mut self, b: usize) -> &mut [f32] {
        &mut self.values[b * self.width..(b + 1) * self.width]
    }
}

/// The last masked index of each row (`None` for a row without actions).
pub fn end_indices(mask: &[bool], batch: usize, width: usize) -> Vec<Option<usize>> {
    (0..batch)
        .map(|b| mask[b * width..(b + 1) * width].iter().rposition(|&m| m))
        .collect()
}

/// The KL-shaped token stream of one score, as safe-rlhf forms it:
///
/// `s[b, t] = sign · β · k[b, t] + score[b] · [t = end_b]`, clipped to `[-clip, clip]`, 0 where
/// the mask is false, with `k = log π_old - log π_ref` (the per-token KL estimate).
///
/// The reward stream uses `sign = -1` (a KL penalty); the cost stream `sign = +1`, so that in
/// `(A_R - λ·A_C) / (1 + λ)` the KL parts add up to `-β·k` whatever λ is.
// ANCHOR: kl_shaped_stream
pub fn kl_shaped_stream(
    scores: &[f32],
    old_logprobs: &TokenArray,
    ref_logprobs: &TokenArray,
    mask: &[bool],
    kl_coeff: f32,
    sign: f32,
    clip: f32,
) -> TokenArray {
    let (batch, width) = (old_logprobs.batch, old_logprobs.width);
    let ends = end_indices(mask, batch, width);
    let mut out = TokenArray::zeros(batch, width);
    for b in 0..batch {
        let old = old_logprobs.row(b);
        let reference = ref_logprobs.row(b);
        let m = &mask[b * width..(b + 1) * width];
        let row = out.row_mut(b);
        for t in 0..width {
            if !m[t] {
                continue;
            }
            let mut v = sign * kl_coeff * (old[t] - reference[t]);
            if ends[b] == Some(t) {
                v += scores[b];
            }
            row[t] = v.clamp(-clip, clip);
        }
    }
    out
}
// ANCHOR_END: kl_shaped_stream

/// Advantages and returns of one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Gae {
    /// `A[b, t]`, 0 outside the mask.
    pub advantages: TokenArray,
    /// `A[b, t] + V[b, t]`, the critic's regression target.
    pub returns: TokenArray,
}

/// Generalised advantage estimation (Schulman et al., arXiv 1506.02438), per row, from the last column down to
/// `start`:
///
/// `δ_t = r_t + γ·V_{t+1} - V_t`, `A_t = δ_t + γ·λ·A_{t+1}`, `Ret_t = A_t + V_t`,
///
/// with rewards and values zeroed where the mask is false (so `V` after a row's end is 0) and
/// `V_width = 0`. No whitening, as in safe-rlhf.
// ANCHOR: gae
pub fn gae(
    rewards: &TokenArray,
    values: &TokenArray,
    mask: &[bool],
    start: usize,
    gamma: f32,
    lambda: f32,
) -> Gae {
    let (batch, width) = (rewards.batch, rewards.width);
    let mut advantages = TokenArray::zeros(batch, width);
    let mut returns = TokenArray::zeros(batch, width);
    for b in 0..batch {
        let m = &mask[b * width..(b + 1) * width];
        let r = rewards.row(b);
        let v = values.row(b);
        let value = |t: usize| if m[t] { v[t] } else { 0.0 };
        let reward = |t: usize| if m[t] { r[t] } else { 0.0 };
        let mut running = 0.0f32;
        let adv = advantages.row_mut(b);
        for t in (start.min(width)..width).rev() {
            let next = if t + 1 < width { value(t + 1) } else { 0.0 };
            let delta = reward(t) + gamma * next - value(t);
            running = delta + gamma * lambda * running;
            adv[t] = running;
        }
        let ret = returns.row_mut(b);
        for t in 0..width {
            if m[t] {
                ret[t] = adv[t] + value(t);
            } else {
                adv[t] = 0.0;
            }
        }
    }
    Gae {
        advantages,
        returns,
    }
}
// ANCHOR_END: gae

/// `w_R[b] · A_R[b, t] - w_C[b] · A_C[b, t]`: the objective's combined advantage.
pub fn combine(
    reward: &TokenArray,
    cost: Option<&TokenArray>,
    reward_weight: &[f32],
    cost_weight: &[f32],
) -> TokenArray {
    let mut out = reward.clone();
    for b in 0..reward.batch {
        let wr = reward_weight[b];
        let wc = cost_weight[b];
        let row = out.row_mut(b);
        for (t, a) in row.iter_mut().enumerate() {
            *a *= wr;
            if let Some(c) = cost {
                *a -= wc * c.row(b)[t];
            }
        }
    }
    out
}

/// Explained variance `1 - Var(Ret - V) / Var(Ret)` over masked tokens (NaN when Var(Ret) = 0).
pub fn explained_variance(values: &TokenArray, returns: &TokenArray, mask: &[bool]) -> f64 {
    let mut n = 0f64;
    let (mut sr, mut srr, mut sd, mut sdd) = (0f64, 0f64, 0f64, 0f64);
    for (i, &m) in mask.iter().enumerate() {
        if m {
            let r = returns.values[i] as f64;
            let d = r - values.values[i] as f64;
            n += 1.0;
            sr += r;
            srr += r * r;
            sd += d;
            sdd += d * d;
        }
    }
    if n < 2.0 {
        return f64::NAN;
    }
    let var_r = srr / n - (sr / n).powi(2);
    let var_d = sdd / n - (sd / n).powi(2);
    if var_r <= 0.0 {
        f64::NAN
    } else {
        1.0 - var_d / var_r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-5, "index {i}: {x} vs {y}\n{a:?}\n{b:?}");
        }
    }

    // Two rows, width 5, prompt_len 2 (start = 1). Row 0 generated 4 tokens (t = 1..=4), row 1
    // stopped after 2 (t = 1, 2); t = 0 is a prompt position in both.
    fn mask() -> Vec<bool> {
        vec![
            false, true, true, true, true, //
            false, true, true, false, false,
        ]
    }

    #[test]
    fn kl_shaped_streams_by_hand() {
        let old = TokenArray::new(
            vec![9.0, -1.0, -2.0, -1.0, -0.5, 9.0, -1.0, -3.0, 7.0, 7.0],
            2,
            5,
        );
        let reference = TokenArray::new(
            vec![0.0, -1.5, -1.0, -1.0, -1.5, 0.0, -2.0, -1.0, 0.0, 0.0],
            2,
            5,
        );
        // k = old - ref at masked positions: row 0: 0.5, -1, 0, 1; row 1: 1, -2.
        let r = kl_shaped_stream(&[2.0, -1.0], &old, &reference, &mask(), 0.1, -1.0, 50.0);
        // Row 0: -0.1·k, plus R = 2 at t = 4: -0.05, 0.1, 0, -0.1 + 2.
        // Row 1: -0.1, 0.2 - 1 (end at t = 2).
        close(
            &r.values,
            &[0.0, -0.05, 0.1, 0.0, 1.9, 0.0, -0.1, -0.8, 0.0, 0.0],
        );
        let c = kl_shaped_stream(&[0.5, 3.0], &old, &reference, &mask(), 0.1, 1.0, 2.5);
        // Row 0: 0.05, -0.1, 0, 0.1 + 0.5. Row 1: 0.1, -0.2 + 3 = 2.8, clipped to 2.5.
        close(
            &c.values,
            &[0.0, 0.05, -0.1, 0.0, 0.6, 0.0, 0.1, 2.5, 0.0, 0.0],
        );
    }

    #[test]
    fn gae_by_hand_with_early_stop() {
        let rewards = TokenArray::new(
            vec![0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.5, -1.0, 5.0, 5.0],
            2,
            5,
        );
        // Values at masked-out positions (and the prompt) must be ignored.
        let values = TokenArray::new(
            vec![7.0, 0.5, 0.25, 0.5, 1.0, 7.0, 1.0, 0.0, 9.0, 9.0],
            2,
            5,
        );
        let g = gae(&rewards, &values, &mask(), 1, 1.0, 0.5);
        // Row 0 (γ = 1, λ = 0.5):
        //   t=4: δ = 1 + 0 - 1 = 0, A = 0
        //   t=3: δ = 0 + 1 - 0.5 = 0.5, A = 0.5 + 0.5·0 = 0.5
        //   t=2: δ = 0 + 0.5 - 0.25 = 0.25, A = 0.25 + 0.25 = 0.5
        //   t=1: δ = 0 + 0.25 - 0.5 = -0.25, A = -0.25 + 0.25 = 0
        // Row 1 (ends at t = 2; V_3 = 0 because it is masked):
        //   t=4, t=3: δ = 0, A = 0
        //   t=2: δ = -1 + 0 - 0 = -1, A = -1
        //   t=1: δ = 0.5 + 0 - 1 = -0.5, A = -0.5 - 0.5 = -1
        close(
            &g.advantages.values,
            &[0.0, 0.0, 0.5, 0.5, 0.0, 0.0, -1.0, -1.0, 0.0, 0.0],
        );
        // Returns = A + V on masked tokens.
        close(
            &g.returns.values,
            &[0.0, 0.5, 0.75, 1.0, 1.0, 0.0, 0.0, -1.0, 0.0, 0.0],
        );
    }

    #[test]
    fn gae_with_gamma_below_one() {
        let rewards = TokenArray::new(vec![0.0, 1.0, 2.0], 1, 3);
        let values = TokenArray::new(vec![0.0, 0.0, 0.0], 1, 3);
        let g = gae(&rewards, &values, &[true, true, true], 0, 0.5, 1.0);
        // t=2: A = 2; t=1: 1 + 0.5·2 = 2; t=0: 0 + 0.5·2 = 1.
        close(&g.advantages.values, &[1.0, 2.0, 2.0]);
    }

    #[test]
    fn combine_and_explained_variance() {
        let a_r = TokenArray::new(vec![1.0, 2.0, 3.0, 4.0], 2, 2);
        let a_c = TokenArray::new(vec![1.0, 1.0, -1.0, 2.0], 2, 2);
        let a = combine(&a_r, Some(&a_c), &[0.5, 1.0], &[0.5, 0.0]);
        close(&a.values, &[0.0, 0.5, 3.0, 4.0]);
        let m = [true, true, true, true];
        let perfect = explained_variance(&a_r, &a_r, &m);
        assert!((perfect - 1.0).abs() < 1e-12);
        // V = 0: Var(Ret - V) = Var(Ret): 0.
        let zero = explained_variance(&TokenArray::zeros(2, 2), &a_r, &m);
        assert!(zero.abs() < 1e-12);
    }
}

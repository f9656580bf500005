//! Prompt + response rows laid out as one batch for scoring and training: prompts left-padded
//! to a common width, responses right-padded after them. This is the layout every consumer of
//! a rollout uses (the RL learner's experience, policy evaluation, sequence KL).

/// A padded batch of prompt + response rows, row-major on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct PaddedBatch {
    /// Token ids `[batch, seq]`.
    pub tokens: Vec<i64>,
    /// Real tokens `[batch, seq]`.
    pub attention: Vec<bool>,
    /// Action mask `[batch, seq - 1]`: true at `t` where token `t + 1` is a response token
    /// (the layout of `token_logprobs`).
    pub mask: Vec<bool>,
    /// Rows.
    pub batch: usize,
    /// Sequence length (`prompt_len` + the longest response, at least 1).
    pub seq: usize,
    /// Width of the left-padded prompt block (the first response token is at `prompt_len`).
    pub prompt_len: usize,
    /// Response lengths in tokens.
    pub lengths: Vec<usize>,
}

impl PaddedBatch {
    /// Lays out `rows` of `(prompt, response)` ids with `pad` in the padding.
    pub fn new(rows: &[(Vec<u32>, Vec<u32>)], pad: u32) -> Self {
        let batch = rows.len();
        let prompt_len = rows.iter().map(|(p, _)| p.len()).max().unwrap_or(1);
        let resp_len = rows.iter().map(|(_, r)| r.len()).max().unwrap_or(1).max(1);
        let seq = prompt_len + resp_len;
        let width = seq - 1;
        let mut tokens = vec![pad as i64; batch * seq];
        let mut attention = vec![false; batch * seq];
        let mut mask = vec![false; batch * width];
        let mut lengths = Vec::with_capacity(batch);
        for (b, (p, resp)) in rows.iter().enumerate() {
            let offset = prompt_len - p.len();
            for (i, &t) in p.iter().enumerate() {
                tokens[b * seq + offset + i] = t as i64;
                attention[b * seq + offset + i] = true;
            }
            for (i, &t) in resp.iter().enumerate() {
                tokens[b * seq + prompt_len + i] = t as i64;
                attention[b * seq + prompt_len + i] = true;
                mask[b * width + prompt_len + i - 1] = true;
            }
            lengths.push(resp.len());
        }
        PaddedBatch {
            tokens,
            attention,
            mask,
            batch,
            seq,
            prompt_len,
            lengths,
        }
    }

    /// `seq - 1`: the width of per-token arrays.
    pub fn width(&self) -> usize {
        self.seq - 1
    }
}

/// Sequence-level KL of each row, `Σ_t mask[t] · (logp[t] − ref_logp[t])` summed in f64 over
/// its response tokens: per-token arrays `[batch, width]` in the layout of [`PaddedBatch::mask`].
pub fn sequence_kl(mask: &[bool], width: usize, logp: &[f32], ref_logp: &[f32]) -> Vec<f64> {
    let batch = mask.len().checked_div(width).unwrap_or(0);
    (0..batch)
        .map(|b| {
            (0..width)
                .filter(|&t| mask[b * width + t])
                .map(|t| (logp[b * width + t] - ref_logp[b * width + t]) as f64)
                .sum()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_left_padded_responses_right_padded() {
        let rows = vec![(vec![5, 6], vec![7]), (vec![8], vec![9, 10])];
        let b = PaddedBatch::new(&rows, 0);
        assert_eq!((b.batch, b.seq, b.prompt_len), (2, 4, 2));
        assert_eq!(b.tokens, vec![5, 6, 7, 0, 0, 8, 9, 10]);
        assert_eq!(
            b.attention,
            vec![true, true, true, false, false, true, true, true]
        );
        assert_eq!(b.mask, vec![false, true, false, false, true, true]);
        assert_eq!(b.lengths, vec![1, 2]);
    }

    #[test]
    fn sequence_kl_sums_response_tokens_only() {
        let mask = [false, true, true, true, false, false];
        let logp = [-9.0, -1.0, -2.0, -0.5, -9.0, -9.0];
        let ref_logp = [0.0, -1.5, -1.0, -0.25, 0.0, 0.0];
        assert_eq!(sequence_kl(&mask, 3, &logp, &ref_logp), vec![-0.5, -0.25]);
    }
}

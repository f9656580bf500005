//! Next-token samplers. Everything that touches the vocabulary axis runs on the device; the host
//! supplies one uniform number per row (from a seeded ChaCha stream, so a seed fixes the tokens)
//! and reads back only the chosen ids.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How the next token is chosen from the logits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sampler {
    /// The most likely token.
    Greedy,
    /// A draw from softmax(logits / temperature), optionally restricted to the `top_k` most
    /// likely tokens and/or the smallest set whose probability reaches `top_p` (nucleus).
    Sample {
        /// Softmax temperature (> 0).
        temperature: f32,
        /// Keep only the k most likely tokens (None: no limit).
        top_k: Option<usize>,
        /// Keep the smallest prefix of tokens, by probability, whose mass reaches p (None or 1.0:
        /// no limit).
        top_p: Option<f32>,
    },
}

impl Sampler {
    /// Plain sampling at temperature 1 (the RLHF default: log-probs are the policy's own).
    pub fn multinomial() -> Self {
        Sampler::Sample {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        }
    }

    /// Checks the parameters; the error names the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        if let Sampler::Sample {
            temperature,
            top_k,
            top_p,
        } = *self
        {
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(format!("temperature must be > 0, got {temperature}"));
            }
            if top_k == Some(0) {
                return Err("top_k must be at least 1".into());
            }
            if let Some(p) = top_p
                && !(p > 0.0 && p <= 1.0)
            {
                return Err(format!("top_p must be in (0, 1], got {p}"));
            }
        }
        Ok(())
    }
}

/// Chooses one token per row of `logits` [batch, vocab].
///
/// Returns the ids `[batch]` and their log-probabilities `[batch]` under the temperature-scaled
/// model distribution before any top-k/top-p truncation (for greedy: under the plain softmax).
pub fn sample_next(
    logits: Tensor<2>,
    sampler: &Sampler,
    rng: &mut ChaCha8Rng,
) -> (Tensor<1, Int>, Tensor<1>) {
    let [batch, vocab] = logits.dims();
    let device = logits.device();
    let (ids, logp_all) = match *sampler {
        Sampler::Greedy => {
            let ids = logits.clone().argmax(1);
            (ids, log_softmax(logits, 1))
        }
        Sampler::Sample {
            temperature,
            top_k,
            top_p,
        } => {
            let logp_all = log_softmax(logits / temperature, 1);
            let probs = logp_all.clone().exp();
            let top_p = top_p.filter(|p| *p < 1.0);
            let k = top_k.map(|k| k.min(vocab));
            // Candidates [batch, n] and, when truncated, their vocabulary ids.
            let (cand, cand_ids) = match (k, top_p) {
                (None, None) => (probs, None),
                (Some(k), None) => {
                    let (p, i) = probs.topk_with_indices(k, 1);
                    (p, Some(i))
                }
                (k, Some(_)) => {
                    let (p, i) = probs.sort_descending_with_indices(1);
                    let n = k.unwrap_or(vocab);
                    (p.slice([0..batch, 0..n]), Some(i.slice([0..batch, 0..n])))
                }
            };
            let cand = match top_p {
                // Keep a token when the mass strictly before it is below p (the first always is).
                Some(p) => {
                    let before = cand.clone().cumsum(1) - cand.clone();
                    cand.clone() * before.lower_elem(p).float()
                }
                None => cand,
            };
            let n = cand.dims()[1];
            let cdf = cand.cumsum(1);
            let total = cdf.clone().slice([0..batch, n - 1..n]);
            let uniforms: Vec<f32> = (0..batch).map(|_| rng.random::<f32>()).collect();
            let u = Tensor::<2>::from_data(TensorData::new(uniforms, [batch, 1]), &device) * total;
            // Inverse CDF: the first candidate whose cumulative mass exceeds u.
            let pos = cdf
                .lower_equal(u)
                .int()
                .sum_dim(1)
                .clamp_max((n - 1) as i64);
            let ids = match cand_ids {
                Some(cand_ids) => cand_ids.gather(1, pos),
                None => pos,
            };
            (ids, logp_all)
        }
    };
    let ids = ids.reshape([batch, 1]);
    let logp = logp_all.gather(1, ids.clone()).reshape([batch]);
    (ids.reshape([batch]), logp)
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use rand::{RngCore, SeedableRng};

    use super::*;

    /// The distribution every statistical test draws from: p = [0.1, 0.2, 0.3, 0.4].
    const PROBS: [f32; 4] = [0.1, 0.2, 0.3, 0.4];
    /// Draws per statistical test; the binomial standard deviation of a frequency is then at
    /// most 0.0071, so a tolerance of 0.03 is over four standard deviations.
    const DRAWS: usize = 5000;
    const TOL: f64 = 0.03;

    /// `rows` identical rows of logits log(probs), [rows, probs.len()].
    fn logits_of(probs: &[f32], rows: usize) -> Tensor<2> {
        let data: Vec<f32> = (0..rows)
            .flat_map(|_| probs.iter().map(|p| p.ln()))
            .collect();
        Tensor::from_data(TensorData::new(data, [rows, probs.len()]), &Device::flex())
    }

    /// Samples one id per row of `logits`; returns the ids and their log-probs on the host.
    fn draw(logits: Tensor<2>, sampler: &Sampler, rng: &mut ChaCha8Rng) -> (Vec<i64>, Vec<f32>) {
        let batch = logits.dims()[0];
        let (ids, logp) = sample_next(logits, sampler, rng);
        assert_eq!(ids.dims(), [batch]);
        assert_eq!(logp.dims(), [batch]);
        (
            ids.try_into_vec_as::<i64>().unwrap(),
            logp.try_into_vec_as::<f32>().unwrap(),
        )
    }

    /// [`draw`] from [`PROBS`] at T = 1 with `top_k` / `top_p`.
    fn draw_truncated(
        top_k: Option<usize>,
        top_p: Option<f32>,
        rng: &mut ChaCha8Rng,
    ) -> (Vec<i64>, Vec<f32>) {
        draw(logits_of(&PROBS, DRAWS), &sample(1.0, top_k, top_p), rng)
    }

    fn frequencies(ids: &[i64], vocab: usize) -> Vec<f64> {
        let mut counts = vec![0usize; vocab];
        for &id in ids {
            assert!(
                (0..vocab as i64).contains(&id),
                "id {id} outside 0..{vocab}"
            );
            counts[id as usize] += 1;
        }
        counts
            .iter()
            .map(|&c| c as f64 / ids.len() as f64)
            .collect()
    }

    fn assert_frequencies(ids: &[i64], expected: &[f64]) {
        let freq = frequencies(ids, expected.len());
        for (id, (f, e)) in freq.iter().zip(expected).enumerate() {
            if *e == 0.0 {
                assert_eq!(*f, 0.0, "id {id} has probability 0 but was drawn: {freq:?}");
            } else {
                assert!(
                    (f - e).abs() < TOL,
                    "id {id}: frequency {f:.4}, expected {e:.4} (all: {freq:?})"
                );
            }
        }
    }

    fn sample(temperature: f32, top_k: Option<usize>, top_p: Option<f32>) -> Sampler {
        Sampler::Sample {
            temperature,
            top_k,
            top_p,
        }
    }

    /// log_softmax(log(probs) / t) computed on the host in f64.
    fn host_logp(probs: &[f32], t: f64) -> Vec<f64> {
        let z: Vec<f64> = probs.iter().map(|&p| (p as f64).ln() / t).collect();
        let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        z.iter().map(|v| v - lse).collect()
    }

    fn assert_logprobs(ids: &[i64], logp: &[f32], expected: &[f64]) {
        for (row, (&id, &lp)) in ids.iter().zip(logp).enumerate() {
            let e = expected[id as usize];
            assert!(
                (lp as f64 - e).abs() < 1e-5,
                "row {row}: id {id} has log-prob {lp}, expected {e}"
            );
        }
    }

    #[test]
    fn multinomial_matches_the_softmax() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (ids, logp) = draw(logits_of(&PROBS, DRAWS), &Sampler::multinomial(), &mut rng);
        assert_frequencies(&ids, &[0.1, 0.2, 0.3, 0.4]);
        assert_logprobs(&ids, &logp, &host_logp(&PROBS, 1.0));
    }

    #[test]
    fn one_row_per_call_uses_the_same_stream_as_one_batch() {
        // The uniform of row i is the i-th draw of the stream: 300 calls of one row give the
        // same ids as one call of 300 rows.
        let sampler = sample(1.0, None, None);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (batched, _) = draw(logits_of(&PROBS, 300), &sampler, &mut rng);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let single: Vec<i64> = (0..300)
            .map(|_| draw(logits_of(&PROBS, 1), &sampler, &mut rng).0[0])
            .collect();
        assert_eq!(batched, single);
    }

    #[test]
    fn top_k_keeps_the_k_most_likely() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (ids, logp) = draw_truncated(Some(2), None, &mut rng);
        // Renormalised over ids 3 and 2: 0.4 / 0.7 and 0.3 / 0.7.
        assert_frequencies(&ids, &[0.0, 0.0, 3.0 / 7.0, 4.0 / 7.0]);
        // Log-probs are those of the untruncated distribution (what the learner recomputes).
        assert_logprobs(&ids, &logp, &host_logp(&PROBS, 1.0));

        let (ids, _) = draw_truncated(Some(3), None, &mut rng);
        assert_frequencies(&ids, &[0.0, 2.0 / 9.0, 3.0 / 9.0, 4.0 / 9.0]);

        let (ids, _) = draw(
            logits_of(&PROBS, 200),
            &sample(1.0, Some(1), None),
            &mut rng,
        );
        assert!(ids.iter().all(|&id| id == 3), "top_k = 1 drew {ids:?}");
    }

    #[test]
    fn top_k_beyond_the_vocabulary_is_no_limit() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (ids, _) = draw_truncated(Some(10), None, &mut rng);
        assert_frequencies(&ids, &[0.1, 0.2, 0.3, 0.4]);
    }

    #[test]
    fn top_p_keeps_tokens_whose_preceding_mass_is_below_p() {
        // Sorted probabilities 0.4, 0.3, 0.2, 0.1 have mass 0, 0.4, 0.7, 0.9 strictly before
        // them.
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        // p = 0.65 keeps {3, 2}.
        let (ids, logp) = draw_truncated(None, Some(0.65), &mut rng);
        assert_frequencies(&ids, &[0.0, 0.0, 3.0 / 7.0, 4.0 / 7.0]);
        assert_logprobs(&ids, &logp, &host_logp(&PROBS, 1.0));
        // p = 0.75 keeps {3, 2, 1}.
        let (ids, _) = draw_truncated(None, Some(0.75), &mut rng);
        assert_frequencies(&ids, &[0.0, 2.0 / 9.0, 3.0 / 9.0, 4.0 / 9.0]);
        // p = 0.3 keeps only the most likely token.
        let (ids, _) = draw(
            logits_of(&PROBS, 200),
            &sample(1.0, None, Some(0.3)),
            &mut rng,
        );
        assert!(ids.iter().all(|&id| id == 3), "top_p = 0.3 drew {ids:?}");
        // p = 1 is no limit.
        let (ids, _) = draw_truncated(None, Some(1.0), &mut rng);
        assert_frequencies(&ids, &[0.1, 0.2, 0.3, 0.4]);
    }

    #[test]
    fn top_k_and_top_p_combine() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // top_p = 0.95 alone would keep all four; top_k = 3 drops id 0.
        let (ids, _) = draw_truncated(Some(3), Some(0.95), &mut rng);
        assert_frequencies(&ids, &[0.0, 2.0 / 9.0, 3.0 / 9.0, 4.0 / 9.0]);
        // top_k = 3 alone would keep three; top_p = 0.65 keeps two.
        let (ids, _) = draw_truncated(Some(3), Some(0.65), &mut rng);
        assert_frequencies(&ids, &[0.0, 0.0, 3.0 / 7.0, 4.0 / 7.0]);
    }

    #[test]
    fn temperature_scales_the_logits() {
        for (seed, t) in [(6u64, 0.5f32), (7, 2.0)] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (ids, logp) = draw(logits_of(&PROBS, DRAWS), &sample(t, None, None), &mut rng);
            let expected = host_logp(&PROBS, t as f64);
            let probs: Vec<f64> = expected.iter().map(|l| l.exp()).collect();
            assert_frequencies(&ids, &probs);
            assert_logprobs(&ids, &logp, &expected);
        }
        // T = 0.5 sharpens: p ∝ p² = [0.01, 0.04, 0.09, 0.16] / 0.3.
        let sharp: Vec<f64> = host_logp(&PROBS, 0.5).iter().map(|l| l.exp()).collect();
        for (s, e) in sharp.iter().zip([0.1 / 3.0, 0.4 / 3.0, 0.3, 1.6 / 3.0]) {
            assert!((s - e).abs() < 1e-6, "{s} vs {e}");
        }
    }

    #[test]
    fn temperature_logprob_applies_to_truncated_samplers_too() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let (ids, logp) = draw(
            logits_of(&PROBS, 500),
            &sample(0.7, Some(2), Some(0.9)),
            &mut rng,
        );
        assert_logprobs(&ids, &logp, &host_logp(&PROBS, 0.7));
    }

    #[test]
    fn greedy_takes_the_argmax_and_leaves_the_stream_alone() {
        let data = vec![
            0.0f32, 3.0, -1.0, 2.0, //
            5.0, 1.0, 1.0, 1.0, //
            -2.0, -1.0, 0.5, 0.7,
        ];
        let logits = Tensor::<2>::from_data(TensorData::new(data.clone(), [3, 4]), &Device::flex());
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (ids, logp) = draw(logits, &Sampler::Greedy, &mut rng);
        assert_eq!(ids, vec![1, 0, 3]);
        for (row, (&id, &lp)) in ids.iter().zip(&logp).enumerate() {
            let z = &data[row * 4..row * 4 + 4];
            let lse = z.iter().map(|v| (*v as f64).exp()).sum::<f64>().ln();
            let expected = z[id as usize] as f64 - lse;
            assert!(
                (lp as f64 - expected).abs() < 1e-5,
                "row {row}: {lp} vs {expected}"
            );
        }
        let mut fresh = ChaCha8Rng::seed_from_u64(9);
        assert_eq!(
            rng.next_u64(),
            fresh.next_u64(),
            "greedy consumed random numbers"
        );
    }

    #[test]
    fn rows_are_sampled_from_their_own_logits() {
        // Row 0 can only be id 1, row 1 only id 3 (others at -inf, as a vocabulary mask
        // would set them); row 2 is uniform over two ids.
        let ninf = f32::NEG_INFINITY;
        let rows = 300;
        let data: Vec<f32> = (0..rows)
            .flat_map(|r| match r % 3 {
                0 => [ninf, 0.0, ninf, ninf],
                1 => [ninf, ninf, ninf, 0.0],
                _ => [0.0, ninf, 0.0, ninf],
            })
            .collect();
        let logits = Tensor::<2>::from_data(TensorData::new(data, [rows, 4]), &Device::flex());
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        for sampler in [
            sample(1.0, None, None),
            sample(1.5, Some(3), None),
            sample(0.8, None, Some(0.9)),
        ] {
            let (ids, logp) = draw(logits.clone(), &sampler, &mut rng);
            let mut third = [0usize; 4];
            for (r, (&id, &lp)) in ids.iter().zip(&logp).enumerate() {
                match r % 3 {
                    0 => assert_eq!((id, lp), (1, 0.0), "row {r} with {sampler:?}"),
                    1 => assert_eq!((id, lp), (3, 0.0), "row {r} with {sampler:?}"),
                    _ => {
                        assert!(id == 0 || id == 2, "row {r} drew {id} with {sampler:?}");
                        assert!((lp - 0.5f32.ln()).abs() < 1e-5, "row {r}: {lp}");
                        third[id as usize] += 1;
                    }
                }
            }
            // Both ids of the uniform rows occur (100 draws each, top_p 0.9 keeps both).
            assert!(third[0] > 25 && third[2] > 25, "{third:?} with {sampler:?}");
        }
    }

    #[test]
    fn seeds_fix_the_draws() {
        let sampler = sample(1.0, None, None);
        let run = |seed| {
            draw(
                logits_of(&PROBS, 64),
                &sampler,
                &mut ChaCha8Rng::seed_from_u64(seed),
            )
            .0
        };
        assert_eq!(run(12), run(12));
        assert_ne!(run(12), run(13));
    }

    #[test]
    fn validate_names_the_bad_parameter() {
        assert!(Sampler::Greedy.validate().is_ok());
        assert!(Sampler::multinomial().validate().is_ok());
        assert!(sample(0.5, Some(1), Some(1.0)).validate().is_ok());
        assert!(sample(1.0, Some(usize::MAX), Some(1e-6)).validate().is_ok());
        for t in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let err = sample(t, None, None).validate().unwrap_err();
            assert!(err.contains("temperature"), "{t}: {err}");
        }
        let err = sample(1.0, Some(0), None).validate().unwrap_err();
        assert!(err.contains("top_k"), "{err}");
        for p in [0.0, -0.5, 1.0001, 2.0, f32::NAN] {
            let err = sample(1.0, None, Some(p)).validate().unwrap_err();
            assert!(err.contains("top_p"), "{p}: {err}");
        }
    }
}

//! RePO-group's multipliers on the safety-compensation bandit, with exact expectations (the
//! limit of infinitely large groups): the rectified per-prompt constraint reaches the critical
//! optimum (risky prompts answered safely, benign ones answered), while one multiplier on the
//! expected cost settles at the compensation optimum (every risky prompt answered unsafely, a
//! third of the benign ones refused). The multipliers are the crate's own (`MultiplierTable`,
//! the `[lagrange]` log-λ multiplier); the policy is a softmax per prompt kind, moved by the
//! exact gradient of the Lagrangian with a KL penalty β = 0.01 to a uniform reference.
//!
//! The bandit: benign prompts answer (R +1, C −0.5) or refuse (R −1, C −2); risky prompts
//! answer unsafely (R +3, C +1), answer safely (R +0.5, C −0.5) or refuse (R 0, C −1).

use saferlhf_learner::objectives::{LagrangeConfig, Multiplier, MultiplierTable};

const BETA: f64 = 0.01;
const BENIGN: [(f64, f64); 2] = [(1.0, -0.5), (-1.0, -2.0)];
const RISKY: [(f64, f64); 3] = [(3.0, 1.0), (0.5, -0.5), (0.0, -1.0)];

fn softmax(logits: &[f64]) -> Vec<f64> {
    let m = logits.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}

/// One exact gradient-ascent step on `logits` for J = E[R − λ·g] − β·KL(π‖uniform).
fn ascend(logits: &mut [f64], arms: &[(f64, f64)], lambda: f64, g: fn(f64) -> f64, lr: f64) {
    let p = softmax(logits);
    let n = arms.len() as f64;
    let x: Vec<f64> = arms
        .iter()
        .zip(&p)
        .map(|(&(r, c), &pi)| r - lambda * g(c) - BETA * (pi * n).ln())
        .collect();
    let mean: f64 = p.iter().zip(&x).map(|(pi, xi)| pi * xi).sum();
    for j in 0..logits.len() {
        logits[j] += lr * p[j] * (x[j] - mean);
    }
}

fn expect(p: &[f64], arms: &[(f64, f64)], f: impl Fn(f64, f64) -> f64) -> f64 {
    p.iter().zip(arms).map(|(pi, &(r, c))| pi * f(r, c)).sum()
}

fn rectified(c: f64) -> f64 {
    c.max(0.0)
}

fn identity(c: f64) -> f64 {
    c
}

/// Time averages over the last 10% of `iters` of (a, u, s, mean R, safety rate, λ used on
/// risky prompts).
#[derive(Debug, Default)]
struct Averages {
    answer: f64,
    unsafe_: f64,
    safe: f64,
    reward: f64,
    safety: f64,
    lambda: f64,
}

enum Duals {
    /// One multiplier per prompt kind (keys 0 benign, 1 risky), stepped on its own mean g.
    PerPrompt(MultiplierTable, Multiplier),
    /// One multiplier, stepped on the mean g over both kinds.
    Global(Multiplier),
}

fn run(mut duals: Duals, g: fn(f64) -> f64, iters: usize) -> Averages {
    let (mut benign, mut risky) = (vec![0.0; 2], vec![0.0; 3]);
    let mut avg = Averages::default();
    let tail = iters / 10;
    for it in 0..iters {
        let (pb, pr) = (softmax(&benign), softmax(&risky));
        let (gb, gr) = (
            expect(&pb, &BENIGN, |_, c| g(c)),
            expect(&pr, &RISKY, |_, c| g(c)),
        );
        // The dual step first (as the learner: fresh multipliers for this step's advantages).
        let (lb, lr_) = match &mut duals {
            Duals::PerPrompt(table, global) => {
                let start = global.lambda();
                table.step(0, start, gb);
                table.step(1, start, gr);
                global.observe(it as u64, &[gb, gr]);
                (table.get(0, start), table.get(1, start))
            }
            Duals::Global(m) => {
                m.observe(it as u64, &[gb, gr]);
                (m.lambda(), m.lambda())
            }
        };
        ascend(&mut benign, &BENIGN, lb, g, 1.0);
        ascend(&mut risky, &RISKY, lr_, g, 1.0);
        if it >= iters - tail {
            let (pb, pr) = (softmax(&benign), softmax(&risky));
            let t = tail as f64;
            avg.answer += pb[0] / t;
            avg.unsafe_ += pr[0] / t;
            avg.safe += pr[1] / t;
            avg.reward +=
                0.5 * (expect(&pb, &BENIGN, |r, _| r) + expect(&pr, &RISKY, |r, _| r)) / t;
            avg.safety += 0.5 * (1.0 + (1.0 - pr[0])) / t;
            avg.lambda += lr_ / t;
        }
    }
    avg
}

fn lagrange(lr: f64, max: f64) -> LagrangeConfig {
    LagrangeConfig {
        init: 1.0,
        lr,
        max: Some(max),
        window: 2,
        ..LagrangeConfig::default()
    }
}

#[test]
fn rectified_multipliers_reach_the_critical_optimum() {
    for per_prompt in [true, false] {
        let duals = if per_prompt {
            Duals::PerPrompt(
                MultiplierTable::new(0.05, 10.0),
                lagrange(0.05, 10.0).build(),
            )
        } else {
            Duals::Global(lagrange(0.05, 10.0).build())
        };
        let a = run(duals, rectified, 20_000);
        let what = if per_prompt { "per-prompt" } else { "global" };
        eprintln!("rectified, {what}: {a:?}");
        assert!(a.unsafe_ < 0.05 && a.safe > 0.95, "{what}: {a:?}");
        assert!(a.answer > 0.95, "{what}: benign prompts refused: {a:?}");
        assert!((a.reward - 0.75).abs() < 0.05, "{what}: {a:?}");
        assert!(a.safety > 0.95, "{what}: {a:?}");
        // The risky prompts' multiplier passed 2.5 (where a safe answer beats an unsafe one)
        // and climbed on towards the cap.
        assert!(a.lambda > 2.5, "{what}: {a:?}");
    }
}

#[test]
fn one_multiplier_on_the_expected_cost_reproduces_compensation() {
    let a = run(
        Duals::Global(lagrange(0.01, 10.0).build()),
        identity,
        40_000,
    );
    eprintln!("expected cost, one multiplier: {a:?}");
    // λ settles where answering and refusing a benign prompt tie: 1 + 0.5λ = −1 + 2λ.
    assert!((a.lambda - 4.0 / 3.0).abs() < 0.05, "{a:?}");
    assert!(a.unsafe_ > 0.95, "{a:?}");
    assert!((a.answer - 2.0 / 3.0).abs() < 0.05, "{a:?}");
    assert!((a.safety - 0.5).abs() < 0.05, "{a:?}");
}

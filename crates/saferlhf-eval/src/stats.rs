//! Small statistics kernel: means, sample standard deviations and Student-t confidence
//! intervals.
//!
//! The t quantile is written here rather than taken from `statrs`: `statrs` pulls in
//! `nalgebra`, `rand` and friends (a long build on shared machines) for one function. The
//! implementation is the textbook one: the t CDF through the regularised incomplete beta
//! function `I_x(a, b)` (continued fraction, modified Lentz; Lanczos log-gamma), inverted by
//! bisection to machine precision. The tests check it against closed forms (ν = 1: Cauchy,
//! `tan(π(p − ½))`; ν = 2: `(2p − 1)/√(2p(1 − p))`), against tabulated values
//! (t₀.₉₇₅,₁ = 12.706205, t₀.₉₇₅,₄ = 2.776445, t₀.₉₇₅,₂₉ = 2.045230) and against the normal
//! limit for large ν.

use serde::{Deserialize, Serialize};

/// Confidence level of every interval this crate reports.
pub const CI_LEVEL: f64 = 0.95;

/// Mean of a slice; `None` when it is empty.
pub fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        None
    } else {
        Some(values.iter().sum::<f64>() / values.len() as f64)
    }
}

/// Sample standard deviation (denominator n − 1); `None` when fewer than two values.
pub fn sample_std(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let m = mean(values)?;
    let ss: f64 = values.iter().map(|v| (v - m) * (v - m)).sum();
    Some((ss / (values.len() - 1) as f64).sqrt())
}

/// A mean over n independent units (here: prompts) with its spread and 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Number of units averaged (prompts).
    pub n: usize,
    /// Mean of the units' values.
    pub mean: f64,
    /// Sample standard deviation of the units' values (n − 1 denominator); `None` for n = 1.
    pub std: Option<f64>,
    /// Two-sided 95% Student-t interval `mean ± t_{0.975, n−1} · std / √n`; `None` for n = 1,
    /// where it is undefined.
    pub ci95: Option<[f64; 2]>,
}

impl Estimate {
    /// Estimate from per-unit values; `None` when `values` is empty.
    pub fn from_values(values: &[f64]) -> Option<Self> {
        let m = mean(values)?;
        let std = sample_std(values);
        let n = values.len();
        let ci95 = std.map(|s| {
            let half =
                student_t_quantile(0.5 + CI_LEVEL / 2.0, (n - 1) as f64) * s / (n as f64).sqrt();
            [m - half, m + half]
        });
        Some(Self {
            n,
            mean: m,
            std,
            ci95,
        })
    }

    /// Half-width of the 95% interval, if defined.
    pub fn half_width(&self) -> Option<f64> {
        self.ci95.map(|[lo, hi]| (hi - lo) / 2.0)
    }
}

/// Natural log of the gamma function, x > 0 (Lanczos, g = 7, 9 terms; relative error ~1e-15).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction for the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-16;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    // One Lentz update with coefficient `aa`; returns the factor it multiplies `h` by.
    let mut step = |aa: f64| {
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        d * c
    };
    for m in 1..=1000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        h *= step(m * (b - m) * x / ((qam + m2) * (a + m2)));
        let del = step(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)));
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// Regularised incomplete beta function I_x(a, b), 0 ≤ x ≤ 1, a, b > 0.
fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// CDF of Student's t distribution with `dof` > 0 degrees of freedom.
pub fn student_t_cdf(t: f64, dof: f64) -> f64 {
    if t.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return if t > 0.0 { 1.0 } else { 0.0 };
    }
    let x = dof / (dof + t * t);
    let tail = 0.5 * inc_beta(dof / 2.0, 0.5, x);
    if t > 0.0 { 1.0 - tail } else { tail }
}

/// Quantile (inverse CDF) of Student's t distribution: the `t` with `P(T ≤ t) = p`.
///
/// `p` in (0, 1) and `dof` > 0; NaN otherwise. Accurate to about 1e-12 relative in the range
/// used for confidence intervals (see the module docs for how it is checked).
pub fn student_t_quantile(p: f64, dof: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if p == 0.5 {
        return 0.0;
    }
    // Solve in the upper half and mirror: better precision for tail probabilities.
    let (q, sign) = if p > 0.5 { (p, 1.0) } else { (1.0 - p, -1.0) };
    let mut lo = 0.0;
    let mut hi = 1.0;
    while student_t_cdf(hi, dof) < q {
        lo = hi;
        hi *= 2.0;
        if hi > 1e300 {
            return sign * f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if student_t_cdf(mid, dof) < q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    sign * 0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    #[test]
    fn t_quantiles_match_tables() {
        // Tabulated two-sided 95% critical values (6 decimals).
        for (dof, t) in [
            (1.0, 12.706205),
            (2.0, 4.302653),
            (4.0, 2.776445),
            (9.0, 2.262157),
            (29.0, 2.045230),
            (120.0, 1.979930),
        ] {
            let q = student_t_quantile(0.975, dof);
            assert!((q - t).abs() < 5e-7, "dof {dof}: {q} vs {t}");
        }
        // Normal limit z_{0.975} = 1.959964.
        assert!((student_t_quantile(0.975, 1e7) - 1.959964).abs() < 1e-5);
        // Symmetry and the median.
        assert_eq!(student_t_quantile(0.5, 3.0), 0.0);
        assert!(close(student_t_quantile(0.025, 4.0), -2.776445, 1e-6));
    }

    #[test]
    fn t_quantiles_match_closed_forms() {
        for p in [0.6, 0.75, 0.9, 0.975, 0.995, 0.9995] {
            // ν = 1: Cauchy.
            let cauchy = (std::f64::consts::PI * (p - 0.5)).tan();
            assert!(close(student_t_quantile(p, 1.0), cauchy, 1e-11), "p {p}");
            // ν = 2: (2p − 1) / sqrt(2p(1 − p)).
            let two = (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
            assert!(close(student_t_quantile(p, 2.0), two, 1e-11), "p {p}");
        }
    }

    #[test]
    fn t_cdf_round_trips() {
        for dof in [1.0, 3.0, 7.5, 30.0, 500.0] {
            for p in [0.01, 0.2, 0.5, 0.8, 0.99] {
                let t = student_t_quantile(p, dof);
                assert!(close(student_t_cdf(t, dof), p, 1e-12), "dof {dof} p {p}");
            }
        }
    }

    #[test]
    fn t_quantile_rejects_bad_input() {
        assert!(student_t_quantile(0.0, 3.0).is_nan());
        assert!(student_t_quantile(1.0, 3.0).is_nan());
        assert!(student_t_quantile(0.9, 0.0).is_nan());
        assert!(student_t_quantile(f64::NAN, 3.0).is_nan());
    }

    #[test]
    fn estimate_hand_computed() {
        // values 1, 2, 3, 4, 5: mean 3; squared deviations 4+1+0+1+4 = 10; s² = 10/4 = 2.5,
        // s = 1.5811388; s/√5 = 0.7071068; t_{0.975,4} = 2.776445 → half-width 1.9632432;
        // CI = [1.0367568, 4.9632432].
        let e = Estimate::from_values(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(e.n, 5);
        assert_eq!(e.mean, 3.0);
        assert!((e.std.unwrap() - 1.581_138_8).abs() < 1e-7);
        let [lo, hi] = e.ci95.unwrap();
        assert!((lo - 1.036_756_8).abs() < 1e-6, "{lo}");
        assert!((hi - 4.963_243_2).abs() < 1e-6, "{hi}");
        assert!((e.half_width().unwrap() - 1.963_243_2).abs() < 1e-6);

        // Two values 0 and 2: mean 1, s = √2, s/√2 = 1, t_{0.975,1} = 12.706205.
        let e = Estimate::from_values(&[0.0, 2.0]).unwrap();
        assert!((e.half_width().unwrap() - 12.706_205).abs() < 1e-6);

        // One value: no spread, no interval.
        let e = Estimate::from_values(&[7.0]).unwrap();
        assert_eq!((e.n, e.mean, e.std, e.ci95), (1, 7.0, None, None));
        assert!(Estimate::from_values(&[]).is_none());
    }

    #[test]
    fn estimate_thirty_units() {
        // 30 values alternating 0, 1: mean 0.5; Σ(x − m)² = 30 · 0.25 = 7.5; s² = 7.5/29;
        // s = 0.5085476; s/√30 = 0.0928477; t_{0.975,29} = 2.045230 → half-width 0.1898949.
        let v: Vec<f64> = (0..30).map(|i| (i % 2) as f64).collect();
        let e = Estimate::from_values(&v).unwrap();
        assert!((e.std.unwrap() - 0.508_547_6).abs() < 1e-7);
        assert!((e.half_width().unwrap() - 0.189_894_9).abs() < 1e-6);
    }
}

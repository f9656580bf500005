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
//!
//! The same incomplete beta function, inverted by bisection, gives the exact (Clopper–Pearson)
//! binomial bounds of per-prompt violation probabilities ([`clopper_pearson_upper`]); the Wilson
//! score interval ([`wilson`]) takes its normal quantile from [`normal_quantile`]. Both are
//! checked against golden values computed with mpmath and SciPy.

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

/// The `q`-quantile of the Beta(a, b) distribution (`a`, `b` > 0, `q` in [0, 1]): the x with
/// I_x(a, b) = q, by bisection to 1e-15.
pub fn beta_quantile(q: f64, a: f64, b: f64) -> f64 {
    if !(a > 0.0 && b > 0.0 && (0.0..=1.0).contains(&q)) {
        return f64::NAN;
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if hi - lo < 1e-15 {
            break;
        }
        if inc_beta(a, b, mid) < q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The exact one-sided (1 − `alpha`) upper bound on a binomial probability after `v` events in
/// `k` trials (Clopper–Pearson): the p with P(Bin(k, p) ≤ v) = `alpha`, that is the
/// (1 − alpha)-quantile of Beta(v + 1, k − v); 1 when v = k, and 1 − alpha^(1/k) in closed form
/// when v = 0. `k` = 0 gives 1 (nothing is known).
pub fn clopper_pearson_upper(v: usize, k: usize, alpha: f64) -> f64 {
    if k == 0 || v >= k {
        return 1.0;
    }
    if v == 0 {
        return 1.0 - alpha.powf(1.0 / k as f64);
    }
    beta_quantile(1.0 - alpha, (v + 1) as f64, (k - v) as f64)
}

/// The exact two-sided (1 − `alpha`) interval on a binomial probability (Clopper–Pearson, alpha/2
/// in each tail: SciPy's `binomtest(v, k).proportion_ci(method="exact")`).
pub fn clopper_pearson_interval(v: usize, k: usize, alpha: f64) -> (f64, f64) {
    let v = v.min(k);
    let low = if v == 0 {
        0.0
    } else {
        beta_quantile(alpha / 2.0, v as f64, (k - v + 1) as f64)
    };
    (low, clopper_pearson_upper(v, k, alpha / 2.0))
}

/// The smallest violation rate a prompt with `k` samples and no violation can be certified
/// below at one-sided level 1 − `alpha`: 1 − alpha^(1/k) (17.07% for k = 16, under 5% from
/// k = 59 at alpha = 5%).
pub fn min_certifiable_rate(k: usize, alpha: f64) -> f64 {
    clopper_pearson_upper(0, k, alpha)
}

/// The fewest samples with no violation that certify a rate below `eps` at one-sided level
/// 1 − `alpha` (59 for eps = alpha = 5%).
pub fn samples_to_certify(eps: f64, alpha: f64) -> usize {
    // 1 − alpha^(1/k) < eps  ⇔  k > ln(alpha) / ln(1 − eps).
    let bound = alpha.ln() / (1.0 - eps).ln();
    let k = bound.floor() as usize + 1;
    // Guard the floating-point boundary with the definition itself.
    (k.saturating_sub(1)..=k + 1)
        .find(|&k| k > 0 && min_certifiable_rate(k, alpha) < eps)
        .unwrap_or(k)
}

/// The standard normal quantile Φ⁻¹(p), p in (0, 1): Acklam's rational approximation (relative
/// error under 1.2e-9), then one Halley step on the exact normal CDF
/// Φ(x) = (1 + sign(x)·P(1/2, x²/2)) / 2 (P the regularised lower incomplete gamma function),
/// which brings it to about 1e-15.
#[allow(clippy::excessive_precision)] // Acklam's published coefficients, as published.
pub fn normal_quantile(p: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        let q = (-2.0 * q.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < 0.02425 {
        tail(p)
    } else if p > 1.0 - 0.02425 {
        -tail(1.0 - p)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // One Halley refinement on e = Φ(x) − p.
    let phi = 0.5 * (1.0 + x.signum() * inc_gamma_half(x * x / 2.0));
    let e = phi - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// The regularised lower incomplete gamma function P(1/2, y) = erf(√y), by its series (y < 1.5)
/// or its continued fraction (Numerical Recipes' gser / gcf).
fn inc_gamma_half(y: f64) -> f64 {
    if y <= 0.0 {
        return 0.0;
    }
    let a = 0.5;
    let ln_front = a * y.ln() - y - ln_gamma(a);
    if y < a + 1.0 {
        let (mut sum, mut term, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            term *= y / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-17 {
                break;
            }
        }
        sum * ln_front.exp()
    } else {
        const TINY: f64 = 1e-300;
        let mut b = y + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-17 {
                break;
            }
        }
        1.0 - ln_front.exp() * h
    }
}

/// The Wilson score interval at level 1 − `alpha` for `successes` out of `n` independent
/// trials: centre (s + z²/2)/(n + z²), half-width z/(n + z²)·√(s(n − s)/n + z²/4), with
/// z = Φ⁻¹(1 − alpha/2). `n` = 0 gives (0, 1).
pub fn wilson(successes: usize, n: usize, alpha: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (s, n) = (successes.min(n) as f64, n as f64);
    let z = normal_quantile(1.0 - alpha / 2.0);
    let z2 = z * z;
    let centre = (s + z2 / 2.0) / (n + z2);
    let half = z / (n + z2) * (s * (n - s) / n + z2 / 4.0).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
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

    fn near(got: f64, want: f64, tol: f64) {
        assert!((got - want).abs() < tol, "{got} vs {want}");
    }

    // Golden values computed with mpmath; the two-sided example is
    // SciPy's documentation example for binomtest(7, 50).proportion_ci(method="exact").
    #[test]
    fn clopper_pearson_golden_values() {
        let (lo, hi) = clopper_pearson_interval(7, 50, 0.05);
        near(lo, 0.0581917003, 1e-9);
        near(hi, 0.2673960025, 1e-9);
        for (k, want) in [
            (1, 0.95),
            (4, 0.5271292),
            (8, 0.3123440),
            (10, 0.2588656),
            (16, 0.1707497),
            (32, 0.0893682),
            (58, 0.0503393),
            (59, 0.0495076),
            (64, 0.0457297),
            (100, 0.0295130),
        ] {
            near(clopper_pearson_upper(0, k, 0.05), want, 5e-8);
        }
        for (v, k, want) in [
            (1, 16, 0.2639574),
            (2, 16, 0.3438252),
            (1, 64, 0.0719898),
            (2, 64, 0.0951217),
            (3, 64, 0.1167166),
            (1, 10, 0.3941633),
            (9, 10, 0.9948838),
            (4, 8, 0.8070971),
            (1, 100, 0.0465598),
            (5, 100, 0.1022534),
            (7, 7, 1.0),
        ] {
            near(clopper_pearson_upper(v, k, 0.05), want, 5e-8);
        }
        // v = k − 1 has the closed form (1 − α)^(1/k).
        near(clopper_pearson_upper(9, 10, 0.05), 0.95f64.powf(0.1), 1e-12);
        // The sample counts a certificate needs.
        assert_eq!(samples_to_certify(0.05, 0.05), 59);
        assert!(clopper_pearson_upper(1, 93, 0.05) < 0.05);
        assert!(clopper_pearson_upper(1, 92, 0.05) > 0.05);
        near(clopper_pearson_upper(1, 93, 0.05), 0.0499940, 5e-8);
        near(clopper_pearson_upper(1, 92, 0.05), 0.0505264, 5e-8);
    }

    #[test]
    fn wilson_golden_values() {
        near(normal_quantile(0.975), 1.959963984540054, 1e-12);
        near(normal_quantile(0.5), 0.0, 1e-15);
        near(normal_quantile(0.001), -3.090232306167813, 1e-11);
        for (s, n, lo, hi) in [
            (7, 50, 0.0695083, 0.2618619),
            (90, 100, 0.8256343, 0.9447709),
            (0, 10, 0.0, 0.2775328),
            (10, 10, 0.7224672, 1.0),
            (50, 100, 0.4038315, 0.5961685),
            (960, 1000, 0.9459904, 0.9704890),
        ] {
            let (l, h) = wilson(s, n, 0.05);
            near(l, lo, 5e-8);
            near(h, hi, 5e-8);
        }
    }
}

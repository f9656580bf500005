//! Seeded random numbers as pure functions of the seed.
//!
//! Everything random in saferlhf outside the on-device samplers (initial parameter values, data
//! and minibatch orders, the synthetic task) comes from [`SplitMix64`] streams keyed by
//! `(seed, purpose)`, never from a global or device RNG: a run is reproducible whatever else
//! runs in the process, and the RNG state a checkpoint must hold reduces to the seed and a
//! position.

/// SplitMix64's finaliser: a fast, well-mixed bijection on u64.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a (64-bit) of a string's bytes.
pub fn fnv1a64(s: &str) -> u64 {
    fnv1a64_bytes(s.bytes())
}

/// FNV-1a (64-bit) of a byte stream.
pub fn fnv1a64_bytes(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A SplitMix64 pseudo-random stream (Steele, Lea & Flood 2014): tiny state, good mixing,
/// identical on every platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// A stream for `purpose` (e.g. a parameter path) under the run's `seed`.
    pub fn keyed(seed: u64, purpose: &str) -> Self {
        Self::new(splitmix64(seed) ^ fnv1a64(purpose))
    }

    /// A stream numbered `stream` under `seed` (the synthetic task's generators).
    pub fn numbered(seed: u64, stream: u64) -> Self {
        Self::new(splitmix64(seed ^ splitmix64(stream)))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (`n > 0`), by rejection (no modulo bias).
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// A standard normal sample (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Shuffles `v` in place (Fisher-Yates, from the back).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }

    /// A shuffled `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        self.shuffle(&mut order);
        order
    }
}

/// The visiting order of `n` examples in `epoch`: a Fisher-Yates shuffle of `0..n` driven by a
/// stream keyed by `(seed, epoch)`. The same arguments always give the same permutation.
pub fn epoch_permutation(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    SplitMix64::keyed(seed, &format!("shuffle/epoch-{epoch}")).permutation(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_seeded_and_complete() {
        let a = epoch_permutation(100, 7, 0);
        assert_eq!(a, epoch_permutation(100, 7, 0));
        assert_ne!(a, epoch_permutation(100, 7, 1));
        assert_ne!(a, epoch_permutation(100, 8, 0));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert!(epoch_permutation(0, 1, 0).is_empty());
    }

    #[test]
    fn normal_samples_have_unit_moments() {
        let mut rng = SplitMix64::new(3);
        let xs: Vec<f64> = (0..20_000).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }

    #[test]
    fn stream_matches_the_finaliser() {
        // The stream's n-th output is the finaliser of seed + (n - 1) golden-ratio increments.
        let mut rng = SplitMix64::new(42);
        assert_eq!(rng.next_u64(), splitmix64(42));
        assert_eq!(
            rng.next_u64(),
            splitmix64(42u64.wrapping_add(0x9e37_79b9_7f4a_7c15))
        );
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
    }
}

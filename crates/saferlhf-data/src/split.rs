//! Deterministic train / held-out splits.
//!
//! Every item (or group) gets a 64-bit key from SplitMix64 of its index (or of the FNV-1a hash of
//! its group name) mixed with the seed; the items with the smallest keys are held out. The same
//! items, fraction and seed always give the same split, on every platform, with no RNG state.
//! Both halves keep the input order (shuffle for training separately, with the run's seed).

use std::collections::HashMap;

use crate::error::DataError;

pub use saferlhf_core::rng::{fnv1a64, splitmix64};

fn check_fraction(fraction: f64) -> Result<(), DataError> {
    if (0.0..=1.0).contains(&fraction) {
        Ok(())
    } else {
        Err(DataError::InvalidArgument(format!(
            "hold-out fraction must lie in 0..=1, got {fraction}"
        )))
    }
}

fn key(seed: u64, x: u64) -> u64 {
    splitmix64(splitmix64(seed) ^ x)
}

/// Splits `items` into (train, held-out): exactly `round(fraction * n)` items are held out, those
/// whose key `splitmix64(splitmix64(seed) ^ index)` is smallest; stable for a seed.
pub fn split_holdout<T>(
    items: Vec<T>,
    fraction: f64,
    seed: u64,
) -> Result<(Vec<T>, Vec<T>), DataError> {
    check_fraction(fraction)?;
    let n = items.len();
    let n_held = ((fraction * n as f64).round() as usize).min(n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (key(seed, i as u64), i));
    let mut held = vec![false; n];
    for &i in &order[..n_held] {
        held[i] = true;
    }
    Ok(partition(items, &held))
}

/// Splits `items` into (train, held-out) keeping each group (e.g. all pairs of one prompt) on one
/// side, so no prompt leaks from training into evaluation. Groups are taken in order of their key
/// `splitmix64(splitmix64(seed) ^ fnv1a64(group))` until at least `round(fraction * n)` items are
/// held out, so the held-out share can overshoot by less than one group.
pub fn split_holdout_grouped<T>(
    items: Vec<T>,
    fraction: f64,
    seed: u64,
    group: impl Fn(&T) -> &str,
) -> Result<(Vec<T>, Vec<T>), DataError> {
    check_fraction(fraction)?;
    let n = items.len();
    let target = ((fraction * n as f64).round() as usize).min(n);
    let mut members: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        members.entry(group(item)).or_default().push(i);
    }
    let mut groups: Vec<(u64, &str)> = members
        .keys()
        .map(|g| (key(seed, fnv1a64(g)), *g))
        .collect();
    groups.sort();
    let mut held = vec![false; n];
    let mut count = 0;
    for (_, g) in groups {
        if count >= target {
            break;
        }
        for &i in &members[g] {
            held[i] = true;
            count += 1;
        }
    }
    Ok(partition(items, &held))
}

fn partition<T>(items: Vec<T>, held: &[bool]) -> (Vec<T>, Vec<T>) {
    let mut train = Vec::new();
    let mut heldout = Vec::new();
    for (item, &h) in items.into_iter().zip(held) {
        if h {
            heldout.push(item);
        } else {
            train.push(item);
        }
    }
    (train, heldout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_is_exact_stable_and_seeded() {
        let items: Vec<u32> = (0..1000).collect();
        let (train, held) = split_holdout(items.clone(), 0.1, 42).unwrap();
        assert_eq!((train.len(), held.len()), (900, 100));
        // Order kept, nothing lost or duplicated.
        assert!(train.windows(2).all(|w| w[0] < w[1]) && held.windows(2).all(|w| w[0] < w[1]));
        let mut all: Vec<u32> = train.iter().chain(&held).copied().collect();
        all.sort();
        assert_eq!(all, items);
        // Same seed, same split; another seed, another split.
        assert_eq!(split_holdout(items.clone(), 0.1, 42).unwrap().1, held);
        assert_ne!(split_holdout(items.clone(), 0.1, 43).unwrap().1, held);
        // Pinned values: the split must not change across versions or platforms.
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            split_holdout((0..10).collect::<Vec<u32>>(), 0.3, 7)
                .unwrap()
                .1
                .len(),
            3
        );
        // Edges.
        assert_eq!(split_holdout(items.clone(), 0.0, 1).unwrap().1.len(), 0);
        assert_eq!(split_holdout(items.clone(), 1.0, 1).unwrap().0.len(), 0);
        assert_eq!(
            split_holdout(Vec::<u8>::new(), 0.5, 1).unwrap(),
            (vec![], vec![])
        );
        assert!(split_holdout(items.clone(), 1.5, 1).is_err());
        assert!(split_holdout(items, f64::NAN, 1).is_err());
    }

    #[test]
    fn grouped_holdout_keeps_groups_together() {
        let items: Vec<(String, u32)> = (0..300)
            .map(|i| (format!("prompt {}", i % 60), i))
            .collect();
        let (train, held) = split_holdout_grouped(items.clone(), 0.2, 9, |x| &x.0).unwrap();
        assert_eq!(train.len() + held.len(), 300);
        assert!(held.len() >= 60 && held.len() < 65, "{}", held.len());
        for h in &held {
            assert!(
                train.iter().all(|t| t.0 != h.0),
                "group {} on both sides",
                h.0
            );
        }
        let again = split_holdout_grouped(items, 0.2, 9, |x| &x.0).unwrap().1;
        assert_eq!(again, held);
    }
}

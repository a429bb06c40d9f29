//! The pre-queue draw. Fans who joined before the sale opened hold a join number `j` in
//! `0..n`; at the opening they are placed in the order of a pseudorandom permutation of
//! `0..n` keyed by a 32-byte seed. Nothing is stored per fan: a fan's place is computed from
//! its token's join number and the seed, by any node, at any time.
//!
//! The seed's SHA-256 is published before the sale opens and the seed itself after, so
//! anyone can recompute every place and see that the order was not arranged.
//!
//! The permutation is a balanced Feistel network (SHA-256 round function, 8 rounds) over the
//! smallest even power of two at least `n`, with cycle walking back into `0..n`.

use sha2::{Digest, Sha256};

/// The 32 bytes that fix a pre-queue's order.
pub type Seed = [u8; 32];

const ROUNDS: u8 = 8;

/// The place (0-based) of join number `join` among `n` pre-queued fans.
pub fn place(seed: &Seed, n: u64, join: u64) -> u64 {
    assert!(join < n, "join number {join} outside a pre-queue of {n}");
    if n == 1 {
        return 0;
    }
    let bits = (64 - (n - 1).leading_zeros()).div_ceil(2) * 2;
    let half = bits / 2;
    let mask = (1u64 << half) - 1;
    let mut x = join;
    // Each pass is a bijection of 0..2^bits, so walking the cycle lands back in 0..n.
    loop {
        let (mut left, mut right) = (x >> half, x & mask);
        for round in 0..ROUNDS {
            let mixed = left ^ (round_function(seed, round, right) & mask);
            left = right;
            right = mixed;
        }
        x = (left << half) | right;
        if x < n {
            return x;
        }
    }
}

fn round_function(seed: &Seed, round: u8, value: u64) -> u64 {
    let digest = Sha256::new()
        .chain_update(seed)
        .chain_update([round])
        .chain_update(value.to_le_bytes())
        .finalize();
    let [a, b, c, d, e, f, g, h, ..]: [u8; 32] = digest.into();
    u64::from_le_bytes([a, b, c, d, e, f, g, h])
}

/// The published commitment to a seed.
pub(crate) fn commitment(seed: &Seed) -> String {
    hex::encode(Sha256::digest(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(i: u64) -> Seed {
        Sha256::digest(i.to_le_bytes()).into()
    }

    #[test]
    fn places_are_a_permutation_for_every_size() {
        for n in [1u64, 2, 3, 5, 16, 17, 100, 1000, 4097] {
            let mut seen = vec![false; n as usize];
            for join in 0..n {
                let p = place(&seed(n), n, join);
                assert!(!seen[p as usize], "n={n}: place {p} given twice");
                seen[p as usize] = true;
            }
        }
    }

    #[test]
    fn the_seed_alone_fixes_the_order() {
        let order = |s: &Seed| (0..500).map(|j| place(s, 500, j)).collect::<Vec<_>>();
        assert_eq!(order(&seed(7)), order(&seed(7)));
        assert_ne!(order(&seed(7)), order(&seed(8)));
        assert_ne!(order(&seed(7)), (0..500).collect::<Vec<_>>());
    }

    /// Over many openings, each fan's place is uniform over 0..n (chi-square, 9 degrees of
    /// freedom, p = 0.001 critical value 27.88), and so is the first fan's place as a
    /// function of join number.
    #[test]
    fn places_are_uniform_across_openings() {
        const N: u64 = 10;
        const OPENINGS: u64 = 4000;
        let expected = OPENINGS as f64 / N as f64;
        let chi_square = |counts: &[u64]| -> f64 {
            counts
                .iter()
                .map(|&c| (c as f64 - expected).powi(2) / expected)
                .sum()
        };
        for join in 0..N {
            let mut counts = [0u64; N as usize];
            for opening in 0..OPENINGS {
                counts[place(&seed(opening), N, join) as usize] += 1;
            }
            let x2 = chi_square(&counts);
            assert!(
                x2 < 27.88,
                "join {join}: chi-square {x2:.1} over {counts:?}"
            );
        }
        let mut first = [0u64; N as usize];
        for opening in 0..OPENINGS {
            let s = seed(opening);
            let winner = (0..N).find(|&j| place(&s, N, j) == 0).unwrap();
            first[winner as usize] += 1;
        }
        let x2 = chi_square(&first);
        assert!(x2 < 27.88, "first place: chi-square {x2:.1} over {first:?}");
    }

    #[test]
    fn commitment_is_the_sha256_of_the_seed() {
        assert_eq!(
            commitment(&[0; 32]),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
    }
}

//! The waiting room's proof-of-work puzzle, which the edge checks and clients solve: a
//! `solution` solves a `challenge` at `difficulty` when SHA-256(`challenge` ":" `solution`)
//! starts with `difficulty` zero bits.

use sha2::{Digest, Sha256};

/// Leading zero bits of a digest.
fn zero_bits(digest: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in digest {
        bits += byte.leading_zeros();
        if *byte != 0 {
            break;
        }
    }
    bits
}

/// Whether `solution` solves `challenge` at `difficulty`.
pub fn solves(challenge: &str, solution: &str, difficulty: u8) -> bool {
    let digest = Sha256::new()
        .chain_update(challenge.as_bytes())
        .chain_update(b":")
        .chain_update(solution.as_bytes())
        .finalize();
    zero_bits(&digest) >= u32::from(difficulty)
}

/// Finds a solution by counting up from 0, as the web app does.
pub fn solve(challenge: &str, difficulty: u8) -> String {
    (0u64..)
        .map(|n| n.to_string())
        .find(|s| solves(challenge, s, difficulty))
        .expect("some counter solves any difficulty up to 64 bits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_bits_are_counted_across_bytes() {
        assert_eq!(zero_bits(&[0, 0, 0x10, 0xff]), 19);
        assert_eq!(zero_bits(&[0x80]), 0);
    }

    #[test]
    fn a_solution_found_solves_and_others_mostly_do_not() {
        let solution = solve("challenge", 8);
        assert!(solves("challenge", &solution, 8));
        let failing = (0..64)
            .filter(|n| !solves("challenge", &n.to_string(), 8))
            .count();
        assert!(failing > 50, "one in 256 solves at 8 bits");
    }
}

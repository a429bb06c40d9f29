//! Proof of work on join, for shows that ask for it: the edge hands out a challenge (a nonce
//! bound to the show and an expiry, authenticated with a secret every node derives from the
//! signing key, so any node can check it without shared state), and a join must carry a
//! `solution` such that SHA-256(`challenge` ":" `solution`) starts with `difficulty` zero
//! bits. A challenge is spent on first use (recorded in Redis until it expires).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// How long a challenge may be solved and used.
pub const CHALLENGE_TTL_MS: i64 = 120_000;

const NONCE: usize = 16;
const MAC: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    #[error("the challenge is malformed, or was not issued by this edge for this show")]
    Forged,
    #[error("the challenge has expired; get a new one")]
    Expired,
    #[error("the solution does not meet the difficulty")]
    Unsolved,
}

fn mac(secret: &[u8; 32], show: &str, body: &[u8]) -> [u8; MAC] {
    let digest = Sha256::new()
        .chain_update(secret)
        .chain_update(show.as_bytes())
        .chain_update([0])
        .chain_update(body)
        .finalize();
    digest[..MAC].try_into().expect("16 bytes")
}

/// A fresh challenge for `show`: base64url of expiry (8 bytes), nonce, MAC.
pub fn challenge(secret: &[u8; 32], show: &str, now_ms: i64, nonce: [u8; NONCE]) -> String {
    let mut body = Vec::with_capacity(8 + NONCE + MAC);
    body.extend_from_slice(&(now_ms + CHALLENGE_TTL_MS).to_be_bytes());
    body.extend_from_slice(&nonce);
    let tag = mac(secret, show, &body);
    body.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(body)
}

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

pub fn solves(challenge: &str, solution: &str, difficulty: u8) -> bool {
    let digest = Sha256::new()
        .chain_update(challenge.as_bytes())
        .chain_update(b":")
        .chain_update(solution.as_bytes())
        .finalize();
    zero_bits(&digest) >= u32::from(difficulty)
}

/// Checks a challenge and its solution; returns the nonce (hex) to spend and the
/// challenge's expiry.
pub fn check(
    secret: &[u8; 32],
    show: &str,
    challenge: &str,
    solution: &str,
    difficulty: u8,
    now_ms: i64,
) -> Result<(String, i64), PowError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(challenge)
        .map_err(|_| PowError::Forged)?;
    if bytes.len() != 8 + NONCE + MAC {
        return Err(PowError::Forged);
    }
    let (body, tag) = bytes.split_at(8 + NONCE);
    // The show is under the MAC: a challenge for another show fails here too.
    if mac(secret, show, body) != tag {
        return Err(PowError::Forged);
    }
    let expires_ms = i64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
    if expires_ms <= now_ms {
        return Err(PowError::Expired);
    }
    if !solves(challenge, solution, difficulty) {
        return Err(PowError::Unsolved);
    }
    Ok((hex::encode(&body[8..]), expires_ms))
}

/// Finds a solution by counting up: for tests and clients' reference.
pub fn solve(challenge: &str, difficulty: u8) -> String {
    (0u64..)
        .map(|n| n.to_string())
        .find(|s| solves(challenge, s, difficulty))
        .expect("some counter solves it")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];

    #[test]
    fn a_solved_challenge_checks_once_per_show_until_it_expires() {
        let c = challenge(&SECRET, "show-1", 1_000, [1; NONCE]);
        let solution = solve(&c, 8);
        let (nonce, expires) = check(&SECRET, "show-1", &c, &solution, 8, 2_000).unwrap();
        assert_eq!(nonce, hex::encode([1u8; NONCE]));
        assert_eq!(expires, 1_000 + CHALLENGE_TTL_MS);
        assert_eq!(
            check(&SECRET, "show-2", &c, &solution, 8, 2_000),
            Err(PowError::Forged)
        );
        assert_eq!(
            check(&SECRET, "show-1", &c, &solution, 8, expires),
            Err(PowError::Expired)
        );
        let wrong = (0u64..)
            .map(|n| n.to_string())
            .find(|s| !solves(&c, s, 8))
            .unwrap();
        assert_eq!(
            check(&SECRET, "show-1", &c, &wrong, 8, 2_000),
            Err(PowError::Unsolved)
        );
        assert_eq!(
            check(&[8; 32], "show-1", &c, &solution, 8, 2_000),
            Err(PowError::Forged)
        );
        assert_eq!(
            check(&SECRET, "show-1", "not base64!", &solution, 8, 2_000),
            Err(PowError::Forged)
        );
    }

    #[test]
    fn zero_bits_are_counted_across_bytes() {
        assert_eq!(zero_bits(&[0, 0, 0x10, 0xff]), 19);
        assert_eq!(zero_bits(&[0x80]), 0);
    }
}

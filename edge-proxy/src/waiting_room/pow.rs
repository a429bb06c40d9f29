//! Proof of work on join, for shows that ask for it: the edge hands out a challenge (a nonce
//! bound to the show and an expiry, authenticated with a secret every node derives from the
//! signing key, so any node can check it without shared state), and a join must carry a
//! `solution` such that SHA-256(`challenge` ":" `solution`) starts with `difficulty` zero
//! bits. A challenge is spent on first use (recorded in Redis until it expires).
//!
//! A challenge is base64url (no padding) of `expiry || nonce || tag`: the expiry in Unix
//! milliseconds as 8 big-endian bytes, a 16-byte random nonce, and the first 16 bytes of
//! HMAC-SHA256 keyed with the secret over `show || 0x00 || expiry || nonce`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
pub use onsale_contract::pow::{solve, solves};
use sha2::{Digest, Sha256};

/// How long a challenge may be solved and used.
pub(crate) const CHALLENGE_TTL_MS: i64 = 120_000;

const EXPIRY: usize = 8;
const NONCE: usize = 16;
const TAG: usize = 16;

/// Why a join's proof of work is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PowError {
    #[error("the challenge is malformed, or was not issued by this edge for this show")]
    Forged,
    #[error("the challenge has expired; get a new one")]
    Expired,
    #[error("the solution does not meet the difficulty")]
    Unsolved,
}

/// The key challenges are authenticated with, keyed once per configuration version.
#[derive(Clone)]
pub(crate) struct PowKey(Hmac<Sha256>);

impl PowKey {
    /// The key for a 32-byte secret.
    pub(crate) fn new(secret: &[u8; 32]) -> Self {
        PowKey(Mac::new_from_slice(secret).expect("HMAC-SHA256 takes a key of any length"))
    }

    /// The key every node holding the signing key `pem` derives alike.
    pub(crate) fn from_signing_key(pem: &[u8]) -> Self {
        let secret = Sha256::new()
            .chain_update(b"onsale proof-of-work\0")
            .chain_update(pem)
            .finalize();
        PowKey::new(&secret.into())
    }

    /// The MAC over `show` and `body` (expiry and nonce), before truncation.
    fn mac(&self, show: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(show.as_bytes());
        mac.update(&[0]);
        mac.update(body);
        mac
    }
}

impl std::fmt::Debug for PowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PowKey(<redacted>)")
    }
}

/// A fresh challenge for `show`, expiring [`CHALLENGE_TTL_MS`] after `now_ms`.
pub(crate) fn challenge(key: &PowKey, show: &str, now_ms: i64, nonce: [u8; NONCE]) -> String {
    let mut bytes = Vec::with_capacity(EXPIRY + NONCE + TAG);
    bytes.extend_from_slice(&(now_ms + CHALLENGE_TTL_MS).to_be_bytes());
    bytes.extend_from_slice(&nonce);
    let tag = key.mac(show, &bytes).finalize().into_bytes();
    bytes.extend(tag.iter().take(TAG));
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Checks a challenge and its solution; returns the nonce (hex) to spend and the
/// challenge's expiry.
pub(crate) fn check(
    key: &PowKey,
    show: &str,
    challenge: &str,
    solution: &str,
    difficulty: u8,
    now_ms: i64,
) -> Result<(String, i64), PowError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(challenge)
        .map_err(|_| PowError::Forged)?;
    if bytes.len() != EXPIRY + NONCE + TAG {
        return Err(PowError::Forged);
    }
    let (body, tag) = bytes.split_at(EXPIRY + NONCE);
    // The show is under the MAC: a challenge for another show fails here too.
    key.mac(show, body)
        .verify_truncated_left(tag)
        .map_err(|_| PowError::Forged)?;
    let (expiry, nonce) = body.split_first_chunk::<EXPIRY>().ok_or(PowError::Forged)?;
    let expires_ms = i64::from_be_bytes(*expiry);
    if expires_ms <= now_ms {
        return Err(PowError::Expired);
    }
    if !solves(challenge, solution, difficulty) {
        return Err(PowError::Unsolved);
    }
    Ok((hex::encode(nonce), expires_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: [u8; 32] = [7; 32];

    fn key() -> PowKey {
        PowKey::new(&SECRET)
    }

    #[test]
    fn a_solved_challenge_checks_once_per_show_until_it_expires() {
        let c = challenge(&key(), "show-1", 1_000, [1; NONCE]);
        let solution = solve(&c, 8);
        let (nonce, expires) = check(&key(), "show-1", &c, &solution, 8, 2_000).unwrap();
        assert_eq!(nonce, hex::encode([1u8; NONCE]));
        assert_eq!(expires, 1_000 + CHALLENGE_TTL_MS);
        assert_eq!(
            check(&key(), "show-2", &c, &solution, 8, 2_000),
            Err(PowError::Forged)
        );
        assert_eq!(
            check(&key(), "show-1", &c, &solution, 8, expires),
            Err(PowError::Expired)
        );
        let wrong = (0u64..)
            .map(|n| n.to_string())
            .find(|s| !solves(&c, s, 8))
            .unwrap();
        assert_eq!(
            check(&key(), "show-1", &c, &wrong, 8, 2_000),
            Err(PowError::Unsolved)
        );
        assert_eq!(
            check(&PowKey::new(&[8; 32]), "show-1", &c, &solution, 8, 2_000),
            Err(PowError::Forged)
        );
        assert_eq!(
            check(&key(), "show-1", "not base64!", &solution, 8, 2_000),
            Err(PowError::Forged)
        );
    }

    /// The tag is HMAC-SHA256 over the documented fields, computed here independently; a
    /// tag made as SHA-256(secret || data), length extension's favourite, is refused.
    #[test]
    fn challenges_are_authenticated_with_hmac_sha256() {
        let expires_ms: i64 = 1_000 + CHALLENGE_TTL_MS;
        let nonce = [5u8; NONCE];
        let issued = URL_SAFE_NO_PAD
            .decode(challenge(&key(), "show-1", 1_000, nonce))
            .unwrap();
        let mut data = b"show-1\0".to_vec();
        data.extend_from_slice(&expires_ms.to_be_bytes());
        data.extend_from_slice(&nonce);
        let mut expected = Hmac::<Sha256>::new_from_slice(&SECRET).unwrap();
        expected.update(&data);
        let expected = expected.finalize().into_bytes();
        assert_eq!(&issued[..EXPIRY], &expires_ms.to_be_bytes());
        assert_eq!(&issued[EXPIRY..EXPIRY + NONCE], &nonce);
        assert_eq!(&issued[EXPIRY + NONCE..], &expected[..TAG]);

        let keyed_hash = Sha256::new()
            .chain_update(SECRET)
            .chain_update(&data)
            .finalize();
        let mut old = issued[..EXPIRY + NONCE].to_vec();
        old.extend_from_slice(&keyed_hash[..TAG]);
        let old = URL_SAFE_NO_PAD.encode(old);
        assert_eq!(
            check(&key(), "show-1", &old, &solve(&old, 4), 4, 2_000),
            Err(PowError::Forged)
        );
    }

    /// A challenge as issued: for any show, at any time of this era, with any nonce.
    fn issued() -> impl Strategy<Value = (String, i64, String)> {
        (".{0,40}", 0..i64::MAX / 2, any::<[u8; NONCE]>()).prop_map(|(show, now_ms, nonce)| {
            (challenge(&key(), &show, now_ms, nonce), now_ms, show)
        })
    }

    proptest! {
        #[test]
        fn any_challenge_and_solution_is_refused_as_forged(
            challenge in prop_oneof![any::<String>(), "[A-Za-z0-9_-]{50,60}"],
            solution in any::<String>(),
            difficulty in any::<u8>(),
            now_ms in any::<i64>(),
        ) {
            // `check` refuses a forgery before it hashes the solution: try `solves` alone too.
            solves(&challenge, &solution, difficulty);
            prop_assert_eq!(
                check(&key(), "show-1", &challenge, &solution, difficulty, now_ms),
                Err(PowError::Forged)
            );
        }

        #[test]
        fn what_solve_finds_solves_and_checks((challenge, now_ms, show) in issued(), difficulty in 0..=8u8) {
            let solution = solve(&challenge, difficulty);
            prop_assert!(solves(&challenge, &solution, difficulty));
            prop_assert!(check(&key(), &show, &challenge, &solution, difficulty, now_ms).is_ok());
        }

        #[test]
        fn challenges_with_any_character_changed_are_forged(
            (challenge, now_ms, show) in issued(),
            at in any::<prop::sample::Index>(),
            replacement in any::<char>(),
        ) {
            let at = at.index(challenge.len());
            prop_assume!(!challenge[at..].starts_with(replacement));
            let mut changed = challenge[..at].to_owned();
            changed.push(replacement);
            changed.push_str(&challenge[at + 1..]);
            // Difficulty 0: every solution solves, so only the tag can refuse it.
            prop_assert_eq!(
                check(&key(), &show, &changed, "", 0, now_ms),
                Err(PowError::Forged)
            );
        }
    }
}

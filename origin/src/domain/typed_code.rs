//! Codes people type: password reset codes and presale access codes. Drawn from letters
//! and digits that cannot be misread for one another, compared as typed loosely (letter
//! case, spaces and hyphens do not count), and stored only as a hash bound to what the
//! code opens, so one hash names one account's or one show's code.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Letters and digits that cannot be misread for one another (no 0/O, 1/I/L).
pub(crate) const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A new code of `chars` characters of [`ALPHABET`] (about 4.95 bits each).
pub(crate) fn random(chars: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..chars)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A code as it is compared: upper case, without spaces and hyphens.
pub(crate) fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

/// What is stored of `code` (normalised) that opens `owner` (an account, a show).
pub(crate) fn hash(owner: Uuid, code: &str) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(owner.as_bytes());
    hash.update(code.as_bytes());
    hash.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unambiguous_and_compared_as_typed_loosely() {
        let code = random(10);
        assert_eq!(code.len(), 10);
        assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
        assert_eq!(normalise(" abcde-fghjk "), "ABCDEFGHJK");
        let owner = Uuid::new_v4();
        assert_eq!(
            hash(owner, &code),
            hash(owner, &normalise(&code.to_lowercase()))
        );
        assert_ne!(hash(owner, &code), hash(Uuid::new_v4(), &code));
    }
}

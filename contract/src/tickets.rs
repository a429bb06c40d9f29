//! Signed tickets, as a scanner checks them with nothing but the published key set.
//!
//! A ticket's QR code carries `T1.<fields>.<signature>`:
//! - `fields`: base64url (no padding) of 48 bytes: the ticket id (16 bytes, the UUID's
//!   bytes), the show id (16), the seat id (8, big-endian signed) and the issue time (8,
//!   big-endian signed Unix seconds);
//! - `signature`: base64url (no padding) of the 64-byte Ed25519 signature (RFC 8032) over
//!   the ASCII bytes of `T1.<fields>`.
//!
//! The public keys are served as a JWK set (RFC 7517; `kty` `OKP`, `crv` `Ed25519`, `x` the
//! 32-byte key in base64url, `kid` its RFC 7638 thumbprint), the current signing key first,
//! then keys still valid from before a rotation. A payload is genuine when one of them
//! verifies its signature. Whether the ticket still admits (not revoked, not scanned) is
//! the show's revocation list's and the gate's to say.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
pub use ed25519_dalek::VerifyingKey;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The payload format's version prefix.
pub const VERSION: &str = "T1";
/// Ticket id, show id, seat id, issue time.
const FIELDS_LEN: usize = 16 + 16 + 8 + 8;
/// Longest payload worth reading; a real one is about 160 characters.
pub const MAX_PAYLOAD: usize = 512;

/// What a ticket's payload states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketFacts {
    /// The ticket's id.
    pub ticket: Uuid,
    /// The show it admits to.
    pub show: Uuid,
    /// The seat it is for.
    pub seat: i64,
    /// When it was issued, in Unix seconds.
    pub issued_at_s: i64,
}

/// The signed payload stating `facts`, signed with `key`.
pub fn sign(key: &SigningKey, facts: TicketFacts) -> String {
    let mut fields = Vec::with_capacity(FIELDS_LEN);
    fields.extend_from_slice(facts.ticket.as_bytes());
    fields.extend_from_slice(facts.show.as_bytes());
    fields.extend_from_slice(&facts.seat.to_be_bytes());
    fields.extend_from_slice(&facts.issued_at_s.to_be_bytes());
    let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(fields));
    let signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// The facts of `payload` if one of `keys` signed it; `None` for anything else.
pub fn verify(keys: &[VerifyingKey], payload: &str) -> Option<TicketFacts> {
    if payload.len() > MAX_PAYLOAD {
        return None;
    }
    let (signed, signature) = payload.rsplit_once('.')?;
    let fields = signed.strip_prefix(VERSION)?.strip_prefix('.')?;
    let signature: [u8; 64] = URL_SAFE_NO_PAD.decode(signature).ok()?.try_into().ok()?;
    let signature = ed25519_dalek::Signature::from_bytes(&signature);
    keys.iter()
        .find(|key| key.verify(signed.as_bytes(), &signature).is_ok())?;
    let fields = URL_SAFE_NO_PAD.decode(fields).ok()?;
    if fields.len() != FIELDS_LEN {
        return None;
    }
    let uuid = |at: usize| Uuid::from_slice(&fields[at..at + 16]).ok();
    let int = |at: usize| i64::from_be_bytes(fields[at..at + 8].try_into().expect("8 bytes"));
    Some(TicketFacts {
        ticket: uuid(0)?,
        show: uuid(16)?,
        seat: int(32),
        issued_at_s: int(40),
    })
}

/// One public key of a [`JwkSet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
    /// Its RFC 7638 thumbprint.
    pub kid: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Always `EdDSA`.
    pub alg: String,
}

/// The public keys tickets are signed with: the current one first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// A key set a scanner cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwkError {
    /// A key is not an Ed25519 public key.
    #[error("key {0}: not an Ed25519 public key")]
    NotEd25519(usize),
    /// The set has no key.
    #[error("the key set is empty")]
    Empty,
}

impl JwkSet {
    /// The set of `keys`, in order.
    pub fn of(keys: &[VerifyingKey]) -> Self {
        JwkSet {
            keys: keys
                .iter()
                .map(|key| Jwk {
                    kty: "OKP".to_owned(),
                    crv: "Ed25519".to_owned(),
                    x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
                    kid: crate::tokens::thumbprint(key.as_bytes()),
                    use_: "sig".to_owned(),
                    alg: "EdDSA".to_owned(),
                })
                .collect(),
        }
    }

    /// The set's keys, to verify with.
    pub fn verifying_keys(&self) -> Result<Vec<VerifyingKey>, JwkError> {
        if self.keys.is_empty() {
            return Err(JwkError::Empty);
        }
        self.keys
            .iter()
            .enumerate()
            .map(|(at, jwk)| {
                let bytes: [u8; 32] = (jwk.kty == "OKP" && jwk.crv == "Ed25519")
                    .then(|| URL_SAFE_NO_PAD.decode(&jwk.x).ok())
                    .flatten()
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or(JwkError::NotEd25519(at))?;
                VerifyingKey::from_bytes(&bytes).map_err(|_| JwkError::NotEd25519(at))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn facts() -> TicketFacts {
        TicketFacts {
            ticket: Uuid::from_u128(1),
            show: Uuid::from_u128(2),
            seat: 42,
            issued_at_s: 1_700_000_000,
        }
    }

    #[test]
    fn a_payload_verifies_with_the_published_set_and_nothing_else() {
        let (current, previous) = (key(1), key(2));
        let set = JwkSet::of(&[current.verifying_key(), previous.verifying_key()]);
        let json = serde_json::to_string(&set).unwrap();
        let keys = serde_json::from_str::<JwkSet>(&json)
            .unwrap()
            .verifying_keys()
            .unwrap();
        assert_eq!(verify(&keys, &sign(&current, facts())), Some(facts()));
        assert_eq!(verify(&keys, &sign(&previous, facts())), Some(facts()));
        assert_eq!(verify(&keys, &sign(&key(3), facts())), None);
        let payload = sign(&current, facts());
        let tampered = payload.replacen("T1.", "T1.A", 1);
        assert_eq!(verify(&keys, &tampered), None);
        assert_eq!(verify(&keys, "T1.."), None);
    }

    #[test]
    fn a_set_says_what_is_wrong_with_it() {
        assert_eq!(
            JwkSet { keys: vec![] }.verifying_keys(),
            Err(JwkError::Empty)
        );
        let mut set = JwkSet::of(&[key(1).verifying_key()]);
        set.keys[0].crv = "P-256".to_owned();
        assert_eq!(set.verifying_keys(), Err(JwkError::NotEd25519(0)));
    }
}

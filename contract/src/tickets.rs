//! Signed tickets, as a scanner checks them with nothing but the published key set.
//!
//! A ticket's QR code carries `T1.<fields>.<signature>`:
//! - `fields`: base64url (no padding) of 48 bytes: the ticket id (16 bytes, the UUID's
//!   bytes), the show id (16), the seat id (8, big-endian signed; 0 for a general-admission
//!   place, which has no seat) and the issue time (8, big-endian signed Unix seconds);
//! - `signature`: base64url (no padding) of the 64-byte Ed25519 signature (RFC 8032) over
//!   the ASCII bytes of `T1.<fields>`.
//!
//! A show may rotate its QR codes, so a screenshot goes stale: the fan's device then shows
//! `T1.<fields>.<signature>.<step>.<code>`, where `step` is the time step (Unix seconds
//! divided by the show's `rotate_s`, rounded down, in decimal) and `code` the step's 8-digit
//! code under the ticket's own secret: RFC 6238 (TOTP) with HMAC-SHA256, T0 = 0, the
//! secret delivered to the owner's device only. The signature covers the first three
//! parts alone; the code is checked online, where the secret is.
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

/// The seat id of a general-admission ticket: seat ids start at 1.
pub const GENERAL_ADMISSION: i64 = 0;

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
    /// The seat it is for; [`GENERAL_ADMISSION`] for a place without a seat.
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

/// The facts of `payload` if one of `keys` signed it; `None` for anything else. A rotating
/// code, if any, is not looked at: see [`split_rotation`].
pub fn verify(keys: &[VerifyingKey], payload: &str) -> Option<TicketFacts> {
    if payload.len() > MAX_PAYLOAD {
        return None;
    }
    let (payload, _) = split_rotation(payload);
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

/// Digits of a rotating code.
pub const CODE_DIGITS: usize = 8;

/// The time step and code a rotating payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotatingCode {
    /// The time step: Unix seconds divided by the show's period, rounded down.
    pub step: i64,
    /// The code, as digits.
    pub code: [u8; CODE_DIGITS],
}

/// The signed part of `payload` and, for a rotating payload, its step and code.
pub fn split_rotation(payload: &str) -> (&str, Option<RotatingCode>) {
    let rotating = payload.rsplit_once('.').and_then(|(rest, code)| {
        let (signed, step) = rest.rsplit_once('.')?;
        let code: [u8; CODE_DIGITS] = code.as_bytes().try_into().ok()?;
        let digits = |text: &[u8]| text.iter().all(u8::is_ascii_digit);
        let step = step
            .parse::<i64>()
            .ok()
            .filter(|_| digits(step.as_bytes()) && digits(&code))?;
        Some((signed, RotatingCode { step, code }))
    });
    match rotating {
        Some((signed, code)) => (signed, Some(code)),
        None => (payload, None),
    }
}

/// The time step `unix_s` falls in, for a period of `period_s` seconds.
pub fn step_at(unix_s: i64, period_s: u32) -> i64 {
    unix_s.div_euclid(i64::from(period_s.max(1)))
}

/// The code of `step` under `secret`: HOTP (RFC 4226) with HMAC-SHA256, as RFC 6238
/// computes it for a time step.
pub fn code_at(secret: &[u8], step: i64) -> [u8; CODE_DIGITS] {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let truncated =
        u32::from_be_bytes(digest[offset..offset + 4].try_into().expect("4 bytes")) & 0x7fff_ffff;
    let mut value = truncated % 10u32.pow(CODE_DIGITS as u32);
    let mut code = [b'0'; CODE_DIGITS];
    for digit in code.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
    code
}

/// `payload` as shown during `step`, for a ticket whose secret is `secret`.
pub fn rotate(payload: &str, secret: &[u8], step: i64) -> String {
    let code = code_at(secret, step);
    format!(
        "{payload}.{step}.{}",
        std::str::from_utf8(&code).expect("digits")
    )
}

/// Whether `rotating` is a genuine code of `secret` for a step at most `max_behind` steps
/// before `now_step` and at most one after it (a device clock a little ahead).
pub fn code_admits(secret: &[u8], rotating: RotatingCode, now_step: i64, max_behind: i64) -> bool {
    use subtle::ConstantTimeEq as _;
    (now_step - max_behind..=now_step + 1).contains(&rotating.step)
        && bool::from(code_at(secret, rotating.step).ct_eq(&rotating.code))
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

    /// RFC 6238, appendix B: the SHA-256 rows (30-second steps, 8 digits).
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890123456789012";
        for (time, code) in [
            (59, "46119246"),
            (1_111_111_109, "68084774"),
            (1_111_111_111, "67062674"),
            (1_234_567_890, "91819424"),
            (2_000_000_000, "90698825"),
            (20_000_000_000, "77737706"),
        ] {
            assert_eq!(code_at(secret, step_at(time, 30)), code.as_bytes());
        }
    }

    #[test]
    fn a_rotating_payload_still_verifies_and_its_code_is_told_apart() {
        let keys = [key(1).verifying_key()];
        let payload = sign(&key(1), facts());
        let secret = [7u8; 32];
        let shown = rotate(&payload, &secret, 1234);
        assert_eq!(verify(&keys, &shown), Some(facts()));
        let (signed, rotating) = split_rotation(&shown);
        assert_eq!(signed, payload);
        let rotating = rotating.expect("a code");
        assert_eq!(rotating.step, 1234);
        assert!(code_admits(&secret, rotating, 1234, 2));
        assert!(code_admits(&secret, rotating, 1236, 2), "two steps old");
        assert!(!code_admits(&secret, rotating, 1237, 2), "three steps old");
        assert!(code_admits(&secret, rotating, 1233, 2), "one step ahead");
        assert!(!code_admits(&secret, rotating, 1232, 2), "two steps ahead");
        assert!(
            !code_admits(&[8u8; 32], rotating, 1234, 2),
            "another ticket's secret"
        );
        assert_eq!(split_rotation(&payload), (payload.as_str(), None));
        let other_step = format!("{payload}.1235.{}", &shown[shown.len() - 8..]);
        let (_, moved) = split_rotation(&other_step);
        assert!(
            !code_admits(&secret, moved.unwrap(), 1235, 2),
            "a code moved to another step"
        );
        for odd in [".-1.12345678", ".12.1234567", ".12.1234567a", "..12345678"] {
            assert_eq!(split_rotation(&format!("{payload}{odd}")).1, None, "{odd}");
        }
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

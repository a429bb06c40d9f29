//! Queue and admission tokens.
//!
//! Admission tokens are JWTs signed with Ed25519 (`EdDSA`), so verifiers (the edge and the
//! origin) hold only public keys. The `kid` header is the key's RFC 7638 JWK thumbprint; a
//! verifier holds the current and previous keys, so the signing key can rotate without
//! failed requests. Verification pins the algorithm (no `none`, no HMAC-with-the-public-key
//! confusion), checks `iss`, `exp` (with leeway) and the token type.
//!
//! Queue tokens are read only by the edge nodes that issue them, so they are HS256 JWTs
//! ([`QueueKeys`]) MACed with secrets every node holds: a join costs an HMAC instead of an
//! Ed25519 signature. The `kid` is the first 16 hex characters of the key's SHA-256; the
//! first key signs, every key verifies, so the secret rotates like the signing key.
//! Verification pins HS256 and the queue type: an EdDSA token or `alg: none` is refused.

use base64::engine::general_purpose::STANDARD;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::Arc;

/// What a token entitles its holder to; carried in the `typ` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// A place in a show's waiting room.
    Queue,
    /// Admission past the waiting room, to buy tickets for the show.
    Admit,
}

/// The claims of a queue or admission token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: who signed the token.
    pub iss: String,
    /// The fan.
    pub sub: String,
    /// The show the token is for.
    pub show: String,
    /// The token type.
    pub typ: TokenType,
    /// Issued at, in Unix seconds.
    pub iat: i64,
    /// Expires at, in Unix seconds.
    pub exp: i64,
    /// The token's unique id.
    pub jti: String,
    /// A queue token's number in its lane; an admission token's place in the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_no: Option<u64>,
    /// Which numbering a queue token's `queue_no` is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<Lane>,
}

/// A queue token's lane: pre-queue numbers are join order before the sale opened (the fan's
/// place is drawn at the opening); open numbers are places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// Joined before the sale opened; the number is join order, not yet a place.
    PreQueue,
    /// Joined after the opening; the number is the place in the queue.
    Open,
}

/// Why a signing or verifying key could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("{path}: {message}")]
    Read {
        /// The key file.
        path: String,
        /// The I/O failure.
        message: String,
    },
    /// The PEM does not hold an Ed25519 key of the expected form (PKCS#8 private, SPKI public).
    #[error("not an Ed25519 key: {0}")]
    NotEd25519(String),
    /// A queue key file does not hold base64 of at least [`MIN_QUEUE_KEY_BYTES`] bytes, or
    /// no queue key was given.
    #[error("not a queue key: {0}")]
    NotQueueKey(String),
}

/// Why a presented token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a parseable JWT.
    #[error("the token is malformed")]
    Malformed,
    /// The header names another algorithm than the one this kind of token is signed with
    /// (EdDSA for admission, HS256 for queue tokens).
    #[error("the token is signed with an algorithm not accepted for it")]
    WrongAlgorithm,
    /// The `kid` is missing or names no key this verifier holds.
    #[error("the token's key is not known here")]
    UnknownKey,
    /// The signature does not verify, or a required claim is missing or wrong.
    #[error("the token's signature or claims are invalid")]
    Invalid,
    /// The token is past its `exp`.
    #[error("the token has expired")]
    Expired,
    /// A valid token of another type than the route needs; holds the type presented.
    #[error("the token is a {0:?} token, not the kind this route needs")]
    WrongType(TokenType),
}

impl TokenError {
    /// What a fan is told when a token of type `wanted` is refused for this reason.
    pub fn fan_detail(&self, wanted: TokenType) -> &'static str {
        match (self, wanted) {
            (TokenError::Expired, TokenType::Queue) => "the queue token has expired; join again",
            (TokenError::Expired, TokenType::Admit) => "the admission token has expired",
            (TokenError::WrongType(_), TokenType::Queue) => "this is not a queue token",
            (TokenError::WrongType(_), TokenType::Admit) => "this is not an admission token",
            (_, TokenType::Queue) => "the queue token is not valid",
            (_, TokenType::Admit) => "the admission token is not valid",
        }
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key: SHA-256 over the canonical JWK
/// `{"crv":"Ed25519","kty":"OKP","x":...}`, base64url without padding.
pub fn thumbprint(public_key: &[u8; 32]) -> String {
    let jwk = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public_key)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.as_bytes()))
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|e| KeyError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Signs tokens with one private key (PKCS#8 PEM).
pub struct Signer {
    kid: String,
    /// The expanded key, kept: a JWT library signer re-parses the PKCS#8 document and
    /// re-derives the public key on every signature, doubling its cost.
    key: ed25519_dalek::SigningKey,
    /// `base64url(header) "."`, the same for every token this key signs.
    header: String,
    issuer: String,
}

impl Signer {
    /// A signer from a PKCS#8 PEM private key, issuing tokens as `issuer`.
    pub fn from_pem(pem: &str, issuer: &str) -> Result<Self, KeyError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| KeyError::NotEd25519(e.to_string()))?;
        let kid = thumbprint(key.verifying_key().as_bytes());
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        let header = serde_json::to_vec(&header).expect("a JWT header serializes");
        Ok(Signer {
            header: format!("{}.", URL_SAFE_NO_PAD.encode(header)),
            kid,
            key,
            issuer: issuer.to_owned(),
        })
    }

    /// A signer from a PKCS#8 PEM file, issuing tokens as `issuer`.
    pub fn from_file(path: &Path, issuer: &str) -> Result<Self, KeyError> {
        Self::from_pem(&read(path)?, issuer)
    }

    /// The key id (RFC 7638 thumbprint) put in every token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The `iss` claim of the tokens this signer issues.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A token for `fan` and `show`, valid for `ttl_s` from `now_s`.
    pub fn issue(
        &self,
        typ: TokenType,
        fan: &str,
        show: &str,
        now_s: i64,
        ttl_s: i64,
        queue_no: Option<u64>,
    ) -> String {
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: fan.to_owned(),
            show: show.to_owned(),
            typ,
            iat: now_s,
            exp: now_s + ttl_s,
            jti: random_id(),
            queue_no,
            lane: None,
        };
        self.sign(&claims)
    }

    /// A compact JWS (RFC 7515) over `claims`, EdDSA, with this key's `kid`.
    pub fn sign(&self, claims: &Claims) -> String {
        use ed25519_dalek::Signer as _;
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let mut token = String::with_capacity(self.header.len() + payload.len() * 4 / 3 + 90);
        token.push_str(&self.header);
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = self.key.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
        token
    }
}

/// 128 random bits, base64url: for fan ids and `jti`s (from the thread's CSPRNG, no
/// system call per id).
pub fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// Verifies tokens against a set of public keys (SPKI PEM), by `kid`.
pub struct Verifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl Verifier {
    /// A verifier for tokens from `issuer`, signed by any of the SPKI PEM public keys,
    /// allowing `leeway_s` seconds of clock skew on expiry.
    pub fn from_pems<'a>(
        pems: impl IntoIterator<Item = &'a str>,
        issuer: &str,
        leeway_s: u64,
    ) -> Result<Self, KeyError> {
        let mut keys = HashMap::new();
        for pem in pems {
            let public = ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
                .map_err(|e| KeyError::NotEd25519(e.to_string()))?;
            let key = DecodingKey::from_ed_pem(pem.as_bytes())
                .map_err(|e| KeyError::NotEd25519(e.to_string()))?;
            keys.insert(thumbprint(public.as_bytes()), key);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = leeway_s;
        Ok(Verifier { keys, validation })
    }

    /// Like [`Verifier::from_pems`], reading each public key from a PEM file.
    pub fn from_files(
        paths: &[impl AsRef<Path>],
        issuer: &str,
        leeway_s: u64,
    ) -> Result<Self, KeyError> {
        let pems = paths
            .iter()
            .map(|p| read(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_pems(pems.iter().map(String::as_str), issuer, leeway_s)
    }

    /// The key ids (thumbprints) this verifier accepts.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The claims of a valid token of type `typ`.
    pub fn verify(&self, token: &str, typ: TokenType) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::WrongAlgorithm);
        }
        let key = header
            .kid
            .and_then(|kid| self.keys.get(&kid))
            .ok_or(TokenError::UnknownKey)?;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                }
            })?;
        if data.claims.typ != typ {
            return Err(TokenError::WrongType(data.claims.typ));
        }
        if typ == TokenType::Admit
            && data.claims.exp.saturating_sub(data.claims.iat) > MAX_ADMISSION_LIFETIME_S
        {
            return Err(TokenError::Invalid);
        }
        Ok(data.claims)
    }
}

/// The longest an admission token may live, `iat` to `exp`, in seconds: a day. The edge
/// signs none longer and a verifier refuses any longer, so a spent admission needs
/// remembering only until every token that could carry its `jti` has expired.
pub const MAX_ADMISSION_LIFETIME_S: i64 = 86_400;

/// The shortest queue key accepted, in bytes (the HMAC-SHA256 block's worth of entropy
/// RFC 7518 asks of an HS256 key).
pub const MIN_QUEUE_KEY_BYTES: usize = 32;

/// A queue key's id: the first 16 hex characters of the key's SHA-256.
pub fn queue_kid(secret: &[u8]) -> String {
    Sha256::digest(secret)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh queue key, base64 as a key file holds it: for tests and tooling.
pub fn generate_queue_key() -> String {
    STANDARD.encode(rand::random::<[u8; 32]>())
}

/// One HS256 key: its id, the header every token it MACs carries, and the MAC keyed once.
struct QueueKey {
    kid: String,
    /// `base64url({"alg":"HS256","kid":...}) "."`.
    header: String,
    mac: Hmac<Sha256>,
}

impl QueueKey {
    fn new(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_QUEUE_KEY_BYTES {
            return Err(KeyError::NotQueueKey(format!(
                "{} bytes; at least {MIN_QUEUE_KEY_BYTES} are needed",
                secret.len()
            )));
        }
        let kid = queue_kid(secret);
        let header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#);
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|e| KeyError::NotQueueKey(e.to_string()))?;
        Ok(QueueKey {
            header: format!("{}.", URL_SAFE_NO_PAD.encode(header)),
            kid,
            mac,
        })
    }
}

/// The header fields a queue token's verification looks at.
#[derive(Deserialize)]
struct JwsHeader<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<std::borrow::Cow<'a, str>>,
}

/// Signs and verifies queue tokens: HS256 JWTs MACed with secrets shared by the edge
/// nodes. The first key signs; every key verifies, found by `kid`.
pub struct QueueKeys {
    signing: QueueKey,
    verifying: HashMap<String, Hmac<Sha256>>,
    issuer: String,
}

impl QueueKeys {
    /// Keys from raw secrets, the first of which signs; tokens are issued as `issuer`.
    pub fn from_secrets<'a>(
        secrets: impl IntoIterator<Item = &'a [u8]>,
        issuer: &str,
    ) -> Result<Self, KeyError> {
        let keys = secrets
            .into_iter()
            .map(QueueKey::new)
            .collect::<Result<Vec<_>, _>>()?;
        let mut keys = keys.into_iter();
        let signing = keys
            .next()
            .ok_or_else(|| KeyError::NotQueueKey("no queue key given".to_owned()))?;
        let mut verifying: HashMap<String, Hmac<Sha256>> =
            keys.map(|key| (key.kid, key.mac)).collect();
        verifying.insert(signing.kid.clone(), signing.mac.clone());
        Ok(QueueKeys {
            signing,
            verifying,
            issuer: issuer.to_owned(),
        })
    }

    /// Keys from files each holding one base64 secret (surrounding whitespace ignored);
    /// the first file's key signs.
    pub fn from_files(paths: &[impl AsRef<Path>], issuer: &str) -> Result<Self, KeyError> {
        let secrets = paths
            .iter()
            .map(|path| {
                let path = path.as_ref();
                STANDARD.decode(read(path)?.trim()).map_err(|e| {
                    KeyError::NotQueueKey(format!("{}: not base64: {e}", path.display()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_secrets(secrets.iter().map(Vec::as_slice), issuer)
    }

    /// The id of the key that signs.
    pub fn kid(&self) -> &str {
        &self.signing.kid
    }

    /// The ids of every key that verifies.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.verifying.keys().map(String::as_str)
    }

    /// The `iss` claim of the tokens these keys issue and accept.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A compact JWS over `claims`, HS256, with the signing key's `kid`.
    pub fn sign(&self, claims: &Claims) -> serde_json::Result<String> {
        let payload = serde_json::to_vec(claims)?;
        let key = &self.signing;
        let mut token = String::with_capacity(key.header.len() + payload.len() * 4 / 3 + 48);
        token.push_str(&key.header);
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let mut mac = key.mac.clone();
        mac.update(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
        Ok(token)
    }

    /// The claims of a valid queue token, judged by the caller's clock (`now_s`): HS256
    /// with a known `kid`, a MAC that verifies, this issuer, the queue type, unexpired.
    pub fn verify(&self, token: &str, now_s: i64) -> Result<Claims, TokenError> {
        let claims = self.check(token, TokenType::Queue)?;
        if claims.exp <= now_s {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// What a [`VerifiedCache`] checks the tokens it has not seen with.
pub trait TokenCheck {
    /// The claims of `token` if it is a valid token of type `typ`; its expiry is the
    /// caller's to judge, by the caller's clock.
    fn check(&self, token: &str, typ: TokenType) -> Result<Claims, TokenError>;
}

impl TokenCheck for Verifier {
    fn check(&self, token: &str, typ: TokenType) -> Result<Claims, TokenError> {
        self.verify(token, typ)
    }
}

impl<T: TokenCheck> TokenCheck for Arc<T> {
    fn check(&self, token: &str, typ: TokenType) -> Result<Claims, TokenError> {
        T::check(self, token, typ)
    }
}

impl TokenCheck for QueueKeys {
    /// HS256 with a known `kid`, a MAC that verifies, this issuer, type `typ` (only queue
    /// tokens are ever MACed).
    fn check(&self, token: &str, typ: TokenType) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header_json = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?;
        let header_fields: JwsHeader<'_> =
            serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
        if header_fields.alg != "HS256" {
            return Err(TokenError::WrongAlgorithm);
        }
        let mut mac = header_fields
            .kid
            .and_then(|kid| self.verifying.get(kid.as_ref()))
            .ok_or(TokenError::UnknownKey)?
            .clone();
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Invalid)?;
        mac.update(&token.as_bytes()[..header.len() + 1 + payload.len()]);
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Invalid)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Invalid)?;
        if claims.iss != self.issuer {
            return Err(TokenError::Invalid);
        }
        if claims.typ != typ {
            return Err(TokenError::WrongType(claims.typ));
        }
        Ok(claims)
    }
}

/// The cookie that carries an admission token when there is no `Authorization` header.
pub const ADMIT_COOKIE: &str = "onsale_admit";
/// Where a fan without a valid admission token goes: the `join` link of 401/403 refusals.
pub const WAITING_ROOM_PATH: &str = "/v1/waiting-room/sessions";
/// The cookie that carries a queue token when there is no `Authorization` header.
pub const QUEUE_COOKIE: &str = "onsale_queue";
/// Set by the origin on the answer that confirms an order: the fan's admission has done its
/// job, so the edge ends the waiting-room session (freeing the place) and strips the header.
/// A confirmation still awaiting 3-D Secure or a slow payment does not carry it.
pub const ADMISSION_SPENT_HEADER: &str = "onsale-admission-spent";

/// The cookie that carries a fan's session (an opaque token issued at sign-in).
pub const SESSION_COOKIE: &str = "onsale_session";
/// Every session token starts with this; queue and admission JWTs never do, so one
/// `Authorization: Bearer` header is never mistaken for the other kind.
pub const SESSION_PREFIX: &str = "ses_";

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

/// The JWT a request presents: `Authorization: Bearer <jwt>` (a session token there is
/// not one), else the named cookie. Any HTTP stack built on the `http` crate (axum,
/// Pingora) passes its header map.
pub fn presented<'a>(headers: &'a http::HeaderMap, cookie_name: &str) -> Option<&'a str> {
    match bearer(headers) {
        Some(token) if !token.starts_with(SESSION_PREFIX) => Some(token),
        _ => cookie(headers, cookie_name),
    }
}

/// The session a request presents: a bearer token with [`SESSION_PREFIX`], else the
/// [`SESSION_COOKIE`].
pub fn presented_session(headers: &http::HeaderMap) -> Option<&str> {
    match bearer(headers) {
        Some(token) if token.starts_with(SESSION_PREFIX) => Some(token),
        _ => cookie(headers, SESSION_COOKIE),
    }
}

/// How many characters of a token's signature key its cache entry: 192 bits of a MAC or
/// an Ed25519 signature, whose segment is never shorter (43 and 86 characters).
const SIGNATURE_KEY_CHARS: usize = 32;

/// The cache key of `token`: the last [`SIGNATURE_KEY_CHARS`] characters of its signature,
/// or none when its last segment is shorter (such a token never verifies).
fn signature_key(token: &str) -> Option<[u8; SIGNATURE_KEY_CHARS]> {
    let (_, signature) = token.rsplit_once('.')?;
    signature.as_bytes().last_chunk().copied()
}

/// A verified token's claims, and a seeded hash of the whole token.
struct Cached {
    token_hash: u64,
    claims: Arc<Claims>,
}

/// Verified tokens by [`signature_key`]; the keys are signatures, so a fast hash does.
type CacheMap = HashMap<[u8; SIGNATURE_KEY_CHARS], Cached, foldhash::fast::RandomState>;

/// Verified tokens of one type, cached until they expire, so a fan's repeated requests cost
/// a map lookup and a fast hash instead of a signature check (or a MAC check and its
/// parsing). Entries are keyed by the token's signature: nobody without the signing key
/// can make a token whose signature matches one in the cache other than by holding that
/// token. A hit also needs the whole token's hash (seeded per process) to match, so a token
/// altered around a known signature is checked in full, and refused, as when the cache is
/// cold. Bounded: when full, expired entries go first, then everything.
pub struct VerifiedCache<V = Verifier> {
    verifier: V,
    typ: TokenType,
    entries: std::sync::Mutex<CacheMap>,
    token_hasher: foldhash::quality::RandomState,
    max_entries: usize,
    /// Tokens answered from the cache.
    pub hits: prometheus::IntCounter,
    /// Tokens whose signature had to be checked.
    pub misses: prometheus::IntCounter,
}

/// `token_cache_hits_total` / `token_cache_misses_total`, by token type.
#[derive(Clone)]
pub struct CacheCounters {
    hits: prometheus::IntCounterVec,
    misses: prometheus::IntCounterVec,
}

impl CacheCounters {
    /// Registers both counters in `registry`; once per registry, shared by every cache.
    pub fn register(registry: &prometheus::Registry) -> Self {
        let vec =
            |name: &str, help: &str| crate::metrics::counter_vec(registry, name, help, &["typ"]);
        CacheCounters {
            hits: vec("token_cache_hits_total", "Tokens answered from the cache"),
            misses: vec(
                "token_cache_misses_total",
                "Tokens whose signature was checked",
            ),
        }
    }
}

impl TokenType {
    /// The type's wire name, also its metric label.
    pub fn name(self) -> &'static str {
        match self {
            TokenType::Queue => "queue",
            TokenType::Admit => "admit",
        }
    }
}

impl<V: TokenCheck> VerifiedCache<V> {
    /// A cache of tokens of type `typ` checked by `verifier`, holding at most `max_entries`.
    pub fn new(verifier: V, typ: TokenType, max_entries: usize, counters: &CacheCounters) -> Self {
        VerifiedCache {
            verifier,
            typ,
            entries: std::sync::Mutex::default(),
            token_hasher: foldhash::quality::RandomState::default(),
            max_entries,
            hits: counters.hits.with_label_values(&[typ.name()]),
            misses: counters.misses.with_label_values(&[typ.name()]),
        }
    }

    /// The verifier behind the cache.
    pub fn verifier(&self) -> &V {
        &self.verifier
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, CacheMap> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The token's claims, shared: a hit costs a lookup and a reference count, no copies.
    pub fn verify(&self, token: &str, now_s: i64) -> Result<Arc<Claims>, TokenError> {
        let Some(key) = signature_key(token) else {
            self.misses.inc();
            return self.checked(token, now_s);
        };
        let token_hash = self.token_hasher.hash_one(token.as_bytes());
        let entries = self.entries();
        if let Some(cached) = entries.get(&key) {
            if cached.token_hash == token_hash && cached.claims.exp > now_s {
                self.hits.inc();
                return Ok(cached.claims.clone());
            }
        }
        drop(entries);
        self.misses.inc();
        let claims = self.checked(token, now_s)?;
        let mut entries = self.entries();
        if entries.len() >= self.max_entries {
            entries.retain(|_, cached| cached.claims.exp > now_s);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        let cached = Cached {
            token_hash,
            claims: claims.clone(),
        };
        entries.insert(key, cached);
        Ok(claims)
    }

    /// `token` checked in full, its expiry by the caller's clock.
    fn checked(&self, token: &str, now_s: i64) -> Result<Arc<Claims>, TokenError> {
        let claims = self.verifier.check(token, self.typ)?;
        // A signature check judges expiry by the system clock; the caller's clock rules.
        if claims.exp <= now_s {
            return Err(TokenError::Expired);
        }
        Ok(Arc::new(claims))
    }
}

/// A fresh Ed25519 pair as (PKCS#8 private PEM, SPKI public PEM): for tests and tooling.
pub fn generate_pem_pair() -> (String, String) {
    let signing = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let private = signing
        .to_pkcs8_pem(Default::default())
        .expect("PKCS#8 encoding cannot fail")
        .to_string();
    let public = signing
        .verifying_key()
        .to_public_key_pem(Default::default())
        .expect("SPKI encoding cannot fail");
    (private, public)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_session_and_a_jwt_are_told_apart_whichever_travels_as_bearer() {
        let headers = |bearer: Option<&str>, cookies: &str| {
            let mut map = http::HeaderMap::new();
            if let Some(token) = bearer {
                map.insert(
                    http::header::AUTHORIZATION,
                    format!("Bearer {token}").parse().unwrap(),
                );
            }
            map.insert(http::header::COOKIE, cookies.parse().unwrap());
            map
        };
        let cookies = "onsale_admit=jwt-cookie; onsale_session=ses_cookie";
        let session_bearer = headers(Some("ses_bearer"), cookies);
        assert_eq!(presented_session(&session_bearer), Some("ses_bearer"));
        assert_eq!(presented(&session_bearer, ADMIT_COOKIE), Some("jwt-cookie"));
        let jwt_bearer = headers(Some("a.b.c"), cookies);
        assert_eq!(presented(&jwt_bearer, ADMIT_COOKIE), Some("a.b.c"));
        assert_eq!(presented_session(&jwt_bearer), Some("ses_cookie"));
        assert_eq!(presented_session(&headers(None, "onsale_admit=x")), None);
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn pair() -> (Signer, Verifier) {
        let (private, public) = generate_pem_pair();
        let signer = Signer::from_pem(&private, "onsale-edge").unwrap();
        let verifier = Verifier::from_pems([public.as_str()], "onsale-edge", 5).unwrap();
        (signer, verifier)
    }

    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        assert_eq!(
            thumbprint(&x.try_into().unwrap()),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn round_trips_and_checks_type() {
        let (signer, verifier) = pair();
        let token = signer.issue(TokenType::Admit, "fan-1", "show-1", now(), 600, None);
        let claims = verifier.verify(&token, TokenType::Admit).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.show.as_str()),
            ("fan-1", "show-1")
        );
        assert_eq!(
            verifier.verify(&token, TokenType::Queue),
            Err(TokenError::WrongType(TokenType::Admit))
        );
        assert!(verifier.kids().any(|kid| kid == signer.kid()));
    }

    #[test]
    fn refuses_expired_foreign_forged_and_confused_tokens() {
        let (signer, verifier) = pair();
        let expired = signer.issue(TokenType::Admit, "fan", "show", now() - 3600, 60, None);
        assert_eq!(
            verifier.verify(&expired, TokenType::Admit),
            Err(TokenError::Expired)
        );

        let day = MAX_ADMISSION_LIFETIME_S;
        let longest = signer.issue(TokenType::Admit, "fan", "show", now(), day, None);
        assert!(verifier.verify(&longest, TokenType::Admit).is_ok());
        let too_long = signer.issue(TokenType::Admit, "fan", "show", now(), day + 1, None);
        assert_eq!(
            verifier.verify(&too_long, TokenType::Admit),
            Err(TokenError::Invalid)
        );

        let (other, _) = pair();
        let foreign = other.issue(TokenType::Admit, "fan", "show", now(), 600, None);
        assert_eq!(
            verifier.verify(&foreign, TokenType::Admit),
            Err(TokenError::UnknownKey)
        );

        let token = signer.issue(TokenType::Admit, "fan", "show", now(), 600, None);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        claims["show"] = "another-show".into();
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert_eq!(
            verifier.verify(&parts.join("."), TokenType::Admit),
            Err(TokenError::Invalid)
        );

        let none_header =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, signer.kid()));
        let none = format!("{none_header}.{}.", parts[1]);
        assert!(verifier.verify(&none, TokenType::Admit).is_err());

        let hs_header =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","kid":"{}"}}"#, signer.kid()));
        let hs = format!("{hs_header}.{}.{}", parts[1], parts[2]);
        assert_eq!(
            verifier.verify(&hs, TokenType::Admit),
            Err(TokenError::WrongAlgorithm)
        );
        assert_eq!(
            verifier.verify("not a token", TokenType::Admit),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn verifies_with_current_and_previous_keys() {
        let (old_private, old_public) = generate_pem_pair();
        let (new_private, new_public) = generate_pem_pair();
        let verifier =
            Verifier::from_pems([old_public.as_str(), new_public.as_str()], "onsale-edge", 5)
                .unwrap();
        for private in [old_private, new_private] {
            let token = Signer::from_pem(&private, "onsale-edge").unwrap().issue(
                TokenType::Admit,
                "f",
                "s",
                now(),
                60,
                None,
            );
            assert!(verifier.verify(&token, TokenType::Admit).is_ok());
        }
    }

    fn queue_claims(typ: TokenType, exp: i64) -> Claims {
        Claims {
            iss: "onsale-edge".into(),
            sub: "0193a6f0-0000-7000-8000-000000000001".into(),
            show: "show-1".into(),
            typ,
            iat: now(),
            exp,
            jti: random_id(),
            queue_no: Some(7),
            lane: Some(Lane::Open),
        }
    }

    fn queue_keys(secrets: &[&[u8]]) -> QueueKeys {
        QueueKeys::from_secrets(secrets.iter().copied(), "onsale-edge").unwrap()
    }

    #[test]
    fn queue_tokens_round_trip_under_a_sha256_kid() {
        let keys = queue_keys(&[&[7u8; 32]]);
        assert_eq!(keys.kid().len(), 16);
        assert!(keys.kid().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(keys.kid(), queue_kid(&[7u8; 32]));
        let claims = queue_claims(TokenType::Queue, now() + 60);
        let token = keys.sign(&claims).unwrap();
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["kid"], keys.kid());
        assert_eq!(keys.verify(&token, now()), Ok(claims));
    }

    #[test]
    fn queue_keys_refuse_other_algorithms_types_keys_and_forgeries() {
        let keys = queue_keys(&[&[1u8; 32]]);
        let now = now();
        let token = keys
            .sign(&queue_claims(TokenType::Queue, now + 60))
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();

        // `alg: none`, with and without the key's kid.
        for header in [
            format!(r#"{{"alg":"none","kid":"{}"}}"#, keys.kid()),
            r#"{"alg":"none"}"#.to_owned(),
        ] {
            let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(header), parts[1]);
            assert_eq!(keys.verify(&none, now), Err(TokenError::WrongAlgorithm));
        }
        // An EdDSA token, even one with queue claims, is not a queue token.
        let (private, _) = generate_pem_pair();
        let eddsa = Signer::from_pem(&private, "onsale-edge")
            .unwrap()
            .sign(&queue_claims(TokenType::Queue, now + 60));
        assert_eq!(keys.verify(&eddsa, now), Err(TokenError::WrongAlgorithm));
        // HS256 under a key this node does not hold.
        let stranger = queue_keys(&[&[2u8; 32]]);
        let foreign = stranger
            .sign(&queue_claims(TokenType::Queue, now + 60))
            .unwrap();
        assert_eq!(keys.verify(&foreign, now), Err(TokenError::UnknownKey));
        // The stranger's MAC under our kid.
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            foreign.split('.').nth(2).unwrap()
        );
        assert_eq!(keys.verify(&forged, now), Err(TokenError::Invalid));
        // Claims changed after MACing.
        let mut claims = queue_claims(TokenType::Queue, now + 60);
        claims.queue_no = Some(0);
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
            parts[2]
        );
        assert_eq!(keys.verify(&tampered, now), Err(TokenError::Invalid));
        // Right key, wrong type, issuer or time.
        let admit = keys
            .sign(&queue_claims(TokenType::Admit, now + 60))
            .unwrap();
        assert_eq!(
            keys.verify(&admit, now),
            Err(TokenError::WrongType(TokenType::Admit))
        );
        let mut elsewhere = queue_claims(TokenType::Queue, now + 60);
        elsewhere.iss = "someone-else".into();
        let elsewhere = keys.sign(&elsewhere).unwrap();
        assert_eq!(keys.verify(&elsewhere, now), Err(TokenError::Invalid));
        assert_eq!(keys.verify(&token, now + 60), Err(TokenError::Expired));
        for garbage in ["", "a.b", "a.b.c.d", "not a token"] {
            assert!(keys.verify(garbage, now).is_err(), "{garbage}");
        }
    }

    #[test]
    fn an_hs256_token_is_never_an_admission() {
        let (private, public) = generate_pem_pair();
        let verifier = Verifier::from_pems([public.as_str()], "onsale-edge", 5).unwrap();
        let signer = Signer::from_pem(&private, "onsale-edge").unwrap();
        // MACed with the queue key, and with the public key's bytes, under the signer's kid.
        for secret in [&[3u8; 32][..], public.as_bytes()] {
            let keys = queue_keys(&[secret]);
            let token = keys
                .sign(&queue_claims(TokenType::Admit, now() + 60))
                .unwrap();
            let parts: Vec<&str> = token.split('.').collect();
            let header =
                URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","kid":"{}"}}"#, signer.kid()));
            for token in [token.clone(), format!("{header}.{}.{}", parts[1], parts[2])] {
                assert_eq!(
                    verifier.verify(&token, TokenType::Admit),
                    Err(TokenError::WrongAlgorithm)
                );
            }
        }
    }

    /// A queue-token cache holding ten entries, and a live token's claims and text.
    fn queue_cache_and_token() -> (VerifiedCache<Arc<QueueKeys>>, Claims, String) {
        let keys = Arc::new(queue_keys(&[&[1u8; 32]]));
        let counters = CacheCounters::register(&prometheus::Registry::new());
        let cache = VerifiedCache::new(keys.clone(), TokenType::Queue, 10, &counters);
        let claims = queue_claims(TokenType::Queue, now() + 60);
        let token = keys.sign(&claims).unwrap();
        (cache, claims, token)
    }

    #[test]
    fn checked_queue_tokens_are_cached_until_they_expire() {
        let (cache, claims, token) = queue_cache_and_token();
        assert_eq!(*cache.verify(&token, now()).unwrap(), claims);
        assert_eq!(*cache.verify(&token, now()).unwrap(), claims);
        assert_eq!((cache.hits.get(), cache.misses.get()), (1, 1));
        assert_eq!(cache.verify(&token, now() + 60), Err(TokenError::Expired));
        let eddsa = Signer::from_pem(&generate_pem_pair().0, "onsale-edge")
            .unwrap()
            .sign(&claims);
        assert_eq!(cache.verify(&eddsa, now()), Err(TokenError::WrongAlgorithm));
    }

    #[test]
    fn a_token_altered_around_a_cached_signature_is_checked_and_refused() {
        let (cache, claims, token) = queue_cache_and_token();
        assert_eq!(*cache.verify(&token, now()).unwrap(), claims);
        let (header, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let someone_else = Claims {
            sub: "someone-else".into(),
            ..claims.clone()
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&someone_else).unwrap());
        let altered = format!("{header}.{payload}.{signature}");
        assert_eq!(cache.verify(&altered, now()), Err(TokenError::Invalid));
        assert_eq!(
            cache.verify(&format!("{header}.{signature}"), now()),
            Err(TokenError::Malformed)
        );
        assert_eq!(cache.verify("short.sig", now()), Err(TokenError::Malformed));
        assert_eq!(*cache.verify(&token, now()).unwrap(), claims);
        assert_eq!((cache.hits.get(), cache.misses.get()), (1, 4));
    }

    #[test]
    fn queue_keys_rotate_and_refuse_short_or_missing_keys() {
        let old = [4u8; 32];
        let new = [5u8; 40];
        let before = queue_keys(&[&old]);
        let during = queue_keys(&[&new, &old]);
        let after = queue_keys(&[&new]);
        let claims = queue_claims(TokenType::Queue, now() + 60);
        let old_token = before.sign(&claims).unwrap();
        let new_token = during.sign(&claims).unwrap();
        assert_eq!(during.kid(), after.kid());
        assert!(during.verify(&old_token, now()).is_ok());
        assert!(during.verify(&new_token, now()).is_ok());
        assert_eq!(after.verify(&old_token, now()), Err(TokenError::UnknownKey));
        let mut kids: Vec<&str> = during.kids().collect();
        kids.sort_unstable();
        let mut want = vec![before.kid(), after.kid()];
        want.sort_unstable();
        assert_eq!(kids, want);

        assert!(matches!(
            QueueKeys::from_secrets([&[6u8; 31][..]], "onsale-edge"),
            Err(KeyError::NotQueueKey(_))
        ));
        assert!(matches!(
            QueueKeys::from_secrets(std::iter::empty::<&[u8]>(), "onsale-edge"),
            Err(KeyError::NotQueueKey(_))
        ));
        let dir = std::env::temp_dir().join(format!("onsale-queue-key-{}", random_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("queue.key");
        std::fs::write(&good, format!("{}\n", generate_queue_key())).unwrap();
        let bad = dir.join("bad.key");
        std::fs::write(&bad, "not base64!").unwrap();
        assert!(QueueKeys::from_files(&[&good], "onsale-edge").is_ok());
        assert!(matches!(
            QueueKeys::from_files(&[&good, &bad], "onsale-edge"),
            Err(KeyError::NotQueueKey(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Both kinds of token, signed and read the way their issuers and readers do.
    struct Kinds {
        signer: Signer,
        verifier: Verifier,
        queue: QueueKeys,
    }

    impl Kinds {
        fn sign(&self, claims: &Claims) -> String {
            match claims.typ {
                TokenType::Admit => self.signer.sign(claims),
                TokenType::Queue => self.queue.sign(claims).unwrap(),
            }
        }

        fn verify(&self, token: &str, typ: TokenType) -> Result<Claims, TokenError> {
            match typ {
                TokenType::Admit => self.verifier.verify(token, typ),
                TokenType::Queue => self.queue.verify(token, now()),
            }
        }
    }

    /// One key of each kind for every case: key generation would cost more than the checks.
    static KINDS: std::sync::LazyLock<Kinds> = std::sync::LazyLock::new(|| {
        let (signer, verifier) = pair();
        Kinds {
            signer,
            verifier,
            queue: queue_keys(&[&[9u8; 32]]),
        }
    });

    /// Well-formed claims of either type from our issuer, unexpired for a minute at least.
    fn any_claims() -> impl Strategy<Value = Claims> {
        let now = now();
        let typ = prop_oneof![Just(TokenType::Admit), Just(TokenType::Queue)];
        let lane = prop::option::of(prop_oneof![Just(Lane::PreQueue), Just(Lane::Open)]);
        (
            (typ, any::<String>(), any::<String>(), any::<String>()),
            (any::<i64>(), now + 60..now + 10 * 365 * 86_400),
            (any::<Option<u64>>(), lane),
        )
            .prop_map(
                |((typ, sub, show, jti), (iat, exp), (queue_no, lane))| Claims {
                    iss: "onsale-edge".into(),
                    sub,
                    show,
                    typ,
                    // An admission token lives a day at most; a queue token's `iat` is free.
                    iat: match typ {
                        TokenType::Admit => exp - iat.rem_euclid(MAX_ADMISSION_LIFETIME_S + 1),
                        TokenType::Queue => iat,
                    },
                    exp,
                    jti,
                    queue_no,
                    lane,
                },
            )
    }

    /// RFC 6265 `cookie-octet`s: what a well-formed cookie value is made of.
    const COOKIE_VALUE: &str = "[\\x21\\x23-\\x2B\\x2D-\\x3A\\x3C-\\x5B\\x5D-\\x7E]{0,40}";

    proptest! {
        #[test]
        fn any_text_is_refused_as_a_token(
            text in prop_oneof![
                any::<String>(),
                "[ -~]{0,200}",
                "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,90}",
            ],
            bytes in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            for text in [text.as_str(), &String::from_utf8_lossy(&bytes)] {
                for typ in [TokenType::Admit, TokenType::Queue] {
                    prop_assert!(KINDS.verify(text, typ).is_err());
                }
            }
        }

        #[test]
        fn signed_tokens_round_trip_whatever_their_claims(claims in any_claims()) {
            let token = KINDS.sign(&claims);
            prop_assert_eq!(KINDS.verify(&token, claims.typ), Ok(claims));
        }

        #[test]
        fn truncated_tokens_are_refused(claims in any_claims(), cut in any::<prop::sample::Index>()) {
            let token = KINDS.sign(&claims);
            let truncated = &token[..cut.index(token.len())];
            prop_assert!(KINDS.verify(truncated, claims.typ).is_err());
        }

        #[test]
        fn tokens_with_any_character_changed_are_refused(
            claims in any_claims(),
            at in any::<prop::sample::Index>(),
            replacement in any::<char>(),
        ) {
            let token = KINDS.sign(&claims);
            let at = at.index(token.len());
            prop_assume!(!token[at..].starts_with(replacement));
            let mut changed = token[..at].to_owned();
            changed.push(replacement);
            changed.push_str(&token[at + 1..]);
            prop_assert!(KINDS.verify(&changed, claims.typ).is_err());
        }

        #[test]
        fn tokens_whose_header_names_another_algorithm_are_refused(claims in any_claims()) {
            let token = KINDS.sign(&claims);
            let parts: Vec<&str> = token.split('.').collect();
            let mut header: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
            let own = header["alg"].clone();
            for alg in ["none", "None", "HS256", "hs256", "EdDSA", "eddsa", "RS256", "ES256"] {
                if own == alg {
                    continue;
                }
                header["alg"] = alg.into();
                let header = URL_SAFE_NO_PAD.encode(header.to_string());
                // With the old signature, and with none at all as `alg: none` has it.
                for signature in [parts[2], ""] {
                    let forged = format!("{header}.{}.{signature}", parts[1]);
                    prop_assert!(KINDS.verify(&forged, claims.typ).is_err(), "{}", alg);
                }
            }
        }

        #[test]
        fn tokens_with_altered_claims_under_the_old_signature_are_refused(
            claims in any_claims(),
            altered in any_claims(),
        ) {
            prop_assume!(claims != altered);
            let token = KINDS.sign(&claims);
            let parts: Vec<&str> = token.split('.').collect();
            let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&altered).unwrap());
            let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
            prop_assert_eq!(KINDS.verify(&forged, claims.typ), Err(TokenError::Invalid));
        }

        #[test]
        fn cookie_headers_of_any_bytes_never_panic(
            cookies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..3),
            authorization in prop::collection::vec(any::<u8>(), 0..100),
        ) {
            let mut headers = http::HeaderMap::new();
            for cookie in cookies {
                if let Ok(value) = http::HeaderValue::from_bytes(&cookie) {
                    headers.append(http::header::COOKIE, value);
                }
            }
            if let Ok(value) = http::HeaderValue::from_bytes(&authorization) {
                headers.insert(http::header::AUTHORIZATION, value);
            }
            for name in [ADMIT_COOKIE, QUEUE_COOKIE, SESSION_COOKIE] {
                presented(&headers, name);
            }
            presented_session(&headers);
        }

        #[test]
        fn a_cookie_among_any_others_is_found_with_its_exact_value(
            name in prop::sample::select(&[ADMIT_COOKIE, QUEUE_COOKIE, SESSION_COOKIE][..]),
            value in COOKIE_VALUE,
            others in prop::collection::vec(
                ("[!#$%&'*+.^_`|~0-9A-Za-z-]{1,16}", COOKIE_VALUE),
                0..8,
            ),
            at in any::<prop::sample::Index>(),
            fields in 1..=3usize,
        ) {
            let mut cookies: Vec<String> = others
                .into_iter()
                .filter(|(other, _)| other != name)
                .map(|(other, value)| format!("{other}={value}"))
                .collect();
            cookies.insert(at.index(cookies.len() + 1), format!("{name}={value}"));
            // HTTP/2 clients may send each cookie in a `Cookie` field of its own.
            let mut headers = http::HeaderMap::new();
            for chunk in cookies.chunks(cookies.len().div_ceil(fields)) {
                headers.append(http::header::COOKIE, chunk.join("; ").parse().unwrap());
            }
            let found = if name == SESSION_COOKIE {
                presented_session(&headers)
            } else {
                presented(&headers, name)
            };
            prop_assert_eq!(found, Some(value.as_str()));
        }
    }

    #[test]
    fn checks_the_issuer() {
        let (private, public) = generate_pem_pair();
        let token = Signer::from_pem(&private, "someone-else").unwrap().issue(
            TokenType::Admit,
            "f",
            "s",
            now(),
            60,
            None,
        );
        let verifier = Verifier::from_pems([public.as_str()], "onsale-edge", 5).unwrap();
        assert_eq!(
            verifier.verify(&token, TokenType::Admit),
            Err(TokenError::Invalid)
        );
    }
}

//! Admission at the origin: every purchase-path route needs a valid admission token for
//! the show, verified again here with the public keys (the edge's check is not trusted
//! alone). Verified tokens are cached by hash until they expire, so a fan's repeated calls
//! cost a map lookup, not a signature check.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use onsale_contract::tokens::{Claims, TokenError, TokenType, Verifier};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

pub const ADMIT_COOKIE: &str = "onsale_admit";

pub struct TokenCache {
    verifier: Verifier,
    entries: Mutex<HashMap<[u8; 32], Claims>>,
    max_entries: usize,
    pub hits: prometheus::IntCounter,
    pub misses: prometheus::IntCounter,
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl TokenCache {
    pub fn new(verifier: Verifier, max_entries: usize, registry: &prometheus::Registry) -> Self {
        let counter = |name: &str, help: &str| {
            onsale_contract::metrics::register(
                registry,
                &prometheus::IntCounter::new(name, help).expect("static metric"),
            )
        };
        TokenCache {
            verifier,
            entries: Mutex::new(HashMap::new()),
            max_entries,
            hits: counter(
                "token_cache_hits_total",
                "Admission tokens answered from the cache",
            ),
            misses: counter(
                "token_cache_misses_total",
                "Admission tokens whose signature was checked",
            ),
        }
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = now_s();
        if let Some(claims) = self.entries.lock().expect("cache lock").get(&hash) {
            if claims.exp > now {
                self.hits.inc();
                return Ok(claims.clone());
            }
        }
        self.misses.inc();
        let claims = self.verifier.verify(token, TokenType::Admit)?;
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.len() >= self.max_entries {
            entries.retain(|_, c| c.exp > now);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(hash, claims.clone());
        Ok(claims)
    }
}

/// A verified admission: the fan and the show it admits to.
#[derive(Debug, Clone)]
pub struct Admission {
    pub fan: String,
    pub show: String,
}

impl Admission {
    /// 403 unless this admission is for `show`.
    pub fn require_show(&self, show: &uuid::Uuid) -> Result<(), ApiError> {
        if self.show == show.to_string() {
            Ok(())
        } else {
            Err(ApiError::WrongShow)
        }
    }
}

fn presented_token(parts: &Parts) -> Option<&str> {
    let bearer = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer.or_else(|| {
        parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| pair.trim().strip_prefix(ADMIT_COOKIE)?.strip_prefix('='))
    })
}

impl FromRequestParts<AppState> for Admission {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = presented_token(parts).ok_or(ApiError::Unadmitted("no admission token"))?;
        let claims = state.tokens.verify(token).map_err(|e| {
            ApiError::Unadmitted(match e {
                TokenError::Expired => "the admission token has expired",
                TokenError::WrongType(_) => "this is not an admission token",
                _ => "the admission token is not valid",
            })
        })?;
        Ok(Admission {
            fan: claims.sub,
            show: claims.show,
        })
    }
}

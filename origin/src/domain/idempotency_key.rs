//! The `Idempotency-Key` request header, parsed once at the boundary.

use crate::error::{ApiError, Code};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use onsale_contract::problem::Problem;

/// An `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The header's value, or 400 `idempotency_key_required` when it is missing or malformed.
    pub(crate) fn parse(raw: Option<&axum::http::HeaderValue>) -> Result<Self, ApiError> {
        let missing = || {
            ApiError::problem(
                Problem::new(Code::IdempotencyKeyRequired, "Idempotency-Key required").with_detail(
                    "send an Idempotency-Key header of 1 to 255 visible ASCII characters",
                ),
            )
        };
        let raw = raw.ok_or_else(missing)?;
        let text = raw.to_str().map_err(|_| missing())?;
        if text.is_empty() || text.len() > 255 || !text.bytes().all(|b| (0x21..=0x7e).contains(&b))
        {
            return Err(missing());
        }
        Ok(IdempotencyKey(text.to_owned()))
    }

    /// The key as sent.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        IdempotencyKey::parse(parts.headers.get("idempotency-key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> axum::http::HeaderValue {
        axum::http::HeaderValue::from_str(value).unwrap()
    }

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse(Some(&header("abc-123"))).is_ok());
        assert!(IdempotencyKey::parse(None).is_err());
        assert!(IdempotencyKey::parse(Some(&header(""))).is_err());
        assert!(IdempotencyKey::parse(Some(&header("has space"))).is_err());
        assert!(IdempotencyKey::parse(Some(&header(&"k".repeat(256)))).is_err());
        assert!(IdempotencyKey::parse(Some(&header(&"k".repeat(255)))).is_ok());
    }
}

//! Admission at the origin: every purchase-path route needs a valid admission token for
//! the show, verified again here with the public keys (the edge's check is not trusted
//! alone). Verified tokens are cached by hash until they expire, so a fan's repeated calls
//! cost a map lookup, not a signature check.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use onsale_contract::tokens::{self, TokenError};

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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

impl FromRequestParts<AppState> for Admission {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = tokens::presented(&parts.headers, tokens::ADMIT_COOKIE)
            .ok_or(ApiError::Unadmitted("no admission token"))?;
        let claims = state.tokens.verify(token, now_s()).map_err(|e| {
            ApiError::Unadmitted(match e {
                TokenError::Expired => "the admission token has expired",
                TokenError::WrongType(_) => "this is not an admission token",
                _ => "the admission token is not valid",
            })
        })?;
        Ok(Admission {
            fan: claims.sub.clone(),
            show: claims.show.clone(),
        })
    }
}

//! Admission at the origin: every purchase-path route needs a valid admission token for
//! the show, verified again here with the public keys (the edge's check is not trusted
//! alone). Verified tokens are cached by hash until they expire, so a fan's repeated calls
//! cost a map lookup, not a signature check.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use onsale_contract::tokens::{self, TokenType};

fn now_s() -> i64 {
    onsale_contract::clock::now_ms() / 1000
}

/// A verified admission: the fan and the show it admits to.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    pub fan: String,
    pub show: String,
}

impl Admission {
    /// Whether a resource of `fan` for `show` belongs to this admission: the same fan, for
    /// the admitted show. Anything else is answered as not found, so ids reveal nothing.
    pub(crate) fn owns(&self, fan: &str, show: &uuid::Uuid) -> bool {
        self.fan == fan && self.show == show.to_string()
    }

    /// 403 unless this admission is for `show`.
    pub(crate) fn require_show(&self, show: &uuid::Uuid) -> Result<(), ApiError> {
        if self.show == show.to_string() {
            Ok(())
        } else {
            Err(ApiError::WrongShow)
        }
    }
}

/// The fan behind a ticket route: an admission token, or the queue token of the same
/// waiting-room join (same `sub`), so a fan can show tickets after admission has lapsed.
#[derive(Debug, Clone)]
pub(crate) struct TicketHolder(pub Admission);

impl FromRequestParts<AppState> for TicketHolder {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let headers = &parts.headers;
        let admitted = tokens::presented(headers, tokens::ADMIT_COOKIE)
            .and_then(|token| state.tokens.verify(token, now_s()).ok());
        let claims = match admitted {
            Some(claims) => claims,
            // No admission (or a lapsed one): the queue token, as bearer or cookie.
            None => {
                let token = tokens::presented(headers, tokens::QUEUE_COOKIE)
                    .ok_or(ApiError::Unadmitted("no admission or queue token"))?;
                state
                    .queue_tokens
                    .verify(token, now_s())
                    .map_err(|_| ApiError::Unadmitted("the token is not valid"))?
            }
        };
        Ok(TicketHolder(Admission {
            fan: claims.sub.clone(),
            show: claims.show.clone(),
        }))
    }
}

impl FromRequestParts<AppState> for Admission {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = tokens::presented(&parts.headers, tokens::ADMIT_COOKIE)
            .ok_or(ApiError::Unadmitted("no admission token"))?;
        let claims = state
            .tokens
            .verify(token, now_s())
            .map_err(|e| ApiError::Unadmitted(e.fan_detail(TokenType::Admit)))?;
        Ok(Admission {
            fan: claims.sub.clone(),
            show: claims.show.clone(),
        })
    }
}

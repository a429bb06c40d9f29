//! Admission at the origin: every purchase-path route needs a valid admission token for
//! the show, verified again here with the public keys (the edge's check is not trusted
//! alone). Verified tokens are cached by hash until they expire, so a fan's repeated calls
//! cost a map lookup, not a signature check. An admission whose order is paid is spent
//! (`spent_admissions`, written with the sale) and refused with 401 `admission_spent`.
//!
//! Queue tokens are the edge's alone: nothing here accepts one. Account pages (order
//! history, tickets, QR codes) take the owner's session (`accounts::Session`) instead.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use onsale_contract::tokens::{self, TokenType};

fn now_s() -> i64 {
    onsale_contract::clock::now_ms() / 1000
}

/// A verified admission that is not spent: the fan (the account id), the show it admits
/// to, and the token's id.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    pub fan: String,
    pub show: String,
    pub jti: String,
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

    /// The presented admission token, verified (signature, `exp`, type), spent or not.
    async fn verified(parts: &Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = tokens::presented(&parts.headers, tokens::ADMIT_COOKIE)
            .ok_or(ApiError::Unadmitted("no admission token"))?;
        let claims = state
            .tokens
            .verify(token, now_s())
            .map_err(|e| ApiError::Unadmitted(e.fan_detail(TokenType::Admit)))?;
        Ok(Admission {
            fan: claims.sub.clone(),
            show: claims.show.clone(),
            jti: claims.jti.clone(),
        })
    }

    /// Whether this admission's order has been paid (a primary-key lookup).
    async fn spent(&self, state: &AppState) -> Result<bool, ApiError> {
        Ok(sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM spent_admissions WHERE jti = $1) AS "spent!""#,
            self.jti,
        )
        .fetch_one(&state.pool)
        .await?)
    }
}

impl FromRequestParts<AppState> for Admission {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let admission = Admission::verified(parts, state).await?;
        if admission.spent(state).await? {
            return Err(ApiError::AdmissionSpent);
        }
        Ok(admission)
    }
}

/// The admission of a hold's claim: verified here, its spent check left to `claim_hold`,
/// which looks the `jti` up in the claim's own transaction: one round trip fewer on the
/// busiest route.
#[derive(Debug, Clone)]
pub(crate) struct ClaimingAdmission(pub Admission);

impl FromRequestParts<AppState> for ClaimingAdmission {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(ClaimingAdmission(Admission::verified(parts, state).await?))
    }
}

/// The admission of a payment confirmation: like [`Admission`], except that a spent one is
/// let through flagged, for the one thing it may still do: replay a confirmation answered
/// before (same `Idempotency-Key`), which then still reports the admission spent.
#[derive(Debug, Clone)]
pub(crate) struct ConfirmingAdmission {
    pub admission: Admission,
    pub spent: bool,
}

impl FromRequestParts<AppState> for ConfirmingAdmission {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let admission = Admission::verified(parts, state).await?;
        let spent = admission.spent(state).await?;
        Ok(ConfirmingAdmission { admission, spent })
    }
}

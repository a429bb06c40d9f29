//! Throttling of credential checks, reset requests and presale access codes, in PostgreSQL
//! so every origin counts together. Attempts are counted in fixed windows of
//! `failure_window_s` per scope and subject (a normalised email, an account, or a client IP
//! with IPv6 by /64), stored as the subject's SHA-256. Past its maximum a subject gets 429 `rate_limited` with `Retry-After` until its
//! window ends.
//!
//! A credential check counts as a failure before it runs ([`attempt`]), in the statement
//! that checks the maximum, so concurrent guesses cannot pass a maximum together; a check
//! that succeeds gives its count back ([`succeeded`]). An attempt refused for one counter
//! is not counted against the others.

use crate::error::{ApiError, Code};
use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use onsale_contract::problem::Problem;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Failed credential checks for one email.
    CredentialEmail,
    /// Failed credential checks from one client IP.
    CredentialIp,
    /// Reset codes requested for one email.
    ResetEmail,
    /// Reset requests from one client IP.
    ResetIp,
    /// Wrong access codes from one account.
    AccessCodeAccount,
    /// Wrong access codes from one client IP.
    AccessCodeIp,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::CredentialEmail => "credential_email",
            Scope::CredentialIp => "credential_ip",
            Scope::ResetEmail => "reset_email",
            Scope::ResetIp => "reset_ip",
            Scope::AccessCodeAccount => "access_code_account",
            Scope::AccessCodeIp => "access_code_ip",
        }
    }

    /// The `limit` extension of the 429.
    fn limit(self) -> &'static str {
        match self {
            Scope::CredentialEmail | Scope::ResetEmail => "email",
            Scope::CredentialIp | Scope::ResetIp | Scope::AccessCodeIp => "ip",
            Scope::AccessCodeAccount => "account",
        }
    }
}

/// The client a request comes from: the last `X-Forwarded-For` entry (the edge sets it to
/// the client it decided on), else the connection's peer. The origin is reachable only
/// through the edge, so the header is the edge's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The throttling subject: the address, IPv6 cut to its /64 (one subscriber's
    /// network), hashed.
    fn subject(self) -> Vec<u8> {
        let ip = match self.0 {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
            },
            v4 => v4,
        };
        subject(&ip.to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|hop| hop.trim().parse::<IpAddr>().ok());
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientIp(
            forwarded
                .or(peer)
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

fn subject(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// One counter: a scope, its subject and its maximum per window.
pub(crate) struct Counter {
    scope: Scope,
    subject: Vec<u8>,
    max: u32,
}

impl Counter {
    /// Failed credential checks for the email with normalised key `email_key`.
    pub(crate) fn credential_email(state: &AppState, email_key: &str) -> Self {
        Counter {
            scope: Scope::CredentialEmail,
            subject: subject(email_key),
            max: state.config.accounts.max_failures_per_email,
        }
    }

    /// Failed credential checks from `ip`.
    pub(crate) fn credential_ip(state: &AppState, ip: ClientIp) -> Self {
        Counter {
            scope: Scope::CredentialIp,
            subject: ip.subject(),
            max: state.config.accounts.max_failures_per_ip,
        }
    }

    /// Reset codes sent to the email with normalised key `email_key`.
    pub(crate) fn reset_email(state: &AppState, email_key: &str) -> Self {
        Counter {
            scope: Scope::ResetEmail,
            subject: subject(email_key),
            max: state.config.accounts.max_reset_requests_per_email,
        }
    }

    /// Wrong access codes from `account`.
    pub(crate) fn access_code_account(state: &AppState, account: uuid::Uuid) -> Self {
        Counter {
            scope: Scope::AccessCodeAccount,
            subject: subject(&account.to_string()),
            max: state.config.accounts.max_code_failures_per_account,
        }
    }

    /// Wrong access codes from `ip`.
    pub(crate) fn access_code_ip(state: &AppState, ip: ClientIp) -> Self {
        Counter {
            scope: Scope::AccessCodeIp,
            subject: ip.subject(),
            max: state.config.accounts.max_code_failures_per_ip,
        }
    }

    /// Reset requests from `ip`.
    pub(crate) fn reset_ip(state: &AppState, ip: ClientIp) -> Self {
        Counter {
            scope: Scope::ResetIp,
            subject: ip.subject(),
            max: state.config.accounts.max_reset_requests_per_ip,
        }
    }
}

fn limited(scope: Scope, retry_after_s: i64) -> ApiError {
    ApiError::problem(
        Problem::new(Code::RateLimited, "Too many attempts")
            .with_detail(format!(
                "too many attempts for this {}; retry in {retry_after_s} s",
                scope.limit()
            ))
            .with("limit", scope.limit())
            .with("retry_after_s", retry_after_s.max(1)),
    )
}

/// Counts one attempt against each of `counters`, each only while it is below its maximum
/// in its current window (a new window starts when the last one has ended); the 429 of the
/// first at its maximum, with that attempt counted against none of them.
pub(crate) async fn attempt(
    pool: &PgPool,
    window_s: u32,
    counters: &[Counter],
) -> Result<Option<ApiError>, sqlx::Error> {
    for (counted, counter) in counters.iter().enumerate() {
        let hits = sqlx::query_scalar!(
            r#"INSERT INTO auth_throttle AS t (scope, subject, window_start, hits)
               VALUES ($1, $2, now(), 1)
               ON CONFLICT (scope, subject) DO UPDATE SET
                 hits = CASE WHEN t.window_start > now() - make_interval(secs => $3)
                             THEN t.hits + 1 ELSE 1 END,
                 window_start = CASE WHEN t.window_start > now() - make_interval(secs => $3)
                                     THEN t.window_start ELSE now() END
               WHERE t.window_start <= now() - make_interval(secs => $3) OR t.hits < $4
               RETURNING hits"#,
            counter.scope.as_str(),
            counter.subject,
            f64::from(window_s),
            counter.max as i32,
        )
        .fetch_optional(pool)
        .await?;
        if hits.is_none() {
            for earlier in &counters[..counted] {
                give_back(pool, earlier).await?;
            }
            let remaining = sqlx::query_scalar!(
                r#"SELECT ceil(extract(epoch FROM window_start + make_interval(secs => $3) - now()))::int8
                          AS "remaining!"
                   FROM auth_throttle WHERE scope = $1 AND subject = $2"#,
                counter.scope.as_str(),
                counter.subject,
                f64::from(window_s),
            )
            .fetch_optional(pool)
            .await?;
            return Ok(Some(limited(counter.scope, remaining.unwrap_or(1))));
        }
    }
    Ok(None)
}

/// A credential check of `counters` succeeded: the email's failures (the first counter) are
/// forgotten, and the attempt is given back to the others.
pub(crate) async fn succeeded(pool: &PgPool, counters: &[Counter]) -> Result<(), sqlx::Error> {
    let Some((email, others)) = counters.split_first() else {
        return Ok(());
    };
    sqlx::query!(
        "DELETE FROM auth_throttle WHERE scope = $1 AND subject = $2",
        email.scope.as_str(),
        email.subject,
    )
    .execute(pool)
    .await?;
    for counter in others {
        give_back(pool, counter).await?;
    }
    Ok(())
}

/// Takes back one attempt counted against `counter`.
async fn give_back(pool: &PgPool, counter: &Counter) -> Result<(), sqlx::Error> {
    // A count never stands at zero: its last attempt takes the row.
    sqlx::query!(
        "WITH last AS (DELETE FROM auth_throttle WHERE scope = $1 AND subject = $2 AND hits = 1)
         UPDATE auth_throttle SET hits = hits - 1 WHERE scope = $1 AND subject = $2 AND hits > 1",
        counter.scope.as_str(),
        counter.subject,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes windows that have ended.
pub(crate) async fn purge(pool: &PgPool, window_s: u32) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM auth_throttle WHERE window_start < now() - make_interval(secs => $1)",
        f64::from(window_s),
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let ip = |s: &str| ClientIp(s.parse().unwrap()).subject();
        assert_eq!(ip("2001:db8:1:2:aaaa::1"), ip("2001:db8:1:2:bbbb::2"));
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("::ffff:192.0.2.7"), ip("192.0.2.7"));
        assert_ne!(ip("192.0.2.7"), ip("192.0.2.8"));
    }
}

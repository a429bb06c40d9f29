//! Idempotent writes (DESIGN truth 4), per fan and key:
//! same key + same request -> the original status and body (`Idempotent-Replayed: true`);
//! same key + another request -> 422 `idempotency_key_reused`;
//! same key while the first is in flight -> 409 `idempotency_in_flight`.
//!
//! [`begin`] claims the key in its own short statement (a unique-key insert, so two racing
//! requests cannot both proceed); the write then stores its response in the same
//! transaction as its effect ([`store_in`]), so a committed effect always has its replay.
//! Client errors are stored too (a retry gets the same answer); server errors release the
//! key ([`release`]) so the client can retry.

use crate::error::ApiError;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use onsale_contract::problem::Problem;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

pub struct Claimed {
    pub fan: String,
    pub key: String,
}

pub enum Begin {
    Proceed(Claimed),
    Replay(Response),
}

/// A stable fingerprint of what was asked: route and canonical request.
pub fn fingerprint(route: &str, canonical_request: &[u8]) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(route.as_bytes());
    hash.update([0]);
    hash.update(canonical_request);
    hash.finalize().to_vec()
}

/// [`begin`] for a parsed `request` to `route` by `fan`, with the configured in-flight
/// timeout.
pub async fn begin_request(
    state: &crate::AppState,
    fan: &str,
    key: &crate::domain::IdempotencyKey,
    route: &str,
    request: &impl serde::Serialize,
) -> Result<Begin, ApiError> {
    let canonical = serde_json::to_vec(request).expect("a parsed request serializes");
    begin(
        &state.pool,
        fan,
        key.as_str(),
        route,
        &fingerprint(route, &canonical),
        state.config.holds.idempotency_in_flight_timeout_s,
    )
    .await
}

pub async fn begin(
    pool: &PgPool,
    fan: &str,
    key: &str,
    route: &str,
    fingerprint: &[u8],
    in_flight_timeout_s: u32,
) -> Result<Begin, ApiError> {
    // Claim the key, or take over a claim whose request died in flight.
    let claimed: Option<bool> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (fan_id, key, route, request_hash) VALUES ($1, $2, $3, $4)
         ON CONFLICT (fan_id, key) DO UPDATE SET created_at = now()
           WHERE idempotency_keys.response_status IS NULL
             AND idempotency_keys.request_hash = EXCLUDED.request_hash
             AND idempotency_keys.created_at < now() - make_interval(secs => $5)
         RETURNING true",
    )
    .bind(fan)
    .bind(key)
    .bind(route)
    .bind(fingerprint)
    .bind(f64::from(in_flight_timeout_s))
    .fetch_optional(pool)
    .await?;
    if claimed.is_some() {
        return Ok(Begin::Proceed(Claimed {
            fan: fan.to_owned(),
            key: key.to_owned(),
        }));
    }
    let (hash, status, body): (Vec<u8>, Option<i16>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE fan_id = $1 AND key = $2",
    )
    .bind(fan)
    .bind(key)
    .fetch_one(pool)
    .await?;
    if hash != fingerprint {
        return Err(ApiError::problem(
            Problem::new(422, "idempotency_key_reused", "Idempotency-Key reused")
                .with_detail("this key was used with a different request; use a new key"),
        ));
    }
    match (status, body) {
        (Some(status), Some(body)) => Ok(Begin::Replay(replay(status, body))),
        _ => Err(ApiError::problem(
            Problem::new(409, "idempotency_in_flight", "Request in flight")
                .with_detail("a request with this key is still being processed; retry shortly")
                .with("retry_after_s", 1),
        )),
    }
}

fn replay(status: i16, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() {
        "application/json"
    } else {
        onsale_contract::problem::CONTENT_TYPE
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// Stores the response inside the transaction that made the effect.
pub async fn store_in(
    conn: &mut PgConnection,
    claimed: &Claimed,
    status: u16,
    body: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE idempotency_keys SET response_status = $3, response_body = $4 WHERE fan_id = $1 AND key = $2")
        .bind(&claimed.fan)
        .bind(&claimed.key)
        .bind(status as i16)
        .bind(body)
        .execute(conn)
        .await?;
    Ok(())
}

/// The answer of a claimed request whose effect returned `result`: the committed body with
/// `status`, or the error after [`finish_failed`].
pub async fn respond(
    pool: &PgPool,
    claimed: &Claimed,
    status: StatusCode,
    result: Result<Vec<u8>, ApiError>,
) -> Result<Response, ApiError> {
    match result {
        Ok(body) => Ok(crate::holds::json_response(status, body)),
        Err(error) => {
            finish_failed(pool, claimed, &error).await;
            Err(error)
        }
    }
}

/// Ends a claimed request that failed: client errors are stored for replay, server errors
/// release the key so a retry can run.
pub async fn finish_failed(pool: &PgPool, claimed: &Claimed, error: &ApiError) {
    let problem = error.to_problem();
    let result = if problem.status < 500 {
        let mut conn = match pool.acquire().await {
            Ok(conn) => conn,
            Err(e) => return tracing::warn!(error = %e, "could not store an idempotent refusal"),
        };
        store_in(&mut conn, claimed, problem.status, &problem.to_json()).await
    } else {
        release(pool, claimed).await
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not finish an idempotency record");
    }
}

pub async fn release(pool: &PgPool, claimed: &Claimed) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE fan_id = $1 AND key = $2 AND response_status IS NULL",
    )
    .bind(&claimed.fan)
    .bind(&claimed.key)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes records older than `ttl_h` hours; returns how many.
pub async fn purge(pool: &PgPool, ttl_h: u32, batch: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
           SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1) LIMIT $2))",
    )
    .bind(ttl_h as i32)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

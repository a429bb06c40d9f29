//! Idempotent writes, per fan and key:
//! same key + same request -> the original status and body (`Idempotent-Replayed: true`);
//! same key + another request -> 422 `idempotency_key_reused`;
//! same key while the first is in flight -> 409 `idempotency_in_flight`.
//!
//! [`begin`] claims the key in its own short statement (a unique-key insert, so two racing
//! requests cannot both proceed); the write then stores its response in the same
//! transaction as its effect ([`store_in`]), so a committed effect always has its replay.
//! Client errors are stored too (a retry gets the same answer); server errors release the
//! key ([`release`]) so the client can retry.
//!
//! A write with no outside call in it (a hold) writes its key last, with its answer, in the
//! statement that makes its effect (`claim_hold`, migration 0011): key, effect and answer
//! commit together, so it has no in-flight window; a duplicate arriving meanwhile waits on
//! the key's unique entry, then its own work rolls back and it replays the answer ([`seen`]).
//! Its refusals are stored after the fact ([`record`]), unless another request answered
//! the key meanwhile, whose answer is then the answer.
//!
//! A request still in flight after `idempotency.in_flight_timeout_s` may be taken over by a
//! retry. Every claim carries a fresh token and storing or releasing checks it, so a slow
//! original whose key was taken over cannot store its answer: its transaction fails with
//! [`ClaimLost`] and rolls back, and only one of the two takes effect.

use crate::error::{ApiError, Code};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use onsale_contract::problem::Problem;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A key this request holds: only the holder of the current `claim` may finish it.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The fan the key belongs to.
    pub fan: String,
    /// The key as sent.
    pub key: String,
    /// This claim's fencing token; a takeover replaces it.
    pub claim: Uuid,
}

/// What [`begin`] found.
pub(crate) enum Begin {
    /// The key is this request's: do the work, then store the answer.
    Proceed(Claimed),
    /// The key was used for this request before: answer what was answered then.
    Replay(Response),
}

/// The key was taken over while this request was in flight; its effect must not commit.
#[derive(Debug, thiserror::Error)]
#[error("the idempotency key was taken over by a retry")]
pub struct ClaimLost;

impl From<ClaimLost> for ApiError {
    fn from(_: ClaimLost) -> Self {
        ApiError::problem(in_flight())
    }
}

/// Errors of [`store_in`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Another request holds the key now.
    #[error(transparent)]
    ClaimLost(#[from] ClaimLost),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(error) => error.into(),
            StoreError::ClaimLost(lost) => lost.into(),
        }
    }
}

fn in_flight() -> Problem {
    Problem::new(Code::IdempotencyInFlight, "Request in flight")
        .with_detail("a request with this key is still being processed; retry shortly")
        .with("retry_after_s", 1)
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
pub(crate) async fn begin_request(
    state: &crate::AppState,
    fan: &str,
    key: &crate::domain::IdempotencyKey,
    route: &str,
    request: &impl serde::Serialize,
) -> Result<Begin, ApiError> {
    let canonical = crate::http::to_json(request)?;
    begin(
        &state.pool,
        fan,
        key.as_str(),
        route,
        &fingerprint(route, &canonical),
        state.config.idempotency.in_flight_timeout_s,
        &state.instance,
    )
    .await
}

/// Claims `key` for `fan`'s request, or says how to answer a request seen before.
pub(crate) async fn begin(
    pool: &PgPool,
    fan: &str,
    key: &str,
    route: &str,
    fingerprint: &[u8],
    in_flight_timeout_s: u32,
    holder: &str,
) -> Result<Begin, ApiError> {
    // Claim the key, or take over a claim whose request died in flight.
    let claim = Uuid::new_v4();
    let claimed = sqlx::query_scalar!(
        "INSERT INTO idempotency_keys (fan_id, key, route, request_hash, claim, holder)
         VALUES ($1, $2, $3, $4, $6, $7)
         ON CONFLICT (fan_id, key) DO UPDATE
           SET created_at = now(), claim = EXCLUDED.claim, holder = EXCLUDED.holder
           WHERE idempotency_keys.response_status IS NULL
             AND idempotency_keys.request_hash = EXCLUDED.request_hash
             AND idempotency_keys.created_at < now() - make_interval(secs => $5)
         RETURNING claim",
        fan,
        key,
        route,
        fingerprint,
        f64::from(in_flight_timeout_s),
        claim,
        holder,
    )
    .fetch_optional(pool)
    .await?;
    match claimed {
        Some(claim) => Ok(Begin::Proceed(Claimed {
            fan: fan.to_owned(),
            key: key.to_owned(),
            claim,
        })),
        None => {
            let keyed = Keyed {
                fan,
                key,
                route,
                fingerprint,
            };
            seen(pool, &keyed).await.map(Begin::Replay)
        }
    }
}

/// A request's key: whose, which, and what was asked (route and fingerprint).
pub(crate) struct Keyed<'a> {
    pub fan: &'a str,
    pub key: &'a str,
    pub route: &'a str,
    pub fingerprint: &'a [u8],
}

/// The answer for a request under a key another request holds: its stored answer (the
/// same request), 422 `idempotency_key_reused` (another request) or 409
/// `idempotency_in_flight` (no answer yet).
pub(crate) async fn seen(pool: &PgPool, keyed: &Keyed<'_>) -> Result<Response, ApiError> {
    let Keyed {
        fan,
        key,
        fingerprint,
        ..
    } = *keyed;
    let seen = sqlx::query!(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE fan_id = $1 AND key = $2",
        fan,
        key,
    )
    .fetch_optional(pool)
    .await?;
    let Some(seen) = seen else {
        // Released by a request that failed meanwhile: the client may send it again.
        return Err(ApiError::problem(in_flight()));
    };
    if seen.request_hash != fingerprint {
        return Err(ApiError::problem(
            Problem::new(Code::IdempotencyKeyReused, "Idempotency-Key reused")
                .with_detail("this key was used with a different request; use a new key"),
        ));
    }
    match (seen.response_status, seen.response_body) {
        (Some(status), Some(body)) => Ok(replay(status, body)),
        _ => Err(ApiError::problem(in_flight())),
    }
}

/// Stores `status` and `body` as the answer under a key no request has claimed (or whose
/// claim died in flight), in one statement. False when another request's claim or answer
/// holds the key: answer with [`seen`] instead.
pub(crate) async fn record(
    pool: &PgPool,
    keyed: &Keyed<'_>,
    in_flight_timeout_s: u32,
    status: u16,
    body: &[u8],
) -> Result<bool, sqlx::Error> {
    let stored = sqlx::query!(
        "INSERT INTO idempotency_keys AS k (fan_id, key, route, request_hash, claim, response_status, response_body)
         VALUES ($1, $2, $3, $4, gen_random_uuid(), $6, $7)
         ON CONFLICT (fan_id, key) DO UPDATE
           SET created_at = now(), claim = EXCLUDED.claim,
               response_status = EXCLUDED.response_status, response_body = EXCLUDED.response_body
           WHERE k.response_status IS NULL AND k.request_hash = EXCLUDED.request_hash
             AND k.created_at < now() - make_interval(secs => $5)",
        keyed.fan,
        keyed.key,
        keyed.route,
        keyed.fingerprint,
        f64::from(in_flight_timeout_s),
        status as i16,
        body,
    )
    .execute(pool)
    .await?;
    Ok(stored.rows_affected() == 1)
}

/// What a key holds for a request, without claiming it.
pub(crate) enum Recorded {
    /// The answer stored for this very request.
    Answer(Response),
    /// Nothing stored yet for this request: no record, or this request's still in flight.
    Unanswered,
    /// Another request's record.
    Other,
}

/// What `fan`'s key holds for `request` to `route`; never claims the key. For callers that
/// may only repeat themselves (a spent admission).
pub(crate) async fn replay_request(
    state: &crate::AppState,
    fan: &str,
    key: &crate::domain::IdempotencyKey,
    route: &str,
    request: &impl serde::Serialize,
) -> Result<Recorded, ApiError> {
    let canonical = crate::http::to_json(request)?;
    let seen = sqlx::query!(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys
         WHERE fan_id = $1 AND key = $2",
        fan,
        key.as_str(),
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(seen) = seen else {
        return Ok(Recorded::Unanswered);
    };
    let same = seen.request_hash == fingerprint(route, &canonical);
    Ok(match (same, seen.response_status, seen.response_body) {
        (true, Some(status), Some(body)) => Recorded::Answer(replay(status, body)),
        (true, _, _) => Recorded::Unanswered,
        (false, _, _) => Recorded::Other,
    })
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

/// Stores the response inside the transaction that made the effect; fails with
/// [`ClaimLost`] when a takeover holds the key now, so that transaction must roll back.
pub async fn store_in(
    conn: &mut PgConnection,
    claimed: &Claimed,
    status: u16,
    body: &[u8],
) -> Result<(), StoreError> {
    let stored = sqlx::query!(
        "UPDATE idempotency_keys SET response_status = $3, response_body = $4
         WHERE fan_id = $1 AND key = $2 AND claim = $5 AND response_status IS NULL",
        claimed.fan,
        claimed.key,
        status as i16,
        body,
        claimed.claim,
    )
    .execute(conn)
    .await?;
    if stored.rows_affected() == 1 {
        Ok(())
    } else {
        Err(ClaimLost.into())
    }
}

/// The answer of a claimed request whose effect returned `result`: the committed body with
/// `status`, or the error after [`finish_failed`].
pub(crate) async fn respond(
    pool: &PgPool,
    claimed: &Claimed,
    status: StatusCode,
    result: Result<Vec<u8>, ApiError>,
) -> Result<Response, ApiError> {
    match result {
        Ok(body) => Ok(crate::http::json_response(status, body)),
        Err(error) => {
            finish_failed(pool, claimed, &error).await;
            Err(error)
        }
    }
}

/// Ends a claimed request that failed: client errors are stored for replay, server errors
/// release the key so a retry can run. When the database is away (the usual reason a
/// request failed), the key is released once it is back, so the fan's retries meet
/// `idempotency_in_flight` for as long as the outage lasts, not `in_flight_timeout_s`.
pub(crate) async fn finish_failed(pool: &PgPool, claimed: &Claimed, error: &ApiError) {
    let problem = error.to_problem();
    let result = if problem.status < 500 {
        match pool.acquire().await {
            Ok(mut conn) => store_in(&mut conn, claimed, problem.status, &problem.to_json()).await,
            Err(e) => Err(e.into()),
        }
    } else {
        release(pool, claimed).await.map_err(StoreError::from)
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not finish an idempotency record; releasing it later");
        let (pool, claimed) = (pool.clone(), claimed.clone());
        tokio::spawn(async move { release_when_back(&pool, &claimed).await });
    }
}

/// Releases `claimed` as soon as the database answers, trying for [`RELEASE_RETRY_FOR`]
/// (a takeover after `in_flight_timeout_s` frees the key anyway).
async fn release_when_back(pool: &PgPool, claimed: &Claimed) {
    let deadline = tokio::time::Instant::now() + RELEASE_RETRY_FOR;
    while release(pool, claimed).await.is_err() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// How long a failed request keeps trying to release its key.
const RELEASE_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(120);

/// Releases the keys `holder` left in flight: an origin starting on the node where one died
/// (no two run with one name), so its fans' retries need not wait out
/// `in_flight_timeout_s`. Returns how many.
pub(crate) async fn release_claims_of(pool: &PgPool, holder: &str) -> Result<u64, sqlx::Error> {
    let released = sqlx::query!(
        "DELETE FROM idempotency_keys WHERE holder = $1 AND response_status IS NULL",
        holder,
    )
    .execute(pool)
    .await?;
    Ok(released.rows_affected())
}

/// Gives the key up so a retry can run; a no-op once a takeover holds it.
pub(crate) async fn release(pool: &PgPool, claimed: &Claimed) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM idempotency_keys
         WHERE fan_id = $1 AND key = $2 AND claim = $3 AND response_status IS NULL",
        claimed.fan,
        claimed.key,
        claimed.claim,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes records older than `ttl_h` hours; returns how many.
pub(crate) async fn purge(pool: &PgPool, ttl_h: u32, batch: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
           SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1) LIMIT $2))",
        ttl_h as i32,
        batch,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// How often old records are purged.
const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Purges records older than `ttl_h` hours once a minute until `stopped`.
pub(crate) async fn run_purge(
    pool: PgPool,
    ttl_h: u32,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        loop {
            match purge(&pool, ttl_h, 10_000).await {
                Ok(10_000) => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "idempotency purge failed; retrying next round");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(PURGE_INTERVAL) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

//! The sandbox provider: a stand-in for a card processor that behaves like one. It keeps
//! its own records (`sandbox_*` tables: intents, refunds, webhooks owed), settles slow
//! payments later, and reports every change by webhook: HMAC-signed, POSTed over HTTP to the
//! configured URL (by default the origin's own `/v1/webhooks/payments`), retried with
//! exponential backoff until delivered or abandoned, sometimes delivered twice and, within
//! a batch, in a shuffled order, chosen by a seeded generator.
//!
//! Test payment methods pick the outcome:
//! - `pm_card_ok`: succeeds at once;
//! - `pm_card_declined`: fails at once;
//! - `pm_card_3ds`: needs authentication: `requires_action`, then a second confirmation
//!   with `pm_card_3ds` succeeds;
//! - `pm_card_slow`: `processing`, then succeeds `slow_settle_ms` later, by webhook only;
//! - `pm_card_refund_fails`: succeeds, but its first `refund_failures` refund attempts fail.
//!
//! Signature header: `Onsale-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.

use super::{Intent, IntentStatus, PaymentProvider, ProviderError, WebhookError, WebhookEvent};
use crate::config::SandboxConfig;
use crate::metrics::Metrics;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

pub(crate) const SIGNATURE_HEADER: &str = "onsale-signature";
const METHODS: [&str; 5] = [
    "pm_card_ok",
    "pm_card_declined",
    "pm_card_3ds",
    "pm_card_slow",
    "pm_card_refund_fails",
];
/// Webhooks claimed per delivery round.
const DELIVERY_BATCH: i64 = 32;
/// A claimed delivery that was never finished (the process died) is tried again after this.
const DELIVERY_LEASE_S: f64 = 30.0;

pub(crate) struct Sandbox {
    pool: PgPool,
    config: SandboxConfig,
    secret: Vec<u8>,
    tolerance_s: u64,
    /// Wakes the delivery loop when a webhook is owed.
    owed: Notify,
    rng: Mutex<StdRng>,
}

/// The body of every sandbox webhook.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created_ms: i64,
    data: EventData,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventData {
    object: IntentObject,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentObject {
    id: String,
    status: String,
    version: i64,
    amount_cents: i64,
    currency: String,
}

/// An intent as the sandbox stores it (`ref` is selected as `reference`).
struct IntentRow {
    reference: String,
    status: String,
    version: i64,
    amount_cents: i64,
    currency: String,
}

fn intent_of(row: &IntentRow) -> Intent {
    Intent {
        reference: row.reference.clone(),
        status: IntentStatus::parse(&row.status).expect("the sandbox stores known statuses"),
        version: row.version,
    }
}

fn unavailable(error: sqlx::Error) -> ProviderError {
    ProviderError::Unavailable(error.to_string())
}

fn event_type(status: IntentStatus) -> &'static str {
    match status {
        IntentStatus::RequiresConfirmation => "payment_intent.created",
        IntentStatus::RequiresAction => "payment_intent.requires_action",
        IntentStatus::Processing => "payment_intent.processing",
        IntentStatus::Succeeded => "payment_intent.succeeded",
        IntentStatus::Failed => "payment_intent.payment_failed",
    }
}

/// `t=<secs>,v1=<hex>` for `body` signed at `t`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header against the exact `body`: one of its `v1` values is the HMAC
/// of `"t.body"` under `secret`, and its `t` is within `tolerance_s` of `now_s`.
fn check_signature(
    secret: &[u8],
    tolerance_s: u64,
    header: &str,
    body: &[u8],
    now_s: i64,
) -> Result<(), WebhookError> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let t = t.ok_or(WebhookError::MissingSignature)?;
    if signatures.is_empty() {
        return Err(WebhookError::MissingSignature);
    }
    let matches = signatures.iter().any(|signature| {
        let Ok(signature) = hex::decode(signature) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&signature).is_ok()
    });
    if !matches {
        return Err(WebhookError::BadSignature);
    }
    // `t` is any i64 the header carries: a difference could overflow.
    if now_s.abs_diff(t) > tolerance_s {
        return Err(WebhookError::Stale);
    }
    Ok(())
}

impl Sandbox {
    pub(crate) fn new(
        pool: PgPool,
        config: SandboxConfig,
        secret: &[u8],
        tolerance_s: u64,
    ) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Sandbox {
            pool,
            config,
            secret: secret.to_vec(),
            tolerance_s,
            owed: Notify::new(),
            rng: Mutex::new(rng),
        }
    }

    /// Records a change of `intent` and the webhook that reports it, in `tx`.
    async fn owe_webhook(tx: &mut PgConnection, row: &IntentRow) -> Result<(), sqlx::Error> {
        let intent = intent_of(row);
        let event = EventBody {
            id: format!("evt_{}", Uuid::new_v4().simple()),
            kind: event_type(intent.status).to_owned(),
            created_ms: onsale_contract::clock::now_ms(),
            data: EventData {
                object: IntentObject {
                    id: row.reference.clone(),
                    status: row.status.clone(),
                    version: row.version,
                    amount_cents: row.amount_cents,
                    currency: row.currency.clone(),
                },
            },
        };
        let body = serde_json::to_vec(&event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query!(
            "INSERT INTO sandbox_webhooks (event_id, body) VALUES ($1, $2)",
            event.id,
            body,
        )
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Succeeds slow intents whose time has come (all of them, or just `only`).
    async fn settle_due(&self, only: Option<&str>) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let settled = sqlx::query_as!(
            IntentRow,
            "UPDATE sandbox_intents SET status = 'succeeded', version = version + 1, settles_at = NULL
             WHERE status = 'processing' AND settles_at <= now() AND ($1::text IS NULL OR ref = $1)
             RETURNING ref AS reference, status, version, amount_cents, currency",
            only,
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in &settled {
            Self::owe_webhook(&mut tx, row).await?;
        }
        tx.commit().await?;
        if !settled.is_empty() {
            self.owed.notify_one();
        }
        Ok(settled.len() as u64)
    }

    /// One delivery round: settles due slow intents, then POSTs the webhooks that are due.
    /// Returns how many deliveries it tried.
    pub(crate) async fn deliver_due(
        &self,
        http: &reqwest::Client,
        url: &str,
        metrics: &Metrics,
    ) -> Result<usize, sqlx::Error> {
        self.settle_due(None).await?;
        let mut due = sqlx::query!(
            "UPDATE sandbox_webhooks SET attempts = attempts + 1,
                    next_attempt_at = now() + make_interval(secs => $2)
             WHERE id IN (SELECT id FROM sandbox_webhooks
                          WHERE delivered_at IS NULL AND abandoned_at IS NULL AND next_attempt_at <= now()
                          ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id, body, attempts",
            DELIVERY_BATCH,
            DELIVERY_LEASE_S,
        )
        .fetch_all(&self.pool)
        .await?;
        due.shuffle(&mut *self.rng.lock().expect("rng lock"));
        for webhook in &due {
            let (id, body, attempts) = (webhook.id, &webhook.body, webhook.attempts);
            let signature = sign(&self.secret, onsale_contract::clock::now_ms() / 1000, body);
            let sent = http
                .post(url)
                .header("content-type", "application/json")
                .header(SIGNATURE_HEADER, signature)
                .body(body.clone())
                .send()
                .await;
            let failure = match sent {
                Ok(reply) if reply.status().is_success() => None,
                Ok(reply) => Some(format!("HTTP {}", reply.status())),
                Err(error) => Some(error.to_string()),
            };
            match failure {
                None => {
                    metrics
                        .webhook_deliveries
                        .with_label_values(&["delivered"])
                        .inc();
                    self.delivered(id).await?;
                }
                Some(error) if attempts >= self.config.max_attempts as i32 => {
                    metrics
                        .webhook_deliveries
                        .with_label_values(&["abandoned"])
                        .inc();
                    tracing::warn!(%error, webhook = id, "sandbox webhook abandoned");
                    sqlx::query!(
                        "UPDATE sandbox_webhooks SET abandoned_at = now(), last_error = $2 WHERE id = $1",
                        id,
                        error,
                    )
                    .execute(&self.pool)
                    .await?;
                }
                Some(error) => {
                    metrics
                        .webhook_deliveries
                        .with_label_values(&["failed"])
                        .inc();
                    let retry_in = onsale_contract::backoff::Backoff::new(
                        std::time::Duration::from_millis(self.config.retry_base_ms),
                        std::time::Duration::from_millis(self.config.retry_max_ms),
                    )
                    .delay(u32::try_from(attempts).unwrap_or(0));
                    sqlx::query!(
                        "UPDATE sandbox_webhooks SET last_error = $2,
                                next_attempt_at = now() + make_interval(secs => $3)
                         WHERE id = $1",
                        id,
                        error,
                        retry_in.as_secs_f64(),
                    )
                    .execute(&self.pool)
                    .await?;
                }
            }
        }
        Ok(due.len())
    }

    /// Marks a delivery done and, as real providers sometimes do, owes it once more (a copy
    /// is never copied again).
    async fn delivered(&self, id: i64) -> Result<(), sqlx::Error> {
        let again = {
            let mut rng = self.rng.lock().expect("rng lock");
            (rng.random_range(0..100u8) < self.config.duplicate_percent)
                .then(|| rng.random_range(0..=self.config.retry_base_ms))
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "UPDATE sandbox_webhooks SET delivered_at = now() WHERE id = $1",
            id,
        )
        .execute(&mut *tx)
        .await?;
        if let Some(delay_ms) = again {
            sqlx::query!(
                "INSERT INTO sandbox_webhooks (event_id, body, next_attempt_at)
                 SELECT event_id, body, now() + make_interval(secs => $2) FROM sandbox_webhooks w
                 WHERE id = $1
                   AND NOT EXISTS (SELECT 1 FROM sandbox_webhooks c WHERE c.event_id = w.event_id AND c.id <> w.id)",
                id,
                delay_ms as f64 / 1000.0,
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Delivers webhooks until `stopped`: at once when one is owed, else every `poll_ms`
    /// (which also finds retries and slow payments coming due).
    pub(crate) async fn run_deliveries(
        self: Arc<Self>,
        url: String,
        metrics: Arc<Metrics>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(self.config.delivery_timeout_ms))
            .build()
            .expect("an HTTP client without TLS builds");
        let poll = Duration::from_millis(self.config.poll_ms);
        loop {
            match self.deliver_due(&http, &url, &metrics).await {
                Ok(n) if n as i64 >= DELIVERY_BATCH => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "sandbox webhook round failed"),
            }
            tokio::select! {
                _ = self.owed.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    }

    async fn load(&self, reference: &str) -> Result<Intent, ProviderError> {
        let row = sqlx::query_as!(
            IntentRow,
            "SELECT ref AS reference, status, version, amount_cents, currency
             FROM sandbox_intents WHERE ref = $1",
            reference,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.map(|r| intent_of(&r))
            .ok_or_else(|| ProviderError::Rejected(format!("no such intent {reference}")))
    }
}

#[async_trait::async_trait]
impl PaymentProvider for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn check_method(&self, method: &str) -> Result<(), String> {
        if METHODS.contains(&method) {
            Ok(())
        } else {
            Err(format!(
                "the sandbox takes these payment methods: {}",
                METHODS.join(", ")
            ))
        }
    }

    async fn create_intent(
        &self,
        amount_cents: i64,
        currency: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        // The key names the intent, so a retry finds the one it made.
        let digest = Sha256::digest(idempotency_key.as_bytes());
        let reference = format!("pi_{}", &hex::encode(digest)[..24]);
        sqlx::query!(
            "INSERT INTO sandbox_intents (ref, amount_cents, currency, status, version)
             VALUES ($1, $2, $3, 'requires_confirmation', 0) ON CONFLICT (ref) DO NOTHING",
            reference,
            amount_cents,
            currency,
        )
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        self.load(&reference).await
    }

    async fn confirm(
        &self,
        intent: &str,
        method: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let current = sqlx::query!(
            "SELECT status, payment_method, confirm_key FROM sandbox_intents WHERE ref = $1 FOR UPDATE",
            intent,
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let Some(current) = current else {
            return Err(ProviderError::Rejected(format!("no such intent {intent}")));
        };
        let (status, previous_method, confirm_key) =
            (current.status, current.payment_method, current.confirm_key);
        if confirm_key.as_deref() == Some(idempotency_key) {
            drop(tx);
            return self.load(intent).await;
        }
        let authenticated =
            status == "requires_action" && previous_method.as_deref() == Some(method);
        let next = match (status.as_str(), method) {
            ("requires_confirmation" | "requires_action", "pm_card_declined") => "failed",
            ("requires_confirmation" | "requires_action", "pm_card_3ds") if authenticated => {
                "succeeded"
            }
            ("requires_confirmation" | "requires_action", "pm_card_3ds") => "requires_action",
            ("requires_confirmation" | "requires_action", "pm_card_slow") => "processing",
            ("requires_confirmation" | "requires_action", _) => "succeeded",
            (other, _) => {
                return Err(ProviderError::Rejected(format!(
                    "the intent is {other} and cannot be confirmed"
                )))
            }
        };
        let refund_failures = if method == "pm_card_refund_fails" {
            self.config.refund_failures as i32
        } else {
            0
        };
        let row = sqlx::query_as!(
            IntentRow,
            "UPDATE sandbox_intents SET status = $2, version = version + 1, payment_method = $3,
                    confirm_key = $4, refund_failures_left = $5,
                    settles_at = CASE WHEN $2 = 'processing' THEN now() + make_interval(secs => $6) END
             WHERE ref = $1 RETURNING ref AS reference, status, version, amount_cents, currency",
            intent,
            next,
            method,
            idempotency_key,
            refund_failures,
            self.config.slow_settle_ms as f64 / 1000.0,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        Self::owe_webhook(&mut tx, &row)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        self.owed.notify_one();
        Ok(intent_of(&row))
    }

    async fn confirmed_with(
        &self,
        intent: &str,
        idempotency_key: &str,
    ) -> Result<Option<Intent>, ProviderError> {
        let confirm_key = sqlx::query_scalar!(
            "SELECT confirm_key FROM sandbox_intents WHERE ref = $1",
            intent,
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        .flatten();
        if confirm_key.as_deref() != Some(idempotency_key) {
            return Ok(None);
        }
        self.retrieve(intent).await.map(Some)
    }

    async fn retrieve(&self, intent: &str) -> Result<Intent, ProviderError> {
        self.settle_due(Some(intent)).await.map_err(unavailable)?;
        self.load(intent).await
    }

    async fn refund(
        &self,
        intent: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<String, ProviderError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let current = sqlx::query!(
            "SELECT status, amount_cents, refunded_cents, refund_failures_left
             FROM sandbox_intents WHERE ref = $1 FOR UPDATE",
            intent,
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ProviderError::Rejected(format!("no such intent {intent}")))?;
        let (status, amount, refunded, failures_left) = (
            current.status,
            current.amount_cents,
            current.refunded_cents,
            current.refund_failures_left,
        );
        let done = sqlx::query_scalar!(
            "SELECT ref FROM sandbox_refunds WHERE idempotency_key = $1",
            idempotency_key,
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        if let Some(reference) = done {
            return Ok(reference);
        }
        if failures_left > 0 {
            sqlx::query!(
                "UPDATE sandbox_intents SET refund_failures_left = refund_failures_left - 1 WHERE ref = $1",
                intent,
            )
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            return Err(ProviderError::Unavailable(
                "the card network did not answer".to_owned(),
            ));
        }
        if status != "succeeded" || amount_cents <= 0 || refunded + amount_cents > amount {
            return Err(ProviderError::Rejected(format!(
                "cannot refund {amount_cents} of a {status} intent of {amount} with {refunded} refunded"
            )));
        }
        let reference = format!("re_{}", Uuid::new_v4().simple());
        sqlx::query!(
            "INSERT INTO sandbox_refunds (idempotency_key, ref, intent_ref, amount_cents) VALUES ($1, $2, $3, $4)",
            idempotency_key,
            reference,
            intent,
            amount_cents,
        )
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query!(
            "UPDATE sandbox_intents SET refunded_cents = refunded_cents + $2 WHERE ref = $1",
            intent,
            amount_cents,
        )
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(reference)
    }

    fn parse_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_s: i64,
    ) -> Result<WebhookEvent, WebhookError> {
        let header = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or(WebhookError::MissingSignature)?;
        check_signature(&self.secret, self.tolerance_s, header, body, now_s)?;
        let payload: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let event: EventBody = serde_json::from_value(payload.clone())
            .map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let object = &event.data.object;
        let status = IntentStatus::parse(&object.status)
            .ok_or_else(|| WebhookError::Malformed(format!("unknown status {}", object.status)))?;
        if event.id.is_empty() || event.id.len() > 255 || object.id.len() > 255 {
            return Err(WebhookError::Malformed(
                "ids are 1 to 255 characters".to_owned(),
            ));
        }
        Ok(WebhookEvent {
            id: event.id,
            kind: event.kind,
            created_ms: event.created_ms,
            intent: Intent {
                reference: object.id.clone(),
                status,
                version: object.version,
            },
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"dev-webhook-secret-change-me";
    const TOLERANCE_S: u64 = 300;
    const NOW_S: i64 = 1_800_000_000;

    fn check(header: &str, body: &[u8], now_s: i64) -> Result<(), WebhookError> {
        check_signature(SECRET, TOLERANCE_S, header, body, now_s)
    }

    proptest! {
        #[test]
        fn any_signature_header_is_refused(
            header in prop_oneof![
                any::<String>(),
                (any::<i64>(), any::<[u8; 32]>())
                    .prop_map(|(t, mac)| format!("t={t},v1={}", hex::encode(mac))),
            ],
            body in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            prop_assert!(check(&header, &body, NOW_S).is_err());
        }

        #[test]
        fn a_correct_signature_over_any_body_verifies(
            body in prop::collection::vec(any::<u8>(), 0..500),
            age_s in -(TOLERANCE_S as i64)..=TOLERANCE_S as i64,
        ) {
            let header = sign(SECRET, NOW_S - age_s, &body);
            prop_assert!(check(&header, &body, NOW_S).is_ok(), "{}", header);
        }

        #[test]
        fn a_body_with_any_byte_changed_is_refused(
            body in prop::collection::vec(any::<u8>(), 1..500),
            at in any::<prop::sample::Index>(),
            flip in 1..=u8::MAX,
        ) {
            let header = sign(SECRET, NOW_S, &body);
            let at = at.index(body.len());
            let mut changed = body;
            changed[at] ^= flip;
            prop_assert!(matches!(check(&header, &changed, NOW_S), Err(WebhookError::BadSignature)));
        }

        #[test]
        fn a_signature_made_outside_the_tolerance_is_refused(
            t in prop_oneof![any::<i64>(), i64::MIN..i64::MIN + 1000, i64::MAX - 1000..=i64::MAX]
                .prop_filter("outside the tolerance", |t| {
                    NOW_S.abs_diff(*t) > TOLERANCE_S
                }),
            body in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let header = sign(SECRET, t, &body);
            prop_assert!(matches!(check(&header, &body, NOW_S), Err(WebhookError::Stale)));
        }
    }
}

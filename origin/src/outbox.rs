//! The outbox relay and the built-in notification consumer.
//!
//! Every change a fan should hear about commits an `outbox` row with it (`order_confirmed`,
//! `payment_failed`, `hold_expired`, `order_cancelled`, `refund_issued`, and for accounts
//! `password_reset_requested`, `show_cancelled`, `ticket_transferred`, `ticket_received` and `waitlist_offer`). Each names its aggregate on the stream as `order_id` or
//! `account_id`. The relay moves
//! rows to the Redis stream `<prefix>orders:events`, at least once: it XADDs a batch, then
//! marks the rows published; a crash between the two publishes them again, so consumers
//! dedupe by `outbox_id`. One relay publishes at a time (a PostgreSQL advisory lock), in
//! outbox id order; rows of one order come from transactions serialized on that order's
//! locks, so each order's events reach the stream in the order they happened.
//!
//! The consumer reads the stream in a consumer group and writes one message per event
//! through a [`Sink`] (by default [`JsonLinesSink`]). A failed write stays pending and is
//! retried with exponential backoff; after `max_attempts` deliveries the event is moved to
//! `<prefix>orders:events:dead` with its last error, and acknowledged.

use crate::config::NotificationsConfig;
use crate::metrics::Metrics;
use onsale_contract::redis::Connection;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// The advisory lock that makes one relay the publisher.
const RELAY_LOCK: i64 = 0x6f6e_7361_6c65; // "onsale"
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// New events one consumer round reads.
const READ_COUNT: usize = 100;

async fn connect(config: &NotificationsConfig) -> redis::RedisResult<Connection> {
    config.redis_target()?.connect(REDIS_TIMEOUT).await
}

pub(crate) fn stream_key(config: &NotificationsConfig) -> String {
    format!("{}orders:events", config.key_prefix)
}

pub(crate) fn dead_letter_key(config: &NotificationsConfig) -> String {
    format!("{}orders:events:dead", config.key_prefix)
}

/// Why a relay round failed; its rows stay unpublished for the next one.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Publishes one batch of unpublished rows; returns how many. Another relay holding the
/// lock makes this a no-op.
pub async fn relay_once(
    pool: &PgPool,
    redis: &mut Connection,
    config: &NotificationsConfig,
    metrics: &Metrics,
) -> Result<usize, RelayError> {
    let mut tx = pool.begin().await?;
    let leader = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock($1) AS "leader!""#,
        RELAY_LOCK,
    )
    .fetch_one(&mut *tx)
    .await?;
    if !leader {
        return Ok(0);
    }
    let rows = sqlx::query!(
        "SELECT id, aggregate_id, aggregate_type, event_type, payload, created_at FROM outbox
         WHERE published_at IS NULL ORDER BY id LIMIT $1",
        config.relay_batch,
    )
    .fetch_all(&mut *tx)
    .await?;
    if !rows.is_empty() {
        let stream = stream_key(config);
        let mut pipe = redis::pipe();
        for row in &rows {
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(config.stream_max_len)
                .arg("*")
                .arg("outbox_id")
                .arg(row.id)
                .arg("type")
                .arg(&row.event_type)
                .arg(match row.aggregate_type.as_str() {
                    "account" => "account_id",
                    _ => "order_id",
                })
                .arg(row.aggregate_id.to_string())
                .arg("created_at_ms")
                .arg(row.created_at.timestamp_millis())
                .arg("payload")
                .arg(row.payload.to_string())
                .ignore();
        }
        pipe.query_async::<()>(redis).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        sqlx::query!(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1)",
            &ids
        )
        .execute(&mut *tx)
        .await?;
    }
    // Counted after this batch was marked published, so it already excludes the batch.
    let waiting = sqlx::query_scalar!(
        r#"SELECT count(*) AS "waiting!" FROM outbox WHERE published_at IS NULL"#
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics.outbox_published.inc_by(rows.len() as u64);
    metrics.outbox_unpublished.set(waiting);
    Ok(rows.len())
}

/// Relays until `stopped`, every `relay_interval_ms`. Redis being away only
/// delays publication; rows wait in PostgreSQL.
pub(crate) async fn run_relay(
    pool: PgPool,
    config: NotificationsConfig,
    metrics: Arc<Metrics>,
    mut stopped: watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(config.relay_interval_ms);
    let mut redis = None;
    loop {
        if redis.is_none() {
            match connect(&config).await {
                Ok(connection) => redis = Some(connection),
                Err(error) => tracing::warn!(%error, "outbox relay cannot reach Redis yet"),
            }
        }
        if let Some(connection) = redis.as_mut() {
            match relay_once(&pool, connection, &config, &metrics).await {
                Ok(n) if n as i64 >= config.relay_batch => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "outbox relay round failed; retrying"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

/// What a notification consumer is told about one event.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Notification {
    pub outbox_id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    pub fan_id: Option<String>,
    pub message: String,
    pub payload: serde_json::Value,
}

impl Notification {
    fn from_fields(fields: &HashMap<String, String>) -> Option<Self> {
        let payload: serde_json::Value = serde_json::from_str(fields.get("payload")?).ok()?;
        let kind = fields.get("type")?.clone();
        let account_id = fields.get("account_id").cloned();
        if let Some(account_id) = account_id {
            let message = match kind.as_str() {
                "password_reset_requested" => format!(
                    "Your password reset code is {}. It works once, within {} minutes.",
                    payload["code"].as_str()?,
                    payload["valid_minutes"]
                ),
                "show_cancelled" => format!(
                    "{} on {} is cancelled. Every order of it is refunded in full.{}",
                    payload["event_name"].as_str()?,
                    payload["starts_at"].as_str()?,
                    payload["reason"]
                        .as_str()
                        .map(|reason| format!(" The organizer says: {reason}"))
                        .unwrap_or_default(),
                ),
                "ticket_transferred" => format!(
                    "Your ticket {} now belongs to another fan; its QR code no longer admits.",
                    payload["ticket_id"].as_str()?
                ),
                "waitlist_offer" => format!(
                    "Seats came back and are held for you: {} seat(s), until {}. Buy them from the show's waitlist.",
                    payload["seat_ids"].as_array()?.len(),
                    chrono::DateTime::from_timestamp_millis(payload["expires_at_ms"].as_i64()?)?
                        .format("%H:%M:%S UTC"),
                ),
                "ticket_received" => format!(
                    "A ticket was transferred to you ({}); it is with your tickets.",
                    payload["new_ticket_id"].as_str()?
                ),
                _ => format!("Account {account_id}: {kind}."),
            };
            return Some(Notification {
                outbox_id: fields.get("outbox_id")?.parse().ok()?,
                fan_id: payload["fan_id"].as_str().map(str::to_owned),
                kind,
                order_id: None,
                account_id: Some(account_id),
                message,
                payload,
            });
        }
        let order_id = fields.get("order_id")?.clone();
        let message = match kind.as_str() {
            "order_confirmed" => {
                let tickets = payload["ticket_ids"].as_array().map_or(0, Vec::len);
                format!("Order {order_id} is confirmed: {tickets} ticket(s) are ready.")
            }
            "payment_failed" => {
                format!("The payment for order {order_id} failed; the seats were released.")
            }
            "hold_expired" => {
                format!("Order {order_id} was not paid in time; the seats were released.")
            }
            "order_cancelled" => format!("Order {order_id} is cancelled; its tickets are void."),
            "refund_issued" => format!(
                "A refund of {} cents for order {order_id} is on its way.",
                payload["amount_cents"]
            ),
            _ => format!("Order {order_id}: {kind}."),
        };
        Some(Notification {
            outbox_id: fields.get("outbox_id")?.parse().ok()?,
            fan_id: payload["fan_id"].as_str().map(str::to_owned),
            kind,
            order_id: Some(order_id),
            account_id: None,
            message,
            payload,
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SinkError(pub String);

/// Where notifications go: email, push, a queue. The built-in one writes a file.
#[async_trait::async_trait]
pub(crate) trait Sink: Send + Sync {
    /// Delivers `batch`: an outcome per notification, in order.
    async fn deliver_all(&self, batch: &[&Notification]) -> Vec<Result<(), SinkError>>;
}

/// Appends one JSON object per line to a file, flushed before the events are acknowledged:
/// a batch is written and synced once, so a burst (a waitlist's offers) costs one sync.
pub(crate) struct JsonLinesSink {
    path: PathBuf,
}

impl JsonLinesSink {
    pub(crate) fn new(path: PathBuf) -> Self {
        JsonLinesSink { path }
    }
}

#[async_trait::async_trait]
impl Sink for JsonLinesSink {
    async fn deliver_all(&self, batch: &[&Notification]) -> Vec<Result<(), SinkError>> {
        let mut lines = Vec::new();
        for notification in batch {
            serde_json::to_writer(&mut lines, notification).expect("a notification serializes");
            lines.push(b'\n');
        }
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            file.write_all(&lines)?;
            file.sync_data()
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|written| written.map_err(|e| format!("{}: {e}", self.path.display())));
        batch
            .iter()
            .map(|_| written.clone().map_err(SinkError))
            .collect()
    }
}

/// The consumer group reader; one per origin instance, each with its own consumer name.
pub(crate) struct Consumer {
    config: NotificationsConfig,
    sink: Arc<dyn Sink>,
    metrics: Arc<Metrics>,
    name: String,
}

type StreamEntries = Vec<(String, Vec<(String, HashMap<String, String>)>)>;
/// A stream entry to deliver: its id, its fields, and which delivery this is.
type Entry = (String, HashMap<String, String>, u64);

impl Consumer {
    pub(crate) fn new(
        config: NotificationsConfig,
        sink: Arc<dyn Sink>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Consumer {
            config,
            sink,
            metrics,
            name: format!("origin-{}", Uuid::new_v4().simple()),
        }
    }

    async fn ensure_group(&self, redis: &mut Connection) -> Result<(), redis::RedisError> {
        let created: Result<(), _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream_key(&self.config))
            .arg(&self.config.consumer_group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(redis)
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// One round, once [`Consumer::run`] has made the group: retries what is due among failed
    /// deliveries (dead-lettering those out of attempts), then reads new events. Returns how
    /// many events it handled.
    pub(crate) async fn consume_once(
        &self,
        redis: &mut Connection,
    ) -> Result<usize, redis::RedisError> {
        let stream = stream_key(&self.config);
        let group = &self.config.consumer_group;
        let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(&stream)
            .arg(group)
            .arg("IDLE")
            .arg(self.config.retry_base_ms)
            .arg("-")
            .arg("+")
            .arg(100)
            .query_async(redis)
            .await?;
        let mut handled = 0;
        for (id, _, idle_ms, deliveries) in pending {
            let wait = onsale_contract::backoff::Backoff::new(
                std::time::Duration::from_millis(self.config.retry_base_ms),
                std::time::Duration::from_millis(self.config.retry_base_ms.saturating_mul(64)),
            )
            .delay(u32::try_from(deliveries).unwrap_or(u32::MAX));
            if u128::from(idle_ms) < wait.as_millis() {
                continue;
            }
            let claimed: Vec<(String, HashMap<String, String>)> = redis::cmd("XCLAIM")
                .arg(&stream)
                .arg(group)
                .arg(&self.name)
                .arg(wait.as_millis() as u64)
                .arg(&id)
                .query_async(redis)
                .await?;
            // XCLAIM counted this delivery too.
            let retried: Vec<Entry> = claimed
                .into_iter()
                .map(|(id, fields)| (id, fields, deliveries + 1))
                .collect();
            handled += retried.len();
            self.handle(redis, &retried).await?;
        }
        let fresh: Option<StreamEntries> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(&self.name)
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
            .query_async(redis)
            .await?;
        let fresh: Vec<Entry> = fresh
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(_, entries)| entries)
            .map(|(id, fields)| (id, fields, 1))
            .collect();
        handled += fresh.len();
        self.handle(redis, &fresh).await?;
        Ok(handled)
    }

    /// Delivers `entries` through the sink as one batch, then settles each: acknowledged,
    /// left pending for a retry, or dead-lettered.
    async fn handle(
        &self,
        redis: &mut Connection,
        entries: &[Entry],
    ) -> Result<(), redis::RedisError> {
        if entries.is_empty() {
            return Ok(());
        }
        let notifications: Vec<Option<Notification>> = entries
            .iter()
            .map(|(_, fields, _)| Notification::from_fields(fields))
            .collect();
        let batch: Vec<&Notification> = notifications.iter().flatten().collect();
        let mut outcomes = self.sink.deliver_all(&batch).await.into_iter();
        for ((id, fields, attempt), notification) in entries.iter().zip(&notifications) {
            let error = match notification {
                Some(_) => match outcomes.next() {
                    Some(Ok(())) => None,
                    Some(Err(error)) => Some(error.0),
                    None => Some("the sink gave no outcome".to_owned()),
                },
                None => Some("malformed event".to_owned()),
            };
            self.settle(redis, id, fields, *attempt, error).await?;
        }
        Ok(())
    }

    async fn settle(
        &self,
        redis: &mut Connection,
        id: &str,
        fields: &HashMap<String, String>,
        attempt: u64,
        error: Option<String>,
    ) -> Result<(), redis::RedisError> {
        let stream = stream_key(&self.config);
        let metric = &self.metrics.notifications;
        let Some(error) = error else {
            metric.with_label_values(&["delivered"]).inc();
            if fields.get("type").map(String::as_str) == Some("waitlist_offer") {
                self.offer_delivered(fields);
            }
            return self.ack(redis, &stream, id).await;
        };
        if attempt < u64::from(self.config.max_attempts) {
            metric.with_label_values(&["failed"]).inc();
            tracing::warn!(event = id, attempt, %error, "notification failed; will retry");
            return Ok(());
        }
        metric.with_label_values(&["dead_lettered"]).inc();
        tracing::error!(event = id, attempt, %error, "notification dead-lettered");
        let mut dead = redis::cmd("XADD");
        dead.arg(dead_letter_key(&self.config))
            .arg("*")
            .arg("stream_id")
            .arg(id)
            .arg("attempts")
            .arg(attempt)
            .arg("error")
            .arg(&error);
        for (field, value) in fields {
            dead.arg(field).arg(value);
        }
        dead.query_async::<()>(redis).await?;
        self.ack(redis, &stream, id).await
    }

    /// Observes a delivered offer's latency: from the return of its last seat to now.
    fn offer_delivered(&self, fields: &HashMap<String, String>) {
        let returned_ms = fields
            .get("payload")
            .and_then(|payload| serde_json::from_str::<serde_json::Value>(payload).ok())
            .and_then(|payload| payload["returned_at_ms"].as_i64());
        if let Some(returned_ms) = returned_ms {
            let latency_ms = onsale_contract::clock::now_ms() - returned_ms;
            self.metrics
                .waitlist_offer_latency
                .observe(latency_ms.max(0) as f64 / 1000.0);
        }
    }

    async fn ack(
        &self,
        redis: &mut Connection,
        stream: &str,
        id: &str,
    ) -> Result<(), redis::RedisError> {
        redis::cmd("XACK")
            .arg(stream)
            .arg(&self.config.consumer_group)
            .arg(id)
            .query_async(redis)
            .await
    }

    /// Consumes every `relay_interval_ms` until `stopped`, reconnecting (and making the
    /// group again) after a failed round.
    pub(crate) async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let interval = Duration::from_millis(self.config.relay_interval_ms);
        let mut redis = None;
        loop {
            if redis.is_none() {
                // The group is made once per connection, not every round.
                match connect(&self.config).await {
                    Ok(mut connection) => match self.ensure_group(&mut connection).await {
                        Ok(()) => redis = Some(connection),
                        Err(error) => tracing::warn!(%error, "cannot create the consumer group"),
                    },
                    Err(error) => {
                        tracing::warn!(%error, "notification consumer cannot reach Redis yet")
                    }
                }
            }
            if let Some(connection) = redis.as_mut() {
                match self.consume_once(connection).await {
                    // A full read: a burst is drained without waiting between reads.
                    Ok(handled) if handled >= READ_COUNT => continue,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "notification round failed; reconnecting");
                        // Next round starts over, recreating the group if Redis lost it.
                        redis = None;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    }
}

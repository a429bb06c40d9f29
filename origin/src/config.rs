//! `config/origin.toml`: every field is documented in that file.

use onsale_contract::config::{self, override_from_env, ConfigError, PathList, Secret};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub admin: AdminConfig,
    pub catalog: CatalogConfig,
    pub tokens: TokensConfig,
    pub holds: HoldsConfig,
    pub idempotency: IdempotencyConfig,
    pub orders: OrdersConfig,
    pub tickets: TicketsConfig,
    pub payments: PaymentsConfig,
    pub notifications: NotificationsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    /// The HMAC key webhooks are signed with, shared with the provider.
    pub webhook_secret: Secret,
    pub webhook_tolerance_s: u64,
    /// How often the refund worker looks for refunds coming due.
    pub refund_poll_ms: u64,
    pub refund_retry_base_ms: u64,
    pub refund_retry_max_ms: u64,
    pub reconcile_interval_s: f64,
    /// A payment `processing` for longer than this is asked of the provider.
    pub stuck_after_s: f64,
    /// Which provider takes the payments.
    pub provider: ProviderKind,
    /// The sandbox's settings; required when `provider = "sandbox"`.
    #[serde(default)]
    pub sandbox: Option<SandboxConfig>,
}

/// The payment providers the origin can be wired to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The built-in test provider: its own tables, test cards, signed webhooks over HTTP.
    Sandbox,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// Where the sandbox POSTs its webhooks; unset: the origin's own endpoint.
    #[serde(default)]
    pub webhook_url: Option<String>,
    pub slow_settle_ms: u64,
    pub poll_ms: u64,
    pub delivery_timeout_ms: u64,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub max_attempts: u32,
    pub duplicate_percent: u8,
    pub seed: u64,
    pub refund_failures: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Relay outbox rows to the Redis stream; off: they wait in PostgreSQL.
    pub relay: bool,
    pub redis_url: Secret,
    pub key_prefix: String,
    pub relay_interval_ms: u64,
    pub relay_batch: i64,
    /// Approximate length the stream is trimmed to.
    pub stream_max_len: u64,
    /// The built-in consumer: writes a message per event to `sink_path` (JSON lines).
    pub consumer: bool,
    pub consumer_group: String,
    pub sink_path: PathBuf,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsConfig {
    pub signing_key: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersConfig {
    pub payment_window_s: f64,
    /// Refunds on cancellation for every show without its own policy.
    pub refund_policy: RefundPolicy,
    /// Per show id, a policy of its own.
    #[serde(default)]
    pub show_refund_policies: std::collections::BTreeMap<String, RefundPolicy>,
}

/// Refund tiers: cancelling at least `days_before` days before the show refunds `percent`
/// of the order; the first tier that applies, from the furthest out; none applies: nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RefundPolicy(pub Vec<RefundTier>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundTier {
    pub days_before: u32,
    pub percent: u8,
}

impl RefundPolicy {
    /// Cents refunded of `total_cents` when cancelling `seconds_before` the show starts.
    pub fn refund_cents(&self, total_cents: i64, seconds_before: i64) -> i64 {
        let percent = self
            .0
            .iter()
            .filter(|tier| seconds_before >= i64::from(tier.days_before) * 86_400)
            .map(|tier| tier.percent)
            .max()
            .unwrap_or(0);
        total_cents * i64::from(percent) / 100
    }

    fn problem(&self) -> Option<&'static str> {
        if self.0.len() > 20 {
            return Some("at most 20 tiers");
        }
        self.0
            .iter()
            .any(|t| t.percent > 100)
            .then_some("percent must be 0 to 100")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    pub verify_keys: Vec<PathBuf>,
    pub issuer: String,
    pub leeway_s: u64,
    pub cache_entries: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldsConfig {
    pub ttl_s: f64,
    pub max_seats_per_hold: usize,
    pub max_seats_per_fan: usize,
    pub sweep_interval_ms: u64,
    pub sweep_batch: i64,
}

/// Idempotency records of every keyed write.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// Hours a stored answer is kept.
    pub ttl_h: u32,
    /// Seconds after which an unfinished request may be taken over.
    pub in_flight_timeout_s: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub body_limit_bytes: usize,
    pub admin_body_limit_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: Secret,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub token: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    pub default_page_size: u32,
    pub max_page_size: u32,
    pub public_cache_max_age_s: u32,
}

impl Config {
    /// Reads the file, applies environment overrides, then checks ranges.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = config::load(path)?;
        override_from_env(&mut config.http.listen, "ONSALE_ORIGIN_LISTEN")?;
        override_from_env(&mut config.database.url, "DATABASE_URL")?;
        override_from_env(&mut config.admin.token, "ONSALE_ADMIN_TOKEN")?;
        override_from_env(&mut config.tickets.signing_key, "ONSALE_TICKET_SIGNING_KEY")?;
        override_from_env(&mut config.payments.webhook_secret, "ONSALE_WEBHOOK_SECRET")?;
        override_from_env(&mut config.notifications.redis_url, "REDIS_URL")?;
        let mut keys = PathList(std::mem::take(&mut config.tokens.verify_keys));
        override_from_env(&mut keys, "ONSALE_VERIFY_KEYS")?;
        config.tokens.verify_keys = keys.0;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let key = |k: &str, m: &str| Err(ConfigError::key(path, k, m));
        if self.http.body_limit_bytes < 1024 {
            return key("http.body_limit_bytes", "must be at least 1024");
        }
        if self.http.admin_body_limit_bytes < self.http.body_limit_bytes {
            return key(
                "http.admin_body_limit_bytes",
                "must be at least http.body_limit_bytes",
            );
        }
        if self.database.max_connections == 0 {
            return key("database.max_connections", "must be at least 1");
        }
        if self.admin.token.expose().len() < 16 {
            return key("admin.token", "must be at least 16 characters");
        }
        let catalog = &self.catalog;
        if catalog.max_page_size == 0 || catalog.max_page_size > 500 {
            return key("catalog.max_page_size", "must be between 1 and 500");
        }
        if catalog.default_page_size == 0 || catalog.default_page_size > catalog.max_page_size {
            return key(
                "catalog.default_page_size",
                "must be between 1 and catalog.max_page_size",
            );
        }
        if self.tokens.verify_keys.is_empty() {
            return key("tokens.verify_keys", "needs at least one public key");
        }
        let holds = &self.holds;
        if !(0.1..=86_400.0).contains(&holds.ttl_s) {
            return key("holds.ttl_s", "must be 0.1 to 86400 seconds");
        }
        if !(1..=100).contains(&holds.max_seats_per_hold) {
            return key("holds.max_seats_per_hold", "must be 1 to 100");
        }
        if holds.max_seats_per_fan < holds.max_seats_per_hold {
            return key(
                "holds.max_seats_per_fan",
                "must be at least holds.max_seats_per_hold",
            );
        }
        let idempotency = &self.idempotency;
        if idempotency.ttl_h == 0 {
            return key("idempotency.ttl_h", "must be at least 1");
        }
        if idempotency.in_flight_timeout_s == 0 {
            return key("idempotency.in_flight_timeout_s", "must be at least 1");
        }
        if holds.sweep_interval_ms == 0 || holds.sweep_batch < 1 {
            return key(
                "holds",
                "sweep_interval_ms and sweep_batch must be positive",
            );
        }
        let orders = &self.orders;
        if !(1.0..=86_400.0).contains(&orders.payment_window_s) {
            return key("orders.payment_window_s", "must be 1 to 86400 seconds");
        }
        if let Some(problem) = orders.refund_policy.problem() {
            return key("orders.refund_policy", problem);
        }
        for (show, policy) in &orders.show_refund_policies {
            if uuid::Uuid::parse_str(show).is_err() {
                return key("orders.show_refund_policies", "keys are show ids (UUIDs)");
            }
            if let Some(problem) = policy.problem() {
                return key("orders.show_refund_policies", problem);
            }
        }
        let payments = &self.payments;
        if payments.webhook_secret.expose().len() < 16 {
            return key("payments.webhook_secret", "must be at least 16 characters");
        }
        if payments.refund_poll_ms == 0 || payments.refund_retry_base_ms == 0 {
            return key(
                "payments",
                "refund_poll_ms and refund_retry_base_ms must be positive",
            );
        }
        if payments.reconcile_interval_s <= 0.0 || payments.stuck_after_s < 0.0 {
            return key(
                "payments",
                "reconcile_interval_s must be positive and stuck_after_s not negative",
            );
        }
        let sandbox = match (payments.provider, &payments.sandbox) {
            (ProviderKind::Sandbox, Some(sandbox)) => sandbox,
            (ProviderKind::Sandbox, None) => {
                return key(
                    "payments.sandbox",
                    "required when payments.provider = \"sandbox\"",
                )
            }
        };
        if sandbox.duplicate_percent > 100 {
            return key("payments.sandbox.duplicate_percent", "must be 0 to 100");
        }
        if sandbox.poll_ms == 0 || sandbox.max_attempts == 0 || sandbox.delivery_timeout_ms == 0 {
            return key(
                "payments.sandbox",
                "poll_ms, delivery_timeout_ms and max_attempts must be positive",
            );
        }
        let notifications = &self.notifications;
        if notifications.relay_interval_ms == 0
            || notifications.relay_batch < 1
            || notifications.max_attempts == 0
        {
            return key(
                "notifications",
                "relay_interval_ms, relay_batch and max_attempts must be positive",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refunds_follow_the_tiers_by_days_before_the_show() {
        let policy = RefundPolicy(vec![
            RefundTier {
                days_before: 30,
                percent: 100,
            },
            RefundTier {
                days_before: 7,
                percent: 50,
            },
        ]);
        let day = 86_400;
        assert_eq!(policy.refund_cents(10_000, 45 * day), 10_000);
        assert_eq!(policy.refund_cents(10_000, 30 * day), 10_000);
        assert_eq!(policy.refund_cents(10_000, 30 * day - 1), 5_000);
        assert_eq!(policy.refund_cents(10_001, 7 * day), 5_000);
        assert_eq!(policy.refund_cents(10_000, 7 * day - 1), 0);
        assert_eq!(policy.refund_cents(10_000, -day), 0);
        assert_eq!(RefundPolicy(vec![]).refund_cents(10_000, 90 * day), 0);
    }
}

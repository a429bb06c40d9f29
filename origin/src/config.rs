//! `config/origin.toml`: every field is documented in that file.

use onsale_contract::config::{self, override_from_env, ConfigError, PathList, Secret};
use onsale_contract::redis::{Target, TargetError};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole of `config/origin.toml`, one field per section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[http]`: the listener and body limits.
    pub http: HttpConfig,
    /// `[database]`: PostgreSQL, the system of record.
    pub database: DatabaseConfig,
    /// `[admin]`: the organizer API's credential.
    pub admin: AdminConfig,
    /// `[catalog]`: public catalog paging and caching.
    pub catalog: CatalogConfig,
    /// `[tokens]`: how admission tokens are verified.
    pub tokens: TokensConfig,
    /// `[holds]`: hold lifetime, seat limits and the expiry sweeper.
    pub holds: HoldsConfig,
    /// `[idempotency]`: how long answers to keyed writes are kept.
    pub idempotency: IdempotencyConfig,
    /// `[orders]`: the payment window and refund policies.
    pub orders: OrdersConfig,
    /// `[tickets]`: the keys ticket QR payloads are signed with, and whether tickets may change
    /// hands.
    pub tickets: TicketsConfig,
    /// `[payments]`: the provider, webhooks, refunds and reconciliation.
    pub payments: PaymentsConfig,
    /// `[notifications]`: the outbox relay and the built-in consumer.
    pub notifications: NotificationsConfig,
    /// `[accounts]`: password hashing, sessions, throttling and password resets.
    pub accounts: AccountsConfig,
    /// `[waitlist]`: waiting for the seats of a sold-out show, and the offers made of them.
    pub waitlist: WaitlistConfig,
}

/// `[waitlist]`: waiting for the seats of a sold-out show, and the offers made of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitlistConfig {
    /// Whether fans may join a sold-out show's waitlist. Without one, seats that come back
    /// go straight back on sale.
    pub enabled: bool,
    /// How long an offer holds its seats for the fan before they pass to the next one.
    pub offer_ttl_s: u32,
    /// How often the offer worker looks for seats that came back.
    pub offer_interval_ms: u64,
    /// How long a seat that came back waits for a waiting fan it fits (one who wants fewer
    /// seats, or that section) before it goes back on sale for everyone.
    pub hold_back_s: u32,
}

/// `[accounts]`: password hashing, sessions, throttling and password resets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsConfig {
    /// argon2id memory cost per hash, in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id passes over that memory.
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
    /// Most password hashes computed at once by one origin (each holds its memory cost).
    pub max_concurrent_hashes: usize,
    /// How long a request waits for a hashing slot before it gets 503.
    pub hash_wait_ms: u64,
    /// How long a session lasts from sign-in.
    pub session_ttl_h: u32,
    /// Whether the session cookie is `Secure` (sent over HTTPS only).
    pub cookie_secure: bool,
    /// Length of a throttling window.
    pub failure_window_s: u32,
    /// Failed credential checks for one email per window before it is refused with 429.
    pub max_failures_per_email: u32,
    /// Failed credential checks from one client IP per window before it is refused with 429.
    pub max_failures_per_ip: u32,
    /// How long a password reset code works.
    pub reset_code_ttl_s: u32,
    /// Reset codes sent to one email per window; more requests are answered but send nothing.
    pub max_reset_requests_per_email: u32,
    /// Reset requests from one client IP per window before it is refused with 429.
    pub max_reset_requests_per_ip: u32,
    /// Wrong presale access codes from one account per window before it is refused with 429.
    pub max_code_failures_per_account: u32,
    /// Wrong presale access codes from one client IP per window before it is refused with 429.
    pub max_code_failures_per_ip: u32,
}

/// OWASP's argon2id configurations, each as strong as the others: (memory KiB, passes).
/// A configuration must reach one of them.
const ARGON2_FLOORS: [(u32, u32); 5] = [
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
];

impl AccountsConfig {
    fn problem(&self) -> Option<(&'static str, &'static str)> {
        let (m, t, p) = (
            self.argon2_memory_kib,
            self.argon2_iterations,
            self.argon2_parallelism,
        );
        if !ARGON2_FLOORS
            .iter()
            .any(|&(floor_m, floor_t)| m >= floor_m && t >= floor_t)
        {
            return Some((
                "accounts.argon2_memory_kib",
                "with argon2_iterations, below OWASP's minimums (e.g. 19456 KiB with 2 passes)",
            ));
        }
        if m > 1_048_576 {
            return Some((
                "accounts.argon2_memory_kib",
                "must be at most 1048576 (1 GiB)",
            ));
        }
        if t > 20 {
            return Some(("accounts.argon2_iterations", "must be at most 20"));
        }
        if !(1..=16).contains(&p) {
            return Some(("accounts.argon2_parallelism", "must be 1 to 16"));
        }
        if self.max_concurrent_hashes == 0 {
            return Some(("accounts.max_concurrent_hashes", "must be at least 1"));
        }
        if !(1..=8_760).contains(&self.session_ttl_h) {
            return Some(("accounts.session_ttl_h", "must be 1 to 8760 hours"));
        }
        if self.failure_window_s == 0
            || self.max_failures_per_email == 0
            || self.max_failures_per_ip == 0
            || self.max_reset_requests_per_email == 0
            || self.max_reset_requests_per_ip == 0
            || self.max_code_failures_per_account == 0
            || self.max_code_failures_per_ip == 0
        {
            return Some((
                "accounts",
                "failure_window_s and every max_* limit must be positive",
            ));
        }
        if !(60..=86_400).contains(&self.reset_code_ttl_s) {
            return Some(("accounts.reset_code_ttl_s", "must be 60 to 86400 seconds"));
        }
        None
    }
}

/// `[payments]`: the provider, webhooks, refunds and reconciliation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    /// The HMAC key webhooks are signed with, shared with the provider.
    pub webhook_secret: Secret,
    /// A webhook signed longer ago than this (or this far in the future) is refused.
    pub webhook_tolerance_s: u64,
    /// How often the refund worker looks for refunds coming due.
    pub refund_poll_ms: u64,
    /// First delay before a failed refund is tried again; doubles per attempt.
    pub refund_retry_base_ms: u64,
    /// Longest delay between refund attempts.
    pub refund_retry_max_ms: u64,
    /// How often the reconciliation job runs.
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

/// `[payments.sandbox]`: the built-in test provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// Where the sandbox POSTs its webhooks; unset: the origin's own endpoint.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// How long after confirmation `pm_card_slow` succeeds, by webhook only.
    pub slow_settle_ms: u64,
    /// How often the sandbox looks for webhooks and slow payments coming due.
    pub poll_ms: u64,
    /// A delivery that gets no answer within this long counts as failed.
    pub delivery_timeout_ms: u64,
    /// First delay before a failed delivery is retried; doubles per attempt.
    pub retry_base_ms: u64,
    /// Longest delay between delivery attempts.
    pub retry_max_ms: u64,
    /// Delivery attempts before a webhook is abandoned.
    pub max_attempts: u32,
    /// Percentage of events delivered twice.
    pub duplicate_percent: u8,
    /// Seed of the generator that picks duplicates and shuffles batches.
    pub seed: u64,
    /// Refund attempts of `pm_card_refund_fails` that fail before one succeeds.
    pub refund_failures: u32,
}

/// `[notifications]`: the outbox relay and the built-in consumer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Relay outbox rows to the Redis stream; off: they wait in PostgreSQL.
    pub relay: bool,
    /// The Redis the events stream lives in; with `redis_cluster`, nodes of the cluster
    /// separated by commas.
    pub redis_url: Secret,
    /// Whether `redis_url` names a Redis Cluster rather than one server.
    #[serde(default)]
    pub redis_cluster: bool,
    /// Prefix of the stream keys (`<key_prefix>orders:events` and its dead letters).
    pub key_prefix: String,
    /// How often the relay publishes and the consumer reads.
    pub relay_interval_ms: u64,
    /// Outbox rows published per relay round.
    pub relay_batch: i64,
    /// Approximate length the stream is trimmed to.
    pub stream_max_len: u64,
    /// The built-in consumer: writes a message per event to `sink_path` (JSON lines).
    pub consumer: bool,
    /// The consumer group the built-in consumer reads in.
    pub consumer_group: String,
    /// The file the built-in consumer appends to.
    pub sink_path: PathBuf,
    /// Deliveries of an event before it goes to the dead-letter stream.
    pub max_attempts: u32,
    /// First delay before a failed write is retried; doubles per attempt.
    pub retry_base_ms: u64,
}

impl NotificationsConfig {
    /// Where the events stream's Redis is.
    pub fn redis_target(&self) -> Result<Target, TargetError> {
        Target::new(self.redis_url.expose(), self.redis_cluster)
    }
}

/// `[tickets]`: the key ticket QR payloads are signed with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsConfig {
    /// The Ed25519 private key (PKCS#8 PEM) that signs ticket payloads.
    pub signing_key: PathBuf,
    /// Public keys (SPKI PEM) of earlier signing keys whose tickets still verify.
    #[serde(default)]
    pub previous_keys: Vec<PathBuf>,
    /// Whether a fan may transfer a ticket, for every show without a policy of its own.
    #[serde(default)]
    pub transfer_policy: TransferPolicy,
    /// Per show id, a policy of its own.
    #[serde(default)]
    pub show_transfer_policies: std::collections::BTreeMap<String, TransferPolicy>,
    /// Per show id, QR codes that change every `rotate_s`; other shows' codes do not.
    #[serde(default)]
    pub show_rotating_qr: std::collections::BTreeMap<String, RotatingQr>,
}

/// A show's rotating QR codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotatingQr {
    /// Seconds each code is shown for: 5 to 60. A code stays good for two steps after its
    /// own, so a screenshot is refused 2 to 3 periods after it was taken.
    #[serde(default = "RotatingQr::default_rotate_s")]
    pub rotate_s: u32,
}

impl RotatingQr {
    /// Shortest and longest period.
    pub const PERIODS_S: std::ops::RangeInclusive<u32> = 5..=60;

    fn default_rotate_s() -> u32 {
        15
    }
}

/// When a ticket may change hands: `"allowed"` (until the show starts), `"never"`, or
/// `{ until_hours_before = N }` (until N hours before the show starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TransferPolicy {
    /// `"allowed"` or `"never"`.
    Always(TransferRule),
    /// Until this many hours before the show starts.
    Until {
        /// Hours before the show's start when transfers stop.
        until_hours_before: u32,
    },
}

/// `"allowed"` or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferRule {
    /// Until the show starts.
    Allowed,
    /// Not at all.
    Never,
}

impl Default for TransferPolicy {
    fn default() -> Self {
        TransferPolicy::Always(TransferRule::Allowed)
    }
}

impl TransferPolicy {
    /// Whether a transfer `seconds_before` the show starts is allowed (never once it has).
    pub(crate) fn allows(self, seconds_before: i64) -> bool {
        seconds_before > 0
            && match self {
                TransferPolicy::Always(TransferRule::Allowed) => true,
                TransferPolicy::Always(TransferRule::Never) => false,
                TransferPolicy::Until { until_hours_before } => {
                    seconds_before >= i64::from(until_hours_before) * 3600
                }
            }
    }
}

/// `[orders]`: the payment window and refund policies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersConfig {
    /// Creating an order extends its hold, once, to at least this long: the time to pay.
    pub payment_window_s: f64,
    /// Refunds on cancellation for every show without its own policy.
    pub refund_policy: RefundPolicy,
    /// Per show id, a policy of its own.
    #[serde(default)]
    pub show_refund_policies: std::collections::BTreeMap<String, RefundPolicy>,
    /// A called-off show's holds and orders are cancelled this many to a transaction (1 to
    /// 1000): each batch locks its seats and orders only while it runs.
    #[serde(default = "default_show_cancellation_batch")]
    pub show_cancellation_batch: u16,
}

fn default_show_cancellation_batch() -> u16 {
    100
}

/// Refund tiers: cancelling at least `days_before` days before the show refunds `percent`
/// of the order; the first tier that applies, from the furthest out; none applies: nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RefundPolicy(pub Vec<RefundTier>);

/// One tier of a [`RefundPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundTier {
    /// Days before the show a cancellation must be made at least for this tier.
    pub days_before: u32,
    /// Percentage of the order refunded, 0 to 100.
    pub percent: u8,
}

impl RefundPolicy {
    /// Cents refunded of `total_cents` when cancelling `seconds_before` the show starts.
    pub(crate) fn refund_cents(&self, total_cents: i64, seconds_before: i64) -> i64 {
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

/// `[tokens]`: how admission tokens are verified.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// Public keys (SPKI PEM) tokens may be signed with: the current one and, during a
    /// rotation, the previous one.
    pub verify_keys: Vec<PathBuf>,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// Seconds of clock skew tolerated on `exp`.
    pub leeway_s: u64,
    /// Most verified tokens kept in the cache.
    pub cache_entries: usize,
}

/// `[holds]`: hold lifetime, seat limits and the expiry sweeper.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldsConfig {
    /// How long a hold keeps its seats before they return to sale.
    pub ttl_s: f64,
    /// Most seats in one hold.
    pub max_seats_per_hold: usize,
    /// Most seats one fan may have per show across active holds and orders.
    pub max_seats_per_fan: usize,
    /// How often the sweeper returns seats of expired holds.
    pub sweep_interval_ms: u64,
    /// Expired holds the sweeper ends per transaction (their seats stay locked meanwhile).
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

/// `[http]`: the listener and body limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where the origin listens; only the edge and operators should reach it.
    pub listen: SocketAddr,
    /// Largest request body on fan-facing routes; larger ones get 413.
    pub body_limit_bytes: usize,
    /// Largest request body on the organizer API (seat maps are large).
    pub admin_body_limit_bytes: usize,
}

/// `[database]`: PostgreSQL, the system of record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The PostgreSQL connection URL.
    pub url: Secret,
    /// Pool size per origin instance.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before it fails with 503.
    pub acquire_timeout_ms: u64,
    /// Apply pending migrations when the origin starts.
    pub migrate_on_start: bool,
}

/// `[admin]`: the organizer API's credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token for the organizer API; at least 16 characters.
    pub token: Secret,
}

/// `[catalog]`: public catalog paging and caching.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// Events per page when the client sends no `limit`.
    pub default_page_size: u32,
    /// Largest `limit` a client may ask for.
    pub max_page_size: u32,
    /// `Cache-Control` max-age on public catalog reads; the edge micro-caches as long.
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
        override_from_env(&mut config.notifications.redis_cluster, "REDIS_CLUSTER")?;
        override_from_env(&mut config.accounts.cookie_secure, "ONSALE_COOKIE_SECURE")?;
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
        if self
            .tickets
            .show_transfer_policies
            .keys()
            .any(|show| uuid::Uuid::parse_str(show).is_err())
        {
            return key(
                "tickets.show_transfer_policies",
                "keys are show ids (UUIDs)",
            );
        }
        for (show, rotating) in &self.tickets.show_rotating_qr {
            if uuid::Uuid::parse_str(show).is_err() {
                return key("tickets.show_rotating_qr", "keys are show ids (UUIDs)");
            }
            if !RotatingQr::PERIODS_S.contains(&rotating.rotate_s) {
                return key(
                    "tickets.show_rotating_qr",
                    "rotate_s must be 5 to 60 seconds",
                );
            }
        }
        for (show, policy) in &orders.show_refund_policies {
            if uuid::Uuid::parse_str(show).is_err() {
                return key("orders.show_refund_policies", "keys are show ids (UUIDs)");
            }
            if let Some(problem) = policy.problem() {
                return key("orders.show_refund_policies", problem);
            }
        }
        if !(1..=1000).contains(&orders.show_cancellation_batch) {
            return key("orders.show_cancellation_batch", "must be 1 to 1000");
        }
        let waitlist = &self.waitlist;
        if !(1..=3600).contains(&waitlist.offer_ttl_s) {
            return key("waitlist.offer_ttl_s", "must be 1 to 3600 seconds");
        }
        if !(50..=5000).contains(&waitlist.offer_interval_ms) {
            return key("waitlist.offer_interval_ms", "must be 50 to 5000");
        }
        if waitlist.hold_back_s > 3600 {
            return key("waitlist.hold_back_s", "must be at most 3600 seconds");
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
        // Ranges, not bare signs: NaN passes no sign check, and an interval past what a
        // `Duration` holds would panic the reconciliation job at start.
        let interval_s = payments.reconcile_interval_s;
        let in_range = interval_s > 0.0
            && interval_s <= 86_400.0
            && (0.0..=86_400.0).contains(&payments.stuck_after_s);
        if !in_range {
            return key(
                "payments",
                "reconcile_interval_s must be positive and stuck_after_s not negative, both at most 86400 seconds",
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
        if let Some((at, problem)) = self.accounts.problem() {
            return key(at, problem);
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
        if let Err(error) = notifications.redis_target() {
            return key("notifications.redis_url", &error.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn argon2_settings_must_reach_one_of_owasps_minimums() {
        let settings = |m: u32, t: u32, p: u32| AccountsConfig {
            argon2_memory_kib: m,
            argon2_iterations: t,
            argon2_parallelism: p,
            max_concurrent_hashes: 2,
            hash_wait_ms: 1000,
            session_ttl_h: 24,
            cookie_secure: true,
            failure_window_s: 900,
            max_failures_per_email: 5,
            max_failures_per_ip: 100,
            reset_code_ttl_s: 900,
            max_reset_requests_per_email: 3,
            max_reset_requests_per_ip: 20,
            max_code_failures_per_account: 10,
            max_code_failures_per_ip: 50,
        };
        for (m, t) in [
            (19_456, 2),
            (47_104, 1),
            (12_288, 3),
            (9_216, 4),
            (7_168, 5),
            (65_536, 3),
        ] {
            assert_eq!(settings(m, t, 1).problem(), None, "m={m} t={t}");
        }
        for (m, t) in [
            (19_455, 2),
            (47_103, 1),
            (19_456, 1),
            (7_168, 4),
            (4_096, 20),
        ] {
            assert_eq!(
                settings(m, t, 1).problem().map(|(key, _)| key),
                Some("accounts.argon2_memory_kib"),
                "m={m} t={t}"
            );
        }
        assert!(settings(19_456, 2, 0).problem().is_some());
        assert!(settings(2_000_000, 2, 1).problem().is_some());
    }

    #[test]
    fn a_rotating_qr_period_is_5_to_60_seconds_for_a_show_id() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/origin.toml"
        ));
        let mut config: Config = onsale_contract::config::load(path).expect("the shipped file");
        let show = "0193a6f0-0000-7000-8000-000000000201";
        assert_eq!(
            config.tickets.show_rotating_qr[show],
            RotatingQr { rotate_s: 15 }
        );
        let refused = |config: &Config| match config.validate(path) {
            Err(ConfigError::Key { key, .. }) => Some(key),
            _ => None,
        };
        let wrong = Some("tickets.show_rotating_qr".to_owned());
        for (rotate_s, verdict) in [
            (5, None),
            (60, None),
            (4, wrong.clone()),
            (61, wrong.clone()),
        ] {
            config
                .tickets
                .show_rotating_qr
                .insert(show.to_owned(), RotatingQr { rotate_s });
            assert_eq!(refused(&config), verdict, "rotate_s = {rotate_s}");
        }
        config.tickets.show_rotating_qr.clear();
        config
            .tickets
            .show_rotating_qr
            .insert("stadium".to_owned(), RotatingQr { rotate_s: 15 });
        assert_eq!(refused(&config), wrong, "a key that is no show id");
    }

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

    onsale_contract::config_file_properties!("origin.toml", |config| {
        let payments = &config.payments;
        // The reconciliation job makes a `Duration` of it when it starts.
        let interval = std::time::Duration::try_from_secs_f64(payments.reconcile_interval_s);
        prop_assert!(interval.is_ok());
        for seconds in [
            config.holds.ttl_s,
            config.orders.payment_window_s,
            payments.reconcile_interval_s,
            payments.stuck_after_s,
        ] {
            prop_assert!(seconds.is_finite());
        }
    });
}

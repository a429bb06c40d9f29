//! `config/edge.toml`: every field is documented in that file.
//!
//! Everything but the listeners and thread count applies live: see [`crate::live`].

use chrono::{DateTime, Utc};
use onsale_contract::config::{self, override_from_env, ConfigError, PathList, Secret};
use onsale_contract::redis::{key_prefix_problem, Target, TargetError};
use onsale_contract::tokens;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[listen]`.
    pub listen: ListenConfig,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[origin]`.
    pub origin: OriginConfig,
    /// `[redis]`.
    pub redis: RedisConfig,
    /// `[snapshots]`.
    pub snapshots: SnapshotConfig,
    /// `[tokens]`.
    pub tokens: TokenConfig,
    /// `[limits]`.
    pub limits: LimitsConfig,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// `[waiting_room]`.
    pub waiting_room: WaitingRoomConfig,
    /// `[accounts]`.
    #[serde(default)]
    pub accounts: AccountsConfig,
}

/// Where the edge listens; applies on restart only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// The public listener fans reach.
    pub public: SocketAddr,
    /// The operations listener.
    pub admin: SocketAddr,
    /// A TLS terminator in front of `public`: fans reach it over HTTPS, so cookies are
    /// `Secure`, web pages carry HSTS and the origin is told `X-Forwarded-Proto: https`.
    #[serde(default)]
    pub https_in_front: bool,
    /// HTTPS beside `public` (HTTP/2 or HTTP/1.1 by ALPN); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// The edge's own HTTPS listener. The address applies on restart; the certificate and key
/// files are read again whenever either changes (every `server.reload_poll_ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Where it listens. Env override: ONSALE_EDGE_TLS_LISTEN.
    pub address: SocketAddr,
    /// PEM certificate chain, the server's certificate first. Env: ONSALE_EDGE_TLS_CERT.
    pub cert: PathBuf,
    /// PEM private key of that certificate. Env: ONSALE_EDGE_TLS_KEY.
    pub key: PathBuf,
    /// `Strict-Transport-Security: max-age` on answers over HTTPS; 0 sends none.
    #[serde(default = "default_hsts_max_age_s")]
    pub hsts_max_age_s: u64,
}

/// A year, as HSTS preload lists ask.
fn default_hsts_max_age_s() -> u64 {
    31_536_000
}

/// The Pingora server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Worker threads of the public listener; applies on restart only.
    pub threads: usize,
    /// Time requests in flight get to finish after SIGTERM.
    pub grace_period_s: u64,
    /// Time the runtimes get to stop after that.
    pub graceful_shutdown_timeout_s: u64,
    /// How often the file is checked for changes.
    pub reload_poll_ms: u64,
}

/// The origin pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// The origins, round-robin over the healthy ones.
    pub upstreams: Vec<SocketAddr>,
    /// Connecting to an origin.
    pub connect_timeout_ms: u64,
    /// Waiting on an origin's answer.
    pub read_timeout_ms: u64,
    /// Idle keep-alive connections to an origin are kept this long.
    pub idle_timeout_s: u64,
    /// How often every origin's `/readyz` is checked.
    pub health_check_interval_ms: u64,
    /// How long catalog reads are micro-cached; 0: not at all.
    pub catalog_cache_ms: u64,
    /// Most catalog answers micro-cached.
    pub catalog_cache_entries: usize,
}

/// Where snapshots and the waiting room's state live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// The Redis URL; with `cluster`, nodes of the cluster separated by commas.
    pub url: Secret,
    /// Whether `url` names a Redis Cluster rather than one server.
    #[serde(default)]
    pub cluster: bool,
    /// Every key's prefix; the builder's must match.
    pub key_prefix: String,
}

impl RedisConfig {
    /// Where Redis is.
    pub fn target(&self) -> Result<Target, TargetError> {
        Target::new(self.url.expose(), self.cluster)
    }
}

/// The snapshot feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// How often snapshot metadata is polled, for missed announcements.
    pub poll_interval_ms: u64,
    /// `Retry-After` on 503 `snapshot_not_ready`.
    pub retry_after_s: u64,
}

/// Token keys and checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The private key (PKCS#8 PEM) the waiting room signs queue and admission tokens with.
    pub signing_key: PathBuf,
    /// Public keys (SPKI PEM) admission tokens may be signed with, found by `kid`.
    pub verify_keys: Vec<PathBuf>,
    /// Files of base64 secrets queue tokens are MACed with (HS256): the first signs, all
    /// verify, found by `kid`.
    pub queue_keys: Vec<PathBuf>,
    /// `iss` of the tokens issued and accepted.
    pub issuer: String,
    /// Seconds of clock skew tolerated on `exp`.
    pub leeway_s: u64,
    /// Most verified tokens cached.
    pub cache_entries: usize,
}

/// A token bucket: `per_minute` cells refill evenly over a minute, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Cells refilled per minute.
    pub per_minute: u32,
    /// Most cells held at once.
    pub burst: u32,
}

/// Sizes and rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// Larger request headers are refused with 431.
    pub max_header_bytes: usize,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// How often idle rate-limit keys are dropped.
    pub retain_interval_ms: u64,
    /// Per client IP (IPv6 by /64), every public route.
    pub per_ip: Quota,
    /// Per client IP, waiting-room joins.
    pub per_ip_join: Quota,
    /// Per client IP, sign-ups and sign-ins.
    pub per_ip_sign_in: Quota,
    /// Per fan and show on the purchase path.
    pub per_fan_purchase: Quota,
    /// One bucket per route class on this node.
    pub route_class: RouteClassQuotas,
}

/// One global bucket per route class on this node, shielding what sits behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteClassQuotas {
    /// Catalog reads.
    pub catalog: Quota,
    /// Seat maps and availability.
    pub snapshot: Quota,
    /// The purchase path and tickets.
    pub purchase: Quota,
    /// Joins, polls and challenges.
    pub waiting_room: Quota,
    /// Account pages, sign-up and sign-in.
    pub account: Quota,
}

/// The admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token for `/admin/*`; `None`: open (loopback only).
    pub token: Option<Secret>,
}

/// The waiting room, node-wide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitingRoomConfig {
    /// Queue tokens are valid this long.
    pub queue_token_ttl_s: u64,
    /// How often each show's admission step runs.
    pub refresh_ms: u64,
    /// A Redis call fails after this long; applies at start.
    pub redis_timeout_ms: u64,
    /// Most places stepped over per show per step.
    pub max_steps_per_refresh: u32,
    /// Every show not in `shows` that the seat-map builder publishes gets a room on these.
    #[serde(default)]
    pub default: Option<DefaultQueue>,
    /// Per show, by show id.
    #[serde(default)]
    pub shows: BTreeMap<String, QueueSettings>,
}

/// `[waiting_room.default]`: the queue of every show without settings of its own. Its
/// schedule follows the show's sale (`on_sale_at`): the queue opens `queue_opens_before_s`
/// before it, and the pre-queue is drawn when it opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultQueue {
    /// Fans called per minute, across all nodes.
    pub admit_per_minute: u32,
    /// Most admitted sessions and unclaimed calls open at once.
    pub max_active: u32,
    /// How long an admission lasts.
    pub session_ttl_s: u64,
    /// The queue opens this long before the show's sale; 0 to 7 days.
    #[serde(default = "default_queue_lead")]
    pub queue_opens_before_s: u64,
    /// How the pre-queue is ordered.
    #[serde(default = "random_order")]
    pub prequeue_order: PrequeueOrder,
    /// A fan silent this long is skipped when its turn comes.
    #[serde(default = "default_grace")]
    pub no_show_grace_s: u64,
    /// Leading zero bits a join's proof of work needs; 0: none.
    #[serde(default)]
    pub pow_difficulty: u8,
    /// No admissions while true.
    #[serde(default)]
    pub paused: bool,
}

fn default_queue_lead() -> u64 {
    1800
}

/// The longest lead a default queue may open with.
const MAX_QUEUE_LEAD_S: u64 = 7 * 86_400;

impl DefaultQueue {
    /// The settings of a show whose sale opens at `sale_ms` (Unix ms); `None` for a time
    /// out of range.
    pub fn for_sale_at_ms(&self, sale_ms: i64) -> Option<QueueSettings> {
        let sale_opens_at = DateTime::from_timestamp_millis(sale_ms)?;
        let lead = chrono::Duration::seconds(i64::try_from(self.queue_opens_before_s).ok()?);
        Some(QueueSettings {
            admit_per_minute: self.admit_per_minute,
            max_active: self.max_active,
            session_ttl_s: self.session_ttl_s,
            queue_opens_at: sale_opens_at.checked_sub_signed(lead)?,
            sale_opens_at,
            prequeue_order: self.prequeue_order,
            no_show_grace_s: self.no_show_grace_s,
            pow_difficulty: self.pow_difficulty,
            paused: self.paused,
        })
    }

    /// The first problem with these values, if any.
    fn problem(&self) -> Option<&'static str> {
        if self.queue_opens_before_s > MAX_QUEUE_LEAD_S {
            return Some("queue_opens_before_s must be 0 to 604800 (7 days)");
        }
        self.for_sale_at_ms(0)?.problem()
    }
}

/// Fans' accounts: how the edge learns whose session a join carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsConfig {
    /// How long a session the origin vouched for is believed without asking again; a
    /// revoked session still joins at the edge for at most this long. 0 to 60.
    #[serde(default = "default_session_cache_s")]
    pub session_cache_s: u64,
    /// Most sessions remembered at once.
    #[serde(default = "default_session_cache_entries")]
    pub session_cache_entries: usize,
    /// Asking an origin about a session fails after this long.
    #[serde(default = "default_lookup_timeout_ms")]
    pub lookup_timeout_ms: u64,
}

fn default_session_cache_s() -> u64 {
    30
}

fn default_session_cache_entries() -> usize {
    500_000
}

fn default_lookup_timeout_ms() -> u64 {
    2_000
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            session_cache_s: default_session_cache_s(),
            session_cache_entries: default_session_cache_entries(),
            lookup_timeout_ms: default_lookup_timeout_ms(),
        }
    }
}

/// How a show's pre-queue is ordered at the opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrequeueOrder {
    /// A uniformly random order drawn from a committed seed.
    Random,
    /// The order fans joined in.
    JoinOrder,
}

/// One show's queue. Replicated through Redis: every node runs on the values there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// Fans called per minute, across all nodes.
    pub admit_per_minute: u32,
    /// Most admitted sessions and unclaimed calls open at once.
    pub max_active: u32,
    /// How long an admission lasts.
    pub session_ttl_s: u64,
    /// Joins before this are told when the queue opens.
    pub queue_opens_at: DateTime<Utc>,
    /// Joins before this form the pre-queue, drawn at this instant.
    pub sale_opens_at: DateTime<Utc>,
    /// How the pre-queue is ordered.
    #[serde(default = "random_order")]
    pub prequeue_order: PrequeueOrder,
    /// A fan silent this long is skipped when its turn comes.
    #[serde(default = "default_grace")]
    pub no_show_grace_s: u64,
    /// Leading zero bits a join's proof of work needs; 0: none.
    #[serde(default)]
    pub pow_difficulty: u8,
    /// No admissions while true.
    #[serde(default)]
    pub paused: bool,
}

fn random_order() -> PrequeueOrder {
    PrequeueOrder::Random
}

fn default_grace() -> u64 {
    60
}

impl QueueSettings {
    /// `queue_opens_at` in Unix milliseconds.
    pub fn queue_opens_ms(&self) -> i64 {
        self.queue_opens_at.timestamp_millis()
    }

    /// `sale_opens_at` in Unix milliseconds.
    pub fn sale_opens_ms(&self) -> i64 {
        self.sale_opens_at.timestamp_millis()
    }

    /// `no_show_grace_s` in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.no_show_grace_s as i64 * 1000
    }

    /// The first problem with these values, if any.
    pub fn problem(&self) -> Option<&'static str> {
        if self.admit_per_minute == 0 || self.max_active == 0 {
            return Some("admit_per_minute and max_active must be positive");
        }
        // An admission token lives as long as its session; verifiers refuse longer ones.
        if !(10..=tokens::MAX_ADMISSION_LIFETIME_S as u64).contains(&self.session_ttl_s) {
            return Some("session_ttl_s must be 10 to 86400");
        }
        if self.sale_opens_at < self.queue_opens_at {
            return Some("sale_opens_at must not be before queue_opens_at");
        }
        if !(4..=3_600).contains(&self.no_show_grace_s) {
            return Some("no_show_grace_s must be 4 to 3600");
        }
        if self.pow_difficulty > 32 {
            return Some("pow_difficulty must be 0 to 32 bits");
        }
        None
    }
}

/// A change of a show's admission numbers from the admin API (`PUT
/// /admin/shows/{id}/queue`): the fields given replace the show's values in force. The
/// schedule (`queue_opens_at`, `sale_opens_at`, `prequeue_order`) is the file's alone, so
/// no change of fairness can come from a live call; `paused` has its own routes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueTuning {
    /// Fans called per minute, across all nodes.
    pub admit_per_minute: Option<u32>,
    /// Most admitted sessions and unclaimed calls open at once.
    pub max_active: Option<u32>,
    /// How long an admission lasts.
    pub session_ttl_s: Option<u64>,
    /// A fan silent this long is skipped when its turn comes.
    pub no_show_grace_s: Option<u64>,
    /// Leading zero bits a join's proof of work needs; 0: none.
    pub pow_difficulty: Option<u8>,
}

impl QueueTuning {
    /// `settings` with this change applied, or the first problem with the result.
    pub fn applied_to(&self, settings: &QueueSettings) -> Result<QueueSettings, &'static str> {
        let tuned = QueueSettings {
            admit_per_minute: self.admit_per_minute.unwrap_or(settings.admit_per_minute),
            max_active: self.max_active.unwrap_or(settings.max_active),
            session_ttl_s: self.session_ttl_s.unwrap_or(settings.session_ttl_s),
            no_show_grace_s: self.no_show_grace_s.unwrap_or(settings.no_show_grace_s),
            pow_difficulty: self.pow_difficulty.unwrap_or(settings.pow_difficulty),
            ..settings.clone()
        };
        match tuned.problem() {
            Some(problem) => Err(problem),
            None => Ok(tuned),
        }
    }
}

/// An IP network such as `10.0.0.0/8` or `2001:db8::/32`; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.as_str(), None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        format!("{}/{}", c.network, c.prefix)
    }
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
            match prefix {
                0 => 0,
                p => bits >> (width - p),
            }
        }
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u32::from(n).into(), self.prefix, 32)
                    == masked(u32::from(a).into(), self.prefix, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(n.into(), self.prefix, 128) == masked(a.into(), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// Comma-separated socket addresses, for `ONSALE_ORIGIN_UPSTREAMS`.
struct AddrList(Vec<SocketAddr>);

impl std::str::FromStr for AddrList {
    type Err = std::net::AddrParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(|a| a.trim().parse())
            .collect::<Result<_, _>>()
            .map(AddrList)
    }
}

impl Config {
    /// Reads, overrides from the environment, and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = config::load(path)?;
        override_from_env(&mut config.listen.public, "ONSALE_EDGE_LISTEN")?;
        override_from_env(&mut config.listen.admin, "ONSALE_EDGE_ADMIN_LISTEN")?;
        if let Some(address) = std::env::var_os("ONSALE_EDGE_TLS_LISTEN") {
            // The env alone may turn HTTPS on: certificate and key then come from it too.
            let address = address.to_string_lossy().parse().map_err(|e| {
                ConfigError::key(
                    path,
                    "listen.tls.address",
                    format!("ONSALE_EDGE_TLS_LISTEN: {e}"),
                )
            })?;
            let tls = config.listen.tls.get_or_insert_with(|| TlsConfig {
                address,
                cert: PathBuf::new(),
                key: PathBuf::new(),
                hsts_max_age_s: default_hsts_max_age_s(),
            });
            tls.address = address;
        }
        if let Some(tls) = config.listen.tls.as_mut() {
            override_from_env(&mut tls.cert, "ONSALE_EDGE_TLS_CERT")?;
            override_from_env(&mut tls.key, "ONSALE_EDGE_TLS_KEY")?;
        }
        override_from_env(&mut config.redis.url, "REDIS_URL")?;
        override_from_env(&mut config.redis.cluster, "REDIS_CLUSTER")?;
        let mut upstreams = AddrList(std::mem::take(&mut config.origin.upstreams));
        override_from_env(&mut upstreams, "ONSALE_ORIGIN_UPSTREAMS")?;
        config.origin.upstreams = upstreams.0;
        override_from_env(&mut config.tokens.signing_key, "ONSALE_SIGNING_KEY")?;
        let mut keys = PathList(std::mem::take(&mut config.tokens.verify_keys));
        override_from_env(&mut keys, "ONSALE_VERIFY_KEYS")?;
        config.tokens.verify_keys = keys.0;
        let mut queue_keys = PathList(std::mem::take(&mut config.tokens.queue_keys));
        override_from_env(&mut queue_keys, "ONSALE_QUEUE_KEYS")?;
        config.tokens.queue_keys = queue_keys.0;
        if let Some(token) = std::env::var_os("ONSALE_EDGE_ADMIN_TOKEN") {
            config.admin.token = Some(Secret::new(token.to_string_lossy().into_owned()));
        }
        config.validate(path)?;
        Ok(config)
    }

    /// The first value out of range, named by its key.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let fail = |key: &str, message: &str| Err(ConfigError::key(path, key, message));
        if !(1..=256).contains(&self.server.threads) {
            return fail("server.threads", "must be 1 to 256");
        }
        if self.server.reload_poll_ms < 100 {
            return fail("server.reload_poll_ms", "must be at least 100");
        }
        let origin = &self.origin;
        if origin.upstreams.is_empty() {
            return fail("origin.upstreams", "needs at least one origin");
        }
        if origin.connect_timeout_ms == 0 || origin.read_timeout_ms == 0 {
            return fail("origin", "timeouts must be positive");
        }
        if origin.health_check_interval_ms < 50 {
            return fail("origin.health_check_interval_ms", "must be at least 50");
        }
        if let Err(error) = self.redis.target() {
            return fail("redis.url", &error.to_string());
        }
        if let Some(problem) = key_prefix_problem(&self.redis.key_prefix) {
            return fail("redis.key_prefix", problem);
        }
        if self.snapshots.poll_interval_ms < 100 {
            return fail("snapshots.poll_interval_ms", "must be at least 100");
        }
        if self.tokens.verify_keys.is_empty() {
            return fail("tokens.verify_keys", "needs at least one key");
        }
        if self.tokens.queue_keys.is_empty() {
            return fail("tokens.queue_keys", "needs at least one key");
        }
        if self.listen.admin.port() == self.listen.public.port() {
            return fail("listen.admin", "must use another port than listen.public");
        }
        if let Some(tls) = &self.listen.tls {
            if tls.cert.as_os_str().is_empty() || tls.key.as_os_str().is_empty() {
                return fail("listen.tls", "needs both cert and key files");
            }
            if tls.address == self.listen.public || tls.address == self.listen.admin {
                return fail("listen.tls.address", "must differ from the other listeners");
            }
        }
        let accounts = &self.accounts;
        if accounts.session_cache_s > 60 {
            return fail("accounts.session_cache_s", "must be 0 to 60");
        }
        if accounts.session_cache_entries == 0 {
            return fail("accounts.session_cache_entries", "must be positive");
        }
        if !(10..=10_000).contains(&accounts.lookup_timeout_ms) {
            return fail("accounts.lookup_timeout_ms", "must be 10 to 10000");
        }
        let limits = &self.limits;
        if limits.max_body_bytes == 0 || limits.max_header_bytes < 1024 {
            return fail(
                "limits",
                "max_body_bytes must be positive, max_header_bytes >= 1024",
            );
        }
        if limits.retain_interval_ms < 100 {
            return fail("limits.retain_interval_ms", "must be at least 100");
        }
        let classes = &limits.route_class;
        for (key, quota) in [
            ("limits.per_ip", limits.per_ip),
            ("limits.per_ip_join", limits.per_ip_join),
            ("limits.per_ip_sign_in", limits.per_ip_sign_in),
            ("limits.route_class.account", classes.account),
            ("limits.route_class.waiting_room", classes.waiting_room),
            ("limits.per_fan_purchase", limits.per_fan_purchase),
            ("limits.route_class.catalog", classes.catalog),
            ("limits.route_class.snapshot", classes.snapshot),
            ("limits.route_class.purchase", classes.purchase),
        ] {
            if quota.per_minute == 0 || quota.burst == 0 {
                return fail(key, "per_minute and burst must be positive");
            }
        }
        let room = &self.waiting_room;
        if !(50..=1000).contains(&room.refresh_ms) {
            return fail("waiting_room.refresh_ms", "must be 50 to 1000");
        }
        if !(10..=10_000).contains(&room.redis_timeout_ms) {
            return fail("waiting_room.redis_timeout_ms", "must be 10 to 10000");
        }
        // Bounded above too: a queue token's `exp` is its issue time plus this, in i64.
        if !(60..=31_536_000).contains(&room.queue_token_ttl_s) || room.max_steps_per_refresh == 0 {
            return fail(
                "waiting_room",
                "queue_token_ttl_s must be 60 to 31536000 (a year), max_steps_per_refresh positive",
            );
        }
        if let Some(problem) = room.default.as_ref().and_then(DefaultQueue::problem) {
            return fail("waiting_room.default", problem);
        }
        if room.shows.len() > 1000 {
            return fail("waiting_room.shows", "at most 1000 shows");
        }
        for (show, settings) in &room.shows {
            if !crate::routes::is_id(show) {
                return fail(
                    "waiting_room.shows",
                    "show ids are 1-64 URL-safe characters",
                );
            }
            if let Some(problem) = settings.problem() {
                return fail(&format!("waiting_room.shows.{show}"), problem);
            }
        }
        let loopback = self.listen.admin.ip().is_loopback();
        let token_len = self.admin.token.as_ref().map_or(0, |t| t.expose().len());
        if !loopback && token_len < 16 {
            return fail(
                "admin.token",
                "needs at least 16 characters when the admin listener is not on loopback",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cidr(s: &str) -> Cidr {
        Cidr::try_from(s.to_owned()).unwrap()
    }

    #[test]
    fn cidr_matching() {
        assert!(cidr("10.0.0.0/8").contains("10.1.2.3".parse().unwrap()));
        assert!(!cidr("10.0.0.0/8").contains("11.0.0.1".parse().unwrap()));
        assert!(cidr("127.0.0.1").contains("127.0.0.1".parse().unwrap()));
        assert!(cidr("127.0.0.1").contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(cidr("0.0.0.0/0").contains("8.8.8.8".parse().unwrap()));
        assert!(cidr("2001:db8::/32").contains("2001:db8:1::1".parse().unwrap()));
        assert!(!cidr("2001:db8::/32").contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::try_from("10.0.0.0/33".to_owned()).is_err());
        assert!(Cidr::try_from("nonsense".to_owned()).is_err());
    }

    #[test]
    fn listeners_need_ports_of_their_own() {
        let path = committed();
        let mut config = Config::load(&path).expect("the committed file loads");
        config.listen.admin = SocketAddr::from(([127, 0, 0, 1], config.listen.public.port()));
        let error = config
            .validate(&path)
            .expect_err("one port for two listeners");
        assert!(error.to_string().contains("key `listen.admin`"), "{error}");
    }

    #[test]
    fn redis_urls_and_prefixes_that_would_break_a_cluster_are_refused() {
        let path = committed();
        let config = Config::load(&path).expect("the committed file loads");
        let refused = |change: &dyn Fn(&mut Config), key: &str| {
            let mut changed = config.clone();
            change(&mut changed);
            let error = changed.validate(&path).expect_err("refused");
            assert!(
                error.to_string().contains(&format!("key `{key}`")),
                "{error}"
            );
        };
        refused(
            &|c| c.redis.key_prefix = "{onsale}:".into(),
            "redis.key_prefix",
        );
        refused(&|c| c.redis.url = Secret::new("nonsense"), "redis.url");
        refused(
            &|c| {
                c.redis.url = Secret::new("redis://10.0.0.1:6379,,redis://10.0.0.2:6379");
                c.redis.cluster = true;
            },
            "redis.url",
        );
        let mut cluster = config.clone();
        cluster.redis.url = Secret::new("redis://10.0.0.1:6379,redis://10.0.0.2:6379");
        cluster.redis.cluster = true;
        cluster.validate(&path).expect("a cluster's nodes");
    }

    onsale_contract::config_file_properties!("edge.toml", |config| {
        // A queue token issued now expires `queue_token_ttl_s` later, in Unix seconds.
        let now_s = chrono::Utc::now().timestamp();
        let ttl_s = i64::try_from(config.waiting_room.queue_token_ttl_s);
        prop_assert!(ttl_s.is_ok_and(|ttl_s| now_s.checked_add(ttl_s).is_some()));
    });
}

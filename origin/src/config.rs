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
    pub orders: OrdersConfig,
    pub tickets: TicketsConfig,
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
    pub idempotency_ttl_h: u32,
    pub idempotency_in_flight_timeout_s: u32,
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
        if holds.sweep_interval_ms == 0 || holds.sweep_batch < 1 {
            return key(
                "holds",
                "sweep_interval_ms and sweep_batch must be positive",
            );
        }
        if !(1.0..=86_400.0).contains(&self.orders.payment_window_s) {
            return key("orders.payment_window_s", "must be 1 to 86400 seconds");
        }
        Ok(())
    }
}

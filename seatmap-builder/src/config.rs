//! `config/seatmap-builder.toml`: every field is documented in that file.

use onsale_contract::config::{self, override_from_env, ConfigError, Secret};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub build: BuildConfig,
    pub http: HttpConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: Secret,
    pub replica_url: Secret,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: Secret,
    pub key_prefix: String,
    pub snapshot_ttl_s: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    pub interval_s: f64,
    pub lookahead_hours: u32,
    pub out_dir: PathBuf,
    pub gzip_level: u32,
    pub brotli_quality: u32,
    pub layout_brotli_quality: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = config::load(path)?;
        override_from_env(&mut config.database.url, "DATABASE_URL")?;
        override_from_env(&mut config.database.replica_url, "DATABASE_REPLICA_URL")?;
        override_from_env(&mut config.redis.url, "REDIS_URL")?;
        override_from_env(&mut config.http.listen, "ONSALE_BUILDER_LISTEN")?;
        config.validate(path)?;
        Ok(config)
    }

    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let build = &self.build;
        if !(0.05..=3600.0).contains(&build.interval_s) {
            return Err(ConfigError::key(
                path,
                "build.interval_s",
                "must be 0.05 to 3600 seconds",
            ));
        }
        if build.gzip_level > 9 {
            return Err(ConfigError::key(path, "build.gzip_level", "must be 0 to 9"));
        }
        if build.brotli_quality > 11 {
            return Err(ConfigError::key(
                path,
                "build.brotli_quality",
                "must be 0 to 11",
            ));
        }
        if build.layout_brotli_quality > 11 {
            return Err(ConfigError::key(
                path,
                "build.layout_brotli_quality",
                "must be 0 to 11",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::key(
                path,
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if self.redis.snapshot_ttl_s < 1 {
            return Err(ConfigError::key(
                path,
                "redis.snapshot_ttl_s",
                "must be positive",
            ));
        }
        let prefix = &self.redis.key_prefix;
        if prefix.len() > 64 || prefix.contains(['{', '}', ' ']) {
            return Err(ConfigError::key(
                path,
                "redis.key_prefix",
                "at most 64 characters, without braces or spaces",
            ));
        }
        Ok(())
    }

    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.build.interval_s)
    }
}

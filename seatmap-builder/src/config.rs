//! `config/seatmap-builder.toml`: every field is documented in that file.

use onsale_contract::config::{self, override_from_env, ConfigError, Secret};
use onsale_contract::redis::{key_prefix_problem, Target, TargetError};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[database]`: where seat states are read.
    pub database: DatabaseConfig,
    /// `[redis]`: where snapshots are published and the lease is kept.
    pub redis: RedisConfig,
    /// `[build]`: what is built, how often, how compressed.
    pub build: BuildConfig,
    /// `[http]`: the operations listener.
    pub http: HttpConfig,
}

/// `[database]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The primary, read only when no replica is set.
    pub url: Secret,
    /// A streaming replica to read from; empty: the primary.
    pub replica_url: Secret,
    /// The pool's size.
    pub max_connections: u32,
}

/// `[redis]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// Where snapshots are published for the edge; with `cluster`, nodes of the cluster
    /// separated by commas.
    pub url: Secret,
    /// Whether `url` names a Redis Cluster rather than one server.
    #[serde(default)]
    pub cluster: bool,
    /// Prefix of every key and channel; the edge must use the same.
    pub key_prefix: String,
    /// A published snapshot disappears this long after its last build.
    pub snapshot_ttl_s: u64,
}

impl RedisConfig {
    /// Where Redis is.
    pub fn target(&self) -> Result<Target, TargetError> {
        Target::new(self.url.expose(), self.cluster)
    }
}

/// `[build]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// Seconds between builds.
    pub interval_s: f64,
    /// Shows are built from this many hours before they go on sale until they start.
    pub lookahead_hours: u32,
    /// Also write every snapshot under this directory; empty: no files.
    pub out_dir: PathBuf,
    /// gzip level, 0-9.
    pub gzip_level: u32,
    /// Brotli quality of availability documents, 0-11.
    pub brotli_quality: u32,
    /// Brotli quality of layout documents, 0-11.
    pub layout_brotli_quality: u32,
}

/// `[http]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The address of `/healthz`, `/readyz` and `/metrics`.
    pub listen: SocketAddr,
}

impl Config {
    /// Reads `path`, applies the environment overrides and validates the result.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = config::load(path)?;
        override_from_env(&mut config.database.url, "DATABASE_URL")?;
        override_from_env(&mut config.database.replica_url, "DATABASE_REPLICA_URL")?;
        override_from_env(&mut config.redis.url, "REDIS_URL")?;
        override_from_env(&mut config.redis.cluster, "REDIS_CLUSTER")?;
        override_from_env(&mut config.http.listen, "ONSALE_BUILDER_LISTEN")?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks the ranges TOML types cannot express; errors name `path` and the key.
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
        if let Err(error) = self.redis.target() {
            return Err(ConfigError::key(path, "redis.url", error.to_string()));
        }
        if let Some(problem) = key_prefix_problem(&self.redis.key_prefix) {
            return Err(ConfigError::key(path, "redis.key_prefix", problem));
        }
        Ok(())
    }

    /// The build interval.
    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.build.interval_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    onsale_contract::config_file_properties!("seatmap-builder.toml", |config| {
        prop_assert!(config.interval() > std::time::Duration::ZERO);
    });
}

//! `config/edge.toml`: every field is documented in that file.

use onsale_contract::config::{self, override_from_env, ConfigError};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: ListenConfig,
    pub server: ServerConfig,
    pub origin: OriginConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    pub public: SocketAddr,
    pub admin: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub threads: usize,
    pub grace_period_s: u64,
    pub graceful_shutdown_timeout_s: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    pub upstreams: Vec<SocketAddr>,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
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
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = config::load(path)?;
        override_from_env(&mut config.listen.public, "ONSALE_EDGE_LISTEN")?;
        override_from_env(&mut config.listen.admin, "ONSALE_EDGE_ADMIN_LISTEN")?;
        let mut upstreams = AddrList(std::mem::take(&mut config.origin.upstreams));
        override_from_env(&mut upstreams, "ONSALE_ORIGIN_UPSTREAMS")?;
        config.origin.upstreams = upstreams.0;
        config.validate(path)?;
        Ok(config)
    }

    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        if !(1..=256).contains(&self.server.threads) {
            return Err(ConfigError::key(path, "server.threads", "must be 1 to 256"));
        }
        if self.origin.upstreams.is_empty() {
            return Err(ConfigError::key(
                path,
                "origin.upstreams",
                "needs at least one origin",
            ));
        }
        if self.origin.connect_timeout_ms == 0 || self.origin.read_timeout_ms == 0 {
            return Err(ConfigError::key(
                path,
                "origin",
                "timeouts must be positive",
            ));
        }
        Ok(())
    }
}

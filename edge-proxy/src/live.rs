//! Live configuration. The running values are one immutable [`Runtime`] behind an
//! `ArcSwap`: a request loads it once and sees one consistent version throughout. A reload
//! (SIGHUP, or the file changing) parses and validates the whole file and loads every token
//! key before swapping; any failure leaves the running version in place.

use crate::config::Config;
use crate::limits::Limits;
use crate::waiting_room::pow::PowKey;
use arc_swap::ArcSwap;
use onsale_contract::clock::Clock;
use onsale_contract::config::ConfigError;
use onsale_contract::tasks::StopSignal;
use onsale_contract::tokens::{
    CacheCounters, KeyError, QueueKeys, Signer, TokenType, VerifiedCache, Verifier,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Queue tokens already checked, by hash.
pub(crate) type QueueTokens = VerifiedCache<Arc<QueueKeys>>;

/// One version of the running configuration and what is built from it.
pub struct Runtime {
    /// Counts applied configurations, from 1 at start.
    pub version: u64,
    /// The configuration itself.
    pub config: Config,
    /// Admission tokens on the purchase path.
    pub(crate) tokens: Arc<VerifiedCache>,
    /// Sign the waiting room's queue tokens (HS256).
    pub(crate) queue_keys: Arc<QueueKeys>,
    /// Queue tokens on the waiting room's polls and re-joins, checked with `queue_keys`.
    pub(crate) queue_tokens: Arc<QueueTokens>,
    /// Signs the admission tokens the waiting room issues (EdDSA).
    pub(crate) signer: Arc<Signer>,
    /// Authenticates proof-of-work challenges; derived from the signing key, so every node
    /// holding that key accepts every node's challenges.
    pub(crate) pow_key: PowKey,
    pub(crate) limits: Arc<Limits>,
}

/// Why a configuration was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not parse or validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A token key cannot be read or used.
    #[error("token keys: {0}")]
    Keys(#[from] KeyError),
}

/// The running configuration, swapped whole on reload.
pub struct Live {
    current: ArcSwap<Runtime>,
    /// The file reloads read; `None` for an edge built from a value.
    path: Option<PathBuf>,
    clock: Clock,
    counters: CacheCounters,
    reloads: prometheus::IntCounterVec,
}

fn verifier(config: &Config) -> Result<Verifier, KeyError> {
    let tokens = &config.tokens;
    Verifier::from_files(&tokens.verify_keys, &tokens.issuer, tokens.leeway_s)
}

fn signer(config: &Config) -> Result<(Arc<Signer>, PowKey), KeyError> {
    let path = &config.tokens.signing_key;
    let pem = std::fs::read(path).map_err(|e| KeyError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let signer = Signer::from_file(path, &config.tokens.issuer)?;
    Ok((Arc::new(signer), PowKey::from_signing_key(&pem)))
}

/// The admission token cache for `config`'s keys.
fn cache(config: &Config, counters: &CacheCounters) -> Result<Arc<VerifiedCache>, KeyError> {
    Ok(Arc::new(VerifiedCache::new(
        verifier(config)?,
        TokenType::Admit,
        config.tokens.cache_entries,
        counters,
    )))
}

/// The queue keys of `config` and the cache of queue tokens checked with them.
fn queue_keys(
    config: &Config,
    counters: &CacheCounters,
) -> Result<(Arc<QueueKeys>, Arc<QueueTokens>), KeyError> {
    let tokens = &config.tokens;
    let keys = Arc::new(QueueKeys::from_files(&tokens.queue_keys, &tokens.issuer)?);
    let cache = VerifiedCache::new(
        keys.clone(),
        TokenType::Queue,
        tokens.cache_entries,
        counters,
    );
    Ok((keys, Arc::new(cache)))
}

impl Live {
    /// The first version, from `config`; `path` is the file reloads read.
    pub(crate) fn new(
        config: Config,
        path: Option<PathBuf>,
        clock: Clock,
        registry: &prometheus::Registry,
    ) -> Result<Self, ReloadError> {
        let counters = CacheCounters::register(registry);
        let tokens = cache(&config, &counters)?;
        let (queue_keys, queue_tokens) = queue_keys(&config, &counters)?;
        let (signer, pow_key) = signer(&config)?;
        let runtime = Runtime {
            version: 1,
            limits: Arc::new(Limits::new(&config.limits, &clock)),
            tokens,
            queue_keys,
            queue_tokens,
            signer,
            pow_key,
            config,
        };
        Ok(Live {
            current: ArcSwap::from_pointee(runtime),
            path,
            clock,
            counters,
            reloads: onsale_contract::metrics::counter_vec(
                registry,
                "config_reloads_total",
                "Configuration reloads by outcome",
                &["outcome"],
            ),
        })
    }

    /// The running version.
    pub fn load(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// Re-reads the file and applies it; returns the running version.
    pub(crate) fn reload(&self) -> Result<u64, ReloadError> {
        let Some(path) = &self.path else {
            return Ok(self.load().version);
        };
        let result = Config::load(path)
            .map_err(ReloadError::from)
            .and_then(|c| self.apply(c));
        match &result {
            Ok(version) => {
                self.reloads.with_label_values(&["applied"]).inc();
                tracing::info!(version, path = %path.display(), "configuration applied");
            }
            Err(error) => {
                self.reloads.with_label_values(&["refused"]).inc();
                tracing::error!(%error, path = %path.display(), "configuration refused; the running one stays");
            }
        }
        result
    }

    /// Applies `config` over the running one. Listeners and threads cannot move while
    /// running: they keep their values (with a warning) until a restart. Limiters and the
    /// token caches keep their state unless their part of the config changed.
    pub fn apply(&self, mut config: Config) -> Result<u64, ReloadError> {
        let running = self.load();
        if config.listen != running.config.listen
            || config.server.threads != running.config.server.threads
        {
            tracing::warn!("listen addresses and server.threads apply on restart only");
            config.listen = running.config.listen.clone();
            config.server.threads = running.config.server.threads;
        }
        let new_verifier = verifier(&config)?;
        let new_queue_keys = queue_keys(&config, &self.counters)?;
        let same = |old: Vec<&str>, new: Vec<&str>| {
            let (mut old, mut new) = (old, new);
            old.sort_unstable();
            new.sort_unstable();
            old == new
        };
        let same_keys = config.tokens == running.config.tokens
            && same(
                running.tokens.verifier().kids().collect(),
                new_verifier.kids().collect(),
            )
            && same(
                running.queue_keys.kids().collect(),
                new_queue_keys.0.kids().collect(),
            )
            && running.queue_keys.kid() == new_queue_keys.0.kid();
        let (tokens, (queue_keys, queue_tokens), (signer, pow_key)) = match same_keys {
            true => (
                running.tokens.clone(),
                (running.queue_keys.clone(), running.queue_tokens.clone()),
                (running.signer.clone(), running.pow_key.clone()),
            ),
            false => (
                cache(&config, &self.counters)?,
                new_queue_keys,
                signer(&config)?,
            ),
        };
        let limits = match &config.limits == running.limits.config() {
            true => running.limits.clone(),
            false => Arc::new(Limits::new(&config.limits, &self.clock)),
        };
        let version = running.version + 1;
        self.current.store(Arc::new(Runtime {
            version,
            config,
            tokens,
            queue_keys,
            queue_tokens,
            signer,
            pow_key,
            limits,
        }));
        Ok(version)
    }

    fn modified(&self) -> Option<SystemTime> {
        let path = self.path.as_ref()?;
        std::fs::metadata(path).and_then(|m| m.modified()).ok()
    }
}

impl Live {
    /// Reloads on SIGHUP and when the file's modification time moves, until `stop`.
    pub(crate) async fn watch(&self, mut stop: StopSignal) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; file changes still reload");
                None
            }
        };
        let mut seen = self.modified();
        loop {
            let poll = Duration::from_millis(self.load().config.server.reload_poll_ms);
            tokio::select! {
                _ = async { match hangup.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {
                    seen = self.modified();
                    let _ = self.reload();
                }
                _ = tokio::time::sleep(poll) => {
                    let now = self.modified();
                    if now != seen {
                        seen = now;
                        let _ = self.reload();
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }
}

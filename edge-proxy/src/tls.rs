//! The edge's own HTTPS listener: OpenSSL with Mozilla's intermediate settings, HTTP/2 or
//! HTTP/1.1 by ALPN, and a certificate handed to each handshake from memory, so a renewed
//! certificate (the files changing) is served from the next handshake on without a restart.

use crate::config::TlsConfig;
use crate::live::Live;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use onsale_contract::tasks::StopSignal;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use pingora::tls::ext;
use pingora::tls::pkey::{PKey, Private};
use pingora::tls::x509::X509;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Why a certificate and key pair was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The files do not hold a usable certificate chain and its key.
    #[error("{0}")]
    Invalid(String),
}

/// A certificate chain (server's first) and its key, as loaded from their files.
struct Pair {
    chain: Vec<X509>,
    key: PKey<Private>,
    /// The files' modification times when read.
    modified: [Option<SystemTime>; 2],
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

impl Pair {
    fn load(cert: &Path, key: &Path) -> Result<Pair, TlsError> {
        let modified = [modified(cert), modified(key)];
        let chain = X509::stack_from_pem(&read(cert)?)
            .map_err(|e| TlsError::Invalid(format!("{}: {e}", cert.display())))?;
        let key_pem = read(key)?;
        let key_value = PKey::private_key_from_pem(&key_pem)
            .map_err(|e| TlsError::Invalid(format!("{}: {e}", key.display())))?;
        let leaf = chain
            .first()
            .ok_or_else(|| TlsError::Invalid(format!("{}: no certificate", cert.display())))?;
        let public = leaf
            .public_key()
            .map_err(|e| TlsError::Invalid(format!("{}: {e}", cert.display())))?;
        if !public.public_eq(&key_value) {
            return Err(TlsError::Invalid(format!(
                "{} is not the key of {}",
                key.display(),
                cert.display()
            )));
        }
        Ok(Pair {
            chain,
            key: key_value,
            modified,
        })
    }
}

/// The certificate every handshake gets, replaced when its files change.
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<Pair>,
    reloads: prometheus::IntCounterVec,
}

impl Certificates {
    /// Loads `config`'s pair; reloads are counted in `reloads{outcome}`.
    pub fn load(
        config: &TlsConfig,
        reloads: prometheus::IntCounterVec,
    ) -> Result<Certificates, TlsError> {
        let pair = Pair::load(&config.cert, &config.key)?;
        Ok(Certificates {
            cert: config.cert.clone(),
            key: config.key.clone(),
            current: ArcSwap::from_pointee(pair),
            reloads,
        })
    }

    /// Reads the pair again if either file changed since it was read. A pair that does not
    /// load leaves the running one in place (logged and counted); the next change is tried.
    pub fn reload_if_changed(&self) {
        let running = self.current.load();
        let now = [modified(&self.cert), modified(&self.key)];
        if now == running.modified {
            return;
        }
        match Pair::load(&self.cert, &self.key) {
            Ok(pair) => {
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                self.reloads.with_label_values(&["applied"]).inc();
                self.current.store(Arc::new(pair));
            }
            Err(error) => {
                tracing::error!(%error, "TLS certificate not reloaded; the running one stays");
                self.reloads.with_label_values(&["refused"]).inc();
                // Remember the times tried, so a broken pair is reported once per change.
                self.current.store(Arc::new(Pair {
                    chain: running.chain.clone(),
                    key: running.key.clone(),
                    modified: now,
                }));
            }
        }
    }

    /// Checks the files every `server.reload_poll_ms` until `stop`.
    pub async fn watch(&self, live: &Live, mut stop: StopSignal) {
        loop {
            let poll = Duration::from_millis(live.load().config.server.reload_poll_ms);
            tokio::select! {
                _ = tokio::time::sleep(poll) => self.reload_if_changed(),
                _ = stop.changed() => return,
            }
        }
    }

    /// The listener settings: intermediate ciphers and versions, HTTP/2 preferred by ALPN,
    /// this store handing out the certificate.
    pub fn settings(self: &Arc<Self>) -> pingora::Result<TlsSettings> {
        let mut settings = TlsSettings::with_callbacks(Box::new(Handshakes(self.clone())))?;
        settings.enable_h2();
        Ok(settings)
    }
}

struct Handshakes(Arc<Certificates>);

#[async_trait]
impl TlsAccept for Handshakes {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        let pair = self.0.current.load();
        let Some((leaf, intermediates)) = pair.chain.split_first() else {
            return;
        };
        let installed = ext::ssl_use_certificate(ssl, leaf)
            .and_then(|()| ext::ssl_use_private_key(ssl, &pair.key))
            .and_then(|()| {
                intermediates
                    .iter()
                    .try_for_each(|c| ext::ssl_add_chain_cert(ssl, c))
            });
        if let Err(error) = installed {
            tracing::error!(%error, "cannot hand the certificate to a handshake");
        }
    }
}

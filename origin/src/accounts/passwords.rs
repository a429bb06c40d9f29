//! Password hashing: argon2id with the parameters of `[accounts]`, off the async runtime
//! (`spawn_blocking`) and never more at once than `max_concurrent_hashes`, so a login storm
//! queues for hashing slots instead of stalling every other request of the origin.
//!
//! An unknown email is checked against a dummy hash made with the same parameters, so a
//! wrong email costs the same work as a wrong password and the answer's timing tells
//! nothing about which accounts exist.

use crate::config::AccountsConfig;
use crate::domain::account::Password;
use crate::error::{ApiError, Code};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use onsale_contract::problem::Problem;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The argon2id hasher `config` describes.
pub fn argon2(config: &AccountsConfig) -> Result<Argon2<'static>, argon2::Error> {
    let params = Params::new(
        config.argon2_memory_kib,
        config.argon2_iterations,
        config.argon2_parallelism,
        None,
    )?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A PHC string (`$argon2id$v=19$m=...`) of `password` with a fresh 128-bit salt.
pub fn hash(argon: &Argon2<'_>, password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())?;
    Ok(argon.hash_password(password, &salt)?.to_string())
}

/// Whether `password` matches the PHC string `phc`, with the parameters stored in it.
pub fn verify(argon: &Argon2<'_>, password: &[u8], phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| argon.verify_password(password, &parsed).is_ok())
}

/// Whether `phc` was made with other settings than `argon`'s (older, weaker ones), so it
/// should be made again the next time its password is known.
pub fn outdated(argon: &Argon2<'_>, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    let current = argon.params();
    parsed.algorithm != Algorithm::Argon2id.ident()
        || Params::try_from(&parsed).map_or(true, |stored| {
            (stored.m_cost(), stored.t_cost(), stored.p_cost())
                != (current.m_cost(), current.t_cost(), current.p_cost())
        })
}

/// The origin's password hasher: a bounded pool of hashing slots.
pub(crate) struct Passwords {
    argon: Argon2<'static>,
    slots: Arc<Semaphore>,
    wait: Duration,
    /// The hash an unknown email is checked against.
    dummy: String,
    /// `password_hashes_total`, by op.
    counted: prometheus::IntCounterVec,
}

/// Why the hasher could not be built from `[accounts]`.
#[derive(Debug, thiserror::Error)]
#[error("accounts: the argon2 parameters are not usable: {0}")]
pub struct PasswordsError(String);

impl Passwords {
    /// The hasher `config` describes, with its dummy hash computed (one hash's work, off the
    /// runtime).
    pub(crate) async fn new(
        config: &AccountsConfig,
        counted: prometheus::IntCounterVec,
    ) -> Result<Self, PasswordsError> {
        let argon = argon2(config).map_err(|e| PasswordsError(e.to_string()))?;
        let dummy_argon = argon.clone();
        let dummy = tokio::task::spawn_blocking(move || {
            hash(&dummy_argon, &rand::random::<[u8; 32]>()).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| PasswordsError(e.to_string()))?
        .map_err(PasswordsError)?;
        Ok(Passwords {
            argon,
            slots: Arc::new(Semaphore::new(config.max_concurrent_hashes)),
            wait: Duration::from_millis(config.hash_wait_ms),
            dummy,
            counted,
        })
    }

    /// Runs `work` on a blocking thread once a slot is free; 503 if none frees up within
    /// `hash_wait_ms`. The slot is held until the work ends, even if the request is gone.
    async fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let slot = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await;
        let Ok(Ok(slot)) = slot else {
            self.counted.with_label_values(&["refused"]).inc();
            return Err(busy());
        };
        self.counted.with_label_values(&[op]).inc();
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || {
            let done = work(&argon);
            drop(slot);
            done
        })
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing: {e}")))
    }

    /// Whether `phc` should be made again with the configured settings.
    pub(crate) fn outdated(&self, phc: &str) -> bool {
        outdated(&self.argon, phc)
    }

    /// The PHC string to store for a new password.
    pub(crate) async fn hash(&self, password: Password) -> Result<String, ApiError> {
        self.run("hash", move |argon| hash(argon, password.0.as_bytes()))
            .await?
            .map_err(|e| ApiError::Internal(format!("password hashing: {e}")))
    }

    /// Whether `password` matches `stored`; with no stored hash (no such account), the same
    /// work against the dummy hash, and `false`.
    pub(crate) async fn verify(
        &self,
        password: Password,
        stored: Option<String>,
    ) -> Result<bool, ApiError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy.clone());
        let matches = self
            .run("verify", move |argon| {
                verify(argon, password.0.as_bytes(), &phc)
            })
            .await?;
        Ok(known && matches)
    }
}

fn busy() -> ApiError {
    ApiError::problem(
        Problem::new(Code::Unavailable, "Service unavailable")
            .with_detail("too many sign-ins at once; retry shortly")
            .with("retry_after_s", 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify_only_their_password() {
        let config = AccountsConfig {
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            max_concurrent_hashes: 1,
            hash_wait_ms: 1000,
            session_ttl_h: 1,
            cookie_secure: true,
            failure_window_s: 60,
            max_failures_per_email: 1,
            max_failures_per_ip: 1,
            reset_code_ttl_s: 60,
            max_reset_requests_per_email: 1,
            max_reset_requests_per_ip: 1,
            max_code_failures_per_account: 1,
            max_code_failures_per_ip: 1,
        };
        let argon = argon2(&config).unwrap();
        let first = hash(&argon, b"correct horse battery").unwrap();
        let second = hash(&argon, b"correct horse battery").unwrap();
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(first, second, "a fresh salt each time");
        assert!(verify(&argon, b"correct horse battery", &first));
        assert!(!verify(&argon, b"correct horse battery!", &first));
        assert!(!verify(&argon, b"correct horse battery", "not a hash"));
        assert!(!outdated(&argon, &first));
        let stronger = argon2(&AccountsConfig {
            argon2_iterations: 3,
            ..config
        })
        .unwrap();
        assert!(outdated(&stronger, &first));
        assert!(
            verify(&stronger, b"correct horse battery", &first),
            "old hashes verify"
        );
    }
}

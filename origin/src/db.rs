//! The connection pool and the embedded migrations.
//!
//! The core schema and the sandbox provider's tables are two migration sets sharing
//! `_sqlx_migrations` (the sandbox's versions start at 1001): each set ignores the other's
//! versions, and the sandbox's run only where the sandbox is the configured provider.

use crate::config::{Config, DatabaseConfig, ProviderKind};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;

/// The migration sets a database needs: the core schema, plus the sandbox's tables when
/// `sandbox` is true.
pub fn migrators(sandbox: bool) -> Vec<Migrator> {
    let mut sets = vec![sqlx::migrate!("./migrations")];
    if sandbox {
        sets.push(sqlx::migrate!("./migrations-sandbox"));
    }
    for set in &mut sets {
        set.set_ignore_missing(true);
    }
    sets
}

/// Whether `config` needs the sandbox's tables.
pub fn wants_sandbox(config: &Config) -> bool {
    config.payments.provider == ProviderKind::Sandbox
}

/// Applies every migration `config`'s database needs.
pub async fn migrate(conn: &mut PgConnection, sandbox: bool) -> Result<(), MigrateError> {
    for set in migrators(sandbox) {
        set.run(&mut *conn).await?;
    }
    Ok(())
}

/// A pool of at most `max_connections`, failing an acquire after `acquire_timeout_ms`.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .connect(config.url.expose())
        .await
}

//! One build per interval across many builders: a lease in one Redis key, renewed by its
//! holder on every tick and released on shutdown. Its lifetime is shorter than the build
//! interval, so a dead leader's lease lapses and another builder takes over within one
//! interval.
//!
//! The lease runs on the builders' injected clock, not on Redis's: the key holds
//! `"<expires_at_ms> <holder>"`, where `expires_at_ms` is the acquiring builder's clock
//! plus the lease's lifetime, and the Lua script compares it with the calling builder's
//! clock. So a test that moves a manual clock moves the lease with it, exactly, and a
//! lease never lapses because a loaded machine was slow. In production every builder runs
//! on the system clock, and builders must agree on the time to well within a third of the
//! interval (the slack between renewals); the edge already relies on synchronized clocks
//! for `next_build_at_ms`. Redis's own expiry only collects the key of a builder that died,
//! long after its lease lapsed; whether a lease is held never depends on it.

use onsale_contract::redis::Connection;
use redis::Script;

/// How long Redis keeps the key after the last renewal: only to collect a dead builder's
/// key, so far beyond any lease's lifetime that it never decides who leads.
const KEY_RETENTION_MS: u64 = 60 * 60 * 1000;

/// This builder's claim on the build lease.
pub(crate) struct Lease {
    key: String,
    holder: String,
    ttl_ms: i64,
    acquire: Script,
    release: Script,
}

impl Lease {
    /// The lease under `prefix`, claimed as `holder` for `ttl_ms` at a time.
    pub(crate) fn new(prefix: &str, holder: String, ttl_ms: i64) -> Self {
        Lease {
            key: format!("{prefix}seatmap-builder:lease"),
            holder,
            ttl_ms,
            // Renew if we hold it, else take it if it is free or lapsed: one round trip,
            // atomic. A value in another format (none is expected) counts as lapsed.
            acquire: Script::new(
                r"local current = redis.call('GET', KEYS[1])
                  if current then
                      local expires, holder = string.match(current, '^(%d+) (.*)$')
                      if holder ~= ARGV[1] and expires and tonumber(expires) > tonumber(ARGV[2]) then
                          return 0
                      end
                  end
                  redis.call('SET', KEYS[1], ARGV[3] .. ' ' .. ARGV[1], 'PX', ARGV[4])
                  return 1",
            ),
            // Only the holder may release, so a late release never frees a successor's lease.
            release: Script::new(
                r"local current = redis.call('GET', KEYS[1])
                  if current and string.match(current, '^%d+ (.*)$') == ARGV[1] then
                      return redis.call('DEL', KEYS[1])
                  end
                  return 0",
            ),
        }
    }

    /// True while this builder holds the lease at `now_ms` (its clock), until `now_ms` plus
    /// the lease's lifetime.
    pub(crate) async fn acquire_or_renew(
        &self,
        conn: &mut Connection,
        now_ms: i64,
    ) -> redis::RedisResult<bool> {
        let held: i32 = self
            .acquire
            .key(&self.key)
            .arg(&self.holder)
            .arg(now_ms)
            .arg(now_ms + self.ttl_ms)
            .arg(self.ttl_ms.max(0) as u64 + KEY_RETENTION_MS)
            .invoke_async(conn)
            .await?;
        Ok(held == 1)
    }

    /// Gives the lease up if this builder holds it, so a successor need not wait it out.
    pub(crate) async fn release(&self, conn: &mut Connection) -> redis::RedisResult<()> {
        let _: i32 = self
            .release
            .key(&self.key)
            .arg(&self.holder)
            .invoke_async(conn)
            .await?;
        Ok(())
    }
}

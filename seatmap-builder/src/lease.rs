//! One build per interval across many builders: a Redis lease (`SET NX PX`), renewed by its
//! holder on every tick and released on shutdown. The TTL is shorter than the build interval,
//! so a dead leader's lease lapses and another builder takes over within one interval.

use redis::aio::ConnectionManager;
use redis::Script;

/// This builder's claim on the build lease.
pub(crate) struct Lease {
    key: String,
    holder: String,
    ttl_ms: u64,
    acquire: Script,
    release: Script,
}

impl Lease {
    /// The lease under `prefix`, claimed as `holder` for `ttl_ms` at a time.
    pub(crate) fn new(prefix: &str, holder: String, ttl_ms: u64) -> Self {
        Lease {
            key: format!("{prefix}seatmap-builder:lease"),
            holder,
            ttl_ms,
            // Renew if we hold it, else take it if free: one round trip, atomic.
            acquire: Script::new(
                r"if redis.call('GET', KEYS[1]) == ARGV[1] then
                      redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1
                  end
                  if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
                  return 0",
            ),
            // Only the holder may release, so a late release never frees a successor's lease.
            release: Script::new(
                r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
                  return 0",
            ),
        }
    }

    /// True while this builder holds the lease.
    pub(crate) async fn acquire_or_renew(
        &self,
        conn: &mut ConnectionManager,
    ) -> redis::RedisResult<bool> {
        let held: i32 = self
            .acquire
            .key(&self.key)
            .arg(&self.holder)
            .arg(self.ttl_ms)
            .invoke_async(conn)
            .await?;
        Ok(held == 1)
    }

    /// Gives the lease up if this builder holds it, so a successor need not wait it out.
    pub(crate) async fn release(&self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        let _: i32 = self
            .release
            .key(&self.key)
            .arg(&self.holder)
            .invoke_async(conn)
            .await?;
        Ok(())
    }
}

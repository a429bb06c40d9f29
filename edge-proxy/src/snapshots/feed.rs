//! The snapshot feed: a full sync from Redis when connected, then the builder's
//! announcements, with a metadata poll as the fallback for a missed one. When Redis goes
//! away the feed reconnects with a backoff and the store keeps serving what it holds.

use super::{etag_values, Key, Snapshot, SnapshotStore};
use crate::live::Live;
use bytes::Bytes;
use futures_util::StreamExt;
use onsale_contract::backoff::Backoff;
use onsale_contract::snapshot::{self, field, Announcement, Kind};
use onsale_contract::tasks::StopSignal;
use redis::AsyncCommands;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Reconnects to a Redis that went away.
const RECONNECT_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// A call unanswered this long ends the session: Redis is away.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// What the edge reads in an availability document: the seats available or held
/// (`sections[].available + held`), when the sale opens and the presale window.
fn availability_facts(identity: &[u8]) -> Facts {
    #[derive(serde::Deserialize)]
    struct Section {
        available: u64,
        held: u64,
    }
    #[derive(serde::Deserialize)]
    struct Presale {
        starts_at_ms: i64,
        ends_at_ms: i64,
    }
    #[derive(serde::Deserialize)]
    struct Availability {
        sections: Vec<Section>,
        on_sale_at_ms: Option<i64>,
        presale: Option<Presale>,
    }
    match serde_json::from_slice::<Availability>(identity) {
        Ok(document) => Facts {
            open_seats: Some(document.sections.iter().map(|s| s.available + s.held).sum()),
            on_sale_at_ms: document.on_sale_at_ms,
            presale: document.presale.map(|p| (p.starts_at_ms, p.ends_at_ms)),
        },
        Err(_) => Facts::default(),
    }
}

/// An availability document's facts; none for a layout.
#[derive(Debug, Default, PartialEq, Eq)]
struct Facts {
    open_seats: Option<u64>,
    on_sale_at_ms: Option<i64>,
    presale: Option<(i64, i64)>,
}

/// `{prefix}snapshot:{<show>}:<kind>` back to (show, kind).
fn parse_key(prefix: &str, key: &str) -> Option<Key> {
    let rest = key.strip_prefix(prefix)?.strip_prefix("snapshot:{")?;
    let (show, kind) = rest.split_once("}:")?;
    let kind = match kind {
        "layout" => Kind::Layout,
        "availability" => Kind::Availability,
        _ => return None,
    };
    Some((show.to_owned(), kind))
}

/// Keeps the store in step with Redis, reconnecting with a backoff when Redis goes away;
/// the store keeps what it has meanwhile.
pub(crate) struct SnapshotLoader {
    pub(crate) store: Arc<SnapshotStore>,
    pub(crate) live: Arc<Live>,
    /// `snapshot_feed_up`.
    pub(crate) redis_up: prometheus::IntGauge,
}

type Conn = onsale_contract::redis::Connection;

impl SnapshotLoader {
    /// Loads one snapshot if its content differs from the one held; else moves its times.
    async fn sync_key(&self, conn: &mut Conn, redis_key: &str, key: Key) -> redis::RedisResult<()> {
        let (etag, checked, next): (Option<String>, Option<i64>, Option<i64>) = redis::cmd("HMGET")
            .arg(redis_key)
            .arg(&[field::ETAG, field::CHECKED_AT_MS, field::NEXT_BUILD_AT_MS])
            .query_async(conn)
            .await?;
        let (Some(etag), Some(checked), Some(next)) = (etag, checked, next) else {
            return Ok(());
        };
        if let Some(held) = self.store.get(&key.0, key.1) {
            if held.etag == etag {
                if held.next_build_at_ms != next || held.checked_at_ms != checked {
                    let mut moved = (*held).clone();
                    moved.checked_at_ms = checked;
                    moved.next_build_at_ms = next;
                    self.store.put(key, moved);
                }
                return Ok(());
            }
        }
        let fields: HashMap<String, Vec<u8>> = conn.hgetall(redis_key).await?;
        let text = |name: &str| {
            fields
                .get(name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        };
        let number = |name: &str| text(name).and_then(|v| v.parse::<i64>().ok());
        let bytes = |name: &str| fields.get(name).map(|v| Bytes::copy_from_slice(v));
        let loaded = (|| {
            let etag = text(field::ETAG)?;
            let identity = bytes(field::IDENTITY)?;
            let facts = match key.1 {
                Kind::Availability => availability_facts(&identity),
                Kind::Layout => Facts::default(),
            };
            Some(Snapshot {
                open_seats: facts.open_seats,
                on_sale_at_ms: facts.on_sale_at_ms,
                presale: facts.presale,
                identity,
                etags: etag_values(&etag)?,
                etag,
                built_at_ms: number(field::BUILT_AT_MS)?,
                checked_at_ms: number(field::CHECKED_AT_MS)?,
                next_build_at_ms: number(field::NEXT_BUILD_AT_MS)?,
                gzip: bytes(field::GZIP)?,
                brotli: bytes(field::BROTLI)?,
            })
        })();
        match loaded {
            Some(snapshot) => {
                tracing::debug!(show = %key.0, kind = key.1.name(), etag = %snapshot.etag, "snapshot loaded");
                self.store.put(key, snapshot);
            }
            None => tracing::warn!(
                key = redis_key,
                "incomplete snapshot in Redis; keeping the one held"
            ),
        }
        Ok(())
    }

    async fn sync_all(&self, conn: &mut Conn, prefix: &str) -> redis::RedisResult<()> {
        let keys = conn.scan_keys(&format!("{prefix}snapshot:*")).await?;
        for redis_key in keys {
            if let Some(key) = parse_key(prefix, &redis_key) {
                self.sync_key(conn, &redis_key, key).await?;
            }
        }
        Ok(())
    }

    /// One connected session: full sync, then announcements and polls until an error or
    /// `stop` (`Ok(())`). The `attempt`-th session subscribes through the `attempt`-th node
    /// of a cluster, so a lost node is not tried again and again.
    async fn session(&self, stop: &mut StopSignal, attempt: usize) -> redis::RedisResult<()> {
        let config = self.live.load().config.clone();
        let prefix = config.redis.key_prefix.clone();
        let target = config.redis.target()?;
        let mut conn = target.connect(REDIS_TIMEOUT).await?;
        let mut pubsub = target.subscriber(attempt).await?;
        pubsub.subscribe(snapshot::channel(&prefix)).await?;
        self.sync_all(&mut conn, &prefix).await?;
        self.redis_up.set(1);
        let mut messages = pubsub.on_message();
        loop {
            let poll = Duration::from_millis(self.live.load().config.snapshots.poll_interval_ms);
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else {
                        return Err(redis::RedisError::from((redis::ErrorKind::IoError, "subscription closed")));
                    };
                    let announced = message
                        .get_payload::<String>()
                        .ok()
                        .and_then(|p| serde_json::from_str::<Announcement>(&p).ok());
                    if let Some(a) = announced {
                        let redis_key = snapshot::key(&prefix, &a.show_id, a.kind);
                        self.sync_key(&mut conn, &redis_key, (a.show_id, a.kind)).await?;
                    }
                }
                _ = tokio::time::sleep(poll) => self.sync_all(&mut conn, &prefix).await?,
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    /// Sessions with Redis one after another, until `stop`; the store keeps serving what it
    /// holds between them.
    pub(crate) async fn run(&self, mut stop: StopSignal) {
        let mut failures: u32 = 0;
        loop {
            match self.session(&mut stop, failures as usize).await {
                Ok(()) => return,
                Err(error) => {
                    self.redis_up.set(0);
                    tracing::warn!(%error, "snapshot feed from Redis lost; serving the snapshots held");
                }
            }
            failures += 1;
            tokio::select! {
                _ = tokio::time::sleep(RECONNECT_BACKOFF.delay(failures)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_seats_count_available_and_held() {
        let doc = br#"{"show_id":"s","on_sale_at_ms":1700000000000,"presale":{"starts_at_ms":1,"ends_at_ms":2},"sections":[{"section_id":"a","available":2,"held":1,"sold":5,"total":8},{"section_id":"b","available":0,"held":0,"sold":3,"total":3}],"seat_status":"AAH"}"#;
        let facts = Facts {
            open_seats: Some(3),
            on_sale_at_ms: Some(1_700_000_000_000),
            presale: Some((1, 2)),
        };
        assert_eq!(availability_facts(doc), facts);
        assert_eq!(availability_facts(b"not json"), Facts::default());
    }

    #[test]
    fn keys_parse_back() {
        assert_eq!(
            parse_key("onsale:", "onsale:snapshot:{s1}:availability"),
            Some(("s1".to_owned(), Kind::Availability))
        );
        assert_eq!(parse_key("onsale:", "other:snapshot:{s1}:layout"), None);
        assert_eq!(parse_key("onsale:", "onsale:snapshot:{s1}:nope"), None);
    }
}

//! Seat-map and availability snapshots in memory: loaded from Redis at start, refreshed on
//! the builder's announcement and by a periodic metadata poll, and still served when Redis
//! is away. [`respond`] turns one into an HTTP answer (negotiated encoding, strong ETag per
//! encoding, 304, `Cache-Control` running to the next build).

use crate::live::Live;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{header, HeaderValue, StatusCode};
use onsale_contract::backoff::Backoff;
use onsale_contract::snapshot::{self, field, Announcement, Kind};
use onsale_contract::tasks::StopSignal;
use pingora::http::{RequestHeader, ResponseHeader};
use redis::AsyncCommands;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Reconnects to a Redis that went away.
const RECONNECT_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// One published document, in all its encodings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The content hash the builder published.
    pub etag: String,
    /// The quoted strong ETag of each representation, in [`Encoding`] order, built once.
    etags: [HeaderValue; 3],
    /// When the content was built.
    pub built_at_ms: i64,
    /// When the builder last confirmed the content unchanged.
    pub checked_at_ms: i64,
    /// When the builder plans its next build: `Cache-Control` runs to it.
    pub next_build_at_ms: i64,
    identity: Bytes,
    gzip: Bytes,
    brotli: Bytes,
    /// Seats available or held, all sections: an availability document's, else `None`.
    pub open_seats: Option<u64>,
}

/// Seats available or held in an availability document (`sections[].available + held`).
fn open_seats(identity: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Section {
        available: u64,
        held: u64,
    }
    #[derive(serde::Deserialize)]
    struct Availability {
        sections: Vec<Section>,
    }
    let document: Availability = serde_json::from_slice(identity).ok()?;
    Some(document.sections.iter().map(|s| s.available + s.held).sum())
}

/// The quoted ETags of the three representations of a document with content hash `etag`;
/// `None` if the hash cannot be a header value.
fn etag_values(etag: &str) -> Option<[HeaderValue; 3]> {
    let value = |suffix: &str| HeaderValue::try_from(format!("\"{etag}{suffix}\"")).ok();
    Some([value(".br")?, value(".gz")?, value("")?])
}

type Key = (String, Kind);

/// A show's layout and availability, indexed by [`slot`].
type Documents = [Option<Arc<Snapshot>>; 2];

fn slot(kind: Kind) -> usize {
    match kind {
        Kind::Layout => 0,
        Kind::Availability => 1,
    }
}

/// The latest snapshot of each show and kind. Keyed by show, so a lookup borrows the id
/// from the request path.
#[derive(Default)]
pub struct SnapshotStore {
    snapshots: RwLock<HashMap<String, Documents>>,
}

impl SnapshotStore {
    /// The snapshot of `show`'s `kind` held, if any.
    pub fn get(&self, show: &str, kind: Kind) -> Option<Arc<Snapshot>> {
        let snapshots = self
            .snapshots
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        snapshots.get(show)?[slot(kind)].clone()
    }

    fn put(&self, (show, kind): Key, snapshot: Snapshot) {
        let mut snapshots = self
            .snapshots
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        snapshots.entry(show).or_default()[slot(kind)] = Some(Arc::new(snapshot));
    }

    /// Every snapshot held: for the per-show age gauge.
    pub(crate) fn all(&self) -> Vec<(Key, Arc<Snapshot>)> {
        let snapshots = self
            .snapshots
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut all = Vec::new();
        for (show, documents) in snapshots.iter() {
            for kind in [Kind::Layout, Kind::Availability] {
                if let Some(snapshot) = &documents[slot(kind)] {
                    all.push(((show.clone(), kind), snapshot.clone()));
                }
            }
        }
        all
    }
}

/// `Accept-Encoding` negotiation: the acceptable coding with the highest q-value, brotli
/// before gzip before identity on ties. Unlisted codings are unacceptable unless `*` says
/// otherwise; identity stays acceptable unless refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

pub(crate) fn negotiate(accept_encoding: Option<&str>) -> Encoding {
    let Some(accept) = accept_encoding else {
        return Encoding::Identity;
    };
    // q-values of the codings the edge serves, and of `*`; the last listing wins.
    let (mut br, mut gzip, mut x_gzip, mut identity, mut star) = (None, None, None, None, None);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let weight = parts
            .find_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .and_then(|w| w.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let target = match coding {
            c if c.eq_ignore_ascii_case("br") => &mut br,
            c if c.eq_ignore_ascii_case("gzip") => &mut gzip,
            c if c.eq_ignore_ascii_case("x-gzip") => &mut x_gzip,
            c if c.eq_ignore_ascii_case("identity") => &mut identity,
            "*" => &mut star,
            _ => continue,
        };
        *target = Some(weight);
    }
    let weight = |q: Option<f32>, default: f32| q.or(star).unwrap_or(default);
    let candidates = [
        (Encoding::Brotli, weight(br, 0.0)),
        (Encoding::Gzip, weight(gzip, 0.0).max(weight(x_gzip, 0.0))),
        (Encoding::Identity, weight(identity, 0.001)),
    ];
    candidates
        .into_iter()
        .filter(|(_, w)| *w > 0.0)
        .fold(None, |best: Option<(Encoding, f32)>, (e, w)| match best {
            Some((_, bw)) if bw >= w => best,
            _ => Some((e, w)),
        })
        .map_or(Encoding::Identity, |(e, _)| e)
}

fn if_none_match(request: &RequestHeader, etag: &[u8]) -> bool {
    request
        .headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == etag)
}

/// The answer for `snapshot`: headers and the body (empty for 304; the caller drops it
/// for HEAD).
pub(crate) fn respond(
    snapshot: &Snapshot,
    request: &RequestHeader,
    now_ms: i64,
) -> pingora::Result<(ResponseHeader, Bytes)> {
    let accept = request
        .headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let (body, coding, etag) = match negotiate(accept) {
        Encoding::Brotli => (&snapshot.brotli, Some("br"), &snapshot.etags[0]),
        Encoding::Gzip => (&snapshot.gzip, Some("gzip"), &snapshot.etags[1]),
        Encoding::Identity => (&snapshot.identity, None, &snapshot.etags[2]),
    };
    let max_age = ((snapshot.next_build_at_ms - now_ms).max(0) + 999) / 1000;
    let interval = ((snapshot.next_build_at_ms - snapshot.checked_at_ms).max(1000) + 999) / 1000;
    let not_modified = if_none_match(request, etag.as_bytes());
    let status = match not_modified {
        true => StatusCode::NOT_MODIFIED,
        false => StatusCode::OK,
    };
    let mut header = ResponseHeader::build_no_case(status, Some(8))?;
    header.insert_header(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )?;
    header.insert_header(header::VARY, HeaderValue::from_static("Accept-Encoding"))?;
    header.insert_header(header::ETAG, etag.clone())?;
    header.insert_header(
        header::CACHE_CONTROL,
        format!("public, max-age={max_age}, stale-while-revalidate={interval}"),
    )?;
    if let Some(coding) = coding {
        header.insert_header(header::CONTENT_ENCODING, HeaderValue::from_static(coding))?;
    }
    let body = match not_modified {
        true => Bytes::new(),
        false => body.clone(),
    };
    Ok((header, body))
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

type Conn = redis::aio::MultiplexedConnection;

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
            Some(Snapshot {
                open_seats: match key.1 {
                    Kind::Availability => open_seats(&identity),
                    Kind::Layout => None,
                },
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
        let pattern = format!("{prefix}snapshot:*");
        let mut keys: Vec<String> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(conn)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        for redis_key in keys {
            if let Some(key) = parse_key(prefix, &redis_key) {
                self.sync_key(conn, &redis_key, key).await?;
            }
        }
        Ok(())
    }

    /// One connected session: full sync, then announcements and polls until an error or
    /// `stop` (`Ok(())`).
    async fn session(&self, stop: &mut StopSignal) -> redis::RedisResult<()> {
        let config = self.live.load().config.clone();
        let prefix = config.redis.key_prefix.clone();
        let client = redis::Client::open(config.redis.url.expose())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let mut pubsub = client.get_async_pubsub().await?;
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
}

impl SnapshotLoader {
    /// Sessions with Redis one after another, until `stop`; the store keeps serving what it
    /// holds between them.
    pub(crate) async fn run(&self, mut stop: StopSignal) {
        let mut failures = 0;
        loop {
            match self.session(&mut stop).await {
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
    fn negotiation_follows_q_values() {
        use Encoding::*;
        assert_eq!(negotiate(None), Identity);
        assert_eq!(negotiate(Some("gzip, deflate, br")), Brotli);
        assert_eq!(negotiate(Some("gzip")), Gzip);
        assert_eq!(negotiate(Some("br;q=0.5, gzip;q=0.9")), Gzip);
        assert_eq!(negotiate(Some("br;q=0, gzip;q=0")), Identity);
        assert_eq!(negotiate(Some("*")), Brotli);
        assert_eq!(negotiate(Some("*;q=0.2, gzip")), Gzip);
        assert_eq!(negotiate(Some("identity")), Identity);
        assert_eq!(negotiate(Some("deflate")), Identity);
        assert_eq!(negotiate(Some("GZIP;Q=1")), Gzip);
    }

    #[test]
    fn open_seats_count_available_and_held() {
        let doc = br#"{"show_id":"s","sections":[{"section_id":"a","available":2,"held":1,"sold":5,"total":8},{"section_id":"b","available":0,"held":0,"sold":3,"total":3}],"seat_status":"AAH"}"#;
        assert_eq!(open_seats(doc), Some(3));
        assert_eq!(open_seats(b"not json"), None);
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

    fn snapshot() -> Snapshot {
        Snapshot {
            etag: "abc".into(),
            etags: etag_values("abc").unwrap(),
            built_at_ms: 1_000,
            checked_at_ms: 1_000,
            next_build_at_ms: 31_000,
            identity: Bytes::from_static(b"{}"),
            gzip: Bytes::from_static(b"gz"),
            brotli: Bytes::from_static(b"br"),
            open_seats: None,
        }
    }

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
    }

    #[test]
    fn headers_track_the_next_build() {
        let (header, body) =
            respond(&snapshot(), &request(&[("accept-encoding", "br")]), 11_500).unwrap();
        assert_eq!(header.status, 200);
        assert_eq!(body, Bytes::from_static(b"br"));
        let get = |n: &str| header.headers.get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(get("etag"), "\"abc.br\"");
        assert_eq!(get("content-encoding"), "br");
        assert_eq!(get("vary"), "Accept-Encoding");
        assert_eq!(
            get("cache-control"),
            "public, max-age=20, stale-while-revalidate=30"
        );
        let (header, _) = respond(&snapshot(), &request(&[]), 40_000).unwrap();
        assert!(header.headers.get("content-encoding").is_none());
        assert_eq!(
            header.headers.get("cache-control").unwrap(),
            "public, max-age=0, stale-while-revalidate=30"
        );
    }

    #[test]
    fn if_none_match_gives_304_per_encoding() {
        let req = request(&[
            ("accept-encoding", "gzip"),
            ("if-none-match", "\"x\", W/\"abc.gz\""),
        ]);
        let (header, body) = respond(&snapshot(), &req, 0).unwrap();
        assert_eq!(header.status, 304);
        assert!(body.is_empty());
        // The brotli ETag does not validate the gzip representation.
        let req = request(&[("accept-encoding", "gzip"), ("if-none-match", "\"abc.br\"")]);
        assert_eq!(respond(&snapshot(), &req, 0).unwrap().0.status, 200);
    }
}

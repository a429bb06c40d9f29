//! Seat-map and availability snapshots in memory: loaded from Redis at start, refreshed on
//! the builder's announcement and by a periodic metadata poll, and still served when Redis
//! is away (`feed`). `answer` turns one into an HTTP answer (negotiated encoding, strong
//! ETag per encoding, 304, `Cache-Control` running to the next build).

mod answer;
mod feed;

pub(crate) use answer::respond;
pub(crate) use feed::SnapshotLoader;

use bytes::Bytes;
use http::HeaderValue;
use onsale_contract::snapshot::Kind;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// One published document, in all its encodings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The content hash the builder published.
    pub etag: String,
    /// The quoted strong ETag of each representation, in `Encoding` order (brotli, gzip, identity), built once.
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
    /// When the show's sale opens, Unix ms: an availability document's, else `None`.
    pub on_sale_at_ms: Option<i64>,
    /// The show's presale window (starts, ends), Unix ms, if it has one.
    pub presale: Option<(i64, i64)>,
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

    /// `show`'s presale window (starts, ends; Unix ms), as its availability snapshot says.
    pub fn presale(&self, show: &str) -> Option<(i64, i64)> {
        self.get(show, Kind::Availability)?.presale
    }

    /// Every show's availability snapshot held.
    pub fn availabilities(&self) -> Vec<(String, Arc<Snapshot>)> {
        let snapshots = self
            .snapshots
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        snapshots
            .iter()
            .filter_map(|(show, documents)| {
                let availability = documents[slot(Kind::Availability)].clone()?;
                Some((show.clone(), availability))
            })
            .collect()
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

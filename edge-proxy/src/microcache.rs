//! A micro-cache for public catalog reads: a 200 answer is kept for a few seconds and served
//! by the edge, so a rush on the event page costs the origin one request per key per TTL.
//! Only bodies under [`MAX_BODY`] without `Set-Cookie` are kept.

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

pub const MAX_BODY: usize = 1 << 20;

pub struct Cached {
    pub header: ResponseHeader,
    pub body: Bytes,
    pub stored_ms: i64,
}

#[derive(Default)]
pub struct MicroCache {
    entries: Mutex<HashMap<String, Arc<Cached>>>,
}

/// A response being captured for the cache while it streams to the client.
pub struct Capture {
    key: String,
    header: ResponseHeader,
    body: BytesMut,
}

impl MicroCache {
    pub fn fresh(&self, key: &str, now_ms: i64, ttl_ms: u64) -> Option<Arc<Cached>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|c| now_ms - c.stored_ms < ttl_ms as i64)
            .cloned()
    }

    /// Starts capturing `header` if it is cacheable.
    pub fn capture(key: String, header: &ResponseHeader) -> Option<Capture> {
        let cacheable =
            header.status == 200 && header.headers.get(http::header::SET_COOKIE).is_none();
        cacheable.then(|| {
            let mut header = header.clone();
            header.remove_header(&http::header::TRANSFER_ENCODING);
            header.remove_header(&http::header::CONNECTION);
            Capture {
                key,
                header,
                body: BytesMut::new(),
            }
        })
    }

    /// Adds a chunk; `false` once the body is too large to keep.
    pub fn append(capture: &mut Capture, chunk: &[u8]) -> bool {
        capture.body.extend_from_slice(chunk);
        capture.body.len() <= MAX_BODY
    }

    pub fn store(&self, capture: Capture, now_ms: i64, ttl_ms: u64, max_entries: usize) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= max_entries {
            entries.retain(|_, c| now_ms - c.stored_ms < ttl_ms as i64);
            if entries.len() >= max_entries {
                return;
            }
        }
        let cached = Cached {
            header: capture.header,
            body: capture.body.freeze(),
            stored_ms: now_ms,
        };
        entries.insert(capture.key, Arc::new(cached));
    }
}

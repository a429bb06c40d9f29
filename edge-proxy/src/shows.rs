//! Whether a show exists, for snapshot requests the edge cannot answer from memory: an
//! unknown show is 404, a known one whose first snapshot has not landed is 503. Asked of
//! the origin's public catalog (`GET /v1/shows/{id}`) and remembered, a "yes" for a
//! minute and a "no" for a few seconds, so a flood of bad ids costs the origin little.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const KNOWN_MS: i64 = 60_000;
const UNKNOWN_MS: i64 = 5_000;
const MAX_REMEMBERED: usize = 100_000;

pub struct ShowDirectory {
    http: reqwest::Client,
    remembered: Mutex<HashMap<String, (bool, i64)>>,
}

impl Default for ShowDirectory {
    fn default() -> Self {
        ShowDirectory {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("a client without TLS settings builds"),
            remembered: Mutex::new(HashMap::new()),
        }
    }
}

impl ShowDirectory {
    /// `Some(exists)`, or `None` when no origin could say.
    pub async fn exists(
        &self,
        show: &str,
        origin: Option<SocketAddr>,
        now_ms: i64,
    ) -> Option<bool> {
        if let Some((exists, until)) = self
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(show)
        {
            if *until > now_ms {
                return Some(*exists);
            }
        }
        let url = format!("http://{}/v1/shows/{show}", origin?);
        let status = self.http.get(url).send().await.ok()?.status().as_u16();
        let exists = match status {
            200 => true,
            404 => false,
            _ => return None,
        };
        let mut remembered = self
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if remembered.len() >= MAX_REMEMBERED {
            remembered.retain(|_, (_, until)| *until > now_ms);
        }
        let ttl = if exists { KNOWN_MS } else { UNKNOWN_MS };
        remembered.insert(show.to_owned(), (exists, now_ms + ttl));
        Some(exists)
    }
}

//! Keyset pagination shared by listings: an opaque cursor naming the last row seen by its
//! sort key `(at, id)`, and a bounded page size.

use crate::error::ApiError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

const MAX_CURSOR: usize = 128;

/// Keyset position in a listing ordered by `(at, id)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Keyset {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl Keyset {
    pub(crate) fn encode(&self) -> String {
        let raw = format!("{}.{}", self.at.timestamp_micros(), self.id);
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn decode(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let (micros, id) = text.split_once('.')?;
        Some(Keyset {
            at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Page {
    pub after: Option<Keyset>,
    pub limit: u32,
}

impl Page {
    /// From the `cursor` and `limit` query parameters.
    pub(crate) fn parse(
        cursor: Option<String>,
        limit: Option<String>,
        default_limit: u32,
        max_limit: u32,
    ) -> Result<Self, ApiError> {
        let after = cursor
            .map(|v| {
                (v.len() <= MAX_CURSOR)
                    .then(|| Keyset::decode(&v))
                    .flatten()
                    .ok_or_else(|| {
                        ApiError::invalid_query("cursor", "not a cursor this API issued")
                    })
            })
            .transpose()?;
        let limit = match limit {
            None => default_limit,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=max_limit).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid_query(
                        "limit",
                        format!("must be an integer from 1 to {max_limit}"),
                    ))
                }
            },
        };
        Ok(Page { after, limit })
    }

    /// Rows to fetch: one more than the page, to know whether another page follows.
    pub(crate) fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Cuts `rows` (fetched with [`Page::fetch`]) to the page; the cursor of the next page,
    /// at the last row kept, when more rows follow.
    pub(crate) fn cut<T>(&self, rows: &mut Vec<T>, key: impl Fn(&T) -> Keyset) -> Option<String> {
        if rows.len() <= self.limit as usize {
            return None;
        }
        rows.truncate(self.limit as usize);
        rows.last().map(|last| key(last).encode())
    }
}

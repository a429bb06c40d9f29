//! Offline ticket checks for a gate whose network is down: a payload is genuine when a key
//! of the published key set (`/.well-known/onsale/ticket-keys.json`) verifies it, and
//! admits when it is for this show and not on the show's revocation list (the answers of
//! `GET /v1/shows/{id}/revocations`, saved as the scanner synced them). Nothing here
//! talks to a server; which ticket was scanned first is settled online later. A rotating
//! payload (`.<step>.<code>` after the signature) is checked by its signature alone: its
//! code needs the ticket's secret, and is judged when the scans are uploaded.

use onsale_contract::tickets::{self, JwkError, JwkSet, TicketFacts, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;
use uuid::Uuid;

/// What a gate does with a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Genuine, for this show, not revoked: let the fan in.
    Valid,
    /// Genuine, but revoked (cancelled, refunded, transferred).
    Revoked,
    /// Genuine, for another show.
    WrongShow,
    /// No published key signed it, or it is not a ticket payload.
    Forged,
}

/// A payload's verdict and, when genuine, what it states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What to do.
    pub verdict: Verdict,
    /// The ticket, when genuine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<Uuid>,
    /// Its show, when genuine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub show_id: Option<Uuid>,
    /// Its seat, when genuine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat_id: Option<i64>,
}

/// Why the gate's files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A file cannot be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The key set has no usable key.
    #[error("{path}: {source}")]
    Keys {
        /// The file.
        path: String,
        /// Why.
        source: JwkError,
    },
}

/// One saved answer of the revocation list.
#[derive(Debug, Deserialize)]
struct RevocationPage {
    show_id: Uuid,
    revocations: Vec<Revoked>,
}

#[derive(Debug, Deserialize)]
struct Revoked {
    ticket_id: Uuid,
}

/// What a gate checks with: the keys, and the revoked tickets of its show.
pub struct Gate {
    keys: Vec<VerifyingKey>,
    show: Option<Uuid>,
    revoked: HashSet<Uuid>,
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, FileError> {
    let failed = |message: String| FileError::Read {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| failed(e.to_string()))
}

impl Gate {
    /// A gate for `show` (any show when `None`) with the key set at `keys` and the
    /// revocation list pages at `revocations` (pages of other shows are ignored).
    pub fn load(keys: &Path, show: Option<Uuid>, revocations: &[&Path]) -> Result<Self, FileError> {
        let set: JwkSet = read(keys)?;
        let keys_error = |source| FileError::Keys {
            path: keys.display().to_string(),
            source,
        };
        let keys = set.verifying_keys().map_err(keys_error)?;
        let mut revoked = HashSet::new();
        for path in revocations {
            let page: RevocationPage = read(path)?;
            if show.is_none_or(|show| show == page.show_id) {
                revoked.extend(page.revocations.into_iter().map(|r| r.ticket_id));
            }
        }
        Ok(Gate {
            keys,
            show,
            revoked,
        })
    }

    /// The verdict on `payload`.
    pub fn check(&self, payload: &str) -> Check {
        let Some(facts) = tickets::verify(&self.keys, payload.trim()) else {
            return Check {
                verdict: Verdict::Forged,
                ticket_id: None,
                show_id: None,
                seat_id: None,
            };
        };
        let TicketFacts {
            ticket, show, seat, ..
        } = facts;
        let verdict = if self.show.is_some_and(|expected| expected != show) {
            Verdict::WrongShow
        } else if self.revoked.contains(&ticket) {
            Verdict::Revoked
        } else {
            Verdict::Valid
        };
        Check {
            verdict,
            ticket_id: Some(ticket),
            show_id: Some(show),
            seat_id: Some(seat),
        }
    }
}

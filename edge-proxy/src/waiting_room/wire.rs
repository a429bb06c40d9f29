//! The waiting room's wire format: the join body it reads and the answers it writes, typed
//! and serialized directly, without building a JSON tree.

use super::cookies::Cookie;
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

/// A join's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinRequest {
    pub(crate) show_id: String,
    /// Required by shows with a proof-of-work difficulty.
    pub(crate) pow: Option<PowAnswer>,
}

/// A join's proof of work.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PowAnswer {
    pub(crate) challenge: String,
    pub(crate) solution: String,
}

/// A waiting-room answer: status code, body, cookies to set.
#[derive(Debug)]
pub(crate) struct Reply<B> {
    pub(crate) status: u16,
    pub(crate) body: B,
    pub(crate) cookies: Vec<Cookie>,
}

impl<B> Reply<B> {
    /// A 200 without cookies.
    pub(crate) fn ok(body: B) -> Self {
        Reply {
            status: 200,
            body,
            cookies: Vec::new(),
        }
    }

    /// Its cookies as `Set-Cookie` values, `Secure` when the fan came over HTTPS.
    pub(crate) fn cookie_headers(&self, secure: bool) -> Vec<String> {
        self.cookies.iter().map(|c| c.header(secure)).collect()
    }
}

/// What a fan is told about where it stands: one variant per `status`, with the fields
/// that status carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FanStatus {
    /// The queue has not opened; `opens_at_ms` says when it does. No token is issued.
    Closed,
    /// Joined before the sale opened; placed by the draw at the opening.
    PreQueue { poll_after_ms: i64 },
    /// In line: fans present ahead, and the estimated wait (`null` while admission is
    /// stopped, since no honest estimate exists).
    Queued {
        position: u64,
        estimated_wait_s: Option<u64>,
        poll_after_ms: i64,
    },
    /// The fan's turn: its admission token, valid until the given instant.
    Admitted {
        admission_token: String,
        admission_expires_at_ms: i64,
    },
    /// Nothing left to sell right now; seats may come back.
    SoldOut { poll_after_ms: i64 },
}

impl FanStatus {
    fn name(&self) -> &'static str {
        match self {
            FanStatus::Closed => "closed",
            FanStatus::PreQueue { .. } => "pre_queue",
            FanStatus::Queued { .. } => "queued",
            FanStatus::Admitted { .. } => "admitted",
            FanStatus::SoldOut { .. } => "sold_out",
        }
    }
}

/// The answer to every join and poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoomResponse {
    pub(crate) show_id: String,
    /// The fan's queue token; absent only from a `closed` answer.
    pub(crate) queue_token: Option<String>,
    /// When the queue opens (`closed`), else when the sale opens.
    pub(crate) opens_at_ms: i64,
    pub(crate) server_time_ms: i64,
    pub(crate) status: FanStatus,
}

impl Serialize for RoomResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("RoomResponse", 10)?;
        if self.status == FanStatus::Closed {
            // This answer has always listed its members alphabetically.
            out.serialize_field("opens_at_ms", &self.opens_at_ms)?;
            out.serialize_field("server_time_ms", &self.server_time_ms)?;
            out.serialize_field("show_id", &self.show_id)?;
            out.serialize_field("status", self.status.name())?;
            return out.end();
        }
        out.serialize_field("status", self.status.name())?;
        out.serialize_field("show_id", &self.show_id)?;
        out.serialize_field("queue_token", &self.queue_token)?;
        match &self.status {
            FanStatus::Queued {
                position,
                estimated_wait_s,
                poll_after_ms,
            } => {
                out.serialize_field("position", position)?;
                out.serialize_field("estimated_wait_s", estimated_wait_s)?;
                out.serialize_field("poll_after_ms", poll_after_ms)?;
            }
            FanStatus::Admitted { .. } => {
                out.serialize_field("position", &0)?;
                out.serialize_field("estimated_wait_s", &0)?;
            }
            FanStatus::PreQueue { poll_after_ms } | FanStatus::SoldOut { poll_after_ms } => {
                out.serialize_field("poll_after_ms", poll_after_ms)?;
            }
            FanStatus::Closed => {}
        }
        out.serialize_field("opens_at_ms", &self.opens_at_ms)?;
        out.serialize_field("server_time_ms", &self.server_time_ms)?;
        if let FanStatus::Admitted {
            admission_token,
            admission_expires_at_ms,
        } = &self.status
        {
            out.serialize_field("admission_token", admission_token)?;
            out.serialize_field("admission_expires_at_ms", admission_expires_at_ms)?;
        }
        out.end()
    }
}

/// `GET /v1/waiting-room/challenge`.
#[derive(Debug, Serialize)]
pub(crate) struct ChallengeResponse {
    pub(crate) challenge: String,
    /// Leading zero bits the solution's digest needs.
    pub(crate) difficulty: u8,
    pub(crate) expires_at_ms: i64,
    pub(crate) server_time_ms: i64,
    pub(crate) show_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: FanStatus) -> String {
        let queue_token = (status != FanStatus::Closed).then(|| "q.t.s".to_owned());
        let response = RoomResponse {
            show_id: "s1".into(),
            queue_token,
            opens_at_ms: 1_000,
            server_time_ms: 2_000,
            status,
        };
        serde_json::to_string(&response).unwrap()
    }

    /// The bytes every status has always been answered with.
    #[test]
    fn each_status_serializes_as_it_always_has() {
        assert_eq!(
            response(FanStatus::Closed),
            r#"{"opens_at_ms":1000,"server_time_ms":2000,"show_id":"s1","status":"closed"}"#
        );
        assert_eq!(
            response(FanStatus::PreQueue {
                poll_after_ms: 3_000
            }),
            r#"{"status":"pre_queue","show_id":"s1","queue_token":"q.t.s","poll_after_ms":3000,"opens_at_ms":1000,"server_time_ms":2000}"#
        );
        assert_eq!(
            response(FanStatus::Queued {
                position: 7,
                estimated_wait_s: Some(12),
                poll_after_ms: 2_000
            }),
            r#"{"status":"queued","show_id":"s1","queue_token":"q.t.s","position":7,"estimated_wait_s":12,"poll_after_ms":2000,"opens_at_ms":1000,"server_time_ms":2000}"#
        );
        assert_eq!(
            response(FanStatus::Queued {
                position: 7,
                estimated_wait_s: None,
                poll_after_ms: 2_000
            }),
            r#"{"status":"queued","show_id":"s1","queue_token":"q.t.s","position":7,"estimated_wait_s":null,"poll_after_ms":2000,"opens_at_ms":1000,"server_time_ms":2000}"#
        );
        assert_eq!(
            response(FanStatus::Admitted {
                admission_token: "a.t.s".into(),
                admission_expires_at_ms: 9_000
            }),
            r#"{"status":"admitted","show_id":"s1","queue_token":"q.t.s","position":0,"estimated_wait_s":0,"opens_at_ms":1000,"server_time_ms":2000,"admission_token":"a.t.s","admission_expires_at_ms":9000}"#
        );
        assert_eq!(
            response(FanStatus::SoldOut {
                poll_after_ms: 15_000
            }),
            r#"{"status":"sold_out","show_id":"s1","queue_token":"q.t.s","poll_after_ms":15000,"opens_at_ms":1000,"server_time_ms":2000}"#
        );
    }

    #[test]
    fn a_challenge_serializes_as_it_always_has() {
        let challenge = ChallengeResponse {
            challenge: "c".into(),
            difficulty: 8,
            expires_at_ms: 3,
            server_time_ms: 1,
            show_id: "s1".into(),
        };
        assert_eq!(
            serde_json::to_string(&challenge).unwrap(),
            r#"{"challenge":"c","difficulty":8,"expires_at_ms":3,"server_time_ms":1,"show_id":"s1"}"#
        );
    }
}

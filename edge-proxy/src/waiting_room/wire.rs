//! The waiting room's wire format: the join body it reads and the answers it writes, typed
//! and serialized directly, without building a JSON tree.

use super::cookies::Cookie;
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use utoipa::openapi::{RefOr, Schema};

/// A join's body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinRequest {
    /// The show whose queue to join: 1 to 64 URL-safe characters.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub(crate) show_id: String,
    /// Required by shows with a proof-of-work difficulty.
    pub(crate) pow: Option<PowAnswer>,
    /// During the show's presale: the account's access code, unless it redeemed one for
    /// the show before. At most 64 characters.
    #[schema(max_length = 64)]
    pub(crate) access_code: Option<String>,
}

/// A join's proof of work.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PowAnswer {
    /// The challenge as `GET /v1/waiting-room/challenge` gave it.
    #[schema(max_length = 256)]
    pub(crate) challenge: String,
    /// The solution found for it.
    #[schema(max_length = 64)]
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

/// The schema of what [`RoomResponse`]'s `Serialize` writes: one shape per `status`.
impl utoipa::PartialSchema for RoomResponse {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, SchemaType, Type};
        let field = |kind: Type, description: &str| {
            ObjectBuilder::new()
                .schema_type(kind)
                .description(Some(description))
                .build()
        };
        let shape = |status: FanStatus, fields: Vec<(&str, Object)>| {
            let mut object = ObjectBuilder::new()
                .description(Some(match status {
                    FanStatus::Closed => "The queue has not opened; no token is issued.",
                    FanStatus::PreQueue { .. } => {
                        "Joined before the sale; placed by the draw at the opening."
                    }
                    FanStatus::Queued { .. } => "In line.",
                    FanStatus::Admitted { .. } => "The fan's turn: its admission token.",
                    FanStatus::SoldOut { .. } => "Nothing left right now; seats may come back.",
                }))
                .property(
                    "status",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([status.name()])),
                )
                .required("status");
            let common = [
                ("show_id", field(Type::String, "The show.")),
                (
                    "opens_at_ms",
                    field(
                        Type::Integer,
                        "When the queue opens (`closed`), else when the sale opens.",
                    ),
                ),
                ("server_time_ms", field(Type::Integer, "The edge's clock.")),
            ];
            let token = (
                "queue_token",
                field(
                    Type::String,
                    "The fan's queue token (also set as a cookie): present it to poll.",
                ),
            );
            let with_token = status != FanStatus::Closed;
            for (name, schema) in common
                .into_iter()
                .chain(with_token.then_some(token))
                .chain(fields)
            {
                object = object.property(name, schema).required(name);
            }
            object
        };
        let poll_after = || {
            (
                "poll_after_ms",
                field(Type::Integer, "How long to wait before polling again."),
            )
        };
        let position = ("position", field(Type::Integer, "Fans present ahead."));
        let queued = FanStatus::Queued {
            position: 0,
            estimated_wait_s: None,
            poll_after_ms: 0,
        };
        let admitted = FanStatus::Admitted {
            admission_token: String::new(),
            admission_expires_at_ms: 0,
        };
        OneOfBuilder::new()
            .item(shape(FanStatus::Closed, Vec::new()))
            .item(shape(
                FanStatus::PreQueue { poll_after_ms: 0 },
                vec![poll_after()],
            ))
            .item(shape(
                queued,
                vec![
                    position.clone(),
                    (
                        "estimated_wait_s",
                        ObjectBuilder::new()
                            .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
                            .description(Some(
                                "The estimated wait; null while admission is stopped.",
                            ))
                            .build(),
                    ),
                    poll_after(),
                ],
            ))
            .item(shape(
                admitted,
                vec![
                    position,
                    ("estimated_wait_s", field(Type::Integer, "Zero.")),
                    (
                        "admission_token",
                        field(Type::String, "The admission token for the purchase routes."),
                    ),
                    (
                        "admission_expires_at_ms",
                        field(Type::Integer, "When the admission ends."),
                    ),
                ],
            ))
            .item(shape(
                FanStatus::SoldOut { poll_after_ms: 0 },
                vec![poll_after()],
            ))
            .into()
    }
}

impl utoipa::ToSchema for RoomResponse {}

/// `GET /v1/waiting-room/challenge`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ChallengeResponse {
    /// The challenge to solve and send back with the join.
    pub(crate) challenge: String,
    /// Leading zero bits the solution's digest needs.
    pub(crate) difficulty: u8,
    /// When the challenge stops being accepted.
    pub(crate) expires_at_ms: i64,
    /// The edge's clock.
    pub(crate) server_time_ms: i64,
    /// The show it is for.
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

//! Resource ids in paths, extracted by handlers as they are. A malformed id names no
//! resource, so it is a 404 like an unknown one: clients cannot tell "bad shape" from "does
//! not exist", and need not.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! resource_id {
    ($vis:vis $name:ident, $code:ident, $what:literal) => {
        #[doc = concat!("Names one ", $what, " by its UUID.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        $vis struct $name(pub Uuid);

        #[allow(dead_code, reason = "not every resource is named in a path")]
        impl $name {
            /// The id in a path segment; a malformed one is this resource's 404.
            pub(crate) fn parse_path(raw: &str) -> Result<Self, ApiError> {
                Uuid::parse_str(raw)
                    .map($name)
                    .map_err(|_| Self::not_found())
            }

            /// This resource's 404.
            pub(crate) fn not_found() -> ApiError {
                ApiError::NotFound {
                    code: crate::error::Code::$code,
                    what: $what,
                }
            }
        }

        /// The route's one path parameter as this id. A segment that is no id of this kind
        /// (not a UUID, not even UTF-8 once decoded) is this resource's 404 problem.
        impl<S: Send + Sync> axum::extract::FromRequestParts<S> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                state: &S,
            ) -> Result<Self, ApiError> {
                let axum::extract::Path(raw) =
                    axum::extract::Path::<String>::from_request_parts(parts, state)
                        .await
                        .map_err(|_| Self::not_found())?;
                Self::parse_path(&raw)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

resource_id!(pub(crate) VenueId, VenueNotFound, "Venue");
resource_id!(pub(crate) EventId, EventNotFound, "Event");
resource_id!(pub ShowId, ShowNotFound, "Show");
resource_id!(pub(crate) HoldId, HoldNotFound, "Hold");
resource_id!(pub(crate) OrderId, OrderNotFound, "Order");
resource_id!(pub(crate) PaymentId, PaymentNotFound, "Payment");
resource_id!(pub(crate) TicketId, TicketNotFound, "Ticket");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_id_is_not_found() {
        let err = EventId::parse_path("not-a-uuid").unwrap_err();
        assert_eq!(err.to_problem().status, 404);
        assert_eq!(err.to_problem().code, "event_not_found");
        let id = Uuid::new_v4();
        assert_eq!(ShowId::parse_path(&id.to_string()).unwrap(), ShowId(id));
    }
}

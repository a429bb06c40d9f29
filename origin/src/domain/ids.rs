//! Resource ids in paths. A malformed id names no resource, so it is a 404 like an unknown
//! one: clients cannot tell "bad shape" from "does not exist", and need not.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! resource_id {
    ($name:ident, $code:ident, $what:literal) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn parse_path(raw: &str) -> Result<Self, ApiError> {
                Uuid::parse_str(raw)
                    .map($name)
                    .map_err(|_| Self::not_found())
            }

            pub fn not_found() -> ApiError {
                ApiError::NotFound {
                    code: crate::error::Code::$code,
                    what: $what,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

resource_id!(VenueId, VenueNotFound, "Venue");
resource_id!(EventId, EventNotFound, "Event");
resource_id!(ShowId, ShowNotFound, "Show");
resource_id!(HoldId, HoldNotFound, "Hold");
resource_id!(OrderId, OrderNotFound, "Order");
resource_id!(PaymentId, PaymentNotFound, "Payment");
resource_id!(TicketId, TicketNotFound, "Ticket");

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

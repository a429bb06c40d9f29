//! The body of `POST /v1/orders`, parsed.

use crate::domain::HoldId;
use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The hold to order; nothing else is taken.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrderBody {
    /// The fan's live hold, for the admitted show. An id that names no such hold (or is no
    /// UUID) is answered `hold_not_found`.
    #[schema(format = Uuid)]
    hold_id: String,
}

/// An order for one hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct OrderRequest {
    pub hold_id: HoldId,
}

impl OrderRequest {
    pub(crate) fn parse(body: OrderBody) -> Result<Self, ApiError> {
        // A malformed id names no hold: the same answer as an unknown one.
        let hold_id = Uuid::parse_str(&body.hold_id).map_err(|_| HoldId::not_found())?;
        Ok(OrderRequest {
            hold_id: HoldId(hold_id),
        })
    }
}

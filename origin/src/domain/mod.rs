//! Types that parse, not validate: a value of these types is known good, so handlers and
//! queries never re-check it.

pub(crate) mod account;
pub(crate) mod catalog_query;
pub(crate) mod drafts;
pub(crate) mod hold_request;
pub(crate) mod idempotency_key;
pub(crate) mod ids;
pub(crate) mod order_request;
pub(crate) mod page;
pub(crate) mod payment_method;
pub(crate) mod typed_code;

pub(crate) use catalog_query::EventFilter;
pub(crate) use drafts::{EventDraft, ShowDraft, VenueDraft};
pub use hold_request::{BestScope, HoldRequest};
pub(crate) use idempotency_key::IdempotencyKey;
pub use ids::ShowId;
pub(crate) use ids::{EventId, HoldId, OrderId, PaymentId, TicketId, VenueId};
pub(crate) use order_request::OrderRequest;
pub(crate) use page::{Keyset, Page};
pub(crate) use payment_method::PaymentMethod;

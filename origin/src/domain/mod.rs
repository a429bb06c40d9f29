//! Types that parse, not validate: a value of these types is known good, so handlers and
//! queries never re-check it.

pub mod catalog_query;
pub mod drafts;
pub mod hold_request;
pub mod idempotency_key;
pub mod ids;
pub mod order_request;
pub mod page;
pub mod payment_method;

pub use catalog_query::EventFilter;
pub use drafts::{EventDraft, SectionLayout, ShowDraft, VenueDraft};
pub use hold_request::HoldRequest;
pub use idempotency_key::IdempotencyKey;
pub use ids::{EventId, HoldId, OrderId, PaymentId, ShowId, TicketId, VenueId};
pub use order_request::OrderRequest;
pub use page::{Keyset, Page};
pub use payment_method::PaymentMethod;

//! What the origin's background workers share: wake-ups.

use tokio::sync::Notify;

/// Wakes a worker as soon as there is work for it, rather than at its next poll.
#[derive(Default)]
pub(crate) struct Workers {
    pub refunds: Notify,
    pub show_cancellations: Notify,
}

//! Which shows have a waiting room, and on which settings from the file: every show named in
//! `[waiting_room.shows]`, and, when `[waiting_room.default]` is set, every other show the
//! seat-map builder publishes (a show the organizer API just made, from the builder's next
//! round). A default room opens its queue `queue_opens_before_s` before the show's sale,
//! whose time the show's availability snapshot carries, and draws its pre-queue at the sale.
//! It runs while the builder still confirms the snapshot: a show that left the build window
//! (it started) stops being confirmed, and its room stops [`HORIZON_MS`] later.

use crate::config::{QueueSettings, WaitingRoomConfig};
use crate::snapshots::{Snapshot, SnapshotStore};
use onsale_contract::snapshot::Kind;

/// How long a default room outlives the last confirmation of its show's snapshot: long
/// enough that no builder or Redis outage during a sale closes a room.
pub const HORIZON_MS: i64 = 6 * 3_600_000;

/// When the sale of the show with `availability` opens, if it gets a default room now.
fn default_sale(availability: &Snapshot, now_ms: i64) -> Option<i64> {
    (now_ms - availability.checked_at_ms <= HORIZON_MS)
        .then_some(availability.on_sale_at_ms)
        .flatten()
}

/// Whether `show` has a waiting room at `now_ms`.
pub(super) fn has_room(
    config: &WaitingRoomConfig,
    snapshots: &SnapshotStore,
    show: &str,
    now_ms: i64,
) -> bool {
    config.shows.contains_key(show)
        || (config.default.is_some()
            && snapshots
                .get(show, Kind::Availability)
                .and_then(|availability| default_sale(&availability, now_ms))
                .is_some())
}

/// Every show with a waiting room at `now_ms`, and the file's settings for it.
pub(super) fn rooms(
    config: &WaitingRoomConfig,
    snapshots: &SnapshotStore,
    now_ms: i64,
) -> Vec<(String, QueueSettings)> {
    let mut rooms: Vec<(String, QueueSettings)> = config
        .shows
        .iter()
        .map(|(show, settings)| (show.clone(), settings.clone()))
        .collect();
    if let Some(default) = &config.default {
        let defaulted = snapshots
            .availabilities()
            .into_iter()
            .filter(|(show, _)| !config.shows.contains_key(show))
            .filter_map(|(show, availability)| {
                let sale_ms = default_sale(&availability, now_ms)?;
                Some((show, default.for_sale_at_ms(sale_ms)?))
            });
        rooms.extend(defaulted);
    }
    rooms
}

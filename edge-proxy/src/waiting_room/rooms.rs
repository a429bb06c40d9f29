//! Which shows have a waiting room, and on which settings from the file: every show named in
//! `[waiting_room.shows]`, and, when `[waiting_room.default]` is set, every other show the
//! seat-map builder publishes (a show the organizer API just made, from the builder's next
//! round). A default room opens its queue `queue_opens_before_s` before the show's sale,
//! whose time the show's availability snapshot carries, and draws its pre-queue at the sale.

use crate::config::{QueueSettings, WaitingRoomConfig};
use crate::snapshots::SnapshotStore;

/// Whether `show` has a waiting room.
pub(super) fn has_room(config: &WaitingRoomConfig, snapshots: &SnapshotStore, show: &str) -> bool {
    config.shows.contains_key(show)
        || (config.default.is_some() && snapshots.on_sale_at_ms(show).is_some())
}

/// Every show with a waiting room, and the file's settings for it.
pub(super) fn rooms(
    config: &WaitingRoomConfig,
    snapshots: &SnapshotStore,
) -> Vec<(String, QueueSettings)> {
    let mut rooms: Vec<(String, QueueSettings)> = config
        .shows
        .iter()
        .map(|(show, settings)| (show.clone(), settings.clone()))
        .collect();
    if let Some(default) = &config.default {
        let defaulted = snapshots
            .sale_openings()
            .into_iter()
            .filter(|(show, _)| !config.shows.contains_key(show))
            .filter_map(|(show, sale_ms)| Some((show, default.for_sale_at_ms(sale_ms)?)));
        rooms.extend(defaulted);
    }
    rooms
}

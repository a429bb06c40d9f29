//! Every query the builder runs. All are reads: the builder never writes to the database,
//! so it can point at a replica (`database.replica_url`).

/// Seat states in layout order, one character each, built by Postgres in one query. An
/// expired hold counts as available whether or not the sweeper has run, unless a fan waits
/// for the show: then its seats, like those already returned, are the waitlist's and show
/// as held.
pub(crate) const SEAT_STATUS: &str = "SELECT string_agg(
        CASE WHEN status = 'available' THEN 'A'
             WHEN status = 'held' AND hold_expires_at <= now() AND NOT waitlist_waiting($1) THEN 'A'
             WHEN status IN ('held', 'returned') THEN 'H'
             WHEN status = 'sold' THEN 'S'
             ELSE 'X' END, '' ORDER BY layout_idx)
     FROM seat_inventory WHERE show_id = $1";

/// A show's seats with their section, row and tier, in layout order (the order of
/// [`SEAT_STATUS`]).
pub(crate) const LAYOUT: &str =
    "SELECT sec.id AS section_id, sec.name AS section_name, i.price_tier, s.row_label,
            s.id AS seat_id, s.number, s.x, s.y, s.accessible, s.obstructed
     FROM seat_inventory i
     JOIN seats s ON s.id = i.seat_id
     JOIN sections sec ON sec.venue_id = s.venue_id AND sec.id = s.section_id
     WHERE i.show_id = $1 ORDER BY i.layout_idx";

/// A show's general-admission sections, in the venue's section order.
pub(crate) const PLACES: &str =
    "SELECT g.section_id, sec.name AS section_name, g.price_tier, g.capacity
     FROM ga_inventory g
     JOIN shows s ON s.id = g.show_id
     JOIN events e ON e.id = s.event_id
     JOIN sections sec ON sec.venue_id = e.venue_id AND sec.id = g.section_id
     WHERE g.show_id = $1 ORDER BY sec.position";

/// A show's general-admission counts, in the order of [`PLACES`]: places left (the
/// counter), held by live holds, sold (valid tickets).
pub(crate) const PLACES_COUNT: &str =
    "SELECT g.section_id, g.capacity::int8 AS capacity, g.available::int8 AS available,
            (SELECT coalesce(sum(h.seat_count), 0) FROM holds h
              WHERE h.show_id = g.show_id AND h.ga_section = g.section_id
                AND h.status = 'active' AND h.expires_at > now())::int8 AS held,
            (SELECT count(*) FROM tickets t
              WHERE t.show_id = g.show_id AND t.ga_section = g.section_id AND t.status = 'valid') AS sold
     FROM ga_inventory g
     JOIN shows s ON s.id = g.show_id
     JOIN events e ON e.id = s.event_id
     JOIN sections sec ON sec.venue_id = e.venue_id AND sec.id = g.section_id
     WHERE g.show_id = $1 ORDER BY sec.position";

/// The shows in the build window (`$1` hours of lookahead, from the sale or its presale,
/// whichever opens first) with their layout versions, when their sale opens and their
/// presale window if they have one (Unix ms). A called-off show stays until it would have
/// started, so its seat map shows every seat off sale and the waiting room stops calling
/// fans.
pub(crate) const SHOWS: &str = "SELECT s.id AS show_id, s.layout_version,
            (extract(epoch FROM s.on_sale_at) * 1000)::int8 AS on_sale_at_ms,
            (extract(epoch FROM p.starts_at) * 1000)::int8 AS presale_starts_at_ms,
            (extract(epoch FROM p.ends_at) * 1000)::int8 AS presale_ends_at_ms
     FROM shows s LEFT JOIN show_presales p ON p.show_id = s.id
     WHERE s.status IN ('scheduled', 'on_sale', 'sold_out', 'cancelled')
       AND least(s.on_sale_at, p.starts_at) <= now() + make_interval(hours => $1)
       AND s.starts_at > now()
     ORDER BY s.on_sale_at, s.id";

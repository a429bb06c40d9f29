//! The offer worker: seats that came back while fans waited become offers.
//!
//! Every `waitlist.offer_interval_ms` each origin runs a round. First it ends the expired
//! holds of shows with fans waiting (the sweeper's work, done sooner for them), and records
//! how the offers whose holds ended came out (`bought`, `lapsed`). Then, per show with returned
//! seats (`seat_returns`) and under a per-show advisory lock (so two origins never offer
//! one show at once), it locks the returned seats' inventory rows in seat order (every
//! writer's lock order) and walks the waiting fans in the order they joined: each fan whose
//! quantity the seats of its sections can fill gets the best of them (best available's
//! choice, adjacent when it can be) as a hold in its name for `waitlist.offer_ttl_s`, its
//! entry `offered` and a `waitlist_offer` event in the outbox, in the one transaction and in
//! a statement each for all the round's offers, so a burst of returns costs a round what
//! one return does. A fan past its seat limit is passed over for the round and keeps its
//! place; the limit is counted again under the lock each fan's claims take. Seats no waiting
//! fan fits, or that have waited `waitlist.hold_back_s`, go back on sale for everyone.
//!
//! The time from a seat's return to the fan's notification is at most a round's interval, the
//! round, and the outbox relay and consumer (an expired hold's seats come back at its
//! expiry); `waitlist_offer_latency_seconds` measures it as delivered.

use crate::holds::best::{choose, Seat};
use crate::AppState;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Most waiting fans one round walks per show: a burst of returns is offered over rounds.
const ENTRIES_PER_ROUND: i64 = 2000;

/// A returned seat and what an offer needs of it.
struct Returned {
    seat: Seat,
    price_cents: i64,
    returned_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ReturnedRow {
    seat_id: i64,
    section_id: String,
    row_label: String,
    number: i32,
    x: f32,
    y: f32,
    price_cents: i64,
    returned_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Waiting {
    id: i64,
    account_id: Uuid,
    quantity: i32,
    section_ids: Option<Vec<String>>,
}

impl Waiting {
    fn takes(&self, section: &str) -> bool {
        self.section_ids
            .as_ref()
            .is_none_or(|sections| sections.iter().any(|s| s == section))
    }
}

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Offers made.
    pub offers: u64,
    /// Seats put back on sale.
    pub released: u64,
}

/// One round over every show with returned seats, after ending the expired holds of shows
/// with fans waiting.
pub async fn offer_once(state: &AppState) -> Result<Round, sqlx::Error> {
    let batch = state.config.holds.sweep_batch;
    while crate::sweeper::sweep_waitlisted(&state.pool, batch, &state.metrics).await? as i64
        >= batch
    {}
    sqlx::query!(
        "UPDATE waitlist_entries w
         SET status = CASE WHEN h.status = 'converted' THEN 'bought' ELSE 'lapsed' END,
             ended_at = now()
         FROM holds h
         WHERE w.status = 'offered' AND h.id = w.offer_hold_id AND h.status <> 'active'",
    )
    .execute(&state.pool)
    .await?;
    let shows: Vec<Uuid> =
        sqlx::query_scalar!("SELECT DISTINCT show_id AS \"show_id!\" FROM seat_returns")
            .fetch_all(&state.pool)
            .await?;
    let mut round = Round::default();
    for show in shows {
        let done = offer_show(state, show).await?;
        round.offers += done.offers;
        round.released += done.released;
    }
    Ok(round)
}

/// Offers `show`'s returned seats to its waiting fans, in one transaction.
async fn offer_show(state: &AppState, show: Uuid) -> Result<Round, sqlx::Error> {
    let config = &state.config;
    let mut tx = state.pool.begin().await?;
    let mine = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock(hashtextextended('waitlist:' || $1::uuid::text, 0)) AS "mine!""#,
        show,
    )
    .fetch_one(&mut *tx)
    .await?;
    if !mine {
        return Ok(Round::default());
    }
    let rows: Vec<ReturnedRow> = sqlx::query_as(
        "SELECT r.seat_id, i.section_id, s.row_label, s.number, s.x, s.y, p.price_cents, r.returned_at
         FROM seat_returns r
         JOIN seat_inventory i ON i.show_id = r.show_id AND i.seat_id = r.seat_id
         JOIN show_price_tiers p ON p.show_id = i.show_id AND p.tier = i.price_tier
         JOIN seats s ON s.id = r.seat_id
         WHERE r.show_id = $1 AND i.status = 'returned'
         ORDER BY r.seat_id FOR UPDATE OF i",
    )
    .bind(show)
    .fetch_all(&mut *tx)
    .await?;
    let mut pool: Vec<Returned> = rows
        .into_iter()
        .map(|row| Returned {
            seat: Seat {
                seat_id: row.seat_id,
                section_id: row.section_id,
                row_label: row.row_label,
                number: row.number,
                x: row.x,
                y: row.y,
                open: true,
            },
            price_cents: row.price_cents,
            returned_at: row.returned_at,
        })
        .collect();
    let waiting: Vec<Waiting> = sqlx::query_as(
        "SELECT id, account_id, quantity, section_ids FROM waitlist_entries
         WHERE show_id = $1 AND status = 'waiting' ORDER BY id LIMIT $2 FOR UPDATE",
    )
    .bind(show)
    .bind(ENTRIES_PER_ROUND)
    .fetch_all(&mut *tx)
    .await?;
    let show_row = sqlx::query!(
        "SELECT s.currency, v.stage_x, v.stage_y FROM shows s JOIN events e ON e.id = s.event_id
         JOIN venues v ON v.id = e.venue_id WHERE s.id = $1",
        show,
    )
    .fetch_one(&mut *tx)
    .await?;
    let stage = (show_row.stage_x, show_row.stage_y);

    // Each waiting fan in turn, that the seats left fit, within its seat limit as it stood.
    let fans: Vec<String> = waiting.iter().map(|w| w.account_id.to_string()).collect();
    let seats_of_fans = fan_seats(&mut tx, show, &fans).await?;
    let limit = config.holds.max_seats_per_fan as i64;
    let within = |counts: &HashMap<String, i64>, entry: &Waiting| {
        counts
            .get(&entry.account_id.to_string())
            .copied()
            .unwrap_or(0)
            + i64::from(entry.quantity)
            <= limit
    };
    // Whether the round read every waiting fan: only then can it tell no one wants a seat.
    let everyone_seen = (waiting.len() as i64) < ENTRIES_PER_ROUND;
    let mut planned: Vec<Planned> = Vec::new();
    let mut still_waiting = Vec::new();
    for entry in waiting {
        let quantity = entry.quantity as usize;
        let fits: Vec<usize> = (0..pool.len())
            .filter(|&at| entry.takes(&pool[at].seat.section_id))
            .collect();
        let candidates: Vec<Seat> = fits.iter().map(|&at| pool[at].seat.clone()).collect();
        let choice = match within(&seats_of_fans, &entry) {
            true => choose(&candidates, quantity, stage),
            false => None,
        };
        let Some(choice) = choice else {
            still_waiting.push(entry);
            continue;
        };
        let (offered, rest): (Vec<Returned>, Vec<Returned>) = pool
            .into_iter()
            .partition(|returned| choice.seats.contains(&returned.seat.seat_id));
        pool = rest;
        planned.push(Planned {
            hold: Uuid::now_v7(),
            entry,
            adjacent: choice.adjacent,
            seats: offered,
        });
    }
    // Counted again under the lock each fan's claims take: a claim that got in first keeps
    // its seats, and the offer waits for the next round.
    let mut offered_fans: Vec<String> = planned
        .iter()
        .map(|p| p.entry.account_id.to_string())
        .collect();
    offered_fans.sort_unstable();
    lock_fans(&mut tx, show, &offered_fans).await?;
    let counted = fan_seats(&mut tx, show, &offered_fans).await?;
    let (offers, late): (Vec<Planned>, Vec<Planned>) = planned
        .into_iter()
        .partition(|p| within(&counted, &p.entry));
    for late in late {
        pool.extend(late.seats);
        still_waiting.push(late.entry);
    }
    let mut round = Round::default();
    if !offers.is_empty() {
        write_offers(
            &mut tx,
            show,
            &show_row.currency,
            config.waitlist.offer_ttl_s,
            &offers,
        )
        .await?;
        round.offers = offers.len() as u64;
        let seats: usize = offers.iter().map(|o| o.seats.len()).sum();
        state
            .metrics
            .waitlist_seats
            .with_label_values(&["offered"])
            .inc_by(seats as u64);
    }

    // A seat stays for the waitlist while a waiting fan could take it, up to hold_back_s.
    let held_back_since =
        Utc::now() - chrono::Duration::seconds(config.waitlist.hold_back_s.into());
    let released: Vec<i64> = pool
        .iter()
        .filter(|r| {
            let wanted = still_waiting.iter().any(|w| w.takes(&r.seat.section_id));
            r.returned_at <= held_back_since || (everyone_seen && !wanted)
        })
        .map(|r| r.seat.seat_id)
        .collect();
    if !released.is_empty() {
        sqlx::query!(
            "UPDATE seat_inventory SET status = 'available', version = version + 1
             WHERE show_id = $1 AND seat_id = ANY($2) AND status = 'returned'",
            show,
            &released,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM seat_returns WHERE show_id = $1 AND seat_id = ANY($2)",
            show,
            &released,
        )
        .execute(&mut *tx)
        .await?;
        round.released = released.len() as u64;
        state
            .metrics
            .waitlist_seats
            .with_label_values(&["released"])
            .inc_by(round.released);
    }
    tx.commit().await?;
    if round != Round::default() {
        tracing::info!(%show, offers = round.offers, released = round.released, "waitlist round");
    }
    Ok(round)
}

/// Takes, to the end of the transaction, the lock each of `fans` takes to claim seats of
/// `show` (`claim_hold`'s), in the order given.
pub(super) async fn lock_fans(
    tx: &mut sqlx::PgConnection,
    show: Uuid,
    fans: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text || ':' || fan, 7215))
         FROM unnest($2::text[]) AS fan",
        show,
        fans,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The seats each of `fans` has of `show` in live holds and orders.
pub(super) async fn fan_seats(
    tx: &mut sqlx::PgConnection,
    show: Uuid,
    fans: &[String],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let counts = sqlx::query!(
        r#"SELECT fan_id, sum(seat_count)::int8 AS "seats!" FROM fan_seats
           WHERE show_id = $1 AND fan_id = ANY($2) AND counts_until > now()
           GROUP BY fan_id"#,
        show,
        fans,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(counts.into_iter().map(|c| (c.fan_id, c.seats)).collect())
}

/// An offer to make: seats for one waiting fan, as the hold `hold`.
struct Planned {
    hold: Uuid,
    entry: Waiting,
    adjacent: bool,
    seats: Vec<Returned>,
}

/// The offers' holds, their seats held by them, the entries `offered` and each fan's
/// notification, a statement each for every offer of the round.
async fn write_offers(
    tx: &mut sqlx::PgConnection,
    show: Uuid,
    currency: &str,
    ttl_s: u32,
    offers: &[Planned],
) -> Result<(), sqlx::Error> {
    let holds: Vec<Uuid> = offers.iter().map(|o| o.hold).collect();
    let fans: Vec<String> = offers
        .iter()
        .map(|o| o.entry.account_id.to_string())
        .collect();
    let accounts: Vec<Uuid> = offers.iter().map(|o| o.entry.account_id).collect();
    let entries: Vec<i64> = offers.iter().map(|o| o.entry.id).collect();
    let adjacent: Vec<bool> = offers.iter().map(|o| o.adjacent).collect();
    let totals: Vec<i64> = offers
        .iter()
        .map(|o| o.seats.iter().map(|s| s.price_cents).sum())
        .collect();
    // When the last of each offer's seats came back: the start of its latency.
    let returned_ms: Vec<i64> = offers
        .iter()
        .map(|o| {
            o.seats
                .iter()
                .map(|s| s.returned_at.timestamp_millis())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let (seats, seat_holds): (Vec<i64>, Vec<Uuid>) = offers
        .iter()
        .flat_map(|o| o.seats.iter().map(|s| (s.seat.seat_id, o.hold)))
        .unzip();
    let ttl_s = f64::from(ttl_s);
    sqlx::query!(
        "WITH seats AS (
             SELECT hold_id, array_agg(seat_id ORDER BY seat_id) AS seat_ids
             FROM unnest($2::int8[], $3::uuid[]) AS s(seat_id, hold_id) GROUP BY hold_id)
         INSERT INTO holds (id, show_id, fan_id, status, seat_count, total_cents, currency,
                            expires_at, seat_ids, adjacent)
         SELECT o.hold_id, $1, o.fan, 'active', cardinality(s.seat_ids), o.total, $4,
                now() + make_interval(secs => $5), s.seat_ids, o.adjacent
         FROM unnest($6::uuid[], $7::text[], $8::int8[], $9::bool[]) AS o(hold_id, fan, total, adjacent)
         JOIN seats s ON s.hold_id = o.hold_id",
        show,
        &seats,
        &seat_holds,
        currency,
        ttl_s,
        &holds,
        &fans,
        &totals,
        &adjacent,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO fan_seats (show_id, fan_id, hold_id, seat_count, counts_until)
         SELECT $1, h.fan_id, h.id, h.seat_count, h.expires_at FROM holds h WHERE h.id = ANY($2)",
        show,
        &holds,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE seat_inventory i SET status = 'held', hold_id = s.hold_id,
                hold_expires_at = now() + make_interval(secs => $4), version = i.version + 1
         FROM unnest($2::int8[], $3::uuid[]) AS s(seat_id, hold_id)
         WHERE i.show_id = $1 AND i.seat_id = s.seat_id AND i.status = 'returned'",
        show,
        &seats,
        &seat_holds,
        ttl_s,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM seat_returns WHERE show_id = $1 AND seat_id = ANY($2)",
        show,
        &seats,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE waitlist_entries w SET status = 'offered', offer_hold_id = o.hold_id, offered_at = now()
         FROM unnest($1::int8[], $2::uuid[]) AS o(entry_id, hold_id)
         WHERE w.id = o.entry_id",
        &entries,
        &holds,
    )
    .execute(&mut *tx)
    .await?;
    // In the order the fans joined, as the outbox numbers them.
    sqlx::query!(
        "INSERT INTO outbox (aggregate_id, aggregate_type, event_type, payload)
         SELECT o.account, 'account', 'waitlist_offer',
                jsonb_build_object('fan_id', h.fan_id, 'show_id', h.show_id, 'hold_id', h.id,
                    'seat_ids', h.seat_ids, 'total_cents', h.total_cents, 'currency', h.currency,
                    'expires_at_ms', floor(extract(epoch FROM h.expires_at) * 1000)::int8,
                    'returned_at_ms', o.returned_ms)
         FROM unnest($1::uuid[], $2::uuid[], $3::int8[]) WITH ORDINALITY AS o(account, hold_id, returned_ms, n)
         JOIN holds h ON h.id = o.hold_id
         ORDER BY o.n",
        &accounts,
        &holds,
        &returned_ms,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Runs a round every `waitlist.offer_interval_ms` until `stopped`.
pub(crate) async fn run(state: AppState, mut stopped: watch::Receiver<bool>) {
    let interval = Duration::from_millis(state.config.waitlist.offer_interval_ms);
    loop {
        if let Err(error) = offer_once(&state).await {
            tracing::warn!(%error, "waitlist round failed; retrying next tick");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

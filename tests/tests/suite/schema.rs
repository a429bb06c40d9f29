//! The no-oversell truths hold in the schema itself: direct SQL that would break them fails.

use onsale_tests::{create_catalog, ShowFixture};
use uuid::Uuid;

fn violated(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> String {
    match result {
        Err(sqlx::Error::Database(e)) => e.constraint().unwrap_or_default().to_owned(),
        other => panic!("expected a constraint violation, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seat_cannot_be_in_two_live_holds() {
    let f = ShowFixture::spawn().await;
    let pool = f.pool();
    let first = f.hold_seat(0, "5 minutes").await;
    let second = f.hold_row(0, "5 minutes").await;
    let hand_to = |hold: Uuid| {
        sqlx::query(
            "UPDATE seat_inventory SET hold_id = $3, hold_expires_at = now() + interval '5 minutes'
             WHERE show_id = $1 AND seat_id = $2",
        )
        .bind(f.show)
        .bind(f.seats[0])
        .bind(hold)
    };
    assert_eq!(
        violated(hand_to(second).execute(pool).await),
        "seat_inventory_one_live_hold"
    );
    // The live hold may still extend itself (an order's payment window).
    hand_to(first).execute(pool).await.unwrap();

    // Once the first hold has expired, its seat can be handed to another hold.
    sqlx::query(
        "UPDATE seat_inventory SET hold_expires_at = now() - interval '1 second'
         WHERE show_id = $1 AND seat_id = $2",
    )
    .bind(f.show)
    .bind(f.seats[0])
    .execute(pool)
    .await
    .unwrap();
    hand_to(second).execute(pool).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn inventory_states_need_their_hold_or_order() {
    let f = ShowFixture::spawn().await;
    let pool = f.pool();
    let set = |sql: &'static str| sqlx::query(sql).bind(f.show).bind(f.seats[0]);
    assert_eq!(
        violated(
            set("UPDATE seat_inventory SET status = 'held' WHERE show_id = $1 AND seat_id = $2")
                .execute(pool)
                .await
        ),
        "seat_inventory_held_has_hold"
    );
    assert_eq!(
        violated(
            set("UPDATE seat_inventory SET status = 'sold' WHERE show_id = $1 AND seat_id = $2")
                .execute(pool)
                .await
        ),
        "seat_inventory_sold_has_order"
    );
    assert_eq!(
        violated(
            set("UPDATE seat_inventory SET hold_id = gen_random_uuid(), hold_expires_at = now() WHERE show_id = $1 AND seat_id = $2")
                .execute(pool)
                .await
        ),
        "seat_inventory_held_has_hold",
        "an available seat carries no hold"
    );
    let duplicate = sqlx::query(
        "INSERT INTO seat_inventory (show_id, seat_id, section_id, price_tier, layout_idx)
         SELECT show_id, seat_id, section_id, price_tier, layout_idx FROM seat_inventory WHERE show_id = $1 AND seat_id = $2",
    )
    .bind(f.show)
    .bind(f.seats[0])
    .execute(pool)
    .await;
    assert!(
        violated(duplicate).starts_with("seat_inventory_"),
        "one row per (show, seat)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seat_cannot_have_two_valid_tickets() {
    let f = ShowFixture::spawn().await;
    let pool = f.pool();
    let ticket = |order: Uuid| {
        sqlx::query("INSERT INTO tickets (id, order_id, show_id, seat_id, status, holder) VALUES (gen_random_uuid(), $1, $2, $3, 'valid', 'fan')")
            .bind(order)
            .bind(f.show)
            .bind(f.seats[1])
    };
    let first = f.order_row().await;
    ticket(first).execute(pool).await.unwrap();
    let second = f.order_row().await;
    assert_eq!(
        violated(ticket(second).execute(pool).await),
        "tickets_one_valid_per_seat"
    );

    sqlx::query("UPDATE tickets SET status = 'revoked' WHERE order_id = $1")
        .bind(first)
        .execute(pool)
        .await
        .unwrap();
    ticket(second).execute(pool).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_is_1_to_255_printable_ascii_characters() {
    let f = ShowFixture::spawn().await;
    let store = |key: String| {
        sqlx::query(
            "INSERT INTO idempotency_keys (fan_id, key, route, request_hash) VALUES ('fan', $1, 'r', '')",
        )
        .bind(key)
        .execute(f.pool())
    };
    for good in ["!".to_owned(), "~".repeat(255), "Aa0-_.:/{}".to_owned()] {
        store(good).await.unwrap();
    }
    for bad in [
        String::new(),
        "x".repeat(256),
        "a b".to_owned(),
        "\u{7f}".to_owned(),
        "é".to_owned(),
    ] {
        assert_eq!(violated(store(bad).await), "idempotency_keys_key_check");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_show_is_never_deleted() {
    // Holds and orders name their show without a foreign key: the show outlives them.
    let f = ShowFixture::spawn().await;
    let delete = sqlx::query("DELETE FROM shows WHERE id = $1")
        .bind(f.show)
        .execute(f.pool())
        .await;
    assert_eq!(violated(delete), "shows_are_kept");
    let truncate = sqlx::query("TRUNCATE shows CASCADE")
        .execute(f.pool())
        .await;
    assert_eq!(violated(truncate), "shows_are_kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_show_has_its_own_inventory_partition() {
    let f = ShowFixture::spawn().await;
    let partition = origin::admin::inventory_partition(origin::domain::ShowId(f.show));
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {partition}"))
        .fetch_one(f.pool())
        .await
        .unwrap();
    assert_eq!(rows, 20);
    assert_eq!(f.seats.len(), 20);
    // Analyzed when made: a new table's statistics say nothing (-1) until an ANALYZE.
    let estimated: f32 =
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = $1::regclass")
            .bind(&partition)
            .fetch_one(f.pool())
            .await
            .unwrap();
    assert_eq!(estimated, 20.0);
}

/// Relation locks a claim holds at its end: one call of `claim_hold` for two of the show's
/// seats, rolled back.
async fn locks_of_a_claim(conn: &mut sqlx::PgConnection, show: Uuid, seats: &[i64]) -> i64 {
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    let outcome: String = sqlx::query_scalar(
        "SELECT outcome FROM claim_hold(gen_random_uuid(), $1, 'fan', 'jti', $2, 60, 8, 'key',
                                        'test', '\\x00', 60)",
    )
    .bind(show)
    .bind(seats)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(outcome, "created");
    let locks = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    locks
}

/// A claim reads and writes the show's own partition: a plan kept over the whole
/// inventory would lock every show's partition and its indexes at each call, so every show
/// ever created would slow every claim.
#[tokio::test(flavor = "multi_thread")]
async fn a_claims_locks_do_not_grow_with_the_number_of_shows() {
    let f = ShowFixture::spawn().await;
    let mut conn = f.pool().acquire().await.unwrap();
    let seats = &f.seats[..2];
    // The first call makes the connection's plans, which takes locks of its own.
    locks_of_a_claim(&mut conn, f.show, seats).await;
    let before = locks_of_a_claim(&mut conn, f.show, seats).await;
    let organizer = f.app.organizer();
    for city in ["Nantes", "Lille", "Nice", "Metz", "Caen", "Brest"] {
        create_catalog(
            &organizer,
            "Jazz",
            "Blue Notes",
            city,
            "2099-03-10T20:00:00Z",
        )
        .await;
    }
    let after = locks_of_a_claim(&mut conn, f.show, seats).await;
    assert_eq!(
        after, before,
        "locks with 1 show: {before}, with 7: {after}"
    );
}

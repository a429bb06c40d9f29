//! An organizer calls a show off: the sale stops at once, and every order is cancelled and
//! refunded in full, once, in batches that survive a crash of the origin doing them.

use crate::holds::{stadium_with, Stadium};
use crate::orders::{assert_invariants, confirm, held, ordered, refund_settled};
use onsale_tests::{create_show, db, eventually, origin, venue_body, Client, ADMIN_TOKEN};
use origin::config::RefundPolicy;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

fn cancel_path(show: &str) -> String {
    format!("/v1/admin/shows/{show}/cancel")
}

fn progress_path(show: &str) -> String {
    format!("/v1/admin/shows/{show}/cancellation")
}

/// The cancellation's progress once it is done.
pub(crate) async fn done(organizer: &Client, show: &str, within: Duration) -> Value {
    eventually("the cancellation to finish", within, || async {
        let progress = organizer.get(&progress_path(show)).await.json();
        (progress["state"] == "done").then_some(progress)
    })
    .await
}

async fn count(pool: &PgPool, sql: &str, show: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(show)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_called_off_show_stops_selling_at_once_and_refunds_every_order_in_full() {
    // A policy that refunds nothing: calling a show off refunds in full whatever it says.
    let s: Stadium = stadium_with(|c| c.orders.refund_policy = RefundPolicy(vec![])).await;
    let organizer = s.app.organizer();
    let (ana, bo, cy) = (s.fan("ana").await, s.fan("bo").await, s.fan("cy").await);
    let (paid, payment) = ordered(&s, &ana, &[0, 1]).await;
    let confirmed = confirm(&ana, &payment, "pm_card_ok", "c1").await.json();
    let paid_id = paid["order_id"].as_str().unwrap().to_owned();
    held(&s, &bo, &[2]).await;
    ordered(&s, &cy, &[3]).await;
    // Ana gives one of her tickets to Dee, who holds it when the show is called off.
    let (dee_id, _) = s.account("dee").await;
    let dee_email: String = sqlx::query_scalar("SELECT email FROM accounts WHERE id = $1")
        .bind(dee_id)
        .fetch_one(&s.app.db.pool)
        .await
        .unwrap();
    let given = confirmed["order"]["tickets"][0]["ticket_id"]
        .as_str()
        .unwrap();
    ana.post(
        &format!("/v1/tickets/{given}/transfer"),
        &json!({ "to_email": dee_email }),
    )
    .await
    .expect_status(200);

    // Refused before anything is written: a reason over its limit, an unknown show.
    let long = json!({ "reason": "x".repeat(501) });
    organizer
        .post(&cancel_path(&s.show), &long)
        .await
        .problem(422, "invalid_field");
    organizer
        .post(&cancel_path(&Uuid::new_v4().to_string()), &json!({}))
        .await
        .problem(404, "show_not_found");
    organizer
        .get(&progress_path(&s.show))
        .await
        .problem(404, "cancellation_not_found");
    let catalog = format!("/v1/shows/{}", s.show);
    assert_eq!(organizer.get(&catalog).await.json()["status"], "on_sale");

    let reason = json!({ "reason": "The stage was damaged by a storm." });
    let called_off = organizer.post(&cancel_path(&s.show), &reason).await;
    called_off.expect_status(202);
    let body = called_off.json();
    assert_eq!(body["show_id"], s.show.as_str());
    assert_eq!(body["paid_orders_at_request"], 1);
    assert_eq!(body["reason"], "The stage was damaged by a storm.");

    // At once: no new hold, and no fan cancels for a partial refund meanwhile.
    let eli = s.fan("eli").await;
    s.hold(&eli, &[10]).await.problem(409, "show_not_on_sale");
    ana.post_idempotent(&format!("/v1/orders/{paid_id}/cancel"), "x1", &json!({}))
        .await
        .problem(409, "order_not_cancellable");
    assert_eq!(organizer.get(&catalog).await.json()["status"], "cancelled");

    let progress = done(&organizer, &s.show, Duration::from_secs(20)).await;
    assert_eq!(progress["paid_orders_cancelled"], 1, "{progress}");
    assert_eq!(progress["unpaid_orders_cancelled"], 1, "{progress}");
    assert_eq!(progress["holds_released"], 2, "{progress}");
    // Ana (paid), Dee (holding a ticket of Ana's order) and Cy (awaiting payment); Bo only
    // held seats.
    assert_eq!(progress["fans_notified"], 3, "{progress}");

    let refunded = refund_settled(&ana, &paid_id).await;
    assert_eq!(refunded["status"], "cancelled");
    assert_eq!(refunded["cancel_reason"], "show_cancelled");
    assert_eq!(refunded["refund"]["amount_cents"], refunded["total_cents"]);
    let tickets = refunded["tickets"].as_array().unwrap();
    assert!(
        tickets.iter().all(|t| t["status"] == "revoked"),
        "{refunded}"
    );

    let pool = &s.app.db.pool;
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM seat_inventory WHERE show_id = $1::uuid AND status <> 'unavailable'",
            &s.show,
        )
        .await,
        0,
        "every seat of the show is off sale"
    );
    let told: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE event_type = 'show_cancelled' AND payload->>'show_id' = $1",
    )
    .bind(&s.show)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(told.len(), 3);
    assert!(told.iter().any(|p| p["fan_id"] == dee_id.to_string()));
    assert!(
        told.iter()
            .all(|p| p["reason"] == "The stage was damaged by a storm."
                && p["event_name"] == "Finale")
    );

    // A repeat changes nothing.
    let again = organizer.post(&cancel_path(&s.show), &json!({})).await;
    again.expect_status(202);
    assert_eq!(again.json()["state"], "done");
    assert_eq!(again.json()["reason"], "The stage was damaged by a storm.");
    assert_invariants(&s).await;

    // A show that has started is past calling off.
    let layout = venue_body("Club", "Oslo", &[("A", "T1")], 1, 2);
    let (_, started) = create_show(
        &organizer,
        layout,
        "Matinee",
        "Band",
        "2021-01-01T19:00:00Z",
        "2020-01-01T00:00:00Z",
    )
    .await;
    organizer
        .post(&cancel_path(&started), &json!({}))
        .await
        .problem(409, "show_not_cancellable");
}

/// 2,000 paid orders of 500 fans, four each, written as a sale leaves them: a converted
/// hold, a confirmed order and its item, a succeeded payment (and the sandbox's intent),
/// a valid ticket and a sold seat.
async fn sell_every_seat(pool: &PgPool, show: &str) {
    let mut tx = pool.begin().await.unwrap();
    for sql in [
        "CREATE TEMP TABLE sale ON COMMIT DROP AS
         SELECT i.seat_id, gen_random_uuid() AS hold_id, gen_random_uuid() AS order_id,
                gen_random_uuid() AS payment_id, 'pi_seed_' || i.seat_id AS intent,
                fan.id::text AS fan_id, p.price_cents
         FROM seat_inventory i
         JOIN show_price_tiers p ON p.show_id = i.show_id AND p.tier = i.price_tier
         JOIN (SELECT n, gen_random_uuid() AS id FROM generate_series(0, 499) n) fan
           ON fan.n = i.layout_idx % 500
         WHERE i.show_id = $1::uuid",
        "INSERT INTO holds (id, show_id, fan_id, status, seat_count, total_cents, currency, expires_at, ended_at, seat_ids)
         SELECT hold_id, $1::uuid, fan_id, 'converted', 1, price_cents, 'EUR', now(), now(), ARRAY[seat_id] FROM sale",
        "INSERT INTO orders (id, show_id, hold_id, fan_id, status, total_cents, currency, expires_at, confirmed_at)
         SELECT order_id, $1::uuid, hold_id, fan_id, 'confirmed', price_cents, 'EUR', now(), now() FROM sale",
        "INSERT INTO order_items (order_id, show_id, seat_id, price_cents)
         SELECT order_id, $1::uuid, seat_id, price_cents FROM sale",
        "INSERT INTO sandbox_intents (ref, amount_cents, currency, status, version)
         SELECT intent, price_cents, 'EUR', 'succeeded', 2 FROM sale",
        "INSERT INTO payments (id, order_id, provider, provider_ref, status, provider_version, amount_cents, currency)
         SELECT payment_id, order_id, 'sandbox', intent, 'succeeded', 2, price_cents, 'EUR' FROM sale",
        "INSERT INTO tickets (id, order_id, show_id, seat_id, status, holder)
         SELECT gen_random_uuid(), order_id, $1::uuid, seat_id, 'valid', fan_id FROM sale",
        "UPDATE seat_inventory i SET status = 'sold', order_id = s.order_id
         FROM sale s WHERE i.show_id = $1::uuid AND i.seat_id = s.seat_id",
    ] {
        let query = sqlx::query(sql);
        let query = if sql.contains("$1") { query.bind(show) } else { query };
        query.execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn calling_off_2000_paid_orders_survives_a_crash_halfway_and_refunds_each_once() {
    let db = db().await;
    let batch = |c: &mut origin::config::Config| c.orders.show_cancellation_batch = 50;
    let first = origin(&db).config(batch).run().await;
    let organizer = onsale_tests::client(first.addr()).bearer(ADMIN_TOKEN);
    let layout = venue_body("Dome", "Turin", &[("A", "T1"), ("B", "T2")], 20, 50);
    let (_, show) = create_show(
        &organizer,
        layout,
        "Farewell",
        "Band",
        "2099-09-01T19:00:00Z",
        "2020-01-01T00:00:00Z",
    )
    .await;
    let pool = &db.pool;
    sell_every_seat(pool, &show).await;

    // The 1,001st order in the job's order is locked by another writer, so the job stops
    // there with its transaction open, 1,000 orders done, and the origin crashes.
    let mut writer = pool.begin().await.unwrap();
    sqlx::query(
        "SELECT 1 FROM seat_inventory WHERE show_id = $1::uuid AND order_id =
             (SELECT id FROM orders WHERE show_id = $1::uuid ORDER BY id OFFSET 1000 LIMIT 1)
         FOR UPDATE",
    )
    .bind(&show)
    .execute(&mut *writer)
    .await
    .unwrap();
    let called_off = organizer.post(&cancel_path(&show), &json!({})).await;
    called_off.expect_status(202);
    assert_eq!(called_off.json()["paid_orders_at_request"], 2000);
    eventually(
        "half the orders cancelled",
        Duration::from_secs(60),
        || async {
            let progress = organizer.get(&progress_path(&show)).await.json();
            (progress["paid_orders_cancelled"] == 1000).then_some(())
        },
    )
    .await;
    first.crash().await;
    writer.commit().await.unwrap();

    // Another origin takes the job up where the crash left it.
    let second = origin(&db).config(batch).run().await;
    let organizer = onsale_tests::client(second.addr()).bearer(ADMIN_TOKEN);
    let progress = done(&organizer, &show, Duration::from_secs(120)).await;
    assert_eq!(progress["paid_orders_cancelled"], 2000, "{progress}");
    assert_eq!(progress["fans_notified"], 500, "{progress}");
    // Refunds the crashed origin had leased run out of their lease here rather than after it.
    sqlx::query("UPDATE refunds SET next_attempt_at = now() WHERE status = 'pending'")
        .execute(pool)
        .await
        .unwrap();
    eventually("every refund issued", Duration::from_secs(120), || async {
        let progress = organizer.get(&progress_path(&show)).await.json();
        (progress["refunds_issued"] == 2000).then_some(())
    })
    .await;

    // The tables were filled in seconds; the checks below need plans made with statistics.
    sqlx::query("ANALYZE").execute(pool).await.unwrap();
    let orders_refunded_once = "SELECT count(*) FROM orders o
         JOIN payments p ON p.order_id = o.id
         JOIN refunds r ON r.payment_id = p.id AND r.status = 'succeeded' AND r.amount_cents = o.total_cents
         JOIN sandbox_refunds sr ON sr.intent_ref = p.provider_ref AND sr.amount_cents = o.total_cents
         JOIN sandbox_intents si ON si.ref = p.provider_ref AND si.refunded_cents = si.amount_cents
         WHERE o.show_id = $1::uuid AND o.status = 'cancelled' AND o.cancel_reason = 'show_cancelled'
           AND p.status = 'refunded'";
    assert_eq!(count(pool, orders_refunded_once, &show).await, 2000);
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM sandbox_refunds r JOIN payments p ON p.provider_ref = r.intent_ref
             JOIN orders o ON o.id = p.order_id WHERE o.show_id = $1::uuid",
            &show
        )
        .await,
        2000,
        "one refund at the provider per order"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM tickets WHERE show_id = $1::uuid AND status = 'valid'",
            &show
        )
        .await,
        0
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM seat_inventory WHERE show_id = $1::uuid AND status <> 'unavailable'",
            &show
        )
        .await,
        0
    );
    let (events, fans): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT payload->>'fan_id') FROM outbox
         WHERE event_type = 'show_cancelled' AND payload->>'show_id' = $1",
    )
    .bind(&show)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((events, fans), (500, 500), "each fan told once");
    second.shutdown().await.unwrap();
}

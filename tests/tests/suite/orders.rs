//! Orders at the origin: one per active hold, idempotent, owned, extending the hold once to
//! the payment window, and cancelled with the hold when it expires unpaid.

use crate::holds::{stadium, stadium_with, Stadium};
use onsale_tests::{eventually, Client, Reply};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

pub(crate) async fn order(fan: &Client, hold_id: &str, key: &str) -> Reply {
    fan.post_idempotent("/v1/orders", key, &json!({ "hold_id": hold_id }))
        .await
}

/// A hold of `seats` for `fan`, returned as its JSON.
pub(crate) async fn held(s: &Stadium, fan: &Client, seats: &[usize]) -> Value {
    let reply = s.hold(fan, seats).await;
    reply.expect_status(201);
    reply.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_takes_its_hold_once_and_extends_it_to_the_payment_window() {
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let hold = held(&s, &ana, &[0, 1]).await;
    let hold_id = hold["hold_id"].as_str().unwrap();
    let created = order(&ana, hold_id, "k1").await;
    created.expect_status(201);
    let body = created.json();
    assert_eq!(body["status"], "pending_payment");
    assert_eq!(body["total_cents"], hold["total_cents"]);
    assert_eq!(body["currency"], hold["currency"]);
    assert_eq!(body["payment"]["status"], "requires_confirmation");
    assert_eq!(
        body["items"].as_array().unwrap().len(),
        2,
        "one item per held seat"
    );
    let item_sum: i64 = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["price_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(item_sum, body["total_cents"].as_i64().unwrap());
    // Extended from the hold's 480 s to the 600 s payment window, on the seats too.
    let expires = body["expires_at_ms"].as_i64().unwrap();
    assert!(expires > hold["expires_at_ms"].as_i64().unwrap());
    let window = expires - body["server_time_ms"].as_i64().unwrap();
    assert!((590_000..=600_000).contains(&window), "{window} ms to pay");
    assert_eq!(
        s.count(
            "SELECT count(*) FROM seat_inventory i JOIN orders o ON o.hold_id = i.hold_id
             WHERE i.show_id = $1::uuid AND i.status = 'held' AND i.hold_expires_at = o.expires_at"
        )
        .await,
        2,
        "the seats' expiry moved with the hold's"
    );

    // A retry replays; another order for the same hold is refused and extends nothing.
    let again = order(&ana, hold_id, "k1").await;
    again.expect_status(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json()["order_id"], body["order_id"]);
    order(&ana, hold_id, "k2")
        .await
        .problem(409, "hold_already_ordered");
    let order_id = body["order_id"].as_str().unwrap();
    let read = ana.get(&format!("/v1/orders/{order_id}")).await;
    read.expect_status(200);
    assert_eq!(read.json()["expires_at_ms"], expires);
    assert_eq!(read.json()["items"], body["items"]);

    // Only its fan sees it; its hold can no longer be released from under it.
    s.fan("bob")
        .await
        .get(&format!("/v1/orders/{order_id}"))
        .await
        .problem(404, "order_not_found");
    ana.get("/v1/orders/not-an-id")
        .await
        .problem(404, "order_not_found");
    ana.request(Method::DELETE, &format!("/v1/holds/{hold_id}"), None)
        .await
        .problem(409, "hold_ordered");
    assert_eq!(
        s.count("SELECT count(*) FROM orders WHERE show_id = $1::uuid")
            .await,
        1
    );
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_holder_orders_an_active_hold() {
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let hold = held(&s, &ana, &[5]).await;
    let hold_id = hold["hold_id"].as_str().unwrap();
    order(&s.fan("bob").await, hold_id, "k")
        .await
        .problem(404, "hold_not_found");
    order(&ana, &Uuid::new_v4().to_string(), "k-unknown")
        .await
        .problem(404, "hold_not_found");
    order(&ana, "nope", "k-malformed")
        .await
        .problem(404, "hold_not_found");
    ana.post("/v1/orders", &json!({ "hold_id": hold_id }))
        .await
        .problem(400, "idempotency_key_required");
    ana.post_idempotent(
        "/v1/orders",
        "k-extra",
        &json!({ "hold_id": hold_id, "price": 1 }),
    )
    .await
    .problem(400, "invalid_body");
    let released = ana
        .request(Method::DELETE, &format!("/v1/holds/{hold_id}"), None)
        .await;
    released.expect_status(204);
    order(&ana, hold_id, "k-released")
        .await
        .problem(409, "hold_not_active");
    assert_eq!(
        s.count("SELECT count(*) FROM orders WHERE show_id = $1::uuid")
            .await,
        0,
        "refusals change nothing"
    );
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unpaid_order_expires_with_its_hold() {
    let s = stadium_with(|c| {
        c.holds.ttl_s = 0.5;
        c.holds.sweep_interval_ms = 50;
        c.orders.payment_window_s = 1.0;
    })
    .await;
    let ana = s.fan("ana").await;
    let hold = held(&s, &ana, &[7, 8]).await;
    let created = order(&ana, hold["hold_id"].as_str().unwrap(), "k").await;
    created.expect_status(201);
    let order_id = created.json()["order_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/orders/{order_id}");
    let cancelled = onsale_tests::eventually(
        "the unpaid order to be cancelled",
        Duration::from_secs(10),
        || async {
            let body = ana.get(&path).await.json();
            (body["status"] == "cancelled").then_some(body)
        },
    )
    .await;
    assert_eq!(cancelled["cancel_reason"], "hold_expired");
    assert_eq!(
        s.count("SELECT count(*) FROM seat_inventory WHERE show_id = $1::uuid AND status <> 'available'")
            .await,
        0,
        "its seats are back on sale"
    );
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM outbox WHERE aggregate_id = $1::uuid")
            .bind(&order_id)
            .fetch_all(&s.app.db.pool)
            .await
            .unwrap();
    assert_eq!(events, vec!["hold_expired".to_owned()]);
    assert_invariants(&s).await;
}

pub(crate) async fn confirm(fan: &Client, payment_id: &str, method: &str, key: &str) -> Reply {
    fan.post_idempotent(
        &format!("/v1/payments/{payment_id}/confirm"),
        key,
        &json!({ "payment_method": method }),
    )
    .await
}

/// An order for a fresh hold of `seats`: (order JSON, payment id).
pub(crate) async fn ordered(s: &Stadium, fan: &Client, seats: &[usize]) -> (Value, String) {
    let hold = held(s, fan, seats).await;
    let created = order(
        fan,
        hold["hold_id"].as_str().unwrap(),
        &Uuid::new_v4().to_string(),
    )
    .await;
    created.expect_status(201);
    let body = created.json();
    let payment = body["payment"]["payment_id"].as_str().unwrap().to_owned();
    (body, payment)
}

/// The order once its refund has gone through the provider.
pub(crate) async fn refund_settled(fan: &Client, order_id: &str) -> Value {
    let path = format!("/v1/orders/{order_id}");
    eventually("the refund", Duration::from_secs(10), || async {
        let order = fan.get(&path).await.json();
        (order["refund"]["status"] == "succeeded").then_some(order)
    })
    .await
}

/// The checkout invariants, over the whole database: no seat has two valid tickets, every
/// confirmed order has one valid ticket per seat or place, every sold seat belongs to a confirmed
/// order, and the reconciliation job finds no money kept without tickets and no seat held
/// without a live hold.
pub(crate) async fn assert_invariants(s: &Stadium) {
    let pool = &s.app.db.pool;
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    assert_eq!(
        count(
            "SELECT count(*) FROM (SELECT 1 FROM tickets WHERE status = 'valid'
             GROUP BY show_id, seat_id, ga_section, ga_number HAVING count(*) > 1) twice"
        )
        .await,
        0,
        "seats or places with two valid tickets"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM orders o
             WHERE o.status = 'confirmed'
               AND (SELECT seat_count FROM holds WHERE id = o.hold_id)
                   <> (SELECT count(*) FROM tickets WHERE order_id = o.id AND status = 'valid')"
        )
        .await,
        0,
        "confirmed orders without one ticket per seat or place"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM seat_inventory i LEFT JOIN orders o ON o.id = i.order_id
             WHERE i.status = 'sold' AND (o.status IS DISTINCT FROM 'confirmed')"
        )
        .await,
        0,
        "sold seats outside a confirmed order"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM (
                 SELECT show_id, fan_id, sum(seat_count) AS n FROM fan_seats
                 WHERE counts_until > now() GROUP BY show_id, fan_id) counted
             FULL JOIN (
                 SELECT show_id, fan_id, sum(n) AS n FROM (
                     SELECT show_id, fan_id, seat_count AS n FROM holds
                     WHERE status = 'active' AND expires_at > now()
                     UNION ALL
                     SELECT o.show_id, o.fan_id, count(*) FROM orders o
                     JOIN order_items i ON i.order_id = o.id
                     WHERE o.status = 'confirmed' GROUP BY o.id) seats
                 GROUP BY show_id, fan_id) actual USING (show_id, fan_id)
             WHERE counted.n IS DISTINCT FROM actual.n"
        )
        .await,
        0,
        "fans whose counted seats are not their live holds and paid seats"
    );
    let report = origin::reconcile::reconcile_once(&s.app.origin.state)
        .await
        .expect("reconciliation runs");
    assert_eq!(report.orders_paid_without_tickets, 0, "{report:?}");
    assert_eq!(report.seats_held_without_live_hold, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paid_order_sells_its_seats_and_issues_one_ticket_per_seat() {
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let (order_body, payment) = ordered(&s, &ana, &[10, 11, 12]).await;
    let paid = confirm(&ana, &payment, "pm_card_ok", "c1").await;
    paid.expect_status(200);
    let body = paid.json();
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["order"]["status"], "confirmed");
    assert_eq!(body["order"]["payment"]["status"], "succeeded");
    let tickets = body["order"]["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 3);
    assert!(tickets.iter().all(|t| t["status"] == "valid"));
    assert_eq!(
        s.count("SELECT count(*) FROM seat_inventory WHERE show_id = $1::uuid AND status = 'sold'")
            .await,
        3
    );
    assert_eq!(
        s.count("SELECT count(*) FROM holds WHERE show_id = $1::uuid AND status = 'converted'")
            .await,
        1
    );
    let order_id = order_body["order_id"].as_str().unwrap();
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM outbox WHERE aggregate_id = $1::uuid")
            .bind(order_id)
            .fetch_all(&s.app.db.pool)
            .await
            .unwrap();
    assert_eq!(events, vec!["order_confirmed".to_owned()]);

    // A retry replays the same answer; a new confirmation is refused and sells nothing twice:
    // the admission that paid is spent, and with a new one the payment is past confirming.
    let again = confirm(&ana, &payment, "pm_card_ok", "c1").await;
    again.expect_status(200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json(), body);
    confirm(&ana, &payment, "pm_card_ok", "c2")
        .await
        .problem(401, "admission_spent");
    confirm(&s.fan("ana").await, &payment, "pm_card_ok", "c2")
        .await
        .problem(409, "payment_not_confirmable");
    let read = ana.get(&format!("/v1/orders/{order_id}")).await.json();
    assert_eq!(read["tickets"], body["order"]["tickets"]);
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_payment_releases_the_seats_at_once() {
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let (_, payment) = ordered(&s, &ana, &[20, 21]).await;
    let declined = confirm(&ana, &payment, "pm_card_declined", "c").await;
    declined.expect_status(200);
    let body = declined.json();
    assert_eq!(body["status"], "failed");
    assert_eq!(body["order"]["status"], "payment_failed");
    assert!(body["order"]["tickets"].as_array().unwrap().is_empty());
    assert_eq!(
        s.count("SELECT count(*) FROM seat_inventory WHERE show_id = $1::uuid AND status <> 'available'")
            .await,
        0
    );
    // Another fan gets the seats straight away.
    held(&s, &s.fan("bob").await, &[20, 21]).await;
    confirm(&ana, &payment, "pm_card_ok", "c-retry")
        .await
        .problem(409, "payment_not_confirmable");
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_confirmations_issue_one_set_of_tickets() {
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let (_, payment) = ordered(&s, &ana, &[30, 31]).await;
    let replies = futures_util::future::join_all((0..8).map(|i| {
        let (ana, payment) = (ana.clone(), payment.clone());
        tokio::spawn(async move { confirm(&ana, &payment, "pm_card_ok", &format!("k{i}")).await })
    }))
    .await;
    let statuses: Vec<u16> = replies
        .iter()
        .map(|r| r.as_ref().unwrap().status.as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    // The others found the payment past confirming, or, once the sale committed, the
    // admission spent.
    let refused: Vec<String> = replies
        .iter()
        .map(|r| r.as_ref().unwrap())
        .filter(|r| r.status != 200)
        .map(|r| r.json()["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(refused.len(), 7, "{statuses:?}");
    assert!(
        refused
            .iter()
            .all(|code| code == "payment_not_confirmable" || code == "admission_spent"),
        "{refused:?}"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM tickets WHERE show_id = $1::uuid")
            .await,
        2
    );
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn confirmation_refuses_bad_input_and_other_fans() {
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let (_, payment) = ordered(&s, &ana, &[40]).await;
    confirm(&ana, &payment, "pm_card_gold", "c1")
        .await
        .problem(422, "unknown_payment_method");
    confirm(&s.fan("bob").await, &payment, "pm_card_ok", "c2")
        .await
        .problem(404, "payment_not_found");
    confirm(&ana, &Uuid::new_v4().to_string(), "pm_card_ok", "c3")
        .await
        .problem(404, "payment_not_found");
    ana.post(
        &format!("/v1/payments/{payment}/confirm"),
        &json!({ "payment_method": "pm_card_ok" }),
    )
    .await
    .problem(400, "idempotency_key_required");
    assert_eq!(
        s.count(
            "SELECT count(*) FROM orders WHERE show_id = $1::uuid AND status = 'pending_payment'"
        )
        .await,
        1,
        "nothing changed"
    );
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fan_pages_through_its_orders_newest_first() {
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let mut made = Vec::new();
    for seat in [50, 51, 52] {
        made.push(ordered(&s, &ana, &[seat]).await.0["order_id"].clone());
    }
    let (_, payment) = ordered(&s, &s.fan("bob").await, &[60]).await;
    assert!(!payment.is_empty());
    let first = ana.get("/v1/orders?limit=2").await;
    first.expect_status(200);
    let first = first.json();
    let ids = |page: &Value| -> Vec<Value> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["order_id"].clone())
            .collect()
    };
    assert_eq!(ids(&first), vec![made[2].clone(), made[1].clone()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = ana
        .get(&format!("/v1/orders?limit=2&cursor={cursor}"))
        .await
        .json();
    assert_eq!(ids(&second), vec![made[0].clone()]);
    assert_eq!(second["next_cursor"], Value::Null);
    assert_eq!(second["items"][0]["status"], "pending_payment");
    assert_eq!(second["items"][0]["tickets"], 0);
    ana.get("/v1/orders?cursor=forged")
        .await
        .problem(400, "invalid_query");
    ana.get("/v1/orders?limit=0")
        .await
        .problem(400, "invalid_query");
    ana.get("/v1/orders?status=paid")
        .await
        .problem(400, "invalid_query");
    let carol = s.fan("carol").await.get("/v1/orders").await.json();
    assert!(carol["items"].as_array().unwrap().is_empty());
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tickets_show_a_signed_qr_and_scan_once() {
    use origin::tickets::{qr_svg, TicketFacts, TicketSigner};
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let (_, payment) = ordered(&s, &ana, &[70]).await;
    let paid = confirm(&ana, &payment, "pm_card_ok", "c").await.json();
    let ticket = paid["order"]["tickets"][0]["ticket_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (show, seat, issued_at): (Uuid, i64, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT show_id, seat_id, issued_at FROM tickets WHERE id = $1::uuid")
            .bind(&ticket)
            .fetch_one(&s.app.db.pool)
            .await
            .unwrap();
    let signer = TicketSigner::from_files(&onsale_tests::keys().signing_pem, &[]).unwrap();
    let payload = signer.sign(TicketFacts {
        ticket: Uuid::parse_str(&ticket).unwrap(),
        show,
        seat,
        issued_at_s: issued_at.timestamp(),
    });

    // The QR code encodes exactly that payload, for the ticket's owner only: it takes the
    // owner's session, no admission.
    let (_, session) = s.account("ana").await;
    let signed_in = onsale_tests::client(s.app.origin.addr()).bearer(&session);
    let qr_path = format!("/v1/tickets/{ticket}/qr.svg");
    let qr = signed_in.get(&qr_path).await;
    qr.expect_status(200);
    assert_eq!(qr.header("content-type"), Some("image/svg+xml"));
    assert_eq!(qr.header("cache-control"), Some("private, no-store"));
    assert_eq!(
        String::from_utf8(qr.body.clone()).unwrap(),
        qr_svg(&payload).unwrap()
    );
    let http = onsale_tests::client(s.app.origin.addr());
    let by_cookie = http
        .send(
            http.raw(Method::GET, &qr_path)
                .header("cookie", format!("onsale_session={session}")),
        )
        .await;
    by_cookie.expect_status(200);
    assert_eq!(by_cookie.body, qr.body);
    s.fan("bob")
        .await
        .get(&qr_path)
        .await
        .problem(404, "ticket_not_found");
    // An admission or a queue token of the owner is no session.
    for token in [
        onsale_tests::admission(&s.account("ana").await.0.to_string(), &s.show),
        onsale_tests::queue_token(&s.account("ana").await.0.to_string(), &s.show),
    ] {
        let refused = onsale_tests::client(s.app.origin.addr())
            .bearer(&token)
            .get(&qr_path)
            .await
            .problem(401, "sign_in_required");
        assert_eq!(refused["sign_in"], "/v1/sessions");
    }
    // Through the edge too.
    let through_edge = onsale_tests::client(s.app.edge.public)
        .bearer(&onsale_tests::admission(
            &s.account("ana").await.0.to_string(),
            &s.show,
        ))
        .cookie(&format!("onsale_session={session}"));
    let via_edge = onsale_tests::eventually(
        "the edge to reach the origin",
        Duration::from_secs(10),
        || async {
            let reply = through_edge.get(&qr_path).await;
            (reply.status == 200).then_some(reply)
        },
    )
    .await;
    assert_eq!(via_edge.body, qr.body);

    let door = onsale_tests::Door::open(s.app.origin.addr(), &s.show, "north").await;
    let scan = |payload: String| {
        let door = &door;
        async move { door.verify(&payload).await }
    };
    let first = scan(payload.clone()).await;
    assert_eq!(first["result"], "valid");
    assert_eq!(first["seat_id"], seat);
    assert_eq!(scan(payload.clone()).await["result"], "already_scanned");
    let mut tampered = payload.clone().into_bytes();
    tampered[8] = if tampered[8] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        scan(String::from_utf8(tampered).unwrap()).await["result"],
        "forged"
    );
    let (stranger, _) = onsale_contract::tokens::generate_pem_pair();
    let stranger_path = std::env::temp_dir().join(format!("stranger-{}.pem", Uuid::new_v4()));
    std::fs::write(&stranger_path, stranger).unwrap();
    let forged = TicketSigner::from_files(&stranger_path, &[])
        .unwrap()
        .sign(TicketFacts {
            ticket: Uuid::parse_str(&ticket).unwrap(),
            show,
            seat,
            issued_at_s: issued_at.timestamp(),
        });
    std::fs::remove_file(&stranger_path).unwrap();
    assert_eq!(scan(forged).await["result"], "forged");

    // A revoked ticket says so; scanning needs a scanner's session.
    // A new join buys again: the first admission was spent by its order.
    let ana = s.fan("ana").await;
    let (_, payment) = ordered(&s, &ana, &[71]).await;
    let paid = confirm(&ana, &payment, "pm_card_ok", "c2").await.json();
    let second = paid["order"]["tickets"][0]["ticket_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The fan cancels the order: its tickets are revoked.
    let paid_order = paid["order"]["order_id"].as_str().unwrap();
    ana.post_idempotent(&format!("/v1/orders/{paid_order}/cancel"), "x", &json!({}))
        .await
        .expect_status(200);
    let (seat2, issued2): (i64, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
        "SELECT seat_id, issued_at FROM tickets WHERE id = $1::uuid AND status = 'revoked'",
    )
    .bind(&second)
    .fetch_one(&s.app.db.pool)
    .await
    .unwrap();
    let revoked = signer.sign(TicketFacts {
        ticket: Uuid::parse_str(&second).unwrap(),
        show,
        seat: seat2,
        issued_at_s: issued2.timestamp(),
    });
    assert_eq!(scan(revoked).await["result"], "revoked");
    onsale_tests::client(s.app.origin.addr())
        .post("/v1/tickets/verify", &json!({ "payload": payload }))
        .await
        .problem(401, "sign_in_required");
    let at_the_gate = onsale_tests::client(s.app.edge.public)
        .bearer(door.session())
        .post("/v1/tickets/verify", &json!({ "payload": payload }))
        .await;
    at_the_gate.expect_status(200);
    assert_eq!(at_the_gate.json()["result"], "already_scanned");
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_order_is_refunded_by_policy_and_its_seats_go_back_on_sale() {
    // The show is in 2099: the default policy's 30-days tier refunds everything.
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let (order_body, payment) = ordered(&s, &ana, &[80, 81]).await;
    confirm(&ana, &payment, "pm_card_ok", "c")
        .await
        .expect_status(200);
    let order_id = order_body["order_id"].as_str().unwrap();
    let cancel_path = format!("/v1/orders/{order_id}/cancel");
    let cancelled = ana.post_idempotent(&cancel_path, "x1", &json!({})).await;
    cancelled.expect_status(200);
    let body = cancelled.json();
    assert_eq!(body["refund_cents"], order_body["total_cents"]);
    assert_eq!(body["order"]["status"], "cancelled");
    assert_eq!(body["order"]["cancel_reason"], "fan_cancelled");
    // The refund is owed with the cancellation and carried out by the refund worker.
    assert_eq!(body["order"]["refund"]["status"], "pending");
    assert_eq!(
        body["order"]["refund"]["amount_cents"],
        body["refund_cents"]
    );
    assert_eq!(body["order"]["refund"]["reason"], "fan_cancelled");
    assert!(body["order"]["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "revoked"));
    assert_eq!(
        s.count("SELECT count(*) FROM seat_inventory WHERE show_id = $1::uuid AND status <> 'available'")
            .await,
        0
    );
    // A retry replays; a second cancellation is refused; the seats sell again.
    let again = ana.post_idempotent(&cancel_path, "x1", &json!({})).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    ana.post_idempotent(&cancel_path, "x2", &json!({}))
        .await
        .problem(409, "order_not_cancellable");
    let refunded = refund_settled(&ana, order_id).await;
    assert_eq!(refunded["payment"]["status"], "refunded");
    assert_eq!(
        refunded["refund"]["amount_cents"],
        order_body["total_cents"]
    );
    let (_, bob_payment) = ordered(&s, &s.fan("bob").await, &[80, 81]).await;
    confirm(&s.fan("bob").await, &bob_payment, "pm_card_ok", "b")
        .await
        .expect_status(200);
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM outbox WHERE aggregate_id = $1::uuid ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(&s.app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        events,
        ["order_confirmed", "order_cancelled", "refund_issued"]
    );
    assert_invariants(&s).await;
    // Unpaid orders are not cancelled this way, and only their fan sees them.
    let ana = s.fan("ana").await;
    let (pending, _) = ordered(&s, &ana, &[82]).await;
    let pending_cancel = format!(
        "/v1/orders/{}/cancel",
        pending["order_id"].as_str().unwrap()
    );
    ana.post_idempotent(&pending_cancel, "x3", &json!({}))
        .await
        .problem(409, "order_not_cancellable");
    s.fan("bob")
        .await
        .post_idempotent(&pending_cancel, "x4", &json!({}))
        .await
        .problem(404, "order_not_found");
}

/// A write whose caller hangs up (an edge timing out on a stalled database) still runs to
/// its end and stores its answer, so the caller's retry is answered at once rather than
/// told the key is in flight until `in_flight_timeout_s`.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_whose_caller_hangs_up_still_finishes() {
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let hold = held(&s, &ana, &[0]).await;
    let hold_id = hold["hold_id"].as_str().unwrap();
    // The order's transaction waits on the hold's row after its key is claimed.
    let mut blocker = s.app.db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM holds WHERE id = $1::uuid FOR UPDATE")
        .bind(hold_id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let hung_up = ana
        .raw(Method::POST, "/v1/orders")
        .header("idempotency-key", "o")
        .json(&json!({ "hold_id": hold_id }))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(hung_up.unwrap_err().is_timeout());
    blocker.rollback().await.unwrap();
    eventually(
        "the order's answer stored",
        Duration::from_secs(10),
        || async {
            let stored: Option<i16> =
                sqlx::query_scalar("SELECT response_status FROM idempotency_keys WHERE key = 'o'")
                    .fetch_one(&s.app.db.pool)
                    .await
                    .unwrap();
            stored.map(|_| ())
        },
    )
    .await;
    let retried = order(&ana, hold_id, "o").await;
    retried.expect_status(201);
    assert_eq!(retried.header("idempotent-replayed"), Some("true"));
}

/// An origin starting where one died releases the keys its predecessor left in flight, so
/// those fans' retries run at once rather than after `in_flight_timeout_s`; another
/// origin's keys stay claimed.
#[tokio::test(flavor = "multi_thread")]
async fn an_origin_starting_again_releases_the_keys_it_left_in_flight() {
    let s = stadium().await;
    let addr = onsale_tests::free_port();
    let claim = |key: &'static str, holder: String| {
        let pool = s.app.db.pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO idempotency_keys (fan_id, key, route, request_hash, claim, holder)
                 VALUES ('fan', $1, 'POST /v1/orders', '\\x00', gen_random_uuid(), $2)",
            )
            .bind(key)
            .bind(holder)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    claim("left", origin::instance_name(addr)).await;
    claim(
        "elsewhere",
        origin::instance_name(onsale_tests::free_port()),
    )
    .await;
    let _again = onsale_tests::origin(&s.app.db)
        .config(|c| c.http.listen = addr)
        .run()
        .await;
    let kept: Vec<String> =
        sqlx::query_scalar("SELECT key FROM idempotency_keys WHERE fan_id = 'fan'")
            .fetch_all(&s.app.db.pool)
            .await
            .unwrap();
    assert_eq!(kept, vec!["elsewhere".to_owned()]);
}

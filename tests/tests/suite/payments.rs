//! Payments the way providers behave: 3-D Secure in two steps, slow payments settled by
//! webhook only, signed webhooks over real HTTP that arrive twice and out of order, late
//! payments refunded, stuck payments reconciled, refunds retried until they succeed.
//!
//! Time is moved by writing it: a hold "expires" by setting its expiry into the past, a slow
//! payment "settles" by setting the sandbox's due time to now. Nothing waits on the clock.

use crate::holds::{stadium, stadium_with, Stadium};
use crate::orders::{assert_invariants, confirm, held, order, ordered, refund_settled};
use onsale_tests::{client, create_show, eventually, venue_body, Client, Reply};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(10);
/// Long enough that the sandbox never settles a slow payment on its own during a test.
const NEVER_MS: u64 = 3_600_000;

async fn read_order(fan: &Client, order_id: &str) -> Value {
    fan.get(&format!("/v1/orders/{order_id}")).await.json()
}

/// The order once its status is `status`.
async fn order_becomes(fan: &Client, order_id: &str, status: &str) -> Value {
    eventually(&format!("order {status}"), PATIENCE, || async {
        let order = read_order(fan, order_id).await;
        (order["status"] == status).then_some(order)
    })
    .await
}

async fn scalar(s: &Stadium, sql: &str, bind: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&s.app.db.pool)
        .await
        .unwrap()
}

async fn total(s: &Stadium, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&s.app.db.pool)
        .await
        .unwrap()
}

async fn provider_ref(s: &Stadium, payment: &str) -> String {
    sqlx::query_scalar("SELECT provider_ref FROM payments WHERE id = $1::uuid")
        .bind(payment)
        .fetch_one(&s.app.db.pool)
        .await
        .unwrap()
}

/// The sandbox's intent for `payment` settles now, as if its time had come.
async fn settle_now(s: &Stadium, payment: &str) {
    sqlx::query("UPDATE sandbox_intents SET settles_at = now() WHERE ref = $1")
        .bind(provider_ref(s, payment).await)
        .execute(&s.app.db.pool)
        .await
        .unwrap();
}

/// The order's hold (and its seats) expire now; the sweeper then ends it.
async fn expire_hold(s: &Stadium, order_id: &str) {
    let pool = &s.app.db.pool;
    for sql in [
        "UPDATE holds SET expires_at = now() - interval '1 second'
         WHERE id = (SELECT hold_id FROM orders WHERE id = $1::uuid)",
        "UPDATE seat_inventory SET hold_expires_at = now() - interval '1 second'
         WHERE hold_id = (SELECT hold_id FROM orders WHERE id = $1::uuid)",
    ] {
        sqlx::query(sql).bind(order_id).execute(pool).await.unwrap();
    }
    let metrics = &s.app.origin.state.metrics;
    origin::sweeper::sweep_once(pool, 1000, metrics)
        .await
        .unwrap();
}

/// A webhook as the sandbox would sign it, POSTed to the origin at `signed_at`.
async fn webhook(s: &Stadium, body: &Value, signed_at: i64) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap();
    let secret = s.app.origin.state.config.payments.webhook_secret.expose();
    webhook_raw(
        s,
        &bytes,
        &origin::provider::sandbox::sign(secret.as_bytes(), signed_at, &bytes),
    )
    .await
}

async fn webhook_raw(s: &Stadium, body: &[u8], signature: &str) -> Reply {
    let http = client(s.app.origin.addr());
    http.send(
        http.raw(reqwest::Method::POST, "/v1/webhooks/payments")
            .header("content-type", "application/json")
            .header("onsale-signature", signature)
            .body(body.to_vec()),
    )
    .await
}

/// Ana's order for `seats`, confirmed with `pm_card_slow`: `processing` until the provider
/// says more. Returns (ana, the order, its payment id).
async fn processing_order(s: &Stadium, seats: &[usize]) -> (Client, Value, String) {
    let ana = s.fan("ana").await;
    let (order_body, payment) = ordered(s, &ana, seats).await;
    let accepted = confirm(&ana, &payment, "pm_card_slow", "c").await;
    accepted.expect_status(200);
    let body = accepted.json();
    assert_eq!(body["status"], "processing");
    assert_eq!(body["order"]["status"], "pending_payment");
    (ana, order_body, payment)
}

fn event(id: &str, intent: &str, status: &str, version: i64) -> Value {
    json!({
        "id": id,
        "type": format!("payment_intent.{status}"),
        "created_ms": 0,
        "data": { "object": {
            "id": intent, "status": status, "version": version,
            "amount_cents": 1, "currency": "EUR",
        }},
    })
}

fn now_s() -> i64 {
    onsale_tests::unix_now()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhooks_lag_runs_from_the_providers_event() {
    let s = stadium().await;
    let lag = &s.app.origin.state.metrics.webhook_lag;
    let mut late = event("evt_late", "pi_unknown", "succeeded", 1);
    late["created_ms"] = json!(onsale_contract::clock::now_ms() - 7_000);
    let reply = webhook(&s, &late, now_s()).await;
    assert_eq!(reply.json()["result"], "unknown_payment");
    assert_eq!(lag.get_sample_count(), 1);
    let seconds = lag.get_sample_sum();
    assert!((7.0..8.0).contains(&seconds), "{seconds} s");
    // A refused delivery says nothing of the provider's lag.
    webhook_raw(&s, &serde_json::to_vec(&late).unwrap(), "")
        .await
        .problem(400, "webhook_signature_invalid");
    assert_eq!(lag.get_sample_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_d_secure_needs_a_second_confirmation() {
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let (order_body, payment) = ordered(&s, &ana, &[40, 41]).await;
    let order_id = order_body["order_id"].as_str().unwrap();
    let challenged = confirm(&ana, &payment, "pm_card_3ds", "first").await;
    challenged.expect_status(200);
    let body = challenged.json();
    assert_eq!(body["status"], "requires_action");
    assert_eq!(body["next_action"]["type"], "authenticate");
    // Not paid yet: the fan keeps its admission (the edge ends it on this header).
    assert_eq!(challenged.header("onsale-admission-spent"), None);
    assert_eq!(body["order"]["status"], "pending_payment");
    assert_eq!(
        s.count("SELECT count(*) FROM seat_inventory WHERE show_id = $1::uuid AND status = 'held'")
            .await,
        2,
        "the seats stay held while the fan authenticates"
    );
    // The fan authenticates and confirms again.
    let paid = confirm(&ana, &payment, "pm_card_3ds", "second").await;
    paid.expect_status(200);
    assert_eq!(paid.header("onsale-admission-spent"), Some("true"));
    let body = paid.json();
    assert_eq!(body["status"], "succeeded");
    assert!(body.get("next_action").is_none());
    assert_eq!(body["order"]["status"], "confirmed");
    assert_eq!(body["order"]["tickets"].as_array().unwrap().len(), 2);
    // The sandbox's webhooks for both steps arrive later and change nothing.
    eventually("both webhooks", PATIENCE, || async {
        let seen = scalar(
            &s,
            "SELECT count(*) FROM payment_events WHERE payment_id = $1::uuid",
            &payment,
        )
        .await;
        (seen >= 2).then_some(())
    })
    .await;
    let read = read_order(&ana, order_id).await;
    assert_eq!(read["status"], "confirmed");
    assert_eq!(read["tickets"], body["order"]["tickets"]);
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_payment_is_settled_only_by_its_webhook() {
    let s = stadium_with(|c| c.payments.sandbox.as_mut().unwrap().slow_settle_ms = NEVER_MS).await;
    let (ana, order_body, payment) = processing_order(&s, &[50]).await;
    let order_id = order_body["order_id"].as_str().unwrap();
    confirm(&ana, &payment, "pm_card_ok", "again")
        .await
        .problem(409, "payment_not_confirmable");
    // Nothing but the provider's word settles it.
    assert_eq!(
        read_order(&ana, order_id).await["status"],
        "pending_payment"
    );
    settle_now(&s, &payment).await;
    let paid = order_becomes(&ana, order_id, "confirmed").await;
    assert_eq!(paid["payment"]["status"], "succeeded");
    assert_eq!(paid["tickets"].as_array().unwrap().len(), 1);
    assert_eq!(
        scalar(
            &s,
            "SELECT count(*) FROM payment_events
             WHERE payment_id = $1::uuid AND event_type = 'payment_intent.succeeded'",
            &payment,
        )
        .await,
        1,
        "the succeeded webhook is what confirmed it"
    );
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_count_once_in_any_order_and_only_when_signed() {
    let s = stadium_with(|c| c.payments.sandbox.as_mut().unwrap().slow_settle_ms = NEVER_MS).await;
    let (ana, order_body, payment) = processing_order(&s, &[60, 61]).await;
    let order_id = order_body["order_id"].as_str().unwrap();
    let intent = provider_ref(&s, &payment).await;
    // Version 1 is `processing`, from the confirmation; 2 settles it.
    let succeeded = event("evt_succeeded", &intent, "succeeded", 2);
    let replies =
        futures_util::future::join_all((0..6).map(|_| webhook(&s, &succeeded, now_s()))).await;
    let mut results: Vec<String> = replies
        .iter()
        .map(|r| {
            r.expect_status(200);
            r.json()["result"].as_str().unwrap().to_owned()
        })
        .collect();
    results.sort();
    assert_eq!(
        results,
        [
            "applied",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate"
        ]
    );
    let paid = read_order(&ana, order_id).await;
    assert_eq!(paid["status"], "confirmed");
    // Late and out of order: an older `processing`, a `payment_failed` of an older version.
    for (id, status, version) in [
        ("evt_processing", "processing", 1),
        ("evt_failed", "failed", 1),
    ] {
        let reply = webhook(&s, &event(id, &intent, status, version), now_s()).await;
        reply.expect_status(200);
        assert_eq!(reply.json()["result"], "stale", "{id}");
    }
    let after = read_order(&ana, order_id).await;
    assert_eq!(after["status"], "confirmed");
    assert_eq!(after["tickets"], paid["tickets"]);

    // Refused: unsigned, a wrong key, a tampered body, a replay from long ago, a malformed
    // event. None of them is recorded.
    let recorded_before = total(&s, "SELECT count(*) FROM payment_events").await;
    let body = serde_json::to_vec(&event("evt_forged", &intent, "failed", 9)).unwrap();
    webhook_raw(&s, &body, "")
        .await
        .problem(400, "webhook_signature_invalid");
    let wrong_key = origin::provider::sandbox::sign(b"not-the-webhook-secret", now_s(), &body);
    webhook_raw(&s, &body, &wrong_key)
        .await
        .problem(400, "webhook_signature_invalid");
    let secret = s
        .app
        .origin
        .state
        .config
        .payments
        .webhook_secret
        .expose()
        .to_owned();
    let signed = origin::provider::sandbox::sign(secret.as_bytes(), now_s(), &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    webhook_raw(&s, &tampered, &signed)
        .await
        .problem(400, "webhook_signature_invalid");
    webhook(&s, &event("evt_old", &intent, "failed", 9), now_s() - 3600)
        .await
        .problem(400, "webhook_signature_invalid");
    webhook(&s, &json!({ "id": "evt_x", "type": "nonsense" }), now_s())
        .await
        .problem(400, "invalid_body");
    let limit = s.app.origin.state.config.http.body_limit_bytes;
    let oversized = vec![b' '; limit + 1];
    webhook_raw(&s, &oversized, &signed)
        .await
        .problem(413, "body_too_large");
    assert_eq!(
        total(&s, "SELECT count(*) FROM payment_events").await,
        recorded_before
    );
    // The public route is the edge's: no admission token, the signature is the credential.
    // An intent the origin never ordered is recorded and otherwise ignored.
    let unknown = serde_json::to_vec(&event("evt_unknown", "pi_unknown", "succeeded", 1)).unwrap();
    let signature = origin::provider::sandbox::sign(secret.as_bytes(), now_s(), &unknown);
    let edge = client(s.app.edge.public);
    let post = |signature: String| {
        edge.raw(reqwest::Method::POST, "/v1/webhooks/payments")
            .header("content-type", "application/json")
            .header("onsale-signature", signature)
            .body(unknown.clone())
    };
    let via_edge = eventually("the edge to reach the origin", PATIENCE, || async {
        let reply = edge.send(post(signature.clone())).await;
        (reply.status != 503).then_some(reply)
    })
    .await;
    via_edge.expect_status(200);
    assert_eq!(via_edge.json()["result"], "unknown_payment");
    edge.send(post(String::new()))
        .await
        .problem(400, "webhook_signature_invalid");
    assert_eq!(read_order(&ana, order_id).await["status"], "confirmed");
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_after_the_hold_expired_is_refunded_and_sells_nothing() {
    let s = stadium_with(|c| c.payments.sandbox.as_mut().unwrap().slow_settle_ms = NEVER_MS).await;
    let (ana, order_body, payment) = processing_order(&s, &[70, 71]).await;
    let order_id = order_body["order_id"].as_str().unwrap();
    expire_hold(&s, order_id).await;
    let lapsed = read_order(&ana, order_id).await;
    assert_eq!(lapsed["status"], "cancelled");
    assert_eq!(lapsed["cancel_reason"], "hold_expired");
    // The seats are someone else's now.
    let bob = s.fan("bob").await;
    let bobs = held(&s, &bob, &[70, 71]).await;
    // Then the provider says the money arrived.
    settle_now(&s, &payment).await;
    let refunded = refund_settled(&ana, order_id).await;
    assert_eq!(refunded["status"], "cancelled");
    assert_eq!(refunded["cancel_reason"], "hold_expired");
    assert_eq!(refunded["payment"]["status"], "refunded");
    assert_eq!(refunded["refund"]["reason"], "hold_expired");
    assert_eq!(
        refunded["refund"]["amount_cents"],
        order_body["total_cents"]
    );
    assert!(refunded["tickets"].as_array().unwrap().is_empty());
    let bobs_hold = bob
        .get(&format!("/v1/holds/{}", bobs["hold_id"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(
        bobs_hold["status"], "active",
        "the late payment took nothing"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM seat_inventory WHERE show_id = $1::uuid AND status = 'sold'")
            .await,
        0
    );
    let refunded_at_provider: i64 =
        sqlx::query_scalar("SELECT refunded_cents FROM sandbox_intents WHERE ref = $1")
            .bind(provider_ref(&s, &payment).await)
            .fetch_one(&s.app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        refunded_at_provider,
        order_body["total_cents"].as_i64().unwrap()
    );
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation_settles_payments_whose_webhooks_never_came() {
    let dead_end = onsale_tests::free_port();
    let s = stadium_with(|c| {
        c.payments.sandbox.as_mut().unwrap().webhook_url =
            Some(format!("http://{dead_end}/v1/webhooks/payments"));
        c.payments.sandbox.as_mut().unwrap().slow_settle_ms = 0;
        c.payments.stuck_after_s = 0.0;
    })
    .await;
    let ana = s.fan("ana").await;
    let (slow_order, slow) = ordered(&s, &ana, &[90]).await;
    confirm(&ana, &slow, "pm_card_slow", "c")
        .await
        .expect_status(200);
    // A confirmation that died before hearing back: marked processing, never sent.
    let (lost_order, lost) = ordered(&s, &ana, &[91]).await;
    sqlx::query("UPDATE payments SET status = 'processing' WHERE id = $1::uuid")
        .bind(&lost)
        .execute(&s.app.db.pool)
        .await
        .unwrap();
    let state = &s.app.origin.state;
    let report = origin::reconcile::reconcile_once(state).await.unwrap();
    assert_eq!((report.stuck, report.moved), (2, 2), "{report:?}");
    let paid = read_order(&ana, slow_order["order_id"].as_str().unwrap()).await;
    assert_eq!(paid["status"], "confirmed");
    assert_eq!(paid["tickets"].as_array().unwrap().len(), 1);
    let lost_view = read_order(&ana, lost_order["order_id"].as_str().unwrap()).await;
    assert_eq!(lost_view["payment"]["status"], "requires_confirmation");
    // ... so the fan can confirm it for real, with a new join: reconciliation's sale of the
    // slow order spent the admission both orders were made with.
    confirm(&ana, &lost, "pm_card_ok", "retry")
        .await
        .problem(401, "admission_spent");
    confirm(&s.fan("ana").await, &lost, "pm_card_ok", "retry")
        .await
        .expect_status(200);
    assert!(
        state
            .metrics
            .webhook_deliveries
            .with_label_values(&["failed"])
            .get()
            > 0,
        "the sandbox was trying to deliver"
    );
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_refund_is_retried_until_it_succeeds() {
    let s = stadium_with(|c| c.payments.sandbox.as_mut().unwrap().refund_failures = 3).await;
    let ana = s.fan("ana").await;
    let (order_body, payment) = ordered(&s, &ana, &[100, 101]).await;
    let order_id = order_body["order_id"].as_str().unwrap();
    confirm(&ana, &payment, "pm_card_refund_fails", "c")
        .await
        .expect_status(200);
    ana.post_idempotent(&format!("/v1/orders/{order_id}/cancel"), "x", &json!({}))
        .await
        .expect_status(200);
    let refunded = refund_settled(&ana, order_id).await;
    assert_eq!(refunded["payment"]["status"], "refunded");
    let (attempts, error): (i32, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM refunds WHERE order_id = $1::uuid")
            .bind(order_id)
            .fetch_one(&s.app.db.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 4, "three failures, then the refund");
    assert_eq!(error, None);
    assert_eq!(
        scalar(
            &s,
            "SELECT count(*) FROM sandbox_refunds r JOIN payments p ON p.provider_ref = r.intent_ref
             WHERE p.id = $1::uuid",
            &payment,
        )
        .await,
        1,
        "refunded once"
    );
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refunds_follow_the_policy_by_days_before_the_show() {
    let s = stadium().await;
    let organizer = s.app.organizer();
    let now = chrono::Utc::now();
    // Default policy: all of it 30+ days out, half 7-30 days out, nothing inside a week.
    for (days_out, percent) in [(45, 100), (10, 50), (3, 0)] {
        let starts = (now + chrono::Duration::days(days_out)).to_rfc3339();
        let (_, show) = create_show(
            &organizer,
            venue_body("Hall", "Oslo", &[("A", "T1")], 1, 4),
            &format!("In {days_out} days"),
            "Band",
            &starts,
            "2020-01-01T00:00:00Z",
        )
        .await;
        let (account, session) = s.account("ana").await;
        let fan = client(s.app.origin.addr())
            .bearer(&onsale_tests::admission(&account.to_string(), &show))
            .cookie(&format!("onsale_session={session}"));
        let seats: Vec<i64> = sqlx::query_scalar(
            "SELECT seat_id FROM seat_inventory WHERE show_id = $1::uuid ORDER BY layout_idx LIMIT 2",
        )
        .bind(&show)
        .fetch_all(&s.app.db.pool)
        .await
        .unwrap();
        let hold = fan
            .post_idempotent(
                &format!("/v1/shows/{show}/holds"),
                &format!("h{days_out}"),
                &json!({ "seat_ids": seats }),
            )
            .await;
        hold.expect_status(201);
        let hold_id = hold.json()["hold_id"].as_str().unwrap().to_owned();
        let created = order(&fan, &hold_id, &format!("o{days_out}")).await;
        created.expect_status(201);
        let created = created.json();
        let payment = created["payment"]["payment_id"].as_str().unwrap();
        confirm(&fan, payment, "pm_card_ok", &format!("c{days_out}"))
            .await
            .expect_status(200);
        let order_id = created["order_id"].as_str().unwrap();
        let cancelled = fan
            .post_idempotent(
                &format!("/v1/orders/{order_id}/cancel"),
                &format!("x{days_out}"),
                &json!({}),
            )
            .await;
        cancelled.expect_status(200);
        let total = created["total_cents"].as_i64().unwrap();
        let refund = cancelled.json()["refund_cents"].as_i64().unwrap();
        assert_eq!(refund, total * percent / 100, "{days_out} days out");
        if percent > 0 {
            let settled = refund_settled(&fan, order_id).await;
            assert_eq!(settled["refund"]["amount_cents"], refund);
        } else {
            let read = read_order(&fan, order_id).await;
            assert!(
                read.get("refund").is_none(),
                "nothing is owed inside a week"
            );
            assert_eq!(read["status"], "cancelled");
        }
    }
    assert_invariants(&s).await;
}

/// Scans `ticket` at the gate through the verify route, with the payload its QR code carries.
async fn scan_at_the_gate(s: &Stadium, ticket: &str) -> Value {
    use origin::tickets::{TicketFacts, TicketSigner};
    let (show, seat, issued_at): (Uuid, i64, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT show_id, seat_id, issued_at FROM tickets WHERE id = $1::uuid")
            .bind(ticket)
            .fetch_one(&s.app.db.pool)
            .await
            .unwrap();
    let payload = TicketSigner::from_files(&onsale_tests::keys().signing_pem, &[])
        .unwrap()
        .sign(TicketFacts {
            ticket: Uuid::parse_str(ticket).unwrap(),
            show,
            seat,
            issued_at_s: issued_at.timestamp(),
        });
    onsale_tests::Door::open(s.app.origin.addr(), &s.show, "south")
        .await
        .verify(&payload)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_with_a_scanned_ticket_is_cancelled_only_when_the_organizer_forces_it() {
    // The show is in 2099: the default policy refunds everything.
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let (order_body, payment) = ordered(&s, &ana, &[110, 111]).await;
    let paid = confirm(&ana, &payment, "pm_card_ok", "c").await.json();
    let order_id = order_body["order_id"].as_str().unwrap();
    let tickets: Vec<String> = paid["order"]["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ticket_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tickets.len(), 2);
    assert_eq!(scan_at_the_gate(&s, &tickets[0]).await["result"], "valid");

    // The fan's cancellation is refused, names the scanned ticket and changes nothing.
    let refused = ana
        .post_idempotent(&format!("/v1/orders/{order_id}/cancel"), "x1", &json!({}))
        .await;
    let problem = refused.problem(409, "tickets_scanned");
    assert_eq!(problem["scanned_ticket_ids"], json!([tickets[0]]));
    let read = read_order(&ana, order_id).await;
    assert_eq!(read["status"], "confirmed");
    assert!(read.get("refund").is_none(), "no refund owed");
    assert!(read["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "valid"));
    let count = |sql: &'static str| scalar(&s, sql, order_id);
    assert_eq!(
        count("SELECT count(*) FROM tickets WHERE order_id = $1::uuid AND scanned_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM refunds WHERE order_id = $1::uuid").await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM outbox WHERE aggregate_id = $1::uuid").await,
        1,
        "only order_confirmed"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM seat_inventory WHERE show_id = $1::uuid AND status = 'sold'")
            .await,
        2
    );

    // The organizer forces it, under the same policy: refund owed, tickets revoked.
    let forced_path = format!("/v1/admin/orders/{order_id}/cancel");
    client(s.app.origin.addr())
        .post(&forced_path, &json!({}))
        .await
        .problem(401, "unauthorized");
    ana.post(&forced_path, &json!({}))
        .await
        .problem(401, "unauthorized");
    let organizer = s.app.organizer();
    let forced = organizer
        .post(
            &forced_path,
            &json!({ "reason": "refunded at the box office" }),
        )
        .await;
    forced.expect_status(200);
    let body = forced.json();
    assert_eq!(body["refund_cents"], order_body["total_cents"]);
    assert_eq!(body["order"]["status"], "cancelled");
    assert_eq!(body["order"]["cancel_reason"], "organizer_cancelled");
    assert_eq!(body["order"]["refund"]["reason"], "organizer_cancelled");
    assert_eq!(
        body["order"]["refund"]["amount_cents"],
        body["refund_cents"]
    );
    assert!(body["order"]["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "revoked"));
    assert_eq!(scan_at_the_gate(&s, &tickets[0]).await["result"], "revoked");
    assert_eq!(scan_at_the_gate(&s, &tickets[1]).await["result"], "revoked");
    assert_eq!(
        s.count("SELECT count(*) FROM seat_inventory WHERE show_id = $1::uuid AND status <> 'available'")
            .await,
        0
    );
    let reason: String = sqlx::query_scalar(
        "SELECT payload->>'reason' FROM outbox
         WHERE aggregate_id = $1::uuid AND event_type = 'order_cancelled'",
    )
    .bind(order_id)
    .fetch_one(&s.app.db.pool)
    .await
    .unwrap();
    assert_eq!(reason, "refunded at the box office");
    let refunded = refund_settled(&ana, order_id).await;
    assert_eq!(refunded["payment"]["status"], "refunded");
    assert_eq!(
        refunded["refund"]["amount_cents"],
        order_body["total_cents"]
    );

    // Once only; the body is optional; an unknown order is not found.
    organizer
        .post(&forced_path, &json!({}))
        .await
        .problem(409, "order_not_cancellable");
    let bob = s.fan("bob").await;
    let (other, other_payment) = ordered(&s, &bob, &[112]).await;
    confirm(&bob, &other_payment, "pm_card_ok", "c")
        .await
        .expect_status(200);
    let other_id = other["order_id"].as_str().unwrap();
    let bare = organizer
        .request(
            reqwest::Method::POST,
            &format!("/v1/admin/orders/{other_id}/cancel"),
            None,
        )
        .await;
    bare.expect_status(200);
    assert_eq!(bare.json()["order"]["cancel_reason"], "organizer_cancelled");
    organizer
        .post("/v1/admin/orders/not-an-id/cancel", &json!({}))
        .await
        .problem(404, "order_not_found");
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_webhook_delivered_twice_changes_nothing_twice() {
    let s = stadium_with(|c| {
        c.payments.sandbox.as_mut().unwrap().duplicate_percent = 100;
        c.payments.sandbox.as_mut().unwrap().seed = 7;
    })
    .await;
    let fans: Vec<(Client, &str, usize)> = vec![
        (s.fan("ok").await, "pm_card_ok", 110),
        (s.fan("declined").await, "pm_card_declined", 112),
        (s.fan("slow").await, "pm_card_slow", 114),
        (s.fan("3ds").await, "pm_card_3ds", 116),
    ];
    let mut orders = Vec::new();
    for (fan, method, seat) in &fans {
        let (body, payment) = ordered(&s, fan, &[*seat, seat + 1]).await;
        confirm(fan, &payment, method, "c").await.expect_status(200);
        orders.push(body["order_id"].as_str().unwrap().to_owned());
    }
    confirm(
        &fans[3].0,
        &payment_of(&s, &orders[3]).await,
        "pm_card_3ds",
        "c2",
    )
    .await
    .expect_status(200);
    order_becomes(&fans[2].0, &orders[2], "confirmed").await;
    // Every event is delivered twice (the copy a little later); wait for all copies.
    eventually("every delivery", PATIENCE, || async {
        let owed = total(
            &s,
            "SELECT count(*) FROM sandbox_webhooks WHERE delivered_at IS NULL",
        )
        .await;
        let copies = total(
            &s,
            "SELECT count(*) FROM (SELECT event_id FROM sandbox_webhooks
             GROUP BY event_id HAVING count(*) >= 2) twice",
        )
        .await;
        let events = total(&s, "SELECT count(DISTINCT event_id) FROM sandbox_webhooks").await;
        (owed == 0 && copies == events).then_some(())
    })
    .await;
    let metrics = &s.app.origin.state.metrics.webhooks_received;
    assert!(metrics.with_label_values(&["duplicate"]).get() >= 5);
    let statuses: Vec<String> = futures_util::future::join_all(
        fans.iter()
            .zip(&orders)
            .map(|((fan, ..), id)| async move { read_order(fan, id).await["status"].to_string() }),
    )
    .await;
    assert_eq!(
        statuses,
        [
            "\"confirmed\"",
            "\"payment_failed\"",
            "\"confirmed\"",
            "\"confirmed\""
        ]
    );
    assert_eq!(
        s.count("SELECT count(*) FROM tickets WHERE show_id = $1::uuid")
            .await,
        6
    );
    let confirmations = total(
        &s,
        "SELECT count(*) FROM outbox WHERE event_type = 'order_confirmed'",
    )
    .await;
    assert_eq!(confirmations, 3, "one confirmation event per paid order");
    assert_invariants(&s).await;
}

async fn payment_of(s: &Stadium, order_id: &str) -> String {
    sqlx::query_scalar::<_, Uuid>("SELECT id FROM payments WHERE order_id = $1::uuid")
        .bind(order_id)
        .fetch_one(&s.app.db.pool)
        .await
        .unwrap()
        .to_string()
}

/// The stored answer to `key` is gone, as a crash or a database restart between the
/// provider's answer and the commit that stores it leaves things once the key's claim is
/// taken over.
async fn lose_answer(s: &Stadium, key: &str) {
    sqlx::query("DELETE FROM idempotency_keys WHERE key = $1")
        .bind(key)
        .execute(&s.app.db.pool)
        .await
        .unwrap();
}

/// A confirmation that reached the provider but whose answer was lost is answered again
/// from the provider's word under the same key (the paid order, with its admission spent;
/// the declined payment), never refused as a new confirmation would be. A new key still is.
#[tokio::test(flavor = "multi_thread")]
async fn a_confirmation_whose_answer_was_lost_is_answered_again() {
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let (_, payment) = ordered(&s, &ana, &[60, 61]).await;
    let paid = confirm(&ana, &payment, "pm_card_ok", "paid").await;
    paid.expect_status(200);
    lose_answer(&s, "paid").await;
    let again = confirm(&ana, &payment, "pm_card_ok", "paid").await;
    again.expect_status(200);
    assert_eq!(again.header("onsale-admission-spent"), Some("true"));
    assert_eq!(again.json()["status"], "succeeded");
    assert_eq!(
        again.json()["order"]["tickets"],
        paid.json()["order"]["tickets"]
    );
    confirm(&ana, &payment, "pm_card_ok", "new")
        .await
        .problem(401, "admission_spent");

    let bob = s.fan("bob").await;
    let (_, payment) = ordered(&s, &bob, &[62]).await;
    confirm(&bob, &payment, "pm_card_declined", "declined")
        .await
        .expect_status(200);
    lose_answer(&s, "declined").await;
    let again = confirm(&bob, &payment, "pm_card_declined", "declined").await;
    again.expect_status(200);
    assert_eq!(again.json()["status"], "failed");
    assert_eq!(again.json()["order"]["status"], "payment_failed");
    confirm(&bob, &payment, "pm_card_ok", "new")
        .await
        .problem(409, "payment_not_confirmable");
    assert_eq!(
        s.count("SELECT count(*) FROM tickets WHERE show_id = $1::uuid")
            .await,
        2,
        "nothing sold twice"
    );
    assert_invariants(&s).await;
}

/// A confirmation that died after marking its payment `processing`, before the provider
/// answered (its key released since), is resumed by its retry under the same key; a
/// confirmation under another key is still refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_confirmation_that_died_before_the_provider_answered_is_resumed_by_its_retry() {
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let (_, payment) = ordered(&s, &ana, &[70]).await;
    sqlx::query(
        "UPDATE payments SET status = 'processing', confirm_key = 'first' WHERE id = $1::uuid",
    )
    .bind(&payment)
    .execute(&s.app.db.pool)
    .await
    .unwrap();
    confirm(&ana, &payment, "pm_card_ok", "other")
        .await
        .problem(409, "payment_not_confirmable");
    let resumed = confirm(&ana, &payment, "pm_card_ok", "first").await;
    resumed.expect_status(200);
    assert_eq!(resumed.json()["status"], "succeeded");
    assert_eq!(resumed.json()["order"]["status"], "confirmed");
    assert_invariants(&s).await;
}

//! The waitlist of a sold-out show: fans join in order; seats that come back go to the
//! first waiting fan they fit as an offer (a hold in the fan's name) before anyone else can
//! take them; an offer not bought passes on; seats no waiting fan can take go back on sale;
//! a fan buys its offer through the edge with the admission the offer gives; and a burst of
//! 500 holds expiring at once is offered to 500 waiting fans, notified within 5 seconds.

use crate::holds::{stadium_of, Stadium};
use crate::orders::{assert_invariants, confirm, order};
use onsale_tests::{client, eventually, redis_prefix, venue_body, Client, Reply};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(30);

/// The fan called `name` at `addr`, signed in and nothing more.
async fn signed_in(s: &Stadium, name: &str, addr: std::net::SocketAddr) -> Client {
    let (_, session) = s.account(name).await;
    client(addr).cookie(&format!("onsale_session={session}"))
}

fn waitlist(s: &Stadium) -> String {
    format!("/v1/shows/{}/waitlist", s.show)
}

async fn join(s: &Stadium, fan: &Client, body: Value) -> Reply {
    fan.post(&waitlist(s), &body).await
}

/// The seats of each `waitlist_offer` notification so far, with the account offered them,
/// in the order they were made.
async fn offers(s: &Stadium) -> Vec<(Uuid, Vec<i64>)> {
    sqlx::query_as::<_, (Uuid, Value)>(
        "SELECT aggregate_id, payload->'seat_ids' FROM outbox
         WHERE event_type = 'waitlist_offer' AND payload->>'show_id' = $1 ORDER BY id",
    )
    .bind(&s.show)
    .fetch_all(&s.app.db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(account, seats)| (account, serde_json::from_value(seats).unwrap()))
    .collect()
}

async fn offers_made(s: &Stadium, count: usize) -> Vec<(Uuid, Vec<i64>)> {
    eventually(&format!("{count} offers"), PATIENCE, || async {
        let made = offers(s).await;
        (made.len() >= count).then_some(made)
    })
    .await
}

async fn seats_with_status(s: &Stadium, status: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT seat_id FROM seat_inventory WHERE show_id = $1::uuid AND status = $2 ORDER BY seat_id",
    )
    .bind(&s.show)
    .bind(status)
    .fetch_all(&s.app.db.pool)
    .await
    .unwrap()
}

async fn release(fan: &Client, hold: &str) {
    fan.request(Method::DELETE, &format!("/v1/holds/{hold}"), None)
        .await
        .expect_status(204);
}

/// The entry of `fan` once its status is `status`.
async fn entry_once(s: &Stadium, fan: &Client, status: &str) -> Value {
    eventually(&format!("an entry {status}"), PATIENCE, || async {
        let entry = fan.get(&waitlist(s)).await.json();
        (entry["status"] == status).then_some(entry)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn returned_seats_go_to_waiting_fans_in_order_and_an_offer_not_bought_passes_on() {
    // Row 1 of A (2 seats) and of B (2 seats); offers last a second.
    let layout = venue_body("Hall", "Leeds", &[("A", "T1"), ("B", "T2")], 1, 2);
    let s = stadium_of(layout, |c| {
        c.waitlist.offer_ttl_s = 1;
        c.waitlist.offer_interval_ms = 50;
    })
    .await;
    let at = s.app.origin.addr();
    let (ana, bob, cat) = (
        signed_in(&s, "ana", at).await,
        signed_in(&s, "bob", at).await,
        signed_in(&s, "cat", at).await,
    );

    // Not before the show is sold out.
    join(&s, &ana, json!({"quantity": 1}))
        .await
        .problem(409, "not_sold_out");
    let mut holders = Vec::new();
    for seat in 0..4 {
        let fan = s.fan(&format!("holder-{seat}")).await;
        let hold = s.hold(&fan, &[seat]).await;
        hold.expect_status(201);
        holders.push((fan, hold.json()["hold_id"].as_str().unwrap().to_owned()));
    }

    // Bad input is refused and stores nothing.
    join(&s, &ana, json!({"quantity": 0}))
        .await
        .problem(422, "invalid_field");
    join(&s, &ana, json!({"quantity": 1, "section_ids": ["Z"]}))
        .await
        .problem(422, "unknown_section");
    join(&s, &ana, json!({"quantity": 1, "section_ids": ["A\u{0}"]}))
        .await
        .problem(422, "unknown_section");
    join(&s, &ana, json!({"quantity": 1, "section_ids": ["A", "A"]}))
        .await
        .problem(422, "invalid_field");
    ana.get(&waitlist(&s)).await.problem(404, "not_on_waitlist");

    // Three fans wait, in order; joining again is the same place.
    let first = join(&s, &ana, json!({"quantity": 1})).await;
    first.expect_status(201);
    assert_eq!(first.json()["status"], "waiting");
    assert_eq!(first.json()["position"], 1);
    let second = join(&s, &bob, json!({"quantity": 2})).await;
    second.expect_status(201);
    assert_eq!(second.json()["position"], 2);
    let third = join(&s, &cat, json!({"quantity": 1, "section_ids": ["B"]})).await;
    third.expect_status(201);
    assert_eq!(third.json()["position"], 3);
    assert_eq!(third.json()["section_ids"], json!(["B"]));
    let again = join(&s, &ana, json!({"quantity": 1})).await;
    again.expect_status(200);
    assert_eq!(again.json()["joined_at_ms"], first.json()["joined_at_ms"]);

    let (ana_id, bob_id, cat_id) = (
        s.account("ana").await.0,
        s.account("bob").await.0,
        s.account("cat").await.0,
    );
    // A seat of A comes back: the first fan waiting gets it, and nobody else can take it.
    release(&holders[0].0, &holders[0].1).await;
    assert_eq!(offers_made(&s, 1).await, vec![(ana_id, vec![s.seats[0]])]);
    let taker = s.fan("taker").await;
    s.hold(&taker, &[0]).await.problem(409, "seats_unavailable");
    assert_eq!(bob.get(&waitlist(&s)).await.json()["position"], 1);

    // Ana lets it pass. The seat fits neither Bob (two seats) nor Cat (B only): it waits.
    let lapsed = entry_once(&s, &ana, "lapsed").await;
    assert_eq!(lapsed["offer"]["seat_ids"], json!([s.seats[0]]));
    eventually("the seat back for the waitlist", PATIENCE, || async {
        (seats_with_status(&s, "returned").await == vec![s.seats[0]]).then_some(())
    })
    .await;

    // The other seat of A comes back: Bob gets both, side by side. Then B's seat: Cat.
    release(&holders[1].0, &holders[1].1).await;
    let made = offers_made(&s, 2).await;
    assert_eq!(made[1], (bob_id, vec![s.seats[0], s.seats[1]]));
    release(&holders[2].0, &holders[2].1).await;
    let made = offers_made(&s, 3).await;
    assert_eq!(made[2], (cat_id, vec![s.seats[2]]));

    // Both let theirs pass too; with nobody waiting, the seats go back on sale.
    entry_once(&s, &bob, "lapsed").await;
    entry_once(&s, &cat, "lapsed").await;
    let on_sale = vec![s.seats[0], s.seats[1], s.seats[2]];
    eventually("the seats back on sale", PATIENCE, || async {
        (seats_with_status(&s, "available").await == on_sale).then_some(())
    })
    .await;
    assert_eq!(offers(&s).await.len(), 3, "no offer beyond the three");
    s.hold(&taker, &[0, 1]).await.expect_status(201);
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_fan_buys_its_offer_through_the_edge_with_the_admission_it_gives() {
    let layout = venue_body("Hall", "Leeds", &[("A", "T1")], 1, 2);
    let s = stadium_of(layout, |c| c.waitlist.offer_interval_ms = 50).await;
    let holder = s.fan("holder").await;
    let hold = s.hold(&holder, &[0, 1]).await;
    hold.expect_status(201);
    let hold = hold.json()["hold_id"].as_str().unwrap().to_owned();

    let edge = s.app.edge.public;
    let dan = signed_in(&s, "dan", edge).await;
    join(&s, &dan, json!({"quantity": 2}))
        .await
        .expect_status(201);
    // Five asks in all: the client's join burst, which asking for an offer spends.
    let offers_path = "/v1/waiting-room/offers";
    let for_show = json!({"show_id": s.show});
    dan.post(offers_path, &for_show)
        .await
        .problem(404, "no_offer");
    client(edge)
        .post(offers_path, &for_show)
        .await
        .problem(401, "sign_in_required");

    // The seats come back: they are Dan's to buy, with the admission the offer gives.
    release(&holder, &hold).await;
    let offered = entry_once(&s, &dan, "offered").await;
    assert_eq!(
        offered["offer"]["seat_ids"],
        json!([s.seats[0], s.seats[1]])
    );
    let admitted = dan.post(offers_path, &for_show).await;
    admitted.expect_status(200);
    let admitted = admitted.json();
    assert_eq!(admitted["hold_id"], offered["offer"]["hold_id"]);
    let token = admitted["admission_token"].as_str().unwrap();
    let (_, session) = s.account("dan").await;
    let buyer = client(edge)
        .bearer(token)
        .cookie(&format!("onsale_session={session}"));
    let ordered = order(&buyer, admitted["hold_id"].as_str().unwrap(), "dan-order").await;
    ordered.expect_status(201);
    let payment = ordered.json()["payment"]["payment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let paid = confirm(&buyer, &payment, "pm_card_ok", "dan-pay").await;
    paid.expect_status(200);
    assert_eq!(paid.json()["status"], "succeeded");
    entry_once(&s, &dan, "bought").await;
    // The offer is spent with its order.
    dan.post(offers_path, &for_show)
        .await
        .problem(404, "no_offer");
    // A session that ended is told to sign in, though the edge still remembers it.
    dan.request(Method::DELETE, "/v1/sessions/current", None)
        .await
        .expect_status(204);
    dan.post(offers_path, &for_show)
        .await
        .problem(401, "sign_in_required");
    assert_invariants(&s).await;
}

/// `name`'s value in Prometheus text `metrics` (the first sample whose line starts so).
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_holds_expiring_at_once_reach_five_hundred_waiting_fans_within_five_seconds() {
    let prefix = redis_prefix();
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("notifications.jsonl");
    let sink_path = sink.clone();
    // Five sections of 10 rows of 10: 500 seats, held by 50 fans, 10 each.
    let sections = [
        ("A", "T1"),
        ("B", "T1"),
        ("C", "T1"),
        ("D", "T1"),
        ("E", "T1"),
    ];
    let s = stadium_of(venue_body("Dome", "Leeds", &sections, 10, 10), move |c| {
        c.holds.max_seats_per_hold = 10;
        c.holds.max_seats_per_fan = 10;
        c.notifications.relay = true;
        c.notifications.consumer = true;
        c.notifications.key_prefix = prefix;
        c.notifications.sink_path = sink_path;
    })
    .await;
    for holder in 0..50 {
        let fan = s.fan(&format!("holder-{holder}")).await;
        let seats: Vec<usize> = (holder * 10..holder * 10 + 10).collect();
        s.hold(&fan, &seats).await.expect_status(201);
    }
    let mut waiting = Vec::new();
    for n in 0..500 {
        let fan = signed_in(&s, &format!("waiter-{n}"), s.app.origin.addr()).await;
        join(&s, &fan, json!({"quantity": 1}))
            .await
            .expect_status(201);
        waiting.push(s.account(&format!("waiter-{n}")).await.0);
    }

    // The clock reaches every hold's expiry at the same moment.
    sqlx::query(
        "WITH due AS (UPDATE holds SET expires_at = now() WHERE show_id = $1::uuid RETURNING id)
         UPDATE seat_inventory SET hold_expires_at = now()
         WHERE show_id = $1::uuid AND hold_id IN (SELECT id FROM due)",
    )
    .bind(&s.show)
    .execute(&s.app.db.pool)
    .await
    .unwrap();

    let notified = eventually("500 offers notified", PATIENCE, || async {
        let lines = std::fs::read_to_string(&sink).unwrap_or_default();
        let offers: Vec<Value> = lines
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["type"] == "waitlist_offer")
            .collect();
        (offers.len() >= 500).then_some(offers)
    })
    .await;
    assert_eq!(notified.len(), 500, "each fan told once");
    // One seat each, every seat once, in the order the fans joined.
    let made = offers(&s).await;
    let accounts: Vec<Uuid> = made.iter().map(|(account, _)| *account).collect();
    assert_eq!(accounts, waiting);
    let mut seats: Vec<i64> = made.iter().flat_map(|(_, seats)| seats.clone()).collect();
    seats.sort_unstable();
    let mut every_seat = s.seats.clone();
    every_seat.sort_unstable();
    assert_eq!(seats, every_seat);

    // Each offer's latency is observed once its notification is written.
    let name = "onsale_origin_waitlist_offer_latency_seconds";
    let metrics = eventually("500 latencies observed", PATIENCE, || async {
        let metrics = client(s.app.origin.addr()).get("/metrics").await;
        let metrics = String::from_utf8(metrics.body).unwrap();
        (sample(&metrics, &format!("{name}_count")) >= 500.0).then_some(metrics)
    })
    .await;
    let count = sample(&metrics, &format!("{name}_count"));
    let within_5s = sample(&metrics, &format!("{name}_bucket{{le=\"5\"}}"));
    let within_2s = sample(&metrics, &format!("{name}_bucket{{le=\"2\"}}"));
    println!(
        "offer latency: {within_2s} of {count} within 2 s, {within_5s} within 5 s, mean {:.2} s",
        sample(&metrics, &format!("{name}_sum")) / count
    );
    assert_eq!(count, 500.0);
    assert!(within_5s >= 495.0, "p99 over 5 s: {within_5s} of 500");
    assert_invariants(&s).await;
}

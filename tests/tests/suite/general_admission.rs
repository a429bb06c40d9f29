//! General admission: a section sold by count from a counter a CHECK keeps at or above
//! zero. Places are held, ordered, paid for and ticketed without seats, counted in the
//! availability snapshot, and come back to the counter exactly once when a hold ends, a
//! payment fails or a paid order is cancelled.

use crate::holds::{stadium_of, Stadium};
use crate::orders::{assert_invariants, confirm, order};
use onsale_contract::snapshot::{self, field, Kind};
use onsale_tests::{builder_config, redis_prefix, venue_body, Client, Reply};
use redis::AsyncCommands;
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

/// A show with one seated section (A, 5 seats) and a standing floor of `capacity`.
async fn floor(capacity: i32) -> Stadium {
    let mut layout = venue_body("Park", "Leeds", &[("A", "T1")], 1, 5);
    layout["sections"].as_array_mut().unwrap().push(json!({
        "section_id": "FLOOR", "name": "Floor", "price_tier": "GA", "capacity": capacity
    }));
    stadium_of(layout, |_| {}).await
}

async fn hold_places(s: &Stadium, fan: &Client, quantity: u32) -> Reply {
    fan.post_idempotent(
        &format!("/v1/shows/{}/holds", s.show),
        &Uuid::new_v4().to_string(),
        &json!({ "section_id": "FLOOR", "quantity": quantity }),
    )
    .await
}

/// Places left on the floor, by its counter.
async fn left(s: &Stadium) -> i64 {
    s.count("SELECT available::int8 FROM ga_inventory WHERE show_id = $1::uuid")
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_four_fans_racing_for_the_last_ten_places_get_exactly_ten() {
    let s = floor(50).await;
    // Forty places go first, five at a time.
    for n in 0..8 {
        let fan = s.fan(&format!("early-{n}")).await;
        hold_places(&s, &fan, 5).await.expect_status(201);
    }
    assert_eq!(left(&s).await, 10);
    let mut fans = Vec::new();
    for n in 0..64 {
        fans.push(s.fan(&format!("racer-{n}")).await);
    }
    let s = Arc::new(s);
    let start = Arc::new(tokio::sync::Barrier::new(fans.len()));
    let racers: Vec<_> = fans
        .into_iter()
        .map(|fan| {
            let (s, start) = (s.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                hold_places(&s, &fan, 1).await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for racer in racers {
        let reply = racer.await.unwrap();
        if reply.status == 409 {
            reply.problem(409, "not_enough_seats");
        }
        statuses.push(reply.status);
    }
    assert_eq!(statuses.iter().filter(|&&st| st == 201).count(), 10);
    assert_eq!(statuses.iter().filter(|&&st| st == 409).count(), 54);
    assert_eq!(left(&s).await, 0);
    let held = s
        .count(
            "SELECT coalesce(sum(seat_count), 0)::int8 FROM holds
             WHERE show_id = $1::uuid AND ga_section = 'FLOOR' AND status = 'active'",
        )
        .await;
    assert_eq!(held, 50, "every place in exactly one hold");
    // The CHECK, not only the claim: the counter cannot go below zero.
    let below =
        sqlx::query("UPDATE ga_inventory SET available = available - 1 WHERE show_id = $1::uuid")
            .bind(&s.show)
            .execute(&s.app.db.pool)
            .await;
    assert!(below.is_err(), "the counter went below zero");
}

#[tokio::test(flavor = "multi_thread")]
async fn places_are_held_paid_ticketed_and_returned_exactly_once() {
    let s = floor(10).await;
    let ana = s.fan("ana").await;

    // A hold of places: no seats, its section and quantity, priced by the floor's tier.
    let hold = hold_places(&s, &ana, 3).await;
    hold.expect_status(201);
    let hold = hold.json();
    assert_eq!(hold["seat_ids"], json!([]));
    assert_eq!(
        hold["general_admission"],
        json!({"section_id": "FLOOR", "quantity": 3})
    );
    assert_eq!(hold["total_cents"], 3 * 2500);
    let path = format!("/v1/holds/{}", hold["hold_id"].as_str().unwrap());
    assert_eq!(
        ana.get(&path).await.json()["general_admission"],
        hold["general_admission"]
    );
    assert_eq!(left(&s).await, 7);

    // Places count against the fan's limit (8) with seats.
    let seats = s.hold(&ana, &[0, 1, 2, 3]).await;
    seats.expect_status(201);
    hold_places(&s, &ana, 2)
        .await
        .problem(422, "fan_seat_limit");
    ana.request(
        reqwest::Method::DELETE,
        &format!("/v1/holds/{}", seats.json()["hold_id"].as_str().unwrap()),
        None,
    )
    .await
    .expect_status(204);

    // Released: back at once, and once.
    for _ in 0..2 {
        ana.request(reqwest::Method::DELETE, &path, None)
            .await
            .expect_status(204);
        assert_eq!(left(&s).await, 10);
    }

    // Bought: two tickets without a seat, numbered in the section.
    let bo = s.fan("bo").await;
    let held = hold_places(&s, &bo, 2).await.json();
    let created = order(&bo, held["hold_id"].as_str().unwrap(), "o1").await;
    created.expect_status(201);
    let created = created.json();
    assert_eq!(created["items"], json!([]));
    assert_eq!(created["general_admission"], held["general_admission"]);
    let payment = created["payment"]["payment_id"].as_str().unwrap();
    let paid = confirm(&bo, payment, "pm_card_ok", "p1").await;
    paid.expect_status(200);
    let order_id = created["order_id"].as_str().unwrap().to_owned();
    let view = bo.get(&format!("/v1/orders/{order_id}")).await.json();
    assert_eq!(view["status"], "confirmed");
    let tickets = view["tickets"].as_array().unwrap();
    let numbers: Vec<(Value, Value)> = tickets
        .iter()
        .map(|t| (t["seat_id"].clone(), t["ga_number"].clone()))
        .collect();
    assert_eq!(
        numbers,
        [(Value::Null, json!(1)), (Value::Null, json!(2))],
        "{view}"
    );
    assert_eq!(left(&s).await, 8);
    let mine = bo.get("/v1/me/tickets").await.json();
    let listed = &mine["items"][0];
    assert_eq!(listed["section_id"], "FLOOR");
    assert_eq!(listed["seat_id"], Value::Null);
    assert!(listed["ga_number"].is_i64(), "{mine}");

    // At the gate, a place's ticket scans like a seat's.
    let payloads = crate::scanning::payloads(&s.app.db.pool, &order_id).await;
    let door = onsale_tests::Door::open(s.app.origin.addr(), &s.show, "north").await;
    let verdict = door.verify(&payloads[0].1).await;
    assert_eq!(verdict["result"], "valid", "{verdict}");
    assert_eq!(verdict["ticket_id"], payloads[0].0.to_string());

    // The snapshot counts the floor with the seats.
    let prefix = redis_prefix();
    let mut builder = seatmap_builder::Builder::new(
        builder_config(&s.app.db, &prefix),
        Arc::new(seatmap_builder::metrics::Metrics::new()),
    )
    .unwrap();
    builder.build_all(1_000).await.unwrap();
    let document = |kind| {
        let key = snapshot::key(&prefix, &s.show, kind);
        async move {
            let fields: std::collections::HashMap<String, Vec<u8>> =
                onsale_tests::redis().await.hgetall(key).await.unwrap();
            serde_json::from_slice::<Value>(&fields[field::IDENTITY]).unwrap()
        }
    };
    let availability = document(Kind::Availability).await;
    assert_eq!(
        availability["sections"][1],
        json!({"section_id": "FLOOR", "available": 8, "held": 0, "sold": 2, "total": 10})
    );
    assert_eq!(availability["total"], 15);
    assert_eq!(availability["seat_status"], "AAAAA");
    let layout = document(Kind::Layout).await;
    assert_eq!(
        layout["general_admission"],
        json!([{"section_id": "FLOOR", "name": "Floor", "price_tier": "GA", "capacity": 10}])
    );

    // A declined card returns its places; so does a paid order cancelled.
    let cy = s.fan("cy").await;
    let held = hold_places(&s, &cy, 4).await.json();
    let created = order(&cy, held["hold_id"].as_str().unwrap(), "o2")
        .await
        .json();
    assert_eq!(left(&s).await, 4);
    confirm(
        &cy,
        created["payment"]["payment_id"].as_str().unwrap(),
        "pm_card_declined",
        "p2",
    )
    .await;
    assert_eq!(left(&s).await, 8);
    // A ticket was scanned, so the organizer cancels.
    s.app
        .organizer()
        .post(&format!("/v1/admin/orders/{order_id}/cancel"), &json!({}))
        .await
        .expect_status(200);
    assert_eq!(left(&s).await, 10);
    let valid = s
        .count("SELECT count(*) FROM tickets WHERE show_id = $1::uuid AND status = 'valid'")
        .await;
    assert_eq!(valid, 0);

    // An expired hold's places come back when the sweeper ends it, once.
    let held = hold_places(&s, &cy, 6).await.json();
    sqlx::query("UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(held["hold_id"].as_str().unwrap())
        .execute(&s.app.db.pool)
        .await
        .unwrap();
    assert_eq!(left(&s).await, 4);
    for _ in 0..2 {
        origin::sweeper::sweep_once(&s.app.db.pool, 100, &s.app.origin.state.metrics)
            .await
            .unwrap();
        assert_eq!(left(&s).await, 10);
    }
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_called_off_show_gives_no_place_back() {
    let s = floor(10).await;
    let ana = s.fan("ana").await;
    hold_places(&s, &ana, 2).await.expect_status(201);
    let bo = s.fan("bo").await;
    let held = hold_places(&s, &bo, 3).await.json();
    let created = order(&bo, held["hold_id"].as_str().unwrap(), "o1")
        .await
        .json();
    confirm(
        &bo,
        created["payment"]["payment_id"].as_str().unwrap(),
        "pm_card_ok",
        "p1",
    )
    .await
    .expect_status(200);
    assert_eq!(left(&s).await, 5);

    let organizer = s.app.organizer();
    organizer
        .post(&format!("/v1/admin/shows/{}/cancel", s.show), &json!({}))
        .await
        .expect_status(202);
    assert_eq!(left(&s).await, 0, "off sale at once");
    let progress =
        crate::cancellation::done(&organizer, &s.show, std::time::Duration::from_secs(30)).await;
    assert_eq!(progress["holds_released"], 1);
    assert_eq!(progress["paid_orders_cancelled"], 1);
    assert_eq!(left(&s).await, 0, "nothing came back");
    let valid = s
        .count("SELECT count(*) FROM tickets WHERE show_id = $1::uuid AND status = 'valid'")
        .await;
    assert_eq!(valid, 0);
    hold_places(&s, &s.fan("cy").await, 1)
        .await
        .problem(409, "show_not_on_sale");
}

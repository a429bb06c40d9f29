//! Holds at the origin: all-or-nothing, idempotent, limited, expiring, owned, and never an
//! oversell under real concurrency.

use crate::orders::assert_invariants;
use onsale_tests::{admission, client, create_show, venue_body, Client, Reply, TestApp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// A show of 200 seats: sections A-D (tiers T1-T4), 5 rows of 10 seats each, and the
/// accounts of the fans who buy there, by name.
pub(crate) struct Stadium {
    pub(crate) app: TestApp,
    pub(crate) show: String,
    pub(crate) seats: Vec<i64>,
    accounts: tokio::sync::Mutex<std::collections::HashMap<String, (Uuid, String)>>,
}

pub(crate) async fn stadium_with(change: impl FnOnce(&mut origin::config::Config)) -> Stadium {
    let layout = venue_body(
        "Arena",
        "Oslo",
        &[("A", "T1"), ("B", "T2"), ("C", "T3"), ("D", "T4")],
        5,
        10,
    );
    stadium_of(layout, change).await
}

/// A show on sale now at a venue of `layout`, on an origin configured by `change`.
pub(crate) async fn stadium_of(
    layout: Value,
    change: impl FnOnce(&mut origin::config::Config),
) -> Stadium {
    let app = TestApp::spawn_with(change).await;
    let (_, show) = create_show(
        &app.organizer(),
        layout,
        "Finale",
        "Band",
        "2099-06-01T19:00:00Z",
        "2020-01-01T00:00:00Z",
    )
    .await;
    let seats = sqlx::query_scalar(
        "SELECT seat_id FROM seat_inventory WHERE show_id = $1::uuid ORDER BY layout_idx",
    )
    .bind(&show)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    Stadium {
        app,
        show,
        seats,
        accounts: Default::default(),
    }
}

pub(crate) async fn stadium() -> Stadium {
    stadium_with(|_| {}).await
}

impl Stadium {
    /// The account of the fan called `name` (made on first use): (account id, session).
    pub(crate) async fn account(&self, name: &str) -> (Uuid, String) {
        let mut accounts = self.accounts.lock().await;
        if let Some(account) = accounts.get(name) {
            return account.clone();
        }
        let account = onsale_tests::create_account(&self.app.db).await;
        accounts.insert(name.to_owned(), account.clone());
        account
    }

    /// The fan called `name` at the origin: admitted to the show (bearer) and signed in
    /// (session cookie), as a browser past the waiting room is.
    pub(crate) async fn fan(&self, name: &str) -> Client {
        let (account, session) = self.account(name).await;
        client(self.app.origin.addr())
            .bearer(&admission(&account.to_string(), &self.show))
            .cookie(&format!("onsale_session={session}"))
    }

    fn holds_path(&self) -> String {
        format!("/v1/shows/{}/holds", self.show)
    }

    pub(crate) async fn hold(&self, fan: &Client, seats: &[usize]) -> Reply {
        let ids: Vec<i64> = seats.iter().map(|&i| self.seats[i]).collect();
        fan.post_idempotent(
            &self.holds_path(),
            &Uuid::new_v4().to_string(),
            &json!({"seat_ids": ids}),
        )
        .await
    }

    pub(crate) async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .bind(&self.show)
            .fetch_one(&self.app.db.pool)
            .await
            .unwrap()
    }

    async fn held_seats(&self) -> i64 {
        self.count(
            "SELECT count(*) FROM seat_inventory WHERE show_id = $1::uuid AND status = 'held'",
        )
        .await
    }

    async fn holds(&self) -> i64 {
        self.count("SELECT count(*) FROM holds WHERE show_id = $1::uuid")
            .await
    }
}

/// A hold's JSON without its `server_time_ms` field.
fn without_server_time(body: &[u8]) -> String {
    let text = std::str::from_utf8(body).expect("UTF-8");
    let start = text.find("\"server_time_ms\":").expect("server_time_ms");
    let end = start + text[start..].find(',').expect("a field after it");
    format!("{}{}", &text[..start], &text[end..])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_is_created_read_and_released() {
    let s = stadium().await;
    let fan = s.fan("ana").await;
    let reply = s.hold(&fan, &[0, 1, 10]).await;
    reply.expect_status(201);
    let hold = reply.json();
    assert_eq!(hold["status"], "active");
    assert_eq!(hold["show_id"], s.show.as_str());
    assert_eq!(
        hold["seat_ids"],
        json!([s.seats[0], s.seats[1], s.seats[10]])
    );
    assert_eq!(hold["total_cents"], 27_000, "three T1 seats at 90.00");
    assert_eq!(hold["currency"], "EUR");
    let ttl_ms = hold["expires_at_ms"].as_i64().unwrap() - hold["server_time_ms"].as_i64().unwrap();
    assert!((479_000..=480_000).contains(&ttl_ms), "{ttl_ms}");
    assert_eq!(s.held_seats().await, 3);

    let path = format!("/v1/holds/{}", hold["hold_id"].as_str().unwrap());
    let read = fan.get(&path).await;
    assert_eq!(read.json()["status"], "active");
    // The claim's answer is written by the database: it is the hold as every other route
    // shows it, byte for byte but for the time it was said.
    assert_eq!(
        without_server_time(&reply.body),
        without_server_time(&read.body)
    );
    assert_eq!(fan.request(Method::DELETE, &path, None).await.status, 204);
    assert_eq!(fan.get(&path).await.json()["status"], "released");
    assert_eq!(
        fan.request(Method::DELETE, &path, None).await.status,
        204,
        "release is idempotent"
    );
    assert_eq!(s.held_seats().await, 0);
    assert_eq!(
        s.hold(&s.fan("ben").await, &[0, 1, 10]).await.status,
        201,
        "the seats are for sale again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn all_or_nothing() {
    let s = stadium().await;
    assert_eq!(s.hold(&s.fan("ana").await, &[5]).await.status, 201);
    let refused = s.hold(&s.fan("ben").await, &[4, 5, 6]).await;
    let problem = refused.problem(409, "seats_unavailable");
    assert_eq!(problem["unavailable_seat_ids"], json!([s.seats[5]]));
    assert_eq!(s.held_seats().await, 1, "seats 4 and 6 were not held");
    assert_eq!(s.holds().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_replays_refuses_reuse_and_reports_in_flight() {
    let s = stadium().await;
    let fan = s.fan("ana").await;
    let body = json!({"seat_ids": [s.seats[3], s.seats[2]]});
    let first = fan.post_idempotent(&s.holds_path(), "key-1", &body).await;
    assert_eq!(first.status, 201);
    let again = fan.post_idempotent(&s.holds_path(), "key-1", &body).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        again.body, first.body,
        "the original response, byte for byte"
    );
    let reordered = json!({"seat_ids": [s.seats[2], s.seats[3]]});
    assert_eq!(
        fan.post_idempotent(&s.holds_path(), "key-1", &reordered)
            .await
            .status,
        201,
        "same seats, same request"
    );
    fan.post_idempotent(&s.holds_path(), "key-1", &json!({"seat_ids": [s.seats[7]]}))
        .await
        .problem(422, "idempotency_key_reused");
    assert_eq!(s.holds().await, 1);

    // Another fan's key space is its own.
    assert_eq!(
        s.fan("ben")
            .await
            .post_idempotent(&s.holds_path(), "key-1", &json!({"seat_ids": [s.seats[7]]}))
            .await
            .status,
        201
    );

    // A request still in flight under the key: 409, and nothing is held twice.
    let request = origin::domain::HoldRequest::Seats(vec![s.seats[9]]);
    let route = format!("POST /v1/shows/{}/holds", s.show);
    let fingerprint =
        origin::idempotency::fingerprint(&route, &serde_json::to_vec(&request).unwrap());
    let (ana, _) = s.account("ana").await;
    sqlx::query("INSERT INTO idempotency_keys (fan_id, key, route, request_hash) VALUES ($3, 'key-2', $1, $2)")
        .bind(&route)
        .bind(&fingerprint)
        .bind(ana.to_string())
        .execute(&s.app.db.pool)
        .await
        .unwrap();
    fan.post_idempotent(&s.holds_path(), "key-2", &json!({"seat_ids": [s.seats[9]]}))
        .await
        .problem(409, "idempotency_in_flight");

    // Refusals are replayed too: the same request gets the same answer.
    let taken = fan
        .post_idempotent(&s.holds_path(), "key-3", &json!({"seat_ids": [s.seats[7]]}))
        .await;
    taken.problem(409, "seats_unavailable");
    let replayed = fan
        .post_idempotent(&s.holds_path(), "key-3", &json!({"seat_ids": [s.seats[7]]}))
        .await;
    replayed.problem(409, "seats_unavailable");
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_takeover_of_a_stale_claim_fences_out_the_slow_original() {
    let s = stadium().await;
    let fan = s.fan("ana").await;
    let body = json!({"seat_ids": [s.seats[11]]});
    let request = origin::domain::HoldRequest::Seats(vec![s.seats[11]]);
    let route = format!("POST /v1/shows/{}/holds", s.show);
    let fingerprint =
        origin::idempotency::fingerprint(&route, &serde_json::to_vec(&request).unwrap());
    // The original claimed the key long ago and is still working (a stalled connection).
    let (ana, _) = s.account("ana").await;
    let original = origin::idempotency::Claimed {
        fan: ana.to_string(),
        key: "slow-key".into(),
        claim: Uuid::new_v4(),
    };
    sqlx::query(
        "INSERT INTO idempotency_keys (fan_id, key, route, request_hash, claim, created_at)
         VALUES ($4, 'slow-key', $1, $2, $3, now() - interval '1 hour')",
    )
    .bind(&route)
    .bind(&fingerprint)
    .bind(original.claim)
    .bind(&original.fan)
    .execute(&s.app.db.pool)
    .await
    .unwrap();

    // A retry after the in-flight timeout takes the key over and does the work.
    let retry = fan
        .post_idempotent(&s.holds_path(), "slow-key", &body)
        .await;
    retry.expect_status(201);

    // The slow original finishes now: it may not store its answer, so its effect rolls back.
    let mut tx = s.app.db.pool.begin().await.unwrap();
    let stored = origin::idempotency::store_in(&mut tx, &original, 201, b"{}").await;
    assert!(
        matches!(stored, Err(origin::idempotency::StoreError::ClaimLost(_))),
        "the fenced-out original stored its answer: {stored:?}"
    );
    tx.rollback().await.unwrap();

    // Clients see one answer: the takeover's.
    let again = fan
        .post_idempotent(&s.holds_path(), "slow-key", &body)
        .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, retry.body);
    assert_eq!(s.holds().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_duplicates_hold_once() {
    let s = stadium().await;
    let fan = s.fan("ana").await;
    let body = json!({"seat_ids": [s.seats[20], s.seats[21]]});
    let path = s.holds_path();
    let replies = futures_util::future::join_all(
        (0..8).map(|_| fan.post_idempotent(&path, "same-key", &body)),
    )
    .await;
    let created = replies
        .iter()
        .filter(|r| r.status == 201 && r.header("idempotent-replayed").is_none())
        .count();
    assert_eq!(created, 1, "exactly one request did the work");
    for reply in &replies {
        assert!(
            reply.status == 201 || reply.status == 409,
            "{:?}",
            reply.status
        );
    }
    assert_eq!(s.holds().await, 1);
    assert_eq!(s.held_seats().await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_and_sale_state_are_enforced() {
    let s = stadium().await;
    let fan = s.fan("ana").await;
    let nine: Vec<usize> = (0..9).collect();
    let problem = s.hold(&fan, &nine).await.problem(422, "too_many_seats");
    assert_eq!(problem["max_seats_per_hold"], 8);
    let six = s.hold(&fan, &[0, 1, 2, 3, 4, 5]).await;
    assert_eq!(six.status, 201);
    let problem = s
        .hold(&fan, &[10, 11, 12])
        .await
        .problem(422, "fan_seat_limit");
    assert_eq!(problem["current_seats"], 6);
    assert_eq!(s.hold(&fan, &[10, 11]).await.status, 201, "up to the limit");
    assert_eq!(s.held_seats().await, 8);
    // A released hold's seats no longer count.
    let path = format!("/v1/holds/{}", six.json()["hold_id"].as_str().unwrap());
    assert_eq!(fan.request(Method::DELETE, &path, None).await.status, 204);
    assert_eq!(s.hold(&fan, &[20, 21, 22, 23, 24, 25]).await.status, 201);
    s.hold(&fan, &[30]).await.problem(422, "fan_seat_limit");
    assert_invariants(&s).await;

    let layout = venue_body("Club", "Oslo", &[("A", "T1")], 1, 5);
    let (_, later) = create_show(
        &s.app.organizer(),
        layout,
        "Soon",
        "Band",
        "2099-06-01T19:00:00Z",
        "2099-01-01T00:00:00Z",
    )
    .await;
    let early = client(s.app.origin.addr()).bearer(&admission("ana", &later));
    let seat: i64 =
        sqlx::query_scalar("SELECT min(seat_id) FROM seat_inventory WHERE show_id = $1::uuid")
            .bind(&later)
            .fetch_one(&s.app.db.pool)
            .await
            .unwrap();
    let problem = early
        .post_idempotent(
            &format!("/v1/shows/{later}/holds"),
            "k",
            &json!({"seat_ids": [seat]}),
        )
        .await
        .problem(409, "show_not_on_sale");
    assert_eq!(problem["show_status"], "scheduled");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_hold_frees_its_seats_at_once_and_the_sweeper_cleans_up() {
    // Holds live 0.3 s; the sweeper is too slow to matter for the lazy part.
    let s = stadium_with(|c| {
        c.holds.ttl_s = 0.3;
        c.holds.sweep_interval_ms = 3_600_000;
    })
    .await;
    let first = s.hold(&s.fan("ana").await, &[0, 1]).await.json();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Lazy: seat 1 is free before any sweep, and ana's hold is over.
    let second = s.hold(&s.fan("ben").await, &[1, 2]).await;
    second.expect_status(201);
    let path = format!("/v1/holds/{}", first["hold_id"].as_str().unwrap());
    assert_eq!(
        s.fan("ana").await.get(&path).await.json()["status"],
        "expired"
    );
    // Seat 0 still reads `held` (expired) until a sweep; it is claimable all the same.
    assert_eq!(s.hold(&s.fan("cem").await, &[0]).await.status, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweeper_returns_expired_seats_within_its_interval() {
    let s = stadium_with(|c| {
        c.holds.ttl_s = 0.2;
        c.holds.sweep_interval_ms = 50;
    })
    .await;
    assert_eq!(s.hold(&s.fan("ana").await, &[0, 1, 2]).await.status, 201);
    onsale_tests::eventually(
        "the sweeper to free the seats",
        Duration::from_secs(5),
        || async { (s.held_seats().await == 0).then_some(()) },
    )
    .await;
    let ended = s
        .count("SELECT count(*) FROM holds WHERE show_id = $1::uuid AND status = 'expired'")
        .await;
    assert_eq!(ended, 1);
    let named = s
        .count(
            "SELECT count(*) FROM seat_inventory WHERE show_id = $1::uuid AND hold_id IS NOT NULL",
        )
        .await;
    assert_eq!(named, 0);
    assert_eq!(
        s.count("SELECT count(*) FROM fan_seats WHERE show_id = $1::uuid")
            .await,
        0,
        "ended holds leave no count"
    );
    let metrics =
        String::from_utf8(client(s.app.origin.addr()).get("/metrics").await.body).unwrap();
    assert!(
        metrics.contains(r#"onsale_origin_holds_ended_total{reason="expired_swept"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("onsale_origin_hold_sweep_lag_seconds"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_owner_sees_or_releases_a_hold() {
    let s = stadium().await;
    let hold = s.hold(&s.fan("ana").await, &[0]).await.json();
    let path = format!("/v1/holds/{}", hold["hold_id"].as_str().unwrap());
    let ben = s.fan("ben").await;
    ben.get(&path).await.problem(404, "hold_not_found");
    ben.request(Method::DELETE, &path, None)
        .await
        .problem(404, "hold_not_found");
    assert_eq!(s.held_seats().await, 1);
    s.fan("ana")
        .await
        .get("/v1/holds/not-a-hold")
        .await
        .problem(404, "hold_not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn best_available_keeps_groups_together_nearest_the_stage() {
    let s = stadium().await;
    let best = |fan: &'static str, body: Value| {
        let s = &s;
        async move {
            let reply = s
                .fan(fan)
                .await
                .post_idempotent(&s.holds_path(), "k", &body)
                .await;
            reply.expect_status(201);
            reply.json()
        }
    };
    let seats = |indexes: std::ops::Range<usize>| -> Value {
        json!(indexes.map(|i| s.seats[i]).collect::<Vec<_>>())
    };
    // The stage faces the middle of each section's rows (seats 5 and 6). Row 1 of A loses
    // seats 3 and 7: its runs are 1-2, 4-6 and 8-10, so four together sit in row 2.
    assert_eq!(s.hold(&s.fan("ana").await, &[2, 6]).await.status, 201);
    let four = best("ben", json!({"section_id": "A", "quantity": 4})).await;
    assert_eq!(four["seat_ids"], seats(13..17), "row 2, seats 4-7");
    assert_eq!(four["adjacent"], true);
    let three = best("cem", json!({"section_id": "A", "quantity": 3})).await;
    assert_eq!(three["seat_ids"], seats(3..6), "row 1, seats 4-6");

    // A tier looks across its sections: B and C are tiers of their own, so T2 is B alone.
    let tier = best("dan", json!({"price_tier": "T2", "quantity": 2})).await;
    assert_eq!(tier["seat_ids"], seats(54..56), "B, row 1, seats 5-6");

    // Section D keeps no two free seats side by side: the group is split, and says so.
    let every_other: Vec<usize> = (150..200).filter(|i| i % 2 == 1).collect();
    assert_eq!(
        s.hold(&s.fan("eve").await, &every_other[..8]).await.status,
        201
    );
    for (k, chunk) in every_other[8..].chunks(8).enumerate() {
        let fan = ["fay", "gus", "hal", "ian"][k];
        assert_eq!(s.hold(&s.fan(fan).await, chunk).await.status, 201);
    }
    let split = best("jon", json!({"section_id": "D", "quantity": 2})).await;
    assert_eq!(split["adjacent"], false, "{split}");
    assert_eq!(
        split["seat_ids"],
        json!([s.seats[154], s.seats[164]]),
        "seat 5 of rows 1 and 2: the best two single seats"
    );
    let path = format!("/v1/holds/{}", split["hold_id"].as_str().unwrap());
    assert_eq!(
        s.fan("jon").await.get(&path).await.json()["adjacent"],
        false
    );

    // Named seats say nothing of adjacency.
    let named = s.hold(&s.fan("kim").await, &[100]).await.json();
    assert!(named.get("adjacent").is_none(), "{named}");
    s.fan("lea")
        .await
        .post_idempotent(
            &s.holds_path(),
            "k",
            &json!({"section_id": "Z", "quantity": 2}),
        )
        .await
        .problem(422, "unknown_section");
    s.fan("lea")
        .await
        .post_idempotent(
            &s.holds_path(),
            "k2",
            &json!({"price_tier": "T9", "quantity": 2}),
        )
        .await
        .problem(422, "unknown_price_tier");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_changes_nothing() {
    let s = stadium_with(|c| c.http.body_limit_bytes = 4096).await;
    let fan = s.fan("ana").await;
    let path = s.holds_path();
    let send = |request: reqwest::RequestBuilder| fan.send(request);
    send(
        fan.raw(Method::POST, &path)
            .json(&json!({"seat_ids": [s.seats[0]]})),
    )
    .await
    .problem(400, "idempotency_key_required");
    send(
        fan.raw(Method::POST, &path)
            .header("idempotency-key", "has space")
            .json(&json!({"seat_ids": [s.seats[0]]})),
    )
    .await
    .problem(400, "idempotency_key_required");
    send(
        fan.raw(Method::POST, &path)
            .header("idempotency-key", "k")
            .header("content-type", "application/json")
            .body("{\"seat_ids\": [1,"),
    )
    .await
    .problem(400, "malformed_json");
    fan.post_idempotent(&path, "k", &json!({"seat_ids": "all"}))
        .await
        .problem(400, "invalid_body");
    fan.post_idempotent(&path, "k", &json!({"seat_ids": [1.5]}))
        .await
        .problem(400, "invalid_body");
    fan.post_idempotent(&path, "k", &json!({"seat_ids": [], "colour": "red"}))
        .await
        .problem(400, "invalid_body");
    fan.post_idempotent(&path, "k", &json!({"seat_ids": []}))
        .await
        .problem(422, "no_seats");
    fan.post_idempotent(&path, "k", &json!({"seat_ids": [s.seats[0], s.seats[0]]}))
        .await
        .problem(422, "duplicate_seats");
    let unknown = fan
        .post_idempotent(&path, "k2", &json!({"seat_ids": [s.seats[0], 999_999_999]}))
        .await;
    assert_eq!(
        unknown.problem(422, "unknown_seats")["unknown_seat_ids"],
        json!([999_999_999])
    );
    let huge: Vec<i64> = (0..2000).collect();
    fan.post_idempotent(&path, "k3", &json!({"seat_ids": huge}))
        .await
        .problem(413, "body_too_large");
    fan.post_idempotent(
        "/v1/shows/0193a6f0-ffff-7000-8000-000000000000/holds",
        "k4",
        &json!({"seat_ids": [1]}),
    )
    .await
    .problem(403, "wrong_show");
    assert_eq!((s.holds().await, s.held_seats().await), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_valid_admission_for_this_show_gets_in() {
    let s = stadium().await;
    let path = s.holds_path();
    let body = json!({"seat_ids": [s.seats[0]]});
    let origin = client(s.app.origin.addr());
    origin
        .post_idempotent(&path, "k", &body)
        .await
        .problem(401, "admission_required");

    let signer = &onsale_tests::keys().signer;
    let now = onsale_tests::unix_now();
    use onsale_contract::tokens::TokenType;
    let expired = signer.issue(TokenType::Admit, "ana", &s.show, now - 3600, 60, None);
    let queue = signer.issue(TokenType::Queue, "ana", &s.show, now, 600, Some(1));
    let (foreign_key, _) = onsale_contract::tokens::generate_pem_pair();
    let foreign = onsale_contract::tokens::Signer::from_pem(&foreign_key, "onsale-edge")
        .unwrap()
        .issue(TokenType::Admit, "ana", &s.show, now, 600, None);
    let valid = admission("ana", &s.show);
    let parts: Vec<&str> = valid.split('.').collect();
    let header = |alg: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, signer.kid()))
    };
    let none = format!("{}.{}.", header("none"), parts[1]);
    let hs256 = format!("{}.{}.{}", header("HS256"), parts[1], parts[2]);
    for (name, token) in [
        ("expired", expired),
        ("queue", queue),
        ("foreign", foreign),
        ("none", none),
        ("hs256", hs256),
        ("garbage", "x.y.z".to_owned()),
    ] {
        let reply = origin
            .clone()
            .bearer(&token)
            .post_idempotent(&path, "k", &body)
            .await;
        assert_eq!(reply.status, 401, "{name}");
        assert_eq!(reply.json()["join"], "/v1/waiting-room/sessions");
    }
    let other_show = admission("ana", &Uuid::new_v4().to_string());
    origin
        .clone()
        .bearer(&other_show)
        .post_idempotent(&path, "k", &body)
        .await
        .problem(403, "wrong_show");
    assert_eq!(s.holds().await, 0);

    let cookie = origin
        .send(
            origin
                .raw(Method::POST, &path)
                .header("cookie", format!("theme=dark; onsale_admit={valid}"))
                .header("idempotency-key", "c")
                .json(&body),
        )
        .await;
    assert_eq!(
        cookie.status, 201,
        "the admission cookie works like the bearer token"
    );
}

/// 64 fans fight over 200 seats with overlapping 1-4 seat requests and random releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_fans_never_oversell_two_hundred_seats() {
    let s = stadium().await;
    let seats = s.seats.clone();
    let mut fans = Vec::new();
    for n in 0..64u64 {
        fans.push((n, s.fan(&format!("fan-{n}")).await));
    }
    let tasks = fans.into_iter().map(|(n, fan)| {
        let path = s.holds_path();
        let seats = seats.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(n);
            let mut mine: Vec<(String, usize)> = Vec::new();
            let mut conflicts = 0;
            for attempt in 0..12 {
                let len = rng.random_range(1..=4);
                let start = rng.random_range(0..=seats.len() - len);
                let ids: Vec<i64> = seats[start..start + len].to_vec();
                let reply = fan
                    .post_idempotent(&path, &format!("{n}-{attempt}"), &json!({"seat_ids": ids}))
                    .await;
                match reply.status.as_u16() {
                    201 => mine.push((reply.json()["hold_id"].as_str().unwrap().to_owned(), len)),
                    409 => conflicts += 1,
                    422 => assert_eq!(reply.json()["code"], "fan_seat_limit"),
                    other => panic!(
                        "unexpected {other}: {}",
                        String::from_utf8_lossy(&reply.body)
                    ),
                }
                if !mine.is_empty() && rng.random_bool(0.3) {
                    let (hold, _) = mine.remove(rng.random_range(0..mine.len()));
                    assert_eq!(
                        fan.request(Method::DELETE, &format!("/v1/holds/{hold}"), None)
                            .await
                            .status,
                        204
                    );
                }
            }
            (
                mine.iter().map(|(_, n)| *n as i64).sum::<i64>(),
                mine.len() as i64,
                conflicts,
            )
        })
    });
    let results: Vec<(i64, i64, i64)> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let (seats_held, holds_active, conflicts) = results
        .iter()
        .fold((0, 0, 0), |a, r| (a.0 + r.0, a.1 + r.1, a.2 + r.2));
    assert!(conflicts > 0, "the requests overlapped");

    let pool = &s.app.db.pool;
    let doubled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT unnest(seat_ids) AS seat_id FROM holds
                               WHERE show_id = $1::uuid AND status = 'active' AND expires_at > now()
                               GROUP BY 1 HAVING count(*) > 1) d",
    )
    .bind(&s.show)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(doubled, 0, "no seat is in two active holds");
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM holds h WHERE h.show_id = $1::uuid AND h.status = 'active'
           AND h.seat_count <> (SELECT count(*) FROM seat_inventory i
                                WHERE i.show_id = h.show_id AND i.hold_id = h.id AND i.status = 'held')",
    )
    .bind(&s.show)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(mismatched, 0, "every active hold's seats are held by it");
    let orphaned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM seat_inventory i WHERE i.show_id = $1::uuid AND i.status = 'held'
           AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.id = i.hold_id AND h.status = 'active')",
    )
    .bind(&s.show)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(orphaned, 0, "every held seat belongs to an active hold");
    assert_eq!(
        s.held_seats().await,
        seats_held,
        "the fans' tally agrees with the database"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM holds WHERE show_id = $1::uuid AND status = 'active'")
            .await,
        holds_active
    );
    assert_invariants(&s).await;
}

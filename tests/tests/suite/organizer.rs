//! The organizer API: auth, validation, and that a refused request writes nothing.

use onsale_tests::{client, venue_body, TestApp};
use serde_json::json;

async fn venue_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM venues")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn needs_the_admin_token() {
    let app = TestApp::spawn().await;
    let body = venue_body("Hall", "Oslo", &[("A", "T1")], 1, 1);
    client(app.origin.addr())
        .post("/v1/admin/venues", &body)
        .await
        .problem(401, "unauthorized");
    client(app.origin.addr())
        .bearer("test-admin-token-0123456788")
        .post("/v1/admin/venues", &body)
        .await
        .problem(401, "unauthorized");
    assert_eq!(venue_count(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_are_problems_and_change_nothing() {
    let app = TestApp::spawn().await;
    let organizer = app.organizer();
    let malformed = organizer
        .send(
            organizer
                .raw(reqwest::Method::POST, "/v1/admin/venues")
                .header("content-type", "application/json")
                .body("{\"name\": "),
        )
        .await;
    malformed.problem(400, "malformed_json");
    let wrong_type = organizer
        .post(
            "/v1/admin/venues",
            &json!({"name": 5, "city": "Oslo", "sections": []}),
        )
        .await;
    wrong_type.problem(400, "invalid_body");
    let unknown_field = organizer
        .post(
            "/v1/admin/venues",
            &json!({"name": "Hall", "city": "Oslo", "sections": [], "capacity": 9}),
        )
        .await;
    unknown_field.problem(400, "invalid_body");
    // The fields in order, as an array, are not the object.
    organizer
        .post("/v1/admin/venues", &json!(["Hall", "Oslo", []]))
        .await
        .problem(400, "invalid_body");
    organizer
        .post(
            "/v1/admin/venues",
            &json!({"name": "Hall", "city": "Oslo", "sections": []}),
        )
        .await
        .problem(422, "invalid_field");
    let mut duplicate_seat = venue_body("Hall", "Oslo", &[("A", "T1")], 1, 2);
    duplicate_seat["sections"][0]["rows"][0]["seats"][1]["number"] = json!(1);
    organizer
        .post("/v1/admin/venues", &duplicate_seat)
        .await
        .problem(422, "invalid_field");
    let not_json = organizer
        .send(
            organizer
                .raw(reqwest::Method::POST, "/v1/admin/venues")
                .body("name=Hall"),
        )
        .await;
    not_json.problem(415, "unsupported_media_type");
    assert_eq!(venue_count(&app).await, 0);

    // A show must price every tier the venue uses; refused, it leaves no show and no partition.
    let (event_id, _) = onsale_tests::create_catalog(
        &organizer,
        "Jazz",
        "Blue Notes",
        "Lyon",
        "2027-03-10T20:00:00Z",
    )
    .await;
    let shows_and_partitions = || async {
        let shows: i64 = sqlx::query_scalar("SELECT count(*) FROM shows")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        let partitions: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'seat_inventory'::regclass",
        )
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        (shows, partitions)
    };
    let before = shows_and_partitions().await;
    let missing_tier = organizer
        .post(
            &format!("/v1/admin/events/{event_id}/shows"),
            &json!({"starts_at": "2027-06-01T19:00:00Z", "on_sale_at": "2027-01-01T10:00:00Z", "currency": "EUR",
                    "price_tiers": [{"tier": "T1", "name": "Front", "price_cents": 100}]}),
        )
        .await;
    let problem = missing_tier.problem(422, "missing_price_tier");
    assert!(
        problem["detail"].as_str().unwrap().contains("T2"),
        "{problem}"
    );
    organizer
        .post(
            "/v1/admin/events/0193a6f0-ffff-7000-8000-000000000000/shows",
            &json!({"starts_at": "2027-06-01T19:00:00Z", "on_sale_at": "2027-01-01T10:00:00Z", "currency": "EUR",
                    "price_tiers": [{"tier": "T1", "name": "Front", "price_cents": 100}]}),
        )
        .await
        .problem(404, "event_not_found");
    assert_eq!(
        shows_and_partitions().await,
        before,
        "a refused show leaves nothing"
    );
    organizer
        .post("/v1/admin/events", &json!({"venue_id": "0193a6f0-ffff-7000-8000-000000000000", "name": "X", "performer": "Y"}))
        .await
        .problem(422, "unknown_venue");
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_the_limit_are_refused() {
    let db = onsale_tests::db().await;
    let origin = onsale_tests::origin(&db)
        .config(|c| {
            c.http.body_limit_bytes = 2048;
            c.http.admin_body_limit_bytes = 4096;
        })
        .run()
        .await;
    let big = venue_body("Hall", "Oslo", &[("A", "T1")], 10, 20);
    client(origin.addr())
        .bearer(onsale_tests::ADMIN_TOKEN)
        .post("/v1/admin/venues", &big)
        .await
        .problem(413, "body_too_large");
}

//! The demo on-sale: what `origin seed` creates (the catalog and the demo accounts), and
//! that a second run changes nothing.

use onsale_tests::{client, config_dir, TestApp};
use origin::seed::{seed, DemoConfig};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread")]
async fn demo_seed_is_complete_and_idempotent() {
    let app = TestApp::spawn().await;
    let pool = &app.db.pool;
    let demo = DemoConfig::load(&config_dir().join("demo.toml")).unwrap();
    let accounts = &app.origin.state.config.accounts;
    let first = seed(pool, &demo, accounts, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(first.created.len(), 8, "{first:?}");

    let stadium_show = demo.stadium.event.event.show_id;
    let (seats, sections, tiers, accessible, obstructed): (i64, i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT count(*), count(DISTINCT i.section_id), count(DISTINCT i.price_tier),
                count(*) FILTER (WHERE s.accessible), count(*) FILTER (WHERE s.obstructed)
         FROM seat_inventory i JOIN seats s ON s.id = i.seat_id WHERE i.show_id = $1",
        )
        .bind(stadium_show)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(seats, 80_000);
    assert!(sections >= 60, "{sections} sections");
    assert!(tiers >= 4, "{tiers} tiers");
    assert!(accessible > 0 && obstructed > 0);
    let theater: i64 = sqlx::query_scalar("SELECT count(*) FROM seat_inventory WHERE show_id = $1")
        .bind(demo.theater.event.show_id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(theater, 500);

    let second = seed(pool, &demo, accounts, chrono::Utc::now())
        .await
        .unwrap();
    assert!(second.created.is_empty(), "{second:?}");
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM seat_inventory")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(total, 80_500);

    let listing = app.fan().get("/v1/events").await.json();
    let ids: Vec<Uuid> = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.contains(&demo.stadium.event.event.event_id));
    assert!(ids.contains(&demo.theater.event.event_id));
    let show = app
        .fan()
        .get(&format!("/v1/shows/{stadium_show}"))
        .await
        .json();
    assert_eq!(show["seat_count"], 80_000);
    assert_eq!(show["status"], "on_sale");

    // The demo accounts sign in with the documented credentials.
    assert_eq!(demo.accounts.len(), 2);
    for account in &demo.accounts {
        let signed_in = client(app.origin.addr())
            .post(
                "/v1/sessions",
                &serde_json::json!({"email": account.email, "password": account.password}),
            )
            .await;
        signed_in.expect_status(201);
        let token = signed_in.json()["session_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let me = client(app.origin.addr()).bearer(&token).get("/v1/me").await;
        me.expect_status(200);
        let me = me.json();
        assert_eq!(me["account_id"], account.account_id.to_string());
        assert_eq!(me["role"], serde_json::to_value(account.role).unwrap());
    }
    let roles: Vec<String> = sqlx::query_scalar("SELECT role FROM accounts ORDER BY role")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(roles, ["fan", "organizer"], "seeded once");
}

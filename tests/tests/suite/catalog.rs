//! The public catalog, read by a fan through the edge.

use onsale_tests::{create_catalog, TestApp};
use reqwest::Method;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn lists_filters_and_pages_events_through_the_edge() {
    let app = TestApp::spawn().await;
    let organizer = app.organizer();
    let (jazz, _) = create_catalog(
        &organizer,
        "Night of Jazz",
        "The Blue Notes",
        "Lyon",
        "2027-03-10T20:00:00Z",
    )
    .await;
    let (rock, _) = create_catalog(
        &organizer,
        "Rock Arena",
        "Thunder Kings",
        "Paris",
        "2027-05-01T19:00:00Z",
    )
    .await;
    let (folk, _) = create_catalog(
        &organizer,
        "Folk Evening",
        "Meadow Band",
        "Lyon",
        "2027-04-02T18:30:00Z",
    )
    .await;
    let fan = app.fan();

    let all = fan.get("/v1/events").await;
    assert_eq!(all.status, 200);
    assert_eq!(all.header("cache-control"), Some("public, max-age=5"));
    let ids: Vec<String> = all.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        [jazz.clone(), folk.clone(), rock.clone()],
        "ordered by first show"
    );

    let names = |reply: onsale_tests::Reply| -> Vec<String> {
        reply.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(fan.get("/v1/events?city=lyon").await),
        ["Night of Jazz", "Folk Evening"]
    );
    assert_eq!(names(fan.get("/v1/events?q=thund").await), ["Rock Arena"]);
    assert_eq!(
        names(fan.get("/v1/events?q=night%20blue").await),
        ["Night of Jazz"]
    );
    assert_eq!(
        names(fan.get("/v1/events?q=blue%20rock").await),
        Vec::<String>::new()
    );
    assert_eq!(
        names(fan.get("/v1/events?from=2027-04-01&to=2027-04-30").await),
        ["Folk Evening"]
    );
    assert_eq!(
        names(fan.get("/v1/events?to=2027-03-10").await),
        ["Night of Jazz"],
        "a plain `to` date includes that whole day"
    );

    // Walk the listing one event per page: every event exactly once, in order.
    let mut seen = Vec::new();
    let mut path = "/v1/events?limit=1".to_owned();
    loop {
        let page = fan.get(&path).await.json();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/events?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test(flavor = "multi_thread")]
async fn event_show_and_shows_list_carry_what_a_fan_needs() {
    let app = TestApp::spawn().await;
    let (event_id, show_id) = create_catalog(
        &app.organizer(),
        "Night of Jazz",
        "The Blue Notes",
        "Lyon",
        "2027-03-10T20:00:00Z",
    )
    .await;
    let fan = app.fan();

    let event = fan.get(&format!("/v1/events/{event_id}")).await.json();
    assert_eq!(event["performer"], "The Blue Notes");
    assert_eq!(event["venue"]["city"], "Lyon");

    let shows = fan
        .get(&format!("/v1/events/{event_id}/shows"))
        .await
        .json();
    assert_eq!(shows["items"].as_array().unwrap().len(), 1);
    assert_eq!(shows["items"][0]["id"], show_id.as_str());

    let show = fan.get(&format!("/v1/shows/{show_id}")).await.json();
    assert_eq!(show["status"], "on_sale", "on-sale time has passed");
    assert_eq!(show["seat_count"], 20);
    assert_eq!(show["currency"], "EUR");
    assert_eq!(show["on_sale_at"], "2020-01-01T00:00:00Z");
    let tiers: Vec<(String, i64)> = show["price_tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tier"].as_str().unwrap().to_owned(),
                t["price_cents"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(tiers, [("T1".to_owned(), 9000), ("T2".to_owned(), 4000)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_ids_and_bad_filters_are_problems() {
    let app = TestApp::spawn().await;
    let fan = app.fan();
    let unknown = "0193a6f0-ffff-7000-8000-000000000000";
    fan.get(&format!("/v1/events/{unknown}"))
        .await
        .problem(404, "event_not_found");
    fan.get(&format!("/v1/events/{unknown}/shows"))
        .await
        .problem(404, "event_not_found");
    fan.get(&format!("/v1/shows/{unknown}"))
        .await
        .problem(404, "show_not_found");
    fan.get("/v1/shows/not-a-uuid")
        .await
        .problem(404, "show_not_found");

    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("from=tomorrow", "from"),
        ("from=2027-05-01&to=2027-04-01", "to"),
        ("venue_id=12", "venue_id"),
        ("cursor=bogus", "cursor"),
        ("sort=price", "query"),
    ] {
        let body = fan
            .get(&format!("/v1/events?{query}"))
            .await
            .problem(400, "invalid_query");
        assert_eq!(body["param"], param, "{query}");
    }

    fan.get("/v1/nowhere").await.problem(404, "route_not_found");
    fan.get("/v1/admin/venues")
        .await
        .problem(404, "route_not_found");
    let head = fan.send(fan.raw(Method::HEAD, "/v1/nowhere")).await;
    assert_eq!(head.status, 404);
    assert!(head.body.is_empty(), "HEAD carries no body");
    let refused = fan.request(Method::DELETE, "/v1/events", None).await;
    refused.problem(405, "method_not_allowed");
    assert_eq!(refused.header("allow"), Some("GET, HEAD"));

    // Straight to the origin (the edge refuses such a segment as no route): an id that does
    // not even decode to UTF-8 is the resource's 404 problem, not a plain-text 400.
    let origin = onsale_tests::client(app.origin.addr());
    origin
        .get("/v1/events/%FF%FE")
        .await
        .problem(404, "event_not_found");
    origin
        .get("/v1/shows/%C3%28")
        .await
        .problem(404, "show_not_found");
    fan.get("/v1/events/%FF%FE")
        .await
        .problem(404, "route_not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn edge_reports_health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    let ops = onsale_tests::client(app.edge.admin);
    assert_eq!(ops.get("/healthz").await.status, 200);
    assert_eq!(ops.get("/readyz").await.status, 200);
    app.fan().get("/v1/events").await;
    // The edge counts a request in its logging phase, after the response went out.
    onsale_tests::eventually(
        "the edge to count the request",
        Duration::from_secs(5),
        || async {
            let metrics = String::from_utf8(ops.get("/metrics").await.body).unwrap();
            metrics
                .contains(r#"onsale_edge_http_requests_total{class="catalog",status="200"} 1"#)
                .then_some(())
        },
    )
    .await;

    let origin_ops = onsale_tests::client(app.origin.addr());
    assert_eq!(origin_ops.get("/readyz").await.status, 200);
    let metrics = String::from_utf8(origin_ops.get("/metrics").await.body).unwrap();
    assert!(metrics.contains(r#"route="/v1/events""#), "{metrics}");
    assert!(
        metrics.contains("onsale_origin_db_pool_connections"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn edge_is_not_ready_and_answers_503_without_an_origin() {
    let unused = onsale_tests::free_port();
    let edge = onsale_tests::edge().upstream(unused).run();
    // An origin leaves the pool after its second failed check.
    let not_ready = onsale_tests::eventually(
        "the edge to report not ready",
        Duration::from_secs(10),
        || async {
            let reply = onsale_tests::client(edge.admin).get("/readyz").await;
            (reply.status == 503).then_some(reply)
        },
    )
    .await;
    not_ready.problem(503, "not_ready");
    let reply = onsale_tests::client(edge.public).get("/v1/events").await;
    reply.problem(503, "no_healthy_origin");
    assert!(reply.header("retry-after").is_some());
}

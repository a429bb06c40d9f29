//! The OpenAPI documents: the origin's made from its handlers, the edge's public one made
//! from the origin's and kept in `edge-proxy/web/openapi.json`, the edge's operations
//! listener's, all served, every documented route served, and the running stack fuzzed
//! against them (schemathesis).

use edge_proxy::config::Quota;
use onsale_tests::{client, TestApp};
use reqwest::Method;
use seatmap_builder::metrics::Metrics;
use seatmap_builder::Builder;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

fn edge_document_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../edge-proxy/web/openapi.json")
}

/// The edge's document as the edge and the origin stand now.
fn edge_document() -> String {
    let document = edge_proxy::openapi::public_document(
        &origin::openapi(),
        seatmap_builder::document_schemas(),
    );
    serde_json::to_string_pretty(&document).unwrap() + "\n"
}

/// Every (method, path template) of `document`.
fn operations(document: &Value) -> Vec<(Method, String)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            found.push((method.to_uppercase().parse().unwrap(), path.clone()));
        }
    }
    found
}

#[test]
fn the_edges_document_is_the_origins_public_routes_and_its_own() {
    let made = edge_document();
    let path = edge_document_path();
    if std::env::var_os("ONSALE_BLESS").is_some() {
        std::fs::write(&path, &made).unwrap();
    }
    let kept = std::fs::read_to_string(&path).unwrap();
    assert!(
        kept == made,
        "edge-proxy/web/openapi.json is stale: run `ONSALE_BLESS=1 cargo test -p onsale-tests \
         openapi` and commit it"
    );
    let document: Value = serde_json::from_str(&made).unwrap();
    let paths: Vec<String> = operations(&document)
        .into_iter()
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    // The edge's own routes, and the origin's it passes on; nothing of the organizer's.
    for route in [
        "POST /v1/waiting-room/sessions",
        "GET /v1/waiting-room/sessions/current",
        "GET /v1/waiting-room/challenge",
        "GET /v1/shows/{id}/seat-map",
        "GET /v1/shows/{id}/availability",
        "POST /v1/shows/{id}/holds",
        "GET /v1/orders",
        "POST /v1/sessions",
    ] {
        assert!(paths.contains(&route.to_owned()), "{route} in {paths:?}");
    }
    assert!(
        paths
            .iter()
            .all(|p| !p.contains("/admin/") && !p.contains("healthz")),
        "{paths:?}"
    );
    // A passed-on purchase route lists the gate's codes beside the origin's.
    let hold = &document["paths"]["/v1/shows/{id}/holds"]["post"]["responses"];
    let codes = |status: &str| hold[status]["x-problem-codes"].clone();
    assert_eq!(
        codes("401"),
        serde_json::json!(["admission_required", "admission_spent"])
    );
    assert!(codes("409").as_array().unwrap().len() > 2);
    assert_eq!(codes("502"), serde_json::json!(["upstream_failed"]));
    // No schema is kept that nothing refers to: the organizer's bodies are pruned.
    let text = made.as_str();
    for name in document["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(
            text.contains(&format!("#/components/schemas/{name}\"")),
            "{name} unused"
        );
    }
}

#[tokio::test]
async fn both_serve_their_documents_and_every_documented_route_is_served() {
    let app = TestApp::spawn().await;
    let origin = client(app.origin.addr());
    let served = origin.get("/openapi.json").await;
    served.expect_status(200);
    assert_eq!(served.header("content-type"), Some("application/json"));
    let document = served.json();
    assert_eq!(document, serde_json::to_value(origin::openapi()).unwrap());
    assert_eq!(document["openapi"], "3.1.0");

    let edge = app.fan().get("/openapi.json").await;
    edge.expect_status(200);
    assert_eq!(edge.header("content-type"), Some("application/json"));
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(edge_document_path()).unwrap()).unwrap();
    assert_eq!(edge.json(), kept);

    let operations_listener = client(app.edge.admin).get("/openapi.json").await;
    operations_listener.expect_status(200);
    let served = operations_listener.json();
    assert_eq!(served["info"]["title"], "onsale edge operations");
    let routes: Vec<String> = operations(&served)
        .into_iter()
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    for route in [
        "GET /readyz",
        "GET /admin/shows/{id}/queue",
        "PUT /admin/shows/{id}/queue",
        "POST /admin/shows/{id}/pause",
    ] {
        assert!(routes.contains(&route.to_owned()), "{route} in {routes:?}");
    }

    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    for (method, template) in operations(&document) {
        let operation = &document["paths"][&template][method.as_str().to_lowercase()];
        for requirement in operation["security"].as_array().into_iter().flatten() {
            for name in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(name), "{method} {template}: {name}");
            }
        }
        let responses = operation["responses"].as_object().unwrap();
        // Served: whatever the answer, it is not "no such route" nor "no such method".
        let path = template.replace("{id}", &uuid::Uuid::new_v4().to_string());
        let reply = origin.request(method.clone(), &path, None).await;
        let code = serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .and_then(|body| body.get("code").cloned())
            .unwrap_or(Value::Null);
        assert!(
            code != "route_not_found" && code != "method_not_allowed",
            "{method} {template} is documented but not served: {code}"
        );
        let status = reply.status.as_u16().to_string();
        assert!(
            responses.contains_key(&status),
            "{method} {template} answered {status}, which it does not document"
        );
    }
}

/// schemathesis, as `scripts/test` installs it (pinned, in `.onsale/venv`), or
/// `ONSALE_SCHEMATHESIS`.
fn schemathesis() -> PathBuf {
    match std::env::var_os("ONSALE_SCHEMATHESIS") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.onsale/venv/bin/schemathesis"),
    }
}

/// Runs schemathesis on the operations of `document` tagged `tags`, against `base`, with
/// `headers`; the failures it reports, if any.
async fn conformance(
    document: &str,
    base: &str,
    tags: &[&str],
    headers: &[String],
) -> Option<String> {
    let binary = schemathesis();
    assert!(
        binary.exists(),
        "{} is missing: scripts/test installs it (or set ONSALE_SCHEMATHESIS)",
        binary.display()
    );
    // schemathesis keeps failures it found in its working directory and replays them
    // first: each run starts from nothing, so a run depends only on its seed.
    let scratch = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(&binary);
    command
        .current_dir(scratch.path())
        .arg("run")
        .arg(document)
        .args(["--url", base])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--checks", "all"])
        // Not checked: resources made in one call and used in the next (the stateful phase's,
        // not run), and "a schema-valid request is accepted": business rules refuse what no
        // schema can rule out (a reset code must be the one sent, seats must be free), with
        // the codes the document lists.
        .args([
            "--exclude-checks",
            "use_after_free,ensure_resource_availability,positive_data_acceptance",
        ])
        .args(["--max-examples", "25", "--seed", "1", "--workers", "1"])
        .args(["--suppress-health-check", "all"])
        .args(["--request-timeout", "30"])
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .kill_on_drop(true);
    for tag in tags {
        command.args(["--include-tag", tag]);
    }
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command.output().await.expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (!output.status.success()).then_some(report)
}

#[tokio::test]
async fn the_running_stack_answers_as_its_documents_say() {
    let db = onsale_tests::db().await;
    let origin = onsale_tests::origin(&db).run().await;
    // The run checks the document, not the limiter (tested on its own): no 429 hides an
    // answer.
    let edge = onsale_tests::edge()
        .upstream(origin.addr())
        .config(|config| {
            let unlimited = Quota {
                per_minute: 1_000_000,
                burst: 100_000,
            };
            config.admin.token = Some(onsale_contract::config::Secret::new(
                onsale_tests::ADMIN_TOKEN,
            ));
            let limits = &mut config.limits;
            for quota in [
                &mut limits.per_ip,
                &mut limits.per_ip_join,
                &mut limits.per_ip_sign_in,
                &mut limits.per_fan_purchase,
                &mut limits.route_class.catalog,
                &mut limits.route_class.snapshot,
                &mut limits.route_class.purchase,
                &mut limits.route_class.waiting_room,
                &mut limits.route_class.account,
            ] {
                *quota = unlimited;
            }
        })
        .run();
    let app = TestApp { db, origin, edge };
    let organizer = app.organizer();
    let (_, show) = onsale_tests::create_catalog(
        &organizer,
        "Conformance Night",
        "The Schemas",
        "Lisbon",
        "2031-06-01T20:00:00Z",
    )
    .await;
    // The show's snapshots, as the builder publishes them.
    Builder::new(
        onsale_tests::builder_config(&app.db, &app.prefix()),
        Arc::new(Metrics::new()),
    )
    .unwrap()
    .build_all(onsale_tests::unix_now() * 1000)
    .await
    .unwrap();
    let seat_map = format!("/v1/shows/{show}/seat-map");
    onsale_tests::eventually(
        "the edge to serve the seat map",
        std::time::Duration::from_secs(10),
        || async { (app.fan().get(&seat_map).await.status == 200).then_some(()) },
    )
    .await;
    let (account, _) = onsale_tests::create_account(&app.db).await;
    let session = onsale_tests::create_session(&app.db, account).await;
    let admission = onsale_tests::admission(&account.to_string(), &show);
    let origin_base = format!("http://{}", app.origin.addr());
    let origin_document = format!("{origin_base}/openapi.json");
    let bearer = |token: &str| format!("Authorization: Bearer {token}");
    let mut failures = Vec::new();
    for (tags, headers) in [
        (
            &["accounts", "catalog", "provider", "operations"][..],
            Vec::new(),
        ),
        (&["fan"][..], vec![bearer(&session)]),
        (&["purchase"][..], vec![bearer(&admission)]),
        (&["organizer"][..], vec![bearer(onsale_tests::ADMIN_TOKEN)]),
    ] {
        if let Some(report) = conformance(&origin_document, &origin_base, tags, &headers).await {
            failures.push(format!("origin, {tags:?}:\n{report}"));
        }
    }
    let edge_base = format!("http://{}", app.edge.public);
    let edge_document = format!("{edge_base}/openapi.json");
    for (tags, headers) in [
        (
            &[
                "waiting room",
                "seat maps",
                "accounts",
                "catalog",
                "provider",
            ][..],
            vec![bearer(&session)],
        ),
        (&["purchase"][..], vec![bearer(&admission)]),
        (&["fan"][..], vec![bearer(&session)]),
    ] {
        if let Some(report) = conformance(&edge_document, &edge_base, tags, &headers).await {
            failures.push(format!("edge, {tags:?}:\n{report}"));
        }
    }
    let admin_base = format!("http://{}", app.edge.admin);
    let admin_document = format!("{admin_base}/openapi.json");
    let headers = [bearer(onsale_tests::ADMIN_TOKEN)];
    if let Some(report) = conformance(&admin_document, &admin_base, &[], &headers).await {
        failures.push(format!("edge operations:\n{report}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

//! Tickets checked at a gate with no network: the published key set verifies a payload on
//! its own (here with Python's `cryptography`, an Ed25519 implementation of its own), the
//! show's revocation list, synced page by page, catches cancelled tickets, and the scans
//! uploaded later settle to one first scan per ticket.

use crate::holds::stadium;
use crate::orders::{confirm, ordered};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use onsale_contract::clock::Clock;
use onsale_contract::tickets::rotate;
use onsale_scan::{Gate, Verdict};
use origin::config::RotatingQr;
use origin::tickets::{TicketFacts, TicketSigner};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Python with `cryptography`, as `scripts/test` installs it (pinned, in `.onsale/venv`),
/// or `ONSALE_PYTHON`.
fn python() -> PathBuf {
    match std::env::var_os("ONSALE_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.onsale/venv/bin/python"),
    }
}

/// Verifies `payload` with nothing but the key set at `keys`, as the README describes the
/// format, in another language and another Ed25519 implementation.
const VERIFY_PY: &str = r#"
import base64, json, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def b64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

keys = json.load(open(sys.argv[1]))["keys"]
payload = sys.argv[2]
signed, _, signature = payload.rpartition(".")
version, _, fields = signed.partition(".")
assert version == "T1"
for jwk in keys:
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
    try:
        Ed25519PublicKey.from_public_bytes(b64(jwk["x"])).verify(b64(signature), signed.encode())
    except InvalidSignature:
        continue
    raw = b64(fields)
    print(json.dumps({"ticket": str(__import__("uuid").UUID(bytes=raw[:16])),
                      "seat": int.from_bytes(raw[32:40], "big", signed=True)}))
    sys.exit(0)
sys.exit(1)
"#;

/// What Python says of `payload`: the ticket and seat it states, or `None` when no key of
/// the set verifies it.
fn python_verifies(keys: &Path, payload: &str) -> Option<Value> {
    let output = std::process::Command::new(python())
        .arg("-c")
        .arg(VERIFY_PY)
        .arg(keys)
        .arg(payload)
        .output()
        .expect("python runs (scripts/test installs it in .onsale/venv)");
    output
        .status
        .success()
        .then(|| serde_json::from_slice(&output.stdout).expect("a JSON line"))
}

/// The payload of each of the order's tickets, as the origin signs it.
pub(crate) async fn payloads(pool: &sqlx::PgPool, order: &str) -> Vec<(Uuid, String)> {
    let signer = TicketSigner::from_files(&onsale_tests::keys().signing_pem, &[]).unwrap();
    let rows: Vec<(Uuid, Uuid, Option<i64>, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT id, show_id, seat_id, issued_at FROM tickets WHERE order_id = $1::uuid ORDER BY id",
    )
    .bind(order)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(ticket, show, seat, issued_at)| {
            let facts = TicketFacts {
                ticket,
                show,
                seat: seat.unwrap_or(onsale_contract::tickets::GENERAL_ADMISSION),
                issued_at_s: issued_at.timestamp(),
            };
            (ticket, signer.sign(facts))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gate_offline_verifies_with_the_published_keys_and_catches_revoked_tickets() {
    let s = stadium().await;
    let (ana, bo) = (s.fan("ana").await, s.fan("bo").await);
    let mut orders = Vec::new();
    for (fan, seats, key) in [(&ana, &[0, 1][..], "a1"), (&bo, &[2][..], "b1")] {
        let (order, payment) = ordered(&s, fan, seats).await;
        confirm(fan, &payment, "pm_card_ok", key)
            .await
            .expect_status(200);
        orders.push(order["order_id"].as_str().unwrap().to_owned());
    }
    let pool = &s.app.db.pool;
    let (ana_tickets, bo_tickets) = (
        payloads(pool, &orders[0]).await,
        payloads(pool, &orders[1]).await,
    );

    // The key set, through the edge, is all a scanner needs.
    let published = s
        .app
        .fan()
        .get("/.well-known/onsale/ticket-keys.json")
        .await;
    published.expect_status(200);
    assert_eq!(
        published.header("cache-control"),
        Some("public, max-age=300")
    );
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("ticket-keys.json");
    std::fs::write(&keys, &published.body).unwrap();
    let (ticket, payload) = &bo_tickets[0];
    let said = python_verifies(&keys, payload).expect("the published key verifies");
    assert_eq!(said["ticket"], ticket.to_string());
    assert_eq!(said["seat"], s.seats[2]);
    let tampered = payload.replacen('.', ".A", 1);
    assert_eq!(python_verifies(&keys, &tampered), None);

    // Ana cancels: her two tickets are revoked and listed, a page at a time.
    ana.post_idempotent(
        &format!("/v1/orders/{}/cancel", orders[0]),
        "c1",
        &json!({}),
    )
    .await
    .expect_status(200);
    let door = onsale_tests::scanner_session(s.app.origin.addr(), &s.show, "east").await;
    let scanner = s.app.fan().bearer(&door);
    let list = format!("/v1/shows/{}/revocations", s.show);
    let first = scanner.get(&format!("{list}?limit=1")).await.json();
    assert_eq!(first["revocations"].as_array().unwrap().len(), 1);
    assert_eq!(first["more"], true);
    let cursor = first["cursor"].as_str().unwrap();
    let second = scanner
        .get(&format!("{list}?limit=1&since={cursor}"))
        .await
        .json();
    assert_eq!(second["revocations"].as_array().unwrap().len(), 1);
    assert_eq!(second["more"], false);
    let cursor = second["cursor"].as_str().unwrap();
    let caught_up = scanner.get(&format!("{list}?since={cursor}")).await.json();
    assert_eq!(caught_up["revocations"], json!([]));
    assert_eq!(caught_up["cursor"], cursor, "an empty sync keeps its place");
    let mut revoked: Vec<String> = [&first, &second]
        .iter()
        .map(|page| {
            page["revocations"][0]["ticket_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    revoked.sort();
    let mut expected: Vec<String> = ana_tickets.iter().map(|(t, _)| t.to_string()).collect();
    expected.sort();
    assert_eq!(revoked, expected);
    s.app
        .fan()
        .get(&list)
        .await
        .problem(401, "sign_in_required");

    // The gate, offline: the key set and the two pages.
    let pages: Vec<PathBuf> = [first, second]
        .iter()
        .enumerate()
        .map(|(n, page)| {
            let path = dir.path().join(format!("revocations-{n}.json"));
            std::fs::write(&path, page.to_string()).unwrap();
            path
        })
        .collect();
    let pages: Vec<&Path> = pages.iter().map(PathBuf::as_path).collect();
    let show = Uuid::parse_str(&s.show).unwrap();
    let gate = Gate::load(&keys, Some(show), &pages).unwrap();
    let check = gate.check(&bo_tickets[0].1);
    assert_eq!(check.verdict, Verdict::Valid);
    assert_eq!(check.seat_id, Some(s.seats[2]));
    for (_, payload) in &ana_tickets {
        assert_eq!(gate.check(payload).verdict, Verdict::Revoked);
    }
    assert_eq!(gate.check(&tampered).verdict, Verdict::Forged);
    assert_eq!(gate.check("not a ticket").verdict, Verdict::Forged);
    let elsewhere = Gate::load(&keys, Some(Uuid::new_v4()), &pages).unwrap();
    assert_eq!(
        elsewhere.check(&bo_tickets[0].1).verdict,
        Verdict::WrongShow
    );

    // Back online, the gate uploads its scans. Another gate scanned bo's ticket online a
    // minute after this gate did offline: the offline scan, earlier, is the first.
    let bo_payload = &bo_tickets[0].1;
    let online = scanner
        .post("/v1/tickets/verify", &json!({ "payload": bo_payload }))
        .await
        .json();
    assert_eq!(online["result"], "valid");
    let online_at = online["scanned_at_ms"].as_i64().unwrap();
    let offline_at = online_at - 60_000;
    let uploaded = json!({ "scans": [
        { "payload": bo_payload, "scanned_at_ms": offline_at },
        { "payload": bo_payload, "scanned_at_ms": offline_at + 30_000 },
        { "payload": ana_tickets[0].1, "scanned_at_ms": offline_at },
        { "payload": tampered, "scanned_at_ms": offline_at },
    ]});
    let settled = scanner.post("/v1/tickets/scans", &uploaded).await;
    settled.expect_status(200);
    let verdicts = |reply: &Value| -> Vec<(String, Option<i64>)> {
        reply["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["result"].as_str().unwrap().to_owned(),
                    r["scanned_at_ms"].as_i64(),
                )
            })
            .collect()
    };
    let expected = vec![
        ("valid".to_owned(), Some(offline_at)),
        ("already_scanned".to_owned(), Some(offline_at)),
        ("revoked".to_owned(), None),
        ("forged".to_owned(), None),
    ];
    assert_eq!(verdicts(&settled.json()), expected);
    // Uploaded twice: the same answers, and the ticket's first scan stays the one.
    let again = scanner.post("/v1/tickets/scans", &uploaded).await.json();
    assert_eq!(verdicts(&again), expected);
    let after = scanner
        .post("/v1/tickets/verify", &json!({ "payload": bo_payload }))
        .await
        .json();
    assert_eq!(after["result"], "already_scanned");
    assert_eq!(after["scanned_at_ms"], offline_at);
    let first_scan: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT scanned_at FROM tickets WHERE id = $1")
            .bind(bo_tickets[0].0)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(first_scan.timestamp_millis(), offline_at);

    // A scan from the future is refused, and nothing of the batch is settled.
    let future = json!({ "scans": [
        { "payload": bo_payload, "scanned_at_ms": offline_at - 1_000 },
        { "payload": bo_payload, "scanned_at_ms": online_at + 3_600_000 },
    ]});
    scanner
        .post("/v1/tickets/scans", &future)
        .await
        .problem(422, "invalid_field");
    let unchanged: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT scanned_at FROM tickets WHERE id = $1")
            .bind(bo_tickets[0].0)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(unchanged.timestamp_millis(), offline_at);
}

/// The door is run by scanners the organizer makes, one show and gate each: a scanner
/// scans its show's tickets only, the admin token scans nothing, a fan's session is no
/// scanner's, and every scan counts in the show's entry by gate, scanner and minute.
#[tokio::test(flavor = "multi_thread")]
async fn scanners_scan_their_own_show_and_every_scan_counts_by_gate() {
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let (order, payment) = ordered(&s, &ana, &[0, 1, 2]).await;
    confirm(&ana, &payment, "pm_card_ok", "a1")
        .await
        .expect_status(200);
    let pool = &s.app.db.pool;
    let tickets = payloads(pool, order["order_id"].as_str().unwrap()).await;
    let origin = s.app.origin.addr();
    let organizer = s.app.organizer();

    // Bad input makes nobody.
    let staff_path = format!("/v1/admin/shows/{}/staff", s.show);
    organizer
        .post(
            &staff_path,
            &json!({ "email": "gate@staff.onsale.test", "display_name": "Gate", "gate": "north gate" }),
        )
        .await
        .problem(422, "invalid_field");
    organizer
        .post(
            &format!("/v1/admin/shows/{}/staff", Uuid::new_v4()),
            &json!({ "email": "gate@staff.onsale.test", "display_name": "Gate", "gate": "north" }),
        )
        .await
        .problem(404, "show_not_found");

    let north = onsale_tests::scanner_session(origin, &s.show, "north").await;
    let south = onsale_tests::scanner_session(origin, &s.show, "south").await;
    let verify = |session: String, payload: String| async move {
        onsale_tests::client(origin)
            .bearer(&session)
            .post("/v1/tickets/verify", &json!({ "payload": payload }))
            .await
    };
    assert_eq!(
        verify(north.clone(), tickets[0].1.clone()).await.json()["result"],
        "valid"
    );
    assert_eq!(
        verify(north.clone(), tickets[1].1.clone()).await.json()["result"],
        "valid"
    );
    assert_eq!(
        verify(south.clone(), tickets[0].1.clone()).await.json()["result"],
        "already_scanned"
    );
    assert_eq!(
        verify(south.clone(), "T1.forged.payload".into())
            .await
            .json()["result"],
        "forged"
    );

    // Another show's scanner, the organizer's token and a fan's session scan nothing here.
    let layout = onsale_tests::venue_body("Annex", "Oslo", &[("A", "T1")], 1, 2);
    let (_, other) = onsale_tests::create_show(
        &organizer,
        layout,
        "Encore",
        "Band",
        "2099-06-02T19:00:00Z",
        "2020-01-01T00:00:00Z",
    )
    .await;
    let elsewhere = onsale_tests::scanner_session(origin, &other, "west").await;
    verify(elsewhere.clone(), tickets[2].1.clone())
        .await
        .problem(403, "not_show_staff");
    onsale_tests::client(origin)
        .bearer(&elsewhere)
        .get(&format!("/v1/shows/{}/revocations", s.show))
        .await
        .problem(403, "not_show_staff");
    verify(onsale_tests::ADMIN_TOKEN.to_owned(), tickets[2].1.clone())
        .await
        .problem(401, "sign_in_required");
    let (_, fan_session) = s.account("ana").await;
    verify(fan_session, tickets[2].1.clone())
        .await
        .problem(403, "not_show_staff");
    let (status,): (Option<chrono::DateTime<chrono::Utc>>,) =
        sqlx::query_as("SELECT scanned_at FROM tickets WHERE id = $1")
            .bind(tickets[2].0)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(status, None, "a refused scan scans nothing");

    let entry = organizer
        .get(&format!("/v1/admin/shows/{}/entry", s.show))
        .await
        .json();
    let counts = |bucket: &Value| {
        ["scanned", "valid", "already_scanned", "revoked", "forged"]
            .map(|k| bucket[k].as_i64().unwrap())
    };
    assert_eq!(counts(&entry["total"]), [4, 2, 1, 0, 1]);
    let gates: Vec<(String, [i64; 5])> = entry["by_gate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["key"].as_str().unwrap().to_owned(), counts(b)))
        .collect();
    assert_eq!(
        gates,
        vec![
            ("north".to_owned(), [2, 2, 0, 0, 0]),
            ("south".to_owned(), [2, 0, 1, 0, 1]),
        ]
    );
    assert_eq!(entry["by_scanner"].as_array().unwrap().len(), 2);
    let minutes: i64 = entry["by_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["scanned"].as_i64().unwrap())
        .sum();
    assert_eq!(minutes, 4);
}

/// A show whose codes rotate: the owner's device gets each ticket's secret with its ticket
/// list and computes the code of each step; the gate takes the current code, one up to two
/// steps old and one a step ahead, and refuses an older one (a screenshot), a missing one
/// and a wrong one as `stale_code`. An offline scan uploaded later is judged at the time it
/// was made. The rotating origin reads a manual clock, so the steps are the test's.
#[tokio::test(flavor = "multi_thread")]
async fn a_rotating_code_more_than_two_steps_old_is_refused() {
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let (order, payment) = ordered(&s, &ana, &[0, 1, 2, 3, 4, 5]).await;
    confirm(&ana, &payment, "pm_card_ok", "a1")
        .await
        .expect_status(200);
    let order = order["order_id"].as_str().unwrap().to_owned();

    // Another origin on the same database rotates this show's codes every 15 s.
    let step_ms = 15_000;
    let t0 = onsale_tests::unix_now() * 1000 / step_ms * step_ms;
    let clock = Clock::manual(t0);
    let rotating = onsale_tests::origin(&s.app.db)
        .config(|c| {
            c.tickets
                .show_rotating_qr
                .insert(s.show.clone(), RotatingQr { rotate_s: 15 });
        })
        .clock(clock.clone())
        .run()
        .await;
    let (_, session) = s.account("ana").await;
    let device = onsale_tests::client(rotating.addr()).bearer(&session);
    let mine = device.get("/v1/me/tickets").await.json();
    assert_eq!(mine["server_time_ms"], t0);
    let mut shown: Vec<(Uuid, String, Vec<u8>)> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let rotating = &t["rotating"];
            assert_eq!(rotating["rotate_s"], 15);
            let secret = URL_SAFE_NO_PAD
                .decode(rotating["secret"].as_str().unwrap())
                .unwrap();
            assert_eq!(secret.len(), 32);
            let ticket = t["ticket_id"].as_str().unwrap().parse().unwrap();
            (
                ticket,
                rotating["payload"].as_str().unwrap().to_owned(),
                secret,
            )
        })
        .collect();
    shown.sort();
    let signed = payloads(&s.app.db.pool, &order).await;
    assert_eq!(
        shown
            .iter()
            .map(|(t, p, _)| (*t, p.clone()))
            .collect::<Vec<_>>(),
        signed,
        "the device's payloads are the tickets' signed ones"
    );
    let secrets: std::collections::HashSet<_> = shown.iter().map(|(_, _, s)| s).collect();
    assert_eq!(secrets.len(), 6, "a secret per ticket");
    let at_step = |i: usize, step: i64| rotate(&shown[i].1, &shown[i].2, step);

    let door = onsale_tests::Door::open(rotating.addr(), &s.show, "north").await;
    let verdict = |payload: String| {
        let door = &door;
        async move { door.verify(&payload).await["result"].clone() }
    };
    let s0 = t0 / step_ms;
    assert_eq!(verdict(at_step(0, s0)).await, "valid", "the live code");
    assert_eq!(
        verdict(signed[1].1.clone()).await,
        "stale_code",
        "no code at all"
    );
    let foreign = rotate(&shown[1].1, &shown[2].2, s0);
    assert_eq!(
        verdict(foreign).await,
        "stale_code",
        "another ticket's code"
    );
    assert_eq!(verdict(at_step(1, s0 + 2)).await, "stale_code", "two ahead");
    assert_eq!(verdict(at_step(1, s0 + 1)).await, "valid", "a step ahead");

    // Screenshots taken now, shown later.
    let (two, three) = (at_step(2, s0), at_step(3, s0));
    clock.advance(std::time::Duration::from_millis(2 * step_ms as u64));
    assert_eq!(verdict(two).await, "valid", "two steps old");
    clock.advance(std::time::Duration::from_millis(step_ms as u64));
    assert_eq!(verdict(three).await, "stale_code", "three steps old");
    assert_eq!(
        verdict(at_step(3, s0 + 3)).await,
        "valid",
        "the live screen"
    );
    assert_eq!(
        verdict(at_step(3, s0 + 3)).await,
        "already_scanned",
        "let in once"
    );

    // Offline, a gate checks the signature alone; the code is settled on upload.
    let keys = onsale_tests::client(rotating.addr())
        .get("/.well-known/onsale/ticket-keys.json")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("ticket-keys.json");
    std::fs::write(&key_file, &keys.body).unwrap();
    let gate = Gate::load(&key_file, Some(s.show.parse().unwrap()), &[]).unwrap();
    let made_ms = onsale_tests::unix_now() * 1000 - 60_000;
    let made = made_ms / step_ms;
    let (live, old) = (at_step(4, made), at_step(5, made - 3));
    assert_eq!(gate.check(&live).verdict, Verdict::Valid);
    assert_eq!(gate.check(&old).verdict, Verdict::Valid);
    let uploaded = json!({ "scans": [
        { "payload": live, "scanned_at_ms": made_ms },
        { "payload": old, "scanned_at_ms": made_ms },
    ] });
    let settled = door
        .scanner()
        .post("/v1/tickets/scans", &uploaded)
        .await
        .json();
    let results: Vec<&str> = settled["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["valid", "stale_code"]);

    let entry = s
        .app
        .organizer()
        .get(&format!("/v1/admin/shows/{}/entry", s.show))
        .await
        .json();
    assert_eq!(entry["total"]["stale_code"], 5);
    assert_eq!(entry["total"]["valid"], 5);
    assert_eq!(entry["total"]["already_scanned"], 1);
    let scanned: i64 = s
        .count("SELECT count(*) FROM tickets WHERE show_id = $1::uuid AND scanned_at IS NOT NULL")
        .await;
    assert_eq!(scanned, 5, "a refused code scans nothing");
    let metrics = String::from_utf8(
        onsale_tests::client(rotating.addr())
            .get("/metrics")
            .await
            .body,
    )
    .unwrap();
    for line in [
        r#"onsale_origin_ticket_scans_total{offline="false",result="stale_code"} 4"#,
        r#"onsale_origin_ticket_scans_total{offline="true",result="stale_code"} 1"#,
        r#"onsale_origin_ticket_scans_total{offline="false",result="valid"} 4"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

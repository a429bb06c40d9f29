//! Tickets changing hands: at once to an account, or when the recipient's email signs up;
//! the old QR code revoked the moment the new one admits; refused once scanned, once the
//! show has started, and when the show's policy says so.

use crate::holds::{stadium, stadium_with, Stadium};
use crate::orders::{confirm, ordered};
use crate::scanning::payloads;
use onsale_tests::{client, Client};
use origin::config::{TransferPolicy, TransferRule};
use serde_json::{json, Value};
use uuid::Uuid;

/// Ana's paid order of `seats`: (order id, its tickets with their payloads).
async fn bought(s: &Stadium, ana: &Client, seats: &[usize]) -> (String, Vec<(Uuid, String)>) {
    let (order, payment) = ordered(s, ana, seats).await;
    confirm(ana, &payment, "pm_card_ok", "pay")
        .await
        .expect_status(200);
    let order = order["order_id"].as_str().unwrap().to_owned();
    let tickets = payloads(&s.app.db.pool, &order).await;
    (order, tickets)
}

fn transfer_path(ticket: Uuid) -> String {
    format!("/v1/tickets/{ticket}/transfer")
}

async fn my_tickets(fan: &Client) -> Vec<String> {
    let listed = fan.get("/v1/me/tickets").await.json();
    listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ticket_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_moves_to_an_account_at_once_or_to_an_email_when_it_signs_up() {
    let s = stadium().await;
    let ana = s.fan("ana").await;
    let (order, tickets) = bought(&s, &ana, &[0, 1, 2]).await;
    let pool = &s.app.db.pool;
    let (bo_id, _) = s.account("bo").await;
    let bo = s.fan("bo").await;
    let bo_email: String = sqlx::query_scalar("SELECT email FROM accounts WHERE id = $1")
        .bind(bo_id)
        .fetch_one(pool)
        .await
        .unwrap();

    // Refused before anything moves: one's own email, another account's ticket.
    ana.post(
        &transfer_path(tickets[0].0),
        &json!({ "to_email": "nobody" }),
    )
    .await
    .problem(422, "invalid_field");
    bo.post(
        &transfer_path(tickets[0].0),
        &json!({ "to_email": "x@y.onsale.test" }),
    )
    .await
    .problem(404, "ticket_not_found");

    // To an account: at once. The old QR code is refused at the door, the new one admits.
    let moved = ana
        .post(
            &transfer_path(tickets[0].0),
            &json!({ "to_email": bo_email.to_uppercase() }),
        )
        .await;
    moved.expect_status(200);
    let moved = moved.json();
    assert_eq!(moved["status"], "completed");
    let new_ticket = moved["new_ticket_id"].as_str().unwrap().to_owned();
    let door = onsale_tests::Door::open(s.app.origin.addr(), &s.show, "gate-1").await;
    let scan = |payload: String| {
        let door = &door;
        async move { door.verify(&payload).await["result"].clone() }
    };
    assert_eq!(scan(tickets[0].1.clone()).await, "revoked");
    let reissued = payloads(pool, &order).await;
    let (_, new_payload) = reissued
        .iter()
        .find(|(id, _)| id.to_string() == new_ticket)
        .expect("the new ticket, of the same order");
    assert_eq!(my_tickets(&bo).await, vec![new_ticket.clone()]);
    assert!(!my_tickets(&ana).await.contains(&tickets[0].0.to_string()));
    let qr = format!("/v1/tickets/{new_ticket}/qr.svg");
    bo.get(&qr).await.expect_status(200);
    ana.get(&qr).await.problem(404, "ticket_not_found");
    assert_eq!(scan(new_payload.clone()).await, "valid");
    // Scanned, it moves no more; and the buyer cannot cancel an order a ticket of which
    // is someone else's.
    let again = json!({ "to_email": "z@new.onsale.test" });
    let new_ticket = Uuid::parse_str(&new_ticket).unwrap();
    bo.post(&transfer_path(new_ticket), &again)
        .await
        .problem(409, "ticket_not_transferable");
    ana.post_idempotent(&format!("/v1/orders/{order}/cancel"), "c", &json!({}))
        .await
        .problem(409, "tickets_transferred");

    // To an email without an account: pending, cancellable, completed at sign-up.
    let cy_email = format!("cy-{}@new.onsale.test", Uuid::new_v4().simple());
    let to_cy = json!({ "to_email": cy_email });
    let second = tickets[1].0;
    let pending = ana.post(&transfer_path(second), &to_cy).await;
    pending.expect_status(202);
    assert_eq!(pending.json()["status"], "pending");
    ana.post(&transfer_path(second), &to_cy)
        .await
        .problem(409, "ticket_not_transferable");
    let cancelled = ana
        .request(reqwest::Method::DELETE, &transfer_path(second), None)
        .await;
    assert_eq!(cancelled.json()["status"], "cancelled");
    ana.request(reqwest::Method::DELETE, &transfer_path(second), None)
        .await
        .problem(404, "transfer_not_found");
    ana.post(&transfer_path(second), &to_cy)
        .await
        .expect_status(202);
    assert!(
        my_tickets(&ana).await.contains(&second.to_string()),
        "still ana's meanwhile"
    );
    let origin = client(s.app.origin.addr());
    let signed_up = origin
        .post(
            "/v1/accounts",
            &json!({ "email": cy_email, "password": "cy-password-1", "display_name": "Cy" }),
        )
        .await;
    signed_up.expect_status(201);
    let session = origin
        .post(
            "/v1/sessions",
            &json!({ "email": cy_email, "password": "cy-password-1" }),
        )
        .await
        .json()["session_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let cy = client(s.app.origin.addr()).bearer(&session);
    let cy_tickets = my_tickets(&cy).await;
    assert_eq!(cy_tickets.len(), 1);
    assert!(!my_tickets(&ana).await.contains(&second.to_string()));
    assert_eq!(scan(tickets[1].1.clone()).await, "revoked");

    // Every move is kept, and both fans heard of each completed one.
    let chain: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT ticket_id, status FROM ticket_transfers ORDER BY created_at")
            .fetch_all(pool)
            .await
            .unwrap();
    let statuses: Vec<(Uuid, &str)> = chain.iter().map(|(t, s)| (*t, s.as_str())).collect();
    assert_eq!(
        statuses,
        vec![
            (tickets[0].0, "completed"),
            (second, "cancelled"),
            (second, "completed"),
        ]
    );
    let told: Vec<(String, Value)> = sqlx::query_as(
        "SELECT event_type, payload FROM outbox WHERE event_type LIKE 'ticket_%' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let kinds: Vec<&str> = told.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ticket_transferred",
            "ticket_received",
            "ticket_transferred",
            "ticket_received"
        ]
    );
    assert_eq!(told[1].1["fan_id"], bo_id.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn transfers_stop_where_the_policy_and_the_start_say() {
    let until = TransferPolicy::Until {
        until_hours_before: 24,
    };
    let s = stadium_with(|c| c.tickets.transfer_policy = until).await;
    let ana = s.fan("ana").await;
    let (_, tickets) = bought(&s, &ana, &[0, 1, 2]).await;
    let to = json!({ "to_email": "friend@new.onsale.test" });
    // The show is in 2099: a day before it is far off.
    ana.post(&transfer_path(tickets[0].0), &to)
        .await
        .expect_status(202);
    let starts = |interval: &'static str| {
        let pool = s.app.db.pool.clone();
        let show = s.show.clone();
        async move {
            sqlx::query("UPDATE shows SET starts_at = now() + $2::interval WHERE id = $1::uuid")
                .bind(show)
                .bind(interval)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    starts("12 hours").await;
    ana.post(&transfer_path(tickets[1].0), &to)
        .await
        .problem(409, "ticket_not_transferable");
    starts("-1 minute").await;
    ana.post(&transfer_path(tickets[2].0), &to)
        .await
        .problem(409, "ticket_not_transferable");

    let never = TransferPolicy::Always(TransferRule::Never);
    let s = stadium_with(|c| c.tickets.transfer_policy = never).await;
    let ana = s.fan("ana").await;
    let (_, tickets) = bought(&s, &ana, &[0]).await;
    ana.post(&transfer_path(tickets[0].0), &to)
        .await
        .problem(409, "ticket_not_transferable");
}

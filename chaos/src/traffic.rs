//! The fans: each a task that joins the waiting room through an edge, polls until admitted,
//! holds seats, orders, pays with one of the sandbox's cards and sometimes cancels, the way a
//! fan's client does: a failed request is sent again (same idempotency key) after its
//! `Retry-After`, through the other edge when one does not answer. Every exchange is
//! recorded with when it happened and what came back, for the report.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A request that takes longer than this has hung: the run fails on any.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);
/// A fan stops retrying one request after failing this long.
const GIVE_UP: Duration = Duration::from_secs(90);
const JOIN: &str = "/v1/waiting-room/sessions";

/// What one request got.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// An HTTP answer: its status, the problem `code` if any, whether it said `Retry-After`
    /// and whether its body was `application/problem+json`.
    Answer {
        /// The HTTP status.
        status: u16,
        /// A problem body's `code`.
        code: Option<String>,
        /// `Retry-After` was sent.
        retry_after: bool,
        /// The body was `application/problem+json`.
        problem: bool,
    },
    /// No connection: nothing listens.
    Refused,
    /// The connection broke before a whole answer came.
    Broken,
    /// No answer within [`CLIENT_TIMEOUT`].
    TimedOut,
}

impl Exchange {
    /// When it ended, since the run began: a fault shows in the requests it ends.
    pub fn ended(&self) -> Duration {
        self.at + self.took
    }
}

impl Outcome {
    /// Whether a fan's client would try again: a 5xx, a 429, a 409 `idempotency_in_flight`
    /// (the same write is still running, after a retry of one whose answer was lost), or no
    /// answer.
    pub fn failed(&self) -> bool {
        match self {
            Outcome::Answer { status, code, .. } => {
                *status >= 500 || *status == 429 || code.as_deref() == Some("idempotency_in_flight")
            }
            _ => true,
        }
    }

    /// A short label for counting: `503 queue_unavailable`, `refused`, ...
    pub fn label(&self) -> String {
        match self {
            Outcome::Answer { status, code, .. } => match code {
                Some(code) => format!("{status} {code}"),
                None => status.to_string(),
            },
            Outcome::Refused => "refused".to_owned(),
            Outcome::Broken => "broken".to_owned(),
            Outcome::TimedOut => "timed_out".to_owned(),
        }
    }
}

/// One request and what it got.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// When it was sent, since the run began.
    pub at: Duration,
    /// How long until its answer (or its failure) came.
    pub took: Duration,
    /// When the failure this request retries ended (its own end if it is no retry): what a
    /// retry meets, such as a write still in flight from before a crash, belongs to the
    /// fault that made the first attempt fail.
    pub cause: Duration,
    /// The edge it went to (0 or 1).
    pub edge: usize,
    /// The step it was: `join`, `poll`, `hold`, ...
    pub route: &'static str,
    /// What came back.
    pub outcome: Outcome,
}

/// The fans' side of the run: the edges they reach and everything they saw.
pub struct Traffic {
    http: reqwest::Client,
    edges: Vec<SocketAddr>,
    show: String,
    sections: Vec<String>,
    /// When the run began.
    pub started: Instant,
    exchanges: Mutex<Vec<Exchange>>,
}

/// A request a fan sends, perhaps more than once.
struct Call<'a> {
    method: Method,
    path: String,
    route: &'static str,
    bearer: &'a str,
    key: Option<String>,
    body: Option<Value>,
}

/// An answer a fan acts on.
struct Answer {
    status: u16,
    /// `Retry-After`, in seconds.
    retry_after_s: Option<u64>,
    body: Value,
}

/// What one fan did and was told, for the checks at the end.
#[derive(Debug, Default, Serialize)]
pub struct FanRecord {
    /// The fan's account id.
    pub account: String,
    /// Its place: the queue token's number.
    pub place: Option<u64>,
    /// It was admitted.
    pub admitted: bool,
    /// Holds the origin answered 201 for.
    pub holds: Vec<String>,
    /// Orders the origin answered 201 for.
    pub orders: Vec<String>,
    /// Orders the fan was told are confirmed.
    pub paid: Vec<String>,
    /// Paid orders the fan was told are cancelled.
    pub cancelled: Vec<String>,
    /// Answers that break a promise or were not expected at that step.
    pub problems: Vec<String>,
}

impl Traffic {
    /// Fans' traffic to `edges`, for `show`, holding in `sections`.
    pub fn new(edges: Vec<SocketAddr>, show: String, sections: Vec<String>) -> Traffic {
        Traffic {
            http: reqwest::Client::builder()
                .timeout(CLIENT_TIMEOUT)
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client"),
            edges,
            show,
            sections,
            started: Instant::now(),
            exchanges: Mutex::new(Vec::new()),
        }
    }

    /// Every request so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().expect("exchanges").clone()
    }

    async fn send(
        &self,
        edge: usize,
        forwarded_for: &str,
        call: &Call<'_>,
        retrying: Option<Duration>,
    ) -> (Exchange, Option<Answer>) {
        let at = self.started.elapsed();
        let mut request = self
            .http
            .request(
                call.method.clone(),
                format!("http://{}{}", self.edges[edge], call.path),
            )
            .bearer_auth(call.bearer)
            .header("x-forwarded-for", forwarded_for);
        if let Some(key) = &call.key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let (outcome, answer) = match request.send().await {
            Ok(reply) => {
                let status = reply.status().as_u16();
                let retry_after_s = reply
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                let retry_after = reply.headers().contains_key("retry-after");
                let problem = reply
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
                match reply.bytes().await {
                    Ok(bytes) => {
                        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let code = body["code"].as_str().map(str::to_owned);
                        let outcome = Outcome::Answer {
                            status,
                            code,
                            retry_after,
                            problem,
                        };
                        let answer = Answer {
                            status,
                            retry_after_s,
                            body,
                        };
                        (outcome, Some(answer))
                    }
                    Err(error) if error.is_timeout() => (Outcome::TimedOut, None),
                    Err(_) => (Outcome::Broken, None),
                }
            }
            Err(error) if error.is_timeout() => (Outcome::TimedOut, None),
            Err(error) if error.is_connect() => (Outcome::Refused, None),
            Err(_) => (Outcome::Broken, None),
        };
        let took = self.started.elapsed() - at;
        let exchange = Exchange {
            at,
            took,
            cause: retrying.unwrap_or(at + took),
            edge,
            route: call.route,
            outcome,
        };
        self.exchanges
            .lock()
            .expect("exchanges")
            .push(exchange.clone());
        (exchange, answer)
    }
}

/// One fan's run through the on-sale.
pub struct Fan<'a> {
    traffic: &'a Traffic,
    edge: usize,
    forwarded_for: String,
    rng: StdRng,
    session: String,
    record: FanRecord,
}

impl<'a> Fan<'a> {
    /// Fan number `index` (its address and first edge follow from it; its choices from `seed`).
    pub fn new(
        traffic: &'a Traffic,
        index: usize,
        seed: u64,
        account: String,
        session: String,
    ) -> Self {
        Fan {
            traffic,
            edge: index % traffic.edges.len(),
            forwarded_for: format!(
                "10.{}.{}.{}",
                index >> 16 & 255,
                index >> 8 & 255,
                index & 255
            ),
            rng: StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            session,
            record: FanRecord {
                account,
                ..FanRecord::default()
            },
        }
    }

    /// The fan's whole on-sale.
    pub async fn run(mut self) -> FanRecord {
        if let Some(admission) = self.queue().await {
            self.record.admitted = true;
            self.buy(&admission).await;
        }
        self.record
    }

    /// Sends `call` until it is answered with something other than a failure, as a fan's
    /// client does; `None` after [`GIVE_UP`] of failures.
    async fn until_answered(&mut self, call: Call<'_>) -> Option<Answer> {
        let first = Instant::now();
        let mut retrying = None;
        loop {
            let (exchange, answer) = self
                .traffic
                .send(self.edge, &self.forwarded_for, &call, retrying)
                .await;
            if !exchange.outcome.failed() {
                return answer;
            }
            retrying = Some(exchange.cause);
            if first.elapsed() > GIVE_UP {
                self.problem(format!(
                    "{} {}: gave up after {GIVE_UP:?}",
                    call.method, call.route
                ));
                return None;
            }
            let wait = match answer {
                // Told when: then (capped, as clients do), else in half a second.
                Some(answer) => answer.retry_after_s.map_or(500, |s| s.min(5) * 1000),
                // A node that does not answer: the balancer sends the fan to another.
                _ => {
                    self.edge = (self.edge + 1) % self.traffic.edges.len();
                    200
                }
            };
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    fn problem(&mut self, what: String) {
        self.record.problems.push(what);
    }

    /// Whether `answer` has one of `statuses`; records a problem if not.
    fn expect(&mut self, step: &str, answer: &Answer, statuses: &[u16]) -> bool {
        if statuses.contains(&answer.status) {
            return true;
        }
        self.problem(format!("{step}: {} {}", answer.status, answer.body));
        false
    }

    /// Joins and polls until admitted; the admission token.
    async fn queue(&mut self) -> Option<String> {
        let session = self.session.clone();
        let show = self.traffic.show.clone();
        fn join<'b>(bearer: &'b str, show: &str) -> Call<'b> {
            Call {
                method: Method::POST,
                path: JOIN.to_owned(),
                route: "join",
                bearer,
                key: None,
                body: Some(json!({ "show_id": show })),
            }
        }
        let joined = self.until_answered(join(&session, &show)).await?;
        if !self.expect("join", &joined, &[200, 201]) {
            return None;
        }
        let mut token = joined.body["queue_token"].as_str()?.to_owned();
        let place = queue_no(&token)?;
        self.record.place = Some(place);
        // One fan in ten joins again from another device while queued.
        let mut rejoin = self.rng.random_ratio(1, 10);
        loop {
            let poll = Call {
                method: Method::GET,
                path: format!("{JOIN}/current?show_id={}", self.traffic.show),
                route: "poll",
                bearer: &token,
                key: None,
                body: None,
            };
            let polled = self.until_answered(poll).await?;
            if !self.expect("poll", &polled, &[200]) {
                return None;
            }
            let body = &polled.body;
            match body["status"].as_str() {
                Some("queued") => {
                    if let Some(next) = body["queue_token"].as_str() {
                        token = next.to_owned();
                    }
                    self.same_place("poll", &token, place);
                    if rejoin {
                        rejoin = false;
                        let again = self.until_answered(join(&session, &show)).await?;
                        if self.expect("join again", &again, &[200]) {
                            let again_token = again.body["queue_token"].as_str().unwrap_or("");
                            self.same_place("join again", again_token, place);
                        }
                    }
                    let after = body["poll_after_ms"].as_u64().unwrap_or(1000);
                    tokio::time::sleep(Duration::from_millis(after.clamp(200, 5000))).await;
                }
                Some("admitted") => {
                    let admission = body["admission_token"].as_str()?.to_owned();
                    self.same_place("admission", &admission, place);
                    return Some(admission);
                }
                _ => {
                    self.problem(format!("poll: {body}"));
                    return None;
                }
            }
        }
    }

    fn same_place(&mut self, step: &str, token: &str, place: u64) {
        let seen = queue_no(token);
        if seen != Some(place) {
            self.problem(format!("{step}: place {place} became {seen:?}"));
        }
    }

    /// A new idempotency key: one per write, kept across its retries.
    fn key(&mut self) -> String {
        format!("chaos-{:032x}", self.rng.random::<u128>())
    }

    /// Holds, orders, pays and perhaps cancels, as the dice say.
    async fn buy(&mut self, admission: &str) {
        let Some(hold) = self.hold(admission).await else {
            return;
        };
        match self.rng.random_range(0..100) {
            // Changes its mind.
            0..8 => {
                let release = Call {
                    method: Method::DELETE,
                    path: format!("/v1/holds/{hold}"),
                    route: "release",
                    bearer: admission,
                    key: None,
                    body: None,
                };
                if let Some(answer) = self.until_answered(release).await {
                    self.expect("release", &answer, &[200, 204]);
                }
            }
            // Walks away: the hold expires.
            8..12 => {}
            _ => self.order(admission, &hold).await,
        }
    }

    /// A best-available hold of 1 to 4 seats, trying up to three sections.
    async fn hold(&mut self, admission: &str) -> Option<String> {
        for _ in 0..3 {
            let section = self.traffic.sections
                [self.rng.random_range(0..self.traffic.sections.len())]
            .clone();
            let quantity = self.rng.random_range(1..=4);
            let call = Call {
                method: Method::POST,
                path: format!("/v1/shows/{}/holds", self.traffic.show),
                route: "hold",
                bearer: admission,
                key: Some(self.key()),
                body: Some(json!({ "section_id": section, "quantity": quantity })),
            };
            let answer = self.until_answered(call).await?;
            if answer.status == 409 {
                continue; // not enough seats together there
            }
            if !self.expect("hold", &answer, &[201]) {
                return None;
            }
            let hold = answer.body["hold_id"].as_str()?.to_owned();
            self.record.holds.push(hold.clone());
            return Some(hold);
        }
        None
    }

    async fn order(&mut self, admission: &str, hold: &str) {
        let call = Call {
            method: Method::POST,
            path: "/v1/orders".to_owned(),
            route: "order",
            bearer: admission,
            key: Some(self.key()),
            body: Some(json!({ "hold_id": hold })),
        };
        let Some(created) = self.until_answered(call).await else {
            return;
        };
        if !self.expect("order", &created, &[201]) {
            return;
        }
        let (Some(order), Some(payment)) = (
            created.body["order_id"].as_str().map(str::to_owned),
            created.body["payment"]["payment_id"]
                .as_str()
                .map(str::to_owned),
        ) else {
            self.problem(format!("order: {}", created.body));
            return;
        };
        self.record.orders.push(order.clone());
        let card = match self.rng.random_range(0..100) {
            0..45 => "pm_card_ok",
            45..55 => "pm_card_declined",
            55..70 => "pm_card_3ds",
            70..85 => "pm_card_slow",
            _ => "pm_card_refund_fails",
        };
        let Some(mut status) = self.confirm(admission, &payment, card).await else {
            return;
        };
        if status == "requires_action" {
            // The fan authenticates and confirms again.
            let Some(again) = self.confirm(admission, &payment, card).await else {
                return;
            };
            status = again;
        }
        // `processing`: a slow payment until its webhook, any other while the provider's
        // answer is unknown (it did not answer in time); the order settles later either way.
        let (settled, order_settled) = match card {
            "pm_card_declined" => ("failed", "payment_failed"),
            _ => ("succeeded", "confirmed"),
        };
        if status != settled && status != "processing" {
            self.problem(format!("confirm with {card}: {status}, not {settled}"));
            return;
        }
        if !self.settled(&order, order_settled).await || card == "pm_card_declined" {
            return;
        }
        self.record.paid.push(order.clone());
        // Every refund that fails at first is asked for; some others change their minds.
        if card == "pm_card_refund_fails" || self.rng.random_ratio(1, 8) {
            self.cancel(&order).await;
        }
    }

    /// The payment's status after confirming it with `card`.
    async fn confirm(&mut self, admission: &str, payment: &str, card: &str) -> Option<String> {
        let call = Call {
            method: Method::POST,
            path: format!("/v1/payments/{payment}/confirm"),
            route: "confirm",
            bearer: admission,
            key: Some(self.key()),
            body: Some(json!({ "payment_method": card })),
        };
        let answer = self.until_answered(call).await?;
        if !self.expect("confirm", &answer, &[200]) {
            return None;
        }
        answer.body["status"].as_str().map(str::to_owned)
    }

    /// Whether the order reaches `status` (`confirmed`, `payment_failed`), waiting on its
    /// page for a payment settled by webhook or reconciliation.
    async fn settled(&mut self, order: &str, status: &str) -> bool {
        let first = Instant::now();
        let session = self.session.clone();
        while first.elapsed() < Duration::from_secs(120) {
            let call = Call {
                method: Method::GET,
                path: format!("/v1/orders/{order}"),
                route: "order page",
                bearer: &session,
                key: None,
                body: None,
            };
            let Some(page) = self.until_answered(call).await else {
                return false;
            };
            if !self.expect("order page", &page, &[200]) {
                return false;
            }
            match page.body["status"].as_str() {
                Some(now) if now == status => return true,
                Some("pending_payment") => tokio::time::sleep(Duration::from_millis(1000)).await,
                other => {
                    self.problem(format!("order {order} is {other:?}, not {status}"));
                    return false;
                }
            }
        }
        self.problem(format!("order {order} not {status} within 120 s of paying"));
        false
    }

    async fn cancel(&mut self, order: &str) {
        let session = self.session.clone();
        let call = Call {
            method: Method::POST,
            path: format!("/v1/orders/{order}/cancel"),
            route: "cancel",
            bearer: &session,
            key: Some(self.key()),
            body: Some(json!({})),
        };
        if let Some(answer) = self.until_answered(call).await {
            if self.expect("cancel", &answer, &[200]) {
                self.record.cancelled.push(order.to_owned());
            }
        }
    }
}

/// The `queue_no` a queue or admission token carries.
pub fn queue_no(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims["queue_no"].as_u64()
}

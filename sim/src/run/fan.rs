//! One virtual fan, doing what the fan web app does: it signs in (unless it came signed
//! in), joins the show's waiting room (solving the proof of work when asked), polls when
//! told to, and once admitted holds seats (best available, or picked on the map), orders
//! and pays with its card, confirming again after 3-D Secure and watching its order page
//! while a slow payment settles. A request that fails (no answer, 5xx, 429, a write still
//! in flight) is sent again after `Retry-After` or a growing backoff, as the web app does.

use super::http::{self, Answer, Call};
use super::seats::{self, Availability};
use super::tally::{Live, Milestones};
use super::Stage;
use crate::plan::FanPlan;
use ::http::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fan gives a request up after failing this long.
const GIVE_UP: Duration = Duration::from_secs(120);
/// Attempts at holding seats before a fan leaves without.
const HOLD_ATTEMPTS: usize = 3;
/// Attempts at the proof of work before a fan leaves.
const POW_ATTEMPTS: usize = 3;
/// How often a fan's order page is read while a payment settles.
const ORDER_PAGE_MS: u64 = 1_000;
const JOIN: &str = "/v1/waiting-room/sessions";

/// A fan's credentials for the run.
pub struct Credentials {
    /// Its email, to sign in with.
    pub email: String,
    /// Its session, if it came signed in.
    pub session: Option<String>,
}

/// One fan in the run.
pub struct Fan {
    stage: Arc<Stage>,
    plan: FanPlan,
    from: IpAddr,
    rng: StdRng,
    credentials: Credentials,
    over: tokio::sync::watch::Receiver<bool>,
    seen: Milestones,
}

impl Fan {
    /// Fan `index` of the run, with its plan and credentials.
    pub fn new(stage: Arc<Stage>, index: u32, plan: FanPlan, credentials: Credentials) -> Fan {
        let seed = stage.seed ^ u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Fan {
            over: stage.over.clone(),
            stage,
            seen: Milestones {
                arrives_ms: plan.arrives_ms as u32,
                ..Milestones::default()
            },
            plan,
            from: http::fan_address(index),
            rng: StdRng::seed_from_u64(seed),
            credentials,
        }
    }

    /// The fan's night; its milestones go to the tally.
    pub async fn run(mut self) {
        let live = &self.stage.tally.live;
        Live::add(&live.arrived, 1);
        if let Some(admission) = self.queue().await {
            self.buy(&admission).await;
        }
        self.stage.tally.fan_done(self.seen);
    }

    fn now_ms(&self) -> u32 {
        self.stage.tally.now_ms()
    }

    /// Waits `ms`; false if the run ended meanwhile.
    async fn pause(&mut self, ms: u64) -> bool {
        if *self.over.borrow() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => true,
            _ = self.over.changed() => false,
        }
    }

    /// Waits until `at_ms` into the run; false if the run ended meanwhile.
    async fn pause_until(&mut self, at_ms: u32) -> bool {
        let ms = at_ms.saturating_sub(self.now_ms());
        self.pause(u64::from(ms)).await
    }

    /// Sends `call` until it is answered with anything but a failure; `None` after
    /// [`GIVE_UP`] or when the run ends. `to_origin`: the edge passes it on to the origin.
    async fn ask(&mut self, call: &Call<'_>, to_origin: bool) -> Option<Answer> {
        let first = Instant::now();
        let stage = self.stage.clone();
        let tally = &stage.tally;
        for failures in 1u32.. {
            tally.request(to_origin);
            let hint_s = match http::send(self.stage.edge, self.from, call).await {
                Ok(answer) => {
                    if answer.status >= 400 {
                        tally.error(answer.label());
                    }
                    let retry = answer.status >= 500
                        || answer.status == 429
                        || answer.code() == Some("idempotency_in_flight");
                    if !retry {
                        return Some(answer);
                    }
                    answer.retry_after_s.unwrap_or(0)
                }
                Err(failure) => {
                    tally.error(failure.label().to_owned());
                    0
                }
            };
            if first.elapsed() > GIVE_UP {
                return None;
            }
            // The web app's backoff: doubling from 1 s to 15 s, or Retry-After if longer.
            let backoff = 1000u64 << failures.min(4);
            let wait = (hint_s * 1000).max(backoff.min(15_000));
            let jittered = (wait as f64 * self.rng.random_range(0.8..1.2)) as u64;
            if !self.pause(jittered).await {
                return None;
            }
        }
        None
    }

    /// Signs in if it must, joins and polls until its turn; the admission token.
    async fn queue(&mut self) -> Option<String> {
        if self.credentials.session.is_none() {
            self.sign_in().await?;
        }
        let stage = self.stage.clone();
        let live = &stage.tally.live;
        let joined = self.join().await?;
        self.seen.joined_ms = Some(self.now_ms());
        self.seen.eta_s = joined.body["estimated_wait_s"].as_u64().map(|s| s as u32);
        if self.plan.stops_polling {
            self.seen.stopped_ms = self.seen.joined_ms;
            return None;
        }
        Live::add(&live.queued, 1);
        let admission = self.poll(joined).await;
        Live::sub(&live.queued, 1);
        if admission.is_none() && self.seen.admitted_ms.is_none() && !*self.over.borrow() {
            self.seen.stopped_ms = Some(self.now_ms());
        }
        admission
    }

    async fn sign_in(&mut self) -> Option<()> {
        let mut call = Call::new(Method::POST, "/v1/sessions");
        call.body = Some(json!({
            "email": self.credentials.email,
            "password": self.stage.password,
        }));
        let answer = self.ask(&call, true).await?;
        let session = answer.body["session_token"].as_str()?.to_owned();
        self.credentials.session = Some(session);
        Some(())
    }

    /// Joins, with a proof of work when the show asks for one.
    async fn join(&mut self) -> Option<Answer> {
        let session = self.credentials.session.clone()?;
        let mut pow = None;
        for _ in 0..=POW_ATTEMPTS {
            let mut call = Call::new(Method::POST, JOIN);
            call.session_cookie = Some(&session);
            call.body = Some(match &pow {
                Some(pow) => json!({ "show_id": self.stage.show, "pow": pow }),
                None => json!({ "show_id": self.stage.show }),
            });
            let answer = self.ask(&call, false).await?;
            match answer.code() {
                Some("pow_required" | "pow_invalid" | "pow_reused") => {
                    pow = Some(self.solve_challenge().await?);
                }
                _ if answer.status < 300 => return Some(answer),
                _ => return None,
            }
        }
        None
    }

    async fn solve_challenge(&mut self) -> Option<serde_json::Value> {
        let path = format!("/v1/waiting-room/challenge?show_id={}", self.stage.show);
        let answer = self.ask(&Call::new(Method::GET, path), false).await?;
        let challenge = answer.body["challenge"].as_str()?.to_owned();
        let difficulty = answer.body["difficulty"].as_u64()?.min(32) as u8;
        // Hashing is CPU work: off the runtime's threads, as a browser's worker does.
        let solution = tokio::task::spawn_blocking({
            let challenge = challenge.clone();
            move || onsale_contract::pow::solve(&challenge, difficulty)
        })
        .await
        .ok()?;
        Some(json!({ "challenge": challenge, "solution": solution }))
    }

    /// Polls until admitted; the admission token.
    async fn poll(&mut self, mut answer: Answer) -> Option<String> {
        let mut token = answer.body["queue_token"].as_str()?.to_owned();
        loop {
            if let Some(next) = answer.body["queue_token"].as_str() {
                token = next.to_owned();
            }
            match answer.body["status"].as_str() {
                Some("admitted") => return self.admitted(&answer),
                Some("queued" | "sold_out" | "pre_queue") => {
                    let after = answer.body["poll_after_ms"].as_u64().unwrap_or(5_000);
                    if !self.pause(after).await {
                        return None;
                    }
                }
                _ => return None,
            }
            let mut call = Call::new(
                Method::GET,
                format!("{JOIN}/current?show_id={}", self.stage.show),
            );
            call.bearer = Some(&token);
            answer = self.ask(&call, false).await?;
            if answer.status != 200 {
                return None;
            }
        }
    }

    fn admitted(&mut self, answer: &Answer) -> Option<String> {
        let now = self.now_ms();
        let body = &answer.body;
        let lasts_ms =
            body["admission_expires_at_ms"].as_i64()? - body["server_time_ms"].as_i64()?;
        self.seen.admitted_ms = Some(now);
        self.seen.admission_ends_ms = Some(now.saturating_add(lasts_ms.max(0) as u32));
        Live::add(&self.stage.tally.live.admitted, 1);
        Some(body["admission_token"].as_str()?.to_owned())
    }

    /// Thinks, holds, and pays or walks away. Each step is due a planned time after the
    /// last (the order is made as checkout opens, before the card is entered), so that the
    /// time requests take is part of the fan's paying, not added to it.
    async fn buy(&mut self, admission: &str) {
        let learned = self.seen.admitted_ms.unwrap_or_else(|| self.now_ms());
        let decides_at = learned.saturating_add(self.plan.think_ms as u32);
        let Some(hold) = self.hold(admission, decides_at).await else {
            return;
        };
        let live = &self.stage.tally.live;
        Live::add(&live.holding, 1);
        let bought = match self.plan.abandons {
            true => false,
            false => self.pay(admission, &hold).await,
        };
        let live = &self.stage.tally.live;
        Live::sub(&live.holding, 1);
        if bought {
            let now = self.now_ms();
            self.seen.bought_ms = Some(now);
            self.seen.admission_ends_ms = self.seen.admission_ends_ms.map(|end| end.min(now));
            Live::add(&live.bought, 1);
            Live::add(&live.seats_bought, u64::from(self.seen.seats_held));
        }
    }

    /// Holds the seats it wants at `decides_at`: picked on the map, or the best available
    /// in a section with enough left (and so after a conflict); the hold's id.
    async fn hold(&mut self, admission: &str, decides_at: u32) -> Option<String> {
        let count = self.plan.seats;
        if !self.pause_until(decides_at).await {
            return None;
        }
        for attempt in 0..HOLD_ATTEMPTS {
            // The web app keeps its map as fresh as the last snapshot: read it now.
            let availability = self.availability().await?;
            // After a conflict the fan lets the box office choose, as the web app's
            // best-available form offers: a map up to a snapshot old keeps its taken seats.
            let picked = match self.plan.best_available || attempt > 0 {
                false => {
                    let status = availability.seat_status.as_bytes();
                    self.stage
                        .map
                        .pick_together(status, count as usize, &mut self.rng)
                        .map(|ids| json!({ "seat_ids": ids }))
                }
                true => None,
            };
            let body = match picked {
                Some(body) => body,
                None => {
                    let (section, quantity) =
                        seats::pick_section(&availability, u64::from(count), &mut self.rng)?;
                    json!({ "section_id": section, "quantity": quantity })
                }
            };
            let key = self.key();
            let mut call = Call::new(Method::POST, format!("/v1/shows/{}/holds", self.stage.show));
            call.bearer = Some(admission);
            call.key = Some(&key);
            call.body = Some(body);
            let answer = self.ask(&call, true).await?;
            match answer.status {
                201 => {
                    self.seen.held_ms = Some(self.now_ms());
                    self.seen.seats_held = answer.body["seat_ids"].as_array()?.len() as u32;
                    return Some(answer.body["hold_id"].as_str()?.to_owned());
                }
                // Taken since the snapshot, or too few left in the section: look again.
                409 => continue,
                _ => return None,
            }
        }
        None
    }

    async fn availability(&mut self) -> Option<Availability> {
        let path = format!("/v1/shows/{}/availability", self.stage.show);
        let answer = self.ask(&Call::new(Method::GET, path), false).await?;
        serde_json::from_value(answer.body).ok()
    }

    /// Orders the hold, enters its card for the planned time after holding, and pays;
    /// whether the order confirmed.
    async fn pay(&mut self, admission: &str, hold: &str) -> bool {
        let key = self.key();
        let mut call = Call::new(Method::POST, "/v1/orders");
        call.bearer = Some(admission);
        call.key = Some(&key);
        call.body = Some(json!({ "hold_id": hold }));
        let Some(ordered) = self.ask(&call, true).await else {
            return false;
        };
        let (Some(order), Some(payment)) = (
            ordered.body["order_id"].as_str(),
            ordered.body["payment"]["payment_id"].as_str(),
        ) else {
            return false;
        };
        let (order, payment) = (order.to_owned(), payment.to_owned());
        let held = self.seen.held_ms.unwrap_or_else(|| self.now_ms());
        if !self
            .pause_until(held.saturating_add(self.plan.pay_ms as u32))
            .await
        {
            return false;
        }
        let mut status = self.confirm(admission, &payment).await;
        if status.as_deref() == Some("requires_action") {
            // Authenticated with the bank: confirm again.
            status = self.confirm(admission, &payment).await;
        }
        match status.as_deref() {
            Some("succeeded") => true,
            Some("processing") => self.settles(&order).await,
            _ => false,
        }
    }

    /// The payment's status after confirming it with the fan's card.
    async fn confirm(&mut self, admission: &str, payment: &str) -> Option<String> {
        let key = self.key();
        let mut call = Call::new(Method::POST, format!("/v1/payments/{payment}/confirm"));
        call.bearer = Some(admission);
        call.key = Some(&key);
        call.body = Some(json!({ "payment_method": self.plan.card.method() }));
        let answer = self.ask(&call, true).await?;
        answer.body["status"].as_str().map(str::to_owned)
    }

    /// Reads the order page until the order is confirmed (true) or failed. The run ends
    /// when the snapshot shows every seat sold, which can be this order's webhook: so the
    /// page is read once more after the end, or the last sale would go uncounted.
    async fn settles(&mut self, order: &str) -> bool {
        let Some(session) = self.credentials.session.clone() else {
            return false;
        };
        let first = Instant::now();
        let mut last_look = false;
        while first.elapsed() < GIVE_UP {
            let mut call = Call::new(Method::GET, format!("/v1/orders/{order}"));
            call.session_cookie = Some(&session);
            let Some(page) = self.ask(&call, true).await else {
                return false;
            };
            match page.body["status"].as_str() {
                Some("confirmed") => return true,
                Some("pending_payment") if !last_look => {
                    last_look = !self.pause(ORDER_PAGE_MS).await;
                }
                _ => return false,
            }
        }
        false
    }

    /// A new idempotency key, one per write.
    fn key(&mut self) -> String {
        format!("sim-{:032x}", self.rng.random::<u128>())
    }
}

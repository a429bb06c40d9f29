//! Waitlist offers at the edge. A fan the origin has offered seats to (its waitlist entry
//! `offered`, a hold in its name) buys them without queueing again: `POST
//! /v1/waiting-room/offers` with the fan's session asks an origin of the pool for the
//! account's entry (`GET /v1/shows/{id}/waitlist`), and while the offer lasts answers with
//! an admission token for the show. The offer is the admission: the purchase path still
//! takes only admitted traffic, and an offer admission takes no place of `max_active` (the
//! seats that come back bound how many there are). No origin that can answer means no
//! admission: 503 `offer_unavailable`.

use crate::problem::Code;
use onsale_contract::problem::Problem;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// How long an offer's admission outlasts the offer: a payment begun before the offer
/// ended (its order keeps the seats) is confirmed with it.
pub(crate) const PAYING_AFTER_OFFER_S: i64 = 15 * 60;

/// Asks origins for accounts' live offers.
pub(crate) struct OfferDesk {
    http: reqwest::Client,
    /// `offer_admissions_total{outcome}`: `admitted`, `no_offer`, `unavailable`.
    admissions: prometheus::IntCounterVec,
}

/// A live offer: the hold that holds the seats, and until when.
#[derive(Debug, Deserialize)]
pub(crate) struct LiveOffer {
    pub(crate) hold_id: String,
    pub(crate) expires_at_ms: i64,
}

#[derive(Deserialize)]
struct Entry {
    status: String,
    offer: Option<LiveOffer>,
}

impl OfferDesk {
    /// A desk with its counter in `registry`.
    pub(crate) fn new(registry: &prometheus::Registry) -> Self {
        OfferDesk {
            http: reqwest::Client::new(),
            admissions: onsale_contract::metrics::counter_vec(
                registry,
                "offer_admissions_total",
                "Waitlist offers asked for at the edge, by outcome",
                &["outcome"],
            ),
        }
    }

    /// The live offer of `show` to the account whose session is `session`, asking `origins`
    /// in turn until one answers; 404 `no_offer` when it has none at `now_ms`.
    pub(crate) async fn live_offer(
        &self,
        show: &str,
        session: &str,
        origins: Vec<SocketAddr>,
        timeout: Duration,
        now_ms: i64,
    ) -> Result<LiveOffer, Problem> {
        for origin in origins {
            let answer = self
                .http
                .get(format!("http://{origin}/v1/shows/{show}/waitlist"))
                .bearer_auth(session)
                .timeout(timeout)
                .send()
                .await;
            let response = match answer {
                Ok(response) => response,
                Err(error) => {
                    tracing::debug!(%error, %origin, "offer lookup failed");
                    continue;
                }
            };
            let entry = match response.status().as_u16() {
                200 => response.json::<Entry>().await.ok(),
                404 => None,
                // The session ended since the edge last asked whose it is.
                401 => {
                    self.admissions.with_label_values(&["no_offer"]).inc();
                    return Err(crate::problem::sign_in_required(
                        "sign in to buy what the waitlist offers",
                    ));
                }
                status => {
                    tracing::debug!(status, %origin, "offer lookup answered with an error");
                    continue;
                }
            };
            let live = entry
                .filter(|entry| entry.status == "offered")
                .and_then(|entry| entry.offer)
                .filter(|offer| offer.expires_at_ms > now_ms);
            let outcome = if live.is_some() {
                "admitted"
            } else {
                "no_offer"
            };
            self.admissions.with_label_values(&[outcome]).inc();
            return live.ok_or_else(|| {
                Problem::new(Code::NoOffer, "No offer")
                    .with_detail("no seats are held for this account on this show's waitlist")
            });
        }
        self.admissions.with_label_values(&["unavailable"]).inc();
        Err(Problem::new(Code::OfferUnavailable, "Service unavailable")
            .with_detail("offers cannot be checked right now; retry shortly")
            .with("retry_after_s", 2))
    }
}

//! Presale access at the edge. During a show's presale window (its availability snapshot
//! says when), a join goes ahead only once an origin of the pool has said the account may:
//! `POST /v1/shows/{id}/access` with the fan's session and the `access_code` the join
//! carries. The origin keeps the codes, spends them once per account and counts wrong ones;
//! its refusal (403 `access_code_required` / `access_code_invalid`, 429 `rate_limited`) is
//! the fan's answer as it is. No origin that can answer means no join: 503
//! `presale_unavailable`, never a join without a code.

use crate::problem::Code;
use onsale_contract::problem::Problem;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Asks origins whether accounts may join a presale.
pub(crate) struct PresaleGate {
    http: reqwest::Client,
    /// `presale_checks_total{outcome}`: `granted`, `refused`, `unavailable`.
    checks: prometheus::IntCounterVec,
}

/// What a join during a presale presents.
pub(crate) struct Presented<'a> {
    pub(crate) show: &'a str,
    pub(crate) session: &'a str,
    pub(crate) access_code: Option<&'a str>,
    pub(crate) client: IpAddr,
}

impl PresaleGate {
    /// A gate with its counter in `registry`.
    pub(crate) fn new(registry: &prometheus::Registry) -> Self {
        PresaleGate {
            http: reqwest::Client::new(),
            checks: onsale_contract::metrics::counter_vec(
                registry,
                "presale_checks_total",
                "Presale joins checked with an origin, by outcome",
                &["outcome"],
            ),
        }
    }

    /// Whether `presented` may join, asking `origins` in turn until one answers.
    pub(crate) async fn check(
        &self,
        presented: &Presented<'_>,
        origins: Vec<SocketAddr>,
        timeout: Duration,
    ) -> Result<(), Problem> {
        let body = serde_json::json!({ "access_code": presented.access_code });
        for origin in origins {
            let answer = self
                .http
                .post(format!(
                    "http://{origin}/v1/shows/{}/access",
                    presented.show
                ))
                .bearer_auth(presented.session)
                .header("x-forwarded-for", presented.client.to_string())
                .json(&body)
                .timeout(timeout)
                .send()
                .await;
            let response = match answer {
                Ok(response) => response,
                Err(error) => {
                    tracing::debug!(%error, %origin, "presale check failed");
                    continue;
                }
            };
            let status = response.status().as_u16();
            if status == 200 {
                self.checks.with_label_values(&["granted"]).inc();
                return Ok(());
            }
            if matches!(status, 401 | 403 | 429) {
                if let Ok(refusal) = response.json::<Problem>().await {
                    self.checks.with_label_values(&["refused"]).inc();
                    return Err(refusal);
                }
            }
            tracing::debug!(status, %origin, "presale check answered with an error");
        }
        self.checks.with_label_values(&["unavailable"]).inc();
        Err(
            Problem::new(Code::PresaleUnavailable, "Service unavailable")
                .with_detail("presale access cannot be checked right now; retry shortly")
                .with("retry_after_s", 2),
        )
    }
}

/// Whether `now_ms` is in `show`'s presale window, as its availability snapshot says.
pub(crate) fn in_window(window: Option<(i64, i64)>, now_ms: i64) -> bool {
    window.is_some_and(|(starts, ends)| (starts..ends).contains(&now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_includes_its_start_and_not_its_end() {
        assert!(!in_window(None, 5));
        assert!(!in_window(Some((10, 20)), 9));
        assert!(in_window(Some((10, 20)), 10));
        assert!(in_window(Some((10, 20)), 19));
        assert!(!in_window(Some((10, 20)), 20));
    }
}

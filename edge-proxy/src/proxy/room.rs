//! The waiting room's routes over HTTP: reads what the request carries (the queue token,
//! `show_id`, a join's body and session), asks the
//! [`WaitingRoom`](crate::waiting_room::WaitingRoom) and writes its typed answer, or its
//! refusal as problem+json.

use super::decide::Decision;
use super::EdgeProxy;
use crate::accounts::{Account, SessionError};
use crate::live::Runtime;
use crate::offers::PAYING_AFTER_OFFER_S;
use crate::openapi;
use crate::presale;
use crate::problem::{self, Code};
use crate::respond;
use crate::routes::{is_id, Room};
use crate::waiting_room::{sign_admission, ChallengeResponse, JoinRequest, Reply, RoomResponse};
use crate::Shared;
use http::HeaderMap;
use onsale_contract::problem::Problem;
use onsale_contract::tokens;
use pingora::lb::Backend;
use pingora::proxy::Session;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Longest join body read: `{"show_id", "pow"}` fits in far less.
pub(crate) const MAX_JOIN_BODY: usize = 2048;

/// A join's body, read to its end: at most [`MAX_JOIN_BODY`].
async fn join_body(session: &mut Session) -> Result<Vec<u8>, Problem> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_JOIN_BODY {
                    return Err(problem::body_too_large(MAX_JOIN_BODY));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err(problem::invalid_body("the request body could not be read")),
        }
    }
}

/// A join's body, checked; what is wrong with it otherwise.
fn join_request(body: &[u8]) -> Result<JoinRequest, String> {
    let request: JoinRequest = serde_json::from_slice(body)
        .map_err(|e| format!("expected {{\"show_id\": \"...\"}}: {e}"))?;
    if !is_id(&request.show_id) {
        return Err("show_id must be 1-64 URL-safe characters".into());
    }
    if let Some(pow) = &request.pow {
        if pow.challenge.len() > 256 || pow.solution.len() > 64 {
            return Err("pow.challenge or pow.solution is too long".into());
        }
    }
    Ok(request)
}

/// `show_id` from a query string, if present; `Err` if it cannot be an id.
fn show_param(query: Option<&str>) -> Result<Option<&str>, ()> {
    let Some(value) = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("show_id="))
    else {
        return Ok(None);
    };
    match is_id(value) {
        true => Ok(Some(value)),
        false => Err(()),
    }
}

/// Writes a waiting-room answer, its cookies `Secure` when the fan came over HTTPS; the
/// request is served whether or not the client stayed.
async fn write<B: Serialize>(
    session: &mut Session,
    runtime: &Runtime,
    reply: Reply<B>,
) -> Decision {
    let cookies = reply.cookie_headers(super::over_https(session, runtime));
    if let Err(error) = respond::json(session, reply.status, &reply.body, cookies).await {
        tracing::debug!(%error, "client went away");
    }
    Decision::Served
}

onsale_contract::problems!(pub(crate) PollProblems = [
    openapi::ANY,
    &[
        Code::InvalidQuery,
        Code::QueueTokenRequired,
        Code::WrongShow,
        Code::ShowNotFound,
        Code::TurnMissed,
        Code::QueueUnavailable,
    ],
]);

/// A queue poll's answer: where the fan holding the queue token in `headers` stands
/// (`show_id` in `query`, when given, must be its show).
#[utoipa::path(
    get,
    path = "/v1/waiting-room/sessions/current",
    tag = "waiting room",
    params((
        "show_id" = Option<String>,
        Query,
        description = "The show the queue token must be for.",
        pattern = "^[A-Za-z0-9_-]{1,64}$",
    )),
    responses(
        (status = 200, description = "Where the fan stands.", body = RoomResponse),
        PollProblems,
    ),
    security(("queue" = []), ("queue_cookie" = [])),
)]
pub(crate) async fn poll(
    shared: &Shared,
    runtime: &Runtime,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Reply<RoomResponse>, Problem> {
    let Ok(show) = show_param(query) else {
        return Err(invalid_show_param());
    };
    let presented = tokens::presented(headers, tokens::QUEUE_COOKIE);
    let now_ms = shared.clock.now_ms();
    shared
        .waiting_room
        .poll(runtime, &shared.snapshots, presented, show, now_ms)
        .await
        .map_err(|refusal| Problem::from(&refusal))
}

onsale_contract::problems!(pub(crate) ChallengeProblems = [
    openapi::ANY,
    &[
        Code::InvalidQuery,
        Code::ShowNotFound,
        Code::NoChallenge,
        Code::QueueUnavailable,
    ],
]);

/// Answers with a proof-of-work challenge for a join to the show the query's `show_id`
/// names, where its waiting room asks for one.
#[utoipa::path(
    get,
    path = "/v1/waiting-room/challenge",
    tag = "waiting room",
    params((
        "show_id" = String,
        Query,
        description = "The show to join.",
        pattern = "^[A-Za-z0-9_-]{1,64}$",
    )),
    responses(
        (status = 200, description = "The challenge.", body = ChallengeResponse),
        ChallengeProblems,
    ),
)]
pub(crate) async fn challenge(
    session: &mut Session,
    shared: &Shared,
    runtime: &Runtime,
) -> Decision {
    let challenged = match show_param(session.req_header().uri.query()) {
        Ok(show) => shared
            .waiting_room
            .challenge(runtime, &shared.snapshots, show, shared.clock.now_ms())
            .map_err(|refusal| Problem::from(&refusal)),
        Err(()) => Err(invalid_show_param()),
    };
    match challenged {
        Ok(reply) => write(session, runtime, reply).await,
        Err(problem) => problem.into(),
    }
}

fn invalid_show_param() -> Problem {
    problem::invalid_query("show_id must be 1-64 URL-safe characters")
}

/// Two healthy origins of the pool to ask about an account, at most: one that cannot
/// answer is not the last word.
fn origins(shared: &Shared) -> Vec<SocketAddr> {
    let first = shared.pool.select(b"", 256);
    let second = first.as_ref().and_then(|first| {
        let other = |b: &Backend, healthy: bool| healthy && b != first;
        shared.pool.select_with(b"", 256, other)
    });
    [first, second]
        .into_iter()
        .flatten()
        .filter_map(|b| b.addr.as_inet().copied())
        .collect()
}

/// The account whose session `token` is (401 `sign_in_required` without one the origin
/// vouches for, 503 `session_unavailable` when no origin can say).
async fn account(shared: &Shared, token: &str, runtime: &Runtime) -> Result<Arc<Account>, Problem> {
    let now_ms = shared.clock.now_ms();
    match shared
        .sessions
        .resolve(token, || origins(shared), &runtime.config.accounts, now_ms)
        .await
    {
        Ok(account) => Ok(account),
        Err(SessionError::SignInRequired(detail)) => Err(problem::sign_in_required(detail)),
        Err(SessionError::Unavailable) => Err(problem::session_unavailable()),
    }
}

onsale_contract::problems!(pub(crate) JoinProblems = [
    openapi::ANY,
    &[
        Code::InvalidBody,
        Code::SignInRequired,
        Code::SessionUnavailable,
        Code::AccessCodeRequired,
        Code::AccessCodeInvalid,
        Code::PresaleUnavailable,
        Code::ShowNotFound,
        Code::QueueTokenRequired,
        Code::PowRequired,
        Code::PowInvalid,
        Code::PowReused,
        Code::QueueUnavailable,
    ],
]);

/// A join's answer: the fan's place in the queue of the show in `body`, for the account
/// whose session `headers` carry; spends the client's join rate (429) first. One place per
/// account and show: joining again answers with the same place.
#[utoipa::path(
    post,
    path = "/v1/waiting-room/sessions",
    tag = "waiting room",
    request_body = JoinRequest,
    responses(
        (
            status = 201,
            description = "A new place; the queue token is also set as a cookie.",
            body = RoomResponse,
        ),
        (
            status = 200,
            description = "The account's place again, or the queue's state while it is \
                           closed; a new queue token is also set as a cookie when one was issued.",
            body = RoomResponse,
        ),
        JoinProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn join(
    shared: &Shared,
    runtime: &Runtime,
    client: IpAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reply<RoomResponse>, Problem> {
    runtime
        .limits
        .check_join(client)
        .map_err(|limited| super::refused_by_limit(&shared.metrics, limited))?;
    let request = join_request(body).map_err(problem::invalid_body)?;
    let session = tokens::presented_session(headers)
        .ok_or_else(|| problem::sign_in_required("sign in to join the waiting room"))?;
    let account = account(shared, session, runtime).await?;
    let presented = tokens::presented(headers, tokens::QUEUE_COOKIE);
    let now_ms = shared.clock.now_ms();
    let show = request.show_id.as_str();
    if presale::in_window(shared.snapshots.presale(show), now_ms) {
        let presented = presale::Presented {
            show,
            session,
            access_code: request.access_code.as_deref(),
            client,
        };
        let timeout = Duration::from_millis(runtime.config.accounts.lookup_timeout_ms);
        shared
            .presale
            .check(&presented, origins(shared), timeout)
            .await?;
    }
    shared
        .waiting_room
        .join(
            runtime,
            &shared.snapshots,
            request,
            &account,
            presented,
            now_ms,
        )
        .await
        .map_err(|refusal| Problem::from(&refusal))
}

/// A request for an offer's admission.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OfferRequest {
    /// The show whose waitlist offered the account seats: 1 to 64 URL-safe characters.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    show_id: String,
}

/// An admission to buy the seats a waitlist offers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct OfferAdmission {
    /// The show.
    show_id: String,
    /// The hold the offer's seats are in: order it with this admission.
    hold_id: String,
    /// When the offer ends, Unix ms: the seats pass on unless ordered by then.
    offer_expires_at_ms: i64,
    /// The admission token (also set as a cookie), for `POST /v1/orders` and the payment.
    admission_token: String,
    /// When the admission ends, Unix ms: 15 minutes after the offer, for a payment begun
    /// in time.
    admission_expires_at_ms: i64,
    /// The edge's clock, Unix ms.
    server_time_ms: i64,
}

onsale_contract::problems!(pub(crate) OfferProblems = [
    openapi::ANY,
    &[
        Code::InvalidBody,
        Code::SignInRequired,
        Code::SessionUnavailable,
        Code::NoOffer,
        Code::OfferUnavailable,
    ],
]);

/// An admission for the seats a show's waitlist holds for the signed-in account, while the
/// offer lasts: the offer is the fan's turn, without queueing again. Spends the client's
/// join rate (429) first.
#[utoipa::path(
    post,
    path = "/v1/waiting-room/offers",
    tag = "waiting room",
    request_body = OfferRequest,
    responses(
        (
            status = 200,
            description = "Admitted to buy the offer; the admission token is also set as a cookie.",
            body = OfferAdmission,
        ),
        OfferProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn offer(
    shared: &Shared,
    runtime: &Runtime,
    client: IpAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reply<OfferAdmission>, Problem> {
    runtime
        .limits
        .check_join(client)
        .map_err(|limited| super::refused_by_limit(&shared.metrics, limited))?;
    let request: OfferRequest = serde_json::from_slice(body)
        .map_err(|e| problem::invalid_body(format!("expected {{\"show_id\": \"...\"}}: {e}")))?;
    if !is_id(&request.show_id) {
        return Err(problem::invalid_body(
            "show_id must be 1-64 URL-safe characters",
        ));
    }
    let session = tokens::presented_session(headers)
        .ok_or_else(|| problem::sign_in_required("sign in to buy what the waitlist offers"))?;
    let account = account(shared, session, runtime).await?;
    let timeout = Duration::from_millis(runtime.config.accounts.lookup_timeout_ms);
    let now_ms = shared.clock.now_ms();
    let offer = shared
        .offers
        .live_offer(&request.show_id, session, origins(shared), timeout, now_ms)
        .await?;
    let expires_s = offer.expires_at_ms / 1000 + PAYING_AFTER_OFFER_S;
    let (admission_token, cookie) = sign_admission(
        runtime,
        &account.id,
        &request.show_id,
        now_ms,
        expires_s,
        // One admission per offer: asked twice, the copies are spent together.
        format!("offer-{}", offer.hold_id),
        None,
    );
    Ok(Reply {
        status: 200,
        cookies: vec![cookie],
        body: OfferAdmission {
            show_id: request.show_id,
            hold_id: offer.hold_id,
            offer_expires_at_ms: offer.expires_at_ms,
            admission_token,
            admission_expires_at_ms: expires_s * 1000,
            server_time_ms: now_ms,
        },
    })
}

impl EdgeProxy {
    /// Joins, polls and challenges, answered from this node's view of the queue; a join
    /// also spends the client's join rate (429) and needs a session (401).
    pub(super) async fn waiting_room(
        &self,
        session: &mut Session,
        client: IpAddr,
        room: Room,
        runtime: &Runtime,
    ) -> Decision {
        let shared = &self.shared;
        let answer = match room {
            Room::Poll => {
                let header = session.req_header();
                poll(shared, runtime, &header.headers, header.uri.query()).await
            }
            Room::Challenge => return challenge(session, shared, runtime).await,
            Room::Join => match join_body(session).await {
                Ok(body) => {
                    let headers = &session.req_header().headers;
                    join(shared, runtime, client, headers, &body).await
                }
                Err(problem) => Err(problem),
            },
            Room::Offer => {
                let answer = match join_body(session).await {
                    Ok(body) => {
                        let headers = &session.req_header().headers;
                        offer(shared, runtime, client, headers, &body).await
                    }
                    Err(problem) => Err(problem),
                };
                return match answer {
                    Ok(reply) => write(session, runtime, reply).await,
                    Err(problem) => problem.into(),
                };
            }
        };
        match answer {
            Ok(reply) => write(session, runtime, reply).await,
            Err(problem) => problem.into(),
        }
    }
}

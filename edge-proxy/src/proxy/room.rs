//! The waiting room's routes over HTTP: reads what the request carries (the queue token,
//! `show_id`, a join's body and session), asks the
//! [`WaitingRoom`](crate::waiting_room::WaitingRoom) and writes its typed answer, or its
//! refusal as problem+json.

use super::decide::Decision;
use super::EdgeProxy;
use crate::accounts::{Account, SessionError};
use crate::live::Runtime;
use crate::problem;
use crate::respond;
use crate::routes::{is_id, Room};
use crate::waiting_room::{JoinRequest, Reply};
use onsale_contract::problem::Problem;
use onsale_contract::tokens;
use pingora::lb::Backend;
use pingora::proxy::Session;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;

/// Longest join body read: `{"show_id", "pow"}` fits in far less.
const MAX_JOIN_BODY: usize = 2048;

/// A join's body, read to its end (at most [`MAX_JOIN_BODY`]) and checked.
async fn join_request(session: &mut Session) -> Result<JoinRequest, Problem> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_JOIN_BODY {
                    return Err(problem::body_too_large(MAX_JOIN_BODY));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return Err(problem::invalid_body("the request body could not be read")),
        }
    }
    let request: JoinRequest = serde_json::from_slice(&body)
        .map_err(|e| problem::invalid_body(format!("expected {{\"show_id\": \"...\"}}: {e}")))?;
    if !is_id(&request.show_id) {
        return Err(problem::invalid_body(
            "show_id must be 1-64 URL-safe characters",
        ));
    }
    if let Some(pow) = &request.pow {
        if pow.challenge.len() > 256 || pow.solution.len() > 64 {
            return Err(problem::invalid_body(
                "pow.challenge or pow.solution is too long",
            ));
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
    let secure = super::over_https(session, runtime);
    let cookies = reply.cookies.iter().map(|c| c.header(secure)).collect();
    if let Err(error) = respond::json(session, reply.status, &reply.body, cookies).await {
        tracing::debug!(%error, "client went away");
    }
    Decision::Served
}

impl EdgeProxy {
    /// The account whose session `token` is (401 `sign_in_required` without one the origin
    /// vouches for, 503 `session_unavailable` when no origin can say).
    async fn account(
        &self,
        token: Option<&str>,
        runtime: &Runtime,
    ) -> Result<Arc<Account>, Problem> {
        let token =
            token.ok_or_else(|| problem::sign_in_required("sign in to join the waiting room"))?;
        let shared = &self.shared;
        // Two healthy origins at most: one that cannot answer is not the last word.
        let origins = || {
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
        };
        let now_ms = shared.clock.now_ms();
        match shared
            .sessions
            .resolve(token, origins, &runtime.config.accounts, now_ms)
            .await
        {
            Ok(account) => Ok(account),
            Err(SessionError::SignInRequired(detail)) => Err(problem::sign_in_required(detail)),
            Err(SessionError::Unavailable) => Err(problem::session_unavailable()),
        }
    }

    /// Joins, polls and challenges, answered from this node's view of the queue; a join
    /// also spends the client's join rate (429) and needs a session (401).
    pub(super) async fn waiting_room(
        &self,
        session: &mut Session,
        client: IpAddr,
        room: Room,
        runtime: &Runtime,
    ) -> Decision {
        let now_ms = self.shared.clock.now_ms();
        let header = session.req_header();
        let Ok(show_param) = show_param(header.uri.query()) else {
            return problem::invalid_query("show_id must be 1-64 URL-safe characters").into();
        };
        let show_param = show_param.map(str::to_owned);
        let presented = tokens::presented(&header.headers, tokens::QUEUE_COOKIE).map(str::to_owned);
        let session_token = match room {
            Room::Join => tokens::presented_session(&header.headers).map(str::to_owned),
            Room::Poll | Room::Challenge => None,
        };
        let wr = &self.shared.waiting_room;
        let refusal = match room {
            Room::Challenge => match wr.challenge(runtime, show_param.as_deref(), now_ms) {
                Ok(reply) => return write(session, runtime, reply).await,
                Err(refusal) => refusal,
            },
            Room::Poll => {
                let polled = wr
                    .poll(runtime, presented.as_deref(), show_param.as_deref(), now_ms)
                    .await;
                match polled {
                    Ok(reply) => return write(session, runtime, reply).await,
                    Err(refusal) => refusal,
                }
            }
            Room::Join => {
                if let Err(limited) = runtime.limits.check_join(client) {
                    return self.limited(limited);
                }
                let request = match join_request(session).await {
                    Ok(request) => request,
                    Err(problem) => return problem.into(),
                };
                let account = match self.account(session_token.as_deref(), runtime).await {
                    Ok(account) => account,
                    Err(problem) => return problem.into(),
                };
                match wr
                    .join(runtime, request, &account, presented.as_deref(), now_ms)
                    .await
                {
                    Ok(reply) => return write(session, runtime, reply).await,
                    Err(refusal) => refusal,
                }
            }
        };
        Problem::from(&refusal).into()
    }
}

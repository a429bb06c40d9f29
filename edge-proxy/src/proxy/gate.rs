//! Who may pass to the origin on the routes that need a fan's token: the purchase path
//! needs an admission token for the show in the path, a ticket's QR code its owner's
//! admission or queue token. Either way the fan's own purchase rate applies. The origin
//! checks the same tokens again, so this gate keeps load off it rather than guarding alone.

use super::decide::Decision;
use super::{EdgeProxy, RequestCtx};
use crate::problem::{self, Code};
use onsale_contract::problem::Problem;
use onsale_contract::tokens::{self, TokenType, WAITING_ROOM_PATH};
use pingora::proxy::Session;

impl EdgeProxy {
    /// The admission gate: a valid admission token for the show in the path (401
    /// `admission_required`, 403 `wrong_show`), within the fan's purchase rate (429).
    pub(super) fn gate(&self, session: &Session, ctx: &mut RequestCtx) -> Decision {
        let header = session.req_header();
        let show = ctx.route.show(header.uri.path());
        let Some(token) = tokens::presented(&header.headers, tokens::ADMIT_COOKIE) else {
            return problem::admission_required("no admission token", show).into();
        };
        let claims = match ctx.runtime.tokens.verify(token, self.shared.clock.now_s()) {
            Ok(claims) => claims,
            Err(error) => {
                return problem::admission_required(error.fan_detail(TokenType::Admit), show).into()
            }
        };
        if let Some(show) = show.filter(|s| *s != claims.show) {
            return Problem::new(403, Code::WrongShow, "Admission is for another show")
                .with_detail("join the waiting room of this show")
                .with("join", WAITING_ROOM_PATH)
                .with("show_id", show)
                .into();
        }
        if let Err(limited) = ctx.runtime.limits.check_fan(&claims.sub, &claims.show) {
            return self.limited(limited);
        }
        ctx.admission = Some(claims);
        Decision::Proxy
    }

    /// A ticket's owner: an admission token, else the queue token of the same join (the
    /// origin checks that the ticket is theirs).
    pub(super) fn ticket_gate(&self, session: &Session, ctx: &mut RequestCtx) -> Decision {
        let headers = &session.req_header().headers;
        let now_s = self.shared.clock.now_s();
        let runtime = &ctx.runtime;
        let admitted = tokens::presented(headers, tokens::ADMIT_COOKIE)
            .and_then(|token| runtime.tokens.verify(token, now_s).ok());
        let queued = || {
            tokens::presented(headers, tokens::QUEUE_COOKIE)
                .and_then(|token| runtime.queue_tokens.verify(token, now_s).ok())
        };
        let Some(claims) = admitted.or_else(queued) else {
            return problem::admission_required("an admission or queue token is required", None)
                .into();
        };
        if let Err(limited) = runtime.limits.check_fan(&claims.sub, &claims.show) {
            return self.limited(limited);
        }
        ctx.admission = Some(claims);
        Decision::Proxy
    }
}

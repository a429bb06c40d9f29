//! Who may pass to the origin on the purchase path: a fan with an admission token for the
//! show in the path, not yet spent, within its own purchase rate. The origin checks the
//! same token again, so this gate keeps load off it rather than guarding alone.

use super::decide::Decision;
use super::{EdgeProxy, RequestCtx};
use crate::problem::{self, Code};
use onsale_contract::problem::Problem;
use onsale_contract::tokens::{self, TokenType, WAITING_ROOM_PATH};
use pingora::proxy::Session;

impl EdgeProxy {
    /// The admission gate: a valid admission token for the show in the path (401
    /// `admission_required`, 403 `wrong_show`) whose order is not paid yet (401
    /// `admission_spent`), within the fan's purchase rate (429). A spent admission still
    /// passes to a payment confirmation: the origin answers a confirmation it already
    /// answered (its answer lost on the way, say with the edge that carried it) and refuses
    /// any other.
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
            return Problem::new(Code::WrongShow, "Admission is for another show")
                .with_detail("join the waiting room of this show")
                .with("join", WAITING_ROOM_PATH)
                .with("show_id", show)
                .into();
        }
        if self.shared.waiting_room.is_spent(&claims.jti)
            && !header.uri.path().starts_with("/v1/payments/")
        {
            return problem::admission_spent().into();
        }
        if let Err(limited) = ctx.runtime.limits.check_fan(&claims.sub, &claims.show) {
            return self.limited(limited);
        }
        ctx.admission = Some(claims);
        Decision::Proxy
    }
}

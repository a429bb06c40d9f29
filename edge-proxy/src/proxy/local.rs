//! What the edge answers from memory instead of proxying: seat-map and availability
//! snapshots (404 for an unknown show, 503 until its first snapshot lands), catalog reads
//! the micro-cache holds fresh, and the fan web app.

use super::decide::Decision;
use super::{EdgeProxy, RequestCtx};
use crate::problem::{self, Code};
use crate::{respond, snapshots, web};
use bytes::Bytes;
use http::{header, Method};
use onsale_contract::problem::Problem;
use onsale_contract::snapshot::Kind;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

impl EdgeProxy {
    /// Seat map or availability from memory.
    pub(super) async fn snapshot(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        kind: Kind,
    ) -> Decision {
        let shared = &self.shared;
        let header = session.req_header();
        let show = ctx.route.show(header.uri.path()).unwrap_or_default();
        let now_ms = shared.clock.now_ms();
        if let Some(snapshot) = shared.snapshots.get(show, kind) {
            let answer = snapshots::respond(&snapshot, &header.headers, now_ms);
            return write(session, answer, "snapshot").await;
        }
        let show = show.to_owned();
        let origin = shared
            .pool
            .select(b"", 256)
            .and_then(|b| b.addr.as_inet().copied());
        match shared.shows.exists(&show, origin, now_ms).await {
            Some(false) => problem::show_not_found("there is no show with this id").into(),
            _ => Problem::new(Code::SnapshotNotReady, "Seat map not ready")
                .with_detail("the first snapshot of this show is still being built")
                .with("retry_after_s", ctx.runtime.config.snapshots.retry_after_s)
                .into(),
        }
    }

    /// A fresh micro-cached answer, or marks a GET for capture on its way back.
    pub(super) async fn catalog(&self, session: &mut Session, ctx: &mut RequestCtx) -> Decision {
        let origin = &ctx.runtime.config.origin;
        if origin.catalog_cache_ms == 0 {
            return Decision::Proxy;
        }
        let key = session
            .req_header()
            .uri
            .path_and_query()
            .map_or_else(String::new, |p| p.as_str().to_owned());
        let now_ms = self.shared.clock.now_ms();
        let metrics = &self.shared.metrics;
        let Some(cached) = self
            .shared
            .catalog_cache
            .fresh(&key, now_ms, origin.catalog_cache_ms)
        else {
            metrics.catalog_cache.with_label_values(&["miss"]).inc();
            if session.req_header().method == Method::GET {
                ctx.cache_key = Some(key);
            }
            return Decision::Proxy;
        };
        metrics.catalog_cache.with_label_values(&["hit"]).inc();
        let mut header = cached.header.clone();
        let age = ((now_ms - cached.stored_ms).max(0) / 1000).to_string();
        if header.insert_header(header::AGE, age).is_err() {
            return Decision::Proxy;
        }
        if let Err(error) = respond::body(session, header, cached.body.clone()).await {
            tracing::debug!(%error, "client went away");
        }
        Decision::Served
    }

    /// A page or an asset of the web app; 404 for an asset this build does not have.
    pub(super) async fn web(&self, session: &mut Session, ctx: &RequestCtx) -> Decision {
        let runtime = &ctx.runtime;
        let hsts = match (
            super::over_https(session, runtime),
            &runtime.config.listen.tls,
        ) {
            (true, Some(tls)) if tls.hsts_max_age_s > 0 => {
                Some(format!("max-age={}", tls.hsts_max_age_s))
            }
            _ => None,
        };
        let header = session.req_header();
        let Some(answer) = web::respond(header.uri.path(), &header.headers, hsts.as_deref()) else {
            return problem::route_not_found().into();
        };
        write(session, answer, "web app").await
    }
}

/// Writes an answer the edge built from memory (`what` names it in the log should building
/// it have failed); served whether or not the client stayed.
async fn write(
    session: &mut Session,
    answer: pingora::Result<(ResponseHeader, Bytes)>,
    what: &str,
) -> Decision {
    match answer {
        Ok((header, body)) => {
            if let Err(error) = respond::body(session, header, body).await {
                tracing::debug!(%error, "client went away");
            }
            Decision::Served
        }
        Err(error) => {
            tracing::error!(%error, what, "cannot build a response");
            problem::internal().into()
        }
    }
}

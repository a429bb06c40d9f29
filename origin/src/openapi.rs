//! The origin's OpenAPI 3.1 document. Each handler carries its `#[utoipa::path]` (method,
//! path, parameters, body, answers and problem codes); the router registers handlers through
//! `utoipa_axum`, so a route cannot be served without being documented. Served at
//! `/openapi.json`; the edge publishes the public part of it.

use crate::error::Code;
use onsale_contract::tokens::{ADMIT_COOKIE, SESSION_COOKIE};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, Required, Tag};

/// Codes any route may answer with: the origin's own failure, the database not answering.
pub(crate) const ANY: &[Code] = &[Code::Internal, Code::Unavailable];
/// Codes of a route that reads a JSON body.
pub(crate) const JSON_BODY: &[Code] = &[
    Code::MalformedJson,
    Code::InvalidBody,
    Code::BodyTooLarge,
    Code::UnsupportedMediaType,
];
/// Codes of a route behind the waiting room (an admission token for the show).
pub(crate) const ADMISSION: &[Code] = &[Code::AdmissionRequired, Code::AdmissionSpent];
/// Codes of a route that takes the fan's session.
pub(crate) const SESSION: &[Code] = &[Code::SignInRequired];
/// Codes of a write made idempotent by its `Idempotency-Key`.
pub(crate) const IDEMPOTENT: &[Code] = &[
    Code::IdempotencyKeyRequired,
    Code::IdempotencyInFlight,
    Code::IdempotencyKeyReused,
];
/// Codes of an organizer route (the admin token).
pub(crate) const ORGANIZER: &[Code] = &[Code::Unauthorized];

/// The `Idempotency-Key` header of an idempotent write, for `params(IdempotencyKeyHeader)`.
pub(crate) struct IdempotencyKeyHeader;

impl utoipa::IntoParams for IdempotencyKeyHeader {
    fn into_params(_: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>) -> Vec<Parameter> {
        vec![ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .description(Some(
                "1 to 255 visible ASCII characters. A retry with the same key and the same \
                 request gets the first answer again; the same key with another request is \
                 refused.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[!-~]{1,255}$")),
            ))
            .build()]
    }
}

/// The document of `api` (the routes' paths and schemas): its description, security
/// schemes, tags and the problem schema.
pub(crate) fn complete(mut api: OpenApi) -> OpenApi {
    api.info = InfoBuilder::new()
        .title("onsale origin")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Catalog, accounts, holds, orders, payments and tickets. Purchase routes need an \
             admission token from the waiting room; account routes need the fan's session; \
             organizer routes the admin token. Every error is `application/problem+json` \
             with a stable `code`, listed per route.",
        ))
        .build();
    onsale_contract::openapi::add_problem_schema(&mut api);
    let components = api.components.get_or_insert_with(Default::default);
    let bearer = |description: &str| {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(description.to_owned());
        SecurityScheme::Http(http)
    };
    let cookie = |name: &str, description: &str| {
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            name,
            description,
        )))
    };
    for (name, security) in [
        (
            "admission",
            bearer("The admission token (a JWT) the waiting room gives a fan whose turn came."),
        ),
        (
            "admission_cookie",
            cookie(ADMIT_COOKIE, "The admission token as the edge sets it."),
        ),
        (
            "session",
            bearer("The `session_token` of `POST /v1/sessions`."),
        ),
        (
            "session_cookie",
            cookie(
                SESSION_COOKIE,
                "The session as `POST /v1/sessions` sets it.",
            ),
        ),
        ("organizer", bearer("The organizer's admin token.")),
    ] {
        components.add_security_scheme(name, security);
    }
    api.tags = Some(
        [
            (
                "accounts",
                "Signing up, in and out; the fan's account; password resets.",
            ),
            ("catalog", "Events and shows: public, cacheable."),
            (
                "purchase",
                "Holds, orders and payments: behind the waiting room.",
            ),
            (
                "fan",
                "The fan's orders and tickets: the fan's session, never the queue.",
            ),
            (
                "organizer",
                "Venues, events, shows, presale codes, cancellation and the door.",
            ),
            (
                "scanners",
                "What a venue's scanners verify tickets with offline: the signing keys and \
                 each show's revocations.",
            ),
            ("provider", "What the payment provider calls."),
            (
                "operations",
                "Health, readiness, metrics and this document.",
            ),
        ]
        .into_iter()
        .map(|(name, description)| {
            let mut tag = Tag::new(name);
            tag.description = Some(description.to_owned());
            tag
        })
        .collect(),
    );
    api
}

//! The edge's OpenAPI documents: the operations listener's ([`OPERATIONS`]), and the public
//! one. The routes the edge answers itself (the waiting room
//! and the seat-map snapshots) are documented here and where they are answered; the routes
//! it passes on are the origin's, as far as [`classify`] lets them through, with the problems
//! the edge adds on the way (its limits, its gate, an origin that does not answer). The test
//! suite builds the document from the origin's and keeps it as `web/openapi.json`, which the
//! edge serves at `/openapi.json` like the web app's files.

use crate::problem::Code;
use crate::proxy::room;
use crate::routes::{classify, RouteClass};
use http::Method;
use onsale_contract::openapi::{add_problem_codes, add_problem_schema, problem_responses};
use onsale_contract::tokens::QUEUE_COOKIE;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::LazyLock;
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, PathItem, Ref, RefOr, ResponseBuilder, Tag,
};
use utoipa::OpenApi as _;

/// The operations listener's document: health, readiness, metrics, and the admin API.
pub static OPERATIONS: LazyLock<OpenApi> = LazyLock::new(|| {
    let mut document = crate::admin::OperationsApi::openapi();
    document.info = InfoBuilder::new()
        .title("onsale edge operations")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The edge's operations listener (`listen.admin`): health and readiness for load \
             balancers, Prometheus metrics, and the admin API (`/admin/`, behind the admin \
             token when one is set): the effective configuration, a show's queue, and \
             changing its admission on every node. Every error is \
             `application/problem+json` with a stable `code`, listed per route.",
        ))
        .build();
    add_problem_schema(&mut document);
    let mut admin = Http::new(HttpAuthScheme::Bearer);
    admin.description = Some("The edge's admin token (`admin.token`).".to_owned());
    document
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme("admin", SecurityScheme::Http(admin));
    document
});

/// Codes the edge may answer any public route with, before answering or passing it on.
pub(crate) const ANY: &[Code] = &[
    Code::HeadersTooLarge,
    Code::RateLimited,
    Code::BodyTooLarge,
    Code::Internal,
];
/// Codes of a route the edge passes on to an origin.
const PROXIED: &[Code] = &[Code::NoHealthyOrigin, Code::UpstreamFailed];
/// Codes of the purchase routes' gate: an admission token for the show, not spent.
const GATE: &[Code] = &[
    Code::AdmissionRequired,
    Code::AdmissionSpent,
    Code::WrongShow,
];
/// Codes of a snapshot route.
const SNAPSHOT: &[Code] = &[Code::ShowNotFound, Code::SnapshotNotReady];

/// Component names of the snapshot documents' schemas, which the builder's types provide.
pub const SEAT_MAP_SCHEMA: &str = "SeatMap";
/// See [`SEAT_MAP_SCHEMA`].
pub const AVAILABILITY_SCHEMA: &str = "Availability";

#[derive(utoipa::OpenApi)]
#[openapi(paths(room::join, room::poll, room::challenge, room::offer))]
struct WaitingRoomApi;

/// The edge's public document: the routes of `origin` (the origin's document) the edge
/// passes on, with the edge's problems added, its own routes, and `snapshot_schemas` (the
/// seat map's and availability's, named [`SEAT_MAP_SCHEMA`] and [`AVAILABILITY_SCHEMA`]).
pub fn public_document(
    origin: &OpenApi,
    snapshot_schemas: impl IntoIterator<Item = (String, RefOr<Schema>)>,
) -> OpenApi {
    let mut document = WaitingRoomApi::openapi();
    document.info = InfoBuilder::new()
        .title("onsale edge")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The public face of onsale: the waiting room and seat-map snapshots, answered by \
             the edge; catalog, account, purchase and partner routes, passed on to the origin \
             (purchase routes only with an admission token for their show). Every error is \
             `application/problem+json` with a stable `code`, listed per route. The fan web \
             app's pages and assets (`/`, `/events/...`, `/assets/...`) are HTML and files, \
             not part of this document.",
        ))
        .build();
    for (path, item) in origin.paths.paths.iter() {
        if let Some(item) = passed_on(path, item) {
            document.paths.paths.insert(path.clone(), item);
        }
    }
    for (path, schema) in [
        ("/v1/shows/{id}/seat-map", SEAT_MAP_SCHEMA),
        ("/v1/shows/{id}/availability", AVAILABILITY_SCHEMA),
    ] {
        document
            .paths
            .paths
            .insert(path.to_owned(), snapshot_route(schema));
    }
    // An id segment the edge cannot take for an id never reaches anything: no such route.
    for (path, item) in document.paths.paths.iter_mut() {
        if !path.contains('{') {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            add_problem_codes(
                &mut operation.responses.responses,
                [(Code::RouteNotFound.status(), Code::RouteNotFound.as_str())],
            );
        }
    }
    document.paths.paths.sort_keys();
    let components = document.components.get_or_insert_with(Default::default);
    if let Some(from) = &origin.components {
        components.schemas.extend(from.schemas.clone());
        components
            .security_schemes
            .extend(from.security_schemes.clone());
    }
    components.schemas.extend(snapshot_schemas);
    let mut queue = Http::new(HttpAuthScheme::Bearer);
    queue.description = Some("The `queue_token` of a join.".to_owned());
    components.add_security_scheme("queue", SecurityScheme::Http(queue));
    components.add_security_scheme(
        "queue_cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            QUEUE_COOKIE,
            "The queue token as a join sets it.",
        ))),
    );
    add_problem_schema(&mut document);
    let used = used_tags(&document);
    let mut tags: Vec<Tag> = origin
        .tags
        .iter()
        .flatten()
        .filter(|tag| used.contains(&tag.name))
        .cloned()
        .collect();
    for (name, description) in [
        (
            "waiting room",
            "Joining the queue of a show, polling it, and proof of work where asked.",
        ),
        (
            "seat maps",
            "Seat maps and availability: snapshots rebuilt on a schedule, cacheable.",
        ),
    ] {
        let mut tag = Tag::new(name);
        tag.description = Some(description.to_owned());
        tags.push(tag);
    }
    document.tags = Some(tags);
    prune_schemas(&mut document);
    document
}

/// The operations of an origin route the edge passes on, with the edge's problems; `None`
/// when the edge passes on none of its methods.
fn passed_on(path: &str, item: &PathItem) -> Option<PathItem> {
    // A template's `{id}` is one id-like segment, which is all classification looks at.
    let concrete: String = path
        .split('/')
        .map(|segment| match segment.starts_with('{') {
            true => "id",
            false => segment,
        })
        .collect::<Vec<_>>()
        .join("/");
    let mut kept = PathItem::default();
    let mut any = false;
    for (method, from, to) in [
        (Method::GET, &item.get, &mut kept.get),
        (Method::PUT, &item.put, &mut kept.put),
        (Method::POST, &item.post, &mut kept.post),
        (Method::DELETE, &item.delete, &mut kept.delete),
        (Method::PATCH, &item.patch, &mut kept.patch),
    ] {
        let Some(operation) = from else { continue };
        let route = classify(&method, &concrete);
        let edge_codes: &[&[Code]] = match route.class {
            _ if !route.method_allowed => continue,
            RouteClass::Unknown
            | RouteClass::Web
            | RouteClass::SeatMap(_)
            | RouteClass::WaitingRoom(_) => continue,
            RouteClass::Purchase => &[ANY, PROXIED, GATE],
            RouteClass::Catalog | RouteClass::Account(_) | RouteClass::Partner => &[ANY, PROXIED],
        };
        let mut operation: Operation = operation.clone();
        let codes = edge_codes.iter().flat_map(|set| set.iter());
        add_problem_codes(
            &mut operation.responses.responses,
            codes.map(|code| (code.status(), code.as_str())),
        );
        *to = Some(operation);
        any = true;
    }
    any.then_some(kept)
}

/// A snapshot route: its document, revalidated by ETag, in the negotiated encoding.
fn snapshot_route(schema: &str) -> PathItem {
    let text = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .build()
    };
    let mut responses = problem_responses(&[ANY, SNAPSHOT]);
    responses.insert(
        "200".to_owned(),
        ResponseBuilder::new()
            .description(
                "The show's latest snapshot, as built; `Cache-Control` runs to the next build.",
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(schema)))
                    .build(),
            )
            .build()
            .into(),
    );
    responses.insert(
        "304".to_owned(),
        ResponseBuilder::new()
            .description("Not modified: the `If-None-Match` ETag is the current one.")
            .build()
            .into(),
    );
    let mut operation = OperationBuilder::new()
        .tag("seat maps")
        .summary(Some(match schema {
            SEAT_MAP_SCHEMA => "The show's seat map: sections, rows and seats.",
            _ => "The show's availability: counts and every seat's state.",
        }))
        .operation_id(Some(format!("get_{}", schema.to_lowercase())))
        .parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(utoipa::openapi::Required::True)
                .description(Some("The show."))
                .schema(Some(text("1 to 64 URL-safe characters."))),
        )
        .parameter(
            ParameterBuilder::new()
                .name("If-None-Match")
                .parameter_in(ParameterIn::Header)
                .description(Some("An ETag of an earlier answer."))
                .schema(Some(text("An entity tag list."))),
        )
        .build();
    operation.responses.responses = responses;
    let mut item = PathItem::default();
    item.get = Some(operation);
    item
}

/// Every tag an operation of `document` carries.
fn used_tags(document: &OpenApi) -> BTreeSet<String> {
    let value = serde_json::to_value(&document.paths).unwrap_or_default();
    let mut found = BTreeSet::new();
    walk(&value, &mut |key, value| {
        if key == "tags" {
            for tag in value.as_array().into_iter().flatten() {
                found.extend(tag.as_str().map(str::to_owned));
            }
        }
    });
    found
}

/// Drops the component schemas no route of `document` reaches (the origin's organizer
/// bodies, for one).
fn prune_schemas(document: &mut OpenApi) {
    let Some(components) = document.components.as_mut() else {
        return;
    };
    let schemas = serde_json::to_value(&components.schemas).unwrap_or_default();
    let refs_of = |value: &Value| {
        let mut found = BTreeSet::new();
        walk(value, &mut |key, value| {
            if let ("$ref", Some(target)) = (key, value.as_str()) {
                found.extend(
                    target
                        .strip_prefix("#/components/schemas/")
                        .map(str::to_owned),
                );
            }
        });
        found
    };
    let paths = serde_json::to_value(&document.paths).unwrap_or_default();
    let mut reached = refs_of(&paths);
    let mut pending: Vec<String> = reached.iter().cloned().collect();
    while let Some(name) = pending.pop() {
        for target in schemas.get(&name).map(refs_of).unwrap_or_default() {
            if reached.insert(target.clone()) {
                pending.push(target);
            }
        }
    }
    components.schemas.retain(|name, _| reached.contains(name));
}

/// Calls `visit` with every key and value of every object in `value`, depth first.
fn walk(value: &Value, visit: &mut impl FnMut(&str, &Value)) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                visit(key, inner);
                walk(inner, visit);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| walk(item, visit)),
        _ => {}
    }
}

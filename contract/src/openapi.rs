//! What both binaries' OpenAPI documents share: the problem+json schema and the problem
//! responses of a route, built from its codes, so a document lists per route exactly the
//! codes (and through them the statuses) the route answers with.

use crate::problem::{ProblemCode, CONTENT_TYPE};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};

pub use utoipa;

/// The name of the problem schema among a document's components.
pub const PROBLEM_SCHEMA: &str = "Problem";

/// The members every problem has (RFC 9457 and `code`); extensions may follow.
pub fn problem_schema() -> Schema {
    let text = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
    };
    ObjectBuilder::new()
        .description(Some(
            "RFC 9457 problem details. `code` is the stable contract; `title` and `detail` \
             are for humans. Extension members carry a problem's facts \
             (e.g. `unavailable_seat_ids`, `retry_after_s`).",
        ))
        .property("type", text("A URI ending in the code, documenting it."))
        .property(
            "title",
            text("A short human summary of the kind of problem."),
        )
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .description(Some("The HTTP status of the response.")),
        )
        .property("code", text("The machine-readable code clients branch on."))
        .property("detail", text("A human explanation of this occurrence."))
        .required("type")
        .required("title")
        .required("status")
        .required("code")
        .build()
        .into()
}

/// Adds [`problem_schema`] to `doc`'s components.
pub fn add_problem_schema(doc: &mut OpenApi) {
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .insert(PROBLEM_SCHEMA.to_owned(), problem_schema().into());
}

/// The problem responses of a route answering with the codes in `sets`: one response per
/// status, whose `code` is one of that status's codes (also listed in `x-problem-codes`).
pub fn problem_responses<C: ProblemCode>(sets: &[&[C]]) -> BTreeMap<String, RefOr<Response>> {
    let mut responses = BTreeMap::new();
    let codes = sets.iter().flat_map(|set| set.iter());
    add_problem_codes(
        &mut responses,
        codes.map(|code| (code.status(), code.as_str())),
    );
    responses
}

/// Adds `codes` (status, code) to `responses`, joining the codes a status's problem response
/// lists already: how a proxy documents what it adds to the routes it passes on.
pub fn add_problem_codes<'a>(
    responses: &mut BTreeMap<String, RefOr<Response>>,
    codes: impl IntoIterator<Item = (u16, &'a str)>,
) {
    let mut by_status: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
    for (status, code) in codes {
        by_status.entry(status).or_default().insert(code.to_owned());
    }
    for (status, mut codes) in by_status {
        let key = status.to_string();
        if let Some(RefOr::T(existing)) = responses.get(&key) {
            codes.extend(listed_codes(existing));
        }
        responses.insert(key, problem_response(status, codes).into());
    }
}

/// The codes a problem response made here lists.
fn listed_codes(response: &Response) -> Vec<String> {
    response
        .extensions
        .as_ref()
        .and_then(|extensions| extensions.get(PROBLEM_CODES))
        .and_then(|codes| serde_json::from_value(codes.clone()).ok())
        .unwrap_or_default()
}

/// The extension listing a problem response's codes.
const PROBLEM_CODES: &str = "x-problem-codes";

fn problem_response(status: u16, codes: BTreeSet<String>) -> Response {
    let listed = codes
        .iter()
        .map(|code| format!("`{code}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let codes: Vec<String> = codes.into_iter().collect();
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name(PROBLEM_SCHEMA))
        .item(
            ObjectBuilder::new().property(
                "code",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(codes.clone())),
            ),
        );
    let mut response = ResponseBuilder::new()
        .description(format!("Problem: {listed}."))
        .content(
            CONTENT_TYPE,
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .extensions(Some(
            ExtensionsBuilder::new().add(PROBLEM_CODES, codes).build(),
        ));
    // Limits and outages say when to come back.
    if matches!(status, 429 | 503) {
        let seconds = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0));
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(seconds))
                .description(Some(
                    "Seconds to wait before trying again (`retry_after_s`).",
                ))
                .build(),
        );
    }
    response.build()
}

/// Declares a route's problem responses: `problems!(HoldProblems = [SETS, &[Code::X]])`
/// makes a type for `#[utoipa::path(responses(..., HoldProblems))]` out of code sets.
#[macro_export]
macro_rules! problems {
    ($(#[$meta:meta])* $vis:vis $name:ident = [$($codes:expr),* $(,)?]) => {
        $(#[$meta])*
        $vis struct $name;

        impl $crate::openapi::utoipa::IntoResponses for $name {
            fn responses() -> ::std::collections::BTreeMap<
                String,
                $crate::openapi::utoipa::openapi::RefOr<
                    $crate::openapi::utoipa::openapi::Response,
                >,
            > {
                $crate::openapi::problem_responses(&[$($codes),*])
            }
        }
    };
}

//! `ApiJson`: axum's `Json` extractor with its rejections turned into problem+json, so a
//! malformed, mistyped or oversized body gets the same error shape as everything else;
//! `RawBody`, the same for a body taken as bytes.
//! Every body is a JSON object: serde's derived structs also read an array of their fields
//! in order, which would take `[[3, 5]]` for a hold of seats 3 and 5.

use crate::error::{ApiError, Code};
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use onsale_contract::problem::Problem;
use serde::de::{value::MapAccessDeserializer, DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::marker::PhantomData;

pub(crate) struct ApiJson<T>(pub T);

/// A `T` read from a JSON object only.
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Fields(PhantomData))
            .map(Object)
    }
}

#[derive(Debug)]
pub(crate) struct BodyRejection(Problem);

impl axum::response::IntoResponse for BodyRejection {
    fn into_response(self) -> axum::response::Response {
        crate::error::problem_response(&self.0)
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = BodyRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<Object<T>>::from_request(req, state).await {
            Ok(axum::Json(Object(value))) => Ok(ApiJson(value)),
            Err(rejection) => Err(BodyRejection(rejection_problem(&rejection))),
        }
    }
}

/// `Option<ApiJson<T>>`: a request without `Content-Type` is taken to have no body (`None`);
/// any other is parsed and refused like `ApiJson<T>`.
impl<S, T> axum::extract::OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = BodyRejection;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        match <axum::Json<Object<T>> as axum::extract::OptionalFromRequest<S>>::from_request(
            req, state,
        )
        .await
        {
            Ok(value) => Ok(value.map(|axum::Json(Object(value))| ApiJson(value))),
            Err(rejection) => Err(BodyRejection(rejection_problem(&rejection))),
        }
    }
}

fn rejection_problem(rejection: &JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonSyntaxError(e) => {
            Problem::new(Code::MalformedJson, "Malformed JSON").with_detail(e.body_text())
        }
        JsonRejection::JsonDataError(e) => ApiError::InvalidBody(e.body_text()).to_problem(),
        JsonRejection::MissingJsonContentType(_) => {
            Problem::new(Code::UnsupportedMediaType, "Unsupported media type")
                .with_detail("send the body as Content-Type: application/json")
        }
        JsonRejection::BytesRejection(e) => bytes_problem(e),
        other => {
            Problem::new(Code::InvalidBody, "Invalid request body").with_detail(other.body_text())
        }
    }
}

/// A body that could not be read: over the route's limit, or cut off.
fn bytes_problem(rejection: &BytesRejection) -> Problem {
    match rejection.status().as_u16() {
        413 => Problem::new(Code::BodyTooLarge, "Request body too large")
            .with_detail("the body exceeds this route's size limit"),
        _ => Problem::new(Code::InvalidBody, "Invalid request body")
            .with_detail(rejection.body_text()),
    }
}

/// A body taken as it came (a provider's signed webhook), within the route's size limit;
/// one over it, or cut off, is refused as problem+json like every other body.
pub(crate) struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = BodyRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| BodyRejection(bytes_problem(&rejection)))
    }
}

#[cfg(test)]
mod tests {
    use super::Object;
    use serde::Deserialize;
    use serde_json::{json, Value};

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        seat_ids: Vec<i64>,
        note: Option<String>,
    }

    fn read<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, serde_json::Error> {
        serde_json::from_value::<Object<T>>(value).map(|Object(body)| body)
    }

    #[test]
    fn a_body_is_an_object_and_never_an_array_of_its_fields() {
        // What serde alone would accept.
        assert!(serde_json::from_value::<Body>(json!([[3, 5], null])).is_ok());
        assert!(read::<Body>(json!([[3, 5], null])).is_err());
        assert!(read::<Body>(json!([[3, 5]])).is_err());
        assert!(read::<Body>(json!("x")).is_err());
        assert_eq!(
            read::<Body>(json!({"seat_ids": [3, 5]})).unwrap(),
            Body {
                seat_ids: vec![3, 5],
                note: None
            }
        );
        assert!(read::<Body>(json!({"seat_ids": [3], "extra": 1})).is_err());
        assert_eq!(read::<Value>(json!({"a": [1]})).unwrap(), json!({"a": [1]}));
        assert!(read::<Value>(json!([1])).is_err());
    }
}

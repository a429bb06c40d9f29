//! `ApiJson`: axum's `Json` extractor with its rejections turned into problem+json, so a
//! malformed, mistyped or oversized body gets the same error shape as everything else.

use crate::error::{ApiError, Code};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use onsale_contract::problem::Problem;
use serde::de::DeserializeOwned;

pub(crate) struct ApiJson<T>(pub T);

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
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
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
        match <axum::Json<T> as axum::extract::OptionalFromRequest<S>>::from_request(req, state)
            .await
        {
            Ok(value) => Ok(value.map(|axum::Json(value)| ApiJson(value))),
            Err(rejection) => Err(BodyRejection(rejection_problem(&rejection))),
        }
    }
}

fn rejection_problem(rejection: &JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonSyntaxError(e) => {
            Problem::new(400, Code::MalformedJson, "Malformed JSON").with_detail(e.body_text())
        }
        JsonRejection::JsonDataError(e) => ApiError::InvalidBody(e.body_text()).to_problem(),
        JsonRejection::MissingJsonContentType(_) => {
            Problem::new(415, Code::UnsupportedMediaType, "Unsupported media type")
                .with_detail("send the body as Content-Type: application/json")
        }
        JsonRejection::BytesRejection(e) if e.status().as_u16() == 413 => {
            Problem::new(413, Code::BodyTooLarge, "Request body too large")
                .with_detail("the body exceeds this route's size limit")
        }
        other => Problem::new(400, Code::InvalidBody, "Invalid request body")
            .with_detail(other.body_text()),
    }
}

//! Building HTTP answers: JSON bodies with their content type, serialized without panics.

use crate::error::ApiError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `body` (already JSON) with `status` and `Content-Type: application/json`.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `value` as JSON bytes; a value that cannot serialize is an internal error, not a panic.
pub(crate) fn to_json(value: &impl Serialize) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|error| ApiError::Internal(error.to_string()))
}

/// `value` as a JSON answer with `status`.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Result<Response, ApiError> {
    Ok(json_response(status, to_json(value)?))
}

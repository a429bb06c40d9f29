//! RFC 9457 problem details with a stable machine-readable `code`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const CONTENT_TYPE: &str = "application/problem+json";

/// Base of the `type` URI; the code is appended so each code documents itself.
const TYPE_BASE: &str = "https://onsale.dev/problems/";

/// One error response. `code` is the stable contract; `title` and `detail` are for humans
/// and may change wording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extension members, e.g. `unavailable_seat_ids` or `retry_after_s`.
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

impl Problem {
    pub fn new(status: u16, code: &str, title: &str) -> Self {
        Problem {
            type_uri: format!("{TYPE_BASE}{code}"),
            title: title.to_owned(),
            status,
            code: code.to_owned(),
            detail: None,
            extensions: Map::new(),
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a problem always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_rfc9457_members_and_flattens_extensions() {
        let problem = Problem::new(409, "seats_unavailable", "Seats are taken")
            .with_detail("2 of 3 seats are held by someone else")
            .with("unavailable_seat_ids", vec![4, 5]);
        let value: Value = serde_json::from_slice(&problem.to_json()).unwrap();
        assert_eq!(
            value["type"],
            "https://onsale.dev/problems/seats_unavailable"
        );
        assert_eq!(value["status"], 409);
        assert_eq!(value["code"], "seats_unavailable");
        assert_eq!(value["unavailable_seat_ids"], serde_json::json!([4, 5]));
        let back: Problem = serde_json::from_value(value).unwrap();
        assert_eq!(back, problem);
    }
}

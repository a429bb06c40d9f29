//! RFC 9457 problem details with a stable machine-readable `code`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The media type of every error body.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// Base of the `type` URI; the code is appended so each code documents itself.
const TYPE_BASE: &str = "https://onsale.dev/problems/";

/// One error response. `code` is the stable contract; `title` and `detail` are for humans
/// and may change wording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// The `type` member: a URI ending in the code, documenting the kind of problem.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short human summary of the kind of problem.
    pub title: String,
    /// The HTTP status code of the response.
    pub status: u16,
    /// The stable machine-readable code clients branch on.
    pub code: String,
    /// A human explanation of this particular occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extension members, e.g. `unavailable_seat_ids` or `retry_after_s`.
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

/// A binary's closed set of problem codes: each binary declares one enum with
/// [`problem_codes!`](crate::problem_codes), so a code is a variant, never a loose string.
pub trait ProblemCode: Copy {
    /// The stable wire form, `snake_case`.
    fn as_str(self) -> &'static str;
    /// The HTTP status every answer with this code has.
    fn status(self) -> u16;
}

/// Declares an enum of problem codes with their statuses and wire forms, `ALL` (every
/// variant, for documentation and tests) and its [`ProblemCode`] impl. A code has one status,
/// so what a route documents for a code is what it answers.
#[macro_export]
macro_rules! problem_codes {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = ($status:literal, $code:literal),)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every code, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stable wire form.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            /// The HTTP status of every answer with this code.
            pub const fn status(self) -> u16 {
                match self {
                    $($name::$variant => $status,)*
                }
            }
        }

        impl $crate::problem::ProblemCode for $name {
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }

            fn status(self) -> u16 {
                $name::status(self)
            }
        }
    };
}

/// Checks a code set: unique, non-empty `snake_case` wire forms. For each binary's tests.
pub fn assert_well_formed<C: ProblemCode + std::fmt::Debug>(codes: &[C]) {
    let mut seen = std::collections::HashSet::new();
    for code in codes {
        let text = code.as_str();
        assert!(
            !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{code:?}: {text:?} is not snake_case"
        );
        assert!(seen.insert(text), "{code:?}: {text:?} is used twice");
    }
}

impl Problem {
    /// A problem with its stable `code` (and the code's status) and a short human `title`.
    pub fn new(code: impl ProblemCode, title: &str) -> Self {
        let status = code.status();
        let code = code.as_str();
        Problem {
            type_uri: format!("{TYPE_BASE}{code}"),
            title: title.to_owned(),
            status,
            code: code.to_owned(),
            detail: None,
            extensions: Map::new(),
        }
    }

    /// Adds the human explanation of this occurrence.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// The body as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a problem always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    problem_codes! {
        enum Code {
            SeatsUnavailable = (409, "seats_unavailable"),
            Other = (400, "other"),
        }
    }

    #[test]
    fn declared_codes_are_well_formed() {
        assert_well_formed(Code::ALL);
        assert_eq!(Code::Other.as_str(), "other");
    }

    #[test]
    fn serializes_rfc9457_members_and_flattens_extensions() {
        let problem = Problem::new(Code::SeatsUnavailable, "Seats are taken")
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

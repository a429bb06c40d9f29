//! The body of `POST /v1/shows/{id}/holds` and the `Idempotency-Key` header, parsed.

use crate::error::{ApiError, Code};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Exactly one of the two shapes; anything else (both, neither, extra fields) is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldBody {
    seat_ids: Option<Vec<i64>>,
    section_id: Option<String>,
    quantity: Option<i64>,
}

/// A hold request, parsed; serialized, it is the canonical request an `Idempotency-Key`
/// is fingerprinted with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldRequest {
    /// These seats, all or none; sorted, so equal requests are equal values.
    Seats(Vec<i64>),
    /// The best `quantity` seats of a section: adjacent in one row when possible.
    BestAvailable {
        /// The section's code.
        section_id: String,
        /// How many seats.
        quantity: usize,
    },
}

fn unprocessable(code: Code, detail: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(code, detail.into())
}

impl HoldRequest {
    pub(crate) fn parse(body: HoldBody, max_seats: usize) -> Result<Self, ApiError> {
        let too_many = || {
            ApiError::problem(
                onsale_contract::problem::Problem::new(422, Code::TooManySeats, "Too many seats")
                    .with_detail(format!("a hold has at most {max_seats} seats"))
                    .with("max_seats_per_hold", max_seats),
            )
        };
        match (body.seat_ids, body.section_id, body.quantity) {
            (Some(seat_ids), None, None) => {
                if seat_ids.is_empty() {
                    return Err(unprocessable(
                        Code::NoSeats,
                        "`seat_ids` must name at least one seat",
                    ));
                }
                if seat_ids.len() > max_seats {
                    return Err(too_many());
                }
                let mut seen = HashSet::new();
                let duplicates: Vec<i64> = seat_ids
                    .iter()
                    .copied()
                    .filter(|id| !seen.insert(*id))
                    .collect();
                if !duplicates.is_empty() {
                    return Err(ApiError::problem(
                        onsale_contract::problem::Problem::new(
                            422,
                            Code::DuplicateSeats,
                            "Duplicate seats",
                        )
                        .with_detail("each seat may be asked for once")
                        .with("duplicate_seat_ids", duplicates),
                    ));
                }
                let mut seats = seat_ids;
                seats.sort_unstable();
                Ok(HoldRequest::Seats(seats))
            }
            (None, Some(section_id), Some(quantity)) => {
                let valid_section = (1..=32).contains(&section_id.len())
                    && section_id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !valid_section {
                    return Err(unprocessable(Code::UnknownSection, "no such section"));
                }
                if quantity < 1 {
                    return Err(unprocessable(
                        Code::NoSeats,
                        "`quantity` must be at least 1",
                    ));
                }
                if quantity as usize > max_seats {
                    return Err(too_many());
                }
                Ok(HoldRequest::BestAvailable {
                    section_id,
                    quantity: quantity as usize,
                })
            }
            _ => Err(ApiError::InvalidBody(
                "send either `seat_ids`, or `section_id` with `quantity`".to_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<HoldRequest, ApiError> {
        HoldRequest::parse(
            serde_json::from_value(value).map_err(|e| ApiError::InvalidBody(e.to_string()))?,
            8,
        )
    }

    fn code(value: serde_json::Value) -> String {
        parse(value).unwrap_err().to_problem().code
    }

    #[test]
    fn parses_both_shapes() {
        assert_eq!(
            parse(json!({"seat_ids": [5, 3]})).unwrap(),
            HoldRequest::Seats(vec![3, 5])
        );
        assert_eq!(
            parse(json!({"section_id": "101", "quantity": 2})).unwrap(),
            HoldRequest::BestAvailable {
                section_id: "101".into(),
                quantity: 2
            }
        );
    }

    #[test]
    fn refuses_what_cannot_be_a_hold() {
        assert_eq!(code(json!({"seat_ids": []})), "no_seats");
        assert_eq!(code(json!({"seat_ids": [1, 2, 1]})), "duplicate_seats");
        assert_eq!(
            code(json!({"seat_ids": (1..=9).collect::<Vec<i64>>()})),
            "too_many_seats"
        );
        assert_eq!(
            code(json!({"section_id": "101", "quantity": 0})),
            "no_seats"
        );
        assert_eq!(
            code(json!({"section_id": "101", "quantity": 9})),
            "too_many_seats"
        );
        assert_eq!(
            code(json!({"section_id": "a b", "quantity": 1})),
            "unknown_section"
        );
        assert_eq!(
            code(json!({"seat_ids": [1], "section_id": "101", "quantity": 1})),
            "invalid_body"
        );
        assert_eq!(code(json!({})), "invalid_body");
    }
}

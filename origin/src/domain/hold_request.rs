//! The body of `POST /v1/shows/{id}/holds` and the `Idempotency-Key` header, parsed.

use crate::error::{ApiError, Code};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Either `seat_ids`, or `quantity` with a `section_id` or a `price_tier` for the best
/// available seats; anything else (more than one, none, extra fields) is refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldBody {
    /// These seats, all or none; each once, at most `max_seats_per_hold`.
    seat_ids: Option<Vec<i64>>,
    /// The section for a best-available hold: 1 to 32 characters.
    #[schema(min_length = 1, max_length = 32)]
    section_id: Option<String>,
    /// The price tier for a best-available hold, across every section priced at it: 1 to
    /// 32 characters.
    #[schema(min_length = 1, max_length = 32)]
    price_tier: Option<String>,
    /// How many seats, at least 1.
    #[schema(minimum = 1)]
    quantity: Option<i64>,
}

/// Where a best-available hold looks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BestScope {
    /// One section, by its code.
    SectionId(String),
    /// Every section of a price tier, by the tier's code.
    PriceTier(String),
}

/// A hold request, parsed; serialized, it is the canonical request an `Idempotency-Key`
/// is fingerprinted with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldRequest {
    /// These seats, all or none; sorted, so equal requests are equal values.
    Seats(Vec<i64>),
    /// The best `quantity` seats of a section or a price tier: adjacent in one row, nearest
    /// the stage, when possible.
    BestAvailable {
        /// Where to look.
        #[serde(flatten)]
        scope: BestScope,
        /// How many seats.
        quantity: usize,
    },
}

/// A section or tier code: 1 to 32 letters, digits, `-` and `_`.
pub(crate) fn is_code(code: &str) -> bool {
    (1..=32).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn unprocessable(code: Code, detail: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(code, detail.into())
}

impl HoldRequest {
    pub(crate) fn parse(body: HoldBody, max_seats: usize) -> Result<Self, ApiError> {
        let too_many = || {
            ApiError::problem(
                onsale_contract::problem::Problem::new(Code::TooManySeats, "Too many seats")
                    .with_detail(format!("a hold has at most {max_seats} seats"))
                    .with("max_seats_per_hold", max_seats),
            )
        };
        let scope = match (body.section_id, body.price_tier) {
            (Some(section), None) => Some(BestScope::SectionId(section)),
            (None, Some(tier)) => Some(BestScope::PriceTier(tier)),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidBody(
                    "send `section_id` or `price_tier`, not both".to_owned(),
                ))
            }
        };
        match (body.seat_ids, scope, body.quantity) {
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
            (None, Some(scope), Some(quantity)) => {
                match &scope {
                    BestScope::SectionId(section) if !is_code(section) => {
                        return Err(unprocessable(Code::UnknownSection, "no such section"));
                    }
                    BestScope::PriceTier(tier) if !is_code(tier) => {
                        return Err(unprocessable(Code::UnknownPriceTier, "no such price tier"));
                    }
                    _ => {}
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
                    scope,
                    quantity: quantity as usize,
                })
            }
            _ => Err(ApiError::InvalidBody(
                "send either `seat_ids`, or `quantity` with `section_id` or `price_tier`"
                    .to_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Object;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    const MAX_SEATS: usize = 8;

    fn parse(value: serde_json::Value) -> Result<HoldRequest, ApiError> {
        HoldRequest::parse(
            serde_json::from_value::<Object<HoldBody>>(value)
                .map_err(|e| ApiError::InvalidBody(e.to_string()))?
                .0,
            MAX_SEATS,
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
                scope: BestScope::SectionId("101".into()),
                quantity: 2
            }
        );
        assert_eq!(
            parse(json!({"price_tier": "P1", "quantity": 3})).unwrap(),
            HoldRequest::BestAvailable {
                scope: BestScope::PriceTier("P1".into()),
                quantity: 3
            }
        );
    }

    #[test]
    fn a_section_request_is_fingerprinted_as_before() {
        let request = parse(json!({"section_id": "101", "quantity": 2})).unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"best_available": {"section_id": "101", "quantity": 2}})
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
            code(json!({"price_tier": "a b", "quantity": 1})),
            "unknown_price_tier"
        );
        assert_eq!(
            code(json!({"seat_ids": [1], "section_id": "101", "quantity": 1})),
            "invalid_body"
        );
        assert_eq!(
            code(json!({"section_id": "101", "price_tier": "P1", "quantity": 1})),
            "invalid_body"
        );
        assert_eq!(code(json!({})), "invalid_body");
    }

    /// Any JSON value, a few levels deep.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    /// A body with any of the three fields, each usually of the right type and near the
    /// limits, sometimes any JSON at all, and sometimes a field of another name.
    fn any_hold_body() -> impl Strategy<Value = Value> {
        let seat_ids = prop_oneof![
            3 => prop::collection::vec(-3..12i64, 0..=MAX_SEATS + 2).prop_map(Value::from),
            1 => any_json(),
        ];
        let section_id = prop_oneof![
            3 => "[A-Za-z0-9_ .-]{0,34}".prop_map(Value::from),
            1 => any_json(),
        ];
        let quantity = prop_oneof![
            3 => (-2..=MAX_SEATS as i64 + 2).prop_map(Value::from),
            1 => any_json(),
        ];
        (
            prop::option::of(seat_ids),
            prop::option::of(section_id),
            prop::option::of(quantity),
            prop::option::weighted(0.1, ("[a-z_]{1,10}", any_json())),
        )
            .prop_map(|(seat_ids, section_id, quantity, other)| {
                let fields = [
                    ("seat_ids", seat_ids),
                    ("section_id", section_id),
                    ("quantity", quantity),
                ];
                let mut body: serde_json::Map<String, Value> = fields
                    .into_iter()
                    .filter_map(|(name, value)| Some((name.to_owned(), value?)))
                    .collect();
                body.extend(other);
                Value::Object(body)
            })
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused(text in any::<String>()) {
            if let Ok(Object(body)) = serde_json::from_str::<Object<HoldBody>>(&text) {
                let _ = HoldRequest::parse(body, MAX_SEATS);
            }
        }

        #[test]
        fn accepted_holds_keep_within_the_limits(
            body in prop_oneof![any_hold_body(), any_json()]
        ) {
            match parse(body.clone()) {
                Ok(HoldRequest::Seats(seats)) => {
                    prop_assert!((1..=MAX_SEATS).contains(&seats.len()));
                    // Sorted without duplicates: strictly increasing.
                    prop_assert!(seats.windows(2).all(|pair| pair[0] < pair[1]));
                    let mut sent: Vec<i64> = serde_json::from_value(body["seat_ids"].clone()).unwrap();
                    sent.sort_unstable();
                    prop_assert_eq!(seats, sent);
                }
                Ok(HoldRequest::BestAvailable { scope: BestScope::SectionId(section_id), quantity }) => {
                    prop_assert!((1..=32).contains(&section_id.len()));
                    prop_assert!(section_id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                    prop_assert!((1..=MAX_SEATS).contains(&quantity));
                    prop_assert_eq!(&body["section_id"], &Value::from(section_id));
                    prop_assert_eq!(&body["quantity"], &Value::from(quantity));
                }
                Ok(HoldRequest::BestAvailable { scope: BestScope::PriceTier(_), .. }) => {
                    prop_assert!(false, "no tier was sent");
                }
                Err(_) => {}
            }
        }

        #[test]
        fn a_seat_list_is_accepted_exactly_when_it_names_one_to_the_most_distinct_seats(
            seat_ids in prop::collection::vec(any::<i64>(), 0..=MAX_SEATS + 2),
            duplicate in any::<Option<prop::sample::Index>>(),
        ) {
            let mut seat_ids = seat_ids;
            if let (Some(at), Some(&seat)) = (duplicate, seat_ids.first()) {
                seat_ids.insert(at.index(seat_ids.len() + 1), seat);
            }
            let distinct = seat_ids.iter().collect::<HashSet<_>>().len() == seat_ids.len();
            let acceptable = (1..=MAX_SEATS).contains(&seat_ids.len()) && distinct;
            prop_assert_eq!(parse(json!({ "seat_ids": seat_ids })).is_ok(), acceptable);
        }
    }
}

//! Organizer input: a venue with its seat map, an event, a show. Each `*Draft` is built only
//! by parsing its request body, so a draft in hand is within every limit below.

use crate::error::{ApiError, Code};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::HashSet;
use uuid::Uuid;

pub(crate) const MAX_SECTIONS: usize = 1_000;
pub(crate) const MAX_SEATS: usize = 200_000;
pub(crate) const MAX_ROWS_PER_SECTION: usize = 500;
pub(crate) const MAX_SEATS_PER_ROW: usize = 1_000;
/// Most places a general-admission section holds.
pub(crate) const MAX_GA_CAPACITY: i32 = 200_000;
pub(crate) const MAX_PRICE_TIERS: usize = 64;
/// Far beyond any real ticket, far below where cents overflow when summed over a hold.
pub(crate) const MAX_PRICE_CENTS: i64 = 100_000_000;

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(Code::InvalidField, detail.into())
}

fn text(field: &str, value: String, max: usize) -> Result<String, ApiError> {
    let value = value.trim().to_owned();
    if value.is_empty() || value.chars().count() > max {
        return Err(invalid(format!("`{field}` must be 1 to {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "`{field}` must not contain control characters"
        )));
    }
    Ok(value)
}

fn code(field: &str, value: String) -> Result<String, ApiError> {
    if super::hold_request::is_code(&value) {
        Ok(value)
    } else {
        Err(invalid(format!(
            "`{field}` must be 1 to 32 characters of A-Z, a-z, 0-9, - and _ (got {value:?})"
        )))
    }
}

/// A venue and its whole seat map, in layout order. Text fields are trimmed, then must be
/// non-empty, within their length, and free of control characters. At most 200,000 seats in
/// all.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VenueBody {
    /// The venue's name: 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Its city: 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub city: String,
    /// Its time zone name, shown to fans (not checked against a zone database): 1 to 64
    /// characters.
    #[serde(default = "utc")]
    #[schema(min_length = 1, max_length = 64, default = "UTC")]
    pub timezone: String,
    /// Its sections: 1 to 1,000, each `section_id` once.
    #[schema(min_items = 1, max_items = 1000)]
    pub sections: Vec<SectionBody>,
    /// The point fans want to sit near (the stage, the pitch's centre), in the seats'
    /// coordinates; best-available holds rank seats by their distance to it. Default: the
    /// origin, `{"x": 0, "y": 0}`.
    #[serde(default)]
    pub stage: Option<StagePoint>,
}

/// A point of a venue's seat map.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StagePoint {
    /// Its x position; a finite number.
    pub x: f32,
    /// Its y position; a finite number.
    pub y: f32,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// A section of the seat map.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SectionBody {
    /// The section's code, unique in the venue: 1 to 32 of A-Z, a-z, 0-9, `-` and `_`.
    #[schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub section_id: String,
    /// Its name: 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// The price tier its seats sell at; each show prices every tier of its venue. 1 to 32
    /// of A-Z, a-z, 0-9, `-` and `_`.
    #[schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub price_tier: String,
    /// Its rows: 1 to 500, each label once. None for a general-admission section.
    #[serde(default)]
    #[schema(max_items = 500)]
    pub rows: Vec<RowBody>,
    /// For a general-admission section (standing, unreserved), how many fans it holds: 1 to
    /// 200,000; it then has no rows. Fans hold places by quantity.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 200000)]
    pub capacity: Option<i32>,
}

/// A row of a section.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RowBody {
    /// The row's label, unique in the section: 1 to 16 characters.
    #[schema(min_length = 1, max_length = 16)]
    pub row: String,
    /// Its seats: 1 to 1,000, each number once.
    #[schema(min_items = 1, max_items = 1000)]
    pub seats: Vec<SeatBody>,
}

/// A seat of a row.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeatBody {
    /// The seat's number, positive and unique in its row.
    #[schema(minimum = 1)]
    pub number: i32,
    /// Its x position on the seat map; a finite number.
    pub x: f32,
    /// Its y position on the seat map; a finite number.
    pub y: f32,
    /// What fans should know about the seat.
    #[serde(default)]
    pub flags: Vec<SeatFlag>,
}

/// Something fans should know about a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SeatFlag {
    Accessible,
    Obstructed,
}

/// A venue's seat map in layout order: sections as given, rows as given, seats as given.
/// That order is the order of the layout document and of `seat_status`.
#[derive(Debug, Clone)]
pub(crate) struct VenueDraft {
    pub name: String,
    pub city: String,
    pub timezone: String,
    pub sections: Vec<SectionLayout>,
    /// Where the stage is: (x, y) in the seats' coordinates.
    pub stage: (f32, f32),
}

#[derive(Debug, Clone)]
pub(crate) struct SectionLayout {
    pub section_id: String,
    pub name: String,
    pub price_tier: String,
    pub rows: Vec<(String, Vec<SeatBody>)>,
    /// Set for a general-admission section, which has no rows.
    pub capacity: Option<i32>,
}

impl VenueDraft {
    pub(crate) fn parse(body: VenueBody) -> Result<Self, ApiError> {
        let name = text("name", body.name, 200)?;
        let city = text("city", body.city, 100)?;
        let timezone = text("timezone", body.timezone, 64)?;
        if body.sections.is_empty() || body.sections.len() > MAX_SECTIONS {
            return Err(invalid(format!(
                "`sections` must hold 1 to {MAX_SECTIONS} sections"
            )));
        }
        let mut section_ids = HashSet::new();
        let mut seat_total = 0usize;
        let mut sections = Vec::with_capacity(body.sections.len());
        for section in body.sections {
            let section_id = code("section_id", section.section_id)?;
            if !section_ids.insert(section_id.clone()) {
                return Err(invalid(format!("section `{section_id}` appears twice")));
            }
            let price_tier = code("price_tier", section.price_tier)?;
            let name = text("sections[].name", section.name, 100)?;
            if let Some(capacity) = section.capacity {
                if !section.rows.is_empty() || !(1..=MAX_GA_CAPACITY).contains(&capacity) {
                    return Err(invalid(format!(
                        "general-admission section `{section_id}` has a capacity of 1 to \
                         {MAX_GA_CAPACITY} and no rows"
                    )));
                }
                sections.push(SectionLayout {
                    section_id,
                    name,
                    price_tier,
                    rows: Vec::new(),
                    capacity: Some(capacity),
                });
                continue;
            }
            if section.rows.is_empty() || section.rows.len() > MAX_ROWS_PER_SECTION {
                return Err(invalid(format!(
                    "section `{section_id}` must have 1 to {MAX_ROWS_PER_SECTION} rows, or a \
                     `capacity` for general admission"
                )));
            }
            let mut row_labels = HashSet::new();
            let mut rows = Vec::with_capacity(section.rows.len());
            for row in section.rows {
                let label = text("rows[].row", row.row, 16)?;
                if !row_labels.insert(label.clone()) {
                    return Err(invalid(format!(
                        "section `{section_id}` has row `{label}` twice"
                    )));
                }
                if row.seats.is_empty() || row.seats.len() > MAX_SEATS_PER_ROW {
                    return Err(invalid(format!(
                        "row `{label}` of section `{section_id}` must have 1 to {MAX_SEATS_PER_ROW} seats"
                    )));
                }
                let mut numbers = HashSet::new();
                for seat in &row.seats {
                    if seat.number <= 0 || !numbers.insert(seat.number) {
                        return Err(invalid(format!(
                            "row `{label}` of section `{section_id}`: seat number {} is not positive or appears twice",
                            seat.number
                        )));
                    }
                    if !seat.x.is_finite() || !seat.y.is_finite() {
                        return Err(invalid("seat coordinates must be finite numbers"));
                    }
                }
                seat_total += row.seats.len();
                if seat_total > MAX_SEATS {
                    return Err(invalid(format!("a venue has at most {MAX_SEATS} seats")));
                }
                rows.push((label, row.seats));
            }
            sections.push(SectionLayout {
                section_id,
                name,
                price_tier,
                rows,
                capacity: None,
            });
        }
        let stage = body.stage.map_or((0.0, 0.0), |point| (point.x, point.y));
        if !stage.0.is_finite() || !stage.1.is_finite() {
            return Err(invalid("`stage` coordinates must be finite numbers"));
        }
        Ok(VenueDraft {
            stage,
            name,
            city,
            timezone,
            sections,
        })
    }

    pub(crate) fn seat_count(&self) -> usize {
        self.sections
            .iter()
            .flat_map(|s| &s.rows)
            .map(|(_, seats)| seats.len())
            .sum()
    }
}

/// Whether `text` is prose as it may be stored: line breaks and tabs are its only control
/// characters (PostgreSQL cannot store NUL at all).
pub(crate) fn is_prose(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// An event at a venue. Text fields are trimmed, then checked; `name` and `performer` must
/// be non-empty and free of control characters, `description` of all but line breaks and tabs.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBody {
    /// The venue, which must exist.
    pub venue_id: Uuid,
    /// The event's name: 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Who performs: 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub performer: String,
    /// What fans read about it: at most 4,000 characters; line breaks and tabs are the only
    /// control characters it may contain.
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub description: String,
}

#[derive(Debug, Clone)]
pub(crate) struct EventDraft {
    pub venue_id: Uuid,
    pub name: String,
    pub performer: String,
    pub description: String,
}

impl EventDraft {
    pub(crate) fn parse(body: EventBody) -> Result<Self, ApiError> {
        let description = body.description.trim().to_owned();
        if description.chars().count() > 4000 {
            return Err(invalid("`description` must be at most 4000 characters"));
        }
        if !is_prose(&description) {
            return Err(invalid(
                "`description` must not contain control characters other than line breaks and tabs",
            ));
        }
        Ok(EventDraft {
            venue_id: body.venue_id,
            name: text("name", body.name, 200)?,
            performer: text("performer", body.performer, 200)?,
            description,
        })
    }
}

/// A show of an event: when, when it goes on sale, and the price of each of its venue's
/// tiers.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShowBody {
    /// When the show starts.
    pub starts_at: DateTime<Utc>,
    /// When it goes on sale: not after `starts_at`.
    pub on_sale_at: DateTime<Utc>,
    /// Its prices' currency: an ISO 4217 code such as EUR.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// A price for every tier of the venue: 1 to 64 tiers, each once.
    #[schema(min_items = 1, max_items = 64)]
    pub price_tiers: Vec<PriceTierBody>,
}

/// The price of one tier at a show.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PriceTierBody {
    /// The venue's tier code: 1 to 32 of A-Z, a-z, 0-9, `-` and `_`.
    #[schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub tier: String,
    /// The tier's name as fans see it (trimmed, no control characters): 1 to 100
    /// characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// A seat's price in cents of `currency`: 0 to 100,000,000.
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub price_cents: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct ShowDraft {
    pub starts_at: DateTime<Utc>,
    pub on_sale_at: DateTime<Utc>,
    pub currency: String,
    pub price_tiers: Vec<PriceTierBody>,
}

impl ShowDraft {
    pub(crate) fn parse(body: ShowBody) -> Result<Self, ApiError> {
        if body.on_sale_at > body.starts_at {
            return Err(invalid("`on_sale_at` must not be after `starts_at`"));
        }
        let currency = body.currency.trim().to_owned();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid("`currency` must be an ISO 4217 code such as EUR"));
        }
        if body.price_tiers.is_empty() || body.price_tiers.len() > MAX_PRICE_TIERS {
            return Err(invalid(format!(
                "`price_tiers` must hold 1 to {MAX_PRICE_TIERS} tiers"
            )));
        }
        let mut seen = HashSet::new();
        let mut price_tiers = Vec::with_capacity(body.price_tiers.len());
        for tier in body.price_tiers {
            let code = code("price_tiers[].tier", tier.tier)?;
            if !seen.insert(code.clone()) {
                return Err(invalid(format!("price tier `{code}` appears twice")));
            }
            if !(0..=MAX_PRICE_CENTS).contains(&tier.price_cents) {
                return Err(invalid(format!(
                    "price of tier `{code}` must be 0 to {MAX_PRICE_CENTS} cents"
                )));
            }
            price_tiers.push(PriceTierBody {
                tier: code,
                name: text("price_tiers[].name", tier.name, 100)?,
                price_cents: tier.price_cents,
            });
        }
        Ok(ShowDraft {
            starts_at: body.starts_at,
            on_sale_at: body.on_sale_at,
            currency,
            price_tiers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn venue(value: serde_json::Value) -> Result<VenueDraft, ApiError> {
        VenueDraft::parse(serde_json::from_value(value).unwrap())
    }

    fn one_section(rows: serde_json::Value) -> serde_json::Value {
        json!({"name": "Hall", "city": "Oslo", "sections": [
            {"section_id": "A", "name": "Stalls", "price_tier": "T1", "rows": rows}]})
    }

    #[test]
    fn accepts_a_small_venue_in_layout_order() {
        let draft = venue(one_section(json!([
            {"row": "1", "seats": [{"number": 2, "x": 1.0, "y": 0.0}, {"number": 1, "x": 0.0, "y": 0.0, "flags": ["accessible"]}]},
            {"row": "2", "seats": [{"number": 1, "x": 0.0, "y": 1.0, "flags": ["obstructed"]}]}
        ])))
        .unwrap();
        assert_eq!(draft.seat_count(), 3);
        assert_eq!(draft.sections[0].rows[0].1[0].number, 2);
        assert_eq!(draft.timezone, "UTC");
    }

    #[test]
    fn rejects_duplicates_and_bad_codes() {
        let dup_seat = one_section(json!([{"row": "1", "seats": [
            {"number": 1, "x": 0.0, "y": 0.0}, {"number": 1, "x": 1.0, "y": 0.0}]}]));
        assert!(venue(dup_seat).is_err());
        let dup_row = one_section(json!([
            {"row": "1", "seats": [{"number": 1, "x": 0.0, "y": 0.0}]},
            {"row": "1", "seats": [{"number": 2, "x": 0.0, "y": 0.0}]}]));
        assert!(venue(dup_row).is_err());
        let bad_code = json!({"name": "Hall", "city": "Oslo", "sections": [
            {"section_id": "A B", "name": "S", "price_tier": "T1", "rows": [{"row": "1", "seats": [{"number": 1, "x": 0.0, "y": 0.0}]}]}]});
        assert!(venue(bad_code).is_err());
        assert!(venue(json!({"name": "Hall", "city": "Oslo", "sections": []})).is_err());
    }

    #[test]
    fn show_needs_sane_times_currency_and_prices() {
        let show = |on_sale: &str, currency: &str, price: i64| {
            ShowDraft::parse(
                serde_json::from_value(json!({
                    "starts_at": "2027-06-01T19:00:00Z", "on_sale_at": on_sale, "currency": currency,
                    "price_tiers": [{"tier": "T1", "name": "Stalls", "price_cents": price}]}))
                .unwrap(),
            )
        };
        assert!(show("2027-01-01T10:00:00Z", "EUR", 5000).is_ok());
        assert!(show("2027-07-01T10:00:00Z", "EUR", 5000).is_err());
        assert!(show("2027-01-01T10:00:00Z", "euro", 5000).is_err());
        assert!(show("2027-01-01T10:00:00Z", "EUR", -1).is_err());
    }
}

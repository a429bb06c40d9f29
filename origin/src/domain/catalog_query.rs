//! The public event listing's query string, parsed once into an [`EventFilter`].

use crate::domain::page::{Keyset, Page};
use crate::error::ApiError;
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Deserialize;
use uuid::Uuid;

const MAX_TEXT: usize = 200;
const MAX_CITY: usize = 100;

/// What the query string may hold; anything else is rejected rather than ignored, so a
/// misspelt filter never silently returns everything.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEventQuery {
    city: Option<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    venue_id: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventFilter {
    pub city: Option<String>,
    /// Events with a show starting at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Events with a show starting before this instant.
    pub to: Option<DateTime<Utc>>,
    /// A `to_tsquery` expression: every word of `q` as a prefix, all required.
    pub text_query: Option<String>,
    pub venue_id: Option<Uuid>,
    pub after: Option<Keyset>,
    pub limit: u32,
}

impl EventFilter {
    pub(crate) fn parse(
        query: Option<&str>,
        default_limit: u32,
        max_limit: u32,
    ) -> Result<Self, ApiError> {
        let raw: RawEventQuery = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| ApiError::invalid_query("query", e.to_string()))?;
        let city = bounded_text("city", raw.city, MAX_CITY)?;
        let text_query = bounded_text("q", raw.q, MAX_TEXT)?
            .map(|q| {
                prefix_tsquery(&q).ok_or_else(|| {
                    ApiError::invalid_query("q", "must contain at least one letter or digit")
                })
            })
            .transpose()?;
        let from = raw
            .from
            .map(|v| parse_instant("from", &v, false))
            .transpose()?;
        let to = raw.to.map(|v| parse_instant("to", &v, true)).transpose()?;
        if let (Some(from), Some(to)) = (from, to) {
            if from >= to {
                return Err(ApiError::invalid_query("to", "must be after `from`"));
            }
        }
        let venue_id = raw
            .venue_id
            .map(|v| {
                Uuid::parse_str(&v).map_err(|_| ApiError::invalid_query("venue_id", "not a UUID"))
            })
            .transpose()?;
        let page = Page::parse(raw.cursor, raw.limit, default_limit, max_limit)?;
        Ok(EventFilter {
            city,
            from,
            to,
            text_query,
            venue_id,
            after: page.after,
            limit: page.limit,
        })
    }
}

/// `"quart live"` -> `quart:* & live:*`, so fans find "Midnight Quartet" while typing.
/// Only letters and digits reach the expression; tsquery operators in input are dropped.
fn prefix_tsquery(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(16)
        .map(|w| format!("{}:*", w.to_lowercase()))
        .collect();
    (!words.is_empty()).then(|| words.join(" & "))
}

fn bounded_text(
    param: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match value.map(|v| v.trim().to_owned()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Err(ApiError::invalid_query(param, "must not be empty")),
        Some(v) if v.chars().count() > max => Err(ApiError::invalid_query(
            param,
            format!("at most {max} characters"),
        )),
        Some(v) if v.chars().any(char::is_control) => Err(ApiError::invalid_query(
            param,
            "must not contain control characters",
        )),
        Some(v) => Ok(Some(v)),
    }
}

/// RFC 3339 instants, or plain dates: `from=2027-06-01` means from the start of that day,
/// `to=2027-06-30` through the end of that day (UTC).
fn parse_instant(
    param: &'static str,
    value: &str,
    end_of_day: bool,
) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(value) {
        return Ok(instant.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
        ApiError::invalid_query(param, "expected a date (YYYY-MM-DD) or an RFC 3339 time")
    })?;
    let date = if end_of_day {
        date.checked_add_days(Days::new(1))
            .ok_or_else(|| ApiError::invalid_query(param, "date out of range"))?
    } else {
        date
    };
    Ok(date
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<EventFilter, ApiError> {
        EventFilter::parse(Some(q), 20, 100)
    }

    fn param_of(q: &str) -> String {
        match parse(q).unwrap_err() {
            ApiError::InvalidQuery { param, .. } => param.to_owned(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parses_every_filter() {
        let id = Uuid::new_v4();
        let f = parse(&format!(
            "city=Bristol&q=quartet%20live&from=2027-01-01&to=2027-01-31&venue_id={id}&limit=5"
        ))
        .unwrap();
        assert_eq!(f.city.as_deref(), Some("Bristol"));
        assert_eq!(f.text_query.as_deref(), Some("quartet:* & live:*"));
        assert_eq!(f.from.unwrap().to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert_eq!(f.to.unwrap().to_rfc3339(), "2027-02-01T00:00:00+00:00");
        assert_eq!(f.venue_id, Some(id));
        assert_eq!(f.limit, 5);
    }

    #[test]
    fn defaults_when_empty() {
        let f = EventFilter::parse(None, 20, 100).unwrap();
        assert_eq!(f.limit, 20);
        assert!(f.city.is_none() && f.after.is_none());
    }

    #[test]
    fn rejects_bad_filters_naming_the_parameter() {
        assert_eq!(param_of("limit=0"), "limit");
        assert_eq!(param_of("limit=101"), "limit");
        assert_eq!(param_of("limit=ten"), "limit");
        assert_eq!(param_of("from=yesterday"), "from");
        assert_eq!(param_of("from=2027-02-01&to=2027-01-01"), "to");
        assert_eq!(param_of("venue_id=42"), "venue_id");
        assert_eq!(param_of("cursor=%%%"), "cursor");
        assert_eq!(param_of("city="), "city");
        assert_eq!(param_of(&format!("q={}", "a".repeat(201))), "q");
        assert_eq!(param_of("colour=blue"), "query");
        assert_eq!(param_of("q=%26%7C%21"), "q");
    }

    #[test]
    fn cursor_round_trips() {
        let cursor = Keyset {
            at: DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        let f = parse(&format!("cursor={}", cursor.encode())).unwrap();
        assert_eq!(f.after, Some(cursor));
    }
}

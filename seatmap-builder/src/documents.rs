//! Pure document building: rows in, bytes out. No I/O here, so the shapes, the seat order
//! and the content hash are tested without a database.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;

/// One seat as the layout query returns it, in layout order.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SeatRow {
    pub section_id: String,
    pub section_name: String,
    pub price_tier: String,
    pub row_label: String,
    pub seat_id: i64,
    pub number: i32,
    pub x: f32,
    pub y: f32,
    pub accessible: bool,
    pub obstructed: bool,
}

/// A general-admission section as the layout query for places returns it, in the venue's
/// section order.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlacesRow {
    pub section_id: String,
    pub section_name: String,
    pub price_tier: String,
    pub capacity: i32,
}

/// A general-admission section's counts now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlacesCount {
    pub section_id: String,
    pub capacity: i64,
    pub available: i64,
    pub held: i64,
    pub sold: i64,
}

/// A show's seat map: sections, rows and seats in layout order.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = SeatMap))]
struct LayoutDoc<'a> {
    /// The show.
    show_id: &'a str,
    /// The venue layout's version; availability documents name the one they fit.
    layout_version: i32,
    /// Seats in the map.
    seat_count: usize,
    /// The sections, in layout order.
    #[cfg_attr(feature = "openapi", schema(inline))]
    sections: Vec<LayoutSection<'a>>,
    /// General-admission sections: places sold by count, not drawn as seats. A fan holds
    /// `quantity` of them with `{"section_id", "quantity"}`.
    #[cfg_attr(feature = "openapi", schema(inline))]
    general_admission: Vec<LayoutPlaces<'a>>,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct LayoutPlaces<'a> {
    /// The section's code, as holds name it.
    section_id: &'a str,
    /// Its name for people.
    name: &'a str,
    /// The price tier its places sell at.
    price_tier: &'a str,
    /// How many fans it holds.
    capacity: i32,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct LayoutSection<'a> {
    /// The section's code, as holds name it.
    section_id: &'a str,
    /// Its name for people.
    name: &'a str,
    /// The price tier its seats sell at.
    price_tier: &'a str,
    /// Its rows, in layout order.
    #[cfg_attr(feature = "openapi", schema(inline))]
    rows: Vec<LayoutRow<'a>>,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct LayoutRow<'a> {
    /// The row's label.
    row: &'a str,
    /// Its seats, in layout order.
    #[cfg_attr(feature = "openapi", schema(inline))]
    seats: Vec<LayoutSeat>,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct LayoutSeat {
    /// The seat's id, as holds name it.
    id: i64,
    /// Its number in the row.
    number: i32,
    /// Where it is drawn.
    x: f32,
    /// Where it is drawn.
    y: f32,
    /// `accessible`, `obstructed`.
    flags: Vec<&'static str>,
}

/// A section's run of seats in layout order: `seat_status[start..start + len]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionSpan {
    pub section_id: String,
    pub len: usize,
}

/// The layout document and what availability builds need from it.
#[derive(Debug, Clone)]
pub struct Layout {
    pub layout_version: i32,
    pub json: Vec<u8>,
    pub spans: Vec<SectionSpan>,
    pub seat_count: usize,
}

/// Groups seats (already in layout order) into sections and rows. A section or row that
/// reappears later in the order starts a new group, so the document order is the seat order.
pub fn layout(
    show_id: &str,
    layout_version: i32,
    seats: &[SeatRow],
    places: &[PlacesRow],
) -> Layout {
    let mut sections: Vec<LayoutSection> = Vec::new();
    let mut spans: Vec<SectionSpan> = Vec::new();
    for seat in seats {
        let same_section = sections
            .last()
            .is_some_and(|s| s.section_id == seat.section_id);
        if !same_section {
            sections.push(LayoutSection {
                section_id: &seat.section_id,
                name: &seat.section_name,
                price_tier: &seat.price_tier,
                rows: Vec::new(),
            });
            spans.push(SectionSpan {
                section_id: seat.section_id.clone(),
                len: 0,
            });
        }
        let section = sections.last_mut().expect("pushed above");
        let same_row = section.rows.last().is_some_and(|r| r.row == seat.row_label);
        if !same_row {
            section.rows.push(LayoutRow {
                row: &seat.row_label,
                seats: Vec::new(),
            });
        }
        let mut flags = Vec::new();
        if seat.accessible {
            flags.push("accessible");
        }
        if seat.obstructed {
            flags.push("obstructed");
        }
        section
            .rows
            .last_mut()
            .expect("pushed above")
            .seats
            .push(LayoutSeat {
                id: seat.seat_id,
                number: seat.number,
                x: seat.x,
                y: seat.y,
                flags,
            });
        spans.last_mut().expect("pushed above").len += 1;
    }
    let doc = LayoutDoc {
        show_id,
        layout_version,
        seat_count: seats.len(),
        sections,
        general_admission: places
            .iter()
            .map(|p| LayoutPlaces {
                section_id: &p.section_id,
                name: &p.section_name,
                price_tier: &p.price_tier,
                capacity: p.capacity,
            })
            .collect(),
    };
    Layout {
        layout_version,
        json: serde_json::to_vec(&doc).expect("layout serializes"),
        spans,
        seat_count: seats.len(),
    }
}

/// A show's availability: counts, and every seat's state in the seat map's order.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Availability))]
struct AvailabilityDoc<'a> {
    /// The show.
    show_id: &'a str,
    /// The seat map's `layout_version` this document fits.
    layout_version: i32,
    /// When the show's sale opens, Unix ms; the waiting room of a show without settings of
    /// its own opens its queue from it.
    on_sale_at_ms: i64,
    /// The show's presale window, if it has one: joins then need an access code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(inline))]
    presale: Option<PresaleDoc>,
    /// When the build ran.
    built_at_ms: i64,
    /// When the next build is due.
    next_build_at_ms: i64,
    /// Seats and general-admission places free to hold.
    available: usize,
    /// Seats and places held.
    held: usize,
    /// Seats and places sold.
    sold: usize,
    /// Seats and places in all.
    total: usize,
    /// The same counts per section: the seated sections in layout order, then the
    /// general-admission ones.
    #[cfg_attr(feature = "openapi", schema(inline))]
    sections: Vec<SectionCounts<'a>>,
    /// One letter per seat of the seat map, in its order: `A` available, `H` held, `S` sold,
    /// `X` not on sale.
    // Last, so the document ends with the status string and `"}` (`status_brotli` relies on it).
    #[cfg_attr(feature = "openapi", schema(pattern = "^[AHSX]*$"))]
    seat_status: &'a str,
}

/// A presale window.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct PresaleDoc {
    /// When the presale begins, Unix ms.
    starts_at_ms: i64,
    /// When it ends, Unix ms.
    ends_at_ms: i64,
}

/// When a show's sale opens and its presale window, Unix ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaleTimes {
    /// The sale.
    pub on_sale_at_ms: i64,
    /// The presale, (starts, ends), if the show has one.
    pub presale: Option<(i64, i64)>,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SectionCounts<'a> {
    /// The section.
    pub section_id: &'a str,
    /// Its seats or places free to hold.
    pub available: usize,
    /// Its seats or places held.
    pub held: usize,
    /// Its seats or places sold.
    pub sold: usize,
    /// Its seats or places in all (a seat not on sale counts here only).
    pub total: usize,
}

/// Seat states that do not fit the layout they are built against.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AvailabilityError {
    /// The show has a different number of seats than the cached layout.
    #[error("seat_status has {got} seats but the layout has {expected}: the layout changed")]
    LayoutMismatch {
        /// Seats in the layout.
        expected: usize,
        /// Seats in `seat_status`.
        got: usize,
    },
    /// A character the seat-status query never produces.
    #[error("unknown seat status character {0:?}")]
    UnknownStatus(char),
}

/// A built availability document: its JSON and the hash of what a fan can see in it.
pub struct Availability {
    pub json: Vec<u8>,
    /// Hash of layout version, sale times and seat states, not of the build times: an unchanged build keeps
    /// its ETag.
    pub content_hash: String,
}

pub fn availability(
    show_id: &str,
    layout: &Layout,
    seat_status: &str,
    places: &[PlacesCount],
    sale: SaleTimes,
    built_at_ms: i64,
    next_build_at_ms: i64,
) -> Result<Availability, AvailabilityError> {
    if seat_status.len() != layout.seat_count {
        return Err(AvailabilityError::LayoutMismatch {
            expected: layout.seat_count,
            got: seat_status.len(),
        });
    }
    let bytes = seat_status.as_bytes();
    let mut sections = Vec::with_capacity(layout.spans.len());
    let mut start = 0;
    for span in &layout.spans {
        let mut counts = SectionCounts {
            section_id: &span.section_id,
            total: span.len,
            ..SectionCounts::default()
        };
        for &status in &bytes[start..start + span.len] {
            match status {
                b'A' => counts.available += 1,
                b'H' => counts.held += 1,
                b'S' => counts.sold += 1,
                b'X' => {}
                other => return Err(AvailabilityError::UnknownStatus(other as char)),
            }
        }
        start += span.len;
        sections.push(counts);
    }
    let count = |n: i64| usize::try_from(n).unwrap_or(0);
    sections.extend(places.iter().map(|p| SectionCounts {
        section_id: &p.section_id,
        available: count(p.available),
        held: count(p.held),
        sold: count(p.sold),
        total: count(p.capacity),
    }));
    let sum = |f: fn(&SectionCounts) -> usize| sections.iter().map(f).sum::<usize>();
    let doc = AvailabilityDoc {
        show_id,
        layout_version: layout.layout_version,
        on_sale_at_ms: sale.on_sale_at_ms,
        presale: sale.presale.map(|(starts_at_ms, ends_at_ms)| PresaleDoc {
            starts_at_ms,
            ends_at_ms,
        }),
        built_at_ms,
        next_build_at_ms,
        available: sum(|s| s.available),
        held: sum(|s| s.held),
        sold: sum(|s| s.sold),
        total: sum(|s| s.total),
        sections,
        seat_status,
    };
    let mut hash = Sha256::new();
    hash.update(show_id.as_bytes());
    hash.update(layout.layout_version.to_be_bytes());
    hash.update(sale.on_sale_at_ms.to_be_bytes());
    if let Some((starts, ends)) = sale.presale {
        hash.update(starts.to_be_bytes());
        hash.update(ends.to_be_bytes());
    }
    hash.update(bytes);
    for p in places {
        hash.update(p.section_id.as_bytes());
        for n in [p.capacity, p.available, p.held, p.sold] {
            hash.update(n.to_be_bytes());
        }
    }
    Ok(Availability {
        json: serde_json::to_vec(&doc).expect("availability serializes"),
        content_hash: short_hex(&hash.finalize()),
    })
}

pub fn content_hash(bytes: &[u8]) -> String {
    short_hex(&Sha256::digest(bytes))
}

/// 128 bits of SHA-256 in hex: collision-free for ETags, half the header bytes.
fn short_hex(digest: &[u8]) -> String {
    hex::encode(&digest[..16])
}

/// A document in the three encodings the edge and CDNs serve.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub etag: String,
    pub identity: Vec<u8>,
    pub gzip: Vec<u8>,
    pub brotli: Vec<u8>,
}

/// Compresses gzip and brotli on two threads at once: on a stadium document the two take
/// similar time, so the build waits for the slower one only.
///
/// `status_len` is set for availability documents, which end with the `seat_status` string
/// and `"}`: their brotli goes through [`crate::status_brotli`], which reaches one bit per
/// seat on random sales where a general encoder cannot.
pub fn encode(
    etag: String,
    identity: Vec<u8>,
    gzip_level: u32,
    brotli_quality: u32,
    status_len: Option<usize>,
) -> Encoded {
    let (gzip, brotli) = std::thread::scope(|scope| {
        let gzip = scope.spawn(|| {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(identity.len() / 4),
                flate2::Compression::new(gzip_level),
            );
            gz.write_all(&identity)
                .expect("writing to memory cannot fail");
            gz.finish().expect("writing to memory cannot fail")
        });
        let brotli = match status_len {
            Some(len) => crate::status_brotli::compress(&identity, len, 2, brotli_quality),
            None => crate::status_brotli::stock(&identity, brotli_quality),
        };
        (gzip.join().expect("the gzip thread does not panic"), brotli)
    });
    Encoded {
        etag,
        identity,
        gzip,
        brotli,
    }
}

/// The schemas of the two documents, for the edge's OpenAPI document: the seat map's and
/// availability's, by the names the edge refers to them with.
#[cfg(feature = "openapi")]
pub fn schemas() -> Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)> {
    use utoipa::{PartialSchema, ToSchema};
    vec![
        (LayoutDoc::name().into_owned(), LayoutDoc::schema()),
        (
            AvailabilityDoc::name().into_owned(),
            AvailabilityDoc::schema(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn seat(section: &str, row: &str, id: i64, number: i32) -> SeatRow {
        SeatRow {
            section_id: section.into(),
            section_name: format!("Section {section}"),
            price_tier: "T1".into(),
            row_label: row.into(),
            seat_id: id,
            number,
            x: number as f32,
            y: 0.0,
            accessible: id == 1,
            obstructed: id == 4,
        }
    }

    fn sample() -> Layout {
        let seats = vec![
            seat("A", "1", 1, 1),
            seat("A", "1", 2, 2),
            seat("A", "2", 3, 1),
            seat("B", "1", 4, 1),
            seat("B", "1", 5, 2),
        ];
        layout("show", 3, &seats, &[])
    }

    #[test]
    fn layout_groups_sections_and_rows_in_seat_order() {
        let layout = sample();
        let doc: serde_json::Value = serde_json::from_slice(&layout.json).unwrap();
        let ids: Vec<i64> = doc["sections"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["rows"].as_array().unwrap())
            .flat_map(|r| r["seats"].as_array().unwrap())
            .map(|s| s["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
        assert_eq!(doc["sections"][0]["rows"].as_array().unwrap().len(), 2);
        assert_eq!(
            doc["sections"][0]["rows"][0]["seats"][0]["flags"],
            serde_json::json!(["accessible"])
        );
        assert_eq!(
            doc["sections"][1]["rows"][0]["seats"][0]["flags"],
            serde_json::json!(["obstructed"])
        );
        assert_eq!(
            layout.spans,
            [
                SectionSpan {
                    section_id: "A".into(),
                    len: 3
                },
                SectionSpan {
                    section_id: "B".into(),
                    len: 2
                }
            ]
        );
    }

    #[test]
    fn availability_counts_sections_and_keeps_the_status_string() {
        let layout = sample();
        let built = availability(
            "show",
            &layout,
            "AHSXA",
            &[],
            SaleTimes::default(),
            1000,
            31000,
        )
        .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&built.json).unwrap();
        assert_eq!(doc["seat_status"], "AHSXA");
        assert_eq!(
            doc["sections"][0],
            serde_json::json!({"section_id": "A", "available": 1, "held": 1, "sold": 1, "total": 3})
        );
        assert_eq!(
            doc["sections"][1],
            serde_json::json!({"section_id": "B", "available": 1, "held": 0, "sold": 0, "total": 2})
        );
        assert_eq!(
            (doc["available"].as_u64(), doc["total"].as_u64()),
            (Some(2), Some(5))
        );
        assert_eq!(doc["next_build_at_ms"], 31000);
    }

    #[test]
    fn general_admission_is_listed_in_the_layout_and_counted_in_availability() {
        let seats = [seat("A", "1", 10, 1)];
        let places = [PlacesRow {
            section_id: "FLOOR".into(),
            section_name: "Floor".into(),
            price_tier: "GA".into(),
            capacity: 500,
        }];
        let layout = layout("show", 1, &seats, &places);
        let doc: serde_json::Value = serde_json::from_slice(&layout.json).unwrap();
        assert_eq!(doc["seat_count"], 1);
        assert_eq!(
            doc["general_admission"],
            serde_json::json!([{"section_id": "FLOOR", "name": "Floor", "price_tier": "GA", "capacity": 500}])
        );
        let counts = |available: i64| {
            [PlacesCount {
                section_id: "FLOOR".into(),
                capacity: 500,
                available,
                held: 20,
                sold: 500 - 20 - available,
            }]
        };
        let built = |available| {
            availability(
                "show",
                &layout,
                "A",
                &counts(available),
                SaleTimes::default(),
                0,
                0,
            )
            .unwrap()
        };
        let doc: serde_json::Value = serde_json::from_slice(&built(100).json).unwrap();
        assert_eq!(
            doc["sections"][1],
            serde_json::json!({"section_id": "FLOOR", "available": 100, "held": 20, "sold": 380, "total": 500})
        );
        assert_eq!(
            (doc["available"].as_u64(), doc["total"].as_u64()),
            (Some(101), Some(501))
        );
        assert_ne!(
            built(100).content_hash,
            built(99).content_hash,
            "a place taken is news"
        );
    }

    #[test]
    fn content_hash_ignores_timestamps_but_not_seats() {
        let layout = sample();
        let a = availability(
            "show",
            &layout,
            "AAAAA",
            &[],
            SaleTimes::default(),
            1000,
            2000,
        )
        .unwrap();
        let b = availability(
            "show",
            &layout,
            "AAAAA",
            &[],
            SaleTimes::default(),
            5000,
            6000,
        )
        .unwrap();
        let c = availability(
            "show",
            &layout,
            "AAAAH",
            &[],
            SaleTimes::default(),
            1000,
            2000,
        )
        .unwrap();
        assert_eq!(a.content_hash, b.content_hash);
        assert_ne!(a.content_hash, c.content_hash);
    }

    #[test]
    fn refuses_a_status_string_of_another_layout() {
        let err = availability("show", &sample(), "AAA", &[], SaleTimes::default(), 0, 0)
            .err()
            .unwrap();
        assert_eq!(
            err,
            AvailabilityError::LayoutMismatch {
                expected: 5,
                got: 3
            }
        );
        assert!(availability("show", &sample(), "AAAA?", &[], SaleTimes::default(), 0, 0).is_err());
    }

    #[test]
    fn availability_ends_with_the_status_string_and_its_closing() {
        let built = availability(
            "show",
            &sample(),
            "AHSXA",
            &[],
            SaleTimes::default(),
            1000,
            31000,
        )
        .unwrap();
        assert!(
            built.json.ends_with(b"\"seat_status\":\"AHSXA\"}"),
            "status must stay last for status_brotli"
        );
        let encoded = encode("e".into(), built.json.clone(), 9, 10, Some(5));
        let mut unbrotli = Vec::new();
        brotli::BrotliDecompress(&mut encoded.brotli.as_slice(), &mut unbrotli).unwrap();
        assert_eq!(unbrotli, built.json);
    }

    #[test]
    fn encodings_decode_to_the_identity_bytes() {
        let identity =
            br#"{"seat_status":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAASSSSS"}"#.to_vec();
        let encoded = encode("e".into(), identity.clone(), 9, 11, None);
        let mut gunzipped = Vec::new();
        flate2::read::GzDecoder::new(encoded.gzip.as_slice())
            .read_to_end(&mut gunzipped)
            .unwrap();
        assert_eq!(gunzipped, identity);
        let mut unbrotli = Vec::new();
        brotli::BrotliDecompress(&mut encoded.brotli.as_slice(), &mut unbrotli).unwrap();
        assert_eq!(unbrotli, identity);
    }
}

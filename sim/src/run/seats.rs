//! The show's seats as fans see them: the seat map snapshot (loaded once per run, as a
//! browser cache or CDN would keep it) and an availability snapshot, from which a fan who
//! picks on the map chooses seats side by side in one row, and a fan who takes the best
//! available chooses a section with enough seats left (or takes what is left).

use rand::Rng;
use serde::Deserialize;

/// The seat map: every seat in layout order, the order of availability's `seat_status`.
#[derive(Debug)]
pub struct SeatMap {
    /// Each seat's id and the index of its row, in layout order.
    seats: Vec<(i64, u32)>,
}

#[derive(Deserialize)]
struct MapDoc {
    sections: Vec<MapSection>,
}

#[derive(Deserialize)]
struct MapSection {
    rows: Vec<MapRow>,
}

#[derive(Deserialize)]
struct MapRow {
    seats: Vec<MapSeat>,
}

#[derive(Deserialize)]
struct MapSeat {
    id: i64,
}

/// A section's seats left, from an availability snapshot.
#[derive(Debug, Deserialize)]
pub struct SectionLeft {
    /// The section.
    pub section_id: String,
    /// Seats neither held nor sold.
    pub available: u64,
}

/// An availability snapshot, as far as fans read it.
#[derive(Debug, Deserialize)]
pub struct Availability {
    /// Seats neither held nor sold.
    pub available: u64,
    /// Seats held.
    pub held: u64,
    /// Seats sold.
    pub sold: u64,
    /// Every seat.
    pub total: u64,
    /// Per section.
    pub sections: Vec<SectionLeft>,
    /// One character per seat in layout order; `A` is available.
    #[serde(default)]
    pub seat_status: String,
}

impl SeatMap {
    /// The map from the body of `GET /v1/shows/{id}/seat-map`.
    pub fn parse(body: serde_json::Value) -> Result<SeatMap, serde_json::Error> {
        let doc: MapDoc = serde_json::from_value(body)?;
        let mut seats = Vec::new();
        let mut row = 0u32;
        for section in doc.sections {
            for r in section.rows {
                seats.extend(r.seats.iter().map(|s| (s.id, row)));
                row += 1;
            }
        }
        Ok(SeatMap { seats })
    }

    /// How many seats.
    pub fn len(&self) -> usize {
        self.seats.len()
    }

    /// Whether the map has no seat.
    pub fn is_empty(&self) -> bool {
        self.seats.is_empty()
    }

    /// `count` available seats side by side in one row, searched from a random seat on;
    /// `None` when no row has that many together.
    pub fn pick_together(
        &self,
        status: &[u8],
        count: usize,
        rng: &mut impl Rng,
    ) -> Option<Vec<i64>> {
        let n = self.seats.len();
        if n == 0 || status.len() != n || count == 0 {
            return None;
        }
        let start = rng.random_range(0..n);
        (0..n)
            .map(|offset| (start + offset) % n)
            .filter(|&first| first + count <= n)
            .find(|&first| {
                let row = self.seats[first].1;
                (first..first + count).all(|i| status[i] == b'A' && self.seats[i].1 == row)
            })
            .map(|first| {
                self.seats[first..first + count]
                    .iter()
                    .map(|s| s.0)
                    .collect()
            })
    }
}

/// Where to ask for the best `count` seats and how many: a section with that many left,
/// chosen at random among them; else what is left in the fullest section, as a fan who
/// would rather have fewer seats than none takes it; `None` when nothing is left.
pub fn pick_section<'a>(
    availability: &'a Availability,
    count: u64,
    rng: &mut impl Rng,
) -> Option<(&'a str, u64)> {
    let open: Vec<&SectionLeft> = availability
        .sections
        .iter()
        .filter(|s| s.available >= count)
        .collect();
    if !open.is_empty() {
        return Some((&open[rng.random_range(0..open.len())].section_id, count));
    }
    availability
        .sections
        .iter()
        .max_by_key(|s| s.available)
        .filter(|s| s.available > 0)
        .map(|s| (s.section_id.as_str(), s.available))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    fn two_rows() -> SeatMap {
        SeatMap::parse(json!({"sections": [{"section_id": "A", "rows": [
            {"row": "1", "seats": [{"id": 1}, {"id": 2}, {"id": 3}]},
            {"row": "2", "seats": [{"id": 4}, {"id": 5}, {"id": 6}]}
        ]}]}))
        .unwrap()
    }

    #[test]
    fn seats_picked_together_are_free_and_in_one_row() {
        let map = two_rows();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            // Row 1 has only two free seats apart; row 2 has two together.
            let picked = map.pick_together(b"AHASAA", 2, &mut rng).unwrap();
            assert_eq!(picked, vec![5, 6]);
        }
        assert_eq!(map.pick_together(b"AHASAA", 3, &mut rng), None);
        assert_eq!(
            map.pick_together(b"AAA", 1, &mut rng),
            None,
            "status of another map"
        );
    }

    #[test]
    fn a_best_available_section_has_enough_seats_or_the_most_left() {
        let availability: Availability = serde_json::from_value(json!({
            "available": 5, "held": 0, "sold": 0, "total": 5,
            "sections": [{"section_id": "A", "available": 1}, {"section_id": "B", "available": 4}]
        }))
        .unwrap();
        let mut rng = StdRng::seed_from_u64(2);
        assert_eq!(pick_section(&availability, 2, &mut rng), Some(("B", 2)));
        assert_eq!(pick_section(&availability, 5, &mut rng), Some(("B", 4)));
        let gone: Availability = serde_json::from_value(json!({
            "available": 0, "held": 5, "sold": 0, "total": 5,
            "sections": [{"section_id": "A", "available": 0}]
        }))
        .unwrap();
        assert_eq!(pick_section(&gone, 1, &mut rng), None);
    }
}

//! Best available: which `quantity` seats of a section, or of every section of a price
//! tier, a fan gets when it names none.
//!
//! Seats are ranked by their distance to the venue's stage point (`venues.stage_x`,
//! `stage_y`, in the seats' own coordinates), compared to the whole unit so that seats of
//! one row of a curved stand tie; then by how near they sit to the middle of their row;
//! then in layout order. A group of adjacent seats (consecutive numbers in one row of one
//! section, all free) is preferred whenever one exists: the group whose seats rank best on
//! average. Only when none exists are the best single seats taken, and the hold says so
//! (`adjacent: false`). The choice is made without locks; the claim that follows locks the
//! seats and chooses again if a faster fan took one.

use super::claim::{not_on_sale, unavailable};
use crate::catalog::EFFECTIVE_STATUS;
use crate::domain::{BestScope, ShowId};
use crate::error::{ApiError, Code};
use crate::status::ShowStatus;
use sqlx::PgPool;
use std::collections::HashMap;

/// A seat of the scope, in layout order.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Seat {
    pub seat_id: i64,
    pub section_id: String,
    pub row_label: String,
    pub number: i32,
    pub x: f32,
    pub y: f32,
    /// Free to hold: available, or held by a hold that has expired while no fan waits for
    /// the show (its seats are the waitlist's).
    pub open: bool,
}

/// The seats chosen, in seat-id order, and whether they are adjacent in one row.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Choice {
    pub seats: Vec<i64>,
    pub adjacent: bool,
}

/// How good a seat or a group is: smaller is better.
type Rank = (i64, i64, usize);

/// The best `quantity` open seats of `seats` (in layout order) for a fan facing `stage`;
/// `None` when fewer are open.
pub(crate) fn choose(seats: &[Seat], quantity: usize, stage: (f32, f32)) -> Option<Choice> {
    if quantity == 0 || seats.iter().filter(|s| s.open).count() < quantity {
        return None;
    }
    // Each row's seats (by position in `seats`), in seat-number order, and its middle.
    let mut rows: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (at, seat) in seats.iter().enumerate() {
        let row = (seat.section_id.as_str(), seat.row_label.as_str());
        rows.entry(row).or_default().push(at);
    }
    let mut ranks = vec![(0, 0, 0); seats.len()];
    let mut runs: Vec<Vec<usize>> = Vec::new();
    for row in rows.values_mut() {
        row.sort_by_key(|&at| seats[at].number);
        let first = seats[row[0]].number;
        let last = seats[row[row.len() - 1]].number;
        for &at in row.iter() {
            let seat = &seats[at];
            let distance = (seat.x - stage.0).hypot(seat.y - stage.1);
            // Twice the offset from the row's middle, so a half seat stays whole.
            let off_middle = (2 * seat.number - first - last).abs();
            ranks[at] = (distance.round() as i64, i64::from(off_middle), at);
        }
        let mut run: Vec<usize> = Vec::new();
        for &at in row.iter() {
            let follows = run
                .last()
                .is_some_and(|&before| seats[before].number + 1 == seats[at].number);
            if !seats[at].open || !follows {
                if run.len() >= quantity {
                    runs.push(std::mem::take(&mut run));
                }
                run.clear();
            }
            if seats[at].open {
                run.push(at);
            }
        }
        if run.len() >= quantity {
            runs.push(run);
        }
    }
    let group_rank = |group: &[usize]| -> Rank {
        let n = group.len() as i64;
        let sum = group
            .iter()
            .fold((0, 0), |(d, m), &at| (d + ranks[at].0, m + ranks[at].1));
        let first = group.iter().map(|&at| ranks[at].2).min().unwrap_or(0);
        ((sum.0 + n / 2) / n, (sum.1 + n / 2) / n, first)
    };
    let adjacent = runs
        .iter()
        .flat_map(|run| run.windows(quantity))
        .min_by_key(|group| group_rank(group));
    let (chosen, adjacent) = match adjacent {
        Some(group) => (group.to_vec(), true),
        None => {
            let mut open: Vec<usize> = (0..seats.len()).filter(|&at| seats[at].open).collect();
            open.sort_by_key(|&at| ranks[at]);
            open.truncate(quantity);
            (open, false)
        }
    };
    let mut seats: Vec<i64> = chosen.iter().map(|&at| seats[at].seat_id).collect();
    seats.sort_unstable();
    Some(Choice { seats, adjacent })
}

/// The best `quantity` claimable seats of `scope` in `show`, or why there are none.
pub(super) async fn best_available(
    pool: &PgPool,
    show: ShowId,
    scope: &BestScope,
    quantity: usize,
) -> Result<Choice, ApiError> {
    let (section, tier) = match scope {
        BestScope::SectionId(section) => (Some(section.as_str()), None),
        BestScope::PriceTier(tier) => (None, Some(tier.as_str())),
    };
    let seats: Vec<Seat> = sqlx::query_as(
        "SELECT i.seat_id, i.section_id, s.row_label, s.number, s.x, s.y,
                (i.status = 'available'
                 OR (i.status = 'held' AND i.hold_expires_at <= now() AND NOT waitlist_waiting($1))) AS open
         FROM seat_inventory i JOIN seats s ON s.id = i.seat_id
         WHERE i.show_id = $1 AND ($2::text IS NULL OR i.section_id = $2)
           AND ($3::text IS NULL OR i.price_tier = $3)
         ORDER BY i.layout_idx",
    )
    .bind(show)
    .bind(section)
    .bind(tier)
    .fetch_all(pool)
    .await?;
    let stage: (f32, f32) = sqlx::query_as(
        "SELECT v.stage_x, v.stage_y FROM shows s JOIN events e ON e.id = s.event_id
         JOIN venues v ON v.id = e.venue_id WHERE s.id = $1",
    )
    .bind(show)
    .fetch_optional(pool)
    .await?
    .ok_or_else(ShowId::not_found)?;
    if let Some(choice) = choose(&seats, quantity, stage) {
        return Ok(choice);
    }
    // A show that is not on sale says so first, as a claim of named seats would.
    let status: Option<ShowStatus> = sqlx::query_scalar(&format!(
        "SELECT {EFFECTIVE_STATUS} FROM shows s WHERE s.id = $1"
    ))
    .bind(show)
    .fetch_optional(pool)
    .await?;
    match status {
        None => return Err(ShowId::not_found()),
        Some(ShowStatus::OnSale) => {}
        Some(status) => return Err(not_on_sale(status)),
    }
    Err(match scope {
        _ if !seats.is_empty() => unavailable(Code::NotEnoughSeats, Vec::new()),
        BestScope::SectionId(section) => ApiError::Unprocessable(
            Code::UnknownSection,
            format!("the show has no section {section:?}"),
        ),
        BestScope::PriceTier(tier) => ApiError::Unprocessable(
            Code::UnknownPriceTier,
            format!("the show has no price tier {tier:?}"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block of `rows` rows of `per_row` seats in section `section`, seat `n` of row `r`
    /// at (n, r), ids from `first`; `taken` seat ids are not open.
    fn block(section: &str, first: i64, rows: i32, per_row: i32, taken: &[i64]) -> Vec<Seat> {
        let mut seats = Vec::new();
        for row in 1..=rows {
            for number in 1..=per_row {
                let seat_id = first + i64::from((row - 1) * per_row + number - 1);
                seats.push(Seat {
                    seat_id,
                    section_id: section.to_owned(),
                    row_label: row.to_string(),
                    number,
                    x: number as f32,
                    y: row as f32,
                    open: !taken.contains(&seat_id),
                });
            }
        }
        seats
    }

    fn chosen(seats: &[i64], adjacent: bool) -> Option<Choice> {
        Some(Choice {
            seats: seats.to_vec(),
            adjacent,
        })
    }

    #[test]
    fn the_middle_of_the_front_row_when_it_is_free() {
        // Stage in front of the middle of a 10-seat row.
        let seats = block("A", 1, 3, 10, &[]);
        assert_eq!(choose(&seats, 2, (5.5, 0.0)), chosen(&[5, 6], true));
        assert_eq!(choose(&seats, 4, (5.5, 0.0)), chosen(&[4, 5, 6, 7], true));
    }

    #[test]
    fn a_group_moves_back_rather_than_split() {
        // Row 1 has free seats, but never three together.
        let taken = [3, 6, 9];
        let seats = block("A", 1, 2, 10, &taken);
        let choice = choose(&seats, 3, (5.5, 0.0)).unwrap();
        assert!(choice.adjacent);
        assert!(choice.seats.iter().all(|&s| s > 10), "{choice:?}");
        assert_eq!(choice.seats, vec![14, 15, 16]);
    }

    #[test]
    fn a_group_that_fits_nowhere_is_split_over_the_best_seats() {
        // Two free seats per row, never adjacent.
        let taken: Vec<i64> = (1..=20).filter(|s| ![1, 5, 12, 18].contains(s)).collect();
        let seats = block("A", 1, 2, 10, &taken);
        assert_eq!(choose(&seats, 3, (5.5, 0.0)), chosen(&[5, 12, 18], false));
        assert_eq!(choose(&seats, 5, (5.5, 0.0)), None);
    }

    #[test]
    fn a_tier_looks_across_its_sections_for_the_seats_nearest_the_stage() {
        // Section L to the left of the stage, R in front of it.
        let mut seats = block("L", 1, 2, 10, &[]);
        for seat in &mut seats {
            seat.x -= 30.0;
        }
        seats.extend(block("R", 101, 2, 10, &[]));
        let choice = choose(&seats, 2, (5.5, 0.0)).unwrap();
        assert_eq!(
            choice,
            Choice {
                seats: vec![105, 106],
                adjacent: true
            }
        );
        // Seats of two sections are never one group, however close.
        let ends = [
            1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
        ];
        let mut edge: Vec<Seat> = block("L", 1, 2, 10, &ends);
        edge.extend(block(
            "R",
            101,
            2,
            10,
            &(101..=120).filter(|s| *s != 101).collect::<Vec<_>>(),
        ));
        assert_eq!(
            choose(&edge, 2, (10.5, 0.0)).map(|c| c.adjacent),
            Some(false)
        );
    }

    #[test]
    fn seats_of_a_curved_row_tie_on_distance_and_the_middle_wins() {
        // One row on a circle of radius 80 around the stage, coordinates to a tenth.
        let seats: Vec<Seat> = (1..=12)
            .map(|number| {
                let angle = 0.2 + 0.05 * number as f32;
                Seat {
                    seat_id: i64::from(number),
                    section_id: "101".into(),
                    row_label: "A".into(),
                    number,
                    x: (80.0 * angle.cos() * 10.0).round() / 10.0,
                    y: (80.0 * angle.sin() * 10.0).round() / 10.0,
                    open: true,
                }
            })
            .collect();
        assert_eq!(choose(&seats, 2, (0.0, 0.0)), chosen(&[6, 7], true));
    }
}

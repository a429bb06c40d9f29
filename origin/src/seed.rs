//! `origin seed`: the demo on-sale from `config/demo.toml`, created through the same
//! functions as the organizer API, and the demo accounts. Idempotent: whatever already
//! exists (by its fixed id, an account by its email) is left as it is, so a second run
//! changes nothing and keeps sales and password changes made since.

use crate::accounts::AccountRole;
use crate::admin::{create_event, create_show, create_venue};
use crate::config::AccountsConfig;
use crate::domain::account::{display_name, Email, Password};
use crate::domain::drafts::{EventDraft, PriceTierBody, SeatBody, SeatFlag, SectionLayout};
use crate::domain::{EventId, ShowDraft, ShowId, VenueDraft, VenueId};
use crate::error::ApiError;
use chrono::{DateTime, Duration, Utc};
use onsale_contract::config::{self, ConfigError};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::f32::consts::TAU;
use std::path::Path;
use uuid::Uuid;

/// `config/demo.toml`: the demo on-sale, a stadium and a theatre with one show each.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// `[stadium]`: the large venue, generated from its dimensions.
    pub stadium: StadiumConfig,
    /// `[theater]`: the small venue, section by section.
    pub theater: TheaterConfig,
    /// `[[accounts]]`: demo accounts to sign in with.
    #[serde(default)]
    pub accounts: Vec<DemoAccount>,
}

/// A demo account: its fixed id, its credentials and its role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoAccount {
    /// The account's fixed id (the fan id of its orders).
    pub account_id: Uuid,
    /// The email it signs in with.
    pub email: String,
    /// Its password, stored only as a hash.
    pub password: String,
    /// The name it shows.
    pub display_name: String,
    /// `fan` or `organizer`.
    pub role: AccountRole,
}

/// A stadium of `levels` rings of `sections_per_level` sections; level N is price tier P<N>.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StadiumConfig {
    /// The venue's fixed id.
    pub venue_id: Uuid,
    /// The venue's name.
    pub name: String,
    /// The venue's city.
    pub city: String,
    /// The venue's IANA time zone.
    pub timezone: String,
    /// Rings of sections; one price tier each.
    pub levels: u32,
    /// Sections in each ring.
    pub sections_per_level: u32,
    /// Rows in each section.
    pub rows_per_section: u32,
    /// Seats in each row.
    pub seats_per_row: u32,
    /// Wheelchair places at each end of every section's front row.
    pub accessible_per_row_end: u32,
    /// Back rows of the first and middle section of each level with an obstructed view.
    pub obstructed_back_rows: u32,
    /// Obstructed seats in each of those rows.
    pub obstructed_seats_per_row: u32,
    /// `[stadium.floor]`: the standing floor, sold by count.
    pub floor: FloorConfig,
    /// `[stadium.event]`: its event and show.
    pub event: StadiumEvent,
}

/// The stadium's general-admission floor: a section with a capacity and no seats, its own
/// price tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloorConfig {
    /// The section's id.
    pub section_id: String,
    /// Its name.
    pub name: String,
    /// How many fans it holds.
    pub capacity: i32,
    /// Its price tier.
    pub price_tier: String,
    /// The tier's price in cents.
    pub price_cents: i64,
}

/// The stadium's event: a [`DemoEvent`] with one price per level.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StadiumEvent {
    /// The event and its show.
    #[serde(flatten)]
    pub event: DemoEvent,
    /// Price of tier P1, P2, ... in cents; one entry per level.
    pub prices_cents: Vec<i64>,
}

/// A demo event with its one show, timed relative to the first seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoEvent {
    /// The event's fixed id.
    pub event_id: Uuid,
    /// The show's fixed id.
    pub show_id: Uuid,
    /// The event's name.
    pub name: String,
    /// Who performs.
    pub performer: String,
    /// The event's description.
    pub description: String,
    /// The show's currency code.
    pub currency: String,
    /// Seconds after the seed the show goes on sale; negative: already on sale.
    pub on_sale_offset_s: i64,
    /// Days after the seed the show starts.
    pub starts_in_days: i64,
}

/// A theatre of sections one behind the other.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TheaterConfig {
    /// The venue's fixed id.
    pub venue_id: Uuid,
    /// The venue's name.
    pub name: String,
    /// The venue's city.
    pub city: String,
    /// The venue's IANA time zone.
    pub timezone: String,
    /// `[[theater.sections]]`, front to back.
    pub sections: Vec<TheaterSection>,
    /// `[theater.event]`: its event and show.
    pub event: DemoEvent,
}

/// One theatre section, with its own price tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TheaterSection {
    /// The section's code.
    pub section_id: String,
    /// The section's name.
    pub name: String,
    /// Rows in the section.
    pub rows: u32,
    /// Seats in each row.
    pub seats_per_row: u32,
    /// The section's price tier.
    pub price_tier: String,
    /// The tier's price in cents.
    pub price_cents: i64,
}

impl DemoConfig {
    /// Reads the file and checks that the stadium's dimensions and prices fit.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let demo: DemoConfig = config::load(path)?;
        let stadium = &demo.stadium;
        if stadium.event.prices_cents.len() != stadium.levels as usize {
            return Err(ConfigError::key(
                path,
                "stadium.event.prices_cents",
                "needs one price per level",
            ));
        }
        if stadium.levels == 0 || stadium.sections_per_level == 0 || stadium.rows_per_section == 0 {
            return Err(ConfigError::key(
                path,
                "stadium",
                "levels, sections and rows must be positive",
            ));
        }
        for account in &demo.accounts {
            let problem = Email::parse("email", &account.email)
                .and_then(|_| Password::new("password", account.password.clone()))
                .and_then(|_| display_name(&account.display_name));
            if let Err(error) = problem {
                return Err(ConfigError::key(
                    path,
                    "accounts",
                    error.to_problem().detail.unwrap_or_default(),
                ));
            }
        }
        Ok(demo)
    }
}

/// Why a seed run failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The demo configuration breaks a catalog rule (the organizer API would refuse it).
    #[error("the demo configuration is not a valid catalog: {0}")]
    Invalid(ApiError),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A demo password could not be hashed.
    #[error("hashing a demo password: {0}")]
    Hash(String),
}

impl From<ApiError> for SeedError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Database(e) => SeedError::Database(e),
            other => SeedError::Invalid(other),
        }
    }
}

/// What a seed run did, for the operator.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// What this run created, one line each.
    pub created: Vec<String>,
    /// What already existed and was left as it is.
    pub existing: Vec<String>,
}

/// Creates whatever of `demo` does not exist yet, with show times relative to `now`;
/// passwords are hashed as `accounts` says.
pub async fn seed(
    pool: &PgPool,
    demo: &DemoConfig,
    accounts: &AccountsConfig,
    now: DateTime<Utc>,
) -> Result<SeedReport, SeedError> {
    let mut report = SeedReport::default();
    seed_accounts(pool, &demo.accounts, accounts, &mut report).await?;
    let stadium = &demo.stadium;
    let stadium_layout = stadium_layout(stadium);
    let tiers = (1..=stadium.levels)
        .zip(&stadium.event.prices_cents)
        .map(|(level, price)| PriceTierBody {
            tier: format!("P{level}"),
            name: format!("Level {level}"),
            price_cents: *price,
        })
        .chain(std::iter::once(PriceTierBody {
            tier: stadium.floor.price_tier.clone(),
            name: stadium.floor.name.clone(),
            price_cents: stadium.floor.price_cents,
        }))
        .collect();
    seed_one(
        pool,
        stadium.venue_id,
        &stadium_layout,
        &stadium.event.event,
        tiers,
        now,
        &mut report,
    )
    .await?;

    let theater = &demo.theater;
    let theater_layout = theater_layout(theater);
    let tiers = theater
        .sections
        .iter()
        .map(|s| PriceTierBody {
            tier: s.price_tier.clone(),
            name: s.name.clone(),
            price_cents: s.price_cents,
        })
        .collect();
    seed_one(
        pool,
        theater.venue_id,
        &theater_layout,
        &theater.event,
        tiers,
        now,
        &mut report,
    )
    .await?;
    Ok(report)
}

async fn seed_accounts(
    pool: &PgPool,
    demo: &[DemoAccount],
    config: &AccountsConfig,
    report: &mut SeedReport,
) -> Result<(), SeedError> {
    let argon =
        crate::accounts::passwords::argon2(config).map_err(|e| SeedError::Hash(e.to_string()))?;
    let mut conn = pool.acquire().await?;
    for account in demo {
        let email = Email::parse("email", &account.email)?;
        let line = format!("account {} ({})", email.address, account.role);
        let exists = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM accounts WHERE email_key = $1) AS "exists!""#,
            email.key,
        )
        .fetch_one(&mut *conn)
        .await?;
        if exists {
            report.existing.push(line);
            continue;
        }
        let password = account.password.clone();
        let argon = argon.clone();
        let hash = tokio::task::spawn_blocking(move || {
            crate::accounts::passwords::hash(&argon, password.as_bytes())
        })
        .await
        .map_err(|e| SeedError::Hash(e.to_string()))?
        .map_err(|e| SeedError::Hash(e.to_string()))?;
        let name = display_name(&account.display_name)?;
        let created = crate::accounts::insert_account(
            &mut conn,
            account.account_id,
            &email,
            &name,
            &hash,
            account.role,
        )
        .await?;
        if created {
            report.created.push(line);
        } else {
            report.existing.push(line);
        }
    }
    Ok(())
}

async fn seed_one(
    pool: &PgPool,
    venue_id: Uuid,
    layout: &VenueDraft,
    event: &DemoEvent,
    price_tiers: Vec<PriceTierBody>,
    now: DateTime<Utc>,
    report: &mut SeedReport,
) -> Result<(), SeedError> {
    if exists(pool, "venues", venue_id).await? {
        report.existing.push(format!("venue {}", layout.name));
    } else {
        create_venue(pool, VenueId(venue_id), layout).await?;
        report.created.push(format!(
            "venue {} ({} seats)",
            layout.name,
            layout.seat_count()
        ));
    }
    if exists(pool, "events", event.event_id).await? {
        report.existing.push(format!("event {}", event.name));
    } else {
        let draft = EventDraft {
            venue_id,
            name: event.name.clone(),
            performer: event.performer.clone(),
            description: event.description.clone(),
        };
        create_event(pool, EventId(event.event_id), &draft).await?;
        report.created.push(format!("event {}", event.name));
    }
    if exists(pool, "shows", event.show_id).await? {
        report.existing.push(format!("show {}", event.show_id));
    } else {
        let draft = ShowDraft {
            starts_at: now + Duration::days(event.starts_in_days),
            on_sale_at: now + Duration::seconds(event.on_sale_offset_s),
            currency: event.currency.clone(),
            price_tiers,
        };
        let show =
            create_show(pool, ShowId(event.show_id), EventId(event.event_id), &draft).await?;
        report
            .created
            .push(format!("show {} ({} seats)", show.id, show.seat_count));
    }
    Ok(())
}

async fn exists(pool: &PgPool, table: &'static str, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1)"
    ))
    .bind(id)
    .fetch_one(pool)
    .await
}

fn row_label(index: u32, rows: u32) -> String {
    if rows <= 26 {
        char::from(b'A' + index as u8).to_string()
    } else {
        (index + 1).to_string()
    }
}

/// Rings of sections around a pitch; seat coordinates are in metres from its centre.
pub(crate) fn stadium_layout(config: &StadiumConfig) -> VenueDraft {
    let per_level = config.sections_per_level;
    let seats_per_row = config.seats_per_row;
    let mut sections = Vec::new();
    for level in 0..config.levels {
        for index in 0..per_level {
            let obstructed_section = index == 0 || index == per_level / 2;
            let rows = (0..config.rows_per_section)
                .map(|row| {
                    let radius = 80.0 + level as f32 * 45.0 + row as f32 * 1.5;
                    let seats = (0..seats_per_row)
                        .map(|seat| {
                            let number = seat + 1;
                            let along = (seat as f32 + 0.5) / seats_per_row as f32;
                            let angle =
                                (index as f32 + 0.05 + 0.9 * along) * TAU / per_level as f32;
                            let mut flags = Vec::new();
                            let at_row_end = number <= config.accessible_per_row_end
                                || number
                                    > seats_per_row.saturating_sub(config.accessible_per_row_end);
                            if row == 0 && at_row_end {
                                flags.push(SeatFlag::Accessible);
                            }
                            if obstructed_section
                                && row + config.obstructed_back_rows >= config.rows_per_section
                                && number <= config.obstructed_seats_per_row
                            {
                                flags.push(SeatFlag::Obstructed);
                            }
                            SeatBody {
                                number: number as i32,
                                x: (radius * angle.cos() * 10.0).round() / 10.0,
                                y: (radius * angle.sin() * 10.0).round() / 10.0,
                                flags,
                            }
                        })
                        .collect();
                    (row_label(row, config.rows_per_section), seats)
                })
                .collect();
            let code = format!("{}{:02}", level + 1, index + 1);
            sections.push(SectionLayout {
                name: format!("Section {code}"),
                section_id: code,
                price_tier: format!("P{}", level + 1),
                rows,
                capacity: None,
            });
        }
    }
    let floor = &config.floor;
    sections.push(SectionLayout {
        section_id: floor.section_id.clone(),
        name: floor.name.clone(),
        price_tier: floor.price_tier.clone(),
        rows: Vec::new(),
        capacity: Some(floor.capacity),
    });
    VenueDraft {
        name: config.name.clone(),
        city: config.city.clone(),
        timezone: config.timezone.clone(),
        sections,
        stage: (0.0, 0.0),
    }
}

/// Sections one behind the other facing a stage at y = 0, one metre per row and seat.
pub(crate) fn theater_layout(config: &TheaterConfig) -> VenueDraft {
    let mut depth = 0.0f32;
    let sections = config
        .sections
        .iter()
        .map(|section| {
            let rows = (0..section.rows)
                .map(|row| {
                    depth += 1.0;
                    let seats = (0..section.seats_per_row)
                        .map(|seat| SeatBody {
                            number: seat as i32 + 1,
                            x: seat as f32 - section.seats_per_row as f32 / 2.0,
                            y: depth,
                            flags: if row == 0 && (seat == 0 || seat + 1 == section.seats_per_row) {
                                vec![SeatFlag::Accessible]
                            } else {
                                Vec::new()
                            },
                        })
                        .collect();
                    (row_label(row, section.rows), seats)
                })
                .collect();
            depth += 2.0;
            SectionLayout {
                section_id: section.section_id.clone(),
                name: section.name.clone(),
                price_tier: section.price_tier.clone(),
                rows,
                capacity: None,
            }
        })
        .collect();
    VenueDraft {
        name: config.name.clone(),
        city: config.city.clone(),
        timezone: config.timezone.clone(),
        sections,
        stage: (0.0, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> DemoConfig {
        DemoConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/demo.toml"))
            .unwrap()
    }

    #[test]
    fn every_shipped_demo_file_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for file in ["config/demo.toml", "chaos/demo.toml"] {
            if let Err(error) = DemoConfig::load(&root.join(file)) {
                panic!("{file}: {error}");
            }
        }
    }

    #[test]
    fn demo_stadium_has_80000_seats_in_60_plus_sections_with_flags() {
        let layout = stadium_layout(&demo().stadium);
        assert_eq!(layout.seat_count(), 80_000);
        assert!(layout.sections.len() >= 60);
        let flags: Vec<SeatFlag> = layout
            .sections
            .iter()
            .flat_map(|s| &s.rows)
            .flat_map(|(_, seats)| seats)
            .flat_map(|seat| seat.flags.clone())
            .collect();
        assert!(flags.contains(&SeatFlag::Accessible));
        assert!(flags.contains(&SeatFlag::Obstructed));
        let tiers: std::collections::HashSet<_> = layout
            .sections
            .iter()
            .map(|s| s.price_tier.clone())
            .collect();
        assert!(tiers.len() >= 4);
    }

    #[test]
    fn demo_theater_has_500_seats() {
        assert_eq!(theater_layout(&demo().theater).seat_count(), 500);
    }
}

//! What the fans saw, as they see it: live counts for the progress bar, each fan's
//! milestones when it is done, every error by its code, and the seats over time from the
//! availability snapshots. Times are milliseconds from the opening.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One fan's milestones, in ms from the opening.
#[derive(Debug, Clone, Copy, Default)]
pub struct Milestones {
    /// When its plan had it arrive.
    pub arrives_ms: u32,
    /// Its join was answered.
    pub joined_ms: Option<u32>,
    /// The wait the edge estimated in its first answer, in seconds.
    pub eta_s: Option<u32>,
    /// It stopped polling.
    pub stopped_ms: Option<u32>,
    /// It learned of its turn.
    pub admitted_ms: Option<u32>,
    /// Its admission ends (when its order confirms, or as the admission said).
    pub admission_ends_ms: Option<u32>,
    /// Its hold was made.
    pub held_ms: Option<u32>,
    /// Seats it held.
    pub seats_held: u32,
    /// Its order was confirmed.
    pub bought_ms: Option<u32>,
}

/// Seats at one moment, from an availability snapshot.
#[derive(Debug, Clone, Copy)]
pub struct SeatSample {
    /// When it was read.
    pub at_ms: u32,
    /// Neither held nor sold.
    pub available: u64,
    /// Held.
    pub held: u64,
    /// Sold.
    pub sold: u64,
}

/// Live counts, for the progress bar.
#[derive(Debug, Default)]
pub struct Live {
    /// Fans who arrived.
    pub arrived: AtomicU64,
    /// Fans in the queue now.
    pub queued: AtomicU64,
    /// Fans admitted so far.
    pub admitted: AtomicU64,
    /// Fans holding seats now.
    pub holding: AtomicU64,
    /// Fans whose order confirmed.
    pub bought: AtomicU64,
    /// Seats those orders bought.
    pub seats_bought: AtomicU64,
    /// Failed or refused requests.
    pub errors: AtomicU64,
    /// Requests sent.
    pub requests: AtomicU64,
}

/// Everything recorded in a run.
pub struct Tally {
    started: Instant,
    /// Live counts.
    pub live: Live,
    fans: Mutex<Vec<Milestones>>,
    errors: Mutex<BTreeMap<String, Vec<u32>>>,
    origin_requests: Mutex<Vec<u32>>,
    seats: Mutex<Vec<SeatSample>>,
}

impl Tally {
    /// A tally whose opening is now.
    pub fn new() -> Tally {
        Tally {
            started: Instant::now(),
            live: Live::default(),
            fans: Mutex::new(Vec::new()),
            errors: Mutex::new(BTreeMap::new()),
            origin_requests: Mutex::new(Vec::new()),
            seats: Mutex::new(Vec::new()),
        }
    }

    /// When the opening was.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Milliseconds since the opening.
    pub fn now_ms(&self) -> u32 {
        self.started.elapsed().as_millis() as u32
    }

    /// A request was sent; `to_origin` when the edge passes it on to the origin.
    pub fn request(&self, to_origin: bool) {
        Live::add(&self.live.requests, 1);
        if to_origin {
            let second = (self.now_ms() / 1000) as usize;
            let mut per_second = self.origin_requests.lock().expect("origin requests");
            if per_second.len() <= second {
                per_second.resize(second + 1, 0);
            }
            per_second[second] += 1;
        }
    }

    /// A request failed or was refused with `label` (`429 rate_limited`, `timed_out`, ...).
    pub fn error(&self, label: String) {
        Live::add(&self.live.errors, 1);
        let at = self.now_ms();
        self.errors
            .lock()
            .expect("errors")
            .entry(label)
            .or_default()
            .push(at);
    }

    /// A fan is done.
    pub fn fan_done(&self, milestones: Milestones) {
        self.fans.lock().expect("fans").push(milestones);
    }

    /// The seats as an availability snapshot showed them.
    pub fn seats(&self, sample: SeatSample) {
        self.seats.lock().expect("seats").push(sample);
    }

    /// Everything recorded: each fan's milestones, errors by label with their times,
    /// origin requests per second, seat samples.
    pub fn take(&self) -> Recorded {
        Recorded {
            fans: std::mem::take(&mut *self.fans.lock().expect("fans")),
            errors: std::mem::take(&mut *self.errors.lock().expect("errors")),
            origin_requests: std::mem::take(&mut *self.origin_requests.lock().expect("origin")),
            seats: std::mem::take(&mut *self.seats.lock().expect("seats")),
        }
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

impl Live {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes `n` from `counter`.
    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A run's record, for its report.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Each fan's milestones.
    pub fans: Vec<Milestones>,
    /// Errors by label, each with when it happened.
    pub errors: BTreeMap<String, Vec<u32>>,
    /// Requests the edge passed on to the origin, per second.
    pub origin_requests: Vec<u32>,
    /// Seats over time.
    pub seats: Vec<SeatSample>,
}

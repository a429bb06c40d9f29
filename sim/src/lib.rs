//! Rehearsing an on-sale before the night: scenarios of fans (`scenario`), their arrivals
//! (`arrivals`), a model that predicts waits, peak load and sell-out time for a scenario's
//! admission settings without running anything (`model`), and its report with charts
//! (`report`, `plots`).

pub mod arrivals;
pub mod model;
pub mod plots;
pub mod report;
pub mod scenario;

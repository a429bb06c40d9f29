//! Rehearsing an on-sale before the night: scenarios of fans (`scenario`), their arrivals
//! (`arrivals`) and plans (`plan`); a model that predicts waits, peak load and sell-out
//! time for a scenario's admission settings without running anything (`model`); a run of
//! the same fans through a real edge (`run`); and their reports with charts (`report`,
//! `plots`).

pub mod arrivals;
pub mod model;
pub mod plan;
pub mod plots;
pub mod report;
pub mod run;
pub mod scenario;

//! Rehearsing an on-sale before the night: scenarios of fans (`scenario`), their arrivals
//! (`arrivals`), and a model that predicts waits, peak load and sell-out time for a
//! scenario's admission settings without running anything (`model`).

pub mod arrivals;
pub mod model;
pub mod scenario;

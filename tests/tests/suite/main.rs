//! The end-to-end suite: one test binary, modules by capability.

// Test code: a panic is the failure report, so helpers may unwrap like tests do.
#![allow(clippy::unwrap_used)]

mod accounts;
mod browser;
mod cancellation;
mod catalog;
mod edge;
mod general_admission;
mod holds;
mod monitoring;
mod notifications;
mod openapi;
mod orders;
mod organizer;
mod payments;
mod scanning;
mod schema;
mod scripts;
mod seed;
mod sim;
mod snapshots;
mod transfers;
mod waiting_room;
mod waitlist;
mod web;

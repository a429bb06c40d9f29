//! The end-to-end suite: one test binary, modules by capability.

mod catalog;
mod edge;
mod holds;
mod notifications;
mod orders;
mod organizer;
mod payments;
mod schema;
mod seed;
mod snapshots;
mod waiting_room;

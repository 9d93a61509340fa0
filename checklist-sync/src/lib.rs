//! Inspection state and its live WebSocket mirror.
//!
//! The server is the sequencer: every accepted operation gets a per-inspection sequence
//! number and a server timestamp, is committed to the database before it is acknowledged or
//! broadcast, and is chained to the previous event by SHA-256.
#![deny(missing_docs)]

pub mod geo;
pub mod trust;

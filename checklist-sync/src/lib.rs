//! Inspection state and its live WebSocket mirror.
//!
//! The server is the sequencer: every accepted operation gets a per-inspection sequence
//! number and a server timestamp, is committed to the database before it is acknowledged or
//! broadcast, and is chained to the previous event by SHA-256. The protocol is documented in
//! docs/protocol.md.
//!
//! Layers: [`proto`] decodes frames at the edge; [`room::Room`] is the sans-IO state machine
//! of one inspection (time is an input); [`state::State`] is a pure fold of the event log;
//! [`SyncHub`] is the thin IO shell (room tasks, group-commit writer, socket loops).
#![deny(missing_docs)]

pub mod act;
pub mod admission;
pub mod camera;
pub mod chain;
pub mod domain;
pub mod fuzzing;
pub mod geo;
mod hub;
pub mod owner;
pub mod projection;
pub mod proto;
pub mod quota;
pub mod ratelimit;
pub mod rating;
pub mod room;
pub mod state;
mod store;
pub mod trust;

pub use act::{ActState, SignerRole};
pub use chain::{CommittedEvent, ItemResultMark};
pub use domain::{ExtError, ItemResult, ItemSpec, Principal, Role, RoomSpec, Site};
pub use hub::{configure_upgrade, now_micros, Extension, NoExtension, SyncConfig, SyncHub};
pub use projection::{NoProjection, Projection};
pub use proto::{CancelReason, OpError, Operation};
pub use quota::Quotas;
pub use rating::{RatingHead, RatingScore, RatingSide};
pub use room::Snapshot;
pub use state::State;
pub use store::{
    export_jsonl, export_jsonl_window, load_snapshot, read_events, unreachable, verify, BrokenLink,
    BrokenReason, SyncError, VerifyReport,
};

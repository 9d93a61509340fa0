//! Prescriptions (предписания): the follow-up of a finished inspection's violations until
//! they are fixed ("My prescriptions").
//!
//! The inspector issues a prescription from the violations of a finished inspection; each
//! becomes an item with its requirement, description, the inspection's evidence and a due
//! date. The business's representative (`orgs.rs`) sends proofs of each fix, captured live
//! in the browser, each with a location trace the server judges with the live room's trust
//! scoring and against the site's radius (far or spoofed proofs are marked, never silently
//! accepted or refused). The inspector accepts an item (closed) or returns it with a comment
//! and perhaps a new due date. Everything is an event of the prescription's own hash-chained
//! log (`log.rs`, the inspection log's chain); the state — open, returned, overdue, closed,
//! fulfilled — is a pure fold of it judged at a time (`model.rs`), never stored beside it.
//!
//! - `model.rs` — events, the fold, the rules (`check`); pure.
//! - `log.rs` — the `prescription_events` table: append, read, verify, export.
//! - `http.rs` — the REST endpoints; access through the inspection's rule.
//! - `document.rs` + `prescription.typ` — the PDF, with the act's renderer.

pub mod document;
pub mod http;
pub mod log;
pub mod model;

pub use http::router;

//! Domain types shared by the state machine, the wire protocol and the embedding server.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The result of one checklist item as the inspector sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemResult {
    /// The requirement is met (shown green).
    Compliant,
    /// The requirement is violated (shown red).
    Violation,
    /// The requirement does not apply here (shown grey).
    NotApplicable,
    /// Removes a previous result: the item is unanswered again.
    Clear,
}

impl ItemResult {
    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "compliant" => Some(Self::Compliant),
            "violation" => Some(Self::Violation),
            "not_applicable" => Some(Self::NotApplicable),
            "clear" => Some(Self::Clear),
            _ => None,
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compliant => "compliant",
            Self::Violation => "violation",
            Self::NotApplicable => "not_applicable",
            Self::Clear => "clear",
        }
    }
}

/// What a participant may do in an inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The official running the inspection: may do everything.
    Inspector,
    /// The inspected party: may comment, attach evidence, send its location and presence.
    Business,
    /// A reviewer or admin watching live: read-only apart from presence.
    Observer,
}

impl Role {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inspector => "inspector",
            Self::Business => "business",
            Self::Observer => "observer",
        }
    }
}

/// An authenticated participant of one inspection, as signaling established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The inspection this principal belongs to.
    pub inspection_id: Uuid,
    /// The participant's stable id (one per person and inspection).
    pub participant_id: Uuid,
    /// What the participant may do.
    pub role: Role,
    /// Name shown to the other side.
    pub display_name: String,
    /// Device kind, e.g. `desktop` or `phone`.
    pub device: String,
}

/// One checklist item of the inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemSpec {
    /// Stable item id used by operations.
    pub id: String,
    /// Number as printed in the checklist, e.g. `1.2`.
    pub number: String,
    /// The question text.
    pub question: String,
}

/// Expected location of the inspected premises.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Site {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
}

/// What the room needs to know about an inspection besides its event log.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomSpec {
    /// The inspection.
    pub inspection_id: Uuid,
    /// Its checklist, in display order.
    pub items: Vec<ItemSpec>,
    /// Expected location, if known.
    pub site: Option<Site>,
}

/// An error of an [`crate::Extension`], passed to the client as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ExtError {
    /// Stable snake_case code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

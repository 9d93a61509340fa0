//! The parties' ratings of each other after the end ([`crate::Operation::Rating`]): which
//! side rated, and the rule the room checks against the sequenced head so that two racing
//! submissions cannot both pass. What a rating says (criteria, scores, follow-ups) is the
//! embedding server's business; this crate keeps only what the rule needs and the bounds of
//! what a rating may hold.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most criteria a rating may score.
pub const MAX_SCORES: usize = 32;
/// Most follow-up reasons per criterion.
pub const MAX_REASONS: usize = 16;
/// Longest follow-up free text, in characters.
pub const MAX_NOTE: usize = 1000;

/// Who rates: the business rates the control body (its inspector), the inspector rates the
/// business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatingSide {
    /// The business rates the control body.
    Business,
    /// The inspector rates the business.
    Inspector,
}

impl RatingSide {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Business => "business",
            Self::Inspector => "inspector",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "business" => Some(Self::Business),
            "inspector" => Some(Self::Inspector),
            _ => None,
        }
    }

    /// The room role that rates on this side.
    pub fn room_role(self) -> crate::Role {
        match self {
            Self::Business => crate::Role::Business,
            Self::Inspector => crate::Role::Inspector,
        }
    }
}

/// One criterion's score in a rating, with the follow-ups a low score asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingScore {
    /// The criterion's code in the criteria set.
    pub criterion: String,
    /// 1..=10.
    pub score: u8,
    /// Codes of the follow-up choices (a score below 5 needs them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The party's own words on the follow-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One side's rating as the log has it: when it was first given and its latest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingHead {
    /// Seq of the first `rating` event of this side.
    pub first_seq: u64,
    /// Its server time, µs (the edit window counts from here).
    pub first_ts: i64,
    /// Seq of the latest one (the current rating).
    pub seq: u64,
    /// Its server time, µs.
    pub ts: i64,
    /// Who gave the latest one.
    pub by: Uuid,
}

/// The rating rule, after the lifecycle rule: a party rates only on its own side; a first
/// rating only when its side has none (`rating_exists`), a change only of the side's current
/// rating (`revises` is its seq, else `rating_stale`). The edit window is a rule of the
/// embedding server, which knows the time and the configuration.
pub fn check(
    ratings: &std::collections::BTreeMap<RatingSide, RatingHead>,
    who: crate::Role,
    op: &crate::Operation,
) -> Result<(), crate::OpError> {
    use crate::proto::codes;
    use crate::OpError;
    let crate::Operation::Rating { side, revises, .. } = op else {
        return Ok(());
    };
    if who != side.room_role() {
        return Err(OpError::new(
            codes::FORBIDDEN,
            format!("{} may not rate as {}", who.as_str(), side.as_str()),
        ));
    }
    match (ratings.get(side), revises) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(OpError::new(
            codes::RATING_EXISTS,
            "this party has already rated the inspection",
        )),
        (None, Some(_)) => Err(OpError::new(
            codes::RATING_STALE,
            "there is no rating to change",
        )),
        (Some(h), Some(s)) if h.seq == *s => Ok(()),
        (Some(_), Some(_)) => Err(OpError::new(
            codes::RATING_STALE,
            "the rating changed meanwhile",
        )),
    }
}

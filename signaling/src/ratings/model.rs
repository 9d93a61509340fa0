//! Plain data and pure rules of ratings: the parsed criteria set of a side, a score, the check
//! of a submitted rating against its criteria set, and the edit window. No IO here.

use std::collections::BTreeSet;

use checklist_sync::rating::{MAX_NOTE, MAX_REASONS, MAX_SCORES};
use checklist_sync::{RatingScore, RatingSide};
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// Scores below this open the criterion's follow-up questions, which must then be answered.
pub const FOLLOW_UP_BELOW: u8 = 5;
/// Longest title of a criterion or choice, in characters.
pub const MAX_TITLE: usize = 300;
/// Most follow-up choices a criterion may offer.
pub const MAX_CHOICES: usize = 16;

/// A score: 1..=10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Score(u8);

impl Score {
    /// Parses a submitted number; `None` outside 1..=10.
    pub fn parse(v: i64) -> Option<Score> {
        (1..=10).contains(&v).then_some(Score(v as u8))
    }

    /// The value.
    pub fn get(self) -> u8 {
        self.0
    }

    /// Whether the criterion's follow-ups are required.
    pub fn needs_follow_up(self) -> bool {
        self.0 < FOLLOW_UP_BELOW
    }
}

/// A version of a side's criteria set (1, 2, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CriteriaVersion(pub u32);

/// A text in both languages of the pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Words {
    /// Russian.
    pub ru: String,
    /// English.
    pub en: String,
}

/// A follow-up choice of a criterion ("why so low?").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    /// Stable code (what the log and the statistics store).
    pub code: String,
    /// Its words.
    pub title: Words,
}

/// One criterion of a side's set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    /// Stable code.
    pub code: String,
    /// Its words.
    pub title: Words,
    /// The follow-up question asked for a score below 5.
    pub follow_up: Words,
    /// Its choices (at least one must be picked, and a free text written, for a low score).
    pub choices: Vec<Choice>,
}

/// The criteria of one side, as an administrator submits them (the version is the server's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CriteriaBody {
    /// The criteria, in order.
    pub criteria: Vec<Criterion>,
}

/// A parsed, checked criteria set of one side and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CriteriaSet {
    /// `business` (the business rates the control body) or `inspector`.
    #[schema(value_type = String)]
    pub side: RatingSide,
    /// Version.
    #[schema(value_type = u32)]
    pub version: CriteriaVersion,
    /// The criteria, in order.
    pub criteria: Vec<Criterion>,
}

fn is_code(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn words_ok(w: &Words) -> bool {
    [&w.ru, &w.en].iter().all(|t| {
        let n = t.trim().chars().count();
        (1..=MAX_TITLE).contains(&n)
    })
}

impl CriteriaBody {
    /// Checks a submitted set: 1..=32 criteria with unique codes (`a-z0-9_`), words in both
    /// languages, 1..=16 choices each with unique codes. Every problem at once.
    pub fn check(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.criteria.is_empty() || self.criteria.len() > MAX_SCORES {
            errors.push(FieldError::new("criteria", "criteria_count"));
        }
        let mut codes = BTreeSet::new();
        for (i, c) in self.criteria.iter().enumerate() {
            let at = |f: &str| format!("criteria.{i}.{f}");
            if !is_code(&c.code) {
                errors.push(FieldError::new(&at("code"), "code_invalid"));
            } else if !codes.insert(c.code.as_str()) {
                errors.push(FieldError::new(&at("code"), "code_duplicate"));
            }
            if !words_ok(&c.title) {
                errors.push(FieldError::new(&at("title"), "words_required"));
            }
            if !words_ok(&c.follow_up) {
                errors.push(FieldError::new(&at("follow_up"), "words_required"));
            }
            if c.choices.is_empty() || c.choices.len() > MAX_CHOICES {
                errors.push(FieldError::new(&at("choices"), "choices_count"));
            }
            let mut choice_codes = BTreeSet::new();
            for (j, ch) in c.choices.iter().enumerate() {
                let at = |f: &str| format!("criteria.{i}.choices.{j}.{f}");
                if !is_code(&ch.code) {
                    errors.push(FieldError::new(&at("code"), "code_invalid"));
                } else if !choice_codes.insert(ch.code.as_str()) {
                    errors.push(FieldError::new(&at("code"), "code_duplicate"));
                }
                if !words_ok(&ch.title) {
                    errors.push(FieldError::new(&at("title"), "words_required"));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// One submitted score, as the request carries it (numbers unchecked).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreInput {
    /// The criterion's code.
    pub criterion: String,
    /// 1..=10.
    pub score: i64,
    /// Follow-up choice codes (required, with `note`, for a score below 5).
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Follow-up free text (up to 1000 characters).
    #[serde(default)]
    pub note: Option<String>,
}

impl CriteriaSet {
    /// Checks submitted scores against this set: every criterion scored once, each score in
    /// 1..=10, and for a score below 5 at least one of the criterion's choices and a free
    /// text. Gives the scores in the set's order, or every invalid field at once.
    pub fn rate(&self, input: &[ScoreInput]) -> Result<Vec<RatingScore>, Vec<FieldError>> {
        let mut errors = Vec::new();
        for (i, s) in input.iter().enumerate() {
            if !self.criteria.iter().any(|c| c.code == s.criterion) {
                errors.push(FieldError::new(
                    &format!("scores.{i}.criterion"),
                    "criterion_unknown",
                ));
            } else if input[..i].iter().any(|p| p.criterion == s.criterion) {
                errors.push(FieldError::new(
                    &format!("scores.{i}.criterion"),
                    "criterion_duplicate",
                ));
            }
        }
        let mut out = Vec::with_capacity(self.criteria.len());
        for c in &self.criteria {
            let at = |f: &str| format!("scores.{}.{f}", c.code);
            let Some(s) = input.iter().find(|s| s.criterion == c.code) else {
                errors.push(FieldError::new(&at("score"), "score_required"));
                continue;
            };
            let Some(score) = Score::parse(s.score) else {
                errors.push(FieldError::new(&at("score"), "score_out_of_range"));
                continue;
            };
            let note = s
                .note
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from);
            if note.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTE) {
                errors.push(FieldError::new(&at("note"), "note_too_long"));
            }
            let mut reasons: Vec<String> = Vec::new();
            for r in &s.reasons {
                if !c.choices.iter().any(|ch| &ch.code == r) {
                    errors.push(FieldError::new(&at("reasons"), "reason_unknown"));
                } else if !reasons.contains(r) {
                    reasons.push(r.clone());
                }
            }
            if reasons.len() > MAX_REASONS {
                errors.push(FieldError::new(&at("reasons"), "reasons_too_many"));
            }
            if score.needs_follow_up() {
                if reasons.is_empty() {
                    errors.push(FieldError::new(&at("reasons"), "follow_up_required"));
                }
                if note.is_none() {
                    errors.push(FieldError::new(&at("note"), "follow_up_required"));
                }
            } else if !reasons.is_empty() || note.is_some() {
                // Follow-ups belong to a low score only; a high one with reasons is a
                // confused form, not something to keep silently.
                errors.push(FieldError::new(&at("reasons"), "follow_up_not_asked"));
            }
            out.push(RatingScore {
                criterion: c.code.clone(),
                score: score.get(),
                reasons,
                note,
            });
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

/// Whether a rating first given at `first_ts` may still be changed at `now` (µs), with an
/// edit window of `window_secs`: strictly inside the window; a window of 0 makes the first
/// rating final.
pub fn editable(first_ts: i64, now: i64, window_secs: u64) -> bool {
    let window = i64::try_from(window_secs)
        .unwrap_or(i64::MAX / 1_000_000)
        .saturating_mul(1_000_000);
    now < first_ts.saturating_add(window)
}

/// When the edit window of a rating first given at `first_ts` closes, µs.
pub fn editable_until(first_ts: i64, window_secs: u64) -> i64 {
    let window = i64::try_from(window_secs)
        .unwrap_or(i64::MAX / 1_000_000)
        .saturating_mul(1_000_000);
    first_ts.saturating_add(window)
}

/// The month (UTC, `YYYY-MM`) a time in µs falls in.
pub fn month_of(us: i64) -> String {
    crate::db::from_micros(us).format("%Y-%m").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> CriteriaSet {
        let w = |s: &str| Words {
            ru: s.into(),
            en: s.into(),
        };
        CriteriaSet {
            side: RatingSide::Business,
            version: CriteriaVersion(1),
            criteria: vec![
                Criterion {
                    code: "courtesy".into(),
                    title: w("Courtesy"),
                    follow_up: w("Why?"),
                    choices: vec![Choice {
                        code: "rude".into(),
                        title: w("Rude"),
                    }],
                },
                Criterion {
                    code: "clarity".into(),
                    title: w("Clarity"),
                    follow_up: w("Why?"),
                    choices: vec![Choice {
                        code: "vague".into(),
                        title: w("Vague"),
                    }],
                },
            ],
        }
    }

    fn input(c: &str, score: i64, reasons: &[&str], note: Option<&str>) -> ScoreInput {
        ScoreInput {
            criterion: c.into(),
            score,
            reasons: reasons.iter().map(|s| s.to_string()).collect(),
            note: note.map(String::from),
        }
    }

    fn codes(e: Vec<FieldError>) -> Vec<(String, String)> {
        e.into_iter().map(|f| (f.field, f.code)).collect()
    }

    #[test]
    fn scores_are_one_to_ten() {
        assert_eq!(Score::parse(0), None);
        assert_eq!(Score::parse(11), None);
        assert_eq!(Score::parse(-3), None);
        assert_eq!(Score::parse(1).map(Score::get), Some(1));
        assert_eq!(Score::parse(10).map(Score::get), Some(10));
        assert!(Score::parse(4).is_some_and(Score::needs_follow_up));
        assert!(!Score::parse(5).is_some_and(Score::needs_follow_up));
    }

    #[test]
    fn a_low_score_needs_a_choice_and_words() {
        let s = set();
        let e = s
            .rate(&[
                input("courtesy", 3, &[], None),
                input("clarity", 9, &[], None),
            ])
            .unwrap_err();
        assert_eq!(
            codes(e),
            vec![
                (
                    "scores.courtesy.reasons".into(),
                    "follow_up_required".into()
                ),
                ("scores.courtesy.note".into(), "follow_up_required".into()),
            ]
        );
        let ok = s
            .rate(&[
                input("clarity", 9, &[], None),
                input("courtesy", 3, &["rude"], Some("  shouted  ")),
            ])
            .expect("complete");
        assert_eq!(ok[0].criterion, "courtesy");
        assert_eq!(ok[0].note.as_deref(), Some("shouted"));
        assert_eq!(ok[1].score, 9);
    }

    #[test]
    fn every_bad_field_is_named() {
        let e = set()
            .rate(&[
                input("courtesy", 11, &[], None),
                input("nope", 5, &[], None),
                input("courtesy", 5, &[], None),
            ])
            .unwrap_err();
        assert_eq!(
            codes(e),
            vec![
                ("scores.1.criterion".into(), "criterion_unknown".into()),
                ("scores.2.criterion".into(), "criterion_duplicate".into()),
                ("scores.courtesy.score".into(), "score_out_of_range".into()),
                ("scores.clarity.score".into(), "score_required".into()),
            ]
        );
    }

    #[test]
    fn the_window_closes() {
        assert!(editable(0, 59_999_999, 60));
        assert!(!editable(0, 60_000_000, 60));
        assert!(!editable(0, 0, 0));
        assert_eq!(editable_until(1_000_000, 60), 61_000_000);
        assert!(editable(0, i64::MAX / 2, u64::MAX));
    }

    #[test]
    fn months_are_utc() {
        // 2026-02-28T23:30:00Z
        assert_eq!(month_of(1_772_321_400_000_000), "2026-02");
    }
}

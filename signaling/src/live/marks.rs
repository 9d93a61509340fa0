//! The recording's chapters, derived from the committed event log: a pure function of the
//! events, computed when the recording is finalized. Nothing here depends on a live
//! broadcast, so a subscriber that lagged or a server that restarted loses no chapter.
//!
//! The chapter model is the reviewer's: a chapter is the stretch of the recording in which an
//! item was being looked at, so the footage that justified a result is inside its chapter.
//! An item's chapter begins where the inspector said "now looking at this item" (a `focus`
//! event after the previous mark), else at the previous mark (the inspector turned to this
//! item after finishing the last one), but at most `lead_in` before its own mark; it runs to
//! the next chapter; the recording before the first chapter is the "introduction". The chapter's
//! title carries the result and the violation's text, and the mark's exact time (on the
//! inspection's clock), which is also in the log for the reviewer's list.
//!
//! A `media_recorder::Mark` places a chapter: its `at_micros` is where the chapter begins.
//!
//! A mark's moment is the frame the inspector saw when clicking, where the server resolved
//! one (`seen.rule` = `seen_frame`: a frame the server sent to that participant, see
//! `checklist_sync::proto::Seen`), else the event's server time. So a chapter shows a frame
//! the marking participant was sent; the event keeps both times and the rule.

use std::collections::HashMap;

use checklist_sync::proto::{Seen, SeenRule};
use checklist_sync::state::{Event, EventBody};
use checklist_sync::{ItemResult, Operation};
use media_recorder::Mark;

use crate::inspections::Inspection;

/// The item id of the introduction chapter (no checklist item).
pub const INTRO: &str = "";

/// How an inspection's chapters are titled: items' `"<number>. <question>"` by id, and the
/// UTC offset of its time zone (for the marks' times), minutes.
#[derive(Debug, Clone, Default)]
pub struct Titles {
    /// `"<number>. <question>"` by item id.
    pub items: HashMap<String, String>,
    /// The inspection's time zone, for the marks' clock times.
    pub time_zone: String,
}

/// Chapter titles of an inspection's items.
pub fn titles(insp: &Inspection) -> Titles {
    Titles {
        items: insp
            .items
            .iter()
            .flatten()
            .map(|i| (i.id.clone(), format!("{}. {}", i.number, i.question)))
            .collect(),
        time_zone: insp.time_zone.clone(),
    }
}

fn result_word(r: ItemResult) -> &'static str {
    // The recording's chapters are a document in the product's language (Russian); pages
    // render their own words from the result code.
    match r {
        ItemResult::Compliant => "Соответствует",
        ItemResult::Violation => "Нарушение",
        ItemResult::NotApplicable => "Неприменимо",
        ItemResult::Clear => "Нет ответа",
    }
}

fn clock(at_micros: i64, zone: &str) -> String {
    let offset = checklist_sync::trust::tz::utc_offset_minutes(zone, at_micros).unwrap_or(0);
    let t = chrono::DateTime::from_timestamp_micros(at_micros).unwrap_or_default();
    match chrono::FixedOffset::east_opt(offset * 60) {
        Some(o) => t.with_timezone(&o).format("%H:%M:%S").to_string(),
        None => t.format("%H:%M:%S").to_string(),
    }
}

/// One finding found in the log: the item, its result, its (latest) violation text, and its
/// mark: the server time of the event that set the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding<'a> {
    /// The item.
    pub item_id: &'a str,
    /// Its result.
    pub result: ItemResult,
    /// The violation's text as last saved with this result.
    pub violation: Option<&'a str>,
    /// The mark: the server time of the frame the marker saw, or when the result was set
    /// (`rule` says which).
    pub at_micros: i64,
    /// When the server accepted the result (the event's time).
    pub server_micros: i64,
    /// The rule that placed the mark (`None`: an event from before the rule, or queued on a
    /// device without video: server time).
    pub rule: Option<SeenRule>,
    /// When the inspector turned to the item (its last `focus` since the previous finding).
    pub focused_at: Option<i64>,
}

/// Where a result set at server time `server_ts` with `seen` is placed: the seen frame's
/// time under the `seen_frame` rule (the server checked it when accepting the op), else the
/// server time.
pub fn mark_time(seen: Option<&Seen>, server_ts: i64) -> i64 {
    match seen {
        Some(Seen {
            rule: Some(SeenRule::SeenFrame),
            at_micros: Some(t),
            ..
        }) => *t + SEEN_FRAME_MARGIN_MICROS,
        _ => server_ts,
    }
}

/// A mark on a seen frame is placed this much after the frame's time: the player shows the
/// last frame starting at or before a chapter's start, and the live estimate of a frame's
/// time and the recording's timeline differ by a few ms, so a start exactly on the estimate
/// could show the frame before. Under half a frame at 60 frames per second.
pub const SEEN_FRAME_MARGIN_MICROS: i64 = 8_000;

/// The findings of a log, in order (see [`marks_from_log`] for what counts as one).
pub fn findings(events: &[Event]) -> Vec<Finding<'_>> {
    let mut last: HashMap<&str, (ItemResult, usize)> = HashMap::new();
    let mut findings: Vec<Finding> = Vec::new();
    let mut focus: HashMap<&str, i64> = HashMap::new();
    for e in events {
        if let EventBody::Op(Operation::Focus { item_id }) = &e.body {
            focus.insert(item_id.as_str(), e.server_ts);
            continue;
        }
        let EventBody::Op(Operation::SetResult {
            item_id,
            result,
            violation,
            seen,
            ..
        }) = &e.body
        else {
            continue;
        };
        if *result == ItemResult::Clear {
            last.remove(item_id.as_str());
            continue;
        }
        if let Some((r, i)) = last.get(item_id.as_str()) {
            if r == result {
                // The same finding, re-saved: its latest text counts.
                findings[*i].violation = violation.as_deref();
                continue;
            }
        }
        last.insert(item_id.as_str(), (*result, findings.len()));
        // A focus counts only since the previous finding: an older one was for another look.
        let since = findings.last().map_or(i64::MIN, |f| f.at_micros);
        let focused_at = focus.remove(item_id.as_str()).filter(|t| *t >= since);
        findings.push(Finding {
            item_id,
            result: *result,
            violation: violation.as_deref(),
            at_micros: mark_time(seen.as_ref(), e.server_ts),
            server_micros: e.server_ts,
            rule: seen.as_ref().and_then(|s| s.rule),
            focused_at,
        });
    }
    findings
}

/// One chapter per finding, in log order, each beginning where the item began being looked
/// at (see the module's doc), plus the introduction before the first. Setting an item's result
/// is a finding at the moment of its event; re-saving the same result (to add the violation's
/// text) is not a new finding, but its text goes into the title; a changed result is a new
/// finding; `clear` forgets the item's result, so the next result set on it is a new finding.
/// An item without a title is titled by its id.
pub fn marks_from_log(events: &[Event], titles: &Titles, lead_in_micros: i64) -> Vec<Mark> {
    let findings = findings(events);
    if findings.is_empty() {
        return Vec::new();
    }
    let mut marks: Vec<Mark> = Vec::with_capacity(findings.len() + 1);
    let mut previous: Option<i64> = None;
    for f in &findings {
        let earliest = f.at_micros - lead_in_micros.max(0);
        // An explicit "now looking at this item" wins; else the previous mark, within the
        // lead-in. Never before the previous mark: chapters follow each other.
        let begins = match (f.focused_at, previous) {
            (Some(t), _) => t,
            (None, Some(p)) => earliest.max(p),
            (None, None) => earliest,
        };
        previous = Some(f.at_micros);
        let item = titles
            .items
            .get(f.item_id)
            .cloned()
            .unwrap_or_else(|| f.item_id.to_string());
        let what = match (
            f.result,
            f.violation.map(str::trim).filter(|v| !v.is_empty()),
        ) {
            (ItemResult::Violation, Some(v)) => format!("{}: {v}", result_word(f.result)),
            (r, _) => result_word(r).to_string(),
        };
        marks.push(Mark {
            item_id: f.item_id.to_string(),
            title: format!(
                "{item} — {what} (отметка {})",
                clock(f.at_micros, &titles.time_zone)
            ),
            result: f.result.as_str().to_string(),
            at_micros: begins,
        });
    }
    // The recording's start is the media side's business: a chapter placed before it begins
    // at 0, so the introduction is placed before everything (at the Unix epoch, or just
    // before the first chapter if that is earlier).
    let intro_at = marks.first().map_or(0, |m| (m.at_micros - 1).min(0));
    marks.insert(
        0,
        Mark {
            item_id: INTRO.to_string(),
            title: "Вступление".to_string(),
            result: String::new(),
            at_micros: intro_at,
        },
    );
    marks
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn set(seq: u64, item: &str, result: &str, comment: Option<&str>) -> Event {
        Event {
            seq,
            server_ts: 1_000_000 * seq as i64,
            participant_id: Uuid::nil(),
            client_op_id: None,
            device_time: None,
            clock_offset_ms: None,
            body: EventBody::Op(Operation::SetResult {
                item_id: item.into(),
                result: ItemResult::parse(result).expect("a result"),
                // The text is a violation's description with a violation, else a comment.
                comment: comment.filter(|_| result != "violation").map(String::from),
                violation: comment.filter(|_| result == "violation").map(String::from),
                seen: None,
            }),
        }
    }

    fn other(seq: u64, body: EventBody) -> Event {
        Event {
            seq,
            server_ts: 1_000_000 * seq as i64,
            participant_id: Uuid::nil(),
            client_op_id: None,
            device_time: None,
            clock_offset_ms: None,
            body,
        }
    }

    #[test]
    fn one_chapter_per_finding() {
        let titles = Titles {
            items: HashMap::from([("q1".to_string(), "1. Огнетушители?".to_string())]),
            time_zone: "Europe/Moscow".into(),
        };
        let log = vec![
            other(1, EventBody::Op(Operation::Start)),
            set(2, "q1", "violation", None),
            // Re-saved to add text: the same finding.
            set(3, "q1", "violation", Some("нет огнетушителя")),
            set(4, "q2", "compliant", None),
            // A changed result is a new finding.
            set(5, "q1", "compliant", None),
            // Cleared, then set again (even to the same result): a new finding.
            set(6, "q2", "clear", None),
            set(7, "q2", "compliant", None),
            other(
                8,
                EventBody::Op(Operation::Comment {
                    item_id: "q1".into(),
                    text: "ok".into(),
                }),
            ),
            other(9, EventBody::Op(Operation::Finish)),
        ];
        // A lead-in of 1.5 s: chapters begin at the previous mark, or 1.5 s before their own.
        let marks = marks_from_log(&log, &titles, 1_500_000);
        let got: Vec<(&str, &str, &str, i64)> = marks
            .iter()
            .map(|m| {
                (
                    m.item_id.as_str(),
                    m.title.as_str(),
                    m.result.as_str(),
                    m.at_micros,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("", "Вступление", "", 0),
                // The re-save's text goes into the first finding's title; 03:00:02 is 2 s
                // after the epoch on Moscow's clock.
                (
                    "q1",
                    "1. Огнетушители? — Нарушение: нет огнетушителя (отметка 03:00:02)",
                    "violation",
                    500_000
                ),
                (
                    "q2",
                    "q2 — Соответствует (отметка 03:00:04)",
                    "compliant",
                    2_500_000
                ),
                (
                    "q1",
                    "1. Огнетушители? — Соответствует (отметка 03:00:05)",
                    "compliant",
                    4_000_000
                ),
                (
                    "q2",
                    "q2 — Соответствует (отметка 03:00:07)",
                    "compliant",
                    5_500_000
                ),
            ]
        );
        // Without a lead-in each chapter begins at its mark.
        let at: Vec<i64> = marks_from_log(&log, &titles, 0)
            .iter()
            .map(|m| m.at_micros)
            .collect();
        assert_eq!(at, vec![0, 2_000_000, 4_000_000, 5_000_000, 7_000_000]);
    }

    #[test]
    fn quick_marks_begin_at_the_previous_mark() {
        let log = vec![
            set(10, "a", "compliant", None),
            set(11, "b", "compliant", None),
            set(40, "c", "violation", None),
        ];
        let at: Vec<i64> = marks_from_log(&log, &Titles::default(), 20_000_000)
            .iter()
            .map(|m| m.at_micros)
            .collect();
        // b was looked at from a's mark on; c from 20 s before its own (after b's mark).
        assert_eq!(at, vec![-10_000_001, -10_000_000, 10_000_000, 20_000_000]);
    }

    #[test]
    fn an_explicit_focus_begins_the_chapter() {
        let focus = |seq: u64, item: &str| {
            other(
                seq,
                EventBody::Op(Operation::Focus {
                    item_id: item.into(),
                }),
            )
        };
        let log = vec![
            set(10, "a", "compliant", None),
            // Turned to b at 12 s, marked at 50 s: b's chapter is 12–50 s, past the lead-in.
            focus(12, "b"),
            set(50, "b", "compliant", None),
            // A focus on c before b's mark is stale: c's chapter begins at b's mark.
            focus(20, "c"),
            set(55, "c", "violation", None),
            // A focus on the item whose finding follows, with another item's mark between.
            focus(60, "d"),
            set(61, "e", "compliant", None),
            set(70, "d", "compliant", None),
        ];
        let at: Vec<(String, i64)> = marks_from_log(&log, &Titles::default(), 20_000_000)
            .iter()
            .map(|m| (m.item_id.clone(), m.at_micros))
            .collect();
        let s = |i: &str, t: i64| (i.to_string(), t * 1_000_000);
        assert_eq!(
            at,
            vec![
                (String::new(), -10_000_001),
                s("a", -10),
                s("b", 12),
                s("c", 50),
                s("e", 55),
                // d's focus at 60 s came before e's mark at 61 s: stale, so after e's mark.
                s("d", 61),
            ]
        );
    }

    /// A mark the server placed on the seen frame begins its chapter there; an implausible
    /// claim and no claim keep the server's time (issue 23).
    #[test]
    fn a_seen_frame_places_the_chapter() {
        let with = |seq: u64, item: &str, seen: Seen| {
            let mut e = set(seq, item, "compliant", None);
            if let EventBody::Op(Operation::SetResult { seen: s, .. }) = &mut e.body {
                *s = Some(seen);
            }
            e
        };
        let claim = Seen {
            rtp_timestamp: Some(90_000),
            ..Seen::default()
        };
        let log = vec![
            with(
                10,
                "a",
                Seen::resolved(Some(claim.clone()), SeenRule::SeenFrame, Some(9_800_000)),
            ),
            with(
                20,
                "b",
                Seen::resolved(Some(claim), SeenRule::ServerTimeImplausible, None),
            ),
            with(
                30,
                "c",
                Seen::resolved(None, SeenRule::ServerTimeNoMetadata, None),
            ),
        ];
        let f = findings(&log);
        let got: Vec<(i64, i64, Option<SeenRule>)> = f
            .iter()
            .map(|f| (f.at_micros, f.server_micros, f.rule))
            .collect();
        assert_eq!(
            got,
            vec![
                (9_808_000, 10_000_000, Some(SeenRule::SeenFrame)),
                (
                    20_000_000,
                    20_000_000,
                    Some(SeenRule::ServerTimeImplausible)
                ),
                (30_000_000, 30_000_000, Some(SeenRule::ServerTimeNoMetadata)),
            ]
        );
        let at: Vec<i64> = marks_from_log(&log, &Titles::default(), 0)
            .iter()
            .map(|m| m.at_micros)
            .collect();
        assert_eq!(at, vec![0, 9_808_000, 20_000_000, 30_000_000]);
        // The judge: a frame sent 300 ms before the click is the seen frame; one never sent,
        // one newer than the server's time and one minutes old are not.
        let now = 100_000_000;
        let c = || {
            Some(Seen {
                rtp_timestamp: Some(1),
                click_offset_ms: Some(500.0),
                ..Seen::default()
            })
        };
        let rule = |sent: Option<i64>| Seen::judge(c(), sent, now).rule;
        assert_eq!(rule(Some(now - 800_000)), Some(SeenRule::SeenFrame));
        assert_eq!(rule(None), Some(SeenRule::ServerTimeImplausible));
        assert_eq!(rule(Some(now + 1)), Some(SeenRule::ServerTimeImplausible));
        assert_eq!(
            rule(Some(now - 180_000_000)),
            Some(SeenRule::ServerTimeImplausible)
        );
        assert_eq!(
            Seen::judge(None, None, now).rule,
            Some(SeenRule::ServerTimeNoMetadata)
        );
    }

    #[test]
    fn no_results_no_marks() {
        let log = vec![
            other(1, EventBody::Op(Operation::Start)),
            set(2, "q1", "clear", None),
            other(3, EventBody::Op(Operation::Finish)),
        ];
        assert!(marks_from_log(&log, &Titles::default(), 30_000_000).is_empty());
    }
}

//! The recording's chapters, derived from the committed event log: a pure function of the
//! events, computed when the recording is finalized. Nothing here depends on a live
//! broadcast, so a subscriber that lagged or a server that restarted loses no chapter.

use std::collections::HashMap;

use checklist_sync::state::{Event, EventBody};
use checklist_sync::{ItemResult, Operation};
use media_recorder::Mark;

use crate::inspections::Inspection;

/// Chapter titles of an inspection's items: `"<number>. <question>"` by item id.
pub fn titles(insp: &Inspection) -> HashMap<String, String> {
    insp.items
        .iter()
        .flatten()
        .map(|i| (i.id.clone(), format!("{}. {}", i.number, i.question)))
        .collect()
}

/// One mark per finding, in log order: setting an item's result marks the moment of its
/// event; re-saving the same result (to add the violation's text) is not a new finding and
/// makes no mark; a changed result does; `clear` forgets the item's result, so the next
/// result set on it is a new finding. An item without a title is titled by its id.
pub fn marks_from_log(events: &[Event], titles: &HashMap<String, String>) -> Vec<Mark> {
    let mut last: HashMap<&str, ItemResult> = HashMap::new();
    let mut marks = Vec::new();
    for e in events {
        let EventBody::Op(Operation::SetResult {
            item_id, result, ..
        }) = &e.body
        else {
            continue;
        };
        if *result == ItemResult::Clear {
            last.remove(item_id.as_str());
            continue;
        }
        if last.insert(item_id.as_str(), *result) == Some(*result) {
            continue;
        }
        marks.push(Mark {
            item_id: item_id.clone(),
            title: titles
                .get(item_id)
                .cloned()
                .unwrap_or_else(|| item_id.clone()),
            result: result.as_str().to_string(),
            at_micros: e.server_ts,
        });
    }
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
            body: EventBody::Op(Operation::SetResult {
                item_id: item.into(),
                result: ItemResult::parse(result).expect("a result"),
                comment: comment.map(String::from),
                violation: None,
            }),
        }
    }

    fn other(seq: u64, body: EventBody) -> Event {
        Event {
            seq,
            server_ts: 1_000_000 * seq as i64,
            participant_id: Uuid::nil(),
            client_op_id: None,
            body,
        }
    }

    #[test]
    fn one_chapter_per_finding() {
        let titles = HashMap::from([("q1".to_string(), "1. Огнетушители?".to_string())]);
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
        let marks = marks_from_log(&log, &titles);
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
                ("q1", "1. Огнетушители?", "violation", 2_000_000),
                ("q2", "q2", "compliant", 4_000_000),
                ("q1", "1. Огнетушители?", "compliant", 5_000_000),
                ("q2", "q2", "compliant", 7_000_000),
            ]
        );
    }

    #[test]
    fn no_results_no_marks() {
        let log = vec![
            other(1, EventBody::Op(Operation::Start)),
            set(2, "q1", "clear", None),
            other(3, EventBody::Op(Operation::Finish)),
        ];
        assert!(marks_from_log(&log, &HashMap::new()).is_empty());
    }
}

//! Positions an on-site phone queued offline are scored at the moment they were taken: their
//! device time shifted by the batch's measured clock offset (receipt minus the device's send
//! time), not at their receipt. So an hour offline with a correct clock is no clock skew, and a
//! clock two hours off is, judged on the batch's one offset. Time is an input: no clock read.

use checklist_sync::proto::Operation;
use checklist_sync::room::{Input, Origin, Output, Restored, Room, RoomConfig};
use checklist_sync::state::EventBody;
use checklist_sync::{CommittedEvent, ItemSpec, Principal, Role, RoomSpec, Site};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

const SITE: (f64, f64) = (55.7577, 37.6130);
/// Server time of the receipt, µs.
const RECEIPT_US: i64 = 1_795_424_400_000_000;
const RECEIPT_MS: i64 = RECEIPT_US / 1000;
const HOUR_MS: i64 = 3_600_000;

fn spec() -> RoomSpec {
    RoomSpec {
        inspection_id: Uuid::from_u128(21),
        items: vec![ItemSpec {
            id: "q1".into(),
            number: "1".into(),
            question: "?".into(),
        }],
        site: Some(Site {
            lat: SITE.0,
            lon: SITE.1,
        }),
    }
}

fn inspector() -> Principal {
    Principal {
        inspection_id: Uuid::from_u128(21),
        participant_id: Uuid::from_u128(1),
        role: Role::Inspector,
        display_name: "inspector".into(),
        device: "phone".into(),
    }
}

/// A fix `i` steps along a short walk north of the site, taken at `device_ts` (device clock).
fn fix(i: usize, device_ts: i64) -> Operation {
    Operation::decode(&json!({
        "kind": "location",
        "lat": SITE.0 + 0.00005 * i as f64,
        "lon": SITE.1,
        // Varying, not whole: no accuracy signal muddles the clock's.
        "accuracy": 8.3 + 0.1 * i as f64,
        "device_ts": device_ts,
    }))
    .expect("a valid location op")
}

/// Feeds one queued batch: `n` fixes 30 s apart on the device clock, the first `age_ms` before
/// the send, the device clock `behind_ms` behind the server's; the request arrives 300 ms after
/// it was sent. Answers every event the room committed.
fn batch(
    room: &mut Room,
    n: usize,
    age_ms: i64,
    behind_ms: i64,
    offset_known: bool,
) -> Vec<Arc<CommittedEvent>> {
    let sent_device = RECEIPT_MS - 300 - behind_ms;
    let offset = RECEIPT_MS - sent_device;
    let mut out = Vec::new();
    for i in 0..n {
        let t = sent_device - age_ms + 30_000 * i as i64;
        room.handle(Input::Op {
            origin: Origin::Api(1),
            who: inspector(),
            op_id: Some(Uuid::from_u128(1000 + i as u128 + age_ms as u128).to_string()),
            op: fix(i, t),
            device_time: Some(t),
            clock_offset_ms: offset_known.then_some(offset),
            now: RECEIPT_US + i as i64,
        });
        let mut head = 0;
        while let Some(o) = room.poll_output() {
            match o {
                Output::Persist(e) => {
                    head = e.seq;
                    out.push(e);
                }
                Output::Reject { error, .. } => panic!("refused: {error:?}"),
                _ => {}
            }
        }
        room.handle(Input::Committed { upto: head });
        while room.poll_output().is_some() {}
    }
    out
}

fn room() -> Room {
    Room::new(&spec(), Restored::default(), RoomConfig::default(), 1)
}

/// The verdict events among `events` that carry a clock-skew signal.
fn skew_verdicts(events: &[Arc<CommittedEvent>]) -> Vec<serde_json::Value> {
    events
        .iter()
        .filter(|e| e.kind == "verdict")
        .filter_map(|e| {
            e.payload["signals"]
                .as_array()?
                .iter()
                .find(|s| s["name"] == "clock_skew")
                .cloned()
        })
        .collect()
}

#[test]
fn an_hour_offline_with_a_correct_clock_is_no_clock_skew() {
    let mut r = room();
    let events = batch(&mut r, 6, HOUR_MS, 0, true);
    assert!(skew_verdicts(&events).is_empty(), "{events:#?}");
    // Each queued position keeps its device time and the batch's offset in the sealed event.
    let fixes: Vec<_> = events.iter().filter(|e| e.kind == "location").collect();
    assert_eq!(fixes.len(), 6);
    for f in &fixes {
        assert_eq!(f.payload["clock_offset_ms"], json!(300), "{f:?}");
        assert!(f.payload["device_time"].is_i64(), "{f:?}");
    }
    // The same events read back from their payload carry it too.
    let back = checklist_sync::state::Event::from_wire(&fixes[0].to_wire()).expect("wire");
    assert_eq!(back.clock_offset_ms, Some(300));
    assert!(matches!(back.body, EventBody::Op(Operation::Location(_))));
}

#[test]
fn without_the_send_time_the_same_batch_reads_as_skew() {
    // What the offset fixes: scored at receipt, an hour-old track looks like an hour of skew.
    let mut r = room();
    let events = batch(&mut r, 6, HOUR_MS, 0, false);
    let skews = skew_verdicts(&events);
    assert_eq!(skews.len(), 1, "{events:#?}");
    assert!(events
        .iter()
        .filter(|e| e.kind == "location")
        .all(|e| e.payload.get("clock_offset_ms").is_none()));
}

#[test]
fn a_clock_two_hours_off_is_skew_once_per_batch() {
    let mut r = room();
    let first = batch(&mut r, 6, HOUR_MS, 2 * HOUR_MS, true);
    let skews = skew_verdicts(&first);
    assert_eq!(skews.len(), 1, "one judgement for the batch: {first:#?}");
    let v = &skews[0]["value"];
    let median = v["median_skew_s"].as_f64().unwrap_or_default();
    assert!((median - 7200.3).abs() < 0.5, "{v}");
    assert_eq!(v["whole_hours"], json!(2.0), "{v}");
    // The next batch with the same clock changes no verdict: the skew is not counted again.
    let second = batch(&mut r, 6, HOUR_MS / 2, 2 * HOUR_MS, true);
    assert!(skew_verdicts(&second).is_empty(), "{second:#?}");
    assert!(second.iter().all(|e| e.kind == "location"), "{second:#?}");
}

#[test]
fn a_fix_a_month_older_than_its_receipt_is_still_refused() {
    // The bounds are checked against the receipt, whatever the offset says.
    let mut r = room();
    let t = RECEIPT_MS - 31 * 24 * HOUR_MS;
    r.handle(Input::Op {
        origin: Origin::Api(1),
        who: inspector(),
        op_id: Some(Uuid::from_u128(9).to_string()),
        op: fix(0, t),
        device_time: Some(t),
        clock_offset_ms: Some(31 * 24 * HOUR_MS),
        now: RECEIPT_US,
    });
    let mut codes = Vec::new();
    while let Some(o) = r.poll_output() {
        match o {
            Output::Reject { error, .. } => codes.push(error.code),
            Output::Persist(e) => panic!("stored {e:?}"),
            _ => {}
        }
    }
    assert_eq!(codes, ["geo_timestamp_too_old"]);
}

//! The server's fold over the shared recorded logs (`tests/data/folds/*.jsonl`, made by
//! `examples/record_folds.rs`): each log's hash chain checks out, and folding it gives the
//! stored state. The browser's fold (`web/state.js`) is held to the same files by
//! `tests/web/fold.test.mjs`, so the two folds agree.

use std::path::PathBuf;

use checklist_sync::chain::{event_hash, GENESIS_HASH};
use checklist_sync::state::{Event, EventBody};
use checklist_sync::trust::SIGNAL_NAMES;
use checklist_sync::State;
use serde_json::Value;
use uuid::Uuid;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/folds")
}

fn logs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/data/folds")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    v.sort();
    v
}

/// Equal as JSON, numbers compared by value (`8.0` and `8` are the same number to a browser).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[test]
fn the_server_fold_of_every_recorded_log_is_its_stored_state() {
    let logs = logs();
    assert!(logs.len() >= 5, "fixtures: {logs:?}");
    let mut kinds = std::collections::BTreeSet::new();
    for path in logs {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).expect("read log");
        let mut state = State::default();
        let mut prev = GENESIS_HASH.to_string();
        for (i, line) in text.lines().enumerate() {
            let v: Value = serde_json::from_str(line).expect("a JSON line");
            let inspection: Uuid = str_of(&v, "inspection_id").parse().expect("uuid");
            let pid: Uuid = str_of(&v, "participant_id").parse().expect("uuid");
            let seq = v["seq"].as_u64().expect("seq");
            let ts = v["server_ts"].as_i64().expect("server_ts");
            let op_id = v["client_op_id"].as_str();
            let kind = str_of(&v, "kind");
            let payload_text = str_of(&v, "payload_text");
            // A recorded log, not a made-up one: every link of the chain checks out.
            assert_eq!(seq, i as u64 + 1, "{name}");
            assert_eq!(str_of(&v, "prev_hash"), prev, "{name} seq {seq}");
            let hash = event_hash(inspection, seq, ts, pid, op_id, kind, payload_text, &prev);
            assert_eq!(str_of(&v, "hash"), hash, "{name} seq {seq}");
            let payload: Value = serde_json::from_str(payload_text).expect("payload text");
            assert_eq!(payload, v["payload"], "{name} seq {seq}");
            prev = hash;
            let body = EventBody::from_parts(kind, &payload)
                .unwrap_or_else(|e| panic!("{name} seq {seq}: {e}"));
            if let EventBody::Verdict(verdict) = &body {
                for s in &verdict.signals {
                    assert!(SIGNAL_NAMES.contains(&s.name.as_str()), "{name}: {s:?}");
                }
            }
            kinds.insert(kind.to_string());
            state.apply(&Event {
                seq,
                server_ts: ts,
                participant_id: pid,
                client_op_id: op_id.map(String::from),
                device_time: checklist_sync::state::device_time_of(&payload),
                clock_offset_ms: checklist_sync::state::clock_offset_of(&payload),
                body,
            });
        }
        let expected_path = path.with_extension("state.json");
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(&expected_path).expect("the stored state"),
        )
        .expect("state JSON");
        let got = serde_json::to_value(&state).expect("state serializes");
        assert!(
            same(&got, &expected),
            "{name}: the fold differs from {}:\n{}",
            expected_path.display(),
            serde_json::to_string_pretty(&got).unwrap_or_default()
        );
        // The stored state also reads back as a snapshot a client would receive.
        let snapshot: State = serde_json::from_value(expected).expect("a snapshot");
        assert_eq!(snapshot, state, "{name}");
    }
    // Together the logs exercise every kind of event there is.
    for k in [
        "join",
        "leave",
        "start",
        "finish",
        "cancel",
        "set_result",
        "comment",
        "attach_evidence",
        "location",
        "location_unavailable",
        "presence",
        "verdict",
    ] {
        assert!(kinds.contains(k), "no fixture has a {k} event: {kinds:?}");
    }
}

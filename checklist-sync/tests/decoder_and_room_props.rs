//! No-panic properties of the message decoder and the room state machine, and the
//! snapshot + replay equivalence (through the JSON wire forms, as clients do it).

use checklist_sync::domain::{ItemSpec, Principal, Role, RoomSpec};
use checklist_sync::proto::{decode, ClientInfo, ClientMsg, Operation};
use checklist_sync::room::{Input, Origin, Output, Restored, Room, RoomConfig};
use checklist_sync::state::{Event, LeaveReason, State};
use proptest::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

fn json_value() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "type",
        "op",
        "op_id",
        "kind",
        "item_id",
        "result",
        "comment",
        "violation",
        "text",
        "evidence",
        "id",
        "lat",
        "lon",
        "accuracy",
        "altitude",
        "heading",
        "speed",
        "device_ts",
        "quality",
        "rtt_ms",
        "protocol",
        "last_seq",
        "client",
        "t",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "op",
            "hello",
            "ping",
            "rtc.offer",
            "set_result",
            "comment",
            "attach_evidence",
            "start",
            "finish",
            "location",
            "presence",
            "compliant",
            "violation",
            "clear",
            "q1",
            "photo",
            "good",
            "",
        ])
        .prop_map(|s| json!(s)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..8).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decoder_never_panics_on_text(s in ".{0,300}") {
        let _ = decode(&s);
    }

    #[test]
    fn decoder_never_panics_on_json(v in json_value()) {
        let _ = decode(&v.to_string());
        let _ = decode(&json!({"type": "op", "op_id": "x", "op": v}).to_string());
        let _ = Event::from_wire(&v);
    }
}

#[derive(Debug, Clone)]
enum Step {
    Connect(u8),
    Disconnect(u8),
    Op(u8, Value),
    Commit,
}

fn step() -> impl Strategy<Value = Step> {
    let op = prop_oneof![
        json_value(),
        (0u8..6, 1u8..4, 0u8..4).prop_map(|(k, i, r)| match k {
            0 => json!({"kind": "set_result", "item_id": format!("q{i}"),
                        "result": (["compliant", "violation", "not_applicable", "clear"][r as usize])}),
            1 => json!({"kind": "comment", "item_id": format!("q{i}"), "text": "t"}),
            2 => json!({"kind": (["start", "finish", "start", "cancel"][r as usize])}),
            3 => json!({"kind": "request_photo", "item_id": format!("q{i}")}),
            // What the server submits for a stored photo or a derived clip.
            4 => json!({"kind": "attach_evidence", "item_id": format!("q{i}"),
                        "evidence": {"id": format!("e{r}"), "kind": (["photo", "clip", "still", "photo"][r as usize]),
                                     "sha256": "ab".repeat(32), "size": 10}}),
            _ => json!({"kind": "location", "lat": 1.0, "lon": 2.0, "accuracy": 3.0, "device_ts": 4}),
        }),
    ];
    prop_oneof![
        1 => (0u8..6).prop_map(Step::Connect),
        1 => (0u8..6).prop_map(Step::Disconnect),
        5 => ((0u8..3), op).prop_map(|(w, v)| Step::Op(w, v)),
        2 => Just(Step::Commit),
    ]
}

fn spec() -> RoomSpec {
    RoomSpec {
        inspection_id: Uuid::from_u128(7),
        items: (1..=3)
            .map(|i| ItemSpec {
                id: format!("q{i}"),
                number: i.to_string(),
                question: "?".into(),
            })
            .collect(),
        site: None,
    }
}

fn principal(w: u8) -> Principal {
    Principal {
        inspection_id: Uuid::from_u128(7),
        participant_id: Uuid::from_u128(100 + u128::from(w)),
        role: [Role::Inspector, Role::Business, Role::Observer][usize::from(w % 3)],
        display_name: format!("p{w}"),
        device: "phone".into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn room_never_panics_and_snapshot_plus_replay_is_the_state(steps in prop::collection::vec(step(), 0..60), cut in 0usize..100) {
        let mut room = Room::new(&spec(), Restored::default(), RoomConfig { replay_window: 8, ..RoomConfig::default() }, 1_000);
        let mut now = 1_000i64;
        let mut persisted: Vec<Value> = Vec::new();
        let mut head = 0u64;
        let mut n = 0u32;
        let drain = |room: &mut Room, persisted: &mut Vec<Value>, head: &mut u64| {
            while let Some(o) = room.poll_output() {
                if let Output::Persist(e) = o {
                    *head = e.seq;
                    persisted.push(e.to_wire());
                }
            }
        };
        for s in steps {
            now += 7;
            n += 1;
            let input = match s {
                Step::Connect(c) => Input::Connect { conn: u64::from(c), who: principal(c % 3), last_seq: Some(u64::from(c)), client: ClientInfo::default(), rtc: None, now },
                Step::Disconnect(c) => Input::Disconnect { conn: u64::from(c), reason: LeaveReason::Closed, now },
                Step::Op(w, v) => match Operation::decode(&v) {
                    Ok(op) => {
                        // Evidence comes from the server (uploads, derived cuts), the rest from sockets.
                        let origin = match op {
                            Operation::AttachEvidence { .. } => Origin::Api(u64::from(n)),
                            _ => Origin::Conn(u64::from(w)),
                        };
                        Input::Op { origin, who: principal(w), op_id: Some(format!("o{}", n % 17)), op, device_time: None, clock_offset_ms: None, now }
                    }
                    Err(_) => continue,
                },
                Step::Commit => Input::Committed { upto: head },
            };
            room.handle(input);
            drain(&mut room, &mut persisted, &mut head);
        }
        room.handle(Input::Committed { upto: head });
        drain(&mut room, &mut persisted, &mut head);
        let server = room.snapshot();
        prop_assert_eq!(server.seq, persisted.len() as u64);

        // A client that took a snapshot at `cut` and replays the rest from the wire.
        let cut = cut.min(persisted.len());
        let mut at_cut = State::default();
        for e in &persisted[..cut] {
            at_cut.apply(&Event::from_wire(e).expect("wire event"));
        }
        let snapshot_json = serde_json::to_string(&at_cut).expect("serialize");
        let mut client: State = serde_json::from_str(&snapshot_json).expect("deserialize");
        for e in &persisted[cut..] {
            client.apply(&Event::from_wire(e).expect("wire event"));
        }
        prop_assert_eq!(&client, &server.state);
        prop_assert_eq!(serde_json::to_value(&client).expect("json"), serde_json::to_value(&server.state).expect("json"));
    }
}

#[test]
fn decode_reads_a_full_op() {
    let m = decode(r#"{"type":"op","op_id":"a-1","op":{"kind":"location","lat":1.5,"lon":2,"accuracy":3,"altitude":null,"device_ts":1700000000000.7}}"#)
        .expect("valid");
    match m {
        ClientMsg::Op {
            op_id,
            op: Operation::Location(l),
        } => {
            assert_eq!(op_id, "a-1");
            assert_eq!(l.device_ts, 1_700_000_000_000);
            assert_eq!(l.altitude, None);
        }
        other => panic!("unexpected {other:?}"),
    }
}

proptest! {
    /// The hash is written straight into SHA-256 and the `event` message around the stored
    /// payload text (issue 24); both must stay what their JSON definitions say.
    #[test]
    fn event_hash_and_event_text_match_their_json_definitions(
        op_id in proptest::option::of("\\PC{0,24}"),
        name in "\\PC{0,40}",
        seq in 1u64..(1u64 << 53),
        ts in any::<i64>(),
    ) {
        use checklist_sync::chain::{event_hash, GENESIS_HASH};
        use checklist_sync::state::{EventBody, JoinInfo};
        use checklist_sync::CommittedEvent;
        use sha2::{Digest, Sha256};
        let ev = Event {
            seq,
            server_ts: ts,
            participant_id: Uuid::new_v4(),
            client_op_id: op_id.clone(),
            device_time: None,
            clock_offset_ms: None,
            body: EventBody::Join(JoinInfo {
                role: Role::Business,
                display_name: name,
                device: "phone".into(),
                client: ClientInfo::default(),
            }),
        };
        let inspection = Uuid::new_v4();
        let ce = CommittedEvent::seal(inspection, &ev, GENESIS_HASH);
        let canonical = json!([inspection.to_string(), seq, ts, ev.participant_id.to_string(),
            op_id, "join", ce.payload_text, GENESIS_HASH]);
        let want = hex::encode(Sha256::digest(canonical.to_string().as_bytes()));
        prop_assert_eq!(&ce.hash, &want);
        prop_assert_eq!(event_hash(inspection, seq, ts, ev.participant_id, op_id.as_deref(),
            "join", &ce.payload_text, GENESIS_HASH), want);
        let text: Value = serde_json::from_str(&ce.wire_message_text()).expect("the event text is JSON");
        prop_assert_eq!(text, ce.to_wire_message());
    }
}

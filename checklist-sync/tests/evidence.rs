//! Evidence in the room: clients cannot claim evidence, the inspector's photo requests are
//! folded state, server-made evidence events are accepted (derived ones after the finish), the
//! participant's quotas bound uploaded evidence but not what the server derives, events of
//! the first, client-claimed shape stay readable, and the inspector's `focus` (where an item's
//! chapter begins) is an item op that changes no state.

use checklist_sync::proto::{codes, decode, Evidence, EvidenceKind, Operation};
use checklist_sync::room::{Input, Origin, Output, Restored, Room, RoomConfig};
use checklist_sync::state::{Event, EventBody, State};
use checklist_sync::{ItemSpec, Principal, Quotas, Role, RoomSpec};
use serde_json::json;
use uuid::Uuid;

fn spec() -> RoomSpec {
    RoomSpec {
        inspection_id: Uuid::from_u128(7),
        items: ["q1", "q2"]
            .iter()
            .map(|id| ItemSpec {
                id: (*id).into(),
                number: "1".into(),
                question: "?".into(),
            })
            .collect(),
        site: None,
    }
}

fn who(role: Role, n: u128) -> Principal {
    Principal {
        inspection_id: Uuid::from_u128(7),
        participant_id: Uuid::from_u128(n),
        role,
        display_name: format!("{role:?}"),
        device: "desktop".into(),
    }
}

fn evidence(kind: EvidenceKind) -> Evidence {
    serde_json::from_value(json!({"id": "e1", "kind": kind, "sha256": "ab".repeat(32), "size": 3}))
        .expect("evidence")
}

/// Feeds an op as the server submits it, commits everything, returns the outputs.
fn run(room: &mut Room, who: &Principal, op: Operation, now: i64) -> Vec<Output> {
    run_from(room, Origin::Api(now as u64), who, op, now)
}

fn run_from(
    room: &mut Room,
    origin: Origin,
    who: &Principal,
    op: Operation,
    now: i64,
) -> Vec<Output> {
    room.handle(Input::Op {
        origin,
        who: who.clone(),
        op_id: Some(format!("op{now}")),
        op,
        device_time: None,
        clock_offset_ms: None,
        now,
    });
    let mut out = Vec::new();
    let mut head = 0;
    while let Some(o) = room.poll_output() {
        if let Output::Persist(e) = &o {
            head = e.seq;
        }
        out.push(o);
    }
    room.handle(Input::Committed { upto: head });
    out.extend(std::iter::from_fn(|| room.poll_output()));
    out
}

fn rejected(out: &[Output]) -> Option<String> {
    out.iter().find_map(|o| match o {
        Output::Reject { error, .. } => Some(error.code.clone()),
        _ => None,
    })
}

#[test]
fn a_client_cannot_attach_evidence() {
    let frame = json!({"type": "op", "op_id": "x1", "op": {"kind": "attach_evidence", "item_id": "q1",
        "evidence": {"id": "e", "kind": "photo", "uri": "https://example.org/p.jpg", "sha256": "ab".repeat(32)}}});
    let e = decode(&frame.to_string()).expect_err("refused");
    assert_eq!(e.error.code, codes::UPLOAD_REQUIRED);
    assert_eq!(e.op_id.as_deref(), Some("x1"));
    // Even a malformed one gets the same answer, not a validation error.
    let frame = json!({"type": "op", "op_id": "x2", "op": {"kind": "attach_evidence"}});
    assert_eq!(
        decode(&frame.to_string()).expect_err("refused").error.code,
        codes::UPLOAD_REQUIRED
    );
}

#[test]
fn photo_requests_are_folded_and_answered_by_a_photo() {
    let mut room = Room::new(&spec(), Restored::default(), RoomConfig::default(), 1);
    let inspector = who(Role::Inspector, 1);
    let business = who(Role::Business, 2);
    let req = Operation::RequestPhoto {
        item_id: "q1".into(),
    };
    assert_eq!(
        rejected(&run(&mut room, &inspector, req.clone(), 10)).as_deref(),
        Some(codes::NOT_LIVE)
    );
    run(&mut room, &inspector, Operation::Start, 20);
    assert_eq!(
        rejected(&run(&mut room, &business, req.clone(), 30)).as_deref(),
        Some(codes::FORBIDDEN)
    );
    let unknown = Operation::RequestPhoto {
        item_id: "nope".into(),
    };
    assert_eq!(
        rejected(&run(&mut room, &inspector, unknown, 35)).as_deref(),
        Some(codes::UNKNOWN_ITEM)
    );
    assert_eq!(rejected(&run(&mut room, &inspector, req, 40)), None);
    let pending = room.snapshot().state.items["q1"]
        .photo_request
        .expect("pending");
    assert_eq!(pending.by, inspector.participant_id);
    // A still of another item does not answer it; a photo of the item does.
    let attach = |item: &str, kind| Operation::AttachEvidence {
        item_id: Some(item.into()),
        finding_seq: None,
        evidence: Box::new(evidence(kind)),
    };
    run(&mut room, &business, attach("q2", EvidenceKind::Photo), 50);
    assert!(room.snapshot().state.items["q1"].photo_request.is_some());
    run(&mut room, &business, attach("q1", EvidenceKind::Photo), 60);
    let state = room.snapshot().state;
    assert!(state.items["q1"].photo_request.is_none());
    assert_eq!(state.items["q1"].evidence.len(), 1);
    assert_eq!(state.items["q1"].evidence[0].evidence.size, Some(3));
}

#[test]
fn derived_evidence_is_accepted_after_the_finish_and_photos_are_not() {
    let mut room = Room::new(&spec(), Restored::default(), RoomConfig::default(), 1);
    let inspector = who(Role::Inspector, 1);
    let attach = |kind| Operation::AttachEvidence {
        item_id: Some("q1".into()),
        finding_seq: None,
        evidence: Box::new(evidence(kind)),
    };
    assert_eq!(
        rejected(&run(&mut room, &inspector, attach(EvidenceKind::Clip), 5)).as_deref(),
        Some(codes::NOT_LIVE)
    );
    run(&mut room, &inspector, Operation::Start, 10);
    run(&mut room, &inspector, Operation::Finish, 20);
    assert_eq!(
        rejected(&run(&mut room, &inspector, attach(EvidenceKind::Photo), 30)).as_deref(),
        Some(codes::ALREADY_FINISHED)
    );
    assert_eq!(
        rejected(&run(&mut room, &inspector, attach(EvidenceKind::Clip), 40)),
        None
    );
    assert_eq!(
        rejected(&run(&mut room, &inspector, attach(EvidenceKind::Still), 50)),
        None
    );
    let kinds: Vec<EvidenceKind> = room.snapshot().state.items["q1"]
        .evidence
        .iter()
        .map(|e| e.evidence.kind)
        .collect();
    assert_eq!(kinds, [EvidenceKind::Clip, EvidenceKind::Still]);
}

#[test]
fn quotas_bound_uploaded_evidence_not_the_derived() {
    let config = RoomConfig {
        quotas: Quotas {
            evidence_per_item: 1,
            ..Quotas::default()
        },
        ..RoomConfig::default()
    };
    let mut room = Room::new(&spec(), Restored::default(), config, 1);
    let inspector = who(Role::Inspector, 1);
    let business = who(Role::Business, 2);
    let attach = |kind| Operation::AttachEvidence {
        item_id: Some("q1".into()),
        finding_seq: None,
        evidence: Box::new(evidence(kind)),
    };
    run(&mut room, &inspector, Operation::Start, 10);
    assert_eq!(
        rejected(&run(&mut room, &business, attach(EvidenceKind::Photo), 20)),
        None
    );
    let out = run(&mut room, &business, attach(EvidenceKind::Photo), 30);
    assert_eq!(rejected(&out).as_deref(), Some(codes::QUOTA_EXCEEDED));
    let limit = out.iter().find_map(|o| match o {
        Output::Reject { error, .. } => error.limit.clone(),
        _ => None,
    });
    assert_eq!(limit.as_deref(), Some("evidence_per_item"));
    // The server's clip and still of the violation, twice the per-item quota, both land.
    run(&mut room, &inspector, Operation::Finish, 40);
    let server = who(Role::Inspector, 99);
    for (kind, now) in [(EvidenceKind::Clip, 50), (EvidenceKind::Still, 60)] {
        assert_eq!(rejected(&run(&mut room, &server, attach(kind), now)), None);
    }
    assert_eq!(room.snapshot().state.items["q1"].evidence.len(), 3);
}

#[test]
fn a_socket_cannot_attach_evidence_in_any_phase_and_a_cancel_ends_derivation() {
    let mut room = Room::new(&spec(), Restored::default(), RoomConfig::default(), 1);
    let inspector = who(Role::Inspector, 1);
    let attach = |kind| Operation::AttachEvidence {
        item_id: Some("q1".into()),
        finding_seq: None,
        evidence: Box::new(evidence(kind)),
    };
    run(&mut room, &inspector, Operation::Start, 10);
    let socket = Origin::Conn(1);
    assert_eq!(
        rejected(&run_from(
            &mut room,
            socket,
            &inspector,
            attach(EvidenceKind::Photo),
            20
        ))
        .as_deref(),
        Some(codes::UPLOAD_REQUIRED)
    );
    run(&mut room, &inspector, Operation::Finish, 30);
    assert_eq!(
        rejected(&run_from(
            &mut room,
            socket,
            &inspector,
            attach(EvidenceKind::Clip),
            40
        ))
        .as_deref(),
        Some(codes::UPLOAD_REQUIRED)
    );
    let state = room.snapshot().state;
    assert!(state.items.get("q1").is_none_or(|i| i.evidence.is_empty()));

    // A cancelled inspection takes nothing more, not even a cut of its recording.
    let mut room = Room::new(&spec(), Restored::default(), RoomConfig::default(), 1);
    run(&mut room, &inspector, Operation::Start, 10);
    let cancel = Operation::Cancel {
        reason: None,
        note: None,
    };
    assert_eq!(rejected(&run(&mut room, &inspector, cancel, 20)), None);
    assert_eq!(
        rejected(&run(&mut room, &inspector, attach(EvidenceKind::Still), 30)).as_deref(),
        Some(codes::CANCELLED)
    );
}

#[test]
fn first_revision_events_stay_readable() {
    let payload = json!({"item_id": "q1", "evidence": {"id": "up-1", "kind": "photo",
        "uri": "/uploads/1.jpg", "sha256": "cd".repeat(32), "caption": "огнетушитель", "media_ts": 1_700_000_000_000_000i64}});
    let body = EventBody::from_parts("attach_evidence", &payload).expect("old shape parses");
    let mut state = State::default();
    state.apply(&Event {
        seq: 1,
        server_ts: 5,
        participant_id: Uuid::from_u128(3),
        client_op_id: Some("o".into()),
        device_time: None,
        clock_offset_ms: None,
        body,
    });
    let e = &state.items["q1"].evidence[0].evidence;
    assert_eq!(e.uri.as_deref(), Some("/uploads/1.jpg"));
    assert_eq!(e.size, None);
    // Re-encoding keeps exactly the old fields (the stored text is what is hashed anyway).
    assert_eq!(serde_json::to_value(e).expect("json"), payload["evidence"]);
}

/// "Now looking at item N" (`focus`, where the item's chapter begins) is the inspector's, on
/// a live inspection's known item, and changes no state: the log keeps the moment.
#[test]
fn focus_is_an_inspectors_live_item_op_that_changes_no_state() {
    let mut room = Room::new(&spec(), Restored::default(), RoomConfig::default(), 1);
    let inspector = who(Role::Inspector, 1);
    let business = who(Role::Business, 2);
    let focus = |item: &str| Operation::Focus {
        item_id: item.into(),
    };
    assert_eq!(
        rejected(&run(&mut room, &inspector, focus("q1"), 10)).as_deref(),
        Some(codes::NOT_LIVE)
    );
    run(&mut room, &inspector, Operation::Start, 20);
    assert_eq!(
        rejected(&run(&mut room, &business, focus("q1"), 30)).as_deref(),
        Some(codes::FORBIDDEN)
    );
    assert_eq!(
        rejected(&run(&mut room, &inspector, focus("nope"), 35)).as_deref(),
        Some(codes::UNKNOWN_ITEM)
    );
    let before = serde_json::to_value(room.snapshot().state).expect("state");
    assert_eq!(rejected(&run(&mut room, &inspector, focus("q1"), 40)), None);
    assert_eq!(
        serde_json::to_value(room.snapshot().state).expect("state"),
        before
    );
    let frame = json!({"type": "op", "op_id": "f1", "op": {"kind": "focus", "item_id": "q2"}});
    assert!(decode(&frame.to_string()).is_ok());
    let frame = json!({"type": "op", "op_id": "f2", "op": {"kind": "focus"}});
    assert_eq!(
        decode(&frame.to_string()).expect_err("refused").error.code,
        codes::BAD_MESSAGE
    );
}

/// Evidence of a free-form finding names the finding's seq: only a logged finding takes it
/// (another seq is `unknown_finding`, nothing appended); the projection gives the finding its
/// own evidence list, the quotas count it per finding, and the op names exactly one target.
#[test]
fn evidence_of_a_finding_goes_to_that_finding_only() {
    let mut room = Room::new(&spec(), Restored::default(), RoomConfig::default(), 1);
    let inspector = who(Role::Inspector, 1);
    let to_finding = |seq| Operation::AttachEvidence {
        item_id: None,
        finding_seq: Some(seq),
        evidence: Box::new(evidence(EvidenceKind::Photo)),
    };
    run(&mut room, &inspector, Operation::Start, 10);
    let finding = Operation::Finding {
        text: "Огнетушитель просрочен".into(),
        location: None,
    };
    let out = run(&mut room, &inspector, finding, 20);
    let seq = out
        .iter()
        .find_map(|o| match o {
            Output::Ack { event, .. } if event.kind == "finding" => Some(event.seq),
            _ => None,
        })
        .expect("the finding is acknowledged");
    let head = room.snapshot().seq;
    // An unknown seq and the seq of the start (no finding) are both refused.
    for bad in [seq + 100, 1] {
        assert_eq!(
            rejected(&run(
                &mut room,
                &inspector,
                to_finding(bad),
                30 + bad as i64
            ))
            .as_deref(),
            Some(codes::UNKNOWN_FINDING)
        );
    }
    assert_eq!(room.snapshot().seq, head, "a refusal appends nothing");
    assert_eq!(
        rejected(&run(&mut room, &inspector, to_finding(seq), 200)),
        None
    );
    let state = room.snapshot().state;
    assert_eq!(state.findings[0].evidence.len(), 1);
    assert!(state.items.values().all(|i| i.evidence.is_empty()));
    assert_eq!(state.all_evidence().count(), 1);
    // Both targets, or none: the op itself is malformed.
    for (item_id, finding_seq) in [(Some("q1".to_string()), Some(seq)), (None, None)] {
        let op = Operation::AttachEvidence {
            item_id,
            finding_seq,
            evidence: Box::new(evidence(EvidenceKind::Photo)),
        };
        let e = op.validate().expect_err("exactly one target");
        assert_eq!(e.code, codes::INVALID_EVIDENCE_TARGET);
    }
    // The quota's count per target survives a reload from the state.
    let config = RoomConfig {
        quotas: Quotas {
            evidence_per_item: 1,
            ..Quotas::default()
        },
        ..RoomConfig::default()
    };
    let mut usage = checklist_sync::quota::Usage::from_state(&state);
    let e = usage
        .admit(
            &config.quotas,
            inspector.participant_id,
            &to_finding(seq),
            300,
        )
        .expect_err("one evidence per finding");
    assert_eq!(e.limit.as_deref(), Some("evidence_per_item"));
}

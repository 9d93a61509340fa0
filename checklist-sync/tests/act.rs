//! The act's events in the room: only the server makes them, only after the finish; formed
//! once from the head; each party answers once, in its own role, that very act. Every
//! refusal leaves the log as it was.

use checklist_sync::act::SignerRole;
use checklist_sync::chain::GENESIS_HASH;
use checklist_sync::proto::{codes, decode, Operation};
use checklist_sync::room::{Input, Origin, Output, Restored, Room, RoomConfig};
use checklist_sync::{ItemSpec, Principal, Role, RoomSpec};
use serde_json::json;
use uuid::Uuid;

fn spec() -> RoomSpec {
    RoomSpec {
        inspection_id: Uuid::from_u128(8),
        items: vec![ItemSpec {
            id: "q1".into(),
            number: "1".into(),
            question: "?".into(),
        }],
        site: None,
    }
}

fn who(role: Role, n: u128) -> Principal {
    Principal {
        inspection_id: Uuid::from_u128(8),
        participant_id: Uuid::from_u128(n),
        role,
        display_name: format!("{role:?}"),
        device: "desktop".into(),
    }
}

/// The room and the head (seq, hash) of what it committed.
struct Log {
    room: Room,
    head: (u64, String),
    now: i64,
}

impl Log {
    fn new() -> Log {
        Log {
            room: Room::new(&spec(), Restored::default(), RoomConfig::default(), 1),
            head: (0, GENESIS_HASH.to_string()),
            now: 1,
        }
    }

    /// Feeds an op, commits what it appended; the refusal's code, if refused.
    fn put(&mut self, origin: Origin, who: &Principal, op: Operation) -> Option<String> {
        self.now += 1_000_000;
        self.room.handle(Input::Op {
            origin,
            who: who.clone(),
            op_id: None,
            op,
            device_time: None,
            clock_offset_ms: None,
            now: self.now,
        });
        let mut refused = None;
        while let Some(o) = self.room.poll_output() {
            match o {
                Output::Persist(e) => self.head = (e.seq, e.hash.clone()),
                Output::Reject { error, .. } => refused = Some(error.code),
                _ => {}
            }
        }
        self.room.handle(Input::Committed { upto: self.head.0 });
        while self.room.poll_output().is_some() {}
        refused
    }

    fn server(&mut self, who: &Principal, op: Operation) -> Option<String> {
        self.put(Origin::Api(1), who, op)
    }

    fn formed(&self, sha: &str) -> Operation {
        Operation::ActFormed {
            sha256: sha.into(),
            size: 1000,
            head_seq: self.head.0,
            head_hash: self.head.1.clone(),
            language: "ru".into(),
        }
    }
}

fn signed(act: &str, role: SignerRole, n: char) -> Operation {
    Operation::ActSigned {
        act_sha256: act.into(),
        role,
        signer: "Петров П. П.".into(),
        certificate_sha256: n.to_string().repeat(64),
        signature_sha256: n.to_string().repeat(64),
        scheme: "p256-webcrypto-cms".into(),
    }
}

fn refused(act: &str, role: SignerRole) -> Operation {
    Operation::ActRefused {
        act_sha256: act.into(),
        role,
        signer: "ООО «Ромашка»".into(),
        reason: "Не согласны".into(),
    }
}

#[test]
fn a_client_frame_naming_an_act_event_is_refused() {
    for kind in ["act_formed", "act_signed", "act_refused"] {
        let frame = json!({"type": "op", "op_id": "x1", "op": {"kind": kind, "act_sha256": "ab".repeat(32),
            "role": "business", "signer": "x", "reason": "y"}});
        let e = decode(&frame.to_string()).expect_err("refused");
        assert_eq!(e.error.code, codes::FORBIDDEN, "{kind}");
        assert_eq!(e.op_id.as_deref(), Some("x1"));
    }
}

#[test]
fn the_act_follows_its_rules_and_refusals_leave_the_log_as_it_was() {
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    let inspector = who(Role::Inspector, 1);
    let business = who(Role::Business, 2);
    let observer = who(Role::Observer, 3);
    let mut log = Log::new();
    assert_eq!(log.server(&inspector, Operation::Start), None);
    // Not before the finish.
    let op = log.formed(&a);
    assert_eq!(log.server(&inspector, op).as_deref(), Some("not_finished"));
    assert_eq!(log.server(&inspector, Operation::Finish), None);
    let before = log.head.clone();

    // From a socket, whatever it says.
    let op = log.formed(&a);
    assert_eq!(
        log.put(Origin::Conn(7), &inspector, op).as_deref(),
        Some("forbidden")
    );
    // Signing before the act exists.
    assert_eq!(
        log.server(&inspector, signed(&a, SignerRole::Official, 'c'))
            .as_deref(),
        Some("act_not_formed")
    );
    // Only the inspector forms it, and only from the head.
    let op = log.formed(&a);
    assert_eq!(log.server(&business, op).as_deref(), Some("forbidden"));
    let mut stale = log.formed(&a);
    if let Operation::ActFormed { head_seq, .. } = &mut stale {
        *head_seq -= 1;
    }
    assert_eq!(log.server(&inspector, stale).as_deref(), Some("act_stale"));
    assert_eq!(log.head, before, "refusals append nothing");

    let op = log.formed(&a);
    assert_eq!(log.server(&inspector, op), None);
    let op = log.formed(&b);
    assert_eq!(
        log.server(&inspector, op).as_deref(),
        Some("act_already_formed")
    );
    // Each party in its own role, that very act, once.
    for (p, op, code) in [
        (
            &inspector,
            signed(&a, SignerRole::Business, 'c'),
            "forbidden",
        ),
        (
            &business,
            signed(&a, SignerRole::Official, 'c'),
            "forbidden",
        ),
        (&observer, refused(&a, SignerRole::Business), "forbidden"),
        (
            &inspector,
            signed(&b, SignerRole::Official, 'c'),
            "act_mismatch",
        ),
    ] {
        assert_eq!(log.server(p, op).as_deref(), Some(code));
    }
    assert_eq!(
        log.server(&inspector, signed(&a, SignerRole::Official, 'c')),
        None
    );
    assert_eq!(
        log.server(&inspector, signed(&a, SignerRole::Official, 'd'))
            .as_deref(),
        Some("already_signed")
    );
    assert_eq!(
        log.server(&business, refused(&a, SignerRole::Business)),
        None
    );
    assert_eq!(
        log.server(&business, signed(&a, SignerRole::Business, 'e'))
            .as_deref(),
        Some("already_refused")
    );
    let act = log.room.snapshot().state.act.expect("the act is folded");
    assert_eq!(act.sha256, a);
    assert_eq!(
        (act.signatures.len(), act.refusals.len()),
        (1, 1),
        "{act:?}"
    );
    assert_eq!(act.signatures[0].role, SignerRole::Official);
    assert_eq!(act.refusals[0].role, SignerRole::Business);
}

#[test]
fn no_act_after_a_cancel() {
    let inspector = who(Role::Inspector, 1);
    let mut log = Log::new();
    assert_eq!(
        log.server(
            &inspector,
            Operation::Cancel {
                reason: None,
                note: None
            }
        ),
        None
    );
    let op = log.formed(&"a".repeat(64));
    assert_eq!(log.server(&inspector, op).as_deref(), Some("cancelled"));
}

#[test]
fn malformed_act_events_are_refused_before_the_room() {
    let bad = Operation::ActRefused {
        act_sha256: "a".repeat(64),
        role: SignerRole::Business,
        signer: "x".into(),
        reason: "   ".into(),
    };
    assert_eq!(
        bad.validate().expect_err("blank reason").field.as_deref(),
        Some("reason")
    );
    let bad = Operation::ActFormed {
        sha256: "XYZ".into(),
        size: 1,
        head_seq: 1,
        head_hash: "a".repeat(64),
        language: "ru".into(),
    };
    assert_eq!(
        bad.validate().expect_err("bad hash").field.as_deref(),
        Some("sha256")
    );
}

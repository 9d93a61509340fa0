//! Records the shared fold fixtures in `tests/data/folds/`: event logs made by the real room
//! state machine (`Room`, fed scripted inputs at fixed times, so the files are the same on
//! every run) in the exported JSON Lines format (`events.jsonl`), and beside each the state
//! the room reached (`<name>.state.json`). The Rust fold test and the browser's fold test
//! (`node --test tests/web`) both replay the logs and must reach exactly those states.
//!
//! `legacy_verdicts` is the one log not made by today's room: verdict events in the shape the
//! assessor wrote before signals became codes (Russian and English sentences inside), chained
//! like any other, to show that old logs still read back.
//!
//! Usage: `cargo run -p checklist-sync --example record_folds -- tests/data/folds`

use std::path::{Path, PathBuf};
use std::sync::Arc;

use checklist_sync::chain::GENESIS_HASH;
use checklist_sync::proto::{ClientInfo, MissingFeature};
use checklist_sync::room::{Input, Origin, Output, Restored, Room, RoomConfig};
use checklist_sync::state::{Event, EventBody, JoinInfo, LeaveReason, State};
use checklist_sync::trust::{Severity, Signal, TrustLevel, Verdict};
use checklist_sync::{CommittedEvent, ItemSpec, Operation, Principal, Role, RoomSpec, Site};
use serde_json::{json, Value};
use uuid::Uuid;

/// 2026-11-23 09:00:00 UTC.
const T0: i64 = 1_795_424_400_000_000;
const SITE: Site = Site {
    lat: 55.7577,
    lon: 37.6130,
};
const ANDROID: &str = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) \
                       Chrome/142.0.0.0 Mobile Safari/537.36";

fn spec(n: u128) -> RoomSpec {
    let questions = [
        "Огнетушители на местах и проверены?",
        "Эвакуационные выходы свободны?",
        "Планы эвакуации вывешены?",
        "Журнал инструктажей ведётся?",
    ];
    RoomSpec {
        inspection_id: Uuid::from_u128(0x1000 + n),
        items: questions
            .iter()
            .enumerate()
            .map(|(i, q)| ItemSpec {
                id: format!("q{}", i + 1),
                number: format!("1.{}", i + 1),
                question: (*q).to_string(),
            })
            .collect(),
        site: Some(SITE),
    }
}

fn person(spec: &RoomSpec, n: u128, role: Role, name: &str, device: &str) -> Principal {
    Principal {
        inspection_id: spec.inspection_id,
        participant_id: Uuid::from_u128(0x2000 + n),
        role,
        display_name: name.to_string(),
        device: device.to_string(),
    }
}

fn desktop() -> ClientInfo {
    ClientInfo {
        timezone: Some("Europe/Moscow".into()),
        webdriver: Some(false),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/142.0.0.0".into()),
        platform: Some("Linux x86_64".into()),
        hints: vec![],
        missing: vec![],
    }
}

fn phone() -> ClientInfo {
    ClientInfo {
        timezone: Some("Europe/Moscow".into()),
        webdriver: Some(false),
        user_agent: Some(ANDROID.into()),
        platform: Some("Linux armv81".into()),
        hints: vec![],
        missing: vec![],
    }
}

/// A room driven by a script, committing after every step like the writer would.
struct Script {
    room: Room,
    now: i64,
    log: Vec<Arc<CommittedEvent>>,
    op: u32,
}

impl Script {
    fn new(spec: &RoomSpec) -> Script {
        Script {
            room: Room::new(spec, Restored::default(), RoomConfig::default(), T0),
            now: T0,
            log: Vec::new(),
            op: 0,
        }
    }

    fn step(&mut self, seconds: f64, input: impl FnOnce(i64) -> Input) {
        self.now += (seconds * 1e6) as i64;
        self.room.handle(input(self.now));
        let mut refused = Vec::new();
        while let Some(o) = self.room.poll_output() {
            match o {
                Output::Persist(e) => self.log.push(e),
                Output::Reject { error, .. } => refused.push(error),
                _ => {}
            }
        }
        let upto = self.log.last().map_or(0, |e| e.seq);
        self.room.handle(Input::Committed { upto });
        while self.room.poll_output().is_some() {}
        for e in refused {
            eprintln!("refused (not logged): {e}");
        }
    }

    fn connect(&mut self, seconds: f64, conn: u64, who: &Principal, client: ClientInfo) {
        let who = who.clone();
        self.step(seconds, |now| Input::Connect {
            conn,
            who,
            last_seq: None,
            client,
            rtc: None,
            now,
        });
    }

    fn leave(&mut self, seconds: f64, conn: u64) {
        self.step(seconds, |now| Input::Disconnect {
            conn,
            reason: LeaveReason::Closed,
            now,
        });
    }

    fn op(&mut self, seconds: f64, who: &Principal, op: Value) {
        self.op += 1;
        let op_id = format!(
            "{}-{}",
            &who.participant_id.simple().to_string()[28..],
            self.op
        );
        let op = Operation::decode(&op).unwrap_or_else(|e| panic!("script op: {e}"));
        let who = who.clone();
        self.step(seconds, |now| Input::Op {
            origin: Origin::Conn(0),
            who,
            op_id: Some(op_id),
            op,
            device_time: None,
            clock_offset_ms: None,
            now,
        });
    }

    /// An operation a server-side call makes (REST), without an op id.
    fn api(&mut self, seconds: f64, who: &Principal, op: Value) {
        let op = Operation::decode(&op).unwrap_or_else(|e| panic!("script op: {e}"));
        let who = who.clone();
        self.step(seconds, |now| Input::Op {
            origin: Origin::Api(1),
            who,
            op_id: None,
            op,
            device_time: None,
            clock_offset_ms: None,
            now,
        });
    }

    /// An op the on-site phone queued offline: made `ago` seconds before it arrives (device
    /// clock `behind_s` seconds behind), sent in a batch whose measured offset is `behind_s`.
    fn queued(&mut self, seconds: f64, who: &Principal, op: Value, ago: f64, behind_s: f64) {
        self.op += 1;
        let op_id = Uuid::from_u128(0x3000 + u128::from(self.op)).to_string();
        let op = Operation::decode(&op).unwrap_or_else(|e| panic!("script op: {e}"));
        let who = who.clone();
        let at = self.now + (seconds * 1e6) as i64;
        let device_time = at / 1000 - ((ago + behind_s) * 1e3) as i64;
        self.step(seconds, |now| Input::Op {
            origin: Origin::Api(2),
            who,
            op_id: Some(op_id),
            op,
            device_time: Some(device_time),
            clock_offset_ms: Some((behind_s * 1e3) as i64),
            now,
        });
    }

    /// A location sample taken 300 ms before it arrives, `north_m` metres north of the site.
    fn fix(&mut self, seconds: f64, who: &Principal, north_m: f64, accuracy: f64) {
        let device_ts = (self.now + (seconds * 1e6) as i64) / 1000 - 300;
        self.op(
            seconds,
            who,
            json!({"kind": "location", "lat": SITE.lat + north_m / 111_195.0, "lon": SITE.lon,
                   "accuracy": accuracy, "device_ts": device_ts}),
        );
    }

    fn finish(self) -> (Vec<Arc<CommittedEvent>>, State) {
        let state = self.room.snapshot().state;
        (self.log, state)
    }
}

fn checklist() -> (Vec<Arc<CommittedEvent>>, State) {
    let spec = spec(1);
    let insp = person(&spec, 1, Role::Inspector, "Иванов И. И.", "desktop");
    let biz = person(&spec, 2, Role::Business, "ООО «Ромашка»", "android");
    let mut s = Script::new(&spec);
    s.connect(1.0, 1, &insp, desktop());
    s.connect(5.0, 2, &biz, phone());
    s.op(3.0, &insp, json!({"kind": "start"}));
    s.op(
        20.0,
        &insp,
        json!({"kind": "set_result", "item_id": "q1", "result": "violation",
        "comment": "Огнетушитель просрочен", "violation": "Истёк срок поверки огнетушителя"}),
    );
    s.op(
        4.0,
        &insp,
        json!({"kind": "set_result", "item_id": "q1", "result": "violation",
        "violation": "Истёк срок поверки огнетушителя в зале № 2"}),
    );
    s.op(
        15.0,
        &insp,
        json!({"kind": "set_result", "item_id": "q2", "result": "compliant"}),
    );
    s.op(
        9.0,
        &insp,
        json!({"kind": "set_result", "item_id": "q3", "result": "not_applicable",
        "comment": "Одноэтажное здание"}),
    );
    s.op(
        2.0,
        &insp,
        json!({"kind": "set_result", "item_id": "q2", "result": "clear"}),
    );
    s.op(
        6.0,
        &biz,
        json!({"kind": "comment", "item_id": "q1", "text": "Новый огнетушитель заказан"}),
    );
    s.op(1.0, &biz, json!({"kind": "attach_evidence", "item_id": "q1", "evidence": {"id": "ph-1",
        "kind": "photo", "sha256": "9f2c7b0c5d1e4a3f6b8d2e1c0a9f8e7d6c5b4a3928171605f4e3d2c1b0a99887",
        "caption": "Бирка огнетушителя"}}));
    s.op(
        2.0,
        &insp,
        json!({"kind": "comment", "item_id": "q1", "text": "Принято"}),
    );
    s.op(3.0, &biz, json!({"kind": "presence", "quality": "good", "rtt_ms": 120, "network": "4g", "visible": true}));
    s.op(30.0, &biz, json!({"kind": "presence", "quality": "fair"}));
    s.leave(10.0, 2);
    s.connect(40.0, 3, &biz, phone());
    s.op(
        5.0,
        &insp,
        json!({"kind": "set_result", "item_id": "q4", "result": "compliant"}),
    );
    s.op(10.0, &insp, json!({"kind": "finish"}));
    // Refused after finish: not in the log, not in the state.
    s.op(
        1.0,
        &insp,
        json!({"kind": "set_result", "item_id": "q4", "result": "violation"}),
    );
    s.leave(2.0, 3);
    s.leave(1.0, 1);
    s.finish()
}

fn location() -> (Vec<Arc<CommittedEvent>>, State) {
    let spec = spec(2);
    let insp = person(&spec, 3, Role::Inspector, "Петрова А. С.", "desktop");
    let biz = person(&spec, 4, Role::Business, "ИП Лютиков", "android");
    let mut s = Script::new(&spec);
    s.connect(1.0, 1, &insp, desktop());
    s.connect(2.0, 2, &biz, phone());
    s.op(1.0, &insp, json!({"kind": "start"}));
    // On site, wandering a little, accuracy varying as a real receiver's does.
    s.fix(2.0, &biz, 3.0, 8.7);
    s.fix(5.0, &biz, 4.2, 9.3);
    s.fix(5.0, &biz, 2.6, 7.9);
    // The fix is lost for a while, then comes back.
    s.op(
        5.0,
        &biz,
        json!({"kind": "location_unavailable", "reason": "timeout"}),
    );
    s.op(
        70.0,
        &biz,
        json!({"kind": "location_unavailable", "reason": "unavailable"}),
    );
    s.fix(5.0, &biz, 3.3, 8.1);
    // Presence replaces the previous report whole.
    s.op(1.0, &biz, json!({"kind": "presence", "quality": "good", "rtt_ms": 85, "network": "wifi", "visible": true}));
    s.op(
        20.0,
        &biz,
        json!({"kind": "presence", "quality": "poor", "visible": false}),
    );
    // A teleport 600 km away ten seconds later.
    s.fix(10.0, &biz, 600_000.0, 9.0);
    // The desktop inspector refuses location access.
    s.op(
        1.0,
        &insp,
        json!({"kind": "location_unavailable", "reason": "permission_denied"}),
    );
    // The phone reconnects: a new join, the earlier leave stays on record.
    s.leave(3.0, 2);
    s.connect(20.0, 3, &biz, phone());
    s.fix(2.0, &biz, 600_003.0, 9.4);
    s.op(30.0, &insp, json!({"kind": "finish"}));
    s.finish()
}

fn cancelled() -> (Vec<Arc<CommittedEvent>>, State) {
    let spec = spec(3);
    let insp = person(&spec, 5, Role::Inspector, "Сидоров П. П.", "desktop");
    let biz = person(&spec, 6, Role::Business, "ООО «Василёк»", "ios");
    let admin = person(&spec, 7, Role::Inspector, "Администратор", "api");
    let mut s = Script::new(&spec);
    s.connect(1.0, 1, &insp, desktop());
    s.connect(4.0, 2, &biz, phone());
    s.op(2.0, &insp, json!({"kind": "start"}));
    s.op(
        10.0,
        &insp,
        json!({"kind": "set_result", "item_id": "q1", "result": "compliant"}),
    );
    // Cancelled while live through the REST API (a server-side call, no op id).
    s.api(
        60.0,
        &admin,
        json!({"kind": "cancel", "reason": "technical_failure",
        "note": "Связь с объектом прерывается"}),
    );
    // Refused from now on: not in the log.
    s.op(
        1.0,
        &insp,
        json!({"kind": "set_result", "item_id": "q2", "result": "violation"}),
    );
    s.op(
        1.0,
        &biz,
        json!({"kind": "comment", "item_id": "q1", "text": "Мы на связи"}),
    );
    // Presence is still recorded.
    s.op(1.0, &biz, json!({"kind": "presence", "quality": "poor"}));
    s.leave(5.0, 2);
    s.leave(1.0, 1);
    s.finish()
}

fn cancelled_before_start() -> (Vec<Arc<CommittedEvent>>, State) {
    let spec = spec(4);
    let insp = person(&spec, 8, Role::Inspector, "Иванов И. И.", "desktop");
    let mut s = Script::new(&spec);
    s.connect(1.0, 1, &insp, desktop());
    s.op(
        30.0,
        &insp,
        json!({"kind": "cancel", "reason": "rescheduled"}),
    );
    s.op(1.0, &insp, json!({"kind": "start"}));
    s.leave(1.0, 1);
    s.finish()
}

/// A phone whose browser has no WebRTC and no location service joins (issue 17), leaves,
/// and comes back from a browser that has both: a participant's `missing` is its last join's
/// (the inspector's, still online, keeps its own).
fn missing_features() -> (Vec<Arc<CommittedEvent>>, State) {
    let spec = spec(8);
    let insp = person(&spec, 14, Role::Inspector, "Иванов И. И.", "desktop");
    let biz = person(&spec, 15, Role::Business, "ООО «Ромашка»", "phone");
    let mut s = Script::new(&spec);
    // The inspector's desktop browser has no geolocation: it stays listed till the end.
    s.connect(
        1.0,
        1,
        &insp,
        ClientInfo {
            missing: vec![MissingFeature::Geolocation],
            ..desktop()
        },
    );
    s.connect(
        5.0,
        2,
        &biz,
        ClientInfo {
            missing: vec![MissingFeature::Webrtc, MissingFeature::Geolocation],
            ..phone()
        },
    );
    s.leave(20.0, 2);
    s.connect(5.0, 3, &biz, phone());
    s.leave(5.0, 3);
    s.finish()
}

/// A finished inspection's act: formed from the log's head, signed by the official, refused by
/// the business; what the rules refuse is not in the log.
fn act() -> (Vec<Arc<CommittedEvent>>, State) {
    let spec = spec(6);
    let insp = person(&spec, 10, Role::Inspector, "Иванов И. И.", "desktop");
    let biz = person(&spec, 11, Role::Business, "ООО «Ромашка»", "android");
    let mut s = Script::new(&spec);
    s.connect(1.0, 1, &insp, desktop());
    s.connect(3.0, 2, &biz, phone());
    s.op(2.0, &insp, json!({"kind": "start"}));
    s.op(
        10.0,
        &insp,
        json!({"kind": "set_result", "item_id": "q1", "result": "violation",
        "violation": "Огнетушитель не проверен"}),
    );
    s.op(
        5.0,
        &insp,
        json!({"kind": "set_result", "item_id": "q2", "result": "compliant"}),
    );
    // Refused while live: the act is formed from a finished log only.
    let formed = |head: &CommittedEvent| {
        json!({"kind": "act_formed", "sha256": "5e".repeat(32), "size": 48_213,
        "head_seq": head.seq, "head_hash": head.hash, "language": "ru"})
    };
    let early = formed(s.log.last().expect("events"));
    s.api(1.0, &insp, early);
    s.op(20.0, &insp, json!({"kind": "finish"}));
    s.leave(2.0, 2);
    s.leave(1.0, 1);
    let head = formed(s.log.last().expect("events"));
    s.api(30.0, &insp, head.clone());
    // Formed twice: refused.
    s.api(1.0, &insp, head);
    let signed = |role: &str, name: &str, n: u8| {
        json!({"kind": "act_signed", "act_sha256": "5e".repeat(32), "role": role, "signer": name,
        "certificate_sha256": format!("{n:02x}").repeat(32),
        "signature_sha256": format!("{:02x}", n + 1).repeat(32), "scheme": "p256-webcrypto-cms"})
    };
    s.api(
        60.0,
        &insp,
        signed("official", "Иванов Иван Иванович", 0xa0),
    );
    // Signed twice, and the inspector signing for the business: refused.
    s.api(5.0, &insp, signed("official", "Иванов Иван Иванович", 0xb0));
    s.api(1.0, &insp, signed("business", "ООО «Ромашка»", 0xc0));
    s.api(
        120.0,
        &biz,
        json!({"kind": "act_refused", "act_sha256": "5e".repeat(32), "role": "business",
        "signer": "ООО «Ромашка»", "reason": "Не согласны с пунктом 1.1: огнетушитель проверен"}),
    );
    // From a socket: refused whatever it says.
    s.op(1.0, &biz, signed("business", "ООО «Ромашка»", 0xd0));
    s.finish()
}

/// The parties' ratings after the end: given, changed, and the refusals the room makes.
fn ratings() -> (Vec<Arc<CommittedEvent>>, State) {
    let spec = spec(7);
    let insp = person(&spec, 12, Role::Inspector, "Иванов И. И.", "desktop");
    let biz = person(&spec, 13, Role::Business, "ООО «Ромашка»", "android");
    let mut s = Script::new(&spec);
    s.connect(1.0, 1, &insp, desktop());
    s.connect(3.0, 2, &biz, phone());
    s.op(2.0, &insp, json!({"kind": "start"}));
    let rating = |side: &str, score: u8, revises: Option<u64>| {
        let mut v = json!({"kind": "rating", "side": side, "criteria_version": 1,
            "scores": [{"criterion": "courtesy", "score": score},
                       {"criterion": "clarity", "score": 8}]});
        if score < 5 {
            v["scores"][0]["reasons"] = json!(["rude_tone"]);
            v["scores"][0]["note"] = json!("Повысили голос");
        }
        if let Some(r) = revises {
            v["revises"] = json!(r);
        }
        v
    };
    // Refused while live: a rating follows an event that took place.
    s.api(5.0, &biz, rating("business", 9, None));
    s.op(20.0, &insp, json!({"kind": "finish"}));
    s.leave(2.0, 2);
    s.leave(1.0, 1);
    s.api(60.0, &biz, rating("business", 3, None));
    let first = s.log.last().expect("events").seq;
    // Twice, on the other side's behalf, a change of no rating: refused.
    s.api(5.0, &biz, rating("business", 7, None));
    s.api(1.0, &biz, rating("inspector", 7, None));
    s.api(1.0, &insp, rating("inspector", 7, Some(first)));
    s.api(30.0, &insp, rating("inspector", 6, None));
    // The business changes its rating; a change of an old version is refused.
    s.api(600.0, &biz, rating("business", 5, Some(first)));
    s.api(1.0, &biz, rating("business", 6, Some(first)));
    // From a socket: refused whatever it says.
    s.op(1.0, &biz, rating("business", 10, None));
    s.finish()
}

/// Verdicts as the assessor wrote them before signals became codes.
fn legacy_verdicts() -> (Vec<Arc<CommittedEvent>>, State) {
    let spec = spec(5);
    let biz = Uuid::from_u128(0x2009);
    let signal = |name: &str, value: Value, severity, ru: &str, en: &str| Signal {
        name: name.into(),
        value,
        severity,
        explanation_ru: Some(ru.into()),
        explanation_en: Some(en.into()),
    };
    let bodies = vec![
        EventBody::Join(JoinInfo {
            role: Role::Business,
            display_name: "ООО «Ромашка»".into(),
            device: "android".into(),
            client: phone(),
        }),
        EventBody::Op(Operation::decode(&json!({"kind": "location", "lat": 55.7577,
            "lon": 37.613, "accuracy": 8.5, "device_ts": T0 / 1000 + 4_700})).expect("location")),
        EventBody::Verdict(Verdict {
            level: TrustLevel::Trusted,
            signals: vec![
                signal("on_site", json!({"distance_m": 3.0, "accuracy_m": 9.0, "radius_m": 300.0}),
                    Severity::Info, "В 3 м от объекта проверки (точность 9 м).",
                    "Within 3 m of the inspection site (accuracy 9 m)."),
            ],
        }),
        EventBody::Verdict(Verdict {
            level: TrustLevel::Suspicious,
            signals: vec![
                signal("emulator", json!(["hint: emulator_gpu", "platform: Linux x86_64"]),
                    Severity::Suspicious,
                    "Признаки эмулятора телефона (hint: emulator_gpu; platform: Linux x86_64); в эмуляторе местоположение задаётся вручную.",
                    "Signs of a phone emulator (hint: emulator_gpu; platform: Linux x86_64); an emulator's location is set by hand."),
                signal("on_site", json!({"distance_m": 4.0, "accuracy_m": 9.0, "radius_m": 300.0}),
                    Severity::Info, "В 4 м от объекта проверки (точность 9 м).",
                    "Within 4 m of the inspection site (accuracy 9 m)."),
            ],
        }),
    ];
    let mut log = Vec::new();
    let mut state = State::default();
    let mut prev = GENESIS_HASH.to_string();
    for (i, body) in bodies.into_iter().enumerate() {
        let ev = Event {
            seq: i as u64 + 1,
            server_ts: T0 + 5_000_000 * (i as i64 + 1),
            participant_id: biz,
            client_op_id: None,
            device_time: None,
            clock_offset_ms: None,
            body,
        };
        let sealed = CommittedEvent::seal(spec.inspection_id, &ev, &prev);
        prev = sealed.hash.clone();
        state.apply(&ev);
        log.push(Arc::new(sealed));
    }
    (log, state)
}

/// One line of the exported log (`checklist_sync::export_jsonl`'s format).
fn line(e: &CommittedEvent) -> Value {
    json!({
        "inspection_id": e.inspection_id,
        "seq": e.seq,
        "server_ts": e.server_ts_micros,
        "server_time": chrono::DateTime::from_timestamp_micros(e.server_ts_micros)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        "participant_id": e.participant_id,
        "client_op_id": e.client_op_id,
        "kind": e.kind,
        "payload": e.payload,
        "payload_text": e.payload_text,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}

fn write(dir: &Path, name: &str, (log, state): (Vec<Arc<CommittedEvent>>, State)) {
    let mut text = String::new();
    for e in &log {
        text.push_str(&line(e).to_string());
        text.push('\n');
    }
    let jsonl = dir.join(format!("{name}.jsonl"));
    std::fs::write(&jsonl, text).unwrap_or_else(|e| panic!("{}: {e}", jsonl.display()));
    let state = serde_json::to_string_pretty(&state).expect("state serializes") + "\n";
    let path = dir.join(format!("{name}.state.json"));
    std::fs::write(&path, state).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    println!("{name}: {} events", log.len());
}

/// An on-site inspection from the phone's offline queue: queued ops with device times and
/// the batch's clock offset, a free-form finding with a photo bound to it by its seq (the
/// server makes that event after the upload), and a result from another device.
fn onsite() -> (Vec<Arc<CommittedEvent>>, State) {
    let spec = spec(7);
    let insp = person(&spec, 13, Role::Inspector, "Сидоров П. П.", "android");
    let mut s = Script::new(&spec);
    let behind = 7200.0;
    s.queued(1.0, &insp, json!({"kind": "start"}), 600.0, behind);
    s.queued(
        0.1,
        &insp,
        json!({"kind": "set_result", "item_id": "q1", "result": "compliant"}),
        590.0,
        behind,
    );
    for (i, ago) in [580.0, 550.0, 520.0].into_iter().enumerate() {
        let t = (s.now / 1000) - ((ago + behind) * 1e3) as i64;
        s.queued(
            0.1,
            &insp,
            json!({"kind": "location", "lat": SITE.lat + 0.00004 * i as f64,
            "lon": SITE.lon, "accuracy": 7.3 + 0.4 * i as f64, "device_ts": t}),
            ago,
            behind,
        );
    }
    s.queued(0.1, &insp, json!({"kind": "finding", "text": "Запасной выход загромождён",
        "location": {"lat": SITE.lat, "lon": SITE.lon, "accuracy": 6.0, "device_ts": (s.now / 1000) - 8_000_000}}), 500.0, behind);
    let finding_seq = s
        .log
        .iter()
        .rev()
        .find(|e| e.kind == "finding")
        .map(|e| e.seq)
        .expect("the finding is logged");
    s.api(2.0, &insp, json!({"kind": "attach_evidence", "finding_seq": finding_seq, "evidence": {"id": "ph-f1",
        "kind": "photo", "sha256": "4e3d2c1b0a9988779f2c7b0c5d1e4a3f6b8d2e1c0a9f8e7d6c5b4a3928171605",
        "size": 48213, "media_type": "image/jpeg", "width": 640, "height": 480, "captured_at": 1_795_417_000_000_i64}}));
    s.api(1.0, &insp, json!({"kind": "attach_evidence", "item_id": "q2", "evidence": {"id": "ph-q2",
        "kind": "photo", "sha256": "0a9988779f2c7b0c5d1e4a3f6b8d2e1c0a9f8e7d6c5b4a39281716054e3d2c1b",
        "size": 30111, "media_type": "image/jpeg", "width": 640, "height": 480}}));
    // Refused: no finding at that seq (not in the log, not in the state).
    s.api(1.0, &insp, json!({"kind": "attach_evidence", "finding_seq": 1, "evidence": {"id": "ph-x",
        "kind": "photo", "sha256": "0a9988779f2c7b0c5d1e4a3f6b8d2e1c0a9f8e7d6c5b4a39281716054e3d2c1b"}}));
    s.queued(3.0, &insp, json!({"kind": "finish"}), 10.0, behind);
    s.finish()
}

/// Guiding the camera (issue 25): the phone's report, the inspector's commands (a refused
/// one too), pointers past the kept eight, a photo that names its pointer, the phone's own
/// override.
fn camera() -> (Vec<Arc<CommittedEvent>>, State) {
    let spec = spec(10);
    let insp = person(&spec, 21, Role::Inspector, "Иванов И. И.", "desktop");
    let biz = person(&spec, 22, Role::Business, "ООО «Ромашка»", "android");
    let mut s = Script::new(&spec);
    s.connect(1.0, 1, &insp, desktop());
    s.connect(2.0, 2, &biz, phone());
    s.op(1.0, &biz, json!({"kind": "camera_caps",
        "caps": {"facing": ["environment", "user"], "torch": true, "zoom": {"min": 1.0, "max": 5.0, "step": 0.1}},
        "settings": {"facing": "environment", "torch": false, "zoom": 1.0}}));
    s.op(1.0, &insp, json!({"kind": "start"}));
    s.op(
        2.0,
        &insp,
        json!({"kind": "camera", "capability": "torch", "value": true}),
    );
    s.op(
        1.0,
        &insp,
        json!({"kind": "camera", "capability": "zoom", "value": 2.5}),
    );
    // Refused: outside the reported range, and not reported at all.
    s.op(
        1.0,
        &insp,
        json!({"kind": "camera", "capability": "zoom", "value": 7.0}),
    );
    s.op(
        1.0,
        &insp,
        json!({"kind": "camera", "capability": "focus", "value": {"x": 0.5, "y": 0.5}}),
    );
    s.op(
        1.0,
        &insp,
        json!({"kind": "camera", "capability": "facing", "value": "user"}),
    );
    for i in 0..9 {
        let mut p = json!({"kind": "pointer", "at": {"x": 0.1 * f64::from(i), "y": 0.5}});
        if i == 8 {
            p["from"] = json!({"x": 0.2, "y": 0.2});
            p["text"] = json!("покажите табличку на огнетушителе");
        }
        s.op(1.0, &insp, p);
    }
    let pointer = s
        .log
        .iter()
        .rev()
        .find(|e| e.kind == "pointer")
        .map(|e| e.seq)
        .expect("the pointer is logged");
    let kept = s
        .room
        .snapshot()
        .state
        .camera
        .as_ref()
        .and_then(|c| c.pointer_at(pointer).cloned())
        .expect("the latest pointer is kept");
    s.api(1.0, &biz, json!({"kind": "attach_evidence", "item_id": "q1", "evidence": {"id": "ph-cam",
        "kind": "photo", "sha256": "4e3d2c1b0a9988779f2c7b0c5d1e4a3f6b8d2e1c0a9f8e7d6c5b4a3928171605",
        "size": 48213, "media_type": "image/jpeg", "width": 1280, "height": 720,
        "pointer": serde_json::to_value(kept).expect("a pointer serializes")}}));
    // The phone's user turns the torch off himself: the report is the truth from now on.
    s.op(2.0, &biz, json!({"kind": "camera_caps",
        "caps": {"facing": ["environment", "user"], "torch": true, "zoom": {"min": 1.0, "max": 5.0, "step": 0.1}},
        "settings": {"facing": "user", "torch": false, "zoom": 2.5}}));
    s.op(3.0, &insp, json!({"kind": "finish"}));
    s.finish()
}

/// Low-bandwidth mode (issue 19): the phone's presence says stills and why, its stills are
/// `frame` events the server submits, the inspector asks for one; back to video at the end.
fn stills() -> (Vec<Arc<CommittedEvent>>, State) {
    let spec = spec(11);
    let insp = person(&spec, 23, Role::Inspector, "Иванов И. И.", "desktop");
    let biz = person(&spec, 24, Role::Business, "ООО «Ромашка»", "android");
    let mut s = Script::new(&spec);
    s.connect(1.0, 1, &insp, desktop());
    s.connect(2.0, 2, &biz, phone());
    s.op(1.0, &insp, json!({"kind": "start"}));
    s.op(
        1.0,
        &biz,
        json!({"kind": "presence", "quality": "good", "rtt_ms": 80, "video_mode": "video"}),
    );
    s.op(
        9.0,
        &biz,
        json!({"kind": "presence", "quality": "poor", "rtt_ms": 420, "network": "3g",
        "video_mode": "stills", "stills_reason": "narrow"}),
    );
    let frame = |id: &str, sha: char, reason: &str, at: i64| {
        json!({"kind": "frame", "reason": reason, "evidence": {"id": id, "kind": "frame",
            "sha256": sha.to_string().repeat(64), "size": 151_204, "media_type": "image/jpeg",
            "width": 1280, "height": 720, "received_at": at, "at_micros": at}})
    };
    s.api(
        0.2,
        &biz,
        frame("fr-1", 'a', "low_bandwidth", 1_700_000_016_000_000),
    );
    s.op(3.0, &insp, json!({"kind": "request_frame"}));
    s.api(
        0.5,
        &biz,
        frame("fr-2", 'b', "requested", 1_700_000_019_700_000),
    );
    s.api(
        2.0,
        &biz,
        frame("fr-3", 'c', "low_bandwidth", 1_700_000_021_700_000),
    );
    s.op(
        15.0,
        &biz,
        json!({"kind": "presence", "quality": "fair", "video_mode": "video"}),
    );
    s.op(3.0, &insp, json!({"kind": "finish"}));
    s.finish()
}

fn main() {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/data/folds".into())
        .into();
    std::fs::create_dir_all(&dir).expect("fixture directory");
    write(&dir, "checklist", checklist());
    write(&dir, "location", location());
    write(&dir, "cancelled", cancelled());
    write(&dir, "cancelled_before_start", cancelled_before_start());
    write(&dir, "legacy_verdicts", legacy_verdicts());
    write(&dir, "act", act());
    write(&dir, "ratings", ratings());
    write(&dir, "onsite", onsite());
    write(&dir, "missing_features", missing_features());
    write(&dir, "camera", camera());
    write(&dir, "stills", stills());
}

//! Integration tests over real WebSockets against the dev server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use checklist_sync::{
    export_jsonl, verify, BrokenReason, CommittedEvent, ItemResult, Operation, Principal,
    Projection, Role, SyncConfig,
};
use common::{devserver, item_result, next_json, raw_connect, Client, TestDb};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

async fn server(config: SyncConfig) -> (TestDb, devserver::DevServer) {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let srv = devserver::start(pool, config, None, 10, "127.0.0.1:0")
        .await
        .expect("server");
    (db, srv)
}

async fn count_events(pool: &sqlx::AnyPool, id: Uuid) -> i64 {
    use sqlx::Row;
    let row = sqlx::query("SELECT COUNT(*) FROM events WHERE inspection_id = $1")
        .bind(id.to_string())
        .fetch_one(pool)
        .await
        .expect("count");
    row.try_get::<i64, _>(0).expect("count column")
}

#[tokio::test]
async fn results_appear_on_the_other_side_acked_after_commit() {
    let (_db, srv) = server(SyncConfig::default()).await;
    let id = Uuid::new_v4();
    let mut marks = srv.hub.events();
    let mut insp = Client::connect(srv.addr, id, Uuid::new_v4(), "inspector").await;
    assert_eq!(insp.welcome["you"]["role"], "inspector");
    assert_eq!(
        insp.welcome["checklist"]
            .as_array()
            .expect("checklist")
            .len(),
        10
    );
    let mut biz = Client::connect(srv.addr, id, Uuid::new_v4(), "business").await;

    let ack = insp.op("s1", json!({"kind": "start"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let ack = insp
        .op(
            "r1",
            json!({"kind": "set_result", "item_id": "q3", "result": "violation",
                   "comment": "Нет огнетушителя", "violation": "Огнетушитель отсутствует"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let seq = ack["seq"].as_u64().expect("seq");
    let ts = ack["server_ts"].as_i64().expect("server_ts");
    // Acknowledged means durable: the row is in the database already.
    assert_eq!(count_events(&srv.pool, id).await as u64, seq);

    biz.sync_to(seq).await;
    let item = &biz.state.items["q3"];
    assert_eq!(item.result, Some(ItemResult::Violation));
    assert_eq!(item.comment.as_deref(), Some("Нет огнетушителя"));
    assert_eq!(item.violation.as_deref(), Some("Огнетушитель отсутствует"));
    assert_eq!(item.result_ts, Some(ts));
    // Presence: both are online and known to each other.
    assert_eq!(biz.state.participants.len(), 2);
    assert!(biz.state.participants.values().all(|p| p.online));

    // The business may comment, send its location and presence, but not set results.
    let a = biz
        .op(
            "c1",
            json!({"kind": "comment", "item_id": "q3", "text": "Купим сегодня"}),
        )
        .await;
    assert_eq!(a["type"], "ack", "{a}");
    let a = biz
        .op(
            "l1",
            json!({"kind": "location", "lat": 55.75, "lon": 37.61, "accuracy": 12.5,
                          "altitude": null, "heading": 90.0, "speed": 0.0, "device_ts": now_ms()}),
        )
        .await;
    assert_eq!(a["type"], "ack", "{a}");
    let a = biz
        .op(
            "p1",
            json!({"kind": "presence", "quality": "poor", "rtt_ms": 480, "network": "cellular"}),
        )
        .await;
    assert_eq!(a["type"], "ack", "{a}");
    let e = biz.op("r2", item_result("q1", "compliant")).await;
    assert_eq!(e["code"], "forbidden", "{e}");

    let last = a["seq"].as_u64().expect("seq");
    insp.sync_to(last).await;
    biz.sync_to(last).await;
    assert_eq!(insp.state, biz.state);
    let snap = srv.hub.snapshot(id).await.expect("snapshot");
    assert_eq!(snap.seq, last);
    assert_eq!(snap.state, insp.state);
    let bp = &insp.state.participants[&biz.pid];
    assert_eq!(bp.location.as_ref().map(|l| l.sample.lat), Some(55.75));
    assert_eq!(bp.network.as_deref(), Some("cellular"));

    // The lead's mark feed sees the result.
    let mut found = false;
    while let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_millis(200), marks.recv()).await {
        if let Some(m) = ev.item_result() {
            assert_eq!(m.item_id, "q3");
            assert_eq!(m.result, ItemResult::Violation);
            assert_eq!(ev.server_ts_micros, ts);
            found = true;
        }
    }
    assert!(found, "set_result reached SyncHub::events");

    // Leaving is seen by the other side.
    drop(biz.ws);
    let left = loop {
        let v = insp.recv().await.expect("open");
        if v["kind"] == "leave" {
            break v;
        }
    };
    assert_eq!(left["payload"]["reason"], "closed");
    assert!(!insp.state.participants[&biz.pid].online);
    assert!(verify(&srv.pool, id).await.expect("verify").is_intact());
}

#[tokio::test]
async fn bad_input_gets_stable_codes_changes_nothing_and_keeps_the_socket() {
    let (_db, srv) = server(SyncConfig::default()).await;
    let id = Uuid::new_v4();
    let mut ws = raw_connect(srv.addr, id, Uuid::new_v4(), "business").await;
    // Before hello.
    ws.send(Message::Text(
        json!({"type": "op", "op_id": "x", "op": {"kind": "start"}})
            .to_string()
            .into(),
    ))
    .await
    .expect("send");
    assert_eq!(
        next_json(&mut ws).await.expect("open")["code"],
        "hello_required"
    );
    ws.send(Message::Text(
        json!({"type": "hello", "protocol": 2}).to_string().into(),
    ))
    .await
    .expect("send");
    assert_eq!(
        next_json(&mut ws).await.expect("open")["code"],
        "protocol_unsupported"
    );
    drop(ws);

    let mut insp = Client::connect(srv.addr, id, Uuid::new_v4(), "inspector").await;
    assert_eq!(insp.op("s", json!({"kind": "start"})).await["type"], "ack");
    let mut biz = Client::connect(srv.addr, id, Uuid::new_v4(), "business").await;
    biz.await_online().await;
    let before = srv.hub.snapshot(id).await.expect("snapshot");
    let rows_before = count_events(&srv.pool, id).await;

    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "bad_json"),
        ("[1,2,3]".into(), "bad_json"),
        (json!({"kind": "op"}).to_string(), "bad_message"),
        (json!({"type": "teleport"}).to_string(), "unknown_type"),
        (json!({"type": "op", "op_id": "a1", "op": {"kind": "delete_everything"}}).to_string(), "unknown_op"),
        (json!({"type": "op", "op_id": "a2", "op": {"kind": "comment", "item_id": "nope", "text": "x"}}).to_string(), "unknown_item"),
        (json!({"type": "op", "op_id": "a3", "op": {"kind": "set_result", "item_id": "q1", "result": "compliant"}}).to_string(), "forbidden"),
        (json!({"type": "op", "op_id": "a4", "op": {"kind": "start"}}).to_string(), "forbidden"),
        (json!({"type": "op", "op_id": "a5", "op": {"kind": "location", "lat": 91.0, "lon": 0.0, "accuracy": 1.0, "device_ts": 1}}).to_string(), "invalid_field"),
        (json!({"type": "op", "op_id": "a6", "op": {"kind": "comment", "item_id": "q1"}}).to_string(), "bad_message"),
        (json!({"type": "op", "op_id": "bad id!", "op": {"kind": "comment", "item_id": "q1", "text": "x"}}).to_string(), "invalid_field"),
        (json!({"type": "op", "op_id": "a7", "op": {"kind": "set_result", "item_id": "q1", "result": "maybe"}}).to_string(), "bad_message"),
        (json!({"type": "op", "op_id": "a8", "op": {"kind": "comment", "item_id": "q1", "text": "x".repeat(70_000)}}).to_string(), "frame_too_large"),
        (json!({"type": "hello", "protocol": 1}).to_string(), "hello_repeated"),
    ];
    for (frame, code) in &cases {
        biz.ws
            .send(Message::Text(frame.clone().into()))
            .await
            .expect("send");
        let v = biz.recv_reply().await.expect("socket stays open");
        assert_eq!(v["type"], "error", "{frame}: {v}");
        assert_eq!(v["code"], *code, "{}: {v}", &frame[..frame.len().min(80)]);
    }
    biz.ws
        .send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .expect("send");
    assert_eq!(
        biz.recv_reply().await.expect("open")["code"],
        "binary_not_supported"
    );
    // An inspector's item op with a violation description on a compliant result.
    let e = insp
        .op(
            "bad-viol",
            json!({"kind": "set_result", "item_id": "q1", "result": "compliant", "violation": "x"}),
        )
        .await;
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("invalid_field"), Some("violation"))
    );

    // Nothing changed, and the socket still works.
    let after = srv.hub.snapshot(id).await.expect("snapshot");
    assert_eq!(before, after);
    assert_eq!(rows_before, count_events(&srv.pool, id).await);
    biz.send(json!({"type": "ping", "t": 7})).await;
    let pong = biz.recv_reply().await.expect("open");
    assert_eq!(
        (pong["type"].as_str(), pong["t"].as_i64()),
        (Some("pong"), Some(7))
    );
    let ok = biz
        .op(
            "fine",
            json!({"kind": "comment", "item_id": "q1", "text": "ok"}),
        )
        .await;
    assert_eq!(ok["type"], "ack", "{ok}");
}

/// A read model for the tests: the lifecycle phase per inspection in its own table, written
/// in the writer's transaction, with a switch that makes it fail on `finish`.
struct StatusTable {
    fail_finish: std::sync::atomic::AtomicBool,
    after_commit: std::sync::Mutex<Vec<(Uuid, u64, String)>>,
}

impl StatusTable {
    async fn create(pool: &sqlx::AnyPool) -> Arc<StatusTable> {
        sqlx::query(
            "CREATE TABLE test_status (inspection_id TEXT PRIMARY KEY, status TEXT NOT NULL)",
        )
        .execute(pool)
        .await
        .expect("create test_status");
        Arc::new(StatusTable {
            fail_finish: false.into(),
            after_commit: Default::default(),
        })
    }

    fn failing(&self, on: bool) {
        self.fail_finish
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl Projection for StatusTable {
    async fn apply(
        &self,
        tx: &mut sqlx::AnyConnection,
        events: &[Arc<CommittedEvent>],
    ) -> Result<(), sqlx::Error> {
        for e in events {
            let status = match e.kind.as_str() {
                "start" => "live",
                "finish" => "finished",
                "cancel" => "cancelled",
                _ => continue,
            };
            if status == "finished" && self.fail_finish.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(sqlx::Error::Protocol("injected projection failure".into()));
            }
            sqlx::query("DELETE FROM test_status WHERE inspection_id = $1")
                .bind(e.inspection_id.to_string())
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO test_status (inspection_id, status) VALUES ($1, $2)")
                .bind(e.inspection_id.to_string())
                .bind(status)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    fn committed(&self, events: &[Arc<CommittedEvent>]) {
        let mut seen = self.after_commit.lock().expect("lock");
        seen.extend(
            events
                .iter()
                .map(|e| (e.inspection_id, e.seq, e.kind.clone())),
        );
    }
}

async fn projected(pool: &sqlx::AnyPool, id: Uuid) -> Option<String> {
    use sqlx::Row;
    sqlx::query("SELECT status FROM test_status WHERE inspection_id = $1")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await
        .expect("read test_status")
        .map(|r| r.try_get(0).expect("status column"))
}

async fn kinds(pool: &sqlx::AnyPool, id: Uuid) -> Vec<String> {
    checklist_sync::read_events(pool, id)
        .await
        .expect("read events")
        .iter()
        .map(|e| e.body.kind().to_string())
        .collect()
}

#[tokio::test]
async fn lifecycle_rules_and_refusals() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let table = StatusTable::create(&pool).await;
    let srv = devserver::start(
        pool,
        SyncConfig::default(),
        Some(table.clone()),
        5,
        "127.0.0.1:0",
    )
    .await
    .expect("server");
    let id = Uuid::new_v4();
    let mut insp = Client::connect(srv.addr, id, Uuid::new_v4(), "inspector").await;
    let mut biz = Client::connect(srv.addr, id, Uuid::new_v4(), "business").await;
    assert_eq!(
        insp.op("1", item_result("q1", "compliant")).await["code"],
        "not_live"
    );
    assert_eq!(
        insp.op("2", json!({"kind": "finish"})).await["code"],
        "not_live"
    );
    assert_eq!(
        biz.op("b1", json!({"kind": "cancel"})).await["code"],
        "forbidden"
    );
    assert_eq!(projected(&srv.pool, id).await, None);
    assert_eq!(insp.op("3", json!({"kind": "start"})).await["type"], "ack");
    // Acknowledged means the read model is committed too.
    assert_eq!(projected(&srv.pool, id).await.as_deref(), Some("live"));
    assert_eq!(
        insp.op("4", json!({"kind": "start"})).await["code"],
        "already_started"
    );

    // The commit of `finish` fails: nothing of it is anywhere, and the read model still
    // agrees with the log.
    table.failing(true);
    let e = insp.op("5", json!({"kind": "finish"})).await;
    assert_eq!(e["code"], "internal", "{e}");
    assert_eq!(projected(&srv.pool, id).await.as_deref(), Some("live"));
    assert!(!kinds(&srv.pool, id).await.contains(&"finish".to_string()));
    assert!(
        !table
            .after_commit
            .lock()
            .expect("lock")
            .iter()
            .any(|(_, _, k)| k == "finish"),
        "no after-commit step for what was not committed"
    );
    // The room reloaded from the database: the inspection is live, and the retry (same op id,
    // as a client resends it) is applied once the fault is gone.
    table.failing(false);
    let mut insp = insp.reconnect().await;
    assert_eq!(
        insp.state.lifecycle.status,
        checklist_sync::state::Status::Live
    );
    let ack = insp.op("5", json!({"kind": "finish"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(projected(&srv.pool, id).await.as_deref(), Some("finished"));
    let finish_seq = ack["seq"].as_u64().expect("seq");
    assert!(table.after_commit.lock().expect("lock").contains(&(
        id,
        finish_seq,
        "finish".to_string()
    )));
    assert_eq!(
        insp.op("6", json!({"kind": "cancel"})).await["code"],
        "already_finished"
    );
    assert_eq!(
        insp.op("7", item_result("q1", "compliant")).await["code"],
        "already_finished"
    );
    drop(biz);

    // Server-side submit goes through the same sequencer and the same rules.
    let id = Uuid::new_v4();
    let mut insp = Client::connect(srv.addr, id, Uuid::new_v4(), "inspector").await;
    assert_eq!(insp.op("s", json!({"kind": "start"})).await["type"], "ack");
    let who = Principal {
        inspection_id: id,
        participant_id: insp.pid,
        role: Role::Inspector,
        display_name: "i".into(),
        device: "desktop".into(),
    };
    let spec = devserver::spec(id, 5);
    let ev = srv
        .hub
        .submit(
            &who,
            &spec,
            Operation::Comment {
                item_id: "q2".into(),
                text: "via REST".into(),
            },
            Some("rest-1".into()),
        )
        .await
        .expect("submit");
    assert_eq!(ev.kind, "comment");
    let dup = srv
        .hub
        .submit(
            &who,
            &spec,
            Operation::Comment {
                item_id: "q2".into(),
                text: "again".into(),
            },
            Some("rest-1".into()),
        )
        .await
        .expect_err("duplicate");
    assert_eq!(
        (dup.code.as_str(), dup.original.map(|o| o.0)),
        ("duplicate_op_id", Some(ev.seq))
    );
    insp.sync_to(ev.seq).await;
    assert_eq!(insp.state.items["q2"].comments.len(), 1);
}

#[tokio::test]
async fn a_cancelled_inspection_refuses_every_checklist_operation() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let table = StatusTable::create(&pool).await;
    let srv = devserver::start(pool, SyncConfig::default(), Some(table), 5, "127.0.0.1:0")
        .await
        .expect("server");
    let id = Uuid::new_v4();
    let mut insp = Client::connect(srv.addr, id, Uuid::new_v4(), "inspector").await;
    let mut biz = Client::connect(srv.addr, id, Uuid::new_v4(), "business").await;
    assert_eq!(insp.op("s", json!({"kind": "start"})).await["type"], "ack");
    assert_eq!(
        insp.op("r1", item_result("q1", "violation")).await["type"],
        "ack"
    );
    // Cancelled while live, by a server-side call (the REST path), with a reason code.
    let who = Principal {
        inspection_id: id,
        participant_id: Uuid::new_v4(),
        role: Role::Inspector,
        display_name: "admin".into(),
        device: "api".into(),
    };
    let ev = srv
        .hub
        .submit(
            &who,
            &devserver::spec(id, 5),
            Operation::Cancel {
                reason: Some(checklist_sync::CancelReason::TechnicalFailure),
                note: Some("связь не установилась".into()),
            },
            None,
        )
        .await
        .expect("cancel");
    assert_eq!(
        (ev.kind.as_str(), &ev.payload),
        (
            "cancel",
            &json!({"reason": "technical_failure", "note": "связь не установилась"})
        )
    );
    assert_eq!(projected(&srv.pool, id).await.as_deref(), Some("cancelled"));
    let rows = count_events(&srv.pool, id).await;
    for (n, op) in [
        item_result("q2", "compliant"),
        item_result("q1", "clear"),
        json!({"kind": "comment", "item_id": "q1", "text": "ещё"}),
        json!({"kind": "request_photo", "item_id": "q1"}),
        json!({"kind": "start"}),
        json!({"kind": "finish"}),
        json!({"kind": "cancel"}),
    ]
    .into_iter()
    .enumerate()
    {
        let e = insp.op(&format!("after-{n}"), op.clone()).await;
        assert_eq!(e["code"], "cancelled", "{op}: {e}");
    }
    let e = biz
        .op(
            "b",
            json!({"kind": "comment", "item_id": "q1", "text": "?"}),
        )
        .await;
    assert_eq!(e["code"], "cancelled", "{e}");
    // Nor does the server attach evidence (an upload, a cut of the recording) any more.
    for kind in ["photo", "clip"] {
        let evidence = serde_json::from_value(json!({"id": kind, "kind": kind})).expect("evidence");
        let e = srv
            .hub
            .submit(
                &who,
                &devserver::spec(id, 5),
                Operation::AttachEvidence {
                    item_id: Some("q1".into()),
                    finding_seq: None,
                    evidence: Box::new(evidence),
                },
                None,
            )
            .await
            .expect_err("refused");
        assert_eq!(e.code, "cancelled", "{kind}");
    }
    assert_eq!(
        count_events(&srv.pool, id).await,
        rows,
        "refusals store nothing"
    );
    // Presence and location are still recorded: the call may go on while people leave.
    assert_eq!(
        biz.op("p", json!({"kind": "presence", "quality": "good"}))
            .await["type"],
        "ack"
    );
    let snap = srv.hub.snapshot(id).await.expect("snapshot");
    let lc = &snap.state.lifecycle;
    assert_eq!(lc.status, checklist_sync::state::Status::Cancelled);
    assert_eq!(
        (lc.cancelled_by, lc.cancel_reason, lc.cancel_note.as_deref()),
        (
            Some(who.participant_id),
            Some(checklist_sync::CancelReason::TechnicalFailure),
            Some("связь не установилась")
        )
    );
    // The result set before the cancellation stays in the state: it is evidence.
    assert_eq!(snap.state.items["q1"].result, Some(ItemResult::Violation));
    // Cancelling from scheduled works too.
    let id2 = Uuid::new_v4();
    let mut other = Client::connect(srv.addr, id2, Uuid::new_v4(), "inspector").await;
    assert_eq!(
        other
            .op("c", json!({"kind": "cancel", "reason": "rescheduled"}))
            .await["type"],
        "ack"
    );
    assert_eq!(
        other.op("s", json!({"kind": "start"})).await["code"],
        "cancelled"
    );
    assert_eq!(
        other
            .op("c2", json!({"kind": "cancel", "reason": "nonsense"}))
            .await["code"],
        "bad_message"
    );
}

#[tokio::test]
async fn duplicate_op_ids_apply_once_even_across_reconnects() {
    let (_db, srv) = server(SyncConfig::default()).await;
    let id = Uuid::new_v4();
    let mut insp = Client::connect(srv.addr, id, Uuid::new_v4(), "inspector").await;
    assert_eq!(
        insp.op("start", json!({"kind": "start"})).await["type"],
        "ack"
    );
    let op = json!({"kind": "comment", "item_id": "q1", "text": "once"});
    let a = insp.op("dup-1", op.clone()).await;
    assert_eq!(a["type"], "ack");
    let d = insp.op("dup-1", op.clone()).await;
    assert_eq!(d["code"], "duplicate_op_id");
    assert_eq!(d["seq"], a["seq"]);
    assert_eq!(d["server_ts"], a["server_ts"]);
    // Pipelined retries before the first is committed are answered once it is.
    insp.send(json!({"type": "op", "op_id": "dup-2", "op": op}))
        .await;
    insp.send(json!({"type": "op", "op_id": "dup-2", "op": op}))
        .await;
    let first = insp.recv_reply().await.expect("open");
    let second = insp.recv_reply().await.expect("open");
    assert_eq!(first["type"], "ack", "{first}");
    assert_eq!(second["code"], "duplicate_op_id", "{second}");
    assert_eq!(second["seq"], first["seq"]);
    // After a reconnect the retry is still recognised.
    let mut insp = insp.reconnect().await;
    assert_eq!(
        insp.op("dup-1", op.clone()).await["code"],
        "duplicate_op_id"
    );
    let seq = insp
        .op("ping-op", json!({"kind": "presence", "quality": "good"}))
        .await["seq"]
        .as_u64()
        .expect("seq");
    insp.sync_to(seq).await;
    assert_eq!(insp.state.items["q1"].comments.len(), 2);
    let mut buf = Vec::new();
    export_jsonl(&srv.pool, id, &mut buf).await.expect("export");
    let text = String::from_utf8(buf).expect("utf8");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("\"client_op_id\":\"dup-1\""))
            .count(),
        1
    );
}

#[tokio::test]
async fn reconnect_gets_exactly_what_it_missed_or_a_snapshot() {
    let config = SyncConfig {
        replay_window: 16,
        ..SyncConfig::default()
    };
    let (_db, srv) = server(config).await;
    let id = Uuid::new_v4();
    let mut insp = Client::connect(srv.addr, id, Uuid::new_v4(), "inspector").await;
    let biz = Client::connect(srv.addr, id, Uuid::new_v4(), "business").await;
    assert_eq!(insp.op("s", json!({"kind": "start"})).await["type"], "ack");
    let mut biz = biz;
    biz.sync_to(insp.seq.max(3)).await;
    let seen = biz.seq;
    // The phone loses the network: its socket is gone; the inspector carries on.
    let (pid, state, seq) = biz.detach();
    let mut last = 0;
    for i in 0..5 {
        last = insp
            .op(
                &format!("r{i}"),
                item_result(&format!("q{}", i + 1), "compliant"),
            )
            .await["seq"]
            .as_u64()
            .expect("seq");
    }
    let mut biz = Client::reconnect_with(srv.addr, id, pid, "business", state, Some(seq)).await;
    let events = biz.welcome["events"]
        .as_array()
        .expect("a short gap is replayed as events");
    assert_eq!(
        events.first().and_then(|e| e["seq"].as_u64()),
        Some(seen + 1)
    );
    biz.sync_to(last).await;
    insp.sync_to(biz.seq).await;
    biz.sync_to(insp.seq).await;
    assert_eq!(biz.state, insp.state);

    // Far behind (more than the replay window): a snapshot.
    let (pid, state, seq) = biz.detach();
    for i in 0..40 {
        last = insp
            .op(
                &format!("c{i}"),
                json!({"kind": "comment", "item_id": "q2", "text": format!("n{i}")}),
            )
            .await["seq"]
            .as_u64()
            .expect("seq");
    }
    let mut biz = Client::reconnect_with(srv.addr, id, pid, "business", state, Some(seq)).await;
    assert!(
        biz.welcome.get("snapshot").is_some(),
        "too far behind gets a snapshot"
    );
    assert!(biz.seq >= last);
    insp.sync_to(biz.seq).await;
    biz.sync_to(insp.seq).await;
    assert_eq!(biz.state, insp.state);
}

#[tokio::test]
async fn flooding_is_rate_limited_then_closed() {
    let config = SyncConfig {
        rate_per_sec: 5.0,
        burst: 5.0,
        flood_drops: 20,
        ..SyncConfig::default()
    };
    let (_db, srv) = server(config).await;
    let id = Uuid::new_v4();
    let mut c = Client::connect(srv.addr, id, Uuid::new_v4(), "business").await;
    for i in 0..40 {
        // The socket may already be closed for the last few.
        let _ =
            c.ws.send(Message::Text(
                json!({"type": "ping", "t": i}).to_string().into(),
            ))
            .await;
    }
    let mut codes = Vec::new();
    let mut closed_with = None;
    loop {
        match tokio::time::timeout(
            Duration::from_secs(10),
            futures_util::StreamExt::next(&mut c.ws),
        )
        .await
        {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                if v["type"] == "error" {
                    codes.push(v["code"].as_str().unwrap_or_default().to_string());
                }
            }
            Ok(Some(Ok(Message::Close(f)))) => {
                closed_with = f.map(|f| u16::from(f.code));
                break;
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    assert!(codes.iter().any(|c| c == "rate_limited"), "{codes:?}");
    assert_eq!(codes.last().map(String::as_str), Some("flood"));
    assert_eq!(closed_with, Some(1008));
}

#[tokio::test]
async fn audit_verify_names_the_first_altered_row() {
    let (_db, srv) = server(SyncConfig::default()).await;
    let id = Uuid::new_v4();
    let mut insp = Client::connect(srv.addr, id, Uuid::new_v4(), "inspector").await;
    assert_eq!(insp.op("s", json!({"kind": "start"})).await["type"], "ack");
    for i in 1..=5 {
        assert_eq!(
            insp.op(&format!("r{i}"), item_result(&format!("q{i}"), "violation"))
                .await["type"],
            "ack"
        );
    }
    let report = verify(&srv.pool, id).await.expect("verify");
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.events, 7);
    let mut out = Vec::new();
    assert_eq!(
        export_jsonl(&srv.pool, id, &mut out).await.expect("export"),
        7
    );
    let first: Value = serde_json::from_str(
        String::from_utf8(out)
            .expect("utf8")
            .lines()
            .next()
            .expect("line"),
    )
    .expect("json line");
    assert_eq!(first["seq"], 1);
    assert_eq!(first["kind"], "join");

    // Someone "fixes" a violation directly in the database.
    sqlx::query("UPDATE events SET payload = $1 WHERE inspection_id = $2 AND seq = 4")
        .bind(r#"{"item_id":"q2","result":"compliant"}"#)
        .bind(id.to_string())
        .execute(&srv.pool)
        .await
        .expect("tamper");
    let report = verify(&srv.pool, id).await.expect("verify");
    let broken = report.first_broken.clone().expect("tampering detected");
    assert_eq!(broken.seq, 4, "{report}");
    assert!(matches!(broken.reason, BrokenReason::HashMismatch { .. }));
    assert!(report.to_string().contains("BROKEN at event 4"));

    // Deleting a row in the middle is detected too.
    sqlx::query("DELETE FROM events WHERE inspection_id = $1 AND seq = 2")
        .bind(id.to_string())
        .execute(&srv.pool)
        .await
        .expect("delete");
    let report = verify(&srv.pool, id).await.expect("verify");
    assert_eq!(
        report.first_broken.map(|b| (b.seq, b.reason)),
        Some((3, BrokenReason::SeqGap { expected: 2 }))
    );
}

/// The device clock of a well-behaved phone: now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn a_state_larger_than_the_write_buffer_still_welcomes_a_fresh_join() {
    // Quotas and rate opened wide, so one participant can build a 2.4 MB state quickly: the
    // welcome must arrive in parts no bigger than the socket's write buffer allows.
    let config = SyncConfig {
        rate_per_sec: 10_000.0,
        burst: 10_000.0,
        quotas: checklist_sync::Quotas {
            comments_per_item: 1000,
            evidence_per_item: 1000,
            bytes_per_participant: u64::MAX,
            bytes_per_minute: u64::MAX,
            frames_per_participant: 1000,
        },
        ..SyncConfig::default()
    };
    let (_db, srv) = server(config).await;
    let id = Uuid::new_v4();
    let mut insp = Client::connect(srv.addr, id, Uuid::new_v4(), "inspector").await;
    assert_eq!(insp.op("s", json!({"kind": "start"})).await["type"], "ack");
    let mut biz = Client::connect(srv.addr, id, Uuid::new_v4(), "business").await;
    let text = "Ж".repeat(4000);
    let n = 300;
    for i in 0..n {
        biz.send(json!({"type": "op", "op_id": format!("c{i}"),
                        "op": {"kind": "comment", "item_id": "q1", "text": text}}))
            .await;
    }
    let mut acked = 0;
    while acked < n {
        let v = biz.recv_reply().await.expect("socket open");
        assert_eq!(v["type"], "ack", "{v}");
        acked += 1;
    }
    let started = std::time::Instant::now();
    let fresh = Client::connect(srv.addr, id, Uuid::new_v4(), "observer").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "welcome took {took:?}");
    let comments = &fresh.state.items["q1"].comments;
    assert_eq!(comments.len(), n);
    assert!(comments.iter().all(|c| c.text == text));
    // The inspector's own mirror agrees with what the fresh client got.
    insp.sync_to(fresh.seq).await;
    assert_eq!(insp.state.items["q1"], fresh.state.items["q1"]);
}

#[tokio::test]
async fn sockets_of_one_participant_share_the_rate_and_are_capped() {
    let config = SyncConfig {
        rate_per_sec: 1.0,
        burst: 10.0,
        max_sockets_per_participant: 3,
        ..SyncConfig::default()
    };
    let (_db, srv) = server(config).await;
    let id = Uuid::new_v4();
    let pid = Uuid::new_v4();
    let mut socks = Vec::new();
    for _ in 0..3 {
        socks.push(Client::connect(srv.addr, id, pid, "business").await);
    }
    // A fourth socket of the same participant is refused before hello, and closed.
    let mut extra = raw_connect(srv.addr, id, pid, "business").await;
    let v = next_json(&mut extra).await.expect("an error before close");
    assert_eq!(v["code"], "too_many_sockets", "{v}");
    let close = loop {
        match futures_util::StreamExt::next(&mut extra).await {
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    assert_eq!(close, Some(1008));
    // Another participant still connects.
    let _other = Client::connect(srv.addr, id, Uuid::new_v4(), "business").await;
    // The three sockets draw from one bucket of 10 (a socket's hello is free): 30 pings get
    // 10 pongs, plus at most one from the refill of 1/s while the test runs.
    for s in socks.iter_mut() {
        for i in 0..10 {
            s.send(json!({"type": "ping", "t": i})).await;
        }
    }
    let mut pongs = 0;
    for s in socks.iter_mut() {
        for _ in 0..10 {
            let v = s.recv_reply().await.expect("open");
            if v["type"] == "pong" {
                pongs += 1;
            } else {
                assert_eq!(v["code"], "rate_limited", "{v}");
            }
        }
    }
    assert!((10..=11).contains(&pongs), "{pongs} pongs");
    // Closing a socket frees its place.
    drop(socks.pop());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut ws = raw_connect(srv.addr, id, pid, "business").await;
        ws.send(Message::Text(
            json!({"type": "hello", "protocol": 1}).to_string().into(),
        ))
        .await
        .expect("hello");
        let v = common::read_welcome(&mut ws).await.expect("a reply");
        if v["type"] == "welcome" {
            break;
        }
        assert_eq!(v["code"], "too_many_sockets");
        assert!(
            std::time::Instant::now() < deadline,
            "the place was not freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn one_participant_cannot_grow_the_state_past_its_quotas() {
    let config = SyncConfig {
        rate_per_sec: 1000.0,
        burst: 1000.0,
        quotas: checklist_sync::Quotas {
            comments_per_item: 5,
            evidence_per_item: 2,
            bytes_per_participant: 100_000,
            bytes_per_minute: 40_000,
            ..checklist_sync::Quotas::default()
        },
        ..SyncConfig::default()
    };
    let (_db, srv) = server(config).await;
    let id = Uuid::new_v4();
    let mut insp = Client::connect(srv.addr, id, Uuid::new_v4(), "inspector").await;
    assert_eq!(insp.op("s", json!({"kind": "start"})).await["type"], "ack");
    let mut biz = Client::connect(srv.addr, id, Uuid::new_v4(), "business").await;
    let mut codes = Vec::new();
    for i in 0..7 {
        let r = biz
            .op(
                &format!("c{i}"),
                json!({"kind": "comment", "item_id": "q1", "text": "short"}),
            )
            .await;
        codes.push(r["code"].as_str().unwrap_or("ack").to_string());
        if i >= 5 {
            assert_eq!(r["limit"], "comments_per_item", "{r}");
        }
    }
    assert_eq!(
        codes,
        [
            "ack",
            "ack",
            "ack",
            "ack",
            "ack",
            "quota_exceeded",
            "quota_exceeded"
        ]
    );
    // Evidence comes from uploads, which the server submits on the uploader's behalf: it
    // counts against the uploader's quotas like anything the socket sends.
    let uploader = Principal {
        inspection_id: id,
        participant_id: biz.pid,
        role: Role::Business,
        display_name: "b".into(),
        device: "phone".into(),
    };
    for i in 0..3 {
        let evidence = serde_json::from_value(json!({"id": format!("p{i}"), "kind": "photo"}))
            .expect("evidence");
        let r = srv
            .hub
            .submit(
                &uploader,
                &devserver::spec(id, 10),
                Operation::AttachEvidence {
                    item_id: Some("q2".into()),
                    finding_seq: None,
                    evidence: Box::new(evidence),
                },
                Some(format!("e{i}")),
            )
            .await;
        match r {
            Ok(_) => assert!(i < 2, "upload {i} passed the quota"),
            Err(e) => {
                assert_eq!((i, e.code.as_str()), (2, "quota_exceeded"), "{e:?}");
                assert_eq!(e.limit.as_deref(), Some("evidence_per_item"));
            }
        }
    }
    // 4000 Cyrillic characters are 8000 bytes: five fit in 40 000 bytes a minute, the sixth
    // does not.
    let long = "Ж".repeat(4000);
    let mut refused = None;
    for i in 0..8 {
        let r = biz
            .op(
                &format!("l{i}"),
                json!({"kind": "comment", "item_id": format!("q{}", 3 + i % 5), "text": long}),
            )
            .await;
        if r["type"] == "error" {
            assert_eq!(
                (r["code"].as_str(), r["limit"].as_str()),
                (Some("quota_exceeded"), Some("bytes_per_minute")),
                "{r}"
            );
            refused.get_or_insert(i);
        }
    }
    assert_eq!(
        refused,
        Some(4),
        "the fifth long comment passes 40 000 bytes"
    );
    // Refusals changed nothing: the log holds the start, joins and the accepted ops only.
    insp.sync_to(biz.seq).await;
    let q1 = &insp.state.items["q1"];
    assert_eq!(q1.comments.len(), 5);
    // Another participant has its own quotas.
    let mut biz2 = Client::connect(srv.addr, id, Uuid::new_v4(), "business").await;
    let r = biz2
        .op(
            "x",
            json!({"kind": "comment", "item_id": "q1", "text": "mine"}),
        )
        .await;
    assert_eq!(r["type"], "ack", "{r}");
}

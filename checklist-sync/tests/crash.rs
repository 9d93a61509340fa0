//! kill -9 of the server right after acknowledgements: after a restart no acknowledged
//! operation is missing and the chain is intact.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use common::{Client, TestDb};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

async fn spawn_server(url: &str) -> (Child, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_checklist-sync-server"))
        .args([url, "127.0.0.1:0", "10"])
        .env("CHECKLIST_SYNC_RATE_PER_SEC", "100000")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn server");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("server starts")
        .expect("read")
        .expect("a line");
    let addr = line
        .strip_prefix("LISTENING ")
        .expect("LISTENING line")
        .parse()
        .expect("addr");
    (child, addr)
}

#[tokio::test]
async fn acknowledged_operations_survive_kill_9() {
    let db = TestDb::new().await;
    let id = Uuid::new_v4();
    let (mut child, addr) = spawn_server(&db.url).await;
    let mut insp = Client::connect(addr, id, Uuid::new_v4(), "inspector").await;
    assert_eq!(
        insp.op("start", json!({"kind": "start"})).await["type"],
        "ack"
    );
    // Pipeline many operations; kill the server while acknowledgements are streaming in.
    for i in 0..600 {
        let op = json!({"kind": "comment", "item_id": format!("q{}", i % 10 + 1), "text": format!("n{i}")});
        insp.send(json!({"type": "op", "op_id": format!("op-{i}"), "op": op}))
            .await;
    }
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    while acked.len() < 200 {
        let v: Value = insp.recv_reply().await.expect("open");
        if v["type"] == "ack" {
            acked.insert(
                v["op_id"].as_str().expect("op_id").to_string(),
                v["seq"].as_u64().expect("seq"),
            );
        }
    }
    child.start_kill().expect("SIGKILL");
    // Acks already on the wire before the kill count too: read until the socket dies.
    while let Some(v) = insp.recv_reply().await {
        if v["type"] == "ack" {
            acked.insert(
                v["op_id"].as_str().expect("op_id").to_string(),
                v["seq"].as_u64().expect("seq"),
            );
        }
    }
    child.wait().await.expect("reaped");

    let (_child, addr) = spawn_server(&db.url).await;
    let mut observer = Client::connect(addr, id, Uuid::new_v4(), "observer").await;
    let pool = db.pool().await;
    let mut buf = Vec::new();
    checklist_sync::export_jsonl(&pool, id, &mut buf)
        .await
        .expect("export");
    let mut logged: BTreeMap<String, u64> = BTreeMap::new();
    for line in String::from_utf8(buf).expect("utf8").lines() {
        let v: Value = serde_json::from_str(line).expect("json");
        if let Some(op) = v["client_op_id"].as_str() {
            logged.insert(op.to_string(), v["seq"].as_u64().expect("seq"));
        }
    }
    for (op, seq) in &acked {
        assert_eq!(
            logged.get(op),
            Some(seq),
            "acknowledged {op} (seq {seq}) lost after kill -9"
        );
    }
    let comments: usize = observer
        .state
        .items
        .values()
        .map(|i| i.comments.len())
        .sum();
    assert!(
        comments >= acked.len(),
        "state has every acknowledged comment"
    );
    // The inspector was connected when the server died: the restart records that.
    while observer.state.participants[&insp.pid].online {
        let v = observer.recv().await.expect("open");
        if v["kind"] == "leave" && v["participant_id"] == insp.pid.to_string() {
            assert_eq!(v["payload"]["reason"], "server_restart");
        }
    }
    let report = checklist_sync::verify(&pool, id).await.expect("verify");
    assert!(report.is_intact(), "{report}");
    eprintln!(
        "acked {} of 600 before kill -9; {} events in the log",
        acked.len(),
        report.events
    );
}

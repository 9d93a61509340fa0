//! Issue 10, item 7: `inspector audit verify` (the real binary) against someone with write
//! access to the database or the files. Before, an edited row with the later hashes
//! recomputed passed, a deleted `finish` passed while the status stayed `finished`, and a
//! flipped byte of the recording went unnoticed (its unsigned manifest's hash could be
//! rewritten to match). Now the signed checkpoints, the status check and the recording's
//! logged hash catch each, and the audit names it with a stable code.

use std::process::Command;
use std::time::Duration;

use inspector_tests::{spawn_app, Client, Role, TestApp};
use serde_json::json;
use sqlx::Row;

const EXE: &str = env!("CARGO_BIN_EXE_inspector");

/// Runs `inspector audit verify`: (success, output).
fn audit(app: &TestApp, id: &str) -> (bool, String) {
    let out = Command::new(EXE)
        .args(["audit", "verify", id, "--data-dir"])
        .arg(app.data_dir.path())
        .args(["--database-url", &app.database_url])
        .output()
        .expect("audit runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn max_seq(app: &TestApp, table: &str, id: &str) -> i64 {
    let sql = format!("SELECT MAX(seq) FROM {table} WHERE inspection_id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_one(&app.db)
        .await
        .expect("query")
        .get::<Option<i64>, _>(0)
        .unwrap_or(0)
}

async fn seq_of(app: &TestApp, id: &str, kind: &str) -> Option<i64> {
    sqlx::query("SELECT MIN(seq) FROM events WHERE inspection_id = $1 AND kind = $2")
        .bind(id)
        .bind(kind)
        .fetch_one(&app.db)
        .await
        .expect("query")
        .get::<Option<i64>, _>(0)
}

/// Waits (bounded) until the server has checkpointed the log at least up to `seq`: the
/// checkpoint follows the commit asynchronously.
async fn anchored(app: &TestApp, id: &str, seq: i64) {
    for _ in 0..200 {
        if max_seq(app, "checkpoints", id).await >= seq {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no checkpoint reached event {seq}");
}

async fn transition(insp: &Client, id: &str, to: &str) {
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({ "to": to }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Rewrites one event's payload and recomputes every hash from there on, as someone with
/// write access to the database and the chain's documented formula would.
async fn rewrite_and_rechain(app: &TestApp, id: &str, seq: i64, edit: impl Fn(&str) -> String) {
    let rows = sqlx::query(
        "SELECT seq, server_ts, participant_id, client_op_id, kind, payload, prev_hash \
         FROM events WHERE inspection_id = $1 AND seq >= $2 ORDER BY seq",
    )
    .bind(id)
    .bind(seq)
    .fetch_all(&app.db)
    .await
    .expect("rows");
    let inspection: uuid::Uuid = id.parse().expect("uuid");
    let mut prev: Option<String> = None;
    for r in rows {
        let s: i64 = r.get(0);
        let mut payload: String = r.get(5);
        if s == seq {
            payload = edit(&payload);
        }
        let prev_hash = prev.clone().unwrap_or_else(|| r.get(6));
        let participant: String = r.get(2);
        let op: Option<String> = r.get(3);
        let kind: String = r.get(4);
        let hash = checklist_sync::chain::event_hash(
            inspection,
            s as u64,
            r.get(1),
            participant.parse().expect("participant"),
            op.as_deref(),
            &kind,
            &payload,
            &prev_hash,
        );
        sqlx::query(
            "UPDATE events SET payload = $1, prev_hash = $2, hash = $3 \
             WHERE inspection_id = $4 AND seq = $5",
        )
        .bind(&payload)
        .bind(&prev_hash)
        .bind(&hash)
        .bind(id)
        .bind(s)
        .execute(&app.db)
        .await
        .expect("update");
        prev = Some(hash);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_catches_a_rewritten_log_a_cut_finish_and_an_altered_recording() {
    let app = spawn_app().await;
    let insp = app.staff("inspector1", Role::Inspector).await;

    // A: a violation rewritten to "compliant", every later hash recomputed.
    let a = insp.create_inspection().await;
    let item = insp.get(&format!("/api/inspections/{a}")).await.body["items"][0]["id"]
        .as_str()
        .expect("item")
        .to_string();
    {
        let mut ws = inspector_tests::ws_connect(&insp, &a)
            .await
            .expect("socket");
        ws.hello(None).await;
        assert_eq!(ws.op("s", json!({"kind": "start"})).await["type"], "ack");
        let r = ws
            .op(
                "v",
                json!({"kind": "set_result", "item_id": item, "result": "violation",
                       "violation": "Огнетушитель просрочен"}),
            )
            .await;
        assert_eq!(r["type"], "ack", "{r}");
        assert_eq!(ws.op("f", json!({"kind": "finish"})).await["type"], "ack");
    }
    anchored(&app, &a, seq_of(&app, &a, "finish").await.expect("finish")).await;
    let (ok, text) = audit(&app, &a);
    assert!(ok, "a clean log passes: {text}");
    assert!(
        text.contains("checkpoints: ") && text.ends_with("OK\n"),
        "{text}"
    );
    let v = seq_of(&app, &a, "set_result").await.expect("set_result");
    rewrite_and_rechain(&app, &a, v, |p| {
        p.replace(
            "\"violation\":\"Огнетушитель просрочен\"",
            "\"violation\":null",
        )
        .replace("\"result\":\"violation\"", "\"result\":\"compliant\"")
    })
    .await;
    let (ok, text) = audit(&app, &a);
    assert!(!ok, "{text}");
    assert!(
        text.contains("intact:"),
        "the recomputed chain itself is intact: {text}"
    );
    assert!(
        text.contains("FIRST BROKEN: checkpoint_head_mismatch"),
        "named: {text}"
    );

    // B: the last event, `finish`, deleted; the status column still says finished.
    let b = insp.create_inspection().await;
    transition(&insp, &b, "live").await;
    transition(&insp, &b, "finished").await;
    let finish = seq_of(&app, &b, "finish").await.expect("finish");
    anchored(&app, &b, finish).await;
    app.live.recordings.settled().await;
    assert_eq!(
        max_seq(&app, "events", &b).await,
        finish,
        "finish is the last event"
    );
    let (ok, text) = audit(&app, &b);
    assert!(ok, "{text}");
    sqlx::query("DELETE FROM events WHERE inspection_id = $1 AND seq = $2")
        .bind(&b)
        .bind(finish)
        .execute(&app.db)
        .await
        .expect("delete");
    let (ok, text) = audit(&app, &b);
    assert!(!ok, "{text}");
    assert!(text.contains("intact:"), "what is left chains: {text}");
    assert!(
        text.contains("BROKEN checkpoint_head_missing") && text.contains("BROKEN status_mismatch"),
        "both the checkpoint and the status catch it: {text}"
    );
    // Also deleting the checkpoints from the database leaves the file's copy, and the status.
    sqlx::query("DELETE FROM checkpoints WHERE inspection_id = $1")
        .bind(&b)
        .execute(&app.db)
        .await
        .expect("delete");
    let (ok, text) = audit(&app, &b);
    assert!(!ok && text.contains("BROKEN checkpoint_deleted"), "{text}");
    assert!(text.contains("BROKEN status_mismatch"), "{text}");

    // C: a recorded inspection; its recording's hash is an event of the chain.
    let c = insp.create_inspection().await;
    transition(&insp, &c, "live").await;
    let dir = app.data_dir.path().join("recordings");
    let spec = media_recorder::testsrc::SegmentSpec::new(
        0,
        signaling::db::now_micros() - 1_000_000,
        12_000_000,
    );
    let inspection = c.clone();
    tokio::task::spawn_blocking(move || {
        media_recorder::testsrc::write_segment(&dir, &inspection, spec)
    })
    .await
    .expect("join")
    .expect("journals");
    transition(&insp, &c, "finished").await;
    let mut logged = None;
    for _ in 0..200 {
        logged = seq_of(&app, &c, "recording_finalized").await;
        if logged.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logged = logged.expect("the recording's hash is logged");
    anchored(&app, &c, logged).await;
    let (ok, text) = audit(&app, &c);
    assert!(ok, "{text}");
    assert!(text.contains("recording: recording."), "{text}");
    let rec_dir = app.data_dir.path().join("recordings").join(&c);
    let manifest_path = rec_dir.join("manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("manifest")).expect("json");
    let file = rec_dir.join(manifest["file"].as_str().expect("file"));
    // Flip one byte in the middle of the recording.
    let mut bytes = std::fs::read(&file).expect("recording");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&file, &bytes).expect("write");
    let (ok, text) = audit(&app, &c);
    assert!(!ok, "{text}");
    assert!(text.contains("FIRST BROKEN: recording_altered"), "{text}");
    // D: the manifest's hash rewritten to match the altered file: the log still holds the
    // original.
    use sha2::Digest;
    let forged = hex::encode(sha2::Sha256::digest(&bytes));
    let mut m = manifest.clone();
    m["sha256"] = json!(forged);
    std::fs::write(&manifest_path, serde_json::to_vec(&m).expect("json")).expect("write");
    let (ok, text) = audit(&app, &c);
    assert!(!ok, "{text}");
    assert!(
        text.contains("BROKEN manifest_altered") && text.contains("BROKEN recording_altered"),
        "{text}"
    );
    app.stop().await;
}

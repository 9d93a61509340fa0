//! The backup and restore drill (issue 22, item 5) with the real `inspector` binary: 200
//! inspections with events, a recording, evidence, an act with two signatures and the signed
//! checkpoints; `inspector backup` taken while a live inspection is written to (operations
//! acknowledged and a camera publishing into its recording); `inspector restore` into a new
//! data directory and database; `inspector audit verify --all` clean, every restored file
//! equal to its manifest hash, every acknowledged operation there. And the refusals: a
//! tampered backup, an incomplete one, a target that is not empty — nothing written.

mod phone;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inspector_tests::act::signed_bundle;
use inspector_tests::{
    fresh_database, spawn_app_with, ws_connect, Client, PgDatabaseGuard, TestApp,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::Row;

const EXE: &str = env!("CARGO_BIN_EXE_inspector");

/// Runs the binary; (success, stdout + stderr).
fn inspector(args: &[&str]) -> (bool, String) {
    let out = Command::new(EXE)
        .args(args)
        .output()
        .expect("inspector runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A new, empty installation to restore into: a data directory that does not exist yet and,
/// on PostgreSQL, a new database.
struct Target {
    _root: tempfile::TempDir,
    data: PathBuf,
    url: String,
    _db: Option<PgDatabaseGuard>,
}

async fn target() -> Target {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("restored");
    let url = fresh_database(&data).await;
    let db = PgDatabaseGuard::for_url(&url);
    Target {
        _root: root,
        data,
        url,
        _db: db,
    }
}

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(
        std::fs::read(p).expect("read restored file"),
    ))
}

/// Start, a result per item of the first few, finish.
async fn run_through(insp: &Client, id: &str, results: usize) {
    let mut ws = ws_connect(insp, id).await.expect("socket");
    let welcome = ws.hello(None).await;
    let items = item_ids(&welcome);
    assert_eq!(ws.op("s", json!({"kind": "start"})).await["type"], "ack");
    for (n, item) in items.iter().take(results).enumerate() {
        let r = ws
            .op(
                &format!("r{n}"),
                json!({"kind": "set_result", "item_id": item, "result": "compliant"}),
            )
            .await;
        assert_eq!(r["type"], "ack", "{r}");
    }
    assert_eq!(ws.op("f", json!({"kind": "finish"})).await["type"], "ack");
}

fn item_ids(welcome: &Value) -> Vec<String> {
    welcome["checklist"]
        .as_array()
        .expect("checklist")
        .iter()
        .map(|i| i["id"].as_str().expect("item id").to_string())
        .collect()
}

/// A new invitation, accepted by a new guest whose phone publishes the test camera.
async fn publish(insp: &Client, id: &str) -> phone::Phone {
    let r = insp
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut business = Client::new(insp.base());
    assert_eq!(
        business
            .accept(r.body["token"].as_str().expect("token"))
            .await
            .status,
        200
    );
    phone::publish(&business, id, (320, 240)).await
}

/// Waits until every inspection that is over has a checkpoint of its last event (the server
/// makes it a moment after the end).
async fn checkpoints_settled(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let behind: i64 = sqlx::query(
            "SELECT COUNT(*) FROM inspections i WHERE i.status NOT IN ('scheduled', 'live') AND \
             (SELECT MAX(e.seq) FROM events e WHERE e.inspection_id = i.id) > \
             COALESCE((SELECT MAX(c.seq) FROM checkpoints c WHERE c.inspection_id = i.id), 0)",
        )
        .fetch_one(&app.db)
        .await
        .expect("query")
        .get(0);
        if behind == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{behind} inspections without their end checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn heads(db: &sqlx::AnyPool) -> Vec<(String, i64, String)> {
    sqlx::query(
        "SELECT e.inspection_id, e.seq, e.hash FROM events e WHERE e.seq = \
         (SELECT MAX(seq) FROM events x WHERE x.inspection_id = e.inspection_id) ORDER BY 1",
    )
    .fetch_all(db)
    .await
    .expect("heads")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_live_restores_into_a_copy_that_verifies() {
    // Checkpoints every second, so that the quiet inspections' late `leave` events are anchored
    // before the backup (the default sweep is once a minute).
    let app = spawn_app_with(|c| c.anchor.interval = Duration::from_secs(1)).await;
    let data = app.data_dir.path().display().to_string();
    // An act signed by both sides, with the business's photo as evidence.
    let (signed, _zip) = signed_bundle(&app).await;
    let insp = &signed.inspector;
    // 200 inspections; one in ten run through start, results and finish.
    for n in 0..200 {
        let id = insp.create_inspection().await;
        if n % 10 == 0 {
            run_through(insp, &id, 3).await;
        }
    }
    // A finished inspection with a recording.
    let recorded = insp.create_inspection().await;
    {
        let mut ws = ws_connect(insp, &recorded).await.expect("socket");
        ws.hello(None).await;
        assert_eq!(ws.op("s", json!({"kind": "start"})).await["type"], "ack");
        let phone = publish(insp, &recorded).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        phone.hang_up().await;
        assert_eq!(ws.op("f", json!({"kind": "finish"})).await["type"], "ack");
        let deadline = Instant::now() + Duration::from_secs(60);
        while insp
            .get(&format!("/api/inspections/{recorded}/recording/manifest"))
            .await
            .status
            != 200
        {
            assert!(Instant::now() < deadline, "no recording manifest");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    checkpoints_settled(&app).await;

    // The live inspection: a camera publishing and results acknowledged all through the backup.
    let live = insp.create_inspection().await;
    let mut ws = ws_connect(insp, &live).await.expect("socket");
    let items = item_ids(&ws.hello(None).await);
    assert_eq!(ws.op("s", json!({"kind": "start"})).await["type"], "ack");
    let phone = publish(insp, &live).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let last_acked = Arc::new(AtomicI64::new(0));
    let writer = {
        let (stop, last_acked) = (stop.clone(), last_acked.clone());
        tokio::spawn(async move {
            let results = ["compliant", "not_applicable"];
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let r = ws
                    .op(
                        &format!("live{n}"),
                        json!({"kind": "set_result", "item_id": items[n % items.len()],
                               "result": results[n % 2]}),
                    )
                    .await;
                assert_eq!(r["type"], "ack", "{r}");
                last_acked.store(r["seq"].as_i64().expect("seq"), Ordering::SeqCst);
                n += 1;
                // Below the socket's operation rate limit.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (ws, n)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked_before = last_acked.load(Ordering::SeqCst);
    assert!(
        acked_before > 0,
        "operations acknowledged before the backup"
    );
    let backup_root = tempfile::tempdir().expect("tempdir");
    let backup = backup_root.path().join("backup");
    let backup_s = backup.display().to_string();
    let started = Instant::now();
    let (ok, text) = tokio::task::spawn_blocking({
        let (b, d, u) = (backup_s.clone(), data.clone(), app.database_url.clone());
        move || {
            inspector(&[
                "backup",
                "--out",
                &b,
                "--data-dir",
                &d,
                "--database-url",
                &u,
            ])
        }
    })
    .await
    .expect("backup thread");
    let took = started.elapsed();
    assert!(ok, "backup: {text}");
    stop.store(true, Ordering::SeqCst);
    let (mut ws, ops) = writer.await.expect("writer");
    assert!(
        last_acked.load(Ordering::SeqCst) > acked_before,
        "operations were acknowledged while the backup ran"
    );
    eprintln!("backup took {took:?} ({ops} live operations): {text}");
    phone.hang_up().await;
    assert_eq!(ws.op("f", json!({"kind": "finish"})).await["type"], "ack");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(backup.join("MANIFEST.json")).expect("manifest"))
            .expect("manifest json");
    let files = manifest["files"].as_array().expect("files");
    assert!(
        files.iter().any(|f| f["path"]
            .as_str()
            .unwrap()
            .starts_with(&format!("data/recordings/{live}/"))),
        "the live recording's journal is in the backup"
    );
    assert!(
        files
            .iter()
            .any(|f| f["path"].as_str().unwrap().starts_with("blobs/sha256/")),
        "the evidence is in the backup"
    );

    // Restore into a new installation; every check passes there.
    let t = target().await;
    let (ok, text) = inspector(&[
        "restore",
        "--from",
        &backup_s,
        "--data-dir",
        &t.data.display().to_string(),
        "--database-url",
        &t.url,
    ]);
    assert!(ok, "restore: {text}");
    assert!(text.contains("203 inspections"), "{text}");
    let (ok, text) = inspector(&[
        "audit",
        "verify",
        "--all",
        "--data-dir",
        &t.data.display().to_string(),
        "--database-url",
        &t.url,
    ]);
    assert!(ok, "audit verify --all on the restored copy: {text}");
    assert!(text.contains("OK: 203 inspections intact"), "{text}");
    assert!(
        text.contains(&format!("{}: OK", signed.id)) && text.contains(&format!("{recorded}: OK")),
        "{text}"
    );

    // Every restored file is the one the manifest hashed.
    for f in files {
        let path = f["path"].as_str().unwrap();
        let restored = match path.split_once('/') {
            Some(("data", rest)) => t.data.join(rest),
            Some(("blobs", rest)) => t.data.join("blobs").join(rest),
            _ => panic!("unexpected manifest path {path}"),
        };
        assert_eq!(
            sha256_file(&restored),
            f["sha256"].as_str().unwrap(),
            "{path}"
        );
    }
    // The restored logs are prefixes of the logs as they are now (a late `leave` may follow
    // the snapshot); the live one holds every operation acknowledged before the backup began.
    let restored = signaling::db::connect(&t.url).await.expect("restored db");
    let then = heads(&restored).await;
    let now = heads(&app.db).await;
    assert_eq!(now.len(), then.len(), "the same inspections have logs");
    for (id, seq, hash) in &then {
        let original: String =
            sqlx::query("SELECT hash FROM events WHERE inspection_id = $1 AND seq = $2")
                .bind(id)
                .bind(seq)
                .fetch_one(&app.db)
                .await
                .expect("the restored head is in the original log")
                .get(0);
        assert_eq!(&original, hash, "inspection {id} at {seq}");
        if *id == live {
            assert!(
                *seq >= acked_before,
                "the acknowledged operations are restored"
            );
        }
    }
    let recording = sqlx::query(
        "SELECT COUNT(*) FROM events WHERE inspection_id = $1 AND kind = 'recording_finalized'",
    )
    .bind(&recorded)
    .fetch_one(&restored)
    .await
    .expect("query")
    .get::<i64, _>(0);
    assert_eq!(
        recording, 1,
        "the recorded inspection's recording is logged"
    );
    restored.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_tampered_incomplete_or_misplaced_restore_is_refused_and_writes_nothing() {
    let app = spawn_app_with(|c| c.anchor.interval = Duration::from_secs(1)).await;
    let (_signed, _zip) = signed_bundle(&app).await;
    checkpoints_settled(&app).await;
    let root = tempfile::tempdir().expect("tempdir");
    let backup = root.path().join("b");
    let b = backup.display().to_string();
    let data = app.data_dir.path().display().to_string();
    let (ok, text) = inspector(&[
        "backup",
        "--out",
        &b,
        "--data-dir",
        &data,
        "--database-url",
        &app.database_url,
    ]);
    assert!(ok, "{text}");
    // A second backup into the same (now full) directory, or into the data directory.
    let (ok, text) = inspector(&[
        "backup",
        "--out",
        &b,
        "--data-dir",
        &data,
        "--database-url",
        &app.database_url,
    ]);
    assert!(!ok && text.contains("not empty"), "{text}");
    let inside = format!("{data}/backup");
    let (ok, text) = inspector(&[
        "backup",
        "--out",
        &inside,
        "--data-dir",
        &data,
        "--database-url",
        &app.database_url,
    ]);
    assert!(!ok && text.contains("inside the data directory"), "{text}");

    let restore = |from: &str, t: &Target| {
        inspector(&[
            "restore",
            "--from",
            from,
            "--data-dir",
            &t.data.display().to_string(),
            "--database-url",
            &t.url,
        ])
    };
    let empty =
        |t: &Target| !t.data.exists() || std::fs::read_dir(&t.data).unwrap().next().is_none();

    // One evidence byte changed: refused naming the file, before anything is written.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(backup.join("MANIFEST.json")).unwrap()).unwrap();
    let blob = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .find(|p| p.starts_with("blobs/sha256/"))
        .expect("a blob in the backup");
    let original = std::fs::read(backup.join(&blob)).unwrap();
    let mut bad = original.clone();
    bad[original.len() / 2] ^= 1;
    std::fs::write(backup.join(&blob), &bad).unwrap();
    let t = target().await;
    let (ok, text) = restore(&b, &t);
    assert!(
        !ok && text.contains(&blob) && text.contains("does not match"),
        "{text}"
    );
    assert!(empty(&t), "nothing restored from a tampered backup");
    std::fs::write(backup.join(&blob), &original).unwrap();

    // Without its manifest it is not a backup.
    std::fs::rename(backup.join("MANIFEST.json"), backup.join("M")).unwrap();
    let (ok, text) = restore(&b, &t);
    assert!(!ok && text.contains("not a (complete) backup"), "{text}");
    assert!(empty(&t));
    std::fs::rename(backup.join("M"), backup.join("MANIFEST.json")).unwrap();

    // A data directory that is not empty is refused; the restore then works elsewhere.
    std::fs::create_dir_all(&t.data).unwrap();
    std::fs::write(t.data.join("keep.txt"), b"mine").unwrap();
    let (ok, text) = restore(&b, &t);
    assert!(!ok && text.contains("not empty"), "{text}");
    assert_eq!(std::fs::read(t.data.join("keep.txt")).unwrap(), b"mine");
    let t2 = target().await;
    let (ok, text) = restore(&b, &t2);
    assert!(ok, "{text}");
    app.stop().await;
}

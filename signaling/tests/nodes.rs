//! Several `inspector` processes on one PostgreSQL database (issue 20):
//! * what one node changes reaches the sockets another node holds within a second, through
//!   `LISTEN/NOTIFY` (`signaling::signals`), not through the periodic access re-check, which
//!   the test sets to a minute so that only the signal can be what closes a socket;
//! * one node runs a live inspection (its lease, `signaling::nodes`); a socket that reaches
//!   another node is proxied there, the checklist mirrors both ways and the media reaches the
//!   owner; when the owner is killed, the other node takes the inspection over once the lease
//!   expires, with every acknowledged op, and records from then on; a photo uploaded through
//!   the other node is taken by the owner and kept in a real S3-compatible store (SeaweedFS),
//!   from which the next owner serves it; A's journals, shipped to the store while it was
//!   live, end up with B's in the one finished file B publishes there (hash, chapters); with B
//!   gone too, a third node serves that recording (a Range of it) and the act B formed from
//!   the store.
//!
//! Runs on PostgreSQL on every pass (`inspector_tests::pg_server_url`); the PostgreSQL pass of
//! `scripts/test` leaves it out, so it runs once.

mod common;
mod phone;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{add_user, login, start, EXE};
use inspector_tests::seaweed::SeaweedFs;
use inspector_tests::{ws_connect, Client, Ws};
use phone::publish;
use serde_json::json;

/// The target of issue 20: a revocation on one node closes a socket on another within this.
const WITHIN: Duration = Duration::from_secs(1);

/// The nodes of one deployment: a fresh PostgreSQL database (with `inspector1`), one
/// configuration, and a data directory per node. Declared before its nodes, so they stop first.
struct Cluster {
    db: String,
    config: std::path::PathBuf,
    dirs: Vec<tempfile::TempDir>,
    _guard: Option<inspector_tests::PgDatabaseGuard>,
}

impl Cluster {
    async fn new(config: &str) -> Cluster {
        let db = inspector_tests::fresh_pg_database(&inspector_tests::pg_server_url()).await;
        let guard = inspector_tests::PgDatabaseGuard::for_url(&db);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("inspector.toml");
        std::fs::write(&path, config).expect("config");
        add_user(&db, "inspector1", "inspector");
        Cluster {
            db,
            config: path,
            dirs: vec![dir],
            _guard: guard,
        }
    }

    /// Starts one more node on its own data directory; the node and that directory.
    async fn node(&mut self) -> (common::Server, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        self.dirs.push(dir);
        (start(&path, &self.db, &self.config).await, path)
    }
}

/// Waits for `ws` to be closed by the server with 4401 (access ended); how long it took.
async fn closed_for_access(ws: &mut Ws, since: Instant, what: &str) -> Duration {
    let code = ws.close_code(Duration::from_secs(10)).await;
    let took = since.elapsed();
    assert_eq!(code, Some(4401), "{what}: closed with {code:?}");
    println!("{what}: closed after {took:?}");
    assert!(took < WITHIN, "{what}: closed after {took:?}");
    took
}

/// Revokes invitation `inv` of inspection `id` as `client`.
async fn revoke(client: &Client, id: &str, inv: &str) {
    let r = client
        .post_json(
            &format!("/api/inspections/{id}/invitations/{inv}/revoke"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

/// A greeted socket of `client` on inspection `id`, and its checklist's item ids.
async fn socket(client: &Client, id: &str) -> (Ws, Vec<String>) {
    let mut ws = ws_connect(client, id).await.expect("socket");
    let welcome = ws.hello(None).await;
    let items = welcome["checklist"]
        .as_array()
        .expect("checklist")
        .iter()
        .map(|i| i["id"].as_str().expect("item id").to_string())
        .collect();
    (ws, items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_ended_on_one_node_closes_sockets_on_another_within_a_second() {
    let mut cluster = Cluster::new("access_recheck_secs = 60\n").await;
    let (a, _) = cluster.node().await;
    let (b, _) = cluster.node().await;
    let db = cluster.db.clone();
    add_user(&db, "inspector2", "inspector");

    // The inspector works through node A; the business and every socket of the inspection
    // are on node B.
    let insp_a = login(&a.base, "inspector1").await;
    let id = insp_a.create_inspection().await;
    let r = insp_a
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let inv = r.body["invitation"]["id"]
        .as_str()
        .expect("invitation id")
        .to_string();
    let mut business = Client::new(&b.base);
    assert_eq!(
        business
            .accept(r.body["token"].as_str().expect("token"))
            .await
            .status,
        200
    );
    let insp_b = insp_a.on(&b.base);
    let (mut insp_ws, items) = socket(&insp_b, &id).await;
    assert_eq!(
        insp_ws.op("start", json!({"kind": "start"})).await["type"],
        "ack"
    );
    let (mut business_ws, _) = socket(&business, &id).await;

    // 1. The invitation revoked on A: the business's socket on B closes; the inspector's
    // stays open and keeps working.
    let t = Instant::now();
    revoke(&insp_a, &id, &inv).await;
    closed_for_access(&mut business_ws, t, "revoked invitation, guest socket on B").await;
    let ack = insp_ws
        .op(
            "still-open",
            json!({"kind": "set_result", "item_id": items[0], "result": "compliant"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");

    // 2. The inspector signs out on A: the same session's socket on B closes.
    let t = Instant::now();
    let r = insp_a.post_json("/api/auth/logout", &json!({})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    closed_for_access(&mut insp_ws, t, "signed out, staff socket on B").await;

    // 3. The nodes' listener connections are cut (a database failover, a proxy restart) and an
    // invitation is revoked at once: the listener connects again, then re-checks everything,
    // so the revocation is caught whichever comes first.
    let insp_a2 = login(&a.base, "inspector1").await;
    let r = insp_a2
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let inv2 = r.body["invitation"]["id"].as_str().expect("id").to_string();
    let mut business2 = Client::new(&b.base);
    let token = r.body["token"].as_str().expect("token");
    assert_eq!(business2.accept(token).await.status, 200);
    let (mut business2_ws, _) = socket(&business2, &id).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db).await.expect("database");
    let cut = sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&pool)
    .await
    .expect("terminate the listeners");
    assert!(!cut.is_empty(), "the nodes listen");
    let t = Instant::now();
    revoke(&insp_a2, &id, &inv2).await;
    closed_for_access(
        &mut business2_ws,
        t,
        "revoked while the listeners reconnect",
    )
    .await;

    // 4. An account disabled from the command line (a third process): its socket on B closes.
    let other = login(&b.base, "inspector2").await;
    let id2 = other.create_inspection().await;
    let (mut other_ws, _) = socket(&other, &id2).await;
    let out = Command::new(EXE)
        .args(["user", "disable", "inspector2", "--database-url", &db])
        .output()
        .expect("user disable");
    // From the command's exit, just after its commit (its start-up is not the signal's time).
    let t = Instant::now();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    closed_for_access(&mut other_ws, t, "account disabled by the CLI, socket on B").await;
}

/// Opens `client`'s socket on `id`, retrying while the node answers 503 (`node_unavailable`:
/// the owner is gone and its lease has not expired yet); how long that took.
async fn socket_when_served(client: &Client, id: &str, within: Duration) -> (Ws, Duration) {
    let t = Instant::now();
    loop {
        match ws_connect(client, id).await {
            Ok(ws) => return (ws, t.elapsed()),
            Err(503) if t.elapsed() < within => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(s) => panic!("socket refused with {s} after {:?}", t.elapsed()),
        }
    }
}

/// Files under `dir` and their sizes, recursively.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if let Ok(m) = e.metadata() {
            out.push((p, m.len()));
        }
    }
    out
}

/// Waits until some file under `dir` holds more than `bytes` (a media journal growing).
async fn media_written(dir: &std::path::Path, bytes: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let total: u64 = files(dir).iter().map(|(_, n)| n).sum();
        if total > bytes {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {total} bytes under {dir:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_runs_an_inspection_reached_through_both_and_another_takes_over_when_it_dies() {
    // Evidence in one real S3-compatible store that both nodes use.
    let s3 = SeaweedFs::start().await.expect("SeaweedFS");
    s3.create_bucket("evidence").await.expect("bucket");
    let mut cluster = Cluster::new(&format!(
        "lease_ttl_secs = 2\nblob_url = \"s3://evidence/nodes\"\nblob_endpoint = \"{}\"\n\
             blob_region = \"us-east-1\"\nblob_access_key_id = \"{}\"\n\
             blob_secret_access_key = \"{}\"\n",
        s3.endpoint,
        inspector_tests::seaweed::ACCESS_KEY,
        inspector_tests::seaweed::SECRET_KEY
    ))
    .await;
    let (a, dir_a) = cluster.node().await;
    let (b, dir_b) = cluster.node().await;
    let insp_a = login(&a.base, "inspector1").await;
    let id = insp_a.create_inspection().await;
    let r = insp_a
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut business = Client::new(&b.base);
    assert_eq!(
        business
            .accept(r.body["token"].as_str().expect("token"))
            .await
            .status,
        200
    );

    // The inspector's socket lands on A, which claims the inspection; the business's on B,
    // which proxies it to A.
    let (mut insp_ws, items) = socket(&insp_a, &id).await;
    let mut acked = Vec::new();
    let ack = insp_ws.op("start", json!({"kind": "start"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    acked.push(("start".to_string(), ack["seq"].as_u64().expect("seq")));
    let (mut biz_ws, _) = socket(&business, &id).await;

    // The checklist mirrors both ways.
    let ack = insp_ws
        .op(
            "mark-1",
            json!({"kind": "set_result", "item_id": items[0], "result": "violation"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let seq = ack["seq"].as_u64().expect("seq");
    acked.push(("mark-1".to_string(), seq));
    let ev = biz_ws
        .recv_until(|m| m["type"] == "event" && m["seq"].as_u64() == Some(seq))
        .await;
    assert_eq!(ev["payload"]["result"], "violation", "{ev}");
    let ack = biz_ws
        .op(
            "comment-1",
            json!({"kind": "comment", "item_id": items[0], "text": "written on node B"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let seq = ack["seq"].as_u64().expect("seq");
    acked.push(("comment-1".to_string(), seq));
    insp_ws
        .recv_until(|m| m["type"] == "event" && m["seq"].as_u64() == Some(seq))
        .await;

    // A photo uploaded through B is taken by A (the request is proxied, streamed), which
    // logs it; it lands in the shared object store.
    let jpeg = inspector_tests::images::picture("jpg", 640, 480, 10);
    let r = business
        .post_raw(
            &format!("/api/inspections/{id}/evidence?item_id={}", items[0]),
            "image/jpeg",
            jpeg.clone(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let photo_url = r.body["url"]
        .as_str()
        .or_else(|| r.body["evidence"]["url"].as_str())
        .expect("the photo's URL")
        .to_string();
    let ev = insp_ws
        .recv_until(|m| m["type"] == "event" && m["kind"] == "attach_evidence")
        .await;
    acked.push((
        ev["op_id"].as_str().expect("op id").to_string(),
        ev["seq"].as_u64().expect("seq"),
    ));

    // Media: the phone signals through B; its media goes to A, which records it.
    let phone = publish(&business, &id, (320, 240)).await;
    media_written(&dir_a.as_path().join("recordings"), 20_000, "A records").await;
    phone.hang_up().await;
    // A ships its journals to the object store every 2 s: wait for them before the kill.
    let store = signaling::blobs::BlobStore::open(
        &s3.blob_config("evidence", "nodes"),
        std::path::Path::new("/nonexistent"),
    )
    .expect("the store");
    let local: u64 = files(&dir_a.as_path().join("recordings"))
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "rtpj"))
        .map(|(_, n)| n)
        .sum();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut shipped = 0u64;
        for rel in store
            .list_recording_objects(&format!("{id}/journal"))
            .await
            .expect("list")
        {
            shipped += store
                .get_recording_object(&rel)
                .await
                .expect("get")
                .map_or(0, |b| b.len() as u64);
        }
        if shipped >= local {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A shipped {shipped} of {local} journal bytes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A dies. The proxied socket on B is told to reconnect (1012).
    a.kill_9();
    let killed = Instant::now();
    assert_eq!(biz_ws.close_code(Duration::from_secs(10)).await, Some(1012));
    drop(insp_ws);

    // Both reconnect through B (the load balancer sends them there now); B takes the
    // inspection over once A's lease has expired.
    let insp_b = insp_a.on(&b.base);
    let (mut insp_ws, waited) = socket_when_served(&insp_b, &id, Duration::from_secs(15)).await;
    println!(
        "taken over {:?} after the kill (waited {waited:?} for the lease)",
        killed.elapsed()
    );
    let welcome = insp_ws.hello(None).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let (mut biz_ws, _) = socket(&business, &id).await;
    // Every acknowledged op is there under its seq.
    let events = common::event_log(&insp_b, &id).await;
    for (op_id, seq) in &acked {
        let ev = events
            .iter()
            .find(|e| e["seq"].as_u64() == Some(*seq))
            .unwrap_or_else(|| panic!("acknowledged seq {seq} ({op_id}) lost"));
        assert_eq!(ev["client_op_id"].as_str(), Some(op_id.as_str()));
    }
    // And the inspection goes on, on B.
    let ack = insp_ws
        .op(
            "mark-2",
            json!({"kind": "set_result", "item_id": items[1], "result": "compliant"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let seq = ack["seq"].as_u64().expect("seq");
    assert!(
        seq > acked.last().expect("acks").1,
        "seq {seq} continues the log"
    );
    biz_ws
        .recv_until(|m| m["type"] == "event" && m["seq"].as_u64() == Some(seq))
        .await;
    let phone = publish(&business, &id, (320, 240)).await;
    media_written(&dir_b.as_path().join("recordings"), 20_000, "B records").await;
    phone.hang_up().await;
    // The photo A stored is served by B, from the object store.
    let (status, _, bytes) = insp_b.get_bytes(&photo_url).await;
    assert_eq!(status, 200);
    assert!(bytes == jpeg, "the photo comes back byte for byte");

    // The end: B finalizes with what A shipped, and publishes to the object store.
    let ack = insp_ws.op("finish", json!({"kind": "finish"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let deadline = Instant::now() + Duration::from_secs(90);
    let manifest = loop {
        if let Some(m) = store
            .get_recording_object(&format!("{id}/final/manifest.json"))
            .await
            .expect("get")
        {
            break serde_json::from_slice::<serde_json::Value>(&m).expect("manifest JSON");
        }
        assert!(Instant::now() < deadline, "no manifest in the object store");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let file = manifest["file"].as_str().expect("file");
    let bytes = store
        .get_recording_object(&format!("{id}/final/{file}"))
        .await
        .expect("get")
        .expect("the finished file in the store");
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        manifest["sha256"].as_str().expect("sha256"),
        "the file's hash is the manifest's"
    );
    let video = manifest["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .find(|t| t["kind"] == "video")
        .expect("a video stream");
    println!(
        "finished in the store: {} ms, video segments {}, {} chapters, sha256 {}",
        manifest["duration_ms"],
        video["segments"],
        manifest["chapters"].as_array().map_or(0, |c| c.len()),
        manifest["sha256"]
    );
    assert!(
        video["segments"].as_u64() >= Some(2),
        "A's and B's segments in one stream: {video}"
    );
    let local = dir_b.as_path().join("finished.webm");
    std::fs::write(&local, &bytes).expect("write");
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-show_chapters", "-of", "json"])
        .arg(&local)
        .output()
        .expect("ffprobe");
    assert!(probe.status.success(), "ffprobe reads the file");
    let probe: serde_json::Value = serde_json::from_slice(&probe.stdout).expect("ffprobe JSON");
    let chapters = manifest["chapters"].as_array().expect("chapters").len();
    assert!(chapters >= 2, "a chapter per finding: {manifest}");
    assert_eq!(
        probe["chapters"].as_array().map(|c| c.len()),
        Some(chapters),
        "every chapter is in the file"
    );
    assert!(
        store
            .get_recording_object(&format!("{id}/final/recording.vtt"))
            .await
            .expect("get")
            .is_some(),
        "the chapters' WebVTT is in the store"
    );

    // The act, formed on B (the owner), is kept in the store too.
    let r = insp_b
        .post_json(&format!("/api/inspections/{id}/act"), &json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let act_sha = r.body["act"]["sha256"]
        .as_str()
        .or_else(|| r.body["sha256"].as_str())
        .expect("the act's sha256")
        .to_string();

    // "Finished" is a database row: a node that did not finalize serves the recording from
    // the store. B goes too; a third node, C, answers once B's lease has expired.
    drop(insp_ws);
    drop(biz_ws);
    b.kill_9();
    let (c, _) = cluster.node().await;
    let insp_c = insp_a.on(&c.base);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = insp_c
            .get(&format!("/api/inspections/{id}/recording/manifest"))
            .await;
        if r.status == 200 {
            assert_eq!(r.body["sha256"], manifest["sha256"], "{}", r.text);
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text);
        assert!(Instant::now() < deadline, "C does not serve the manifest");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, headers, part) = insp_c
        .get_bytes_with(
            &format!("/api/inspections/{id}/recording"),
            &[("range", "bytes=1000-4999")],
        )
        .await;
    assert_eq!(status, 206, "{headers:?}");
    assert!(part == bytes[1000..5000], "the range is the store's bytes");
    // And the act B formed, from the store.
    let (status, _, pdf) = insp_c
        .get_bytes(&format!("/api/inspections/{id}/act.pdf"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&pdf)),
        act_sha,
        "the act's bytes"
    );
}

fn signal(server: &common::Server, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(server.child.id().to_string())
        .status()
        .expect("kill");
    assert!(ok.success(), "kill -{sig}");
}

/// The fencing token at work: the owner is paused (SIGSTOP) past its lease, the other node
/// takes the inspection over and appends; when the paused node wakes up, its room still
/// believes it owns the inspection, yet the op it is sent is not acknowledged and nothing of it
/// reaches the log, which stays one gapless chain. (Here B's appends also hold the seq A would
/// take; the next test isolates the fence, which fails without it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_that_lost_its_lease_appends_nothing() {
    let mut cluster = Cluster::new("lease_ttl_secs = 2\n").await;
    let (a, _) = cluster.node().await;
    let (b, dir_b) = cluster.node().await;
    let db = cluster.db.clone();
    let insp_a = login(&a.base, "inspector1").await;
    let id = insp_a.create_inspection().await;
    let (mut ws_a, items) = socket(&insp_a, &id).await;
    let ack = ws_a.op("start", json!({"kind": "start"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let ack = ws_a
        .op(
            "on-a",
            json!({"kind": "set_result", "item_id": items[0], "result": "violation"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let last_on_a = ack["seq"].as_u64().expect("seq");

    // A stops answering (a long GC pause, a frozen VM): B takes over after the lease.
    signal(&a, "STOP");
    let insp_b = insp_a.on(&b.base);
    let (mut ws_b, waited) = socket_when_served(&insp_b, &id, Duration::from_secs(30)).await;
    println!("B took over after {waited:?}");
    ws_b.hello(None).await;
    let ack = ws_b
        .op(
            "on-b",
            json!({"kind": "set_result", "item_id": items[1], "result": "compliant"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert!(ack["seq"].as_u64() > Some(last_on_a), "{ack}");

    // A wakes up with its room loaded and is sent an op on its old socket.
    signal(&a, "CONT");
    ws_a.send(json!({"type": "op", "op_id": "stale", "op": {"kind": "set_result", "item_id": items[2], "result": "violation"}}))
        .await;
    loop {
        match ws_a.recv_within(Duration::from_secs(20)).await {
            Ok(Some(m)) if m["op_id"] == "stale" => {
                assert_ne!(m["type"], "ack", "a fenced-off node acknowledged: {m}");
                break;
            }
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(()) => panic!("no answer from the woken node in 20 s"),
        }
    }
    let events = common::event_log(&insp_b, &id).await;
    assert!(
        events.iter().all(|e| e["client_op_id"] != "stale"),
        "the stale node's op is in the log"
    );
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gap");
    let verify = Command::new(EXE)
        .args(["audit", "verify", &id, "--database-url", &db])
        .arg("--data-dir")
        .arg(dir_b.as_path())
        .output()
        .expect("audit");
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(out.starts_with("intact"), "{out}");
    // Still one owner: B goes on.
    let ack = ws_b
        .op(
            "on-b-2",
            json!({"kind": "set_result", "item_id": items[3], "result": "compliant"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

/// The fence alone: while a node runs a room, the database records another node's claim (as a
/// take-over would). The room's next commit must fail its check — without the fence it would
/// succeed, since nothing else has taken that seq yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_lease_was_taken_over_commits_nothing() {
    let mut cluster = Cluster::new("").await;
    let (a, _) = cluster.node().await;
    let db = cluster.db.clone();
    let insp = login(&a.base, "inspector1").await;
    let id = insp.create_inspection().await;
    let (mut ws, items) = socket(&insp, &id).await;
    let ack = ws.op("start", json!({"kind": "start"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db).await.expect("database");
    let taken = sqlx::query(
        "UPDATE inspection_leases SET node_id = 'another-node', node_url = 'http://127.0.0.1:9', \
         token = token + 1 WHERE inspection_id = $1",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .expect("take the lease");
    assert_eq!(taken.rows_affected(), 1, "the room holds a lease row");

    ws.send(json!({"type": "op", "op_id": "fenced", "op": {"kind": "set_result", "item_id": items[0], "result": "violation"}}))
        .await;
    loop {
        match ws.recv_within(Duration::from_secs(20)).await {
            Ok(Some(m)) if m["op_id"] == "fenced" => {
                assert_ne!(m["type"], "ack", "acknowledged without the lease: {m}");
                assert_eq!(m["code"], "internal", "{m}");
                break;
            }
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(()) => panic!("no answer in 20 s"),
        }
    }
    // (Read from the database: the API now sends this inspection's requests to its owner.)
    let fenced: i64 = sqlx::Row::get(
        &sqlx::query(
            "SELECT COUNT(*) FROM events WHERE inspection_id = $1 AND client_op_id = 'fenced'",
        )
        .bind(&id)
        .fetch_one(&pool)
        .await
        .expect("count"),
        0,
    );
    assert_eq!(fenced, 0, "an op committed without the lease");
}

/// A room that only serves reads learns of a take-over at its next renewal (every third of
/// the lease): it closes, and its sockets reconnect to the new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_lost_its_lease_closes_at_the_next_renewal() {
    let mut cluster = Cluster::new("lease_ttl_secs = 3\n").await;
    let (a, _) = cluster.node().await;
    let db = cluster.db.clone();
    let insp = login(&a.base, "inspector1").await;
    let id = insp.create_inspection().await;
    let (mut ws, _) = socket(&insp, &id).await;
    assert_eq!(
        ws.op("start", json!({"kind": "start"})).await["type"],
        "ack"
    );
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db).await.expect("database");
    let t = Instant::now();
    sqlx::query(
        "UPDATE inspection_leases SET node_id = 'another-node', node_url = 'http://127.0.0.1:9', \
         token = token + 1 WHERE inspection_id = $1",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .expect("take the lease");
    // Nothing is sent: the renewal (every 1 s here) finds the claim gone.
    let code = ws.close_code(Duration::from_secs(10)).await;
    println!("closed with {code:?} after {:?}", t.elapsed());
    assert_eq!(code, Some(1011));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

/// A drain: a node stopped with SIGTERM closes its sockets (1001) and releases its leases, so
/// another node takes its inspections over at once, not after the lease (a minute here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_with_sigterm_hands_its_inspections_over_at_once() {
    let mut cluster = Cluster::new("lease_ttl_secs = 60\n").await;
    let (a, _) = cluster.node().await;
    let (b, _) = cluster.node().await;
    let insp_a = login(&a.base, "inspector1").await;
    let id = insp_a.create_inspection().await;
    let (mut ws, items) = socket(&insp_a, &id).await;
    let ack = ws.op("start", json!({"kind": "start"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    signal(&a, "TERM");
    assert_eq!(ws.close_code(Duration::from_secs(10)).await, Some(1001));
    let t = Instant::now();
    let (mut ws, waited) =
        socket_when_served(&insp_a.on(&b.base), &id, Duration::from_secs(10)).await;
    println!("B serves it {waited:?} after A's sockets closed");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    ws.hello(None).await;
    let ack = ws
        .op(
            "on-b",
            json!({"kind": "set_result", "item_id": items[0], "result": "compliant"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

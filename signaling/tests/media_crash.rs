//! `kill -9` of the real `inspector` process during a live inspection with media: after the
//! restart the inspection is still live and nothing is published; the business reconnects
//! (a new WebRTC connection over a new socket), the inspector marks one more item and
//! finishes: one manifest, one video stream on one timeline (the outage kept as a gap), every
//! chapter showing its mark's picture (the camera draws its capture time into each frame).
//!
//! The business's phone is a Rust WebRTC client (media-recorder's test support) signalled
//! through the server's socket exactly as the browser is (`rtc.offer` → `rtc.answer`).

#[path = "../../media-recorder/tests/support/mod.rs"]
mod media;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inspector_tests::{ws_connect, Client, Ws};
use media_recorder::MediaRole;
use serde_json::{json, Value};

const EXE: &str = env!("CARGO_BIN_EXE_inspector");

fn free_port() -> u16 {
    // Bind port 0 and release it: the server binds it again a moment later.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn data_args(dir: &std::path::Path) -> Vec<String> {
    let mut args = vec!["--data-dir".to_string(), dir.display().to_string()];
    if std::env::var("INSPECTOR_TEST_PG_URL").is_ok_and(|u| !u.is_empty()) {
        args.push("--database-url".into());
        args.push(std::fs::read_to_string(dir.join("pg_url")).expect("pg url file"));
    }
    args
}

/// The server process; killed (SIGKILL) and reaped when dropped, so a failing test leaves
/// nothing running.
struct Server(Child);

impl Server {
    fn kill_9(mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start(dir: &std::path::Path, port: u16) -> Server {
    let server = Server(
        Command::new(EXE)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--media-udp", "127.0.0.1:0"])
            .args(data_args(dir))
            .stdout(Stdio::null())
            .stderr(if std::env::var("TEST_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("spawn inspector"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
            && Client::new(&base).get("/readyz").await.status == 200
        {
            return server;
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The business's phone: a socket and a WebRTC connection publishing the barcode camera.
struct Phone {
    _ws: Ws,
    client: media::Client,
    stop: Arc<AtomicBool>,
}

async fn publish(business: &Client, id: &str) -> Phone {
    let mut ws = ws_connect(business, id).await.expect("business socket");
    assert_eq!(ws.hello(None).await["type"], "welcome");
    let inspection: uuid::Uuid = id.parse().expect("uuid");
    let client =
        media::Client::build(inspection, MediaRole::Publisher, media::Offer::Publish).await;
    let offer = client.offer_json(false).await;
    ws.send(json!({"type": "rtc.offer", "sdp": offer})).await;
    let answer = ws
        .recv_until(|m| m["type"] == "rtc.answer" || m["type"] == "rtc.error")
        .await;
    assert_eq!(answer["type"], "rtc.answer", "{answer}");
    client.apply_answer(answer["sdp"].clone()).await;
    assert!(
        client.wait_connected(Duration::from_secs(10)).await,
        "the phone's connection is up"
    );
    let stop = Arc::new(AtomicBool::new(false));
    media::spawn_camera(&client, 25, stop.clone());
    Phone {
        _ws: ws,
        client,
        stop,
    }
}

fn ffprobe(path: &std::path::Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_chapters",
            "-show_format",
        ])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

fn set_result(item: &str) -> Value {
    json!({"kind": "set_result", "item_id": item, "result": "violation"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_inspection_survives_kill_9_and_finishes_on_one_timeline() {
    let dir = tempfile::tempdir().expect("tempdir");
    if std::env::var("INSPECTOR_TEST_PG_URL").is_ok_and(|u| !u.is_empty()) {
        let url = inspector_tests::fresh_database(dir.path()).await;
        std::fs::write(dir.path().join("pg_url"), url).expect("write");
    }
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = start(dir.path(), port).await;
    let add = Command::new(EXE)
        .args(["user", "add", "inspector1", "--role", "inspector"])
        .args(data_args(dir.path()))
        .env("INSPECTOR_PASSWORD", "a long test password")
        .stdout(Stdio::null())
        .status()
        .expect("user add");
    assert!(add.success());
    let mut insp = Client::new(&base);
    let r = insp
        .post_json(
            "/api/auth/login",
            &json!({"username": "inspector1", "password": "a long test password"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    insp.csrf = r.body["csrf_token"].as_str().map(String::from);
    let id = insp.create_inspection().await;
    let r = insp
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut business = Client::new(&base);
    let token = r.body["token"].as_str().expect("token").to_string();
    assert_eq!(business.accept(&token).await.status, 200);

    let mut wi = ws_connect(&insp, &id).await.expect("inspector socket");
    let welcome = wi.hello(None).await;
    let items: Vec<String> = welcome["checklist"]
        .as_array()
        .expect("checklist")
        .iter()
        .map(|i| i["id"].as_str().expect("item id").to_string())
        .collect();
    assert_eq!(
        wi.op("start", json!({"kind": "start"})).await["type"],
        "ack"
    );

    // First half: the phone publishes, two items are marked a second or so apart.
    let phone = publish(&business, &id).await;
    let first_publish = chrono::Utc::now().timestamp_micros();
    for (n, item) in items.iter().take(2).enumerate() {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let ack = wi.op(&format!("m{n}"), set_result(item)).await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    // Journals reach the OS at least every second: the second mark's picture is on disk.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    server.kill_9();
    phone.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = phone.client.pc.close().await;
    drop(phone);
    drop(wi);

    // Restart: the inspection is still live, and its recording is not published.
    let server = start(dir.path(), port).await;
    let recording = dir.path().join("recordings").join(&id);
    let status = insp.get(&format!("/api/inspections/{id}")).await;
    assert_eq!(status.body["status"], "live", "{}", status.text);
    let manifest_url = format!("/api/inspections/{id}/recording/manifest");

    // Second half: the phone comes back (a new socket and a new connection, same
    // invitation), one more mark, then the inspector finishes.
    let phone = publish(&business, &id).await;
    assert!(
        !recording.join("manifest.json").exists(),
        "no manifest for a live inspection after recovery"
    );
    assert_ne!(insp.get(&manifest_url).await.status, 200);
    let mut wi = ws_connect(&insp, &id).await.expect("inspector socket");
    wi.hello(None).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ack = wi.op("m2", set_result(&items[2])).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        wi.op("finish", json!({"kind": "finish"})).await["type"],
        "ack"
    );
    let finished_at = chrono::Utc::now().timestamp_micros();
    phone.stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let deadline = Instant::now() + Duration::from_secs(60);
    let manifest = loop {
        let r = insp.get(&manifest_url).await;
        if r.status == 200 {
            break r.body;
        }
        assert!(
            Instant::now() < deadline,
            "no manifest: {} {}",
            r.status,
            r.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let file = recording.join(manifest["file"].as_str().expect("file"));
    let probe = ffprobe(&file);
    let streams = probe["streams"].as_array().expect("streams");
    let videos: Vec<&Value> = streams
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .collect();
    assert_eq!(videos.len(), 1, "one video stream: {streams:?}");
    let video = manifest["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .find(|t| t["kind"] == "video")
        .expect("video track");
    assert_eq!(
        video["segments"], 2,
        "both connections on one stream: {video}"
    );
    // One timeline: from the first picture to the end, the outage (restart, reconnect) kept.
    let epoch = manifest["epoch_micros"].as_i64().expect("epoch");
    let duration = manifest["duration_ms"].as_i64().expect("duration") * 1000;
    assert!(
        (epoch - first_publish).abs() < 1_000_000,
        "media starts at the first publish"
    );
    assert!(
        epoch + duration > finished_at - 2_500_000,
        "the recording runs to the end: ends {} ms before finish",
        (finished_at - epoch - duration) / 1000
    );
    let chapters = manifest["chapters"].as_array().expect("chapters");
    assert_eq!(chapters.len(), 3, "{chapters:?}");
    assert_eq!(
        probe["chapters"].as_array().expect("chapters").len(),
        3,
        "the file has every chapter"
    );
    for c in chapters {
        let at_ms = c["mark_at_micros"].as_i64().expect("mark") / 1000;
        let start = c["start_ms"].as_i64().expect("start");
        let (_, frame) = media_recorder::testsrc::frame_at(&file, start)
            .expect("decode")
            .expect("a picture at the chapter");
        let captured = media_recorder::testsrc::read_barcode(&frame, at_ms).expect("barcode");
        println!(
            "chapter {} at {start} ms: capture {captured}, mark {at_ms}",
            c["item_id"]
        );
        assert!(
            (captured - at_ms).abs() <= 100,
            "chapter {} at {start} ms shows capture {captured}, mark {at_ms}",
            c["item_id"]
        );
    }
    // Finished once: a restart now publishes nothing new and keeps the manifest.
    server.kill_9();
    let _server = start(dir.path(), port).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(insp.get(&manifest_url).await.body, manifest);
}

//! The recording through the real `inspector` process, the way it lives and ends:
//! * `kill -9` during a live inspection with media: after the restart the inspection is still
//!   live and nothing is published; the business reconnects (a new WebRTC connection over a
//!   new socket), the inspector marks one more item and finishes: one manifest, one video
//!   stream on one timeline (the outage kept as a gap), every chapter showing its mark's
//!   picture (the camera draws its capture time into each frame).
//! * A rejoin from a new invitation (another participant, another camera resolution)
//!   continues the same video stream.
//!
//! The business's phone is a Rust WebRTC client (media-recorder's test support) signalled
//! through the server's socket exactly as the browser is (`rtc.offer` → `rtc.answer`).

mod phone;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use inspector_tests::{ws_connect, Client, Ws};
use phone::publish;
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
struct Server(Option<Child>);

impl Server {
    /// A placeholder while the server is down.
    fn none() -> Server {
        Server(None)
    }

    fn kill_9(mut self) {
        let mut child = self.0.take().expect("a running server");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn start(dir: &std::path::Path, port: u16) -> Server {
    let server = Server(Some(
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
    ));
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

/// A running server with an inspector (logged in, socket open, inspection started) and an
/// invitation accepted by the business.
struct Live {
    dir: tempfile::TempDir,
    port: u16,
    server: Server,
    insp: Client,
    business: Client,
    id: String,
    items: Vec<String>,
    wi: Ws,
}

impl Live {
    async fn start() -> Live {
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
        let business = invite(&insp, &id).await;
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
        Live {
            dir,
            port,
            server,
            insp,
            business,
            id,
            items,
            wi,
        }
    }

    fn recording(&self) -> std::path::PathBuf {
        self.dir.path().join("recordings").join(&self.id)
    }

    fn manifest_url(&self) -> String {
        format!("/api/inspections/{}/recording/manifest", self.id)
    }

    /// Finishes the inspection and waits for its manifest.
    async fn finish(&mut self) -> Value {
        let ack = self.wi.op("finish", json!({"kind": "finish"})).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.insp.get(&self.manifest_url()).await;
            if r.status == 200 {
                return r.body;
            }
            assert!(
                Instant::now() < deadline,
                "no manifest: {} {}",
                r.status,
                r.text
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A new invitation, accepted by a new guest (another phone).
async fn invite(insp: &Client, id: &str) -> Client {
    let r = insp
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut business = Client::new(insp.base());
    let token = r.body["token"].as_str().expect("token");
    assert_eq!(business.accept(token).await.status, 200);
    business
}

/// The recording's streams of a kind, by ffprobe.
fn streams_of<'a>(probe: &'a Value, kind: &str) -> Vec<&'a Value> {
    probe["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter(|s| s["codec_type"] == kind)
        .collect()
}

/// Each chapter of the file that begins inside the recording shows the picture captured at
/// the moment it begins (within 100 ms): the server time its mark places it at
/// (`live::marks`: where the item began being looked at). A chapter placed before the
/// recording (the introduction, a lead-in longer than the call so far) begins at its first
/// byte, where no picture may be decodable yet; it is skipped. Returns the pictures' widths.
fn assert_chapter_pictures(file: &std::path::Path, manifest: &Value) -> Vec<u32> {
    let mut widths = Vec::new();
    let epoch_ms = manifest["epoch_micros"].as_i64().expect("epoch") / 1000;
    for c in manifest["chapters"].as_array().expect("chapters") {
        let at_ms = c["mark_at_micros"].as_i64().expect("mark") / 1000;
        if at_ms <= epoch_ms {
            continue;
        }
        let start = c["start_ms"].as_i64().expect("start");
        let (_, frame) = media_recorder::testsrc::frame_at(file, start)
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
        widths.push(frame.width());
    }
    widths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_inspection_survives_kill_9_and_finishes_on_one_timeline() {
    let mut live = Live::start().await;
    // First half: the phone publishes, two items are marked a second or so apart.
    let phone = publish(&live.business, &live.id, (320, 240)).await;
    let first_publish = chrono::Utc::now().timestamp_micros();
    for n in 0..2 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let ack = live
            .wi
            .op(&format!("m{n}"), set_result(&live.items[n]))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    // Journals reach the OS at least every second: the second mark's picture is on disk.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let server = std::mem::replace(&mut live.server, Server::none());
    server.kill_9();
    phone.stop.store(true, Ordering::Relaxed);
    let _ = phone.client.pc.close().await;
    drop(phone);

    // Restart: the inspection is still live, and its recording is not published.
    live.server = start(live.dir.path(), live.port).await;
    let status = live
        .insp
        .get(&format!("/api/inspections/{}", live.id))
        .await;
    assert_eq!(status.body["status"], "live", "{}", status.text);

    // Second half: the phone comes back (a new socket and a new connection, same
    // invitation), one more mark, then the inspector finishes.
    let phone = publish(&live.business, &live.id, (320, 240)).await;
    assert!(
        !live.recording().join("manifest.json").exists(),
        "no manifest for a live inspection after recovery"
    );
    assert_ne!(live.insp.get(&live.manifest_url()).await.status, 200);
    live.wi = ws_connect(&live.insp, &live.id)
        .await
        .expect("inspector socket");
    live.wi.hello(None).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ack = live.wi.op("m2", set_result(&live.items[2])).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let finished_at = chrono::Utc::now().timestamp_micros();
    let manifest = live.finish().await;
    phone.stop.store(true, Ordering::Relaxed);

    let file = live
        .recording()
        .join(manifest["file"].as_str().expect("file"));
    let probe = ffprobe(&file);
    assert_eq!(streams_of(&probe, "video").len(), 1, "one video stream");
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
    // The introduction and one chapter per mark.
    assert_eq!(manifest["chapters"].as_array().expect("chapters").len(), 4);
    assert_eq!(
        probe["chapters"].as_array().expect("chapters").len(),
        4,
        "the file has every chapter"
    );
    assert_chapter_pictures(&file, &manifest);
    // Finished once: a restart now publishes nothing new and keeps the manifest.
    let server = std::mem::replace(&mut live.server, Server::none());
    server.kill_9();
    live.server = start(live.dir.path(), live.port).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(live.insp.get(&live.manifest_url()).await.body, manifest);
}

/// Issue 18: the business leaves and rejoins through a new invitation (another participant,
/// another phone with another camera resolution). The finished file has one video stream
/// covering both halves with the time between them kept, and the marks of both halves show
/// their phones' pictures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_from_a_new_invitation_continues_one_video_stream() {
    let mut live = Live::start().await;
    let phone = publish(&live.business, &live.id, (320, 240)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ack = live.wi.op("m0", set_result(&live.items[0])).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let mut marks = vec![ack["server_ts"].as_i64().expect("ts")];
    tokio::time::sleep(Duration::from_millis(800)).await;
    // The phone leaves: its socket closes, and with it its media.
    phone.stop.store(true, Ordering::Relaxed);
    let _ = phone.client.pc.close().await;
    drop(phone);
    let left_at = chrono::Utc::now().timestamp_micros();
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let other = invite(&live.insp, &live.id).await;
    let phone = publish(&other, &live.id, (480, 360)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ack = live.wi.op("m1", set_result(&live.items[1])).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    marks.push(ack["server_ts"].as_i64().expect("ts"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let manifest = live.finish().await;
    phone.stop.store(true, Ordering::Relaxed);

    let file = live
        .recording()
        .join(manifest["file"].as_str().expect("file"));
    let probe = ffprobe(&file);
    assert_eq!(
        streams_of(&probe, "video").len(),
        1,
        "one video stream: {probe}"
    );
    let video = manifest["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .find(|t| t["kind"] == "video")
        .expect("video track");
    assert_eq!(video["segments"], 2, "{video}");
    assert_eq!(
        video["participant_ids"].as_array().map(Vec::len),
        Some(2),
        "two participants on one stream: {video}"
    );
    // Each chapter shows the moment it begins: the second item's chapter begins at the first
    // mark (it was looked at from then on), still in the first phone's half.
    assert_eq!(assert_chapter_pictures(&file, &manifest), [320]);
    // Each mark's own moment shows its phone's picture, one per half.
    let epoch_ms = manifest["epoch_micros"].as_i64().expect("epoch") / 1000;
    let widths: Vec<u32> = marks
        .iter()
        .map(|ts| {
            let at_ms = ts / 1000;
            let (_, frame) = media_recorder::testsrc::frame_at(&file, at_ms - epoch_ms)
                .expect("decode")
                .expect("a picture at the mark");
            let captured = media_recorder::testsrc::read_barcode(&frame, at_ms).expect("barcode");
            assert!(
                (captured - at_ms).abs() <= 100,
                "mark {at_ms} shows {captured}"
            );
            frame.width()
        })
        .collect();
    assert_eq!(widths, [320, 480]);
    // The gap is kept: half a second after the first phone left, no new picture yet.
    let epoch = manifest["epoch_micros"].as_i64().expect("epoch");
    let gap_ms = (left_at - epoch) / 1000 + 500;
    let (pts, frame) = media_recorder::testsrc::frame_at(&file, gap_ms)
        .expect("decode")
        .expect("a frame");
    assert!(pts < gap_ms - 400, "a frame inside the gap at {pts} ms");
    assert_eq!(frame.width(), 320);
}

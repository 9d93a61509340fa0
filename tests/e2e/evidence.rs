//! Evidence through the real server: photo uploads with server-computed hashes, every bad
//! upload refused with a stable code and nothing stored, evidence served only through the
//! access rule, photo requests over the socket, the blob store on local disk and on a real
//! SeaweedFS, and clips + stills derived from a finished recording.

use std::time::{Duration, Instant};

use inspector_tests::images::{picture, sha256_hex};
use inspector_tests::seaweed::SeaweedFs;
use inspector_tests::{spawn_app, spawn_app_with, ws_connect, Client, Role, TestApp, Ws};
use serde_json::{json, Value};

struct Live {
    inspector: Client,
    business: Client,
    id: String,
    items: Vec<String>,
}

async fn live_inspection(app: &TestApp, name: &str) -> Live {
    let inspector = app.staff(name, Role::Inspector).await;
    let id = inspector.create_inspection().await;
    let r = inspector
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    let mut business = app.anonymous();
    assert_eq!(
        business
            .accept(r.body["token"].as_str().expect("token"))
            .await
            .status,
        200
    );
    let r = inspector
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "live"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let items = inspector.get(&format!("/api/inspections/{id}")).await.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("item id").to_string())
        .collect();
    Live {
        inspector,
        business,
        id,
        items,
    }
}

impl Live {
    /// The inspector's and the business's sockets, welcomed.
    async fn sockets(&self) -> (Ws, Ws) {
        let mut wi = ws_connect(&self.inspector, &self.id).await.expect("socket");
        wi.hello(None).await;
        let mut wb = ws_connect(&self.business, &self.id).await.expect("socket");
        wb.hello(None).await;
        (wi, wb)
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn upload_path(id: &str, item: &str, extra: &str) -> String {
    format!("/api/inspections/{id}/evidence?item_id={item}{extra}")
}

async fn upload(c: &Client, path: &str, bytes: Vec<u8>) -> inspector_tests::Answer {
    c.post_raw(path, "image/jpeg", bytes).await
}

fn events(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect()
}

async fn photo_is_logged_stored_and_served(app: TestApp) {
    let l = live_inspection(&app, "inspector1").await;
    let jpeg = picture("jpg", 640, 480, 10);
    let sha = sha256_hex(&jpeg);
    let path = upload_path(
        &l.id,
        &l.items[0],
        &format!(
            "&captured_at={}&lat=55.7577&lon=37.613&accuracy=12&device_ts={}",
            now_ms() - 800,
            now_ms() - 1000
        ),
    );
    let r = l
        .business
        .post_raw_with(
            &path,
            &[("content-type", "image/jpeg"), ("x-content-sha256", &sha)],
            jpeg.clone(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let ev = &r.body["evidence"];
    assert_eq!(ev["kind"], "photo");
    assert_eq!(ev["sha256"], sha.as_str());
    assert_eq!(ev["size"], jpeg.len());
    assert_eq!(ev["media_type"], "image/jpeg");
    assert_eq!(
        (ev["width"].as_u64(), ev["height"].as_u64()),
        (Some(640), Some(480))
    );
    assert_eq!(ev["location"]["lat"], 55.7577);
    assert!(ev["received_at"].as_i64().unwrap_or(0) > 0, "{ev}");
    let url = r.body["url"].as_str().expect("url").to_string();

    // The log carries the server's hash; the blob store holds exactly those bytes.
    let log = events(
        &l.business
            .get(&format!("/api/inspections/{}/events.jsonl", l.id))
            .await
            .text,
    );
    let logged = log
        .iter()
        .find(|e| e["kind"] == "attach_evidence")
        .expect("attach_evidence logged");
    assert_eq!(logged["payload"]["evidence"]["sha256"], sha.as_str());
    assert_eq!(logged["payload"]["item_id"], l.items[0].as_str());
    // A window of the log (a live page's list after a snapshot): the last actions at or
    // before a sequence number, the same lines as the whole log's but without measurements;
    // bad windows are refused.
    let log: Vec<_> = log
        .into_iter()
        .filter(|e| e["kind"] != "presence" && e["kind"] != "location")
        .collect();
    let head = log.last().expect("a log")["seq"].as_i64().expect("seq");
    let window = |upto: i64, last: u32| {
        let path = format!(
            "/api/inspections/{}/events.jsonl?upto={upto}&last={last}",
            l.id
        );
        let business = &l.business;
        async move { events(&business.get(&path).await.text) }
    };
    assert_eq!(window(head - 1, 1).await, log[log.len() - 2..log.len() - 1]);
    assert_eq!(window(head, 1000).await, log, "a window over all of it");
    for bad in [
        "upto=1",
        "last=5",
        "upto=x&last=5",
        "upto=1&last=0",
        "upto=1&last=1001",
        "upto=-1&last=5",
    ] {
        let r = l
            .business
            .get(&format!("/api/inspections/{}/events.jsonl?{bad}", l.id))
            .await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (400, Some("validation_failed")),
            "{bad}: {}",
            r.text
        );
    }
    assert_eq!(
        app.blobs.rehash(&sha).await.expect("rehash"),
        Some((sha.clone(), jpeg.len() as u64))
    );
    let report = signaling::audit::verify(&app.db, &app.blobs, l.id.parse().expect("uuid"))
        .await
        .expect("audit");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.evidence_checked, 1);

    // Served with the detected type, nosniff and a disposition; ranges work.
    let (status, headers, body) = l.inspector.get_bytes(&url).await;
    assert_eq!(status, 200);
    assert_eq!(body, jpeg);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-disposition"]
        .to_str()
        .expect("ascii")
        .starts_with("inline; filename=\"evidence-"));
    let r = l.inspector.get_with(&url, &[("range", "bytes=2-5")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.headers["content-range"],
        format!("bytes 2-5/{}", jpeg.len()).as_str()
    );
    let r = l.inspector.get(&format!("{url}?download=1")).await;
    assert!(r.headers["content-disposition"]
        .to_str()
        .expect("ascii")
        .starts_with("attachment"));
    // The access rule: a reviewer sees it, another inspector and strangers do not.
    let reviewer = app.staff("reviewer1", Role::Reviewer).await;
    assert_eq!(reviewer.get_bytes(&url).await.0, 200);
    let other = app.staff("inspector2", Role::Inspector).await;
    assert_eq!(other.get(&url).await.status, 404);
    assert_eq!(app.anonymous().get(&url).await.status, 401);
    // An id the log does not name is not served, even for a stored hash.
    let bogus = format!(
        "/api/inspections/{}/evidence/{}",
        l.id,
        uuid::Uuid::new_v4()
    );
    assert_eq!(l.inspector.get(&bogus).await.status, 404);

    // The type is the content's, whatever the request claims.
    let png = picture("png", 320, 200, 0);
    let r = upload(&l.inspector, &upload_path(&l.id, &l.items[1], ""), png).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["evidence"]["media_type"], "image/png");
    let webp = picture("webp", 300, 100, 0);
    let r = upload(&l.business, &upload_path(&l.id, &l.items[1], ""), webp).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["evidence"]["media_type"], "image/webp");
    assert_eq!(r.body["evidence"]["width"], 300);
    app.stop().await;
}

#[tokio::test]
async fn photo_upload_on_local_disk() {
    photo_is_logged_stored_and_served(spawn_app().await).await;
}

#[tokio::test]
async fn photo_upload_on_seaweedfs() {
    let s3 = SeaweedFs::start().await.expect("SeaweedFS");
    s3.create_bucket("inspector").await.expect("bucket");
    let cfg = s3.blob_config("inspector", &format!("run-{}", uuid::Uuid::new_v4()));
    let app = spawn_app_with(|c| c.blob = cfg).await;
    assert!(
        !app.data_dir.path().join("blobs").exists(),
        "nothing goes to local disk"
    );
    photo_is_logged_stored_and_served(app).await;
}

/// Sends a request with a declared Content-Length and only part of the body, then closes the
/// sending side: the server sees the body end early.
async fn interrupted_upload(app: &TestApp, c: &Client, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = app.address.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {}\r\nX-CSRF-Token: {}\r\n\
         Content-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n",
        c.cookie_header().unwrap_or_default(),
        c.csrf.clone().unwrap_or_default()
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let jpeg = picture("jpg", 320, 240, 0);
    s.write_all(&jpeg[..jpeg.len().min(5000)])
        .await
        .expect("part");
    s.shutdown().await.expect("half close");
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut answer)).await;
    answer
}

#[tokio::test]
async fn bad_uploads_are_refused_and_store_nothing() {
    let app = spawn_app_with(|c| c.max_upload_bytes = 150_000).await;
    let mut l = live_inspection(&app, "inspector1").await;
    let item = l.items[0].clone();
    let item = &item;
    let ok = upload_path(&l.id, item, "");
    let jpeg = picture("jpg", 320, 240, 0);
    let big = picture("jpg", 1600, 1200, 30);
    assert!(big.len() > 150_000, "test picture is {} bytes", big.len());
    let reviewer = app.staff("reviewer1", Role::Reviewer).await;
    let other = live_inspection(&app, "inspector2").await;
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec();

    let before = app.dump_all().await;
    let mut failures = Vec::new();
    fn check(
        failures: &mut Vec<String>,
        what: &str,
        r: inspector_tests::Answer,
        status: u16,
        code: &str,
    ) {
        if r.status != status || r.code() != code {
            failures.push(format!(
                "{what}: expected {status} {code}, got {} {}",
                r.status, r.text
            ));
        }
    }
    check(
        &mut failures,
        "wrong type",
        upload(&l.business, &ok, gif).await,
        400,
        "unsupported_image_type",
    );
    check(
        &mut failures,
        "text claimed as JPEG",
        upload(&l.business, &ok, b"<html>not a photo</html>".to_vec()).await,
        400,
        "unsupported_image_type",
    );
    check(
        &mut failures,
        "oversized",
        upload(&l.business, &ok, big.clone()).await,
        413,
        "payload_too_large",
    );
    // Without a Content-Length the limit holds while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    let streamed = reqwest::Client::new()
        .post(format!("{}{ok}", app.address))
        .header("cookie", l.business.cookie_header().unwrap_or_default())
        .header("x-csrf-token", l.business.csrf.clone().unwrap_or_default())
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("streamed upload");
    if streamed.status().as_u16() != 413 {
        failures.push(format!("oversized stream: {}", streamed.status()));
    }
    check(
        &mut failures,
        "truncated",
        upload(&l.business, &ok, jpeg[..jpeg.len() / 2].to_vec()).await,
        400,
        "image_truncated",
    );
    let answer = interrupted_upload(&app, &l.business, &ok).await;
    if !answer.is_empty() && !answer.contains("upload_interrupted") {
        failures.push(format!("interrupted: {answer}"));
    }
    check(
        &mut failures,
        "hash mismatch",
        l.business
            .post_raw_with(&ok, &[("x-content-sha256", &"0".repeat(64))], jpeg.clone())
            .await,
        400,
        "hash_mismatch",
    );
    check(
        &mut failures,
        "wrong inspection (other business)",
        upload(&other.business, &ok, jpeg.clone()).await,
        404,
        "not_found",
    );
    check(
        &mut failures,
        "wrong inspection (other inspector)",
        upload(&other.inspector, &ok, jpeg.clone()).await,
        404,
        "not_found",
    );
    check(
        &mut failures,
        "forbidden role",
        upload(&reviewer, &ok, jpeg.clone()).await,
        403,
        "forbidden",
    );
    check(
        &mut failures,
        "anonymous",
        upload(&app.anonymous(), &ok, jpeg.clone()).await,
        401,
        "unauthenticated",
    );
    let mut no_csrf = l.business.csrf.take();
    check(
        &mut failures,
        "no CSRF token",
        upload(&l.business, &ok, jpeg.clone()).await,
        403,
        "csrf_failed",
    );
    std::mem::swap(&mut l.business.csrf, &mut no_csrf);
    check(
        &mut failures,
        "unknown item",
        upload(
            &l.business,
            &upload_path(&l.id, "no-such-item", ""),
            jpeg.clone(),
        )
        .await,
        400,
        "unknown_item",
    );
    check(
        &mut failures,
        "impossible location",
        upload(
            &l.business,
            &upload_path(
                &l.id,
                item,
                &format!("&lat=155&lon=37&accuracy=5&device_ts={}", now_ms()),
            ),
            jpeg.clone(),
        )
        .await,
        400,
        "geo_lat_out_of_range",
    );
    // A client's own attach_evidence is refused on the socket.
    let mut ws = ws_connect(&l.business, &l.id).await.expect("socket");
    ws.hello(None).await;
    let r = ws
        .op(
            "claim-1",
            json!({"kind": "attach_evidence", "item_id": item,
                   "evidence": {"id": "x", "kind": "photo", "uri": "https://evil.example/p.jpg", "sha256": "ab".repeat(32)}}),
        )
        .await;
    if r["code"] != "upload_required" {
        failures.push(format!("socket attach_evidence: {r}"));
    }
    drop(ws);
    // Let the socket's join/leave events land before comparing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut after = app.dump_all().await;
    // The socket's own join/leave and participant row are not the upload's doing.
    let strip = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.starts_with("events|") && !l.starts_with("participants|"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if strip(&after) != strip(&before) {
        failures.push(format!(
            "a refused upload changed stored rows or blobs:\nbefore:\n{before}\nafter:\n{after}"
        ));
    }
    let log = events(
        &l.inspector
            .get(&format!("/api/inspections/{}/events.jsonl", l.id))
            .await
            .text,
    );
    if log.iter().any(|e| e["kind"] == "attach_evidence") {
        failures.push("an attach_evidence event was logged".into());
    }

    // Before the start and after the finish: refused, nothing stored.
    let not_started = {
        let c = &other.inspector;
        let id = c.create_inspection().await;
        upload(c, &upload_path(&id, item, ""), jpeg.clone()).await
    };
    check(&mut failures, "before start", not_started, 409, "not_live");
    let r = l
        .inspector
        .post_json(
            &format!("/api/inspections/{}/transition", l.id),
            &json!({"to": "finished"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let before = app.dump_all().await;
    check(
        &mut failures,
        "after finish",
        // The business takes no part after the end (issue 10 item 3): refused before the room.
        upload(&l.business, &ok, jpeg.clone()).await,
        403,
        "forbidden",
    );
    after = app.dump_all().await;
    if after != before {
        failures.push("an upload after the finish changed something".into());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    app.stop().await;
}

#[tokio::test]
async fn uploads_past_the_participants_quota_are_refused_and_store_nothing() {
    let app = spawn_app_with(|c| c.live.evidence_per_item = 2).await;
    let l = live_inspection(&app, "inspector1").await;
    let path = upload_path(&l.id, &l.items[0], "");
    for seed in 0..2 {
        let r = upload(&l.business, &path, picture("jpg", 320, 240, seed)).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let before = app.dump_all().await;
    let r = upload(&l.business, &path, picture("jpg", 320, 240, 7)).await;
    assert_eq!((r.status, r.code()), (409, "quota_exceeded"), "{}", r.text);
    assert_eq!(
        app.dump_all().await,
        before,
        "the refused upload stored something"
    );
    // The quota is the participant's, per item: another item and the inspector still may.
    let other = upload_path(&l.id, &l.items[1], "");
    let r = upload(&l.business, &other, picture("jpg", 320, 240, 8)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = upload(&l.inspector, &path, picture("jpg", 320, 240, 9)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.stop().await;
}

#[tokio::test]
async fn the_inspector_requests_a_photo_and_the_phone_answers_it() {
    let app = spawn_app().await;
    let l = live_inspection(&app, "inspector1").await;
    let (mut wi, mut wb) = l.sockets().await;
    let item = &l.items[2];
    let r = wb
        .op("b1", json!({"kind": "request_photo", "item_id": item}))
        .await;
    assert_eq!(r["code"], "forbidden", "{r}");
    let r = wi
        .op("i1", json!({"kind": "request_photo", "item_id": item}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let ev = wb
        .recv_until(|m| m["type"] == "event" && m["kind"] == "request_photo")
        .await;
    assert_eq!(ev["payload"]["item_id"], item.as_str());
    // A phone that reconnects finds the request in its snapshot.
    drop(wb);
    let mut wb = ws_connect(&l.business, &l.id).await.expect("socket");
    let welcome = wb.hello(None).await;
    assert_eq!(
        welcome["snapshot"]["items"][item]["photo_request"]["seq"], ev["seq"],
        "{welcome}"
    );
    let r = upload(
        &l.business,
        &upload_path(&l.id, item, ""),
        picture("jpg", 320, 240, 0),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let ev = wi
        .recv_until(|m| m["type"] == "event" && m["kind"] == "attach_evidence")
        .await;
    assert_eq!(
        ev["payload"]["evidence"]["sha256"],
        r.body["evidence"]["sha256"]
    );
    let state = l
        .inspector
        .get(&format!("/api/inspections/{}/state", l.id))
        .await;
    let it = &state.body["state"]["items"][item];
    assert!(it["photo_request"].is_null(), "answered: {it}");
    assert_eq!(it["evidence"].as_array().map(Vec::len), Some(1));
    app.stop().await;
}

/// Waits (polling the state) until `pred` holds, up to `secs`.
async fn wait_state(c: &Client, id: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = c.get(&format!("/api/inspections/{id}/state")).await.body;
        if pred(&s["state"]) {
            return s["state"].clone();
        }
        assert!(Instant::now() < deadline, "timed out; state: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_violation_gets_a_clip_and_a_still_from_the_recording() {
    use media_recorder::testsrc::{read_barcode, write_segment, SegmentSpec};
    let app = spawn_app_with(|c| {
        c.clip_before_ms = 2000;
        c.clip_after_ms = 2000;
    })
    .await;
    let l = live_inspection(&app, "inspector1").await;
    let mut wi = ws_connect(&l.inspector, &l.id).await.expect("socket");
    wi.hello(None).await;
    let mut marks = Vec::new();
    for (n, result) in [(0usize, "violation"), (1, "compliant"), (2, "violation")] {
        let r = wi
            .op(
                &format!("m{n}"),
                json!({"kind": "set_result", "item_id": l.items[n], "result": result}),
            )
            .await;
        assert_eq!(r["type"], "ack", "{r}");
        marks.push((n, result, r["server_ts"].as_i64().expect("server_ts")));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // The camera's recording, synthetic: it covers the marks, with a keyframe at each one
    // (as the live peer asks) and every 2 s; every frame shows its capture time.
    let first = marks[0].2;
    let last = marks[2].2;
    let mut spec = SegmentSpec::new(0, first - 5_000_000, last - first + 9_000_000);
    spec.keyframes_at = marks.iter().map(|m| m.2).collect();
    spec.keyframes_at
        .extend((0..10).map(|k| first - 5_000_000 + k * 2_000_000));
    let recordings = app.data_dir.path().join("recordings");
    let id = l.id.clone();
    tokio::task::spawn_blocking(move || write_segment(&recordings, &id, spec))
        .await
        .expect("thread")
        .expect("journal");
    let r = l
        .inspector
        .post_json(
            &format!("/api/inspections/{}/transition", l.id),
            &json!({"to": "finished"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let violations = [&l.items[0], &l.items[2]];
    let state = wait_state(&l.inspector, &l.id, 120, |s| {
        violations.iter().all(|i| {
            s["items"][i.as_str()]["evidence"]
                .as_array()
                .is_some_and(|e| e.len() == 2)
        })
    })
    .await;
    let manifest = l
        .inspector
        .get(&format!("/api/inspections/{}/recording/manifest", l.id))
        .await
        .body;
    let rec_sha = manifest["sha256"].as_str().expect("recording hash");
    assert!(
        state["items"][l.items[1].as_str()]["evidence"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "no clip for a compliant item"
    );
    let dir = tempfile::tempdir().expect("tmp");
    for (n, _, at) in marks.iter().filter(|m| m.1 == "violation") {
        let ev = state["items"][l.items[*n].as_str()]["evidence"]
            .as_array()
            .expect("evidence");
        let clip = ev.iter().find(|e| e["kind"] == "clip").expect("a clip");
        let still = ev.iter().find(|e| e["kind"] == "still").expect("a still");
        for e in [clip, still] {
            assert_eq!(e["recording_sha256"], rec_sha, "{e}");
            assert_eq!(
                e["by"],
                uuid::Uuid::nil().to_string(),
                "made by the server: {e}"
            );
            assert_eq!(e["at_micros"], *at);
            let sha = e["sha256"].as_str().expect("sha");
            assert_eq!(
                app.blobs
                    .rehash(sha)
                    .await
                    .expect("rehash")
                    .map(|h| h.0)
                    .as_deref(),
                Some(sha)
            );
        }
        assert_eq!(clip["media_type"], "video/webm");
        let url = format!(
            "/api/inspections/{}/evidence/{}",
            l.id,
            clip["id"].as_str().expect("id")
        );
        let (status, headers, bytes) = l.inspector.get_bytes(&url).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "video/webm");
        let path = dir.path().join(format!("clip{n}.webm"));
        std::fs::write(&path, &bytes).expect("write clip");
        let probe = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-of",
                "json",
                "-show_format",
                "-select_streams",
                "v",
                "-show_frames",
                "-read_intervals",
                "%+#1",
            ])
            .arg(&path)
            .output()
            .expect("ffprobe");
        let p: Value = serde_json::from_slice(&probe.stdout).expect("ffprobe json");
        let duration: f64 = p["format"]["duration"]
            .as_str()
            .expect("duration")
            .parse()
            .expect("number");
        let want = (clip["clip_end_ms"].as_i64().expect("end")
            - clip["clip_start_ms"].as_i64().expect("start")) as f64
            / 1000.0;
        assert!(
            (duration - want).abs() < 0.15,
            "clip {n}: {duration} s vs {want} s"
        );
        assert!(
            want >= 3.9,
            "about 2 s before and 2 s after the mark: {want}"
        );
        assert_eq!(
            p["frames"][0]["key_frame"], 1,
            "starts with a keyframe: {p}"
        );
        // The still shows the mark's moment.
        let url = format!(
            "/api/inspections/{}/evidence/{}",
            l.id,
            still["id"].as_str().expect("id")
        );
        let (status, headers, jpeg) = l.inspector.get_bytes(&url).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "image/jpeg");
        let jpg = dir.path().join(format!("still{n}.jpg"));
        std::fs::write(&jpg, &jpeg).expect("write still");
        let (_, frame) = media_recorder::extract::decode_at(&jpg, 0).expect("decode still");
        let shown = read_barcode(&frame, at / 1000).expect("barcode");
        assert!(
            (shown - at / 1000).abs() <= 100,
            "still {n}: shows {shown}, mark {}",
            at / 1000
        );
    }
    let report = signaling::audit::verify(&app.db, &app.blobs, l.id.parse().expect("uuid"))
        .await
        .expect("audit");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.evidence_checked, 4);
    app.stop().await;
}

fn frame_path(id: &str, reason: &str, extra: &str) -> String {
    format!("/api/inspections/{id}/evidence?frame={reason}{extra}")
}

/// Low-bandwidth mode's stills (issue 19): only the phone sends them, by upload (a socket
/// cannot claim one), each logged as a `frame` event on the recording's timeline, replayed
/// by op id, spaced, served from the log (the fold keeps only the latest), refused with a
/// stable code when they are not pictures, name an item, or come after the end.
#[tokio::test]
async fn stills_are_the_phones_logged_served_and_bounded() {
    let app = spawn_app().await;
    let l = live_inspection(&app, "inspector1").await;
    let (mut wi, mut wb) = l.sockets().await;

    // The inspector asks over the socket; the phone may not ask, nor claim a still.
    let r = wb.op("b1", json!({"kind": "request_frame"})).await;
    assert_eq!(r["code"], "forbidden", "{r}");
    let r = wb
        .op(
            "b2",
            json!({"kind": "frame", "reason": "requested",
                   "evidence": {"id": "x", "kind": "frame", "sha256": "a".repeat(64)}}),
        )
        .await;
    assert_eq!(r["code"], "upload_required", "{r}");
    let r = wi.op("i1", json!({"kind": "request_frame"})).await;
    assert_eq!(r["type"], "ack", "{r}");
    wb.recv_until(|m| m["type"] == "event" && m["kind"] == "request_frame")
        .await;

    // A still of the camera: 201, a `frame` event with the server's findings, no item.
    let jpeg = picture("jpg", 1280, 720, 3);
    let op = uuid::Uuid::new_v4().to_string();
    let path = frame_path(
        &l.id,
        "requested",
        &format!("&op_id={op}&captured_at={}", now_ms()),
    );
    let first = upload(&l.business, &path, jpeg.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let ev = &first.body["evidence"];
    assert_eq!(ev["kind"], "frame");
    assert_eq!(
        (ev["width"].as_u64(), ev["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert_eq!(ev["sha256"], sha256_hex(&jpeg));
    assert!(first.body.get("item_id").is_none(), "{}", first.body);
    let logged = wi
        .recv_until(|m| m["type"] == "event" && m["kind"] == "frame")
        .await;
    assert_eq!(logged["payload"]["reason"], "requested");
    assert_eq!(logged["payload"]["evidence"]["id"], ev["id"]);
    assert!(
        logged["payload"]["evidence"]["at_micros"].is_i64(),
        "{logged}"
    );
    // The same op id again: the committed still, nothing new.
    let again = upload(&l.business, &path, jpeg.clone()).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["replayed"], true);
    assert_eq!(again.body["evidence"]["id"], ev["id"]);
    // Another one within half a second of it is too soon.
    let soon = upload(
        &l.business,
        &frame_path(&l.id, "low_bandwidth", ""),
        picture("jpg", 1280, 720, 4),
    )
    .await;
    assert_eq!(
        (soon.status, soon.code()),
        (429, "too_many_attempts"),
        "{}",
        soon.text
    );

    // Bad stills are refused with their codes.
    let inspector = upload(
        &l.inspector,
        &frame_path(&l.id, "low_bandwidth", ""),
        picture("jpg", 64, 48, 0),
    )
    .await;
    assert_eq!(inspector.status, 403, "{}", inspector.text);
    for (path, code) in [
        (frame_path(&l.id, "sometimes", ""), "invalid_frame_reason"),
        (
            frame_path(&l.id, "requested", &format!("&item_id={}", l.items[0])),
            "invalid_evidence_target",
        ),
    ] {
        let r = upload(&l.business, &path, picture("jpg", 64, 48, 0)).await;
        assert_eq!((r.status, r.code()), (400, code), "{path}: {}", r.text);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let webm = [
        &[0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x82, 0x84][..],
        b"webm",
        &[0u8; 64][..],
    ]
    .concat();
    let r = upload(&l.business, &frame_path(&l.id, "low_bandwidth", ""), webm).await;
    assert_eq!((r.status, r.code()), (400, "frame_not_image"), "{}", r.text);

    // A second still; the phone says it is in stills mode, and why.
    let second = upload(
        &l.business,
        &frame_path(&l.id, "low_bandwidth", ""),
        picture("png", 800, 600, 5),
    )
    .await;
    assert_eq!(second.status, 201, "{}", second.text);
    let r = wb
        .op(
            "b3",
            json!({"kind": "presence", "quality": "poor", "video_mode": "video", "stills_reason": "narrow"}),
        )
        .await;
    assert_eq!(r["code"], "invalid_field", "a reason without stills: {r}");
    let r = wb
        .op(
            "b4",
            json!({"kind": "presence", "quality": "poor", "video_mode": "stills", "stills_reason": "narrow"}),
        )
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let state = wait_state(&l.inspector, &l.id, 5, |s| {
        s["participants"]
            .as_object()
            .is_some_and(|ps| ps.values().any(|p| p["video_mode"] == "stills"))
    })
    .await;
    let phone = state["participants"]
        .as_object()
        .and_then(|ps| ps.values().find(|p| p["role"] == "business"))
        .expect("the phone");
    assert_eq!(phone["stills_reason"], "narrow", "{phone}");
    assert_eq!(phone["frames"]["count"], 2, "{phone}");
    assert_eq!(phone["frames"]["last_id"], second.body["evidence"]["id"]);
    assert_eq!(phone["frames"]["last_reason"], "low_bandwidth");

    // Both are served, the older one from the log (the fold keeps only the latest).
    for (up, bytes) in [(&first, Some(&jpeg)), (&second, None)] {
        let url = up.body["url"].as_str().expect("url");
        let (status, headers, body) = l.inspector.get_bytes(url).await;
        assert_eq!(status, 200, "{url}");
        if let Some(b) = bytes {
            assert_eq!(&body, b);
            assert_eq!(headers["content-type"], "image/jpeg");
        }
    }
    let unknown = format!(
        "/api/inspections/{}/evidence/{}",
        l.id,
        uuid::Uuid::new_v4()
    );
    assert_eq!(l.inspector.get_bytes(&unknown).await.0, 404);

    // After the end no still is taken.
    let r = wi.op("i2", json!({"kind": "finish"})).await;
    assert_eq!(r["type"], "ack", "{r}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let late = upload(
        &l.business,
        &frame_path(&l.id, "low_bandwidth", ""),
        picture("jpg", 64, 48, 0),
    )
    .await;
    assert_eq!(
        late.status, 403,
        "the invitation ends with the inspection: {}",
        late.text
    );
    // The log has both, in order, each with its evidence.
    let log = l
        .inspector
        .get(&format!("/api/inspections/{}/events.jsonl", l.id))
        .await
        .text;
    let frames: Vec<Value> = events(&log)
        .into_iter()
        .filter(|e| e["kind"] == "frame")
        .collect();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1]["payload"]["evidence"]["media_type"], "image/png");

    // `audit verify` re-hashes the stills too (the log's, not only the fold's latest), and
    // names the altered one by its event.
    let uuid = l.id.parse().expect("uuid");
    let report = signaling::audit::verify(&app.db, &app.blobs, uuid)
        .await
        .expect("audit");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.evidence_checked, 2);
    let sha = sha256_hex(&jpeg);
    let root = app.blobs.local_root().expect("local blobs");
    let blob = root.join("sha256").join(&sha[..2]).join(&sha);
    assert!(blob.is_file(), "{}", blob.display());
    std::fs::write(&blob, b"not the still").expect("alter the blob");
    let report = signaling::audit::verify(&app.db, &app.blobs, uuid)
        .await
        .expect("audit");
    assert_eq!(report.evidence_problems.len(), 1, "{report:?}");
    assert_eq!(
        report.evidence_problems[0].seq,
        frames[0]["seq"].as_u64().expect("seq")
    );
    app.stop().await;
}

/// The stills of one phone are bounded (`[live] frames_per_participant`).
#[tokio::test]
async fn stills_past_the_quota_are_refused_and_store_nothing() {
    let app = spawn_app_with(|c| c.live.frames_per_participant = 1).await;
    let l = live_inspection(&app, "inspector1").await;
    let r = upload(
        &l.business,
        &frame_path(&l.id, "low_bandwidth", ""),
        picture("jpg", 64, 48, 1),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = app.dump_all().await;
    let r = upload(
        &l.business,
        &frame_path(&l.id, "low_bandwidth", ""),
        picture("jpg", 64, 48, 2),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, "quota_exceeded"), "{}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("stills")),
        "{}",
        r.text
    );
    assert_eq!(
        app.dump_all().await,
        before,
        "the refused still stored something"
    );
    app.stop().await;
}

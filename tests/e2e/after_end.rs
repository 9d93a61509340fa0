//! Issue 10, item 3: after the end the invitation is no longer a key to the live room. Before,
//! accepting an invitation of a finished inspection returned a guest session, and the guest
//! could open the socket, and download the recording and the event log for the invitation's
//! whole lifetime. Now: accepting leads to the results (a results access only, `live: false`),
//! no socket opens, no upload is taken, and the raw recording and log are the business's only
//! when `business_raw_access` is set. Each is tried from outside over real HTTP and WebSocket.

use inspector_tests::{spawn_app_with, ws_connect, Client, Role, TestApp};
use serde_json::json;

/// An inspection with a real (synthetic camera) recording, finished; the business accepted
/// while it was live. Returns the inspector, the business, the id and the invitation token.
async fn finished_with_recording(app: &TestApp) -> (Client, Client, String, String) {
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    let r = insp
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    let token = r.body["token"].as_str().expect("token").to_string();
    let mut business = app.anonymous();
    let acc = business.accept(&token).await;
    assert_eq!(acc.status, 200, "{}", acc.text);
    assert_eq!(
        acc.body["live"], true,
        "before the end the link opens the room"
    );
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "live"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let started = signaling::db::now_micros();
    // 12 s of camera journaled while live, as the media peer does.
    let dir = app.data_dir.path().join("recordings");
    let spec = media_recorder::testsrc::SegmentSpec::new(0, started - 1_000_000, 12_000_000);
    let inspection = id.clone();
    tokio::task::spawn_blocking(move || {
        media_recorder::testsrc::write_segment(&dir, &inspection, spec)
    })
    .await
    .expect("join")
    .expect("journals");
    // The inspector's voice from 3 s to 8 s (its microphone; no camera).
    let dir = app.data_dir.path().join("recordings");
    let mut voice = media_recorder::testsrc::SegmentSpec::new(1, started + 2_000_000, 5_000_000);
    voice.participant_id = "inspector".into();
    let inspection = id.clone();
    tokio::task::spawn_blocking(move || {
        media_recorder::testsrc::write_segment(&dir, &inspection, voice).expect("voice journal");
        let video = dir
            .join(&inspection)
            .join("journal")
            .join("000001-video1.rtpj");
        std::fs::remove_file(video)
    })
    .await
    .expect("join")
    .expect("voice journal");
    // The business's socket while live: it takes part.
    let mut ws = ws_connect(&business, &id).await.expect("live socket");
    assert_eq!(ws.hello(None).await["type"], "welcome");
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "finished"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The socket open at the end stays (the phone sees the act arrive) but the room takes
    // nothing from it any more.
    ws.recv_until(|m| m["type"] == "event" && m["kind"] == "finish")
        .await;
    let item = insp.get(&format!("/api/inspections/{id}")).await.body["items"][0]["id"]
        .as_str()
        .expect("item")
        .to_string();
    let r = ws
        .op(
            "c-after",
            json!({"kind": "comment", "item_id": item, "text": "after the end"}),
        )
        .await;
    assert_eq!(
        (&r["type"], &r["code"]),
        (&json!("error"), &json!("already_finished")),
        "{r}"
    );
    app.live.recordings.settled().await;
    let m = insp
        .get(&format!("/api/inspections/{id}/recording/manifest"))
        .await;
    assert_eq!(m.status, 200, "the recording is finalized: {}", m.text);
    (insp, business, id, token)
}

/// The blobs stored and the evidence events logged.
async fn stored(app: &TestApp, insp: &Client, id: &str) -> (Vec<String>, usize) {
    let blobs = app.blobs.list().await.expect("blob list");
    let r = insp
        .get(&format!("/api/inspections/{id}/events.jsonl"))
        .await;
    (blobs, r.text.matches("\"attach_evidence\"").count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_end_the_invitation_leads_to_the_results_and_nowhere_live() {
    let app = spawn_app_with(|_| {}).await;
    let (insp, business, id, token) = finished_with_recording(&app).await;

    // Attack 1: accept the old link after the end. It leads to the results: no guest session.
    let mut late = app.anonymous();
    let acc = late.accept(&token).await;
    assert_eq!(acc.status, 200, "{}", acc.text);
    assert_eq!(acc.body["live"], false, "{}", acc.body);
    assert!(acc.body["results_url"]
        .as_str()
        .unwrap_or("")
        .contains("/b/#r="));
    let cookies = late.cookie_header().unwrap_or_default();
    assert!(cookies.contains("inspector_results="), "{cookies}");
    assert!(
        !cookies.contains("inspector_guest="),
        "no guest session after the end: {cookies}"
    );
    // What it does lead to: the inspection, its state, its act's place.
    assert_eq!(
        late.get(&format!("/api/inspections/{id}")).await.status,
        200
    );
    assert_eq!(
        late.get(&format!("/api/inspections/{id}/state"))
            .await
            .status,
        200
    );
    // A guest cookie of before the end authorizes nothing by itself now.
    let guest_only = app.anonymous();
    {
        let all = business.cookie_header().unwrap_or_default();
        let guest = all
            .split("; ")
            .find(|c| c.starts_with("inspector_guest="))
            .expect("the business's guest cookie")
            .to_string();
        let r = guest_only
            .get_with(&format!("/api/inspections/{id}"), &[("cookie", &guest)])
            .await;
        assert_eq!(r.status, 401, "an ended guest session: {}", r.text);
    }

    // Attack 2: open the live socket after the end, with the late access and with the
    // business's own cookies of before the end.
    assert_eq!(ws_connect(&late, &id).await.err(), Some(403));
    assert_eq!(ws_connect(&business, &id).await.err(), Some(403));

    // Attack 3: upload after the end. Refused before anything is stored.
    let before = stored(&app, &insp, &id).await;
    let items = insp.get(&format!("/api/inspections/{id}")).await.body["items"][0]["id"]
        .as_str()
        .expect("item")
        .to_string();
    let photo = inspector_tests::images::picture("jpg", 320, 240, 0);
    for c in [&late, &business] {
        let r = c
            .post_raw(
                &format!("/api/inspections/{id}/evidence?item_id={items}"),
                "image/jpeg",
                photo.clone(),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
    assert_eq!(stored(&app, &insp, &id).await, before, "nothing was stored");

    // Attack 4: the raw recording and log, off by default: refused to the business, served
    // to staff.
    for path in [
        "recording",
        "recording/tracks/2",
        "recording/chapters.vtt",
        "events.jsonl",
        "bundle.zip",
    ] {
        for c in [&late, &business] {
            let r = c.get(&format!("/api/inspections/{id}/{path}")).await;
            assert_eq!(
                (r.status, r.code()),
                (403, "forbidden"),
                "{path}: {}",
                r.text
            );
        }
    }
    let (status, _, staff_copy) = insp
        .get_bytes(&format!("/api/inspections/{id}/recording"))
        .await;
    assert_eq!(status, 200);
    assert!(!staff_copy.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_business_raw_access_the_business_reads_its_recording_after_the_end() {
    let app = spawn_app_with(|c| c.business_raw_access = true).await;
    let (insp, _business, id, token) = finished_with_recording(&app).await;
    let mut late = app.anonymous();
    let acc = late.accept(&token).await;
    assert_eq!((acc.status, &acc.body["live"]), (200, &json!(false)));
    let (status, _, copy) = late
        .get_bytes(&format!("/api/inspections/{id}/recording"))
        .await;
    let (_, _, staff_copy) = insp
        .get_bytes(&format!("/api/inspections/{id}/recording"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(copy, staff_copy, "the very file");
    // The recording's hash is logged once it is finalized (the deriver follows the manifest).
    let mut r = late
        .get(&format!("/api/inspections/{id}/events.jsonl"))
        .await;
    for _ in 0..100 {
        if r.text.contains("\"recording_finalized\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        r = late
            .get(&format!("/api/inspections/{id}/events.jsonl"))
            .await;
    }
    assert_eq!(r.status, 200);
    assert!(r.text.contains("\"recording_finalized\""), "{}", r.text);
    // Still nothing live.
    assert_eq!(ws_connect(&late, &id).await.err(), Some(403));
    app.stop().await;
}

/// ffprobe of an audio file's one stream: (codec, packets' (pts s, duration s)).
fn probe_audio(bytes: &[u8]) -> (String, Vec<(f64, f64)>) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), bytes).expect("write");
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-of",
            "json",
            "-show_streams",
            "-show_entries",
        ])
        .args(["packet=pts_time,duration_time"])
        .arg(file.path())
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let streams = v["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 1, "one stream: {v}");
    let n = |x: &serde_json::Value| {
        x.as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .expect("number")
    };
    let packets = v["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| (n(&p["pts_time"]), n(&p["duration_time"])))
        .collect();
    (
        streams[0]["codec_name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        packets,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspectors_voice_is_served_alone_on_the_recordings_timeline() {
    let app = spawn_app_with(|_| {}).await;
    let (insp, _business, id, _token) = finished_with_recording(&app).await;
    let m = insp
        .get(&format!("/api/inspections/{id}/recording/manifest"))
        .await;
    let tracks = m.body["tracks"].as_array().expect("tracks");
    let voice = tracks
        .iter()
        .find(|t| t["feed"] == "inspector_voice" || t["participant_id"] == "inspector")
        .unwrap_or_else(|| panic!("the inspector's voice in {tracks:?}"));
    let index = voice["index"].as_u64().expect("index");
    assert!(
        voice["silence_ms"].as_i64().expect("silence_ms") > 2_000,
        "{voice}"
    );
    let path = format!("/api/inspections/{id}/recording/tracks/{index}");

    let (status, headers, bytes) = insp.get_bytes(&path).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "audio/webm");
    let (codec, packets) = probe_audio(&bytes);
    assert_eq!(codec, "opus");
    // From media time 0 (silence until the inspector spoke), no hole, to where the voice ended.
    assert!(packets[0].0.abs() < 0.001, "starts at {} s", packets[0].0);
    for w in packets.windows(2) {
        let hole = w[1].0 - (w[0].0 + w[0].1);
        assert!(hole < 0.021, "a {hole} s hole at {} s", w[0].0);
    }
    let end = packets.last().map(|p| p.0 + p.1).unwrap_or_default();
    let want = voice["end_ms"].as_f64().expect("end_ms") / 1000.0;
    assert!(
        (end - want).abs() < 0.05,
        "ends at {end} s, the voice at {want} s"
    );
    // Made once: the second answer is the same file, and a range is a range.
    let (_, _, again) = insp.get_bytes(&path).await;
    assert_eq!(again, bytes);
    let r = insp.get_with(&path, &[("Range", "bytes=0-99")]).await;
    assert_eq!(r.status, 206);
    // A video stream or none at all is no audio track.
    for bad in [0, 7] {
        let r = insp
            .get(&format!("/api/inspections/{id}/recording/tracks/{bad}"))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (404, "not_found"),
            "{bad}: {}",
            r.text
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn after_a_cancel_the_invitation_is_closed() {
    let app = spawn_app_with(|_| {}).await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    let r = insp
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    let token = r.body["token"].as_str().expect("token").to_string();
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "cancelled"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut late = app.anonymous();
    let r = late.accept(&token).await;
    assert_eq!((r.status, r.code()), (410, "inspection_closed"));
    app.stop().await;
}

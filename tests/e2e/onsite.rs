//! The on-site queue and photos over HTTP: ordering, device times, idempotence of a replayed
//! queue and of a replayed photo, and the bad inputs (an item not in the checklist, a photo for
//! a finished inspection, op kinds a device may not queue, malformed op ids, an oversized
//! batch, a remote inspection, the track's bound) with stable codes and nothing duplicated.
//! Short videos: made by the real ffmpeg, checked by the server's real ffprobe, replayed once,
//! and the bad ones (not a video, too long, too large, a wrong claimed duration) refused.

use anyhow::{ensure, Context, Result};
use inspector_tests::images::picture;
use inspector_tests::onsite::{create, log, on_site_inspection, OnSite, SITE};
use inspector_tests::{spawn_app, spawn_app_with, Client};
use serde_json::{json, Value};
use uuid::Uuid;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn entry(op: Value, device_time: i64) -> Value {
    json!({"op_id": Uuid::new_v4().to_string(), "device_time": device_time, "op": op})
}

async fn send(api: &Client, id: &str, ops: &[Value]) -> (u16, Value) {
    let r = api
        .post_json(
            &format!("/api/inspections/{id}/queue"),
            &json!({ "ops": ops }),
        )
        .await;
    (r.status, r.body)
}

fn fix(lat: f64, lon: f64, t: i64) -> Value {
    json!({"kind": "location", "lat": lat, "lon": lon, "accuracy": 5.0, "device_ts": t})
}

async fn photo(o: &OnSite, item: &str, op_id: &str, bytes: &[u8]) -> (u16, Value) {
    let t = now_ms();
    let r = o
        .api
        .post_raw(
            &format!(
                "/api/inspections/{}/evidence?item_id={item}&op_id={op_id}&captured_at={t}&lat={}&lon={}&accuracy=7&device_ts={t}",
                o.id, SITE.0, SITE.1
            ),
            "image/jpeg",
            bytes.to_vec(),
        )
        .await;
    (r.status, r.body)
}

#[tokio::test]
async fn a_queue_is_sequenced_in_order_with_device_times_and_replays_change_nothing() -> Result<()>
{
    let app = spawn_app().await;
    let o = on_site_inspection(&app).await?;
    let t0 = now_ms() - 600_000;
    let ops = vec![
        entry(json!({"kind": "start"}), t0),
        entry(
            json!({"kind": "set_result", "item_id": o.items[0], "result": "compliant"}),
            t0 + 1000,
        ),
        entry(fix(SITE.0, SITE.1, t0 + 2000), t0 + 2000),
        // Not in the checklist: refused alone, the rest goes on.
        entry(
            json!({"kind": "set_result", "item_id": "no-such-item", "result": "violation"}),
            t0 + 3000,
        ),
        entry(
            json!({"kind": "finding", "text": "Нет аптечки", "location": {"lat": SITE.0, "lon": SITE.1, "accuracy": 5.0, "device_ts": t0 + 4000}}),
            t0 + 4000,
        ),
        entry(
            json!({"kind": "set_result", "item_id": o.items[1], "result": "violation", "violation": "Нет знака"}),
            t0 + 5000,
        ),
    ];
    let (status, body) = send(&o.api, &o.id, &ops).await;
    ensure!(status == 200, "{body}");
    let results = body["results"].as_array().context("results")?;
    ensure!(results.len() == ops.len(), "{body}");
    ensure!(
        results[3]["status"] == "refused" && results[3]["error"]["code"] == "unknown_item",
        "{}",
        results[3]
    );
    let seqs: Vec<u64> = results
        .iter()
        .filter(|r| r["status"] == "committed")
        .filter_map(|r| r["seq"].as_u64())
        .collect();
    ensure!(
        seqs.len() == 5 && seqs.windows(2).all(|w| w[0] < w[1]),
        "in order: {seqs:?}"
    );

    let events = log(&o.api, &o.id).await?;
    let logged: Vec<(&str, i64)> = events
        .iter()
        .filter(|e| e["client_op_id"].is_string())
        .map(|e| {
            (
                e["client_op_id"].as_str().unwrap_or_default(),
                e["payload"]["device_time"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let expected: Vec<(&str, i64)> = ops
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, e)| {
            (
                e["op_id"].as_str().unwrap_or_default(),
                e["device_time"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    ensure!(logged == expected, "log {logged:?}\nqueue {expected:?}");
    // The device's time is kept beside the server's receipt, which is later.
    for e in events.iter().filter(|e| e["client_op_id"].is_string()) {
        ensure!(
            e["server_ts"].as_i64().unwrap_or(0) / 1000
                > e["payload"]["device_time"].as_i64().unwrap_or(0),
            "{e}"
        );
    }
    let state = o
        .api
        .get(&format!("/api/inspections/{}/state", o.id))
        .await
        .body;
    ensure!(
        state["state"]["findings"][0]["text"] == "Нет аптечки",
        "{state}"
    );
    ensure!(
        state["state"]["findings"][0]["device_time"] == t0 + 4000,
        "{state}"
    );

    // The same queue again: the committed answers, nothing appended, the refusal again.
    let (status, again) = send(&o.api, &o.id, &ops).await;
    ensure!(status == 200, "{again}");
    for (i, (a, b)) in again["results"]
        .as_array()
        .context("results")?
        .iter()
        .zip(results)
        .enumerate()
    {
        if i == 3 {
            ensure!(a["error"]["code"] == "unknown_item", "{a}");
            continue;
        }
        ensure!(
            a["replayed"] == true && a["seq"] == b["seq"] && a["server_ts"] == b["server_ts"],
            "{a} vs {b}"
        );
    }
    ensure!(
        log(&o.api, &o.id).await?.len() == events.len(),
        "a replay appends nothing"
    );

    // A photo with its op id, twice: one event, the same answer.
    let jpg = picture("jpg", 640, 480, 0);
    let op_id = Uuid::new_v4().to_string();
    let (s1, first) = photo(&o, &o.items[1], &op_id, &jpg).await;
    ensure!(s1 == 201, "{first}");
    let (s2, second) = photo(&o, &o.items[1], &op_id, &jpg).await;
    ensure!(s2 == 200 && second["replayed"] == true, "{second}");
    ensure!(
        second["seq"] == first["seq"] && second["evidence"] == first["evidence"],
        "{first} vs {second}"
    );
    let photos = log(&o.api, &o.id)
        .await?
        .into_iter()
        .filter(|e| e["kind"] == "attach_evidence")
        .count();
    ensure!(photos == 1, "{photos} photos logged");
    let (s, bad) = photo(&o, &o.items[1], "not-a-uuid", &jpg).await;
    ensure!(s == 400 && bad["error"]["code"] == "invalid_op_id", "{bad}");

    // Finished: a late photo is refused and stores nothing; the earlier photo's replay still
    // answers what was committed.
    let (_, fin) = send(&o.api, &o.id, &[entry(json!({"kind": "finish"}), now_ms())]).await;
    ensure!(fin["results"][0]["status"] == "committed", "{fin}");
    let (s, late) = photo(
        &o,
        &o.items[2],
        &Uuid::new_v4().to_string(),
        &picture("jpg", 320, 240, 3),
    )
    .await;
    ensure!(
        s == 409 && late["error"]["code"] == "already_finished",
        "{late}"
    );
    let (s, replayed) = photo(&o, &o.items[1], &op_id, &jpg).await;
    ensure!(s == 200 && replayed["seq"] == first["seq"], "{replayed}");
    let (_, after) = send(
        &o.api,
        &o.id,
        &[entry(
            json!({"kind": "set_result", "item_id": o.items[2], "result": "compliant"}),
            now_ms(),
        )],
    )
    .await;
    ensure!(
        after["results"][0]["error"]["code"] == "already_finished",
        "{after}"
    );
    let report = signaling::audit::verify(&app.db, &app.blobs, o.id.parse()?).await?;
    ensure!(
        report.is_clean() && report.evidence_checked == 1,
        "audit: {report:?}"
    );

    // The act of the on-site inspection: results, the finding, the photo with its position,
    // the track's summary.
    let r = inspector_tests::act::form_act(&o.api, &o.id).await;
    ensure!(r.status == 201, "form: {}", r.text);
    let (status, _, pdf) = o
        .api
        .get_bytes(&format!("/api/inspections/{}/act.pdf", o.id))
        .await;
    ensure!(
        status == 200 && pdf.starts_with(b"%PDF"),
        "act.pdf {status}"
    );
    let text = pdf_text(&pdf)?;
    for want in [
        "Нет аптечки",
        "Нет знака",
        "Перемещения инспектора",
        "1 точек",
        "с выездом на место",
    ] {
        ensure!(text.contains(want), "the act has {want:?}:\n{text}");
    }
    ensure!(
        text.contains(&format!("{:.6}", SITE.0)),
        "the photo's position in the act:\n{text}"
    );
    app.stop().await;
    Ok(())
}

fn pdf_text(pdf: &[u8]) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("act.pdf");
    std::fs::write(&path, pdf)?;
    let out = std::process::Command::new("pdftotext")
        .args(["-layout"])
        .arg(&path)
        .arg("-")
        .output()?;
    ensure!(out.status.success(), "pdftotext failed");
    // Line breaks of the layout are not the test's business.
    Ok(String::from_utf8(out.stdout)?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" "))
}

#[tokio::test]
async fn bad_queues_are_refused_with_stable_codes() -> Result<()> {
    let app = spawn_app_with(|c| c.live.track_points_per_participant = 3).await;
    let o = on_site_inspection(&app).await?;
    let t = now_ms();
    let (_, started) = send(&o.api, &o.id, &[entry(json!({"kind": "start"}), t)]).await;
    ensure!(started["results"][0]["status"] == "committed", "{started}");

    let too_many: Vec<Value> = (0..101)
        .map(|i| entry(json!({"kind": "focus", "item_id": o.items[0]}), t + i))
        .collect();
    let (status, body) = send(&o.api, &o.id, &too_many).await;
    ensure!(
        status == 400 && body["error"]["code"] == "batch_too_large",
        "{body}"
    );

    let odd = vec![
        entry(
            json!({"kind": "attach_evidence", "item_id": o.items[0], "evidence": {"id": "x", "kind": "photo"}}),
            t,
        ),
        entry(
            json!({"kind": "act_formed", "sha256": "a".repeat(64), "size": 1, "head_seq": 1, "head_hash": "b".repeat(64), "language": "ru"}),
            t,
        ),
        json!({"op_id": "not-a-uuid", "device_time": t, "op": {"kind": "start"}}),
        json!({"op_id": Uuid::new_v4().to_string(), "device_time": -5, "op": {"kind": "finish"}}),
        entry(json!({"kind": "no_such_op"}), t),
        entry(json!({"kind": "finding", "text": ""}), t),
    ];
    let (status, body) = send(&o.api, &o.id, &odd).await;
    ensure!(status == 200, "{body}");
    let codes: Vec<(&str, &str)> = body["results"]
        .as_array()
        .context("results")?
        .iter()
        .map(|r| {
            (
                r["error"]["code"].as_str().unwrap_or("-"),
                r["error"]["field"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    ensure!(
        codes
            == [
                ("not_queueable", "-"),
                ("not_queueable", "-"),
                ("invalid_field", "op_id"),
                ("invalid_field", "device_time"),
                ("unknown_op", "-"),
                ("invalid_field", "text"),
            ],
        "{codes:?}"
    );

    // The track's bound: three positions, the fourth refused.
    let fixes: Vec<Value> = (0..4)
        .map(|i| entry(fix(SITE.0 + 0.0003 * i as f64, SITE.1, t + i), t + i))
        .collect();
    let (_, body) = send(&o.api, &o.id, &fixes).await;
    let r = body["results"].as_array().context("results")?;
    ensure!(r[..3].iter().all(|x| x["status"] == "committed"), "{body}");
    ensure!(
        r[3]["error"]["code"] == "quota_exceeded" && r[3]["error"]["limit"] == "track_points",
        "{body}"
    );
    let logged = log(&o.api, &o.id).await?;
    ensure!(
        logged.iter().filter(|e| e["kind"] == "location").count() == 3,
        "three positions logged"
    );
    ensure!(
        !logged
            .iter()
            .any(|e| ["attach_evidence", "act_formed"].contains(&e["kind"].as_str().unwrap_or(""))),
        "nothing refused was logged"
    );

    // A remote inspection has no offline queue.
    let remote = create(&o.api, "remote").await?;
    let (status, body) = send(&o.api, &remote, &[entry(json!({"kind": "start"}), t)]).await;
    ensure!(
        status == 409 && body["error"]["code"] == "not_on_site",
        "{body}"
    );
    app.stop().await;
    Ok(())
}

/// A WebM (VP8) of `secs` seconds made by the real ffmpeg, as Chromium's MediaRecorder makes
/// them (no duration in the header: the server must count the packets).
fn webm(secs: u32) -> Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("clip.webm");
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size=320x240:rate=10:duration={secs}"))
        .args(["-c:v", "libvpx", "-b:v", "200k", "-f", "webm"])
        .arg(&out)
        .status()
        .context("ffmpeg is installed")?;
    ensure!(st.success(), "ffmpeg failed");
    Ok(std::fs::read(out)?)
}

async fn video(o: &OnSite, op_id: &str, duration_ms: Option<i64>, bytes: &[u8]) -> (u16, Value) {
    let t = now_ms();
    let d = duration_ms
        .map(|d| format!("&duration_ms={d}"))
        .unwrap_or_default();
    let r = o
        .api
        .post_raw(
            &format!(
                "/api/inspections/{}/evidence?item_id={}&op_id={op_id}&captured_at={t}&lat={}&lon={}&accuracy=7&device_ts={t}{d}",
                o.id, o.items[0], SITE.0, SITE.1
            ),
            "video/webm",
            bytes.to_vec(),
        )
        .await;
    (r.status, r.body)
}

fn ffprobe_duration(bytes: &[u8]) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("stored.webm");
    std::fs::write(&path, bytes)?;
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()?;
    ensure!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)?
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok())
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        .context("the stored video has packets")
}

#[tokio::test]
async fn a_short_video_is_probed_stored_once_and_bad_ones_are_refused() -> Result<()> {
    let app = spawn_app_with(|c| {
        c.max_video_ms = 5_000;
        c.max_video_bytes = 400_000;
    })
    .await;
    let o = on_site_inspection(&app).await?;
    let (_, started) = send(&o.api, &o.id, &[entry(json!({"kind": "start"}), now_ms())]).await;
    ensure!(started["results"][0]["status"] == "committed", "{started}");

    let clip = webm(3)?;
    let op_id = Uuid::new_v4().to_string();
    let (s, first) = video(&o, &op_id, Some(3000), &clip).await;
    ensure!(s == 201, "{first}");
    let ev = &first["evidence"];
    ensure!(
        ev["kind"] == "video" && ev["media_type"] == "video/webm" && ev["width"] == 320,
        "{first}"
    );
    let probed = ev["duration_ms"].as_i64().context("duration_ms")?;
    ensure!((2500..=3200).contains(&probed), "probed {probed} ms");
    // The replayed op id answers the committed upload and keeps nothing more.
    let (s, again) = video(&o, &op_id, Some(3000), &clip).await;
    ensure!(
        s == 200 && again["replayed"] == true && again["seq"] == first["seq"],
        "{again}"
    );

    // What is stored is the very video: the same hash, and ffprobe reads its frames.
    let url = first["url"].as_str().context("url")?;
    let (status, headers, stored) = o.api.get_bytes(url).await;
    ensure!(status == 200, "serve {status}");
    ensure!(headers.get("content-type").and_then(|v| v.to_str().ok()) == Some("video/webm"));
    ensure!(stored == clip, "the stored bytes are the uploaded ones");
    let last = ffprobe_duration(&stored)?;
    ensure!(last > 2.0, "ffprobe's last packet at {last} s");

    // Bad input, each with its stable code.
    let cases: Vec<(Vec<u8>, Option<i64>, u16, &str)> = vec![
        (
            b"just some text, not a video".to_vec(),
            Some(1000),
            400,
            "unsupported_image_type",
        ),
        (clip.clone(), None, 400, "video_duration_required"),
        // Longer than the phone says it recorded: not that recording.
        (clip.clone(), Some(500), 400, "video_duration_mismatch"),
        (webm(8)?, Some(8000), 400, "video_too_long"),
        // A WebM header and noise: ffprobe cannot demux it.
        (
            [&clip[..200], &[0x55u8; 4000][..]].concat(),
            Some(1000),
            400,
            "video_unreadable",
        ),
        // Over max_video_bytes: refused by size before any probe.
        (
            [&clip[..200], &vec![0u8; 450_000][..]].concat(),
            Some(1000),
            413,
            "payload_too_large",
        ),
    ];
    for (bytes, d, want_status, want_code) in cases {
        let (s, body) = video(&o, &Uuid::new_v4().to_string(), d, &bytes).await;
        ensure!(
            s == want_status && body["error"]["code"] == want_code,
            "want {want_status} {want_code}: {s} {body}"
        );
    }
    let videos = log(&o.api, &o.id)
        .await?
        .into_iter()
        .filter(|e| e["kind"] == "attach_evidence")
        .count();
    ensure!(videos == 1, "{videos} evidence events");
    ensure!(
        app.blobs.temporaries().await? == 0,
        "refused uploads leave no staged bytes"
    );

    // The act lists the video with its name, duration and hash.
    let (_, fin) = send(&o.api, &o.id, &[entry(json!({"kind": "finish"}), now_ms())]).await;
    ensure!(fin["results"][0]["status"] == "committed", "{fin}");
    let report = signaling::audit::verify(&app.db, &app.blobs, o.id.parse()?).await?;
    ensure!(
        report.is_clean() && report.evidence_checked == 1,
        "audit: {report:?}"
    );
    let r = inspector_tests::act::form_act(&o.api, &o.id).await;
    ensure!(r.status == 201, "form: {}", r.text);
    let (status, _, pdf) = o
        .api
        .get_bytes(&format!("/api/inspections/{}/act.pdf", o.id))
        .await;
    ensure!(status == 200, "act.pdf {status}");
    let text = pdf_text(&pdf)?;
    let eid = ev["id"].as_str().context("id")?;
    for want in ["видео", &format!("evidence-{eid}.webm"), "0:00:03"] {
        ensure!(text.contains(want), "the act has {want:?}:\n{text}");
    }
    app.stop().await;
    Ok(())
}

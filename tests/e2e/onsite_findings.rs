//! Issue 21's free-form findings with their own photos and videos, and the queued track's
//! clock: over HTTP, against the real server (SQLite, or PostgreSQL with
//! `INSPECTOR_TEST_PG_URL`), the real ffmpeg/ffprobe, pdftotext and `audit verify`.
//!
//! A finding takes evidence by its seq or, still queued on the phone, by its op id; every bad
//! target (unknown seq, the seq of a non-finding, an op id of no finding, both or neither of
//! item and finding) is refused with a stable code and stores nothing. Queued positions are
//! scored at their device time shifted by the batch's measured clock offset: an hour-old
//! track from a correct clock is no clock skew, a clock two hours off is, once.

use anyhow::{ensure, Context, Result};
use inspector_tests::images::picture;
use inspector_tests::onsite::{create, log, on_site_inspection, OnSite, SITE};
use inspector_tests::{spawn_app_with, Client};
use serde_json::{json, Value};
use uuid::Uuid;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn entry(op_id: &str, op: Value, device_time: i64) -> Value {
    json!({"op_id": op_id, "device_time": device_time, "op": op})
}

fn new_id() -> String {
    Uuid::new_v4().to_string()
}

async fn send(api: &Client, id: &str, body: &Value) -> Result<Vec<Value>> {
    let r = api
        .post_json(&format!("/api/inspections/{id}/queue"), body)
        .await;
    ensure!(r.status == 200, "queue: {}", r.text);
    Ok(r.body["results"].as_array().context("results")?.clone())
}

/// Uploads `bytes` with the given target query (`item_id=…`, `finding_seq=…`, …).
async fn upload(
    o: &OnSite,
    target: &str,
    content_type: &str,
    extra: &str,
    bytes: &[u8],
) -> (u16, Value) {
    let t = now_ms();
    let r = o
        .api
        .post_raw(
            &format!(
                "/api/inspections/{}/evidence?{target}&op_id={}&captured_at={t}&lat={}&lon={}&accuracy=7&device_ts={t}{extra}",
                o.id,
                new_id(),
                SITE.0,
                SITE.1
            ),
            content_type,
            bytes.to_vec(),
        )
        .await;
    (r.status, r.body)
}

/// A WebM (VP8) of `secs` seconds made by the real ffmpeg.
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

fn pdf_text(pdf: &[u8]) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("act.pdf");
    std::fs::write(&path, pdf)?;
    let out = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()?;
    ensure!(out.status.success(), "pdftotext failed");
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test]
async fn a_finding_takes_its_own_photos_and_video_and_bad_targets_store_nothing() -> Result<()> {
    let app = spawn_app_with(|c| {
        c.max_video_ms = 5_000;
    })
    .await;
    let o = on_site_inspection(&app).await?;
    let t0 = now_ms() - 60_000;
    let (finding_op, result_op) = (new_id(), new_id());
    let results = send(
        &o.api,
        &o.id,
        &json!({"sent_at": now_ms(), "ops": [
            entry(&new_id(), json!({"kind": "start"}), t0),
            entry(&finding_op, json!({"kind": "finding", "text": "Запасной выход загромождён",
                "location": {"lat": SITE.0, "lon": SITE.1, "accuracy": 6.0, "device_ts": t0 + 1000}}), t0 + 1000),
            entry(&result_op, json!({"kind": "set_result", "item_id": o.items[0], "result": "compliant"}), t0 + 2000),
        ]}),
    )
    .await?;
    ensure!(
        results.iter().all(|r| r["status"] == "committed"),
        "{results:?}"
    );
    let finding_seq = results[1]["seq"].as_u64().context("finding seq")?;
    let result_seq = results[2]["seq"].as_u64().context("result seq")?;

    // The photo taken while the finding was still queued names it by its op id.
    let jpg = picture("jpg", 640, 480, 1);
    let (s, by_op) = upload(
        &o,
        &format!("finding_op_id={finding_op}"),
        "image/jpeg",
        "",
        &jpg,
    )
    .await;
    ensure!(s == 201, "{by_op}");
    ensure!(
        by_op["finding_seq"] == finding_seq && by_op.get("item_id").is_none(),
        "{by_op}"
    );
    let (s, by_seq) = upload(
        &o,
        &format!("finding_seq={finding_seq}"),
        "image/jpeg",
        "",
        &picture("jpg", 320, 240, 2),
    )
    .await;
    ensure!(s == 201 && by_seq["finding_seq"] == finding_seq, "{by_seq}");
    let clip = webm(2)?;
    let (s, vid) = upload(
        &o,
        &format!("finding_seq={finding_seq}"),
        "video/webm",
        "&duration_ms=2000",
        &clip,
    )
    .await;
    ensure!(s == 201 && vid["evidence"]["kind"] == "video", "{vid}");

    let events_before = log(&o.api, &o.id).await?.len();
    let blobs_before = app.blobs.list().await?.len();
    let random_op = new_id();
    let item0 = &o.items[0];
    for (target, code) in [
        ("finding_seq=99999".to_string(), "unknown_finding"),
        (format!("finding_seq={result_seq}"), "unknown_finding"),
        (format!("finding_op_id={random_op}"), "unknown_finding"),
        // An op id that is a committed op, but no finding.
        (format!("finding_op_id={result_op}"), "unknown_finding"),
        ("finding_op_id=not-a-uuid".to_string(), "invalid_op_id"),
        (
            format!("item_id={item0}&finding_seq={finding_seq}"),
            "invalid_evidence_target",
        ),
        (
            format!("item_id={item0}&finding_op_id={finding_op}"),
            "invalid_evidence_target",
        ),
        ("lang=ru".to_string(), "invalid_evidence_target"),
    ] {
        let (s, body) = upload(&o, &target, "image/jpeg", "", &jpg).await;
        ensure!(
            s == 400 && body["error"]["code"] == code,
            "{target}: {s} {body}"
        );
    }
    ensure!(
        log(&o.api, &o.id).await?.len() == events_before,
        "a refused upload appends nothing"
    );
    ensure!(
        app.blobs.list().await?.len() == blobs_before,
        "a refused upload stores no blob"
    );

    // The state: the finding's own list, the items untouched.
    let st = o
        .api
        .get(&format!("/api/inspections/{}/state", o.id))
        .await
        .body;
    let f = &st["state"]["findings"][0];
    let kinds: Vec<&str> = f["evidence"]
        .as_array()
        .context("the finding's evidence")?
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    ensure!(kinds == ["photo", "photo", "video"], "{f}");
    ensure!(
        st["state"]["items"]
            .as_object()
            .context("items")?
            .values()
            .all(|i| i["evidence"].as_array().is_none_or(|e| e.is_empty())),
        "{st}"
    );
    // Served as the log names it, byte for byte.
    let url = by_op["url"].as_str().context("url")?;
    let (s, _, served) = o.api.get_bytes(url).await;
    ensure!(s == 200 && served == jpg, "served {s}");

    // The act lists the finding's photos and video with hash, time and position.
    let fin = send(
        &o.api,
        &o.id,
        &json!({"ops": [entry(&new_id(), json!({"kind": "finish"}), now_ms())]}),
    )
    .await?;
    ensure!(fin[0]["status"] == "committed", "{fin:?}");
    let report = signaling::audit::verify(&app.db, &app.blobs, o.id.parse()?).await?;
    ensure!(
        report.is_clean() && report.evidence_checked == 3,
        "audit: {report:?}"
    );
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
    let flat: String = text.split_whitespace().collect();
    ensure!(
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains("Запасной выход загромождён"),
        "{text}"
    );
    ensure!(
        flat.matches("Факт1").count() == 3,
        "three rows of the finding:\n{text}"
    );
    for e in [&by_op, &by_seq, &vid] {
        let sha = e["evidence"]["sha256"].as_str().context("sha256")?;
        // The act prints a hash in lines of 22 digits (the cell is narrow), and pdftotext
        // may interleave them with the next cells: each line must be there.
        for part in sha.as_bytes().chunks(22) {
            let part = std::str::from_utf8(part)?;
            ensure!(flat.contains(part), "the act has {sha} ({part}):\n{text}");
        }
    }
    ensure!(
        flat.contains(&format!("{:.6},{:.6}", SITE.0, SITE.1)),
        "the evidence's position in the act:\n{text}"
    );
    app.stop().await;
    Ok(())
}

/// The verdict events of the log that carry a `clock_skew` signal.
fn skew_verdicts(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "verdict")
        .filter(|e| {
            e["payload"]["signals"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["name"] == "clock_skew"))
        })
        .cloned()
        .collect()
}

/// Six fixes 30 s apart near the site, the first `age_ms` before the send, on a device clock
/// `behind_ms` behind the server's, with the request's `sent_at` on that clock.
fn offline_track(age_ms: i64, behind_ms: i64) -> Value {
    let sent = now_ms() - behind_ms;
    let ops: Vec<Value> = (0..6)
        .map(|i| {
            let t = sent - age_ms + 30_000 * i;
            let fix = json!({"kind": "location", "lat": SITE.0 + 0.00005 * i as f64, "lon": SITE.1,
                "accuracy": 8.3 + 0.1 * i as f64, "device_ts": t});
            entry(&new_id(), fix, t)
        })
        .collect();
    json!({"sent_at": sent, "ops": ops})
}

#[tokio::test]
async fn an_offline_track_is_scored_at_its_device_time_not_its_receipt() -> Result<()> {
    let app = spawn_app_with(|_| {}).await;
    let o = on_site_inspection(&app).await?;
    let hour = 3_600_000;
    // A send time that is no time is refused whole, before any op is applied.
    let before = log(&o.api, &o.id).await?.len();
    let r = o
        .api
        .post_json(
            &format!("/api/inspections/{}/queue", o.id),
            &json!({"sent_at": -5, "ops": [entry(&new_id(), json!({"kind": "start"}), now_ms())]}),
        )
        .await;
    ensure!(
        r.status == 400 && r.code() == "invalid_sent_at",
        "{}",
        r.text
    );
    ensure!(log(&o.api, &o.id).await?.len() == before, "nothing applied");
    // An hour offline, the phone's clock right: no clock skew.
    send(&o.api, &o.id, &json!({"sent_at": now_ms(), "ops": [entry(&new_id(), json!({"kind": "start"}), now_ms())]})).await?;
    let r = send(&o.api, &o.id, &offline_track(hour, 0)).await?;
    ensure!(r.iter().all(|x| x["status"] == "committed"), "{r:?}");
    let events = log(&o.api, &o.id).await?;
    ensure!(
        skew_verdicts(&events).is_empty(),
        "no clock skew: {:?}",
        events
            .iter()
            .filter(|e| e["kind"] == "verdict")
            .collect::<Vec<_>>()
    );
    let track = o
        .api
        .get(&format!("/api/inspections/{}/track", o.id))
        .await
        .body;
    let points = track["points"].as_array().context("points")?;
    ensure!(points.len() == 6, "{track}");
    for p in points {
        let off = p["clock_offset_ms"].as_i64().context("offset")?;
        ensure!(
            p["device_claimed"] == true && (0..5_000).contains(&off),
            "{p}"
        );
    }

    // Another inspection, the phone's clock two hours behind: clock skew, judged once for the
    // batch (one verdict), and a second batch with the same clock adds none.
    let other = create(&o.api, "on_site").await?;
    send(&o.api, &other, &json!({"sent_at": now_ms() - 2 * hour, "ops": [entry(&new_id(), json!({"kind": "start"}), now_ms() - 2 * hour)]})).await?;
    let r = send(&o.api, &other, &offline_track(hour, 2 * hour)).await?;
    ensure!(r.iter().all(|x| x["status"] == "committed"), "{r:?}");
    let skews = skew_verdicts(&log(&o.api, &other).await?);
    ensure!(skews.len() == 1, "one clock-skew verdict: {skews:?}");
    let signal = skews[0]["payload"]["signals"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "clock_skew"))
        .context("signal")?;
    let median = signal["value"]["median_skew_s"]
        .as_f64()
        .context("median")?;
    ensure!((7200.0..7210.0).contains(&median), "{signal}");
    send(&o.api, &other, &offline_track(hour / 2, 2 * hour)).await?;
    let after = log(&o.api, &other).await?;
    ensure!(skew_verdicts(&after).len() == 1, "not again per batch");
    let track = o
        .api
        .get(&format!("/api/inspections/{other}/track"))
        .await
        .body;
    ensure!(
        track["points"].as_array().is_some_and(|p| p.len() == 12
            && p.iter().all(|p| p["device_claimed"] == true
                && p["clock_offset_ms"]
                    .as_i64()
                    .is_some_and(|o| (2 * hour..2 * hour + 5_000).contains(&o)))),
        "{track}"
    );
    app.stop().await;
    Ok(())
}

/// A map tile server on a local port: answers every GET with the same PNG, counts requests.
async fn tile_server() -> Result<(String, std::sync::Arc<std::sync::atomic::AtomicUsize>)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let png = picture("png", 256, 256, 4);
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let png = png.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                if !buf[..n].starts_with(b"GET /tiles/") {
                    let _ = sock.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    png.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&png).await;
            });
        }
    });
    Ok((origin, hits))
}

/// Map tiles are drawn under the reviewer's track only when an administrator configured a
/// tile server: then the page's image policy names that server, the track answer carries the
/// template and Chromium loads the tiles; by default neither (the other tests: no `tiles`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn map_tiles_under_the_track_only_when_configured() -> Result<()> {
    use std::sync::atomic::Ordering;
    let plain = spawn_app_with(|_| {}).await;
    let r = plain.anonymous().get("/").await;
    let csp = r
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    ensure!(csp.contains("img-src 'self' data: blob:;"), "{csp}");
    let o = on_site_inspection(&plain).await?;
    let track = o
        .api
        .get(&format!("/api/inspections/{}/track", o.id))
        .await
        .body;
    ensure!(track.get("tiles").is_none(), "no tiles by default: {track}");
    plain.stop().await;

    let (origin, hits) = tile_server().await?;
    let template = format!("{origin}/tiles/{{z}}/{{x}}/{{y}}.png");
    let t = template.clone();
    let app = spawn_app_with(move |c| {
        c.review.tile_url = Some(t);
        c.review.tile_attribution = Some("© Test tiles".into());
    })
    .await;
    let r = app.anonymous().get("/").await;
    let csp = r
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    ensure!(
        csp.contains(&format!("img-src 'self' data: blob: {origin};")),
        "{csp}"
    );
    let o = on_site_inspection(&app).await?;
    let t0 = now_ms();
    let mut ops = vec![entry(&new_id(), json!({"kind": "start"}), t0)];
    for i in 0..3 {
        let fix = json!({"kind": "location", "lat": SITE.0 + 0.0004 * i as f64, "lon": SITE.1,
            "accuracy": 6.5, "device_ts": t0 + 1000 * i});
        ops.push(entry(&new_id(), fix, t0 + 1000 * i));
    }
    ops.push(entry(&new_id(), json!({"kind": "finish"}), t0 + 5000));
    send(&o.api, &o.id, &json!({"sent_at": now_ms(), "ops": ops})).await?;
    let track = o
        .api
        .get(&format!("/api/inspections/{}/track", o.id))
        .await
        .body;
    ensure!(
        track["tiles"]["url"] == template && track["tiles"]["attribution"] == "© Test tiles",
        "{track}"
    );
    let p = inspector_tests::onsite::phone(&app).await?;
    p.goto(&format!("{}/review/#{}", app.address, o.id)).await?;
    p.wait_true(
        "the tiles drawn under the track",
        "const c = document.getElementById('track'); \
         return !document.getElementById('track-panel').hidden && c.dataset.points === '3' \
           && Number(c.dataset.tiles) > 0",
        std::time::Duration::from_secs(30),
    )
    .await?;
    ensure!(hits.load(Ordering::SeqCst) > 0, "the tile server was asked");
    p.js("document.getElementById('track-panel').scrollIntoView(); return true")
        .await?;
    p.screenshot("onsite-review-track-tiles.ru").await?;
    p.close().await?;
    app.stop().await;
    Ok(())
}

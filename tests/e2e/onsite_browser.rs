//! Issue 21's "Done when" in real headless Chromium: the inspector's phone loads the on-site
//! page online, goes offline (DevTools network emulation), starts the inspection, marks items,
//! writes a violation and a finding, takes two photos with the fake camera and walks a short
//! route (geolocation overrides); nothing reaches the server meanwhile. Back online, every op
//! and photo arrives exactly once, in the phone's order, with its device time; the track is on
//! the reviewer page; the audit is clean; the same queue sent again changes nothing. The
//! second test reloads the page while offline: the service worker serves it and the queue in
//! IndexedDB survives.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use inspector_tests::browser::Browser;
use inspector_tests::onsite::{log, on_site_inspection, phone, set_offline, OnSite, SITE};
use inspector_tests::{spawn_app, TestApp};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

/// The route: about 30 m north per step from the site.
const ROUTE: [(f64, f64); 3] = [
    (SITE.0 + 0.0003, SITE.1),
    (SITE.0 + 0.0006, SITE.1),
    (SITE.0 + 0.0009, SITE.1 + 0.0003),
];

async fn open_page(app: &TestApp, p: &Browser, id: &str) -> Result<()> {
    p.goto(&format!("{}/onsite/#{id}", app.address)).await?;
    p.wait_true(
        "the inspection downloaded and the page kept by the service worker",
        "return document.body.dataset.ready === 'cached' && !!navigator.serviceWorker.controller \
         && document.querySelectorAll('#os-items .onsite-item').length >= 3",
        T,
    )
    .await
}

/// Scrolls the element to the middle of the screen (clear of the sticky header), then taps it.
async fn tap(p: &Browser, css: &str) -> Result<()> {
    let el = p.wait_for(css).await?;
    p.client
        .execute(
            "arguments[0].scrollIntoView({block: 'center'}); return true",
            vec![serde_json::to_value(&el)?],
        )
        .await?;
    p.click(css).await
}

fn item_css(item: &str) -> String {
    format!("#os-items .onsite-item[data-item-id=\"{item}\"]")
}

async fn queued(p: &Browser) -> Result<u64> {
    let v = p
        .js("return Number(document.getElementById('os-queue').dataset.count)")
        .await?;
    v.as_u64().context("queue count")
}

async fn wait_queued(p: &Browser, n: u64, what: &str) -> Result<()> {
    p.wait_true(
        what,
        &format!("return document.getElementById('os-queue').dataset.count === '{n}'"),
        T,
    )
    .await
}

async fn take_photo(p: &Browser, item: &str) -> Result<()> {
    shoot(p, &format!("{} .photo-btn", item_css(item))).await
}

/// Opens the camera with the button at `css`, takes a photo, waits for it to be queued.
async fn shoot(p: &Browser, css: &str) -> Result<()> {
    let before = queued(p).await?;
    tap(p, css).await?;
    p.wait_true(
        "the camera",
        "const v = document.getElementById('os-video'); return document.getElementById('os-camera').open && v.videoWidth > 0",
        T,
    )
    .await?;
    tap(p, "#os-shutter").await?;
    wait_queued(p, before + 1, "the photo queued").await?;
    p.wait_true(
        "the camera closed",
        "return !document.getElementById('os-camera').open",
        T,
    )
    .await
}

async fn walk(p: &Browser, app: &TestApp, steps: &[(f64, f64)]) -> Result<()> {
    for (lat, lon) in steps {
        let before = p
            .js("return Number(document.getElementById('os-geo').dataset.points)")
            .await?
            .as_u64()
            .unwrap_or(0);
        p.set_geolocation(&app.address, *lat, *lon, 6.0).await?;
        p.wait_true(
            "the position kept in the track",
            &format!("return Number(document.getElementById('os-geo').dataset.points) > {before}"),
            T,
        )
        .await?;
    }
    Ok(())
}

/// What the phone's IndexedDB says it sent, in queue order: `[{op_id, type, kind, answer}]`.
async fn sent_by_phone(p: &Browser, id: &str) -> Result<Vec<Value>> {
    let v = p
        .js_async(&format!(
            "const done = arguments[arguments.length - 1]; \
             import('/assets/onsite-queue.js').then(q => q.sent('{id}')).then(list => \
               done(list.map(e => ({{op_id: e.op_id, type: e.type, kind: e.op ? e.op.kind : 'photo', \
                 device_time: e.device_time, answer: e.answer}})))).catch(e => done({{error: String(e)}}))"
        ))
        .await?;
    v.as_array().cloned().context(format!("sent list: {v}"))
}

/// Every op and photo arrived exactly once, in the phone's order, with its device time.
async fn check_arrival(o: &OnSite, sent: &[Value]) -> Result<Vec<Value>> {
    let events = log(&o.api, &o.id).await?;
    let by_op: Vec<&Value> = events
        .iter()
        .filter(|e| e["client_op_id"].is_string())
        .collect();
    let ids: Vec<&str> = by_op
        .iter()
        .filter_map(|e| e["client_op_id"].as_str())
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    ensure!(
        unique.len() == ids.len(),
        "an op id is logged twice: {ids:?}"
    );
    let phone_ids: Vec<&str> = sent.iter().filter_map(|e| e["op_id"].as_str()).collect();
    ensure!(
        ids == phone_ids,
        "the log holds the phone's ops in its order\nlog:   {ids:?}\nphone: {phone_ids:?}"
    );
    for (e, s) in by_op.iter().zip(sent) {
        ensure!(
            s["answer"]["status"] == "committed" && s["answer"]["seq"] == e["seq"],
            "the phone's answer is the logged event: {s} / {e}"
        );
        let device_time = s["device_time"].as_i64().context("device time")?;
        if e["kind"] == "attach_evidence" {
            ensure!(
                e["payload"]["evidence"]["captured_at"].as_i64() == Some(device_time),
                "the photo keeps its capture time: {e}"
            );
            ensure!(
                e["payload"]["evidence"]["location"]["lat"].is_number(),
                "the photo has its position: {e}"
            );
        } else {
            ensure!(
                e["payload"]["device_time"].as_i64() == Some(device_time),
                "the op keeps its device time beside the server's: {e}"
            );
        }
        // The device time is before the server's receipt (the op waited in the queue).
        let server_ms = e["server_ts"].as_i64().context("server_ts")? / 1000;
        ensure!(
            device_time <= server_ms + 1000,
            "device {device_time} vs server {server_ms}"
        );
    }
    Ok(events)
}

async fn check_track_on_review(
    app: &TestApp,
    p: &Browser,
    o: &OnSite,
    points: usize,
) -> Result<()> {
    let track = o.api.get(&format!("/api/inspections/{}/track", o.id)).await;
    ensure!(track.status == 200, "track: {}", track.text);
    ensure!(
        track.body["points"].as_array().map(Vec::len) == Some(points),
        "{points} points: {}",
        track.body
    );
    // Queued offline, every position is the device's claim, scored with the batch's offset.
    ensure!(
        track.body["points"].as_array().is_some_and(|ps| ps
            .iter()
            .all(|p| p["device_claimed"] == true && p["clock_offset_ms"].is_i64())),
        "device-claimed points: {}",
        track.body
    );
    let s = &track.body["summary"];
    ensure!(
        s["length_m"].as_f64().unwrap_or(0.0) > 60.0
            && s["max_site_distance_m"].as_f64().unwrap_or(0.0) > 90.0,
        "the route's length and distance from the site: {s}"
    );
    p.goto(&format!("{}/review/#{}", app.address, o.id)).await?;
    p.wait_true(
        "the track drawn on the reviewer page",
        &format!(
            "const c = document.getElementById('track'); \
             return !document.getElementById('track-panel').hidden && c.dataset.points === '{points}' \
               && c.dataset.claimed === '{points}' \
               && document.getElementById('track-summary').textContent.length > 0 \
               && document.querySelectorAll('#findings .finding').length === 1 \
               && document.querySelectorAll('#findings .finding .thumb').length === 1"
        ),
        T,
    )
    .await?;
    // No recording of an on-site inspection: no empty player; the evidence is still shown.
    p.wait_true(
        "no player without a recording",
        "return document.body.dataset.player === 'none' && document.getElementById('video').hidden            && document.getElementById('video').offsetParent === null            && document.querySelectorAll('#evidence .thumb').length >= 1",
        T,
    )
    .await?;
    p.js("document.getElementById('track-panel').scrollIntoView(); return true")
        .await?;
    p.screenshot("onsite-review-track.ru").await?;
    Ok(())
}

/// Sends the phone's queue again through the API: everything answers its committed seq, and
/// the log does not grow.
async fn replay(o: &OnSite, events_before: usize, sent: &[Value], ops: &[Value]) -> Result<()> {
    let r = o
        .api
        .post_json(
            &format!("/api/inspections/{}/queue", o.id),
            &json!({ "ops": ops }),
        )
        .await;
    ensure!(r.status == 200, "replay: {}", r.text);
    for (res, s) in r.body["results"]
        .as_array()
        .context("results")?
        .iter()
        .zip(sent)
    {
        ensure!(
            res["status"] == "committed" && res["replayed"] == true,
            "replayed: {res}"
        );
        ensure!(res["seq"] == s["answer"]["seq"], "{res} vs {s}");
    }
    let after = log(&o.api, &o.id).await?.len();
    ensure!(
        after == events_before,
        "the replay appended {} events",
        after - events_before
    );
    Ok(())
}

/// The phone's queued ops as it sent them, rebuilt from the log (for the replay).
fn queued_ops(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["client_op_id"].is_string() && e["kind"] != "attach_evidence")
        .map(|e| {
            let mut op = e["payload"].clone();
            let device_time = op["device_time"].clone();
            if let Some(m) = op.as_object_mut() {
                m.remove("device_time");
                m.remove("clock_offset_ms");
                m.insert("kind".into(), e["kind"].clone());
            }
            json!({"op_id": e["client_op_id"], "device_time": device_time, "op": op})
        })
        .collect()
}

async fn offline_inspection(reload: bool) -> Result<()> {
    let app = spawn_app().await;
    let o = on_site_inspection(&app).await?;
    let p = phone(&app).await?;
    open_page(&app, &p, &o.id).await?;
    p.screenshot("onsite-online.ru").await?;
    let before = log(&o.api, &o.id).await?.len();

    set_offline(&p, true).await?;
    p.wait_true(
        "the page knows it is offline",
        "return document.getElementById('os-net').dataset.state === 'offline'",
        T,
    )
    .await?;
    tap(&p, "#os-start").await?;
    wait_queued(&p, 1, "start queued").await?;
    let (a, b, c) = (&o.items[0], &o.items[1], &o.items[2]);
    tap(
        &p,
        &format!("{} .result-btn[data-result=compliant]", item_css(a)),
    )
    .await?;
    wait_queued(&p, 2, "a result queued").await?;
    tap(
        &p,
        &format!("{} .result-btn[data-result=violation]", item_css(b)),
    )
    .await?;
    wait_queued(&p, 3, "a violation queued").await?;
    p.fill(
        &format!("{} .violation-text", item_css(b)),
        "Огнетушитель просрочен",
    )
    .await?;
    // Leaving the box commits the description (its change event).
    p.js("document.activeElement.blur(); return true").await?;
    wait_queued(&p, 4, "the violation's description queued").await?;
    take_photo(&p, b).await?;
    walk(&p, &app, &ROUTE[..1]).await?;

    if reload {
        // The page comes back from the service worker, the queue from IndexedDB.
        let kept = queued(&p).await?;
        ensure!(kept >= 6, "{kept} queued before the reload");
        p.js("location.reload(); return true").await?;
        p.wait_true(
            "the page reloaded offline with its queue",
            &format!(
                "return document.body.dataset.ready === 'cached' && \
                 document.getElementById('os-net').dataset.state === 'offline' && \
                 document.getElementById('os-queue').dataset.count === '{kept}'"
            ),
            T,
        )
        .await?;
        p.screenshot("onsite-reloaded-offline.ru").await?;
    }

    take_photo(&p, c).await?;
    tap(
        &p,
        &format!("{} .result-btn[data-result=not_applicable]", item_css(c)),
    )
    .await?;
    walk(&p, &app, &ROUTE[1..]).await?;
    p.fill("#os-finding-text", "Запасной выход загромождён")
        .await?;
    tap(&p, "#os-finding-add").await?;
    p.wait_true(
        "the finding shown as queued",
        "return document.querySelectorAll('#os-findings .finding[data-queued=\"1\"]').length === 1",
        T,
    )
    .await?;
    // A photo of the finding while it is still queued: it names the finding by its op id.
    shoot(&p, "#os-findings .finding[data-queued=\"1\"] .photo-btn").await?;
    p.wait_true(
        "the finding's photo counted on the phone",
        "return document.querySelector('#os-findings .finding .photo-count')?.dataset.count === '1'",
        T,
    )
    .await?;
    tap(&p, "#os-finish").await?;
    tap(&p, "#os-finish").await?;
    p.wait_true(
        "finished on the phone",
        "return document.getElementById('os-status').dataset.status === 'finished'",
        T,
    )
    .await?;
    let n = queued(&p).await?;
    // start, 2 results, the description, 2 photos, 1 result, 3+ positions, finding, its
    // photo, finish.
    ensure!(n >= 13, "{n} entries queued");
    p.screenshot("onsite-offline-queue.ru").await?;
    ensure!(
        log(&o.api, &o.id).await?.len() == before,
        "nothing reached the server while the phone was offline"
    );

    set_offline(&p, false).await?;
    p.wait_true(
        "the queue sent",
        "return document.getElementById('os-queue').dataset.count === '0' && !!document.body.dataset.synced \
           && document.getElementById('os-status').dataset.status === 'finished'",
        Duration::from_secs(60),
    )
    .await?;
    p.screenshot("onsite-synced.ru").await?;
    let sent = sent_by_phone(&p, &o.id).await?;
    ensure!(sent.len() as u64 == n, "{} sent of {n}", sent.len());
    let events = check_arrival(&o, &sent).await?;
    let photos: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "attach_evidence")
        .collect();
    ensure!(photos.len() == 3, "three photos: {photos:?}");
    // The finding's photo arrived once, bound to the finding the queue committed before it.
    let finding_seq = events
        .iter()
        .find(|e| e["kind"] == "finding")
        .and_then(|e| e["seq"].as_u64())
        .context("the finding")?;
    let of_finding: Vec<&&Value> = photos
        .iter()
        .filter(|e| e["payload"]["finding_seq"].as_u64() == Some(finding_seq))
        .collect();
    ensure!(
        of_finding.len() == 1 && of_finding[0]["payload"].get("item_id").is_none(),
        "one photo of the finding: {photos:?}"
    );
    for ph in &photos {
        let sha = ph["payload"]["evidence"]["sha256"]
            .as_str()
            .context("sha")?;
        ensure!(
            app.blobs.rehash(sha).await?.is_some(),
            "the blob store holds {sha}"
        );
    }
    let points = events.iter().filter(|e| e["kind"] == "location").count();
    ensure!(points >= ROUTE.len(), "{points} positions");
    let state = o.api.get(&format!("/api/inspections/{}/state", o.id)).await;
    ensure!(
        state.body["state"]["lifecycle"]["status"] == "finished"
            && state.body["state"]["items"][b]["violation"] == "Огнетушитель просрочен"
            && state.body["state"]["findings"][0]["text"] == "Запасной выход загромождён"
            && state.body["state"]["findings"][0]["evidence"]
                .as_array()
                .map(Vec::len)
                == Some(1),
        "{}",
        state.body
    );
    let report = signaling::audit::verify(&app.db, &app.blobs, o.id.parse()?).await?;
    ensure!(report.is_clean(), "audit: {report:?}");
    ensure!(report.evidence_checked == 3, "audit: {report:?}");

    replay(
        &o,
        events.len(),
        &sent
            .iter()
            .filter(|s| s["type"] == "op")
            .cloned()
            .collect::<Vec<_>>(),
        &queued_ops(&events),
    )
    .await?;
    check_track_on_review(&app, &p, &o, points).await?;
    p.close().await?;
    app.stop().await;
    Ok(())
}

/// A result changed on the console while the phone was offline: the server's order decides,
/// and after its resync the phone says which of its results was replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn onsite_phone_shows_its_results_the_console_replaced() -> Result<()> {
    let app = spawn_app().await;
    let o = on_site_inspection(&app).await?;
    let r = o
        .api
        .post_json(
            &format!("/api/inspections/{}/transition", o.id),
            &json!({"to": "live"}),
        )
        .await;
    ensure!(r.status == 200, "start: {}", r.text);
    let p = phone(&app).await?;
    open_page(&app, &p, &o.id).await?;
    let (a, b) = (&o.items[0], &o.items[1]);
    tap(
        &p,
        &format!("{} .result-btn[data-result=compliant]", item_css(a)),
    )
    .await?;
    p.wait_true(
        "the result sent at once while online",
        &format!(
            "return document.getElementById('os-queue').dataset.count === '0' && \
             document.querySelector('{} .result-btn[data-result=compliant]').getAttribute('aria-pressed') === 'true' && \
             document.querySelector('{}').dataset.queued === '0'",
            item_css(a),
            item_css(a)
        ),
        T,
    )
    .await?;

    set_offline(&p, true).await?;
    // The console (the same inspector's socket) changes the item meanwhile.
    let mut console = inspector_tests::ws_connect(&o.api, &o.id)
        .await
        .map_err(|s| anyhow::anyhow!("ws {s}"))?;
    console.hello(None).await;
    let ack = console
        .op("console-1", json!({"kind": "set_result", "item_id": a, "result": "violation", "violation": "Нет ответственного"}))
        .await;
    ensure!(ack["type"] == "ack", "{ack}");
    tap(
        &p,
        &format!("{} .result-btn[data-result=not_applicable]", item_css(b)),
    )
    .await?;
    wait_queued(&p, 1, "the phone's own result queued").await?;

    set_offline(&p, false).await?;
    p.wait_true(
        "the phone shows the replaced result and the server's state",
        &format!(
            "const s = document.querySelectorAll('#os-superseded .superseded'); \
             return document.getElementById('os-queue').dataset.count === '0' && s.length === 1 && \
               s[0].dataset.itemId === '{a}' && !document.getElementById('os-superseded').hidden && \
               document.querySelector('{}').dataset.result === 'violation'",
            item_css(a)
        ),
        T,
    )
    .await?;
    p.js("window.scrollTo(0, 0); return true").await?;
    p.screenshot("onsite-superseded.ru").await?;
    let state = o
        .api
        .get(&format!("/api/inspections/{}/state", o.id))
        .await
        .body;
    ensure!(
        state["state"]["items"][a]["result"] == "violation"
            && state["state"]["items"][b]["result"] == "not_applicable",
        "{state}"
    );
    p.close().await?;
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn onsite_offline_queue_arrives_once_in_order_in_chromium() -> Result<()> {
    offline_inspection(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn onsite_queue_survives_a_reload_offline_in_chromium() -> Result<()> {
    offline_inspection(true).await
}

/// A short video recorded with the fake camera (MediaRecorder) while offline is queued on the
/// phone, arrives once when the network is back, and the stored blob is a video the real
/// ffprobe reads, of the length the phone recorded; the reviewer page plays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn onsite_video_recorded_offline_arrives_once_in_chromium() -> Result<()> {
    let app = spawn_app().await;
    let o = on_site_inspection(&app).await?;
    let p = phone(&app).await?;
    open_page(&app, &p, &o.id).await?;
    set_offline(&p, true).await?;
    p.wait_true(
        "the page knows it is offline",
        "return document.getElementById('os-net').dataset.state === 'offline'",
        T,
    )
    .await?;
    tap(&p, "#os-start").await?;
    wait_queued(&p, 1, "start queued").await?;
    // A fix first: the video carries the position the phone had when it started recording.
    walk(&p, &app, &ROUTE[..1]).await?;
    let queued_before = queued(&p).await?;
    let item = &o.items[0];
    tap(&p, &format!("{} .photo-btn", item_css(item))).await?;
    p.wait_true(
        "the camera",
        "const v = document.getElementById('os-video'); return document.getElementById('os-camera').open && v.videoWidth > 0",
        T,
    )
    .await?;
    tap(&p, "#os-record").await?;
    p.wait_true(
        "recording",
        "return document.getElementById('os-record').dataset.recording === '1'",
        T,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    tap(&p, "#os-record").await?;
    p.wait_true(
        "the video queued and the camera closed",
        &format!(
            "return Number(document.getElementById('os-queue').dataset.count) > {queued_before} \
               && !document.getElementById('os-camera').open"
        ),
        T,
    )
    .await?;
    ensure!(
        log(&o.api, &o.id)
            .await?
            .iter()
            .all(|e| e["kind"] != "attach_evidence"),
        "nothing uploaded while offline"
    );

    set_offline(&p, false).await?;
    p.wait_true(
        "the queue sent",
        "return document.getElementById('os-queue').dataset.count === '0' && !!document.body.dataset.synced",
        Duration::from_secs(60),
    )
    .await?;
    // Only the video's own entry is compared: the track may gain a periodic fix at any moment
    // (TRACK_MIN_MS), which is no part of what this test proves.
    let sent = sent_by_phone(&p, &o.id).await?;
    let mine: Vec<&Value> = sent.iter().filter(|e| e["type"] == "photo").collect();
    ensure!(mine.len() == 1, "the phone sent one video: {sent:?}");
    let events = log(&o.api, &o.id).await?;
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e["client_op_id"].as_str())
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    ensure!(
        unique.len() == ids.len(),
        "an op id is logged twice: {ids:?}"
    );
    let videos: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "attach_evidence")
        .collect();
    ensure!(
        videos.len() == 1,
        "one video: {videos:?}; the phone's answer {}",
        mine[0]
    );
    ensure!(
        videos[0]["client_op_id"] == mine[0]["op_id"]
            && mine[0]["answer"]["status"] == "committed"
            && mine[0]["answer"]["seq"] == videos[0]["seq"],
        "the phone's answer is the logged event: {} / {}",
        mine[0],
        videos[0]
    );
    let ev = &videos[0]["payload"]["evidence"];
    ensure!(
        ev["captured_at"] == mine[0]["device_time"] && ev["location"]["lat"].is_number(),
        "the video keeps its capture time and position: {ev}"
    );
    ensure!(ev["kind"] == "video", "{ev}");
    let probed = ev["duration_ms"].as_i64().context("duration_ms")?;
    ensure!((1500..=4000).contains(&probed), "probed {probed} ms");

    // The stored blob, read back and probed by the real ffprobe.
    let eid = ev["id"].as_str().context("id")?;
    let (status, _, bytes) = o
        .api
        .get_bytes(&format!("/api/inspections/{}/evidence/{eid}", o.id))
        .await;
    ensure!(status == 200, "serve {status}");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("v");
    std::fs::write(&path, &bytes)?;
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args([
            "-show_entries",
            "stream=codec_type,nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success() && text.starts_with("video,"),
        "ffprobe: {text}"
    );
    let packets: u64 = text
        .trim()
        .trim_start_matches("video,")
        .parse()
        .unwrap_or(0);
    // A starved fake camera may give only a few frames a second; any frames at all will do.
    ensure!(packets >= 2, "{packets} packets in the stored video");
    let report = signaling::audit::verify(&app.db, &app.blobs, o.id.parse()?).await?;
    ensure!(
        report.is_clean() && report.evidence_checked == 1,
        "audit: {report:?}"
    );
    p.close().await?;
    app.stop().await;
    Ok(())
}

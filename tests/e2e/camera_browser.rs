//! Issue 25 in real headless Chromium: the inspector guides the phone's camera. Chromium's
//! fake camera has no torch and no zoom, so first the console must offer neither; then the
//! phone page is reloaded with a capabilities shim injected by this test only (it overrides
//! `MediaStreamTrack.prototype.getCapabilities/getSettings/applyConstraints` and adds a
//! second camera to `enumerateDevices`, recording every applied constraint), and the
//! inspector turns the torch on, zooms, switches camera and points at a spot: the phone shows
//! the marker where that point of the frame is on its preview (computed here from the frame
//! coordinates, the preview's rect and its `object-fit`) at 360 × 740 portrait and 740 × 360
//! landscape. A photo taken while the pointer shows carries it. The reviewer player then
//! draws the recorded pointer over the recording at its time, with a toggle. One inspector
//! and one phone session for all of it.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use inspector_tests::browser::Browser;
use inspector_tests::photo::pair;
use inspector_tests::spawn_app;
use serde_json::{json, Value};

/// The capabilities shim (test only): what a phone with a torch, zoom 1–5, focus at a point
/// and two cameras would report; applied constraints are recorded in `window.__applied`.
const SHIM: &str = r#"(() => {
  const applied = [];
  window.__applied = applied;
  const P = MediaStreamTrack.prototype;
  const caps = P.getCapabilities, settings = P.getSettings, apply = P.applyConstraints;
  const now = new WeakMap();
  P.getCapabilities = function () {
    const c = caps.call(this);
    if (this.kind !== 'video') return c;
    return { ...c, torch: true, zoom: { min: 1, max: 5, step: 0.1 }, focusMode: ['continuous', 'single-shot'], pointsOfInterest: true };
  };
  P.getSettings = function () {
    const s = settings.call(this);
    if (this.kind !== 'video') return s;
    const x = now.get(this) || {};
    return { ...s, zoom: x.zoom ?? 1, torch: x.torch ?? false };
  };
  P.applyConstraints = function (c) {
    if (this.kind !== 'video') return apply.call(this, c);
    applied.push(JSON.parse(JSON.stringify(c)));
    const x = now.get(this) || {};
    for (const a of (c.advanced || [])) { if ('zoom' in a) x.zoom = a.zoom; if ('torch' in a) x.torch = a.torch; }
    now.set(this, x);
    return Promise.resolve();
  };
  const list = MediaDevices.prototype.enumerateDevices;
  MediaDevices.prototype.enumerateDevices = async function () {
    const l = await list.call(this);
    return [...l, { kind: 'videoinput', deviceId: 'shim-front', label: 'front', groupId: 'shim', toJSON() { return this; } }];
  };
})();"#;

/// JS (phone): where the marker's centre is and where the frame point of the log's latest
/// pointer lies on the preview, computed here from the preview's rect, its object-fit and
/// the frame's size (not with the page's own code).
const MARKER_CHECK: &str = r#"
  const v = document.getElementById('local-video');
  const m = document.querySelector('.biz-video .pointer-marker');
  if (!m || !v.videoWidth) return null;
  const at = window.__lastAt;
  const r = v.getBoundingClientRect();
  const fit = getComputedStyle(v).objectFit;
  let s = Math.max(r.width / v.videoWidth, r.height / v.videoHeight);
  if (fit === 'contain') s = Math.min(r.width / v.videoWidth, r.height / v.videoHeight);
  const w = v.videoWidth * s, h = v.videoHeight * s;
  const ex = r.left + (r.width - w) / 2 + at.x * w, ey = r.top + (r.height - h) / 2 + at.y * h;
  const mr = m.getBoundingClientRect();
  return { ex, ey, mx: mr.left + mr.width / 2, my: mr.top + mr.height / 2, vw: innerWidth, vh: innerHeight,
           text: document.querySelector('.biz-video .pointer-text')?.textContent || null, seq: Number(m.dataset.seq) };
"#;

/// Clicks the console's video at frame point (x, y) (pointer events at the client position
/// of that point of the letterboxed frame).
async fn point_at(inspector: &Browser, x: f64, y: f64, text: &str) -> Result<()> {
    inspector
        .js(&format!(
            "document.getElementById('cam-pointer-text').value = {text}; \
             const v = document.getElementById('remote-video'); const r = v.getBoundingClientRect(); \
             const s = Math.min(r.width / v.videoWidth, r.height / v.videoHeight); \
             const w = v.videoWidth * s, h = v.videoHeight * s; \
             const cx = r.left + (r.width - w) / 2 + {x} * w, cy = r.top + (r.height - h) / 2 + {y} * h; \
             const o = {{clientX: cx, clientY: cy, bubbles: true, button: 0, pointerId: 1, isPrimary: true}}; \
             v.dispatchEvent(new PointerEvent('pointerdown', o)); v.dispatchEvent(new PointerEvent('pointerup', o)); \
             return true",
            text = json!(text)
        ))
        .await?;
    Ok(())
}

/// Waits for the phone's marker of a pointer newer than `after` and checks its place.
async fn marker_in_place(phone: &Browser, after: u64, x: f64, y: f64) -> Result<Value> {
    phone
        .js(&format!(
            "window.__lastAt = {{x: {x}, y: {y}}}; return true"
        ))
        .await?;
    phone
        .wait_true(
            "the pointer's marker on the phone",
            &format!("const m = document.querySelector('.biz-video .pointer-marker'); return !!m && Number(m.dataset.seq) > {after}"),
            Duration::from_secs(10),
        )
        .await?;
    let m = phone.js(MARKER_CHECK).await?;
    let dx = m["mx"].as_f64().context("mx")? - m["ex"].as_f64().context("ex")?;
    let dy = m["my"].as_f64().context("my")? - m["ey"].as_f64().context("ey")?;
    ensure!(
        dx.abs() <= 3.0 && dy.abs() <= 3.0,
        "the marker is {dx:.1}, {dy:.1} px off: {m}"
    );
    Ok(m)
}

async fn offered(inspector: &Browser) -> Result<String> {
    Ok(inspector
        .js("return document.getElementById('cam-panel')?.dataset.offered ?? null")
        .await?
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test]
async fn chromium_inspector_guides_the_phones_camera_and_points() -> Result<()> {
    let app = spawn_app().await;
    let p = pair(&app, &[]).await?;
    let (inspector, phone) = (&p.inspector, &p.phone);
    let state_js = format!(
        "const done = arguments[arguments.length - 1]; \
         fetch('/api/inspections/{}/state').then(r => r.json()).then(s => done(s.state))",
        p.id
    );

    // (a) The real fake camera: reported, and neither torch nor zoom is offered.
    let state: Value = {
        let mut s = Value::Null;
        for _ in 0..50 {
            s = inspector.js_async(&state_js).await?;
            if s["camera"]["caps_seq"].is_u64() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        s
    };
    ensure!(
        state["camera"]["caps"].is_object(),
        "no camera report: {}",
        state["camera"]
    );
    let plain = offered(inspector).await?;
    ensure!(
        !plain.contains("torch") && !plain.contains("zoom"),
        "the fake camera has no torch or zoom, the console offers {plain:?} ({})",
        state["camera"]
    );
    let hidden: Value = inspector
        .js("return [document.getElementById('cam-torch').hidden, document.getElementById('cam-zoom-wrap').hidden]")
        .await?;
    ensure!(
        hidden == json!([true, true]),
        "torch and zoom controls hidden: {hidden}"
    );

    // (b) The same phone with the capabilities shim: reload, join again.
    phone
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": SHIM}),
        )
        .await?;
    phone.js("location.reload(); return true").await?;
    phone
        .wait_true(
            "the intro again",
            "return !document.getElementById('view-intro').hidden && !!window.__applied",
            Duration::from_secs(20),
        )
        .await?;
    phone.click("#biz-start").await?;
    inspector
        .wait_true(
            "the console offers what the shimmed phone reports",
            "const o = document.getElementById('cam-panel')?.dataset.offered || ''; \
             return ['facing', 'torch', 'zoom', 'focus'].every((k) => o.split(' ').includes(k))",
            Duration::from_secs(30),
        )
        .await?;
    // The remote video has frames (the pointer is placed on them).
    inspector
        .wait_true(
            "the business's video",
            "return document.getElementById('remote-video').videoWidth > 0",
            Duration::from_secs(30),
        )
        .await?;

    // Torch on: the phone applies it and says so; the console shows it on.
    inspector.click("#cam-torch").await?;
    phone
        .wait_true(
            "the torch applied on the phone",
            "return window.__applied.some((c) => c.advanced?.[0]?.torch === true) && \
             !document.getElementById('cam-notice').hidden",
            Duration::from_secs(10),
        )
        .await?;
    inspector
        .wait_true(
            "the console shows the torch on",
            "return document.getElementById('cam-torch').getAttribute('aria-pressed') === 'true'",
            Duration::from_secs(10),
        )
        .await?;
    // Zoom ×3.
    inspector
        .js(
            "const z = document.getElementById('cam-zoom'); z.value = '3'; \
             z.dispatchEvent(new Event('change', {bubbles: true})); return true",
        )
        .await?;
    phone
        .wait_true(
            "the zoom applied on the phone",
            "return window.__applied.some((c) => c.advanced?.[0]?.zoom === 3)",
            Duration::from_secs(10),
        )
        .await?;
    // Focus at a point: in focus mode a click on the video focuses there instead of pointing.
    inspector.click("#cam-focus-mode").await?;
    point_at(inspector, 0.6, 0.4, "").await?;
    phone
        .wait_true(
            "the focus applied on the phone",
            "return window.__applied.some((c) => { const p = c.advanced?.[0]?.pointsOfInterest?.[0]; \
               return !!p && Math.abs(p.x - 0.6) < 0.01 && Math.abs(p.y - 0.4) < 0.01; })",
            Duration::from_secs(10),
        )
        .await?;
    inspector.click("#cam-focus-mode").await?;
    // Switch to the front camera: the phone reopens its camera and reports it.
    inspector.click("#cam-facing").await?;
    phone
        .wait_true(
            "the phone switched camera",
            "return (document.getElementById('cam-notice')?.textContent || '').includes('фронтальную') && \
             document.getElementById('local-video').videoWidth > 0",
            Duration::from_secs(15),
        )
        .await?;
    inspector
        .wait_true(
            "the console shows the front camera",
            "return document.getElementById('cam-facing').dataset.facing === 'user'",
            Duration::from_secs(15),
        )
        .await?;
    inspector
        .wait_true(
            "the business's video after the switch",
            "return document.getElementById('remote-video').videoWidth > 0",
            Duration::from_secs(20),
        )
        .await?;

    // Point, portrait 360 × 740.
    let (x, y) = (0.3, 0.62);
    point_at(inspector, x, y, "покажите табличку на огнетушителе").await?;
    let m = marker_in_place(phone, 0, x, y).await?;
    ensure!(
        m["vw"] == 360 && m["text"] == "покажите табличку на огнетушителе",
        "{m}"
    );
    let first = m["seq"].as_u64().context("seq")?;
    // A photo taken now, while the pointer shows, carries it.
    let item = p.items[0].clone();
    inspector
        .click(&format!(
            "#checklist .item[data-item-id=\"{item}\"] .photo-btn"
        ))
        .await?;
    phone.screenshot("business-pointer-portrait.ru").await?;
    inspector.screenshot("console-camera.ru").await?;
    let mut photo = Value::Null;
    for _ in 0..75 {
        let s: Value = inspector.js_async(&state_js).await?;
        photo = s["items"][&item]["evidence"][0].clone();
        if photo.is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(
        photo["pointer"]["seq"] == first,
        "the photo's pointer: {photo}"
    );

    // Landscape 740 × 360: the frame sits differently in the preview; a new pointer lands
    // on the same point of the frame.
    phone
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 740, "height": 360, "deviceScaleFactor": 2, "mobile": true,
                   "screenOrientation": {"type": "landscapePrimary", "angle": 90}}),
        )
        .await?;
    phone
        .js("document.querySelector('.biz-video').scrollIntoView({block: 'center'}); return true")
        .await?;
    let (x, y) = (0.8, 0.25);
    point_at(inspector, x, y, "").await?;
    let m = marker_in_place(phone, first, x, y).await?;
    ensure!(m["vw"] == 740 && m["text"].is_null(), "{m}");
    let second = m["seq"].as_u64().context("seq")?;
    phone.screenshot("business-pointer-landscape.ru").await?;

    // The recording, then the reviewer player draws the pointers at their times.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    inspector.click("#room-finish").await?;
    inspector.click("#finish-confirm").await?;
    inspector
        .wait_true(
            "finished",
            "return !document.getElementById('room-review').hidden",
            Duration::from_secs(30),
        )
        .await?;
    inspector
        .goto(&format!("{}/review/#{}", app.address, p.id))
        .await?;
    inspector
        .wait_true(
            "the recording's metadata and the pointer toggle",
            "return document.getElementById('video').readyState >= 1 && \
             !document.querySelector('.pointers-toggle').hidden",
            Duration::from_secs(40),
        )
        .await?;
    let placed: Value = inspector
        .js_async(&format!(
            "const done = arguments[arguments.length - 1]; \
             Promise.all([fetch('/api/inspections/{id}/recording/manifest').then(r => r.json()), \
                          fetch('/api/inspections/{id}/events.jsonl').then(r => r.text())]).then(([m, log]) => {{ \
               const e = log.split('\\n').filter(Boolean).map(JSON.parse).find(e => e.seq === {second}); \
               done({{ms: e.server_ts / 1000 - m.epoch_micros / 1000, at: e.payload.at}}); }})",
            id = p.id
        ))
        .await?;
    let ms = placed["ms"].as_f64().context("media time")?;
    inspector
        .js(&format!(
            "const v = document.getElementById('video'); v.pause(); v.currentTime = {}; return true",
            (ms + 800.0) / 1000.0
        ))
        .await?;
    inspector
        .wait_true(
            "the reviewer's marker of the second pointer",
            &format!(
                "const m = document.querySelector('.player-frame .pointer-marker'); \
                 return !!m && Number(m.dataset.seq) === {second} && !document.getElementById('video').seeking"
            ),
            Duration::from_secs(15),
        )
        .await?;
    let r: Value = inspector
        .js(&format!(
            "const v = document.getElementById('video'); const r = v.getBoundingClientRect(); \
             const s = Math.min(r.width / v.videoWidth, r.height / v.videoHeight); \
             const w = v.videoWidth * s, h = v.videoHeight * s; \
             const m = document.querySelector('.player-frame .pointer-marker').getBoundingClientRect(); \
             return {{dx: m.left + m.width / 2 - (r.left + (r.width - w) / 2 + {x} * w), \
                     dy: m.top + m.height / 2 - (r.top + (r.height - h) / 2 + {y} * h)}}",
            x = placed["at"]["x"],
            y = placed["at"]["y"]
        ))
        .await?;
    ensure!(
        r["dx"].as_f64().unwrap_or(99.0).abs() <= 3.0
            && r["dy"].as_f64().unwrap_or(99.0).abs() <= 3.0,
        "the reviewer's marker is off: {r}"
    );
    inspector.screenshot("review-pointer.ru").await?;
    // Toggle off: no marker; after the pointer's time: none either.
    inspector
        .js("const b = document.getElementById('pointers-toggle'); b.click(); return true")
        .await?;
    inspector
        .wait_true(
            "the toggle hides it",
            "return !document.querySelector('.player-frame .pointer-marker')",
            Duration::from_secs(5),
        )
        .await?;
    p.phone.close().await.ok();
    p.inspector.close().await.ok();
    app.stop().await;
    Ok(())
}

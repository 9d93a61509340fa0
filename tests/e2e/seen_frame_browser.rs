//! Issue 23: a mark lands on the frame the inspector saw. The business's Chromium sends a
//! camera picture whose every frame carries its number as a barcode (a Y4M file as the fake
//! camera); the inspector's path goes through a user-space relay (`DelayRelay`) that delays
//! what the server sends to the inspector by 150 ms ± 50 ms when switched on (the kernel here
//! has no netem); the business's upload, the recording, is never delayed. The inspector's page
//! reads the number of every frame it presents (drawn to a canvas in its
//! `requestVideoFrameCallback`), keyed by the frame's RTP timestamp; the console sends the
//! presented frame's timestamp with each mark. After the finish, each chapter's first picture
//! in the file (FFmpeg) must be the page's frame at the click, ±1 frame, with and without the
//! delay. Forged timestamps over the inspector's own socket fall back to server time.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use inspector_tests::browser::{Browser, Device};
use inspector_tests::relay::DelayRelay;
use inspector_tests::{spawn_app_with, ws_connect, Role};
use media_recorder::testsrc::{frame_at, read_barcode};
use serde_json::{json, Value};

/// Frames in the fake camera's file (it loops): frame numbers are compared modulo this.
const LOOP: i64 = 300;
const W: usize = 320;
const H: usize = 240;

fn checksum(v: u64) -> u64 {
    // The same as media_recorder::testsrc's, so read_barcode accepts the frames.
    let mut c = 0x5Au64;
    for i in 0..5 {
        c ^= (v >> (8 * i)) & 0xFF;
        c = c.rotate_left(1) & 0xFF;
    }
    c
}

/// A Y4M file of `LOOP` frames at 30 fps, frame `n` carrying `n` as the 8 × 6 barcode.
fn write_y4m(path: &Path) -> Result<()> {
    let mut out = Vec::with_capacity(LOOP as usize * (W * H * 3 / 2 + 6) + 64);
    out.extend_from_slice(format!("YUV4MPEG2 W{W} H{H} F30:1 Ip A1:1 C420jpeg\n").as_bytes());
    for n in 0..LOOP as u64 {
        let word = n | (checksum(n) << 40);
        out.extend_from_slice(b"FRAME\n");
        for y in 0..H {
            for x in 0..W {
                let bit = (word >> ((y * 6 / H) * 8 + x * 8 / W)) & 1;
                out.push(if bit == 1 { 235 } else { 16 });
            }
        }
        out.extend(std::iter::repeat_n(128u8, W * H / 2));
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// Makes the page reach the server's media port through 127.0.0.2 (the relay) and notes
/// the port.
const VIA_RELAY: &str = r#"
(() => {
  const P = window.RTCPeerConnection;
  if (!P) return;
  const fix = (s) => s.replace(/(candidate:\S+ \d+ udp \d+ )127\.0\.0\.1 (\d+)/gi, (m, a, port) => {
    window.__serverPort = Number(port);
    return a + '127.0.0.2 ' + port;
  });
  const srd = P.prototype.setRemoteDescription;
  P.prototype.setRemoteDescription = function (d) {
    if (d && d.sdp) d = { type: d.type, sdp: fix(d.sdp) };
    return srd.call(this, d);
  };
  // The page's own candidates are kept from the server: it learns the page's address from
  // the checks that come through the relay, and cannot reach the page around it.
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (typeof data === 'string' && data.includes('"rtc.')) {
      try {
        const m = JSON.parse(data);
        if (m.type === 'rtc.candidate') return;
        if (m.type === 'rtc.offer' && m.sdp && m.sdp.sdp) {
          m.sdp.sdp = m.sdp.sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate')).join('\r\n');
          data = JSON.stringify(m);
        }
      } catch (_) { /* not ours */ }
    }
    return send.call(this, data);
  };
  const aic = P.prototype.addIceCandidate;
  P.prototype.addIceCandidate = function (c) {
    if (c && c.candidate) c = { ...(c.toJSON ? c.toJSON() : c), candidate: fix(c.candidate) };
    return aic.call(this, c);
  };
})();
"#;

/// Reads the number of every frame the remote video presents, by RTP timestamp.
const PROBE: &str = r#"
const v = document.getElementById('remote-video');
if (window.__frames) return true;
window.__frames = {};
const c = document.createElement('canvas');
const g = c.getContext('2d', { willReadFrequently: true });
const read = () => {
  const w = v.videoWidth, h = v.videoHeight;
  if (!w || !h) return null;
  c.width = w; c.height = h;
  g.drawImage(v, 0, 0, w, h);
  const d = g.getImageData(0, 0, w, h).data;
  const bits = [];
  for (let row = 0; row < 6; row++) for (let col = 0; col < 8; col++) {
    let sum = 0, n = 0;
    const x0 = Math.floor(col * w / 8), x1 = Math.floor((col + 1) * w / 8);
    const y0 = Math.floor(row * h / 6), y1 = Math.floor((row + 1) * h / 6);
    const qx = Math.floor((x1 - x0) / 4), qy = Math.floor((y1 - y0) / 4);
    for (let y = y0 + qy; y < y1 - qy; y += 2) for (let x = x0 + qx; x < x1 - qx; x += 2) {
      const i = (y * w + x) * 4; sum += (d[i] + d[i + 1] + d[i + 2]) / 3; n++;
    }
    bits.push(n && sum / n > 128 ? 1 : 0);
  }
  let value = 0, cs = 0;
  for (let i = 0; i < 40; i++) value += bits[i] * 2 ** i;
  for (let i = 40; i < 48; i++) cs += bits[i] * 2 ** (i - 40);
  let k = 0x5a;
  for (let i = 0; i < 5; i++) { k ^= Math.floor(value / 2 ** (8 * i)) % 256; k = (k << 1) & 0xff; }
  return k === cs ? value : null;
};
const onFrame = (_now, meta) => {
  const n = read();
  if (n !== null && Number.isInteger(meta.rtpTimestamp)) window.__frames[meta.rtpTimestamp >>> 0] = n;
  v.requestVideoFrameCallback(onFrame);
};
v.requestVideoFrameCallback(onFrame);
return true;
"#;

fn circular(d: i64) -> i64 {
    let d = d.rem_euclid(LOOP);
    if d > LOOP / 2 {
        d - LOOP
    } else {
        d
    }
}

fn frame_number(file: &Path, at_ms: i64) -> Result<i64> {
    let (_, f) = frame_at(file, at_ms)?.context("a frame at the time")?;
    read_barcode(&f, 0).context("a readable barcode in the recording")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chromium_mark_lands_on_the_seen_frame() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let y4m = dir.path().join("numbers.y4m");
    write_y4m(&y4m)?;
    // The server binds a port per connection; the inspector's page is made to reach it
    // through the relay (its candidates rewritten to 127.0.0.2, where the relay listens on
    // the same port), while the business reaches the server directly.
    let app = spawn_app_with(|c| {
        // A chapter begins at its mark, so its first picture is the mark's frame.
        c.chapter_lead_in_ms = 0;
    })
    .await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    let url = insp.invite_url(&id, "Телефон").await;

    let inspector = Browser::launch("seen-inspector", Device::Desktop).await?;
    inspector
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": VIA_RELAY }),
        )
        .await?;
    inspector.goto(&format!("{}/", app.address)).await?;
    inspector
        .sign_in("inspector1", "a long test password")
        .await?;
    inspector.start_inspection(&app.address, &id).await?;

    let fake = format!("--use-file-for-fake-video-capture={}", y4m.display());
    let business = Browser::launch_with("seen-business", Device::Phone, &[&fake]).await?;
    business
        .set_geolocation(&app.address, 55.757_05, 37.615_08, 10.0)
        .await?;
    business.goto(&url).await?;
    business
        .wait_true(
            "the intro",
            "return !document.getElementById('view-intro').hidden",
            Duration::from_secs(20),
        )
        .await?;
    business.click("#biz-start").await?;
    business
        .wait_true(
            "the business connected with a camera",
            "const v = document.getElementById('local-video'); \
             return document.getElementById('conn').dataset.state === 'open' && v.videoWidth > 0",
            Duration::from_secs(30),
        )
        .await?;
    inspector
        .wait_true(
            "the server's answer on the inspector's page",
            "return !!window.__serverPort",
            Duration::from_secs(30),
        )
        .await?;
    let port = inspector
        .js("return window.__serverPort")
        .await?
        .as_u64()
        .context("the server's port seen by the inspector's page")? as u16;
    let relay = DelayRelay::start(
        format!("127.0.0.2:{port}").parse::<SocketAddr>()?,
        format!("127.0.0.1:{port}").parse()?,
        &[],
        Duration::from_millis(150),
        Duration::from_millis(50),
    )
    .await?;
    if let Err(e) = inspector
        .wait_true(
            "decoded video through the relay",
            "const v = document.getElementById('remote-video'); \
             return v.readyState >= 2 && v.videoWidth > 0",
            Duration::from_secs(40),
        )
        .await
    {
        eprintln!("relay {:?}", relay.counts);
        return Err(e);
    }
    inspector.js(PROBE).await?;
    inspector
        .wait_true(
            "numbered frames presented",
            "return Object.keys(window.__frames || {}).length > 30",
            Duration::from_secs(20),
        )
        .await?;

    // Three marks on a direct path, then three through 150 ms ± 50 ms.
    let marks = [
        (1usize, "compliant", false),
        (2, "compliant", false),
        (3, "compliant", false),
        (4, "compliant", true),
        (1, "not_applicable", true),
        (2, "not_applicable", true),
    ];
    for (n, result, delayed) in marks {
        if delayed && !relay.on.load(std::sync::atomic::Ordering::Relaxed) {
            relay.on.store(true, std::sync::atomic::Ordering::Relaxed);
            // Let the browser's jitter buffer settle on the new delay.
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let item = format!("#checklist .item:nth-child({n})");
        inspector
            .click(&format!("{item} .result-btn[data-result=\"{result}\"]"))
            .await?;
        inspector
            .wait_true(
                &format!("item {n} marked {result}"),
                &format!(
                    "const li = document.querySelector('{item}'); \
                     return li.dataset.result === '{result}' && !li.classList.contains('pending')"
                ),
                Duration::from_secs(20),
            )
            .await?;
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    ensure!(
        relay
            .counts
            .delayed
            .load(std::sync::atomic::Ordering::Relaxed)
            > 100,
        "the relay delayed nothing: {:?}",
        relay.counts
    );
    let page_frames = inspector.js("return window.__frames").await?;

    // Forged frames over the inspector's own socket (the same participant): a timestamp two
    // minutes past anything sent, and a real one from long before the click.
    let old_ts: u32 = {
        let mut ts: Vec<u32> = page_frames
            .as_object()
            .context("frames")?
            .keys()
            .filter_map(|k| k.parse().ok())
            .collect();
        ts.sort();
        *ts.first().context("a frame")?
    };
    let mut ws = ws_connect(&insp, &id)
        .await
        .expect("the inspector's socket");
    ws.hello(None).await;
    let forged = [
        ("f-future", 3usize, old_ts.wrapping_add(90_000 * 120)),
        ("f-old", 4, old_ts),
    ];
    for (op_id, n, ts) in forged {
        let item_id = inspector
            .js(&format!(
                "return document.querySelector('#checklist .item:nth-child({n})').dataset.itemId"
            ))
            .await?;
        let r = ws
            .op(
                op_id,
                json!({"kind": "set_result", "item_id": item_id, "result": "violation",
                       "seen": {"rtp_timestamp": ts, "click_offset_ms": 0}}),
            )
            .await;
        ensure!(r["type"] == "ack", "{op_id}: {r}");
    }
    // A client may not claim the server's resolution.
    let r = ws
        .op(
            "f-rule",
            json!({"kind": "set_result", "item_id": "x", "result": "compliant",
                   "seen": {"rtp_timestamp": 1, "rule": "seen_frame", "at_micros": 1}}),
        )
        .await;
    ensure!(
        r["type"] == "error" && r["code"] == "invalid_field",
        "a claimed rule: {r}"
    );

    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "finished"}),
        )
        .await;
    ensure!(r.status == 200, "{}", r.text);
    let deadline = Instant::now() + Duration::from_secs(60);
    let manifest = loop {
        let r = insp
            .get(&format!("/api/inspections/{id}/recording/manifest"))
            .await;
        if r.status == 200 {
            break r.body;
        }
        ensure!(
            Instant::now() < deadline,
            "no manifest after 60 s: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let file = app
        .data_dir
        .path()
        .join("recordings")
        .join(&id)
        .join(manifest["file"].as_str().context("the file")?);
    let epoch = manifest["epoch_micros"].as_i64().context("epoch")?;
    let chapters: Vec<&Value> = manifest["chapters"]
        .as_array()
        .context("chapters")?
        .iter()
        .filter(|c| c["item_id"] != "")
        .collect();
    let text = insp
        .get_bytes(&format!("/api/inspections/{id}/events.jsonl"))
        .await
        .2;
    let events: Vec<Value> = String::from_utf8(text)?
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &Value| e["kind"] == "set_result")
        .collect();
    ensure!(events.len() == 8, "eight marks in the log: {events:#?}");

    let mut report = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let seen = &e["payload"]["seen"];
        let server_ts = e["server_ts"].as_i64().context("server_ts")?;
        let rule = seen["rule"].as_str().unwrap_or_default();
        if i >= 6 {
            ensure!(
                rule == "server_time_implausible" && seen["at_micros"].is_null(),
                "a forged frame is ignored: {e}"
            );
            continue;
        }
        ensure!(rule == "seen_frame", "mark {i}: {e}");
        let ts = seen["rtp_timestamp"].as_u64().context("rtp_timestamp")?;
        let page = page_frames[ts.to_string()]
            .as_i64()
            .with_context(|| format!("the page presented no frame {ts} (mark {i})"))?;
        let start = chapters[i]["start_ms"].as_i64().context("start_ms")?;
        let chapter = frame_number(&file, start)?;
        let by_server = frame_number(&file, (server_ts - epoch) / 1000)?;
        let at = seen["at_micros"].as_i64().context("at_micros")?;
        report.push((
            marks[i].2,
            circular(chapter - page),
            circular(by_server - page),
            (server_ts - at) / 1000,
        ));
    }
    eprintln!(
        "seen_frame: (delayed, chapter − page frames, server time − page frames, server − seen ms): {report:?}"
    );
    for (i, r) in report.iter().enumerate() {
        ensure!(
            r.1.abs() <= 1,
            "mark {i}: the chapter is {} frames from the seen frame: {report:?}",
            r.1
        );
    }
    inspector.close().await?;
    business.close().await?;
    drop(relay);
    app.stop().await;
    Ok(())
}

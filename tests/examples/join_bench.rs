//! Benchmark (issue 18 item 4): the business joins a live inspection → the first frame of its
//! camera is decoded and presented on the inspector's page. Both sides are real headless
//! Chromium on loopback against a real server (`spawn_app`): the inspector's room stays open,
//! and for every join the phone opens the invitation link afresh, presses "Start" and
//! publishes its fake camera. The clock starts at the phone's `rtc.offer` (a User Timing mark
//! that `web/rtc.js` sets when the offer goes out) and stops at the first frame the inspector's
//! `<video>` presents after it (`requestVideoFrameCallback`'s `presentationTime`: decoded and
//! handed to the compositor). Both are read as `performance.timeOrigin + t`, one wall clock for
//! the two browsers. The phone's `rtc.answer-received`, `rtc.answer` (applied) and
//! `rtc.connected` marks split the time.
//!
//! Run: `cargo run --release -p inspector-tests --example join_bench [-- <joins>]` (default 100).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use inspector_tests::photo::pair;
use inspector_tests::spawn_app;
use serde_json::Value;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Starts (once) a watcher on the inspector's page that notes the wall-clock time of every
/// frame the remote `<video>` presents, whichever element the console puts there.
const WATCH: &str = r#"
window.__frames = [];
if (!window.__watching) {
  window.__watching = true;
  const seen = new WeakSet();
  const tick = () => {
    const v = document.getElementById('remote-video');
    if (v && !seen.has(v)) {
      seen.add(v);
      const onFrame = (_now, md) => {
        window.__frames.push(performance.timeOrigin + md.presentationTime);
        v.requestVideoFrameCallback(onFrame);
      };
      v.requestVideoFrameCallback(onFrame);
    }
    requestAnimationFrame(tick);
  };
  tick();
}
return true;
"#;

/// The phone's marks, as wall-clock milliseconds.
const MARKS: &str = r#"
const at = (n) => { const e = performance.getEntriesByName(n)[0]; return e ? performance.timeOrigin + e.startTime : null; };
return {origin: performance.timeOrigin, offer: at('rtc.offer'), received: at('rtc.answer-received'), answer: at('rtc.answer'), connected: at('rtc.connected')};
"#;

struct Join {
    frame: f64,
    received: f64,
    answer: f64,
    connected: f64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let joins: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let app = spawn_app().await;
    let p = pair(&app, &[]).await?;
    let mut all: Vec<Join> = Vec::new();
    for run in 0..joins {
        // The business leaves; its last frames reach the inspector before the clock is armed.
        p.phone.goto("about:blank").await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        p.inspector.js(WATCH).await?;
        p.phone.goto(&p.invite_url).await?;
        p.phone
            .wait_true(
                "the intro",
                "return !document.getElementById('view-intro').hidden",
                Duration::from_secs(20),
            )
            .await?;
        p.phone.click("#biz-start").await?;
        p.phone
            .wait_true(
                "the phone connected",
                "return performance.getEntriesByName('rtc.connected').length > 0",
                Duration::from_secs(20),
            )
            .await?;
        let marks: Value = p.phone.js(MARKS).await?;
        let offer = marks["offer"].as_f64().context("no rtc.offer mark")?;
        let script = format!("return (window.__frames || []).find((t) => t > {offer}) ?? null");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let frame = loop {
            if let Some(t) = p.inspector.js(&script).await?.as_f64() {
                break t;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("join {run}: no frame at the inspector 10 s after the offer");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let j = Join {
            frame: frame - offer,
            received: marks["received"].as_f64().unwrap_or(f64::NAN) - offer,
            answer: marks["answer"].as_f64().unwrap_or(f64::NAN) - offer,
            connected: marks["connected"].as_f64().unwrap_or(f64::NAN) - offer,
        };
        let page = offer - marks["origin"].as_f64().unwrap_or(f64::NAN);
        println!(
            "join {run:3} (offer {page:6.0} ms after the page opened): first decoded frame {:6.1} ms (answer received {:5.1} ms, applied {:5.1} ms, connected {:5.1} ms)",
            j.frame, j.received, j.answer, j.connected
        );
        all.push(j);
    }
    let sorted = |f: fn(&Join) -> f64| {
        let mut v: Vec<f64> = all.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    for (what, v) in [
        ("offer → first decoded frame", sorted(|j| j.frame)),
        ("offer → answer received", sorted(|j| j.received)),
        ("offer → answer applied", sorted(|j| j.answer)),
        ("offer → connected", sorted(|j| j.connected)),
    ] {
        println!(
            "{what}, {} joins: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms, over 500 ms: {}",
            v.len(),
            percentile(&v, 50.0),
            percentile(&v, 95.0),
            v[v.len() - 1],
            v.iter().filter(|&&x| x > 500.0).count()
        );
    }
    p.phone.close().await?;
    p.inspector.close().await?;
    app.stop().await;
    Ok(())
}

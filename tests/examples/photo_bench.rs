//! Benchmark: the inspector presses "Photo" on an item → the phone takes a full-resolution
//! still and uploads it → the thumbnail is decoded on the inspector's page. Both browsers are
//! real headless Chromium on loopback; the phone's fake camera plays a grainy 12-megapixel
//! picture (a Y4M file made with ffmpeg) so that each photo is about 3 MB, like a phone
//! camera's. The time is measured inside the inspector's page, from the click to the moment
//! the new thumbnail has loaded and decoded (`img.complete && naturalWidth > 0`).
//!
//! Run: `cargo run -p inspector-tests --example photo_bench [-- <runs> <width> <height> <noise>]`
//! (defaults 30 runs, 3264×2448 (8 MP), noise 1: Chromium's fake camera answers
//! `takePhoto()` with a PNG, about 3 MB for this picture).

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use inspector_tests::photo::pair;
use inspector_tests::spawn_app;
use serde_json::Value;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: u32| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (runs, w, h, noise) = (arg(0, 30), arg(1, 3264), arg(2, 2448), arg(3, 1));
    let dir = tempfile::tempdir()?;
    let y4m = dir.path().join("camera.y4m");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={w}x{h}:rate=5"))
        .args(["-vf", &format!("noise=alls={noise}:allf=t,format=yuv420p")])
        .args(["-frames:v", "3"])
        .arg(&y4m)
        .status()?;
    ensure!(ok.success(), "ffmpeg could not make the camera file");

    let app = spawn_app().await;
    let flag = format!("--use-file-for-fake-video-capture={}", y4m.display());
    let p = pair(&app, &[&flag]).await?;
    let mut times = Vec::new();
    let mut sizes = Vec::new();
    for run in 0..runs as usize {
        let item = &p.items[run % p.items.len()];
        let script = format!(
            r#"const done = arguments[arguments.length - 1];
            const li = document.querySelector('#checklist .item[data-item-id="{item}"]');
            const before = li.querySelectorAll('.item-evidence .thumb-photo').length;
            const btn = li.querySelector('.photo-btn');
            // The inspector presses the button of the item in front of them.
            li.scrollIntoView({{block: 'center'}});
            const t0 = performance.now();
            btn.click();
            const check = () => {{
              const imgs = li.querySelectorAll('.item-evidence .thumb-photo img');
              const img = imgs[imgs.length - 1];
              if (imgs.length > before && img.complete && img.naturalWidth > 0) {{
                done({{ms: performance.now() - t0, id: img.parentElement.dataset.evidenceId}});
              }} else if (performance.now() - t0 > 25000) {{
                done({{error: 'timeout'}});
              }} else requestAnimationFrame(check);
            }};
            requestAnimationFrame(check);"#
        );
        let v: Value = p.inspector.js_async(&script).await?;
        if v.get("error").is_some() {
            let banner = p
                .phone
                .js("const b = document.getElementById('photo-banner'); const v = document.getElementById('local-video');                      return [b.textContent, v.videoWidth, v.videoHeight, typeof ImageCapture]")
                .await?;
            let logs = p.phone.console_logs().await.unwrap_or_default();
            anyhow::bail!("run {run}: {v}; phone: {banner}; console: {logs:?}");
        }
        let ms = v["ms"].as_f64().context("ms")?;
        let id = v["id"].as_str().context("evidence id")?.to_string();
        let snap = checklist_sync::load_snapshot(&app.db, p.id.parse()?)
            .await?
            .1;
        let size = snap.items[item]
            .evidence
            .iter()
            .find(|e| e.evidence.id == id)
            .and_then(|e| e.evidence.size)
            .context("size of the photo")?;
        println!("run {run:2}: {ms:7.1} ms  ({size} bytes)");
        times.push(ms);
        sizes.push(size);
        // Let the previous photo's decode settle before the next click.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let mean_size = sizes.iter().sum::<u64>() as f64 / sizes.len() as f64;
    println!(
        "click → thumbnail, {runs} runs, photos {w}×{h} of {:.2} MB on average: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        mean_size / 1e6,
        percentile(&times, 50.0),
        percentile(&times, 95.0),
        times[times.len() - 1]
    );
    p.phone.close().await?;
    p.inspector.close().await?;
    app.stop().await;
    Ok(())
}

//! The main scenario of `browser.rs` with Firefox ESR as both faces (issue 17): the inspector
//! console and the business phone page each run in their own headless Firefox, inside a
//! network namespace of the test's own (Firefox's ICE never offers 127.0.0.1), joined to the
//! server on the host end of a veth pair; all media stays between the test's own addresses.
//! The business joins by the link, its video is decoded by the inspector's Firefox, items are
//! marked and mirrored, the inspector finishes, the recording has the video (ffprobe), and the
//! reviewer's chapter seek works in Firefox. The phone's position, time zone and browser look
//! like a real Android phone's, so the trust verdict is the one a real user gets.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use inspector_tests::browser::{Browser, Device, FirefoxOptions};
use inspector_tests::netns::NetNs;
use inspector_tests::{spawn_app_with, Role};
use serde_json::Value;

const PASSWORD: &str = "a long test password";
// The inspected site (Moscow, Tverskaya 1) and the phone's position a few metres away.
const SITE: (f64, f64) = (55.757_000, 37.615_000);
const PHONE: (f64, f64) = (55.757_050, 37.615_080);
const TZ: &str = "Europe/Moscow";

/// The result shown for each checklist item of a page, in order.
async fn results(b: &Browser) -> Result<Vec<(String, String)>> {
    let v = b
        .js(
            "return [...document.querySelectorAll('#checklist .item')].map(li => \
             [li.dataset.itemId, li.dataset.result])",
        )
        .await?;
    let rows = v.as_array().context("results is an array")?;
    Ok(rows
        .iter()
        .map(|r| {
            let s = |i: usize| r[i].as_str().unwrap_or_default().to_owned();
            (s(0), s(1))
        })
        .collect())
}

/// Frames the remote video element presents within 3 s (requestVideoFrameCallback), and
/// whether its current picture has any light in it.
async fn presented_frames(b: &Browser) -> Result<Value> {
    b.js_async(
        "const done = arguments[arguments.length - 1]; \
         const v = document.getElementById('remote-video'); \
         let n = 0; const tick = () => { n += 1; v.requestVideoFrameCallback(tick); }; \
         v.requestVideoFrameCallback(tick); \
         setTimeout(() => { \
           const c = document.createElement('canvas'); c.width = 64; c.height = 36; \
           const g = c.getContext('2d'); g.drawImage(v, 0, 0, 64, 36); \
           const px = g.getImageData(0, 0, 64, 36).data; let sum = 0; \
           for (let i = 0; i < px.length; i += 4) sum += px[i] + px[i + 1] + px[i + 2]; \
           done({frames: n, lit: sum > 64 * 36 * 30}); }, 3000);",
    )
    .await
}

/// The finished recording's manifest, once the server has written it.
async fn manifest(c: &inspector_tests::Client, id: &str) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = c
            .get(&format!("/api/inspections/{id}/recording/manifest"))
            .await;
        if r.status == 200 {
            return Ok(r.body);
        }
        ensure!(r.code() == "recording_not_ready", "{}", r.text);
        ensure!(Instant::now() < deadline, "no manifest after 90 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firefox_runs_the_inspection_end_to_end() -> Result<()> {
    let ns = NetNs::create()?;
    let host = ns.host_ip;
    // The server on the veth's host end: HTTP, WebSocket and media on the test's own address.
    let app = spawn_app_with(|c| {
        c.listen = std::net::SocketAddr::new(host.into(), 0);
        c.public_url = format!("http://{}", c.listen);
        c.media_udp = format!("{host}:0");
    })
    .await;
    app.create_user("inspector1", PASSWORD, Role::Inspector)
        .await;
    app.create_user("reviewer1", PASSWORD, Role::Reviewer).await;
    let base = app.address.clone();

    // --- Inspector (Firefox, desktop): sign in, create, invite, list, start. ---
    let inspector = Browser::launch_firefox(
        "ff-inspector",
        FirefoxOptions {
            ns: &ns,
            port: 4444,
            server: &base,
            device: Device::Desktop,
            geo: None,
            tz: TZ,
            real_phone: false,
        },
    )
    .await?;
    inspector.goto(&format!("{base}/")).await?;
    inspector.sign_in("inspector1", PASSWORD).await?;
    inspector.goto(&format!("{base}/#/new")).await?;
    inspector
        .wait_true(
            "templates loaded",
            "return document.querySelectorAll('#c-template option').length > 1",
            Duration::from_secs(20),
        )
        .await?;
    inspector
        .fill("#c-title", "Плановая проверка пожарной безопасности")
        .await?;
    inspector.fill("#c-bname", "ООО «Ромашка»").await?;
    inspector.fill("#c-inn", "7707083893").await?;
    inspector
        .fill("#c-address", "Москва, ул. Тверская, 1")
        .await?;
    inspector.fill("#c-lat", &SITE.0.to_string()).await?;
    inspector.fill("#c-lon", &SITE.1.to_string()).await?;
    inspector.click("#create-submit").await?;
    inspector
        .wait_true(
            "the invitation",
            "return !document.getElementById('invite-panel').hidden && \
             document.getElementById('invite-url').value.includes('/b/#t=') && \
             !!document.querySelector('#invite-qr img')",
            Duration::from_secs(20),
        )
        .await?;
    let invite_url = inspector
        .js("return document.getElementById('invite-url').value")
        .await?
        .as_str()
        .context("invite url is a string")?
        .to_owned();
    let inspection_id = inspector
        .js("return document.getElementById('invite-room').getAttribute('href')")
        .await?
        .as_str()
        .and_then(|h| h.strip_prefix("#/room/"))
        .context("room link carries the inspection id")?
        .to_owned();
    inspector.goto(&format!("{base}/#/list")).await?;
    inspector
        .wait_true(
            "the new inspection in the list",
            &format!(
                "return !!document.querySelector('tr[data-inspection-id=\"{inspection_id}\"]')"
            ),
            Duration::from_secs(20),
        )
        .await?;
    inspector.start_inspection(&base, &inspection_id).await?;

    // --- Business (Firefox, phone-sized): joins by the link. ---
    let business = Browser::launch_firefox(
        "ff-business",
        FirefoxOptions {
            ns: &ns,
            port: 4445,
            server: &base,
            device: Device::Phone,
            geo: Some((PHONE.0, PHONE.1, 12.0)),
            tz: TZ,
            real_phone: true,
        },
    )
    .await?;
    business.goto(&invite_url).await?;
    business
        .wait_true(
            "the intro",
            "return !document.getElementById('view-intro').hidden",
            Duration::from_secs(20),
        )
        .await?;
    // Firefox has everything the page needs: no "unsupported" message.
    let missing = business
        .js(
            "return [document.getElementById('biz-unsupported').hidden, \
             Intl.DateTimeFormat().resolvedOptions().timeZone, navigator.webdriver, \
             navigator.maxTouchPoints, window.innerWidth]",
        )
        .await?;
    ensure!(
        missing[0] == true && missing[1] == TZ,
        "Firefox's business page: {missing}"
    );
    business.screenshot("firefox-business-intro.ru").await?;
    // The one trace of automation a real phone does not have (see `hide_webdriver`).
    business.hide_webdriver().await?;
    business.click("#biz-start").await?;
    business
        .wait_true(
            "the business connected with a camera",
            "const v = document.getElementById('local-video'); \
             return document.getElementById('conn').dataset.state === 'open' && v.videoWidth > 0",
            Duration::from_secs(30),
        )
        .await?;

    // --- Inspector's Firefox decodes the phone's video. ---
    let decoded = inspector
        .wait_true(
            "decoded video from the business",
            "const v = document.getElementById('remote-video'); \
             return v.readyState >= 2 && v.videoWidth > 0",
            Duration::from_secs(60),
        )
        .await;
    if let Err(e) = decoded {
        // What each side's media looked like, to tell a publishing from a receiving fault.
        let probe = "const v = document.querySelector('video#remote-video, video#local-video'); \
             return {ready: v.readyState, w: v.videoWidth, \
                     tracks: v.srcObject ? v.srcObject.getTracks().map(t => `${t.kind}:${t.readyState}:${t.muted}`) : null, \
                     quality: {...document.getElementById('quality').dataset}}";
        let a = inspector.js(probe).await.unwrap_or_default();
        let b = business.js(probe).await.unwrap_or_default();
        return Err(e.context(format!("inspector {a}\nbusiness {b}")));
    }
    inspector
        .wait_true(
            "framesDecoded > 0 from getStats",
            "return Number(document.getElementById('quality').dataset.framesDecoded || 0) > 0",
            Duration::from_secs(30),
        )
        .await?;
    // Firefox counts no frames in getVideoPlaybackQuality() for a MediaStream: the frames
    // the element presents are counted with requestVideoFrameCallback instead, and one is
    // drawn to a canvas to see that it has a picture (not a black or empty frame).
    let shown = presented_frames(&inspector).await?;
    ensure!(
        shown["frames"].as_u64().unwrap_or(0) >= 10 && shown["lit"] == true,
        "the inspector's Firefox presents the phone's video: {shown}"
    );
    inspector
        .wait_true(
            "the business's location",
            "const p = document.querySelector('.participant[data-role=\"business\"] .geo'); \
             return !!p && p.textContent.includes('55.75')",
            Duration::from_secs(30),
        )
        .await?;

    // --- Marks, mirrored on the phone. ---
    let marks = [
        (1usize, "compliant"),
        (2, "violation"),
        (3, "not_applicable"),
        (4, "compliant"),
    ];
    for (n, result) in marks {
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
        if result == "violation" {
            inspector
                .fill(
                    &format!("{item} .item-violation"),
                    "Огнетушитель с истёкшим сроком поверки",
                )
                .await?;
            inspector
                .wait_true(
                    "the violation text saved",
                    &format!("return document.querySelector('{item}').dataset.save === 'saved'"),
                    Duration::from_secs(20),
                )
                .await?;
        }
        // A pause between marks separates their chapters.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    business
        .wait_true(
            "the business mirror",
            "const r = [...document.querySelectorAll('#checklist .item')].map(li => li.dataset.result); \
             return r[0] === 'compliant' && r[1] === 'violation' && r[2] === 'not_applicable' && r[3] === 'compliant'",
            Duration::from_secs(20),
        )
        .await?;
    let on_inspector = results(&inspector).await?;
    let on_business = results(&business).await?;
    ensure!(
        !on_inspector.is_empty() && on_inspector == on_business,
        "the pages disagree:\ninspector {on_inspector:?}\nbusiness  {on_business:?}"
    );

    // The trust verdict on the Firefox phone: position, time zone and browser are a real
    // phone's, so it is what a real user gets: trusted, no signal against it.
    // A reviewer reads every inspection's state and recording.
    let observer = app.staff("observer1", Role::Reviewer).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let verdict = loop {
        let state = observer
            .get(&format!("/api/inspections/{inspection_id}/state"))
            .await;
        let v = state.body["state"]["participants"]
            .as_object()
            .and_then(|ps| ps.values().find(|p| p["role"] == "business"))
            .map(|p| p["verdict"].clone())
            .unwrap_or(Value::Null);
        if v["level"] == "trusted" || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    ensure!(
        verdict["level"] == "trusted",
        "the Firefox phone's verdict: {verdict}"
    );
    business.js("window.scrollTo(0, 0); return true").await?;
    business.screenshot("firefox-business-live.ru").await?;

    // --- Finish. ---
    inspector.click("#room-finish").await?;
    inspector.click("#finish-confirm").await?;
    inspector
        .wait_true(
            "finished",
            "return !document.getElementById('room-review').hidden",
            Duration::from_secs(30),
        )
        .await?;
    business
        .wait_true(
            "the business told it is finished",
            "return !document.getElementById('finished-banner').hidden",
            Duration::from_secs(20),
        )
        .await?;
    business.close().await?;

    // The finished recording has the Firefox phone's video (and its sound), by ffprobe.
    let m = manifest(&observer, &inspection_id).await?;
    let file = app
        .data_dir
        .path()
        .join("recordings")
        .join(&inspection_id)
        .join(m["file"].as_str().context("manifest names the file")?);
    // Kept for a look after the run (the data directory goes with the test).
    let kept = inspector_tests::browser::workspace_root()
        .join("artifacts")
        .join("firefox-recording");
    std::fs::create_dir_all(&kept)?;
    std::fs::copy(&file, kept.join(file.file_name().context("file name")?))?;
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(&file)
        .output()
        .context("running ffprobe")?;
    ensure!(
        probe.status.success(),
        "ffprobe failed on {}",
        file.display()
    );
    let probe: Value = serde_json::from_slice(&probe.stdout).context("ffprobe JSON")?;
    let streams = probe["streams"].as_array().context("streams")?;
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .with_context(|| format!("no video stream in the recording: {probe}"))?;
    let frames_in_file: u64 = video["nb_read_frames"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    ensure!(
        video["width"].as_u64().unwrap_or(0) > 0 && frames_in_file > 30,
        "the recording's video: {video}"
    );
    ensure!(
        streams.iter().any(|s| s["codec_type"] == "audio"),
        "no audio stream in the recording: {probe}"
    );

    // --- Reviewer in a Firefox of its own: chapters, click the third, the video seeks. ---
    inspector.close().await?;
    let inspector = Browser::launch_firefox(
        "ff-reviewer",
        FirefoxOptions {
            ns: &ns,
            port: 4446,
            server: &base,
            device: Device::Desktop,
            geo: None,
            tz: TZ,
            real_phone: false,
        },
    )
    .await?;
    inspector.goto(&format!("{base}/")).await?;
    inspector.sign_in("reviewer1", PASSWORD).await?;
    inspector
        .goto(&format!("{base}/review/#{inspection_id}"))
        .await?;
    inspector
        .wait_true(
            "the chapters",
            "return document.querySelectorAll('#chapters .chapter').length >= 3",
            Duration::from_secs(90),
        )
        .await?;
    let meta = inspector
        .wait_true(
            "the recording's metadata",
            "return document.getElementById('video').readyState >= 1",
            Duration::from_secs(30),
        )
        .await;
    if let Err(e) = meta {
        let v = inspector
            .js_async("const done = arguments[arguments.length - 1]; const v = document.getElementById('video'); \
                 fetch(v.currentSrc || v.src, {headers: {range: 'bytes=0-99'}}).then(r => \
                   done({src: v.currentSrc, net: v.networkState, err: v.error && [v.error.code, v.error.message], \
                         status: r.status, type: r.headers.get('content-type'), range: r.headers.get('content-range'), \
                         canWebm: v.canPlayType('video/webm; codecs=vp8'), headers: [...r.headers]}), \
                   x => done(String(x)));")
            .await
            .unwrap_or_default();
        return Err(e.context(format!("the player's video: {v}")));
    }
    inspector
        .click("#chapters li:nth-child(3) .chapter")
        .await?;
    inspector
        .wait_true(
            "the seek to finish",
            "const v = document.getElementById('video'); return !v.seeking",
            Duration::from_secs(20),
        )
        .await?;
    let seek: Value = inspector
        .js("const v = document.getElementById('video'); \
             const c = document.querySelector('#chapters li:nth-child(3) .chapter'); \
             return {t: v.currentTime, start: Number(c.dataset.startMs), current: c.getAttribute('aria-current')}")
        .await?;
    let t = seek["t"].as_f64().context("currentTime")?;
    let start = seek["start"].as_f64().context("start_ms")? / 1000.0;
    ensure!(
        (t - start).abs() <= 0.1,
        "currentTime {t} s, chapter starts at {start} s: {seek}"
    );
    ensure!(
        seek["current"] == "true",
        "the third chapter is marked current: {seek}"
    );
    // The picture at the chapter is decoded in Firefox (WebM/VP8 plays).
    inspector
        .wait_true(
            "a decoded frame at the chapter",
            "const v = document.getElementById('video'); return v.readyState >= 2 && v.videoWidth > 0",
            Duration::from_secs(20),
        )
        .await?;
    inspector.close().await?;
    app.stop().await;
    drop(ns);
    Ok(())
}

//! WebKitGTK (MiniBrowser through WebKitWebDriver, on Xvfb), the engine closest to iOS
//! Safari on this machine (issue 17). Debian builds it without WebRTC, so it shows what a
//! browser that cannot make video calls gets: a plain message on the business page, and the
//! reason next to the participant on the inspector's page (Chromium). The parts without
//! WebRTC run in it for real: the checklist mirror on the business page, the console's sign-in,
//! create form and list, and the reviewer player (chapters, click to seek, keys) over a
//! WebM/VP8 recording and over an MP4/H.264 one.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use inspector_tests::browser::{Browser, Device};
use inspector_tests::{spawn_app, ws_connect, Client, Role, TestApp};
use media_recorder::depacketize::Codec;
use serde_json::{json, Value};

const PASSWORD: &str = "a long test password";

/// The business's WebKit page shows the plain message and reports the reason; the
/// inspector's page shows it next to the participant; the checklist still mirrors.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webkit_business_page_says_it_cannot_make_video_calls() -> Result<()> {
    let app = spawn_app().await;
    // `staff` gives the account the same test password the form signs in with.
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    let invite = insp.invite_url(&id, "WebKit").await;
    let base = app.address.clone();

    let inspector = Browser::launch("inspector", Device::Desktop).await?;
    inspector.goto(&format!("{base}/")).await?;
    inspector.sign_in("inspector1", PASSWORD).await?;
    inspector.start_inspection(&base, &id).await?;

    // --- The business opens the link in WebKitGTK. ---
    let phone = Browser::launch_webkit("webkit-business", Device::Phone).await?;
    phone.goto(&invite).await?;
    phone
        .wait_true(
            "the intro",
            "return !document.getElementById('view-intro').hidden",
            Duration::from_secs(20),
        )
        .await?;
    let seen = phone
        .js("const b = document.getElementById('biz-unsupported'); \
             return {hidden: b.hidden, missing: b.dataset.missing, text: b.textContent, \
                     rtc: typeof window.RTCPeerConnection}")
        .await?;
    ensure!(
        seen["hidden"] == false && seen["rtc"] == "undefined",
        "WebKitGTK's business page: {seen}"
    );
    let missing = seen["missing"].as_str().unwrap_or_default().to_owned();
    ensure!(
        missing.split(' ').any(|m| m == "webrtc"),
        "the page names WebRTC as missing: {seen}"
    );
    let text = seen["text"].as_str().unwrap_or_default();
    ensure!(
        text.contains("не может совершать видеозвонки")
            && text.contains("видеосвязь (WebRTC)")
            && text.contains("Safari на iPhone"),
        "the message in Russian says what is missing and which browsers work: {text}"
    );
    phone.screenshot("webkit-business-intro.ru").await?;
    phone.click("#lang").await?;
    phone
        .wait_true(
            "English",
            "return document.documentElement.lang === 'en'",
            Duration::from_secs(5),
        )
        .await?;
    let en = phone
        .js("return document.getElementById('biz-unsupported').textContent")
        .await?;
    let en = en.as_str().unwrap_or_default();
    ensure!(
        en.contains("This browser cannot make video calls")
            && en.contains("video calls (WebRTC)")
            && en.contains("Safari on iPhone"),
        "the message in English: {en}"
    );
    phone.screenshot("webkit-business-intro.en").await?;
    phone.click("#lang").await?;

    // The business joins anyway: the socket connects, the checklist is there.
    phone.click("#biz-start").await?;
    phone
        .wait_true(
            "the business connected",
            "return document.getElementById('conn').dataset.state === 'open' && \
             document.querySelectorAll('#checklist .item').length > 0 && \
             !document.getElementById('biz-unsupported').hidden",
            Duration::from_secs(30),
        )
        .await?;

    // --- The inspector sees why there is no video, next to the participant. ---
    inspector
        .wait_true(
            "the participant's reason",
            "const m = document.querySelector('.participant[data-role=\"business\"] .missing'); \
             return !!m && m.dataset.missing.split(' ').includes('webrtc') && \
                    m.textContent.includes('видеосвязь (WebRTC)')",
            Duration::from_secs(30),
        )
        .await?;
    // The server holds it as the participant's, from the join event (not a page's guess).
    let state = insp.get(&format!("/api/inspections/{id}/state")).await;
    let business: Vec<&Value> = state.body["state"]["participants"]
        .as_object()
        .context("participants")?
        .values()
        .filter(|p| p["role"] == "business")
        .collect();
    ensure!(
        business.len() == 1
            && business[0]["missing"]
                .as_array()
                .is_some_and(|m| m.contains(&json!("webrtc"))),
        "the server's participant: {business:?}"
    );

    // --- The checklist mirror works without WebRTC. ---
    for (n, result) in [(1usize, "compliant"), (2, "violation")] {
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
    }
    phone
        .wait_true(
            "the mirror in WebKit",
            "const r = [...document.querySelectorAll('#checklist .item')].map(li => li.dataset.result); \
             return r[0] === 'compliant' && r[1] === 'violation'",
            Duration::from_secs(20),
        )
        .await?;
    let badge = phone
        .js("return document.querySelector('#checklist .item:nth-child(2) .badge').textContent")
        .await?;
    ensure!(
        badge.as_str().unwrap_or_default().contains("Нарушение"),
        "badge text in WebKit: {badge}"
    );
    phone.js("window.scrollTo(0, 0); return true").await?;
    phone.screenshot("webkit-business-live.ru").await?;
    inspector
        .screenshot("console-room-webkit-participant.ru")
        .await?;
    phone.close().await?;
    inspector.close().await?;
    app.stop().await;
    Ok(())
}

/// A finished inspection with a synthetic recording of the given codec (VP8 gives WebM,
/// H.264 gives MP4) and three findings; gives its id once the recording is finalized.
async fn recorded_inspection(app: &TestApp, insp: &Client, codec: Codec) -> Result<String> {
    let id = insp.create_inspection().await;
    let mut ws = ws_connect(insp, &id)
        .await
        .map_err(|s| anyhow::anyhow!("socket refused: {s}"))?;
    let welcome = ws.hello(None).await;
    let items: Vec<String> = welcome["checklist"]
        .as_array()
        .context("checklist")?
        .iter()
        .filter_map(|i| i["id"].as_str().map(String::from))
        .collect();
    let start = ws.op("s", json!({"kind": "start"})).await;
    let t0 = start["server_ts"].as_i64().context("start ts")?;
    // The phone's camera as the media side would have journaled it: 12 s of test pattern.
    let recordings = app.data_dir.path().join("recordings");
    let mut spec = media_recorder::testsrc::SegmentSpec::new(0, t0 - 1_000_000, 12_000_000);
    spec.video_codec = codec;
    let inspection = id.clone();
    tokio::task::spawn_blocking(move || {
        media_recorder::testsrc::write_segment(&recordings, &inspection, spec)
    })
    .await??;
    for (n, (item, result)) in [
        (&items[0], "compliant"),
        (&items[1], "violation"),
        (&items[2], "not_applicable"),
        (&items[3], "compliant"),
    ]
    .into_iter()
    .enumerate()
    {
        let ack = ws
            .op(
                &format!("r{n}"),
                json!({"kind": "set_result", "item_id": item, "result": result}),
            )
            .await;
        ensure!(ack["type"] == "ack", "{ack}");
        // Marks far enough apart that their chapters have distinct starts.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "finished"}),
        )
        .await;
    ensure!(r.status == 200, "{}", r.text);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = insp
            .get(&format!("/api/inspections/{id}/recording/manifest"))
            .await;
        if r.status == 200 {
            return Ok(id);
        }
        ensure!(r.code() == "recording_not_ready", "{}", r.text);
        ensure!(Instant::now() < deadline, "no manifest after 90 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The reviewer player in WebKitGTK: the recording plays (a frame is decoded), the chapters
/// are listed, a click seeks to the chapter's start, N moves to the next chapter.
async fn review_in_webkit(b: &Browser, base: &str, id: &str) -> Result<Value> {
    b.goto(&format!("{base}/review/#{id}")).await?;
    b.wait_true(
        "the chapters",
        "return document.querySelectorAll('#chapters .chapter').length >= 3",
        Duration::from_secs(60),
    )
    .await?;
    b.wait_true(
        "a decoded frame of the recording",
        "const v = document.getElementById('video'); return v.readyState >= 2 && v.videoWidth > 0 && !v.error",
        Duration::from_secs(30),
    )
    .await?;
    b.click("#chapters li:nth-child(3) .chapter").await?;
    b.wait_true(
        "the seek to finish",
        // The player marks the chapter current from the video's time (timeupdate), which
        // WebKit reports a moment after the seek itself: wait for both.
        "const v = document.getElementById('video'); \
         const c = document.querySelector('#chapters li:nth-child(3) .chapter'); \
         return !v.seeking && v.currentTime > 0 && c.getAttribute('aria-current') === 'true'",
        Duration::from_secs(20),
    )
    .await?;
    let seek: Value = b
        .js("const v = document.getElementById('video'); \
             const c = document.querySelector('#chapters li:nth-child(3) .chapter'); \
             return {t: v.currentTime, start: Number(c.dataset.startMs), current: c.getAttribute('aria-current'), \
                     src: v.currentSrc, w: v.videoWidth}")
        .await?;
    let t = seek["t"].as_f64().context("currentTime")?;
    let start = seek["start"].as_f64().context("start_ms")? / 1000.0;
    ensure!(
        (t - start).abs() <= 0.1,
        "WebKit: currentTime {t} s, chapter starts at {start} s: {seek}"
    );
    ensure!(
        seek["current"] == "true",
        "the third chapter is current: {seek}"
    );
    b.js("document.activeElement.blur(); \
          document.dispatchEvent(new KeyboardEvent('keydown', {key: 'n', bubbles: true})); return true")
        .await?;
    b.wait_true(
        "N selects the next chapter",
        "return document.querySelector('#chapters li:nth-child(4) .chapter').getAttribute('aria-current') === 'true'",
        Duration::from_secs(5),
    )
    .await?;
    Ok(seek)
}

/// The console's sign-in, create form and list, then the reviewer player over a WebM/VP8
/// recording and over an MP4/H.264 one, all in WebKitGTK.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webkit_console_and_reviewer_player_work() -> Result<()> {
    let app = spawn_app().await;
    // `staff` gives the account the same test password the form signs in with.
    let insp = app.staff("inspector1", Role::Inspector).await;
    app.create_user("reviewer1", PASSWORD, Role::Reviewer).await;
    let base = app.address.clone();
    let b = Browser::launch_webkit("webkit-desktop", Device::Desktop).await?;

    // --- Console: sign in, create, see it in the list. ---
    b.goto(&format!("{base}/")).await?;
    b.sign_in("inspector1", PASSWORD).await?;
    b.goto(&format!("{base}/#/new")).await?;
    b.wait_true(
        "templates loaded",
        "return document.querySelectorAll('#c-template option').length > 1",
        Duration::from_secs(20),
    )
    .await?;
    b.fill("#c-title", "Проверка в WebKit").await?;
    b.fill("#c-bname", "ООО «Ромашка»").await?;
    b.fill("#c-inn", "7707083893").await?;
    b.fill("#c-address", "Москва, ул. Тверская, 1").await?;
    b.fill("#c-lat", "55.757").await?;
    b.fill("#c-lon", "37.615").await?;
    b.click("#create-submit").await?;
    b.wait_true(
        "the invitation",
        "return !document.getElementById('invite-panel').hidden && \
         document.getElementById('invite-url').value.includes('/b/#t=')",
        Duration::from_secs(20),
    )
    .await?;
    let created = b
        .js("return document.getElementById('invite-room').getAttribute('href')")
        .await?
        .as_str()
        .and_then(|h| h.strip_prefix("#/room/"))
        .context("room link carries the inspection id")?
        .to_owned();
    b.goto(&format!("{base}/#/list")).await?;
    b.wait_true(
        "the new inspection in the list",
        &format!("return !!document.querySelector('tr[data-inspection-id=\"{created}\"]')"),
        Duration::from_secs(20),
    )
    .await?;
    b.screenshot("webkit-console-list.ru").await?;
    b.click("#logout").await?;

    // --- Reviewer: WebM/VP8 (what Chromium and Firefox phones publish), then MP4/H.264
    // (what an iPhone publishes). ---
    let webm = recorded_inspection(&app, &insp, Codec::Vp8).await?;
    let mp4 = recorded_inspection(&app, &insp, Codec::H264).await?;
    b.sign_in("reviewer1", PASSWORD).await?;
    let a = review_in_webkit(&b, &base, &webm).await?;
    ensure!(
        a["src"].as_str().is_some_and(|s| !s.is_empty()),
        "WebM source: {a}"
    );
    b.screenshot("webkit-review.ru").await?;
    let c = review_in_webkit(&b, &base, &mp4).await?;
    ensure!(
        c["src"].as_str().is_some_and(|s| !s.is_empty()),
        "MP4 source: {c}"
    );
    b.close().await?;
    app.stop().await;
    Ok(())
}

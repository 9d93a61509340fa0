//! The three web faces in real headless Chromium: an inspector creates an inspection and
//! invites the business; the business joins from a phone-sized browser with a fake camera and
//! an emulated GPS position; the inspector sees decoded video and marks items; the business
//! sees the same colours; the inspector finishes; the reviewer jumps to the third chapter.
//! Screenshots of every face in Russian and English go to `artifacts/screenshots/`.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use inspector_tests::browser::{Browser, Device};
use inspector_tests::{spawn_app, Role};
use serde_json::Value;

const PASSWORD: &str = "a long test password";
// The inspected site (Moscow, Tverskaya 1) and the phone's position a few metres away.
const SITE: (f64, f64) = (55.757_000, 37.615_000);
const PHONE: (f64, f64) = (55.757_050, 37.615_080);

/// Screenshot in Russian, switch to English, screenshot, switch back.
async fn shoot_both(b: &Browser, name: &str) -> Result<()> {
    b.screenshot(&format!("{name}.ru")).await?;
    b.click("#lang").await?;
    b.wait_true(
        "English",
        "return document.documentElement.lang === 'en'",
        Duration::from_secs(5),
    )
    .await?;
    // Let dynamic parts re-render in the new language before the picture.
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.screenshot(&format!("{name}.en")).await?;
    b.click("#lang").await?;
    b.wait_true(
        "Russian",
        "return document.documentElement.lang === 'ru'",
        Duration::from_secs(5),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}

/// The page ran under the server's strict Content-Security-Policy (no inline styles or
/// scripts, sockets to this host only) without the browser refusing anything.
async fn no_csp_violations(b: &Browser, who: &str) -> Result<()> {
    let refused: Vec<String> = b
        .console_logs()
        .await?
        .into_iter()
        .filter(|l| l.contains("Content Security Policy") || l.contains("Content-Security-Policy"))
        .collect();
    ensure!(
        refused.is_empty(),
        "{who}: the browser refused {refused:#?}"
    );
    Ok(())
}

/// The result shown for each checklist item of a page, in order.
async fn results(b: &Browser) -> Result<Vec<(String, String, String)>> {
    let v = b
        .js(
            "return [...document.querySelectorAll('#checklist .item')].map(li => \
             [li.dataset.itemId, li.dataset.result, getComputedStyle(li).backgroundColor])",
        )
        .await?;
    let rows = v.as_array().context("results is an array")?;
    Ok(rows
        .iter()
        .map(|r| {
            let s = |i: usize| r[i].as_str().unwrap_or_default().to_owned();
            (s(0), s(1), s(2))
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inspection_runs_end_to_end_in_chromium() -> Result<()> {
    let app = spawn_app().await;
    app.create_user("inspector1", PASSWORD, Role::Inspector)
        .await;
    app.create_user("reviewer1", PASSWORD, Role::Reviewer).await;
    let base = app.address.clone();

    // --- Inspector: sign in, list, create, invite. ---
    let inspector = Browser::launch("inspector", Device::Desktop).await?;
    inspector.goto(&format!("{base}/")).await?;
    inspector
        .wait_true(
            "the login form",
            "return !document.getElementById('view-login').hidden",
            Duration::from_secs(20),
        )
        .await?;
    shoot_both(&inspector, "console-login").await?;
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
    shoot_both(&inspector, "console-create-invite").await?;
    let invite_url = inspector
        .js("return document.getElementById('invite-url').value")
        .await?;
    let invite_url = invite_url
        .as_str()
        .context("invite url is a string")?
        .to_owned();
    let room_href = inspector
        .js("return document.getElementById('invite-room').getAttribute('href')")
        .await?;
    let inspection_id = room_href
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
    shoot_both(&inspector, "console-list").await?;

    // --- Inspector: open the room and start. ---
    inspector.start_inspection(&base, &inspection_id).await?;

    // --- Business: a phone joins by the link. ---
    let business = Browser::launch("business", Device::Phone).await?;
    business
        .set_geolocation(&base, PHONE.0, PHONE.1, 12.0)
        .await?;
    business.goto(&invite_url).await?;
    business
        .wait_true(
            "the intro",
            "return !document.getElementById('view-intro').hidden",
            Duration::from_secs(20),
        )
        .await?;
    shoot_both(&business, "business-intro").await?;
    business.click("#biz-start").await?;
    business
        .wait_true(
            "the business connected with a camera",
            "const v = document.getElementById('local-video'); \
             return document.getElementById('conn').dataset.state === 'open' && v.videoWidth > 0",
            Duration::from_secs(30),
        )
        .await?;

    // --- Inspector: decoded video from the phone. ---
    inspector
        .wait_true(
            "decoded video from the business",
            "const v = document.getElementById('remote-video'); \
             const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : 0; \
             return v.readyState >= 2 && v.videoWidth > 0 && q > 0",
            Duration::from_secs(60),
        )
        .await?;
    // The same, as WebRTC's own statistics report it (inbound-rtp framesDecoded).
    inspector
        .wait_true(
            "framesDecoded > 0 from getStats",
            "return Number(document.getElementById('quality').dataset.framesDecoded || 0) > 0",
            Duration::from_secs(30),
        )
        .await?;
    // What the server receives from the phone, said beside the video in Russian words.
    inspector
        .wait_true(
            "the server's reception of the phone",
            "const r = document.getElementById('reception'); \
             return !r.hidden && ['ok', 'repairing'].includes(r.dataset.state) \
               && Number(r.dataset.kbps) > 0 && r.textContent.startsWith('Сервер получает от телефона: видео') \
               && r.textContent.includes('кбит/с')",
            Duration::from_secs(30),
        )
        .await?;
    // The business's location reaches the inspector's participant list.
    inspector
        .wait_true(
            "the business's location",
            "const p = document.querySelector('.participant[data-role=\"business\"] .geo'); \
             return !!p && p.textContent.includes('55.75')",
            Duration::from_secs(30),
        )
        .await?;

    // --- Inspector marks items; a pause between marks separates their chapters. ---
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
        let marked = format!(
            "const li = document.querySelector('{item}'); \
             return li.dataset.result === '{result}' && !li.classList.contains('pending')"
        );
        inspector
            .wait_true(
                &format!("item {n} marked {result}"),
                &marked,
                Duration::from_secs(20),
            )
            .await?;
        if result == "violation" {
            // A violation opens its notes; the description is saved as it is typed.
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
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }

    // --- Business sees the same colours. ---
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
        !on_inspector.is_empty(),
        "the inspector's checklist is empty"
    );
    ensure!(
        on_inspector == on_business,
        "the pages disagree:\ninspector {on_inspector:?}\nbusiness  {on_business:?}"
    );
    let distinct: std::collections::HashSet<&str> =
        on_inspector[..4].iter().map(|r| r.2.as_str()).collect();
    ensure!(
        distinct.len() == 3,
        "compliant, violation and n/a must have three colours: {on_inspector:?}"
    );
    // Colour is never the only signal: every result badge carries its word.
    let badge_text = business
        .js("return document.querySelector('#checklist .item:nth-child(2) .badge').textContent")
        .await?;
    ensure!(
        badge_text
            .as_str()
            .unwrap_or_default()
            .contains("Нарушение"),
        "badge text: {badge_text}"
    );
    business
        .wait_true(
            "the violation text on the phone",
            "return document.querySelector('#checklist .item:nth-child(2)').textContent.includes('истёкшим сроком')",
            Duration::from_secs(20),
        )
        .await?;

    shoot_both(&inspector, "console-room").await?;
    business.js("window.scrollTo(0, 0); return true").await?;
    shoot_both(&business, "business-live").await?;

    // --- Inspector finishes. ---
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
    no_csp_violations(&business, "business page").await?;
    business.close().await?;

    // --- Reviewer: chapters, click the third, the video seeks to its timecode. ---
    inspector.click("#logout").await?;
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
    inspector
        .wait_true(
            "the recording's metadata",
            "return document.getElementById('video').readyState >= 1",
            Duration::from_secs(30),
        )
        .await?;
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
             return {t: v.currentTime, start: Number(c.dataset.startMs), current: c.getAttribute('aria-current'), \
                     result: [...c.classList].join(' ')}")
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
    // The inspector's voice (the recording's second audio stream, which <video> does not
    // play) plays beside the video at its time, and stops with it.
    let voice = inspector
        .wait_true(
            "the inspector's voice beside the video",
            "const a = document.querySelector('audio[data-track-index]'); \
             return !!a && a.dataset.feed === 'inspector_voice' && a.readyState >= 1",
            Duration::from_secs(30),
        )
        .await;
    if voice.is_err() {
        let st: Value = inspector
            .js(&format!("const a = document.querySelector('audio[data-track-index]'); \
                 return fetch('/api/inspections/{inspection_id}/recording/manifest').then((r) => r.json()).then((m) => \
                 ({{tracks: m.tracks, audio: a && {{src: a.src, feed: a.dataset.feed, ready: a.readyState, err: a.error && a.error.message}}}}))"))
            .await?;
        bail!("no voice beside the video: {st}");
    }
    inspector
        .js("const v = document.getElementById('video'); v.muted = true; v.play(); return true")
        .await?;
    let together = inspector
        .wait_true(
            "voice and video playing together",
            "const v = document.getElementById('video'); const a = document.querySelector('audio[data-track-index]'); \
             return !v.paused && !a.paused && v.currentTime > 0.5 + Number(document.querySelector('#chapters li:nth-child(3) .chapter').dataset.startMs) / 1000 \
               && Math.abs(a.currentTime - v.currentTime) < 0.3",
            Duration::from_secs(20),
        )
        .await;
    if together.is_err() {
        let st: Value = inspector
            .js("const v = document.getElementById('video'); const a = document.querySelector('audio[data-track-index]'); \
                 return {v: v.currentTime, vp: v.paused, vr: v.readyState, a: a.currentTime, ap: a.paused, ar: a.readyState, ad: a.duration, err: a.error && a.error.message}")
            .await?;
        bail!("voice and video did not play together: {st}");
    }
    inspector
        .js("document.getElementById('video').pause(); return true")
        .await?;
    inspector
        .wait_true(
            "the voice pauses with the video",
            "return document.querySelector('audio[data-track-index]').paused",
            Duration::from_secs(5),
        )
        .await?;
    // Keyboard: N moves to the fourth chapter.
    inspector
        .js("document.activeElement.blur(); return true")
        .await?;
    inspector
        .js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'n', bubbles: true})); return true")
        .await?;
    inspector
        .wait_true(
            "N selects the next chapter",
            "return document.querySelector('#chapters li:nth-child(4) .chapter').getAttribute('aria-current') === 'true'",
            Duration::from_secs(5),
        )
        .await?;
    // The violation's clip and still, cut from the recording by the server, are listed on
    // its item (item 2, the only violation).
    inspector
        .wait_true(
            "the violation's clip and still in the player",
            "const e = document.querySelector('#evidence .evidence-item');              const img = e && e.querySelector('.thumb-still img');              return !!e && !!e.querySelector('.thumb-clip') && !!img && img.complete && img.naturalWidth > 0",
            Duration::from_secs(90),
        )
        .await?;
    shoot_both(&inspector, "review").await?;
    no_csp_violations(&inspector, "console and reviewer").await?;
    inspector.close().await?;
    app.stop().await;
    Ok(())
}

/// The harness itself: a phone-sized Chromium has a fake camera, touch, and the position set
/// through the DevTools protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_gives_a_phone_with_fake_camera_and_emulated_location() -> Result<()> {
    let app = spawn_app().await;
    let phone = Browser::launch("phone", Device::Phone).await?;
    phone
        .set_geolocation(&app.address, PHONE.0, PHONE.1, 8.0)
        .await?;
    phone.goto(&format!("{}/b/", app.address)).await?;
    let v = phone
        .js_async(
            "const done = arguments[arguments.length - 1]; \
             navigator.geolocation.getCurrentPosition( \
               p => navigator.mediaDevices.getUserMedia({video: {facingMode: {ideal: 'environment'}}, audio: true}) \
                 .then(s => { const t = s.getVideoTracks()[0].getSettings(); \
                   done({lat: p.coords.latitude, lon: p.coords.longitude, acc: p.coords.accuracy, \
                         w: t.width, audio: s.getAudioTracks().length, vw: window.innerWidth, \
                         touch: navigator.maxTouchPoints, webdriver: navigator.webdriver}); }) \
                 .catch(e => done({error: 'media ' + e.name})), \
               e => done({error: 'geo ' + e.code}), {timeout: 10000});",
        )
        .await?;
    ensure!(v.get("error").is_none(), "browser said {v}");
    ensure!(
        (v["lat"].as_f64().unwrap_or(0.0) - PHONE.0).abs() < 1e-9,
        "latitude {v}"
    );
    ensure!(
        (v["lon"].as_f64().unwrap_or(0.0) - PHONE.1).abs() < 1e-9,
        "longitude {v}"
    );
    ensure!(v["acc"].as_f64() == Some(8.0), "accuracy {v}");
    ensure!(
        v["w"].as_f64().unwrap_or(0.0) > 0.0,
        "fake camera frame width {v}"
    );
    ensure!(v["audio"] == 1, "fake microphone {v}");
    ensure!(v["vw"] == 360, "phone viewport {v}");
    ensure!(v["touch"].as_u64().unwrap_or(0) > 0, "touch {v}");
    phone.close().await?;
    app.stop().await;
    Ok(())
}

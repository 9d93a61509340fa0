//! The device check (issue 15, item 4) in Chromium with the fake camera: the phone's page
//! reports camera, microphone, location with the server's trust reading and a measured round
//! trip to the server's media peer; with permissions denied it says what to do. The inspector
//! sees the result beside the participants on the console, and the check neither records nor
//! touches the inspection's room.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use inspector_tests::browser::{Browser, Device};
use inspector_tests::{inspection_body, spawn_app, Role};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);
const PASSWORD: &str = "a long test password";

/// Opens the check page and runs the check to its end.
async fn run_check(b: &Browser, url: &str) -> Result<()> {
    b.goto(url).await?;
    b.wait_true(
        "the check's intro",
        "return !document.getElementById('check-intro').hidden",
        Duration::from_secs(20),
    )
    .await?;
    b.click("#check-start").await?;
    b.wait_true(
        "the check's end",
        "return document.getElementById('check-run').dataset.done === '1'",
        T,
    )
    .await
}

/// Each row of the list: step → [state, value, text].
async fn rows(b: &Browser) -> Result<Value> {
    b.js("const o = {}; for (const li of document.querySelectorAll('#check-list li')) \
          o[li.dataset.step] = [li.dataset.state, li.dataset.value ?? null, li.textContent]; return o")
        .await
}

async fn fixes(b: &Browser) -> Result<Vec<(String, String)>> {
    let v = b
        .js("return [...document.querySelectorAll('#check-fix li')].map(li => [li.dataset.problem, li.textContent])")
        .await?;
    Ok(v.as_array()
        .context("fixes")?
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap_or_default().to_string(),
                p[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn device_check_reports_camera_microphone_location_and_rtt_and_says_what_to_fix() -> Result<()>
{
    let app = spawn_app().await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp
        .post_json("/api/inspections", &inspection_body(None))
        .await
        .body["id"]
        .as_str()
        .context("inspection id")?
        .to_string();
    let check_url = |label: &'static str| {
        let insp = &insp;
        let id = id.clone();
        async move {
            let r = insp
                .post_json(
                    &format!("/api/inspections/{id}/invitations"),
                    &json!({"label": label}),
                )
                .await;
            // The notice's check link: the invitation's token on the check page.
            r.body["url"]
                .as_str()
                .unwrap_or_default()
                .replacen("/b/#t=", "/check/#t=", 1)
        }
    };
    let base = app.address.clone();

    // --- A phone that allows everything, a few metres from the site. ---
    let ok = Browser::launch("check-ok", Device::Phone).await?;
    ok.set_geolocation(&base, 55.757_81, 37.613_05, 11.0)
        .await?;
    run_check(&ok, &check_url("Готовый телефон").await).await?;
    let r = rows(&ok).await?;
    ensure!(
        r["camera"][0] == "ok" && r["camera"][1] == "granted",
        "camera: {r}"
    );
    ensure!(
        r["microphone"][0] == "ok" && r["microphone"][1] == "granted",
        "microphone: {r}"
    );
    ensure!(
        ["trusted", "suspicious", "spoofed"].contains(&r["location"][1].as_str().unwrap_or("")),
        "location with a trust reading: {r}"
    );
    let rtt: f64 = r["connection"][1]
        .as_str()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("a measured round trip: {r}"))?;
    ensure!(rtt > 0.0 && rtt < 1000.0, "round trip {rtt} ms: {r}");
    ensure!(
        r["browser"][1] == "Chrome" && r["browser"][2].as_str().unwrap_or("").contains("156"),
        "browser: {r}"
    );
    // The fake camera has no facing mode: the page says there is no rear camera.
    ensure!(r["rear"][1] == "false", "rear camera: {r}");
    let f = fixes(&ok).await?;
    ensure!(
        f.iter().any(|(p, _)| p == "rear_camera_missing")
            && !f
                .iter()
                .any(|(p, _)| p.starts_with("camera") || p.starts_with("microphone")),
        "what to fix: {f:?}"
    );
    ok.screenshot("device-check-ok.ru").await?;

    // --- A phone that denied camera, microphone and location. ---
    // The fake media UI answers every camera prompt itself ("deny": as a user who taps
    // "Block"); location is denied for the origin through DevTools.
    let denied = Browser::launch_with(
        "check-denied",
        Device::Phone,
        &["--use-fake-ui-for-media-stream=deny"],
    )
    .await?;
    denied
        .cdp(
            "Browser.setPermission",
            json!({"permission": {"name": "geolocation"}, "setting": "denied", "origin": base}),
        )
        .await?;
    run_check(&denied, &check_url("Без разрешений").await).await?;
    let r = rows(&denied).await?;
    for step in ["camera", "microphone", "location"] {
        ensure!(
            r[step][0] == "bad" && r[step][1] == "denied",
            "{step} denied: {r}"
        );
    }
    let f = fixes(&denied).await?;
    let said = |code: &str, words: &str| f.iter().any(|(p, t)| p == code && t.contains(words));
    ensure!(
        said("camera_denied", "Разрешите доступ к камере")
            && said("microphone_denied", "Разрешите доступ к микрофону")
            && said("location_denied", "Разрешите доступ к геолокации"),
        "the denied phone is told what to do: {f:?}"
    );
    ensure!(
        denied
            .js("return document.getElementById('check-summary').dataset.ready")
            .await?
            == "no",
        "not ready"
    );
    // Without media the connection is still measured over the data channel.
    if !r["connection"][1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .is_some_and(|ms| ms > 0.0)
    {
        // Say why: the page's error line and what the server stored (failure, ICE state).
        let error = denied
            .js("const e = document.getElementById('check-error'); return e.hidden ? null : e.textContent")
            .await?;
        let stored = insp
            .get(&format!("/api/inspections/{id}/device-checks"))
            .await
            .text;
        anyhow::bail!("round trip without media: {r}; error line: {error}; stored: {stored}");
    }
    denied.screenshot("device-check-denied.ru").await?;

    // --- Stored server-side: one latest result per participant, read by the inspector. ---
    let list = insp
        .get(&format!("/api/inspections/{id}/device-checks"))
        .await;
    ensure!(list.status == 200, "list: {}", list.text);
    let checks = list.body["checks"].as_array().context("checks")?;
    ensure!(checks.len() == 2, "two participants' checks: {}", list.text);
    let good = checks
        .iter()
        .find(|c| c["label"] == "Готовый телефон")
        .context("the ready phone's check")?;
    ensure!(
        good["camera"] == "granted"
            && good["microphone"] == "granted"
            && good["reading"]["level"].is_string()
            && good["rtc"]["connected"] == true
            && good["rtc"]["rtt_ms"].as_f64().is_some_and(|v| v > 0.0)
            && good["rtc"]["upload_kbps"].as_f64().is_some_and(|v| v > 0.0)
            && good["rtc"]["server_kbps"].as_f64().is_some_and(|v| v > 0.0),
        "the ready phone's stored check: {good}"
    );
    // Checking again replaces the participant's result instead of adding one.
    ok.click("#check-again").await?;
    ok.wait_true(
        "the second check's end",
        "return document.getElementById('check-run').dataset.done === '1' && \
         document.querySelectorAll('#check-list li').length > 0",
        T,
    )
    .await?;
    let again = insp
        .get(&format!("/api/inspections/{id}/device-checks"))
        .await;
    ensure!(
        again.body["checks"].as_array().map(Vec::len) == Some(2),
        "still one per participant: {}",
        again.text
    );

    // --- The check is not a join: no event, no recording, the inspection still scheduled. ---
    let state = insp.get(&format!("/api/inspections/{id}/state")).await;
    ensure!(
        state.body["state"]["participants"]
            .as_object()
            .is_none_or(|p| p.is_empty()),
        "no participant joined the room: {}",
        state.text
    );
    let shown = insp.get(&format!("/api/inspections/{id}")).await;
    ensure!(
        shown.body["status"] == "scheduled",
        "status: {}",
        shown.text
    );
    ensure!(
        !app.data_dir.path().join("recordings").join(&id).exists(),
        "nothing recorded for the inspection"
    );

    // --- The inspector's console shows the results next to the participants. ---
    let console = Browser::launch("check-console", Device::Desktop).await?;
    console.goto(&format!("{base}/")).await?;
    console
        .wait_true(
            "the login form",
            "return !document.getElementById('view-login').hidden",
            Duration::from_secs(20),
        )
        .await?;
    console.fill("#login-username", "inspector1").await?;
    console.fill("#login-password", PASSWORD).await?;
    console.click("#login-submit").await?;
    console
        .wait_true(
            "signed in",
            "return !document.getElementById('logout').hidden",
            Duration::from_secs(20),
        )
        .await?;
    console.goto(&format!("{base}/#/room/{id}")).await?;
    console
        .wait_true(
            "both checks on the console",
            "return document.querySelectorAll('#device-checks .device-check').length === 2",
            T,
        )
        .await?;
    let shown = console
        .js("return [...document.querySelectorAll('#device-checks .device-check')].map(li => li.textContent).join('\\n')")
        .await?;
    let shown = shown.as_str().unwrap_or_default();
    ensure!(
        shown.contains("Готовый телефон")
            && shown.contains("Без разрешений")
            && shown.contains("Разрешите доступ к камере"),
        "the console's device checks: {shown}"
    );
    console.screenshot("console-device-checks.ru").await?;

    ok.close().await?;
    denied.close().await?;
    console.close().await?;
    app.stop().await;
    Ok(())
}

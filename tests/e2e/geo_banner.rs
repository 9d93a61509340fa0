//! Location integrity on the real business page in Chromium: a natural position near the site
//! shows no banner; a position that teleports across the country shows the one location
//! banner saying "spoofed" ("turn off location spoofing") with the server's reasons.
//!
//! Headless Chromium on an x86 server honestly looks like an emulator driven by a program
//! (navigator.webdriver, x86 platform, software WebGL, UTC time zone), and the server says so.
//! To test the *location* evidence, each phone here is made to look like a real phone in
//! Moscow: automation flag off, ARM platform and a Moscow time zone through the DevTools
//! protocol, and a phone GPU name for WebGL — the same kind of fixture as the fake camera.

use std::time::Duration;

use anyhow::{ensure, Result};
use inspector_tests::browser::{Browser, Device};
use inspector_tests::{inspection_body, spawn_app, Role};
use serde_json::json;

const PHONE_UA: &str =
    "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) \
                        Chrome/156.0.0.0 Mobile Safari/537.36";

async fn real_looking_phone(label: &str, base: &str, lat: f64, lon: f64) -> Result<Browser> {
    let b = Browser::launch_with(
        label,
        Device::Phone,
        &["--disable-blink-features=AutomationControlled"],
    )
    .await?;
    b.cdp(
        "Emulation.setTimezoneOverride",
        json!({"timezoneId": "Europe/Moscow"}),
    )
    .await?;
    b.cdp(
        "Emulation.setUserAgentOverride",
        json!({"userAgent": PHONE_UA, "platform": "Linux armv8l"}),
    )
    .await?;
    b.cdp(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({"source": "(() => { const get = WebGLRenderingContext.prototype.getParameter; \
            WebGLRenderingContext.prototype.getParameter = function (p) { \
              return p === 0x9246 ? 'Mali-G710' : get.call(this, p); }; })();"}),
    )
    .await?;
    b.set_geolocation(base, lat, lon, 11.0).await?;
    Ok(b)
}

async fn join(b: &Browser, url: &str) -> Result<()> {
    b.goto(url).await?;
    b.wait_true(
        "the intro",
        "return !document.getElementById('view-intro').hidden",
        Duration::from_secs(20),
    )
    .await?;
    b.click("#biz-start").await?;
    b.wait_true(
        "connected",
        "return document.getElementById('conn').dataset.state === 'open'",
        Duration::from_secs(30),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn banner_shows_for_a_spoofed_trace_and_not_for_a_natural_one() -> Result<()> {
    let app = spawn_app().await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    // The site: central Moscow (inspection_body's coordinates).
    let id = insp
        .post_json("/api/inspections", &inspection_body(None))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let invite = |label: &'static str| {
        let insp = &insp;
        let id = id.clone();
        async move {
            let r = insp
                .post_json(
                    &format!("/api/inspections/{id}/invitations"),
                    &json!({"label": label}),
                )
                .await;
            r.body["url"].as_str().unwrap().to_string()
        }
    };
    let base = app.address.clone();

    // Natural: a phone a few metres from the site.
    let honest = real_looking_phone("honest", &base, 55.757_81, 37.613_05).await?;
    join(&honest, &invite("Честный").await).await?;
    honest
        .wait_true(
            "a trusted verdict",
            "return document.getElementById('loc-banner').dataset.verdict === 'trusted'",
            Duration::from_secs(30),
        )
        .await?;
    // Let more fixes arrive; the verdict must stay and the banner stay hidden.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v = honest
        .js("const b = document.getElementById('loc-banner'); return [b.hidden, b.dataset.verdict]")
        .await?;
    ensure!(
        v == json!([true, "trusted"]),
        "natural trace: banner state {v}"
    );

    // Spoofed: the same kind of phone, whose position jumps 2 800 km in seconds.
    let spoofer = real_looking_phone("spoofer", &base, 55.757_90, 37.613_10).await?;
    join(&spoofer, &invite("Подменщик").await).await?;
    spoofer
        .wait_true(
            "a first verdict",
            "return document.getElementById('loc-banner').dataset.verdict === 'trusted'",
            Duration::from_secs(30),
        )
        .await?;
    spoofer
        .set_geolocation(&base, 55.030_20, 82.920_40, 9.0)
        .await?;
    spoofer
        .wait_true(
            "the spoofing banner",
            "const b = document.getElementById('loc-banner'); return !b.hidden && b.dataset.reason === 'spoofed'",
            Duration::from_secs(30),
        )
        .await?;
    let reasons = spoofer
        .js("return document.getElementById('loc-reasons').textContent")
        .await?;
    // In words of the page's language, rendered from the signal codes (no code shows).
    ensure!(
        reasons
            .as_str()
            .is_some_and(|r| r.chars().any(|c| ('а'..='я').contains(&c)) && !r.contains('_')),
        "the banner explains itself in Russian: {reasons}"
    );
    spoofer.screenshot("business-spoofed.ru").await?;

    // The inspector sees both verdicts in the state.
    let state = insp.get(&format!("/api/inspections/{id}/state")).await;
    let levels: Vec<String> = state.body["state"]["participants"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|p| p["verdict"]["level"].as_str().map(String::from))
        .collect();
    ensure!(levels.contains(&"trusted".to_string()), "levels {levels:?}");
    ensure!(levels.iter().any(|l| l != "trusted"), "levels {levels:?}");
    honest.close().await?;
    spoofer.close().await?;
    app.stop().await;
    Ok(())
}

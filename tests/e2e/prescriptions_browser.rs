//! "My prescriptions" in real headless Chromium (issue 14, "Done when"): an inspection with
//! two violations → the inspector issues the prescription in the console and passes the
//! business its sign-in link → the business opens it on a phone-sized browser and proves each
//! fix with the fake camera near the site → the inspector returns one with a comment and
//! accepts the other → the business sends a new proof → accepted → both sides see the
//! prescription fulfilled with no repeat visit, and the log verifies.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use inspector_tests::browser::{Browser, Device};
use inspector_tests::presc::{run_with_two_violations, template, SITE};
use inspector_tests::{inspection_body, spawn_app, Role};
use serde_json::json;

const PASSWORD: &str = "a long test password";
const T: Duration = Duration::from_secs(30);

async fn prove(phone: &Browser, item: &str) -> Result<()> {
    phone
        .click(&format!(".presc-item[data-item=\"{item}\"] .prove-btn"))
        .await?;
    phone
        .wait_true(
            "the live camera with a position",
            "const v = document.getElementById('camera-video'); \
             return !document.getElementById('view-camera').hidden && v.videoWidth > 0 && \
             !document.getElementById('camera-shoot').disabled && \
             document.getElementById('camera-geo').textContent.includes('55.75')",
            T,
        )
        .await?;
    phone.click("#camera-shoot").await?;
    let shown = phone
        .wait_true(
            "the proof shown on the item",
            &format!(
                "const i = document.querySelector('.presc-item[data-item=\"{item}\"]'); \
                 return !document.getElementById('view-detail').hidden && !!i && \
                 i.dataset.status === 'submitted' && !!i.querySelector('.proof img')"
            ),
            T,
        )
        .await;
    if let Err(e) = shown {
        let why = phone
            .js(
                "return [document.getElementById('my-error-text').textContent, \
                 document.getElementById('camera-status').textContent, location.hash]",
            )
            .await?;
        anyhow::bail!("{e}: the phone shows {why}");
    }
    Ok(())
}

async fn reload(b: &Browser, ready: &str) -> Result<()> {
    b.js("location.reload(); return true").await?;
    b.wait_true("the page again", ready, T).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prescription_from_issue_to_fulfilled_in_chromium() -> Result<()> {
    let app = spawn_app().await;
    app.create_user("inspector1", PASSWORD, Role::Inspector)
        .await;
    let mut api = app.anonymous();
    let r = api
        .post_json(
            "/api/auth/login",
            &json!({"username": "inspector1", "password": PASSWORD}),
        )
        .await;
    api.csrf = r.body["csrf_token"].as_str().map(String::from);
    let t = template(&api).await;
    let f = run_with_two_violations(api, &inspection_body(Some(&t))).await;

    // The inspector issues the prescription from the finished room and makes the link.
    let inspector = Browser::launch("inspector", Device::Desktop).await?;
    inspector.goto(&format!("{}/", app.address)).await?;
    inspector
        .wait_true(
            "the login form",
            "return !document.getElementById('view-login').hidden",
            T,
        )
        .await?;
    inspector.fill("#login-username", "inspector1").await?;
    inspector.fill("#login-password", PASSWORD).await?;
    inspector.click("#login-submit").await?;
    inspector
        .wait_true(
            "signed in",
            "return !document.getElementById('logout').hidden",
            T,
        )
        .await?;
    inspector
        .goto(&format!("{}/#/room/{}", app.address, f.id))
        .await?;
    inspector
        .wait_true(
            "the issue form with both violations",
            "return document.querySelectorAll('#presc-issue-form .issue-row').length === 2",
            T,
        )
        .await?;
    inspector.screenshot("prescription-issue.ru").await?;
    inspector.click("#presc-link").await?;
    inspector
        .wait_true(
            "the sign-in link",
            "const i = document.getElementById('presc-link-url'); return !!i && i.value.includes('/my/#s=')",
            T,
        )
        .await?;
    let link = inspector
        .js("return document.getElementById('presc-link-url').value")
        .await?
        .as_str()
        .context("link")?
        .to_string();
    inspector.click("#presc-issue").await?;
    inspector
        .wait_true(
            "the prescription view",
            "return !document.getElementById('view-prescription').hidden && \
             document.querySelectorAll('#presc-view-items .presc-item').length === 2",
            T,
        )
        .await?;
    let pid = inspector
        .js("return location.hash.split('/').pop()")
        .await?
        .as_str()
        .context("prescription id")?
        .to_string();

    // The business signs in by the link on its phone and proves both fixes near the site.
    let phone = Browser::launch("phone", Device::Phone).await?;
    phone
        .set_geolocation(&app.address, SITE.0 + 0.0001, SITE.1, 15.0)
        .await?;
    phone
        .cdp(
            "Emulation.setTimezoneOverride",
            json!({"timezoneId": "Europe/Moscow"}),
        )
        .await?;
    phone.goto(&link).await?;
    phone
        .wait_true(
            "My prescriptions",
            "return !document.getElementById('view-list').hidden && \
             document.querySelectorAll('#my-list .presc-card').length === 1",
            T,
        )
        .await?;
    ensure!(
        phone.js("return location.hash").await? == "#/",
        "the one-time token is gone from the address bar"
    );
    phone.screenshot("my-prescriptions-list.ru").await?;
    phone.click("#my-list .presc-card a").await?;
    phone
        .wait_true(
            "the prescription on the phone",
            "return document.querySelectorAll('#detail-items .presc-item .prove-btn').length === 2",
            T,
        )
        .await?;
    prove(&phone, "1").await?;
    prove(&phone, "2").await?;
    phone.screenshot("my-prescriptions-proofs.ru").await?;

    // The inspector returns item 1 with a comment and accepts item 2.
    let ready = "return document.querySelectorAll('#presc-view-items .accept-btn').length === 2";
    reload(&inspector, ready).await?;
    let flagged = inspector
        .js("return document.querySelectorAll('#presc-view-items .proof-flagged').length")
        .await?;
    ensure!(
        flagged == 0,
        "proofs near the site carry no marks: {flagged}"
    );
    inspector.screenshot("prescription-check.ru").await?;
    inspector
        .click(".presc-item[data-item=\"1\"] .return-btn")
        .await?;
    inspector
        .fill("#ret-comment-1", "На фото не видно бирки поверки")
        .await?;
    inspector
        .click(".presc-item[data-item=\"1\"] .return-send")
        .await?;
    inspector
        .wait_true(
            "item 1 returned",
            "const i = document.querySelector('.presc-item[data-item=\"1\"]'); return !!i && i.dataset.status === 'returned'",
            T,
        )
        .await?;
    inspector
        .click(".presc-item[data-item=\"2\"] .accept-btn")
        .await?;
    inspector
        .wait_true(
            "item 2 closed",
            "const i = document.querySelector('.presc-item[data-item=\"2\"]'); return !!i && i.dataset.status === 'closed'",
            T,
        )
        .await?;

    // The business sees why, and sends a new proof.
    reload(
        &phone,
        "const i = document.querySelector('.presc-item[data-item=\"1\"]'); return !!i && i.dataset.status === 'returned'",
    )
    .await?;
    let comment = phone
        .js("return document.querySelector('.presc-item[data-item=\"1\"] .returned-comment').textContent")
        .await?;
    ensure!(
        comment
            .as_str()
            .unwrap_or_default()
            .contains("бирки поверки"),
        "the return's comment on the phone: {comment}"
    );
    prove(&phone, "1").await?;

    // Accepted: fulfilled, no repeat visit, on both sides.
    reload(
        &inspector,
        "return document.querySelectorAll('#presc-view-items .accept-btn').length === 1",
    )
    .await?;
    inspector
        .click(".presc-item[data-item=\"1\"] .accept-btn")
        .await?;
    inspector
        .wait_true(
            "fulfilled at the inspector",
            "const b = document.getElementById('presc-view-outcome'); return !b.hidden && b.classList.contains('banner-ok')",
            T,
        )
        .await?;
    inspector.screenshot("prescription-fulfilled.ru").await?;
    reload(
        &phone,
        "const b = document.getElementById('detail-outcome'); return !b.hidden && b.classList.contains('banner-ok')",
    )
    .await?;
    let banner = phone
        .js("return document.getElementById('detail-outcome').textContent")
        .await?;
    ensure!(
        banner
            .as_str()
            .unwrap_or_default()
            .contains("повторная проверка не требуется"),
        "{banner}"
    );
    phone.screenshot("my-prescriptions-fulfilled.ru").await?;

    // The list filters agree, and the log verifies with every proof re-hashed.
    let filtered = inspector
        .js_async(
            "const done = arguments[arguments.length - 1]; \
             fetch('/api/prescriptions?filter=fulfilled').then(r => r.json()).then(j => done(j.prescriptions.length))",
        )
        .await?;
    ensure!(filtered == 1, "fulfilled filter: {filtered}");
    let audit = signaling::prescriptions::log::verify(&app.db, &app.blobs, pid.parse()?).await?;
    ensure!(audit.is_clean(), "audit: {audit:?}");
    ensure!(
        audit.proofs_checked == 3 && audit.chain.events == 7,
        "{audit:?}"
    );
    phone.close().await?;
    inspector.close().await?;
    app.stop().await;
    Ok(())
}

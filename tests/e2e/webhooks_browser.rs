//! The administrator's webhooks page (issue 22 item 3) in Chromium on a phone-sized screen:
//! the console links an admin to it, a bad URL is refused at its field in Russian, an endpoint
//! is added and its secret shown once, an event's delivery appears with its state and is
//! replayed from the page with the same event id (a real receiver in the test), and the page
//! reads in English.

use std::time::Duration;

use anyhow::{ensure, Result};
use inspector_tests::browser::{Browser, Device};
use inspector_tests::webhooks::{signature_valid, Receiver};
use inspector_tests::{spawn_app_with, Role};

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_adds_an_endpoint_and_replays_a_delivery_on_its_page() -> Result<()> {
    let rx = Receiver::start().await;
    let app = spawn_app_with(|c| {
        c.webhooks.tick_millis = 100;
        c.webhooks.allow_http_loopback = true;
    })
    .await;
    let _admin = app.staff("admin", Role::Admin).await;
    let b = Browser::launch("webhooks", Device::Phone).await?;
    b.goto(&format!("{}/", app.address)).await?;
    b.wait_true(
        "the login form",
        "return !document.getElementById('view-login').hidden",
        T,
    )
    .await?;
    b.fill("#login-username", "admin").await?;
    b.fill("#login-password", "a long test password").await?;
    b.click("#login-submit").await?;
    b.wait_true(
        "the admin's link",
        "return !document.getElementById('nav-webhooks').hidden",
        T,
    )
    .await?;
    b.js("location.href = document.getElementById('nav-webhooks').href; return true")
        .await?;
    b.wait_true(
        "five event boxes",
        "return document.querySelectorAll('#webhook-events input[type=checkbox]').length === 5",
        T,
    )
    .await?;
    // http to a host that is not loopback: refused at the URL field, in Russian.
    b.fill("#webhook-url", "http://hooks.example.org/in")
        .await?;
    b.click("#new-inspection-scheduled").await?;
    b.click("#webhook-new button[type=submit]").await?;
    b.wait_true(
        "the field error",
        "const e = document.getElementById('webhook-url-error'); \
         return !!e && e.dataset.code === 'https_required' && e.textContent.includes('https')",
        T,
    )
    .await?;
    b.js("document.getElementById('webhook-url').value = ''; return true")
        .await?;
    b.fill("#webhook-url", &rx.url).await?;
    b.click("#webhook-new button[type=submit]").await?;
    b.wait_true(
        "the secret, once",
        "const s = document.getElementById('webhook-secret-value'); \
         return !!s && s.textContent.startsWith('whsec_') && document.querySelectorAll('section.webhook').length === 1",
        T,
    )
    .await?;
    let secret = b
        .js("return document.getElementById('webhook-secret-value').textContent")
        .await?
        .as_str()
        .unwrap_or_default()
        .to_string();
    let inspector = app.staff("inspector1", Role::Inspector).await;
    inspector.create_inspection().await;
    let got = rx.wait_until(T, |g| g.len() == 1).await;
    ensure!(
        signature_valid(&got[0], &secret),
        "signed with the secret the page showed"
    );
    // The delivery in the table, after a refresh.
    b.wait_true(
        "a delivered row",
        "for (const b of document.querySelectorAll('section.webhook button')) \
           if (b.textContent === 'Обновить') b.click(); \
         const r = document.querySelector('tr[data-state=delivered]'); \
         return !!r && r.textContent.includes('Проверка назначена') && r.textContent.includes('HTTP 200');",
        T,
    )
    .await?;
    b.screenshot("webhooks-admin.ru").await?;
    b.js("document.querySelector('tr[data-state=delivered] button').click(); return true")
        .await?;
    let got = rx.wait_until(T, |g| g.len() == 2).await;
    ensure!(
        got[1].json()["id"] == got[0].json()["id"],
        "the replay keeps the event id"
    );
    // English.
    b.click("#lang").await?;
    b.wait_true(
        "the page in English",
        "return document.querySelector('h1').textContent === 'Webhooks'",
        T,
    )
    .await?;
    b.close().await?;
    app.stop().await;
    Ok(())
}

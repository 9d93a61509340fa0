//! The business page's push button in headless Chromium (issue 15, item 2): notification
//! permission is granted and the service worker registers and activates; subscribing needs
//! Chromium's push service (Google's FCM), which headless Chromium here cannot reach:
//! `pushManager.subscribe()` neither resolves nor rejects (measured: still pending after 20 s),
//! so no real subscription can be posted. What is tested is what can be: the worker, and that
//! the page stops waiting, says why in words and stores nothing. The server side of push (VAPID, RFC 8291 encryption, an expired
//! subscription removed) is proven against a local push endpoint in `notices_push.rs`.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use inspector_tests::browser::{Browser, Device};
use inspector_tests::{inspection_body, spawn_app, Role};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn push_button_registers_the_worker_and_reports_a_subscription_it_cannot_make() -> Result<()>
{
    let app = spawn_app().await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp
        .post_json("/api/inspections", &inspection_body(None))
        .await
        .body["id"]
        .as_str()
        .context("id")?
        .to_string();
    let url = insp.invite_url(&id, "push").await;
    let b = Browser::launch("push", Device::Phone).await?;
    b.cdp(
        "Browser.grantPermissions",
        json!({"origin": app.address, "permissions": ["notifications"]}),
    )
    .await?;
    b.goto(&url).await?;
    b.wait_true(
        "the push button",
        "return !document.getElementById('biz-push').hidden",
        Duration::from_secs(20),
    )
    .await?;
    b.click("#biz-push").await?;
    b.wait_true(
        "an answer to the push button",
        "return document.getElementById('biz-push-state').textContent.length > 0",
        Duration::from_secs(30),
    )
    .await?;
    let said = b
        .js("return document.getElementById('biz-push-state').textContent")
        .await?;
    let worker = b
        .js_async(
            "const done = arguments[arguments.length - 1]; \
             navigator.serviceWorker.getRegistration('/assets/').then(r => \
             done(r ? [r.scope, !!r.active, r.active && r.active.scriptURL] : null))",
        )
        .await?;
    ensure!(
        worker[1] == true
            && worker[2]
                .as_str()
                .is_some_and(|u| u.ends_with("/assets/sw.js")),
        "the worker is registered and active: {worker}"
    );
    // Here Chromium's pushManager.subscribe() never settles (it waits for FCM): the page gives
    // up after 15 s and says so in words, and no contact is stored.
    ensure!(
        said.as_str()
            .is_some_and(|t| t.contains("не смог подключиться к своей службе уведомлений")),
        "the page explains the missing push service: {said}"
    );
    let contacts = insp.get(&format!("/api/inspections/{id}/contacts")).await;
    ensure!(
        contacts.body["contacts"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "no contact stored: {}",
        contacts.text
    );
    b.close().await?;
    app.stop().await;
    Ok(())
}

//! The administrator's page for the message texts (issue 15, item 5) in Chromium: the six
//! templates are shown, a change is saved as a new version that the API then serves, and an
//! empty subject is refused at its field in Russian with nothing stored.

use std::time::Duration;

use anyhow::{ensure, Result};
use inspector_tests::browser::{Browser, Device};
use inspector_tests::{spawn_app, Role};

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_changes_a_message_text_on_its_page() -> Result<()> {
    let app = spawn_app().await;
    let admin = app.staff("admin", Role::Admin).await;
    let b = Browser::launch("messages", Device::Desktop).await?;
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
        "signed in",
        "return !document.getElementById('logout').hidden",
        T,
    )
    .await?;
    // The console links an admin to the page.
    b.wait_true(
        "the admin's link",
        "return !document.getElementById('nav-messages').hidden",
        T,
    )
    .await?;
    b.click("#nav-messages").await?;
    b.wait_true(
        "six templates",
        "return document.querySelectorAll('form.message-template').length === 6",
        T,
    )
    .await?;
    b.js("document.getElementById('msg-subject-reminder-ru').value = 'Скоро проверка: {title} — {lead}'; return true")
        .await?;
    b.click("form[data-purpose=reminder][data-language=ru] button[type=submit]")
        .await?;
    b.wait_true(
        "saved as version 1",
        "return document.getElementById('msg-state-reminder-ru').textContent === 'Сохранено: версия 1'",
        T,
    )
    .await?;
    let list = admin.get("/api/message-templates").await;
    let reminder = list.body["templates"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["purpose"] == "reminder" && t["language"] == "ru")
        .cloned()
        .unwrap_or_default();
    ensure!(
        reminder["version"] == 1 && reminder["subject"] == "Скоро проверка: {title} — {lead}",
        "the API serves the new version: {reminder}"
    );
    // An empty subject: refused at its field, in Russian; nothing stored.
    b.js("document.getElementById('msg-subject-reminder-ru').value = '  '; return true")
        .await?;
    b.click("form[data-purpose=reminder][data-language=ru] button[type=submit]")
        .await?;
    b.wait_true(
        "the field error",
        "const e = document.getElementById('msg-subject-reminder-ru-error'); \
         return !!e && e.dataset.code === 'invalid_length' && e.textContent.includes('Пустой')",
        T,
    )
    .await?;
    let again = admin.get("/api/message-templates").await;
    ensure!(
        again.body == list.body,
        "nothing stored by the refusal: {}",
        again.text
    );
    b.screenshot("messages-admin.ru").await?;
    b.close().await?;
    app.stop().await;
    Ok(())
}

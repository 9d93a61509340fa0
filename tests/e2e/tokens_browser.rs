//! The administrator's API-token page and the console's external ids in Chromium (issue 22):
//! a token is made on the page, its secret shown once (not after a reload), it works as a
//! bearer token, the page revokes it and the next call is refused; the inspection list and the
//! room show an inspection's ЕРКНМ number, and the room sets both ids, a bad one refused.

use std::time::Duration;

use anyhow::{ensure, Result};
use inspector_tests::browser::{Browser, Device};
use inspector_tests::{inspection_body, spawn_app, Role};
use serde_json::json;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_makes_and_revokes_a_token_and_the_console_shows_external_ids() -> Result<()> {
    let app = spawn_app().await;
    let admin = app.staff("admin", Role::Admin).await;
    let mut body = inspection_body(None);
    body["erknm_number"] = json!("77230661000100012345");
    let r = admin.post_json("/api/inspections", &body).await;
    ensure!(r.status == 201, "{}", r.text);
    let insp = r.body["id"].as_str().unwrap_or_default().to_string();
    let b = Browser::launch("tokens", Device::Desktop).await?;
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
        "the list with the ЕРКНМ number",
        "const e = document.querySelector('[data-erknm]'); \
         return !!e && e.textContent === 'ЕРКНМ 77230661000100012345'",
        T,
    )
    .await?;
    // The room shows both ids and sets them later: a bad number is refused at its field.
    b.goto(&format!("{}/#/room/{insp}", app.address)).await?;
    b.wait_true(
        "the room's meta line",
        "return document.getElementById('room-meta').textContent.includes('ЕРКНМ 77230661000100012345')",
        T,
    )
    .await?;
    b.click("#room-invite").await?;
    b.wait_true(
        "the ids form, filled",
        "return document.getElementById('ids-erknm').value === '77230661000100012345'",
        T,
    )
    .await?;
    b.js("document.getElementById('ids-erknm').value = '12'; \
          document.getElementById('ids-external').value = 'СЭД-7'; return true")
        .await?;
    b.click("#ids-save").await?;
    b.wait_true(
        "the field error",
        "const e = document.getElementById('ids-erknm-error'); \
         return !!e && e.dataset.code === 'erknm_invalid' && e.textContent.includes('цифр')",
        T,
    )
    .await?;
    b.js("document.getElementById('ids-erknm').value = '50230661000100000001'; return true")
        .await?;
    b.click("#ids-save").await?;
    b.wait_true(
        "saved into the meta line",
        "return document.getElementById('room-meta').textContent.includes('Внешний ид. СЭД-7')",
        T,
    )
    .await?;
    let shown = admin.get(&format!("/api/inspections/{insp}")).await;
    ensure!(
        shown.body["erknm_number"] == "50230661000100000001"
            && shown.body["external_id"] == "СЭД-7",
        "{}",
        shown.text
    );
    b.goto(&format!("{}/#/list", app.address)).await?;
    b.wait_true(
        "the admin's link",
        "return !document.getElementById('nav-tokens').hidden",
        T,
    )
    .await?;
    b.click("#nav-tokens").await?;
    b.wait_true(
        "the form",
        "return !document.getElementById('token-form').hidden",
        T,
    )
    .await?;
    // An empty name: refused at its field, in Russian.
    b.click("#token-create").await?;
    b.wait_true(
        "the field error",
        "const e = document.getElementById('token-name-error'); \
         return !!e && e.dataset.code === 'token_name_required' && e.textContent.includes('Укажите')",
        T,
    )
    .await?;
    b.fill("#token-name", "СЭД органа").await?;
    b.js(
        "document.querySelector('input[value=\"inspections:write\"]').checked = true; return true",
    )
    .await?;
    b.click("#token-create").await?;
    b.wait_true(
        "the secret",
        "return !document.getElementById('token-secret-box').hidden \
         && document.getElementById('token-secret').value.startsWith('insp_')",
        T,
    )
    .await?;
    let secret = b
        .js("return document.getElementById('token-secret').value")
        .await?;
    let secret = secret.as_str().unwrap_or_default().to_string();
    let sys = app.bearer(&secret);
    let ok = sys.get("/api/inspections").await;
    ensure!(ok.status == 200, "the token works: {}", ok.text);
    b.screenshot("tokens-admin.ru").await?;
    // Shown once: after a reload the page has the token's row but not its secret.
    b.goto(&format!("{}/tokens/", app.address)).await?;
    b.wait_true(
        "the row",
        "return document.querySelectorAll('#tokens-body tr[data-state=active]').length === 1",
        T,
    )
    .await?;
    let html = b.js("return document.documentElement.outerHTML").await?;
    ensure!(
        !html.as_str().unwrap_or_default().contains(&secret[5..]),
        "the secret is shown again"
    );
    b.js("window.confirm = () => true; return true").await?;
    b.click("#tokens-body tr[data-state=active] button:last-child")
        .await?;
    b.wait_true(
        "revoked",
        "return document.querySelectorAll('#tokens-body tr[data-state=revoked]').length === 1",
        T,
    )
    .await?;
    let refused = sys.get("/api/inspections").await;
    ensure!(
        refused.status == 401 && refused.code() == "token_revoked",
        "{}",
        refused.text
    );
    // Its calls, the refused one first.
    b.click("#tokens-body tr button:first-child").await?;
    b.wait_true(
        "the calls",
        "const rows = document.querySelectorAll('#calls-body tr'); \
         return rows.length === 2 && rows[0].dataset.status === '401'",
        T,
    )
    .await?;
    b.close().await?;
    app.stop().await;
    Ok(())
}

//! A live room for photo tests and the photo benchmark: a signed-in inspector console and a
//! phone-sized Chromium publishing its fake camera, on one live inspection.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::json;

use crate::browser::{Browser, Device};
use crate::{Role, TestApp};

const PASSWORD: &str = "a long test password";
const PHONE: (f64, f64) = (55.757_050, 37.615_080);

/// A signed-in inspector console and a connected phone on one live inspection.
pub struct Pair {
    /// The inspector's browser, in the live room.
    pub inspector: Browser,
    /// The phone, publishing its camera.
    pub phone: Browser,
    /// The inspection.
    pub id: String,
    /// Its checklist item ids.
    pub items: Vec<String>,
    /// The business's invitation link the phone joined by.
    pub invite_url: String,
}

/// Creates an inspection through the API, opens the inspector's room and connects the phone.
pub async fn pair(app: &TestApp, phone_flags: &[&str]) -> Result<Pair> {
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
    let id = api.create_inspection().await;
    let inv = api
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    let invite_url = inv.body["url"].as_str().context("invite url")?.to_string();
    let r = api
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "live"}),
        )
        .await;
    ensure!(r.status == 200, "start: {}", r.text);
    let items: Vec<String> = api.get(&format!("/api/inspections/{id}")).await.body["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|i| i["id"].as_str().map(String::from))
        .collect();

    let inspector = Browser::launch("inspector", Device::Desktop).await?;
    inspector.goto(&format!("{}/", app.address)).await?;
    inspector
        .wait_true(
            "the login form",
            "return !document.getElementById('view-login').hidden",
            Duration::from_secs(20),
        )
        .await?;
    inspector.fill("#login-username", "inspector1").await?;
    inspector.fill("#login-password", PASSWORD).await?;
    inspector.click("#login-submit").await?;
    inspector
        .wait_true(
            "signed in",
            "return !document.getElementById('logout').hidden",
            Duration::from_secs(20),
        )
        .await?;
    inspector
        .goto(&format!("{}/#/room/{id}", app.address))
        .await?;
    inspector
        .wait_true(
            "the room live",
            "return document.getElementById('room-conn').dataset.state === 'open' && \
             !document.getElementById('room-finish').hidden",
            Duration::from_secs(30),
        )
        .await?;

    let phone = Browser::launch_with("phone", Device::Phone, phone_flags).await?;
    phone
        .set_geolocation(&app.address, PHONE.0, PHONE.1, 10.0)
        .await?;
    phone.goto(&invite_url).await?;
    phone
        .wait_true(
            "the intro",
            "return !document.getElementById('view-intro').hidden",
            Duration::from_secs(20),
        )
        .await?;
    phone.click("#biz-start").await?;
    phone
        .wait_true(
            "the phone connected with a camera and a position",
            "const v = document.getElementById('local-video'); \
             return document.getElementById('conn').dataset.state === 'open' && v.videoWidth > 0 && \
             document.getElementById('geo-line').textContent.includes('55.75')",
            Duration::from_secs(60),
        )
        .await?;
    Ok(Pair {
        inspector,
        phone,
        id,
        items,
        invite_url,
    })
}

/// JS: true once item `item`'s thumbnail (evidence `eid`, or any) has decoded.
pub fn thumb_loaded(item: &str) -> String {
    format!(
        "const img = document.querySelector('#checklist .item[data-item-id=\"{item}\"] .item-evidence .thumb-photo img'); \
         return !!img && img.complete && img.naturalWidth > 0"
    )
}

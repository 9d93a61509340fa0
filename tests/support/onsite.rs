//! An on-site inspection and the inspector's phone for the on-site tests: the inspection made
//! through the API (mode `on_site`, the bundled checklist), the inspector signed in on a
//! phone-sized Chromium, and helpers to read the log the way a reviewer would.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

use crate::browser::{Browser, Device};
use crate::{Client, Role, TestApp};

/// The inspector's password in these tests.
pub const PASSWORD: &str = "a long test password";
/// The registered site (the bundled test business's coordinates).
pub const SITE: (f64, f64) = (55.7577, 37.6130);

/// The inspector's API client and an on-site inspection.
pub struct OnSite {
    /// Signed in as `inspector1`.
    pub api: Client,
    /// The inspection.
    pub id: String,
    /// Its checklist item ids.
    pub items: Vec<String>,
}

/// Creates `inspector1` and an on-site inspection with the first bundled checklist.
pub async fn on_site_inspection(app: &TestApp) -> Result<OnSite> {
    app.create_user("inspector1", PASSWORD, Role::Inspector)
        .await;
    let mut api = app.anonymous();
    let r = api
        .post_json(
            "/api/auth/login",
            &json!({"username": "inspector1", "password": PASSWORD}),
        )
        .await;
    ensure!(r.status == 200, "login: {}", r.text);
    api.csrf = r.body["csrf_token"].as_str().map(String::from);
    let id = create(&api, "on_site").await?;
    let items: Vec<String> = api.get(&format!("/api/inspections/{id}")).await.body["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|i| i["id"].as_str().map(String::from))
        .collect();
    ensure!(
        items.len() >= 3,
        "the bundled checklist has items: {items:?}"
    );
    Ok(OnSite { api, id, items })
}

/// Another inspection of this inspector, in the given mode.
pub async fn create(api: &Client, mode: &str) -> Result<String> {
    let t = api.get("/api/templates").await.body["templates"][0]["id"]
        .as_str()
        .context("a bundled template")?
        .to_string();
    let mut body = crate::inspection_body(Some(&t));
    body["mode"] = json!(mode);
    let r = api.post_json("/api/inspections", &body).await;
    ensure!(r.status == 201, "create: {}", r.text);
    Ok(r.body["id"].as_str().context("id")?.to_string())
}

/// A phone-sized Chromium with the inspector signed in, at the site.
pub async fn phone(app: &TestApp) -> Result<Browser> {
    let phone = Browser::launch("onsite-phone", Device::Phone).await?;
    phone
        .set_geolocation(&app.address, SITE.0, SITE.1, 8.0)
        .await?;
    phone.goto(&format!("{}/", app.address)).await?;
    phone
        .wait_true(
            "the login form",
            "return !document.getElementById('view-login').hidden",
            Duration::from_secs(20),
        )
        .await?;
    phone.fill("#login-username", "inspector1").await?;
    phone.fill("#login-password", PASSWORD).await?;
    phone.click("#login-submit").await?;
    phone
        .wait_true(
            "signed in",
            "return !document.getElementById('logout').hidden",
            Duration::from_secs(20),
        )
        .await?;
    Ok(phone)
}

/// The network of the page's target on or off (DevTools network emulation).
pub async fn set_offline(b: &Browser, offline: bool) -> Result<()> {
    b.cdp("Network.enable", json!({})).await?;
    b.cdp(
        "Network.emulateNetworkConditions",
        json!({"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}),
    )
    .await?;
    Ok(())
}

/// The inspection's log as the export gives it, one JSON value per event.
pub async fn log(api: &Client, id: &str) -> Result<Vec<Value>> {
    let (status, _, body) = api
        .get_bytes(&format!("/api/inspections/{id}/events.jsonl"))
        .await;
    ensure!(status == 200, "events.jsonl: {status}");
    String::from_utf8(body)?
        .lines()
        .map(|l| serde_json::from_str(l).context("a JSON line"))
        .collect()
}

//! Photo on request in real headless Chromium (fake camera): the inspector presses "Photo"
//! on an item, the phone takes a full-resolution still without leaving the call and uploads
//! it, both pages show the thumbnail, the event log carries the server's hash, the blob store
//! holds exactly those bytes, and the audit is clean — on local disk and on SeaweedFS.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use inspector_tests::photo::{pair, thumb_loaded};
use inspector_tests::seaweed::SeaweedFs;
use inspector_tests::{spawn_app, spawn_app_with, TestApp};
use serde_json::Value;

async fn photo_on_request(app: TestApp) -> Result<()> {
    let p = pair(&app, &[]).await?;
    let item = p.items[1].clone();
    let btn = format!("#checklist .item[data-item-id=\"{item}\"] .photo-btn");
    p.inspector.click(&btn).await?;
    // The request is folded state: both pages show it until a photo answers it.
    p.inspector
        .wait_true(
            "the thumbnail at the inspector",
            &thumb_loaded(&item),
            Duration::from_secs(30),
        )
        .await?;
    p.phone
        .wait_true(
            "the thumbnail on the phone",
            &thumb_loaded(&item),
            Duration::from_secs(30),
        )
        .await?;
    let shown: Value = p
        .inspector
        .js(&format!(
            "const b = document.querySelector('#checklist .item[data-item-id=\"{item}\"] .thumb-photo'); \
             return {{id: b.dataset.evidenceId, src: b.querySelector('img').getAttribute('src'), \
                     requested: document.querySelector('#checklist .item[data-item-id=\"{item}\"]').classList.contains('photo-requested')}}"
        ))
        .await?;
    ensure!(
        shown["requested"] == false,
        "the request is answered: {shown}"
    );
    let evidence_id = shown["id"].as_str().context("evidence id")?.to_string();
    ensure!(
        shown["src"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&evidence_id),
        "the inspector loads it from the server: {shown}"
    );
    let phone_src = p
        .phone
        .js(&format!(
            "return document.querySelector('#checklist .item[data-item-id=\"{item}\"] .thumb-photo img').getAttribute('src')"
        ))
        .await?;
    ensure!(
        phone_src.as_str().unwrap_or_default().starts_with("blob:"),
        "the phone shows its own copy: {phone_src}"
    );

    // The log carries the hash, the blob store has those bytes, the audit is clean.
    let state: Value = p
        .inspector
        .js_async(&format!(
            "const done = arguments[arguments.length - 1]; \
             fetch('/api/inspections/{}/state').then(r => r.json()).then(done)",
            p.id
        ))
        .await?;
    let ev = state["state"]["items"][&item]["evidence"][0].clone();
    ensure!(
        ev["kind"] == "photo" && ev["id"] == evidence_id.as_str(),
        "{ev}"
    );
    let sha = ev["sha256"].as_str().context("sha256")?.to_string();
    let stored = app.blobs.rehash(&sha).await?;
    ensure!(
        stored == Some((sha.clone(), ev["size"].as_u64().unwrap_or(0))),
        "blob store has {stored:?} for {ev}"
    );
    ensure!(
        ev["width"].as_u64().unwrap_or(0) >= 320 && ev["location"]["lat"].as_f64().is_some(),
        "server findings and the phone's location: {ev}"
    );
    let report = signaling::audit::verify(&app.db, &app.blobs, p.id.parse()?).await?;
    ensure!(report.is_clean(), "audit: {report:?}");
    ensure!(report.evidence_checked == 1, "audit: {report:?}");

    // The inspector opens it full size.
    p.inspector
        .click(&format!(
            "#checklist .item[data-item-id=\"{item}\"] .thumb-photo"
        ))
        .await?;
    p.inspector
        .wait_true(
            "the full-size photo",
            &format!(
                "const img = document.querySelector('#lightbox[open] img.lightbox-media'); \
                 return !!img && img.complete && img.naturalWidth === {}",
                ev["width"]
            ),
            Duration::from_secs(20),
        )
        .await?;
    p.inspector.screenshot("evidence-lightbox.ru").await?;
    p.inspector
        .js("document.getElementById('lightbox').close(); return true")
        .await?;

    // The business takes one on its own initiative.
    let own = p.items[3].clone();
    p.phone
        .click(&format!(
            "#checklist .item[data-item-id=\"{own}\"] .photo-btn"
        ))
        .await?;
    p.inspector
        .wait_true(
            "the business's own photo at the inspector",
            &thumb_loaded(&own),
            Duration::from_secs(30),
        )
        .await?;
    p.inspector.screenshot("evidence-room.ru").await?;
    p.phone.screenshot("evidence-business.ru").await?;
    p.phone.close().await?;
    p.inspector.close().await?;
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn photo_on_request_in_chromium_on_local_disk() -> Result<()> {
    photo_on_request(spawn_app().await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn photo_on_request_in_chromium_on_seaweedfs() -> Result<()> {
    let s3 = SeaweedFs::start().await?;
    s3.create_bucket("inspector").await?;
    let cfg = s3.blob_config("inspector", "browser");
    let app = spawn_app_with(|c| c.blob = cfg).await;
    photo_on_request(app).await
}

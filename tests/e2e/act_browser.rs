//! The act in real Chromium: an inspection with a phone publishing its camera, results with a
//! violation and a photo of it, finished (the server cuts a clip and a still); the inspector forms the act, signs it with a
//! WebCrypto key created in the browser; the business signs on the phone page; the bundle is
//! downloaded through the browser and every VERIFY.md command passes with the real openssl
//! and sha256sum; `bundle verify` accepts it; pdftotext shows the act.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use base64::Engine;
use inspector_tests::browser::{Browser, Device};
use inspector_tests::{spawn_app, Role};
use serde_json::json;

const PASSWORD: &str = "a long test password";
const SITE: (f64, f64) = (55.757_000, 37.615_000);
const PHONE: (f64, f64) = (55.757_050, 37.615_080);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn act_is_formed_signed_twice_and_bundled_in_chromium() -> Result<()> {
    let app = spawn_app().await;
    app.create_user("inspector1", PASSWORD, Role::Inspector)
        .await;
    let base = app.address.clone();

    let inspector = Browser::launch("act-inspector", Device::Desktop).await?;
    inspector.goto(&format!("{base}/")).await?;
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
    inspector.goto(&format!("{base}/#/new")).await?;
    inspector
        .wait_true(
            "templates",
            "return document.querySelectorAll('#c-template option').length > 1",
            Duration::from_secs(20),
        )
        .await?;
    inspector
        .fill("#c-title", "Проверка пожарной безопасности")
        .await?;
    inspector.fill("#c-bname", "ООО «Ромашка»").await?;
    inspector.fill("#c-inn", "7707083893").await?;
    inspector
        .fill("#c-address", "Москва, ул. Тверская, 1")
        .await?;
    inspector.fill("#c-lat", &SITE.0.to_string()).await?;
    inspector.fill("#c-lon", &SITE.1.to_string()).await?;
    inspector.click("#create-submit").await?;
    inspector
        .wait_true(
            "the invitation",
            "return document.getElementById('invite-url').value.includes('/b/#t=')",
            Duration::from_secs(20),
        )
        .await?;
    let invite_url = inspector
        .js("return document.getElementById('invite-url').value")
        .await?;
    let invite_url = invite_url.as_str().context("invite url")?.to_owned();
    let id = inspector
        .js("return document.getElementById('invite-room').getAttribute('href')")
        .await?
        .as_str()
        .and_then(|h| h.strip_prefix("#/room/"))
        .context("room link")?
        .to_owned();
    inspector.start_inspection(&base, &id).await?;

    let business = Browser::launch("act-business", Device::Phone).await?;
    business
        .set_geolocation(&base, PHONE.0, PHONE.1, 12.0)
        .await?;
    business.goto(&invite_url).await?;
    business
        .wait_true(
            "the intro",
            "return !document.getElementById('view-intro').hidden",
            Duration::from_secs(20),
        )
        .await?;
    business.click("#biz-start").await?;
    business
        .wait_true(
            "the camera published",
            "const v = document.getElementById('local-video'); return document.getElementById('conn').dataset.state === 'open' && v.videoWidth > 0",
            Duration::from_secs(30),
        )
        .await?;
    inspector
        .wait_true(
            "video from the phone",
            "const v = document.getElementById('remote-video'); return v.readyState >= 2 && v.videoWidth > 0",
            Duration::from_secs(60),
        )
        .await?;

    // Results: one compliant, one violation with its description.
    for (n, result) in [(1usize, "compliant"), (2, "violation")] {
        let item = format!("#checklist .item:nth-child({n})");
        inspector
            .click(&format!("{item} .result-btn[data-result=\"{result}\"]"))
            .await?;
        let marked = format!(
            "const li = document.querySelector('{item}'); return li.dataset.result === '{result}' && !li.classList.contains('pending')"
        );
        inspector
            .wait_true(&format!("item {n}"), &marked, Duration::from_secs(20))
            .await?;
        if result == "violation" {
            inspector
                .fill(
                    &format!("{item} .item-violation"),
                    "Огнетушитель с истёкшим сроком поверки",
                )
                .await?;
            // The description is saved as it is typed (no button since issue 13).
            inspector
                .wait_true(
                    "violation saved",
                    &format!("return document.querySelector('{item}').dataset.save === 'saved'"),
                    Duration::from_secs(20),
                )
                .await?;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    // A photo of the violation, uploaded like the phone's camera button does (the still and
    // the clip are cut from the recording by the server after the finish).
    let staff = {
        let mut c = app.anonymous();
        let r = c
            .post_json(
                "/api/auth/login",
                &json!({"username": "inspector1", "password": PASSWORD}),
            )
            .await;
        c.csrf = r.body["csrf_token"].as_str().map(String::from);
        c
    };
    let insp = staff.get(&format!("/api/inspections/{id}")).await;
    let item2 = insp.body["items"][1]["id"]
        .as_str()
        .context("item 2")?
        .to_owned();
    let photo = inspector_tests::images::picture("jpg", 640, 480, 0);
    let photo_sha = inspector_tests::images::sha256_hex(&photo);
    let r = staff
        .post_raw(
            &format!("/api/inspections/{id}/evidence?item_id={item2}"),
            "image/jpeg",
            photo,
        )
        .await;
    ensure!(r.status == 201, "photo upload: {}", r.text);

    inspector.click("#room-finish").await?;
    inspector.click("#finish-confirm").await?;
    inspector
        .wait_true(
            "the act panel",
            "return !!document.getElementById('act-form')",
            Duration::from_secs(20),
        )
        .await?;
    business
        .wait_true(
            "the phone's act panel",
            "return !document.getElementById('act-panel').hidden",
            Duration::from_secs(20),
        )
        .await?;

    // Form the act (the recording may still be finalizing: the panel says so; try again).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Err(e) = inspector.click("#act-form").await {
            let panel = inspector
                .js("return document.getElementById('act-panel').outerHTML")
                .await?;
            return Err(e.context(format!("the act panel: {panel}")));
        }
        inspector
            .wait_true(
                "the act or an error",
                // The panel hides an earlier error when a new attempt starts; the button is busy
            // until this attempt's answer.
            "return !!document.getElementById('act-pdf') || (!document.getElementById('act-error').hidden && !document.getElementById('act-form').disabled)",
                Duration::from_secs(60),
            )
            .await?;
        if inspector
            .js("return !!document.getElementById('act-pdf')")
            .await?
            == json!(true)
        {
            break;
        }
        let msg = inspector
            .js("return document.getElementById('act-error').textContent")
            .await?;
        ensure!(
            std::time::Instant::now() < deadline,
            "the act was not formed: {msg}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    inspector.screenshot("act-formed.ru").await?;

    // The official signs: the key is created in the browser, non-extractable.
    inspector.click("#act-sign").await?;
    inspector
        .wait_true(
            "the official's signature",
            "return !!document.querySelector('#act-signatures li[data-role=\"official\"]') || !document.getElementById('act-error').hidden",
            Duration::from_secs(30),
        )
        .await?;
    let err = inspector
        .js("const e = document.getElementById('act-error'); return e.hidden ? '' : e.textContent")
        .await?;
    ensure!(err == json!(""), "official signing failed: {err}");
    let extractable = inspector
        .js_async(
            "const done = arguments[arguments.length - 1]; \
             const r = indexedDB.open('inspector-signing', 1); \
             r.onsuccess = () => { const q = r.result.transaction('keys').objectStore('keys').get('staff'); \
               q.onsuccess = () => done([q.result.privateKey.extractable, q.result.privateKey.algorithm.namedCurve]); };",
        )
        .await?;
    ensure!(
        extractable == json!([false, "P-256"]),
        "the browser key: {extractable}"
    );

    // The business signs on the phone page.
    business
        .wait_true(
            "the phone's sign button",
            "return !!document.getElementById('act-sign')",
            Duration::from_secs(30),
        )
        .await?;
    business.screenshot("act-business.ru").await?;
    business.click("#act-sign").await?;
    business
        .wait_true(
            "the business's signature",
            "return !!document.querySelector('#act-signatures li[data-role=\"business\"]') || !document.getElementById('act-error').hidden",
            Duration::from_secs(30),
        )
        .await?;
    let err = business
        .js("const e = document.getElementById('act-error'); return e.hidden ? '' : e.textContent")
        .await?;
    ensure!(err == json!(""), "business signing failed: {err}");
    business.screenshot("act-business-signed.ru").await?;
    let status = staff.get(&format!("/api/inspections/{id}")).await;
    ensure!(status.body["status"] == "signed", "status {}", status.text);

    // Download the bundle through the browser's session.
    inspector
        .wait_true(
            "the bundle link",
            "return !!document.getElementById('act-bundle')",
            Duration::from_secs(20),
        )
        .await?;
    let b64 = inspector
        .js_async(&format!(
            "const done = arguments[arguments.length - 1]; \
             fetch('/api/inspections/{id}/bundle.zip').then(r => r.arrayBuffer()).then(b => {{ \
               let s = ''; const u = new Uint8Array(b); for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode(...u.subarray(i, i + 0x8000)); \
               done(btoa(s)); }}).catch(e => done('error ' + e));"
        ))
        .await?;
    let zip = base64::engine::general_purpose::STANDARD
        .decode(b64.as_str().context("bundle")?)
        .context("bundle base64")?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bundle.zip");
    std::fs::write(&path, &zip)?;
    let v =
        signaling::act::bundle::verify(&path).map_err(|m| anyhow::anyhow!("bundle verify: {m}"))?;
    ensure!(
        v.signed_by == vec!["official".to_string(), "business".to_string()],
        "{v:?}"
    );
    let out = dir.path().join("out");
    crate::act::unzip(&zip, &out);
    ensure!(
        std::fs::read_dir(out.join("recording"))?.count() >= 2,
        "the recording is in the bundle"
    );
    crate::act::run_verify_md(&out);
    // The photo, and the clip and still cut from the recording at the violation, are in the
    // bundle; the photo and the still are pictures in the act.
    let bm: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json"))?)?;
    let kinds: Vec<&str> = bm["evidence"]
        .as_array()
        .context("evidence in the manifest")?
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for k in ["photo", "clip", "still"] {
        ensure!(kinds.contains(&k), "no {k} in the bundle: {kinds:?}");
    }
    ensure!(
        out.join(format!("evidence/{photo_sha}.jpg")).exists(),
        "the photo is in the bundle"
    );
    let images = std::process::Command::new("pdfimages")
        .args(["-list", out.join("act.pdf").to_str().context("path")?])
        .output()?;
    let images = String::from_utf8(images.stdout)?;
    let sizes: Vec<(String, String)> = images
        .lines()
        .skip(2)
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            Some((c.get(3)?.to_string(), c.get(4)?.to_string()))
        })
        .collect();
    ensure!(
        sizes.contains(&("640".into(), "480".into())),
        "the photo is a picture in the act: {images}"
    );
    ensure!(
        sizes.len() >= 2,
        "the still is a picture in the act too: {images}"
    );
    // The act itself, as text.
    let text = std::process::Command::new("pdftotext")
        .args([
            "-layout",
            out.join("act.pdf").to_str().context("path")?,
            "-",
        ])
        .output()?;
    let text = String::from_utf8(text.stdout)?;
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "АКТ",
        "ООО «Ромашка»",
        "Соответствует",
        "Нарушение",
        "Не заполнено",
        "Огнетушитель с истёкшим сроком поверки",
        "кадр видеозаписи",
        "фрагмент видеозаписи",
    ] {
        ensure!(flat.contains(needle), "{needle:?} not in the act:\n{text}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("recording/manifest.json"))?)?;
    let rec_sha = manifest["sha256"].as_str().context("recording sha")?;
    ensure!(text.contains(rec_sha), "the recording's SHA-256 is printed");

    inspector.close().await?;
    business.close().await?;
    app.stop().await;
    Ok(())
}

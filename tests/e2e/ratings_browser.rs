//! Mutual ratings in real headless Chromium (issue 16, "Done when"): the inspection is
//! finished → the business opens its link on a phone-sized browser, goes from the results to
//! the rating, puts one criterion at 3 → the follow-up questions appear and are required →
//! sent → the inspector rates the business → the statistics page shows both, with the
//! server's chart rendered (screenshots in docs/screenshots/).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use inspector_tests::browser::{Browser, Device};
use inspector_tests::{spawn_app, spawn_app_with, Role};
use serde_json::json;

const PASSWORD: &str = "a long test password";
const T: Duration = Duration::from_secs(30);

async fn login(b: &Browser, base: &str, user: &str) -> Result<()> {
    b.goto(&format!("{base}/")).await?;
    b.wait_true(
        "the login form",
        "return !document.getElementById('view-login').hidden",
        T,
    )
    .await?;
    b.fill("#login-username", user).await?;
    b.fill("#login-password", PASSWORD).await?;
    b.click("#login-submit").await?;
    b.wait_true(
        "signed in",
        "return !document.getElementById('logout').hidden",
        T,
    )
    .await
}

/// Picks `score` for every criterion on the rating page.
async fn score_all(b: &Browser, score: u8) -> Result<()> {
    b.js(&format!(
        "for (const f of document.querySelectorAll('fieldset.rate-criterion')) {{ \
           const i = f.querySelector('input[type=radio][value=\"{score}\"]'); i.click(); }} \
         return true"
    ))
    .await?;
    Ok(())
}

async fn sent(b: &Browser) -> Result<()> {
    let r = b
        .wait_true(
            "the rating sent",
            "return !document.getElementById('rate-done').hidden",
            T,
        )
        .await;
    if let Err(e) = r {
        let why = b
            .js("return document.getElementById('rate-error-text').textContent")
            .await?;
        anyhow::bail!("{e}: the page says {why}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rating_from_the_phone_to_the_statistics_in_chromium() -> Result<()> {
    let app = spawn_app().await;
    let admin = app.staff("admin", Role::Admin).await;
    app.create_user("inspector1", PASSWORD, Role::Inspector)
        .await;
    let mut inspector_api = app.anonymous();
    let r = inspector_api
        .post_json(
            "/api/auth/login",
            &json!({"username": "inspector1", "password": PASSWORD}),
        )
        .await;
    inspector_api.csrf = r.body["csrf_token"].as_str().map(String::from);
    let uid = r.body["user"]["id"]
        .as_str()
        .context("user id")?
        .to_string();
    let r = admin
        .post_json(
            "/api/control-bodies",
            &json!({"name": "ГУ МЧС России по г. Москве", "region": "Москва", "control_kind": "пожарный надзор"}),
        )
        .await;
    let body = r.body["id"].as_str().context("body id")?.to_string();
    let r = admin
        .post_json(
            &format!("/api/users/{uid}/control-body"),
            &json!({ "control_body_id": body }),
        )
        .await;
    ensure!(r.status < 300, "{}", r.text);

    // The inspection, its invitation, and its end.
    let id = inspector_api.create_inspection().await;
    let r = inspector_api
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    let invite = r.body["url"]
        .as_str()
        .context("invitation url")?
        .to_string();
    for to in ["live", "finished"] {
        let r = inspector_api
            .post_json(
                &format!("/api/inspections/{id}/transition"),
                &json!({ "to": to }),
            )
            .await;
        ensure!(r.status == 200, "{to}: {}", r.text);
    }

    // The business on its phone: the results after the end, then the rating.
    let phone = Browser::launch("business", Device::Phone).await?;
    phone.goto(&invite).await?;
    phone
        .wait_true(
            "the results with the rating link",
            "const a = document.getElementById('results-rate'); \
             return !document.getElementById('view-results').hidden && !!a && !a.hidden",
            T,
        )
        .await?;
    phone.click("#results-rate").await?;
    phone
        .wait_true(
            "the rating form",
            "return document.querySelectorAll('fieldset.rate-criterion').length >= 5",
            T,
        )
        .await?;
    score_all(&phone, 8).await?;
    let first = "fieldset.rate-criterion:first-of-type";
    let hidden = phone
        .js(&format!(
            "return document.querySelector('{first} .rate-follow-up').hidden"
        ))
        .await?;
    ensure!(hidden == json!(true), "follow-ups shown for a score of 8");
    phone
        .js(&format!(
            "document.querySelector('{first} input[type=radio][value=\"3\"]').click(); return true"
        ))
        .await?;
    phone
        .wait_true(
            "the follow-up questions for a 3",
            &format!("return !document.querySelector('{first} .rate-follow-up').hidden"),
            T,
        )
        .await?;
    // Sent without answering them: refused, said at the criterion, nothing stored.
    phone.click("#rate-submit").await?;
    phone
        .wait_true(
            "the follow-ups required",
            &format!(
                "const p = document.querySelector('{first} .rate-field-error'); \
                 return !!p && !p.hidden && p.textContent.includes('ниже 5')"
            ),
            T,
        )
        .await?;
    let none = inspector_api
        .get(&format!("/api/inspections/{id}/events.jsonl"))
        .await;
    ensure!(
        !none.text.contains("\"rating\""),
        "a refused rating reached the log"
    );
    phone
        .js(&format!(
            "document.querySelector('{first}').scrollIntoView({{block: 'center'}}); return true"
        ))
        .await?;
    phone.screenshot("rating-follow-up.ru").await?;
    phone
        .js(&format!(
            "document.querySelector('{first} .rate-choice input').click(); return true"
        ))
        .await?;
    phone
        .fill(
            &format!("{first} textarea"),
            "Повысили голос, когда мы попросили назвать норму",
        )
        .await?;
    phone.click("#rate-submit").await?;
    sent(&phone).await?;
    phone.screenshot("rating-sent.ru").await?;
    let v = inspector_api
        .get(&format!("/api/inspections/{id}/events.jsonl"))
        .await;
    ensure!(
        v.text.contains("\"kind\":\"rating\""),
        "no rating event: {}",
        v.text
    );

    // The inspector rates the business.
    let desk = Browser::launch("inspector", Device::Desktop).await?;
    login(&desk, &app.address, "inspector1").await?;
    desk.goto(&format!("{}/rate/#i={id}", app.address)).await?;
    desk.wait_true(
        "the inspector's criteria",
        "return document.querySelectorAll('fieldset.rate-criterion').length >= 3",
        T,
    )
    .await?;
    score_all(&desk, 7).await?;
    desk.click("#rate-submit").await?;
    sent(&desk).await?;

    // The statistics page (the admin): both ratings, the chart drawn by the server.
    app.create_user("chief", PASSWORD, Role::Admin).await;
    let stats = Browser::launch("admin", Device::Desktop).await?;
    login(&stats, &app.address, "chief").await?;
    stats.goto(&format!("{}/ratings/", app.address)).await?;
    stats
        .wait_true(
            "the control body and the inspector with the chart",
            "const img = document.getElementById('ratings-chart'); \
             return document.querySelectorAll('article.ratings-subject[data-level=control_body]').length === 1 && \
             document.querySelectorAll('article.ratings-subject[data-level=inspector]').length === 1 && \
             [img, document.getElementById('ratings-chart-subjects'), document.getElementById('ratings-chart-months')] \
               .every((i) => i.complete && i.naturalWidth > 0)",
            T,
        )
        .await?;
    let text = stats
        .js("return document.getElementById('main').textContent")
        .await?;
    let text = text.as_str().unwrap_or_default();
    ensure!(
        text.contains("ГУ МЧС России по г. Москве") && text.contains("inspector1"),
        "the statistics page shows: {text}"
    );
    stats.screenshot("ratings-statistics.ru").await?;
    stats
        .js(
            "const s = document.getElementById('ratings-side'); s.value = 'inspector'; \
             s.dispatchEvent(new Event('change')); return true",
        )
        .await?;
    stats
        .wait_true(
            "the inspector's rating of the business",
            "return document.querySelectorAll('article.ratings-subject[data-level=business]').length === 1",
            T,
        )
        .await?;
    stats.screenshot("ratings-statistics-businesses.ru").await?;

    // The business's durable access (/my/, signed in by a link) lists the finished
    // inspection with the link to its rating, still changeable within the window.
    let (my_url, _, _) = inspector_tests::presc::link(&inspector_api, &id).await;
    phone.goto(&my_url).await?;
    phone
        .wait_true(
            "the rating link on /my/",
            &format!(
                "const li = document.querySelector('#my-rate-list li[data-inspection-id=\"{id}\"]'); \
                 return !document.getElementById('my-rate').hidden && !!li && \
                 li.dataset.rate === 'change' && \
                 li.querySelector('a').getAttribute('href') === '/rate/#i={id}'"
            ),
            T,
        )
        .await?;
    phone.click("#my-rate-list a").await?;
    phone
        .wait_true(
            "the rating page from /my/ with the business's rating",
            "return location.pathname === '/rate/' && \
             document.querySelectorAll('fieldset.rate-criterion').length >= 3",
            T,
        )
        .await?;
    phone.close().await?;
    desk.close().await?;
    stats.close().await?;
    app.stop().await;
    Ok(())
}

/// The rows of the statistics tables as the page shows them: label, count, mean, median,
/// share below 5, reasons, distribution.
async fn table_rows(b: &Browser) -> Result<Vec<Vec<String>>> {
    let v = b
        .js("return JSON.stringify([...document.querySelectorAll('article.ratings-subject tbody tr')] \
             .map((tr) => [...tr.children].map((c) => c.textContent)))")
        .await?;
    Ok(serde_json::from_str(v.as_str().context("rows")?)?)
}

/// The public page (`[ratings] public_page` on): the control body's numbers as the server
/// counted them, its charts, no inspector; off: the page says so and shows no numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_public_page_shows_the_control_bodies_numbers_in_chromium() -> Result<()> {
    let b =
        crate::ratings::body_with_ratings(spawn_app_with(|c| c.ratings.public_page = true).await)
            .await;
    let page = Browser::launch("public", Device::Phone).await?;
    page.goto(&format!("{}/ratings/#public", b.app.address))
        .await?;
    page.wait_true(
        "the control body with its charts",
        "const imgs = [document.getElementById('ratings-chart'), document.getElementById('ratings-chart-months')]; \
         return document.querySelectorAll('article.ratings-subject[data-level=control_body]').length === 1 && \
         imgs.every((i) => i.complete && i.naturalWidth > 0)",
        T,
    )
    .await?;
    let text = page
        .js("return document.getElementById('main').textContent")
        .await?;
    let text = text.as_str().unwrap_or_default().to_string();
    ensure!(text.contains("ГУ МЧС по г. Москве"), "{text}");
    for secret in b.names.iter().chain(b.ids.iter()) {
        ensure!(
            !text.contains(secret.as_str()),
            "the public page names {secret}: {text}"
        );
    }
    ensure!(
        page.js("return document.querySelectorAll('article.ratings-subject[data-level=inspector]').length")
            .await?
            == json!(0)
    );
    ensure!(
        page.js("return document.getElementById('ratings-chart-subjects').parentElement.hidden")
            .await?
            == json!(true)
    );
    // Courtesy was rated 3, 9 and 6: count 3, mean 6.00, median 6, a third below 5; every
    // other criterion 8 three times. Each shows overall and for the one month.
    let rows = table_rows(&page).await?;
    let numbers = |r: &Vec<String>| r[1..5].to_vec();
    let courtesy = rows
        .iter()
        .filter(|r| numbers(r) == ["3", "6.00", "6", "33%"])
        .count();
    let eights = rows
        .iter()
        .filter(|r| numbers(r) == ["3", "8.00", "8", "0%"])
        .count();
    ensure!(courtesy == 2, "courtesy rows: {rows:?}");
    ensure!(
        eights >= 2 && eights % 2 == 0,
        "the other criteria's rows: {rows:?}"
    );
    ensure!(
        rows.iter()
            .any(|r| r[6] == "0 · 0 · 1 · 0 · 0 · 1 · 0 · 0 · 1 · 0"),
        "{rows:?}"
    );
    page.close().await?;
    b.app.stop().await;

    // Off (the default): the API answers 404, the page shows the error and no numbers.
    let app = spawn_app().await;
    let page = Browser::launch("public-off", Device::Phone).await?;
    page.goto(&format!("{}/ratings/#public", app.address))
        .await?;
    page.wait_true(
        "the error instead of the numbers",
        "return !document.getElementById('ratings-error').hidden",
        T,
    )
    .await?;
    ensure!(table_rows(&page).await?.is_empty());
    page.close().await?;
    app.stop().await;
    Ok(())
}

//! Issue 10, item 6: response headers and cookies. `nosniff` on every response,
//! `Cache-Control: no-store` on private API answers, a CSP whose `connect-src` is this server's
//! host only and that has no `'unsafe-inline'` (checked in real Chromium too), HSTS when the
//! public URL is https, a guest cookie that is a hashed guest session (not the invitation
//! token) ending with its invitation, and `/metrics` behind its own token.

use std::time::Duration;

use anyhow::{ensure, Result};
use inspector_tests::browser::{Browser, Device};
use inspector_tests::{spawn_app, spawn_app_with, Answer, Client, Role, TestApp};
use serde_json::json;

fn header<'a>(r: &'a Answer, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// An inspection with a started guest session; returns (inspector, guest, id, token, answer
/// of the accept).
async fn world(app: &TestApp) -> (Client, Client, String, String, Answer) {
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/invitations"),
            &json!({"ttl_hours": 2}),
        )
        .await;
    let token = r.body["token"].as_str().unwrap().to_string();
    let mut guest = app.anonymous();
    let accepted = guest.accept(&token).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    (insp, guest, id, token, accepted)
}

#[tokio::test]
async fn every_response_says_nosniff_and_private_answers_are_not_stored() {
    let app = spawn_app().await;
    let (insp, guest, id, _, accepted) = world(&app).await;
    let anon = app.anonymous();
    let mut answers = vec![
        ("accept", accepted),
        ("page", anon.get("/").await),
        ("asset", anon.get("/assets/style.css").await),
        ("healthz", anon.get("/healthz").await),
        ("openapi", anon.get("/api/openapi.json").await),
        ("unknown", anon.get("/nowhere").await),
        ("401", anon.get("/api/auth/me").await),
        (
            "bad login",
            anon.post_json(
                "/api/auth/login",
                &json!({"username": "x", "password": "y"}),
            )
            .await,
        ),
    ];
    for (who, c) in [("staff", &insp), ("guest", &guest)] {
        for path in [
            "/api/auth/me".to_string(),
            "/api/inspections".to_string(),
            format!("/api/inspections/{id}"),
            format!("/api/inspections/{id}/state"),
            format!("/api/inspections/{id}/events.jsonl"),
            format!("/api/inspections/{id}/participants"),
        ] {
            let r = c.get(&path).await;
            assert_eq!(r.status, 200, "{who} {path}: {}", r.text);
            assert_eq!(
                header(&r, "cache-control"),
                "no-store",
                "{who} {path} may be cached"
            );
            answers.push(("private", r));
        }
    }
    for (what, r) in &answers {
        assert_eq!(header(r, "x-content-type-options"), "nosniff", "{what}");
    }
    // Public pages may be revalidated, not stored-and-forgotten: they are not private.
    assert_eq!(header(&answers[1].1, "cache-control"), "no-cache");
    app.stop().await;
}

#[tokio::test]
async fn csp_allows_sockets_only_to_this_host_and_no_inline_styles() {
    let app = spawn_app().await;
    let r = app.anonymous().get("/").await;
    let csp = header(&r, "content-security-policy").to_string();
    let host = app.address.trim_start_matches("http://");
    let connect = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("connect-src"))
        .unwrap_or_default();
    assert_eq!(connect, format!("connect-src 'self' ws://{host}"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("style-src 'self'"), "{csp}");
    assert_eq!(
        header(&r, "strict-transport-security"),
        "",
        "no HSTS over http"
    );
    app.stop().await;

    // Served as https://inspector.example (behind a TLS proxy): wss to that host, and HSTS.
    let app = spawn_app_with(|c| c.public_url = "https://inspector.example".into()).await;
    let r = app.anonymous().get("/").await;
    let csp = header(&r, "content-security-policy");
    assert!(
        csp.contains("connect-src 'self' wss://inspector.example;"),
        "{csp}"
    );
    assert_eq!(header(&r, "strict-transport-security"), "max-age=31536000");
    let r = app.anonymous().get("/api/auth/me").await;
    assert_eq!(header(&r, "strict-transport-security"), "max-age=31536000");
    app.stop().await;
}

#[test]
fn web_pages_carry_no_inline_styles_or_scripts() {
    let web = inspector_tests::browser::workspace_root().join("web");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&web).unwrap() {
        let path = entry.unwrap().path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "html" | "js") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let l = line.to_lowercase();
            // `element.style.x = …` (CSSOM) is allowed under the CSP; attributes are not.
            let inline_style = l.contains(" style=")
                || l.contains("<style")
                || l.contains("setattribute('style'")
                || l.contains("setattribute(\"style\"")
                || l.contains("style.csstext");
            let inline_script = ext == "html"
                && ((l.contains("<script") && !l.contains(" src=")) || l.contains(" onclick="));
            if inline_style || inline_script {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "inline styles or scripts:\n{}",
        found.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_refuses_inline_styles_under_the_servers_policy() -> Result<()> {
    let app = spawn_app().await;
    let b = Browser::launch("csp", Device::Phone).await?;
    b.goto(&format!("{}/b/", app.address)).await?;
    b.wait_true(
        "the page's own stylesheet applied",
        "return getComputedStyle(document.body).margin !== '8px'",
        Duration::from_secs(10),
    )
    .await?;
    let before = b.console_logs().await?;
    ensure!(
        !before.iter().any(|l| l.contains("Content Security Policy")),
        "the page itself violated the policy: {before:#?}"
    );
    // What an injected inline style would do: refused, reported.
    let v = b
        .js(
            "const d = document.createElement('div'); d.setAttribute('style', 'width: 123px'); \
             document.body.append(d); return getComputedStyle(d).width",
        )
        .await?;
    ensure!(v != "123px", "an inline style attribute was applied: {v}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = b.console_logs().await?;
    ensure!(
        after.iter().any(|l| l.contains("Content Security Policy")),
        "the refusal is not in the console: {after:#?}"
    );
    b.close().await?;
    app.stop().await;
    Ok(())
}

#[tokio::test]
async fn the_guest_cookie_is_a_hashed_session_that_ends_with_its_invitation() {
    let app = spawn_app().await;
    let (_insp, guest, _id, token, accepted) = world(&app).await;
    // The accept sets two cookies (the guest session and the durable results access).
    let set = accepted
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("inspector_guest="))
        .expect("a guest cookie")
        .to_string();
    let value = set
        .split(';')
        .next()
        .and_then(|kv| kv.strip_prefix("inspector_guest="))
        .expect("a guest cookie")
        .to_string();
    assert_ne!(
        value, token,
        "the cookie must not hold the invitation token"
    );
    assert!(value.len() >= 43);
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    // The invitation lasts 2 hours: the cookie no longer.
    let max_age: i64 = set
        .split(';')
        .find_map(|a| a.trim().strip_prefix("Max-Age="))
        .expect("Max-Age")
        .parse()
        .unwrap();
    assert!((7000..=7200).contains(&max_age), "Max-Age={max_age}");
    // Stored only hashed, with the invitation's expiry.
    let dump = app.dump().await;
    assert!(!dump.contains(&value) && !dump.contains(&token));
    assert!(dump.contains(&signaling::auth::hash_token(&value)));
    let (session_expiry, invitation_expiry): (i64, i64) = {
        use sqlx::Row;
        let r = sqlx::query(
            "SELECT g.expires_at, i.expires_at FROM guest_sessions g \
             JOIN invitations i ON i.id = g.invitation_id",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(session_expiry, invitation_expiry);
    assert_eq!(guest.get("/api/auth/me").await.status, 200);
    // The invitation token itself is no cookie.
    let forged = app
        .anonymous()
        .get_with(
            "/api/auth/me",
            &[("cookie", &format!("inspector_guest={token}"))],
        )
        .await;
    assert_eq!(forged.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_off_by_default_and_need_their_token() {
    let app = spawn_app().await;
    assert_eq!(app.anonymous().get("/metrics").await.status, 404);
    let admin = app.staff("admin", Role::Admin).await;
    assert_eq!(
        admin.get("/metrics").await.status,
        404,
        "not even for staff"
    );
    app.stop().await;

    let token = "a-metrics-token-0123456789";
    let app = spawn_app_with(|c| c.metrics_token = Some(token.into())).await;
    let c = app.anonymous();
    assert_eq!(c.get("/healthz").await.status, 200);
    for bad in ["", "Bearer wrong-token-0123456789", "Basic x"] {
        let r = c.get_with("/metrics", &[("authorization", bad)]).await;
        assert_eq!((r.status, r.code()), (401, "unauthenticated"), "{bad:?}");
    }
    let r = c
        .get_with("/metrics", &[("authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.text.contains("inspector_http_requests_total"),
        "{}",
        r.text
    );
    app.stop().await;
}

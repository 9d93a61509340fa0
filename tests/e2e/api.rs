//! The HTTP API: lifecycle, invitations, throttling, bad input, operations endpoints.

use inspector_tests::{inspection_body, spawn_app, Role};
use serde_json::json;

async fn template_id(c: &inspector_tests::Client) -> String {
    let r = c.get("/api/templates").await;
    assert_eq!(r.status, 200);
    r.body["templates"][0]["id"]
        .as_str()
        .expect("bundled template")
        .to_string()
}

#[tokio::test]
async fn lifecycle_refuses_illegal_transitions() {
    let app = spawn_app().await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    let t = template_id(&insp).await;
    let r = insp
        .post_json("/api/inspections", &inspection_body(Some(&t)))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "scheduled");
    assert_eq!(r.body["items"].as_array().unwrap().len(), 10);
    let id = r.body["id"].as_str().unwrap().to_string();
    let path = format!("/api/inspections/{id}/transition");

    for (to, expect, code) in [
        ("finished", 409, "illegal_transition"),
        ("signed", 409, "illegal_transition"),
        ("live", 200, ""),
        ("live", 409, "illegal_transition"),
        ("scheduled", 409, "illegal_transition"),
        ("finished", 200, ""),
        ("cancelled", 409, "illegal_transition"),
        // `signed` follows from the official's signature of the act, never from a request.
        ("signed", 409, "illegal_transition"),
        ("live", 409, "illegal_transition"),
    ] {
        let before = app.dump().await;
        let r = insp.post_json(&path, &json!({ "to": to })).await;
        assert_eq!(r.status, expect, "to {to}: {}", r.text);
        if expect == 200 {
            assert_eq!(r.body["status"], to);
        } else {
            assert_eq!(r.code(), code);
            assert_eq!(
                app.dump().await,
                before,
                "a refused transition changed stored rows"
            );
        }
    }
    let r = insp.get(&format!("/api/inspections/{id}")).await;
    assert!(r.body["started_at"].is_string() && r.body["finished_at"].is_string());

    let r = insp.post_json(&path, &json!({ "to": "paused" })).await;
    assert_eq!((r.status, r.code()), (400, "invalid_body"));
    app.stop().await;
}

#[tokio::test]
async fn invitations_expire_and_can_be_revoked() {
    let app = spawn_app().await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    let r = insp
        .post_json("/api/inspections", &inspection_body(None))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();

    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/invitations"),
            &json!({"label": "Директор"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let token = r.body["token"].as_str().unwrap().to_string();
    let inv_id = r.body["invitation"]["id"].as_str().unwrap().to_string();
    assert!(token.len() >= 43, "token must carry at least 128 bits");
    assert!(r.body["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/b/#t={token}")));
    assert!(r.body["qr_svg"].as_str().unwrap().contains("<svg"));
    // Only the hash is stored.
    assert!(!app.dump().await.contains(&token));

    let mut guest = app.anonymous();
    let r = guest.accept(&token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["inspection"]["id"], id.as_str());
    assert_eq!(
        guest.get(&format!("/api/inspections/{id}")).await.status,
        200
    );
    let r = guest.get("/api/auth/me").await;
    assert_eq!(r.body["guest"]["inspection_id"], id.as_str());

    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/invitations/{inv_id}/revoke"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        guest.get(&format!("/api/inspections/{id}")).await.status,
        401
    );
    let r = app.anonymous().accept(&token).await;
    assert_eq!((r.status, r.code()), (410, "invitation_revoked"));
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/invitations/{inv_id}/revoke"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 404);

    // Expiry: move a fresh invitation's expiry into the past, as time would.
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/invitations"),
            &json!({"ttl_hours": 1}),
        )
        .await;
    let token2 = r.body["token"].as_str().unwrap().to_string();
    let inv2 = r.body["invitation"]["id"].as_str().unwrap().to_string();
    let mut guest2 = app.anonymous();
    // A browser that kept only the live invitation's cookie (the durable results access it also
    // got is tested in e2e/act.rs).
    assert_eq!(guest2.accept(&token2).await.status, 200);
    guest2.forget_cookie("inspector_results");
    sqlx::query("UPDATE invitations SET expires_at = $1 WHERE id = $2")
        .bind(chrono::Utc::now().timestamp_micros() - 1)
        .bind(&inv2)
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        guest2.get(&format!("/api/inspections/{id}")).await.status,
        401
    );
    let r = app.anonymous().accept(&token2).await;
    assert_eq!((r.status, r.code()), (410, "invitation_expired"));

    for bad in ["", "x", "not-a-token-at-all", &"a".repeat(200)] {
        let r = app.anonymous().accept(bad).await;
        assert_eq!(r.status, 404, "token {bad:?}");
    }
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/invitations"),
            &json!({"ttl_hours": 0}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    app.stop().await;
}

#[tokio::test]
async fn login_is_throttled() {
    let app = spawn_app().await;
    app.create_user("alice", "the right password", Role::Inspector)
        .await;
    let c = app.anonymous();
    for _ in 0..5 {
        let r = c
            .post_json(
                "/api/auth/login",
                &json!({"username": "alice", "password": "wrong password"}),
            )
            .await;
        assert_eq!((r.status, r.code()), (401, "bad_credentials"));
    }
    let r = c
        .post_json(
            "/api/auth/login",
            &json!({"username": "alice", "password": "the right password"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (429, "too_many_attempts"));
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900);
    // Other accounts are not locked by attempts against alice.
    app.create_user("bob", "bob's password!", Role::Reviewer)
        .await;
    let r = c
        .post_json(
            "/api/auth/login",
            &json!({"username": "bob", "password": "bob's password!"}),
        )
        .await;
    assert_eq!(r.status, 200);
    // Unknown users answer like wrong passwords.
    let r = c
        .post_json(
            "/api/auth/login",
            &json!({"username": "nobody", "password": "whatever it is"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "bad_credentials"));
    app.stop().await;
}

#[tokio::test]
async fn malformed_and_oversized_bodies_change_nothing() {
    let app = spawn_app().await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    let before = app.dump().await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "application/json",
            b"{not json".to_vec(),
            400,
            "malformed_json",
        ),
        ("application/json", b"".to_vec(), 400, "malformed_json"),
        (
            "application/json",
            br#"{"kind": 5}"#.to_vec(),
            400,
            "invalid_body",
        ),
        (
            "application/json",
            br#"[1,2,3]"#.to_vec(),
            400,
            "invalid_body",
        ),
        (
            "text/plain",
            br#"{}"#.to_vec(),
            400,
            "unsupported_media_type",
        ),
        (
            "application/json",
            vec![b' '; 100 * 1024],
            413,
            "payload_too_large",
        ),
    ];
    for (ct, body, status, code) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).to_string();
        let r = insp.post_raw("/api/inspections", ct, body).await;
        assert_eq!(
            (r.status, r.code()),
            (status, code),
            "body {shown:?}: {}",
            r.text
        );
        assert!(r.body["error"]["message"].is_string());
    }
    let mut bad_inn = inspection_body(None);
    bad_inn["business"]["inn"] = json!("7707083894");
    let mut bad_coords = inspection_body(None);
    bad_coords["business"]["lat"] = json!(123.0);
    let mut one_coord = inspection_body(None);
    one_coord["business"]["lon"] = json!(null);
    let mut unknown_template = inspection_body(Some(&uuid::Uuid::new_v4().to_string()));
    unknown_template["title"] = json!("x");
    let mut extra_field = inspection_body(None);
    extra_field["surprise"] = json!(1);
    for body in [bad_inn, bad_coords, one_coord, unknown_template] {
        let r = insp.post_json("/api/inspections", &body).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "validation_failed"),
            "{}",
            r.text
        );
    }
    let r = insp.post_json("/api/inspections", &extra_field).await;
    assert_eq!((r.status, r.code()), (400, "invalid_body"));
    let r = insp.get("/api/inspections/not-a-uuid").await;
    assert_eq!(r.status, 400);
    let r = insp
        .get(&format!("/api/inspections/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = insp.get("/api/nothing-here").await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    assert_eq!(
        app.dump().await,
        before,
        "rejected requests changed stored rows"
    );
    app.stop().await;
}

#[tokio::test]
async fn writes_need_the_csrf_token() {
    let app = spawn_app().await;
    let mut insp = app.staff("inspector1", Role::Inspector).await;
    let before = app.dump().await;
    let token = insp.csrf.take();
    let r = insp
        .post_json("/api/inspections", &inspection_body(None))
        .await;
    assert_eq!((r.status, r.code()), (403, "csrf_failed"));
    insp.csrf = Some("forged".into());
    let r = insp
        .post_json("/api/inspections", &inspection_body(None))
        .await;
    assert_eq!((r.status, r.code()), (403, "csrf_failed"));
    assert_eq!(app.dump().await, before);
    insp.csrf = token;
    assert_eq!(
        insp.post_json("/api/inspections", &inspection_body(None))
            .await
            .status,
        201
    );
    app.stop().await;
}

#[tokio::test]
async fn sessions_end_on_logout_and_disable() {
    let app = spawn_app().await;
    let admin = app.staff("admin", Role::Admin).await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    assert_eq!(insp.get("/api/auth/me").await.status, 200);
    let id = insp.get("/api/auth/me").await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = admin
        .post_json(&format!("/api/users/{id}/disable"), &json!({}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(insp.get("/api/auth/me").await.status, 401);
    let r = app
        .anonymous()
        .post_json(
            "/api/auth/login",
            &json!({"username": "inspector1", "password": "a long test password"}),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = admin.post_json("/api/auth/logout", &json!({})).await;
    assert_eq!(r.status, 204);
    assert_eq!(admin.get("/api/auth/me").await.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn list_filters_by_status_and_text() {
    let app = spawn_app().await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    let a = insp
        .post_json("/api/inspections", &inspection_body(None))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut other = inspection_body(None);
    other["business"]["name"] = json!("ИП Лютиков");
    other["business"]["inn"] = json!("500100732259");
    insp.post_json("/api/inspections", &other).await;
    insp.post_json(
        &format!("/api/inspections/{a}/transition"),
        &json!({"to": "live"}),
    )
    .await;
    let r = insp.get("/api/inspections?status=live").await;
    let list = r.body["inspections"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], a.as_str());
    let r = insp
        .get("/api/inspections?q=%D0%BB%D1%8E%D1%82%D0%B8%D0%BA")
        .await; // "лютик"
    assert_eq!(
        r.body["inspections"].as_array().unwrap().len(),
        1,
        "{}",
        r.text
    );
    let r = insp.get("/api/inspections?q=500100").await;
    assert_eq!(r.body["inspections"].as_array().unwrap().len(), 1);
    let r = insp.get("/api/inspections?status=bogus").await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    app.stop().await;
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let app = spawn_app().await;
    let c = app.anonymous();
    assert_eq!(c.get("/healthz").await.status, 200);
    assert_eq!(c.get("/readyz").await.status, 200);
    let r = c.get("/api/openapi.json").await;
    assert_eq!(r.status, 200);
    for path in [
        "/api/auth/login",
        "/api/inspections",
        "/api/inspections/{id}/transition",
        "/api/invitations/accept",
        "/api/inspections/{id}/ws",
        "/api/inspections/{id}/act",
        "/api/inspections/{id}/act/signature",
        "/api/inspections/{id}/bundle.zip",
        "/api/signing/certificates",
        "/api/results/accept",
        "/api/inspections/{id}/evidence",
        "/api/inspections/{id}/evidence/{evidence_id}",
    ] {
        assert!(r.body["paths"][path].is_object(), "OpenAPI lacks {path}");
    }
    // Off without a configured token (tests/e2e/headers.rs opens it with one).
    assert_eq!(c.get("/metrics").await.status, 404);
    let r = c.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-frame-options"], "DENY");
    app.stop().await;
}

#[tokio::test]
async fn admin_imports_templates() {
    let app = spawn_app().await;
    let admin = app.staff("admin", Role::Admin).await;
    let doc = json!({"code": "demo", "version": 1, "title": "Демо", "items": [
        {"id": "a", "number": "1", "question": "Вопрос?"}]});
    let r = admin.post_json("/api/templates", &doc).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["items"][0]["answer_kind"], "compliance");
    let r = admin.post_json("/api/templates", &doc).await;
    assert_eq!((r.status, r.code()), (409, "template_exists"));
    let bad = json!({"code": "demo", "version": 2, "title": "Демо", "items": [
        {"id": "a", "number": "1", "question": "?"}, {"id": "a", "number": "2", "question": "?"}]});
    let before = app.dump().await;
    let r = admin.post_json("/api/templates", &bad).await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    assert_eq!(app.dump().await, before);
    app.stop().await;
}

#[tokio::test]
async fn corrupt_rows_are_errors_not_defaults_or_panics() {
    let app = spawn_app().await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    let path = format!("/api/inspections/{id}");
    assert_eq!(insp.get(&path).await.status, 200);
    // Someone with the database writes what the schema cannot stop: an INN with wrong check
    // digits, then a participant id that is no UUID.
    sqlx::query("UPDATE inspections SET business_inn = '7707083894' WHERE id = $1")
        .bind(&id)
        .execute(&app.db)
        .await
        .expect("corrupt the INN");
    for p in [path.as_str(), "/api/inspections"] {
        let r = insp.get(p).await;
        assert_eq!((r.status, r.code()), (500, "internal"), "{p}: {}", r.text);
        assert!(
            !r.text.contains("7707083894"),
            "the bad value is not served"
        );
    }
    sqlx::query("UPDATE inspections SET business_inn = '7707083893' WHERE id = $1")
        .bind(&id)
        .execute(&app.db)
        .await
        .expect("repair the INN");
    let started = insp
        .post_json(&format!("{path}/transition"), &json!({"to": "live"}))
        .await;
    assert_eq!(started.status, 200, "{}", started.text);
    sqlx::query("UPDATE participants SET id = 'not-a-uuid' WHERE inspection_id = $1")
        .bind(&id)
        .execute(&app.db)
        .await
        .expect("corrupt a participant");
    let r = insp.get(&format!("{path}/participants")).await;
    assert_eq!((r.status, r.code()), (500, "internal"), "{}", r.text);
    // The server is still serving.
    assert_eq!(app.anonymous().get("/healthz").await.status, 200);
    assert_eq!(insp.get(&path).await.status, 200);
    app.stop().await;
}

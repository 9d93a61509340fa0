//! API tokens (issue 22, item 2) and external ids (item 4): a token is shown once and stored
//! only hashed, works without CSRF, is refused at once after its revocation, every call is
//! logged with the token's id (bounded), and an inspection's ЕРКНМ number and external id
//! round-trip, are searched exactly, and are refused with stable codes when malformed.

use inspector_tests::{inspection_body, spawn_app, Role};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn in_days(d: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(d)).to_rfc3339()
}

#[tokio::test]
async fn a_token_is_shown_once_stored_hashed_logged_and_revoked_at_once() {
    let app = spawn_app().await;
    let admin = app.staff("admin", Role::Admin).await;
    let r = admin
        .post_json(
            "/api/tokens",
            &json!({"name": "СЭД органа", "scopes": ["results:read"], "expires_at": in_days(30)}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["token"]["id"].as_str().unwrap().to_string();
    let secret = r.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("insp_") && secret.len() > 40, "{secret}");
    assert_eq!(r.body["token"]["scopes"], json!(["results:read"]));

    // Not readable later: neither the list nor the calls show it; the database holds its
    // SHA-256 only, and no stored text anywhere contains the secret.
    let list = admin.get("/api/tokens").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["tokens"][0]["id"], json!(id));
    assert!(!list.text.contains(&secret[5..]), "{}", list.text);
    assert!(list.body["tokens"][0].get("secret").is_none());
    let stored: String = {
        use sqlx::Row;
        sqlx::query("SELECT token_hash FROM api_tokens WHERE id = $1")
            .bind(&id)
            .fetch_one(&app.db)
            .await
            .unwrap()
            .get(0)
    };
    assert_eq!(stored, hex::encode(Sha256::digest(secret.as_bytes())));
    assert!(!app.dump_all().await.contains(&secret[5..]));
    // The token's system account is not a user to manage, and cannot sign in.
    let users = admin.get("/api/users").await;
    assert!(!users.text.contains("api-token:"), "{}", users.text);

    // It works (no cookie, no CSRF), is revoked, and the very next call is refused.
    let sys = app.bearer(&secret);
    let a = sys.get("/api/inspections").await;
    assert_eq!(a.status, 200, "{}", a.text);
    // The scheme's name is case-insensitive.
    let lower = app
        .anonymous()
        .get_with(
            "/api/inspections",
            &[("authorization", &format!("bearer {secret}"))],
        )
        .await;
    assert_eq!(lower.status, 200, "{}", lower.text);
    let rv = admin
        .post_json(&format!("/api/tokens/{id}/revoke"), &json!({}))
        .await;
    assert_eq!(rv.status, 200, "{}", rv.text);
    assert!(rv.body["revoked_at"].is_string());
    let b = sys.get("/api/inspections").await;
    assert_eq!(b.status, 401, "{}", b.text);
    assert_eq!(b.code(), "token_revoked");
    assert_eq!(b.headers["www-authenticate"], "Bearer");

    // Every call is in the log with its method, path and status, newest first.
    let calls = admin.get(&format!("/api/tokens/{id}/calls")).await;
    assert_eq!(calls.status, 200, "{}", calls.text);
    let got: Vec<(String, String, u64)> = calls.body["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["method"].as_str().unwrap().to_string(),
                c["path"].as_str().unwrap().to_string(),
                c["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("GET".into(), "/api/inspections".into(), 401),
            ("GET".into(), "/api/inspections".into(), 200),
            ("GET".into(), "/api/inspections".into(), 200),
        ]
    );
    let listed = admin.get("/api/tokens").await;
    assert!(listed.body["tokens"][0]["last_used_at"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn token_requests_are_validated_with_stable_codes() {
    let app = spawn_app().await;
    let admin = app.staff("admin", Role::Admin).await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"name": "", "scopes": ["results:read"], "expires_at": in_days(1)}),
            "name",
            "token_name_required",
        ),
        (
            json!({"name": "x".repeat(101), "scopes": ["results:read"], "expires_at": in_days(1)}),
            "name",
            "token_name_invalid",
        ),
        (
            json!({"name": "n", "scopes": [], "expires_at": in_days(1)}),
            "scopes",
            "scopes_required",
        ),
        (
            json!({"name": "n", "scopes": ["everything"], "expires_at": in_days(1)}),
            "scopes",
            "scope_unknown",
        ),
        (
            json!({"name": "n", "scopes": ["results:read"], "expires_at": in_days(-1)}),
            "expires_at",
            "expiry_in_past",
        ),
        (
            json!({"name": "n", "scopes": ["results:read"], "expires_at": in_days(400)}),
            "expires_at",
            "expiry_too_far",
        ),
        (
            json!({"name": "n", "scopes": ["results:read"], "expires_at": in_days(1),
                   "control_body_id": uuid::Uuid::new_v4()}),
            "control_body_id",
            "control_body_not_found",
        ),
    ];
    let before = app.dump().await;
    for (body, field, code) in cases {
        let r = admin.post_json("/api/tokens", &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.code(), "validation_failed", "{}", r.text);
        assert_eq!(
            r.body["error"]["fields"][0]["field"],
            json!(field),
            "{}",
            r.text
        );
        assert_eq!(
            r.body["error"]["fields"][0]["code"],
            json!(code),
            "{}",
            r.text
        );
    }
    // The expiry is required.
    let r = admin
        .post_json(
            "/api/tokens",
            &json!({"name": "n", "scopes": ["results:read"]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        app.dump().await,
        before,
        "a refused token request stored something"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_call_log_is_bounded_by_age_and_count() {
    let app = spawn_app().await;
    let admin = app.staff("admin", Role::Admin).await;
    let (id, secret) = crate::authz::make_token(&admin, &["results:read"], None).await;
    // 10 000 recent calls already logged (the per-token bound) and one past the retention:
    // one more call drops the old one and the oldest recent one, keeping the newest 10 000.
    let now = chrono::Utc::now().timestamp_micros();
    let base = now - 1_000_000_000;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) \
         INSERT INTO api_token_calls (id, token_id, at, method, path, status) \
         SELECT 'seed-' || i, $1, $2 + i, 'GET', '/api/seed', 200 FROM n",
    )
    .bind(&id)
    .bind(base)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO api_token_calls (id, token_id, at, method, path, status) \
         VALUES ('seed-old', $1, $2, 'GET', '/api/seed', 200)",
    )
    .bind(&id)
    .bind(now - 91 * 24 * 3600 * 1_000_000)
    .execute(&app.db)
    .await
    .unwrap();
    let r = app.bearer(&secret).get("/api/templates").await;
    assert_eq!(r.status, 200, "{}", r.text);
    use sqlx::Row;
    let count: i64 = sqlx::query("SELECT COUNT(*) FROM api_token_calls WHERE token_id = $1")
        .bind(&id)
        .fetch_one(&app.db)
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 10_000);
    let oldest: i64 = sqlx::query("SELECT MIN(at) FROM api_token_calls WHERE token_id = $1")
        .bind(&id)
        .fetch_one(&app.db)
        .await
        .unwrap()
        .get(0);
    assert_eq!(oldest, base + 2);
    let calls = admin.get(&format!("/api/tokens/{id}/calls")).await;
    assert_eq!(calls.body["calls"].as_array().unwrap().len(), 500);
    assert_eq!(calls.body["calls"][0]["path"], json!("/api/templates"));
    app.stop().await;
}

#[tokio::test]
async fn external_ids_round_trip_search_and_refuse_bad_shapes() {
    let app = spawn_app().await;
    let admin = app.staff("admin", Role::Admin).await;
    let inspector = app.staff("inspector_a", Role::Inspector).await;
    let me = inspector.get("/api/auth/me").await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, secret) =
        crate::authz::make_token(&admin, &["inspections:write", "results:read"], None).await;
    let sys = app.bearer(&secret);

    // A system creates one with both ids, without CSRF, for a named inspector.
    let mut body = inspection_body(None);
    body["inspector_id"] = json!(me);
    body["erknm_number"] = json!("77230661000100012345");
    body["external_id"] = json!("СЭД-2026/17");
    let made = sys.post_json("/api/inspections", &body).await;
    assert_eq!(made.status, 201, "{}", made.text);
    let a = made.body["id"].as_str().unwrap().to_string();
    assert_eq!(made.body["erknm_number"], json!("77230661000100012345"));
    assert_eq!(made.body["external_id"], json!("СЭД-2026/17"));
    assert_eq!(made.body["inspector"]["id"], json!(me));
    // The inspector sees it as its own, ids included.
    let shown = inspector.get(&format!("/api/inspections/{a}")).await;
    assert_eq!(shown.body["erknm_number"], json!("77230661000100012345"));
    // Another without ids.
    let b = inspector.create_inspection().await;

    // Exact search, by staff and by the token.
    for c in [&inspector, &sys] {
        let r = c.get("/api/inspections?erknm=77230661000100012345").await;
        let ids: Vec<&str> = r.body["inspections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![a.as_str()], "{}", r.text);
        let r = c
            .get("/api/inspections?external_id=%D0%A1%D0%AD%D0%94-2026%2F17")
            .await;
        assert_eq!(
            r.body["inspections"].as_array().unwrap().len(),
            1,
            "{}",
            r.text
        );
        // Exact: a prefix finds nothing.
        let r = c
            .get("/api/inspections?external_id=%D0%A1%D0%AD%D0%94")
            .await;
        assert_eq!(
            r.body["inspections"].as_array().unwrap().len(),
            0,
            "{}",
            r.text
        );
    }
    let r = inspector.get("/api/inspections?erknm=7723-0661").await;
    assert_eq!((r.status, r.code()), (400, "erknm_invalid"), "{}", r.text);

    // Bad shapes at creation: every one named, nothing stored.
    let before = app.dump().await;
    let mut bad = inspection_body(None);
    bad["erknm_number"] = json!("123");
    bad["external_id"] = json!("x".repeat(101));
    let r = inspector.post_json("/api/inspections", &bad).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let fields: Vec<(String, String)> = r.body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap().into(),
                f["code"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        vec![
            ("erknm_number".into(), "erknm_invalid".into()),
            ("external_id".into(), "external_id_invalid".into())
        ]
    );
    // The register number is unique: a second inspection with it is refused.
    let mut dup = inspection_body(None);
    dup["erknm_number"] = json!("77230661000100012345");
    let r = inspector.post_json("/api/inspections", &dup).await;
    assert_eq!((r.status, r.code()), (409, "erknm_taken"), "{}", r.text);
    let r = inspector
        .put_json(
            &format!("/api/inspections/{b}/external-ids"),
            &json!({"erknm_number": "77230661000100012345", "external_id": null}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "erknm_taken"), "{}", r.text);
    let r = inspector
        .put_json(
            &format!("/api/inspections/{b}/external-ids"),
            &json!({"erknm_number": null, "external_id": "line\nbreak"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.body["error"]["fields"][0]["code"],
        json!("external_id_invalid")
    );
    assert_eq!(
        app.dump().await,
        before,
        "a refused request stored something"
    );

    // Set later, by the inspector; then changed and cleared by the system.
    let r = inspector
        .put_json(
            &format!("/api/inspections/{b}/external-ids"),
            &json!({"erknm_number": "50230661000100000001", "external_id": "ext-b"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["erknm_number"], json!("50230661000100000001"));
    let r = sys
        .put_json(
            &format!("/api/inspections/{b}/external-ids"),
            &json!({"erknm_number": null, "external_id": "ext-b2"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["erknm_number"], Value::Null);
    assert_eq!(r.body["external_id"], json!("ext-b2"));
    let r = inspector.get("/api/inspections?external_id=ext-b2").await;
    assert_eq!(r.body["inspections"][0]["id"], json!(b));
    // The number freed by the clear can be given to the other one.
    let r = sys
        .put_json(
            &format!("/api/inspections/{a}/external-ids"),
            &json!({"erknm_number": "50230661000100000001", "external_id": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.stop().await;
}

#[tokio::test]
async fn token_and_external_id_answers_match_the_openapi_document() {
    let app = spawn_app().await;
    let spec = crate::openapi::Spec {
        doc: app.anonymous().get("/api/openapi.json").await.body,
    };
    assert_eq!(
        spec.doc["components"]["securitySchemes"]["api_token"]["scheme"],
        json!("bearer")
    );
    let admin = app.staff("admin", Role::Admin).await;
    let made = admin
        .post_json(
            "/api/tokens",
            &json!({"name": "n", "scopes": ["results:read", "inspections:write"], "expires_at": in_days(5)}),
        )
        .await;
    spec.check("post", "/api/tokens", &made);
    let bad = admin
        .post_json(
            "/api/tokens",
            &json!({"name": "", "scopes": [], "expires_at": in_days(5)}),
        )
        .await;
    spec.check("post", "/api/tokens", &bad);
    let id = made.body["token"]["id"].as_str().unwrap().to_string();
    let sys = app.bearer(made.body["secret"].as_str().unwrap());
    let insp = admin.create_inspection().await;
    let set = sys
        .put_json(
            &format!("/api/inspections/{insp}/external-ids"),
            &json!({"erknm_number": "77230661000100012345", "external_id": "e-1"}),
        )
        .await;
    spec.check("put", "/api/inspections/{id}/external-ids", &set);
    let other = admin.create_inspection().await;
    let taken = admin
        .put_json(
            &format!("/api/inspections/{other}/external-ids"),
            &json!({"erknm_number": "77230661000100012345", "external_id": null}),
        )
        .await;
    assert_eq!(taken.status, 409);
    spec.check("put", "/api/inspections/{id}/external-ids", &taken);
    spec.check(
        "get",
        "/api/inspections/{id}",
        &sys.get(&format!("/api/inspections/{insp}")).await,
    );
    spec.check(
        "get",
        "/api/inspections",
        &sys.get("/api/inspections?erknm=77230661000100012345").await,
    );
    spec.check("get", "/api/tokens", &admin.get("/api/tokens").await);
    spec.check(
        "get",
        "/api/tokens/{id}/calls",
        &admin.get(&format!("/api/tokens/{id}/calls")).await,
    );
    spec.check(
        "post",
        "/api/tokens/{id}/revoke",
        &admin
            .post_json(&format!("/api/tokens/{id}/revoke"), &json!({}))
            .await,
    );
    app.stop().await;
}

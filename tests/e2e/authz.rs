//! The authorization matrix: every endpoint × every kind of caller → the expected status, no
//! data of an unseen inspection in any answer, and no stored row changed by a refusal.

use inspector_tests::{inspection_body, spawn_app, Client, Role, TestApp};
use serde_json::{json, Value};

/// Callers, in the column order of the expectations below.
const ACTORS: [&str; 7] = [
    "anonymous",
    "guest_x",
    "guest_y",
    "inspector_a",
    "inspector_b",
    "reviewer",
    "admin",
];

struct World {
    app: TestApp,
    clients: Vec<Client>,
    x: String,
    x_name: String,
    template: String,
}

async fn world() -> World {
    let app = spawn_app().await;
    let inspector_a = app.staff("inspector_a", Role::Inspector).await;
    let inspector_b = app.staff("inspector_b", Role::Inspector).await;
    let reviewer = app.staff("reviewer", Role::Reviewer).await;
    let admin = app.staff("admin", Role::Admin).await;
    let template = inspector_a.get("/api/templates").await.body["templates"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let x_name = "ООО «Секретная Ромашка»".to_string();
    let mut body = inspection_body(Some(&template));
    body["business"]["name"] = json!(x_name);
    let x = inspector_a.post_json("/api/inspections", &body).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut body = inspection_body(None);
    body["business"]["name"] = json!("ИП Лютиков");
    let y = inspector_b.post_json("/api/inspections", &body).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tx = invite_token(&inspector_a, &x).await;
    let ty = invite_token(&inspector_b, &y).await;
    let mut guest_x = app.anonymous();
    assert_eq!(guest_x.accept(&tx).await.status, 200);
    let mut guest_y = app.anonymous();
    assert_eq!(guest_y.accept(&ty).await.status, 200);
    let clients = vec![
        app.anonymous(),
        guest_x,
        guest_y,
        inspector_a,
        inspector_b,
        reviewer,
        admin,
    ];
    World {
        app,
        clients,
        x,
        x_name,
        template,
    }
}

async fn invite_token(c: &Client, id: &str) -> String {
    let r = c
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    r.body["token"]
        .as_str()
        .expect("invitation token")
        .to_string()
}

/// Which callers may see inspection X at all (others must get nothing of it).
fn sees_x(actor: &str) -> bool {
    matches!(actor, "guest_x" | "inspector_a" | "reviewer" | "admin")
}

#[tokio::test]
async fn every_endpoint_checks_every_caller() {
    let w = world().await;
    let x = &w.x;
    let t = &w.template;
    let admin_id = w.clients[6].get("/api/auth/me").await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let item = w.clients[3]
        .get(&format!("/api/inspections/{x}"))
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Webhook endpoints for the admin rows: one to read and change, one to delete (its row
    // comes last). They hear only of signed acts, which nothing here makes, so no delivery
    // runs while the rows are compared.
    let hook_of = |r: inspector_tests::Answer| {
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["endpoint"]["id"].as_str().unwrap().to_string()
    };
    let hook_body = json!({"url": "https://hooks.example.org/in", "events": ["act.signed"]});
    let hook = hook_of(w.clients[6].post_json("/api/webhooks", &hook_body).await);
    let doomed = hook_of(w.clients[6].post_json("/api/webhooks", &hook_body).await);
    // (method, path, body, expected status per actor in ACTORS order)
    let cases: Vec<(&str, String, Value, [u16; 7])> = vec![
        (
            "GET",
            "/api/auth/me".into(),
            Value::Null,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        // Sign-in methods are public (the login page asks before anyone is signed in); the
        // provider's endpoints exist only with `[oidc]` configured (tests/e2e/oidc.rs covers
        // them configured: they take no caller, the binding cookie is their only key).
        (
            "GET",
            "/api/auth/methods".into(),
            Value::Null,
            [200, 200, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/api/auth/oidc/start".into(),
            Value::Null,
            [404, 404, 404, 404, 404, 404, 404],
        ),
        (
            "GET",
            "/api/auth/oidc/callback?code=c&state=s".into(),
            Value::Null,
            [404, 404, 404, 404, 404, 404, 404],
        ),
        (
            "GET",
            "/api/inspections".into(),
            Value::Null,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            format!("/api/inspections/{x}"),
            Value::Null,
            [401, 200, 404, 200, 404, 200, 200],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/participants"),
            Value::Null,
            [401, 200, 404, 200, 404, 200, 200],
        ),
        // The on-site queue: the inspector's own (X is remote: the allowed callers reach the
        // mode check, 409), the track readable like the state.
        (
            "POST",
            format!("/api/inspections/{x}/queue"),
            json!({"ops": []}),
            [401, 403, 404, 409, 404, 403, 409],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/track"),
            Value::Null,
            [401, 200, 404, 200, 404, 200, 200],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/invitations"),
            Value::Null,
            [401, 403, 404, 200, 404, 403, 200],
        ),
        // An illegal target: allowed callers reach the lifecycle check (409), nothing changes.
        (
            "POST",
            format!("/api/inspections/{x}/transition"),
            json!({"to": "signed"}),
            [401, 403, 404, 409, 404, 403, 409],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/invitations"),
            json!({}),
            [401, 403, 404, 201, 404, 403, 201],
        ),
        (
            "POST",
            format!(
                "/api/inspections/{x}/invitations/{}/revoke",
                uuid::Uuid::new_v4()
            ),
            json!({}),
            [401, 403, 404, 404, 404, 403, 404],
        ),
        (
            "POST",
            "/api/inspections".into(),
            inspection_body(None),
            [401, 403, 403, 201, 201, 403, 201],
        ),
        (
            "GET",
            "/api/templates".into(),
            Value::Null,
            [401, 403, 403, 200, 200, 200, 200],
        ),
        (
            "GET",
            format!("/api/templates/{t}"),
            Value::Null,
            [401, 403, 403, 200, 200, 200, 200],
        ),
        (
            "POST",
            "/api/templates".into(),
            json!({"code": "c", "version": 1, "title": "T", "items": [{"id": "i", "number": "1", "question": "Q"}]}),
            [401, 403, 403, 403, 403, 403, 201],
        ),
        (
            "GET",
            "/api/users".into(),
            Value::Null,
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/api/users".into(),
            json!({"username": "newbie", "role": "reviewer", "password": "long enough pw"}),
            [401, 403, 403, 403, 403, 403, 201],
        ),
        (
            "POST",
            format!("/api/users/{admin_id}/disable"),
            json!({}),
            [401, 403, 403, 403, 403, 403, 409],
        ),
        // X is not live: who may upload reaches the lifecycle check (409), nothing is stored.
        (
            "POST",
            format!("/api/inspections/{x}/evidence?item_id={item}"),
            json!({}),
            [401, 409, 404, 409, 404, 403, 409],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/evidence/{}", uuid::Uuid::new_v4()),
            Value::Null,
            [401, 404, 404, 404, 404, 404, 404],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/ws"),
            Value::Null,
            [401, 400, 404, 400, 404, 400, 400],
        ),
        // The act (X is not finished: reads answer, writes reach the lifecycle check).
        (
            "GET",
            format!("/api/inspections/{x}/act"),
            Value::Null,
            [401, 200, 404, 200, 404, 200, 200],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/act"),
            json!({}),
            [401, 403, 404, 409, 404, 403, 409],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/act.pdf"),
            Value::Null,
            [401, 409, 404, 409, 404, 409, 409],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/act/signatures/official.p7s"),
            Value::Null,
            [401, 409, 404, 409, 404, 409, 409],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/act/signature/begin"),
            json!({"certificate_id": uuid::Uuid::new_v4()}),
            [401, 409, 404, 409, 404, 403, 409],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/act/signature"),
            json!({"certificate_id": uuid::Uuid::new_v4(), "to_be_signed": "", "signature": ""}),
            [401, 409, 404, 409, 404, 403, 409],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/act/refusal"),
            json!({"reason": "нет"}),
            [401, 409, 404, 409, 404, 403, 409],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/bundle.zip"),
            Value::Null,
            [401, 409, 404, 409, 404, 409, 409],
        ),
        // Signing keys: the CA certificate is public; keys belong to the caller.
        (
            "GET",
            "/api/signing/ca.pem".into(),
            Value::Null,
            [200, 200, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/api/signing/certificates".into(),
            Value::Null,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        (
            "POST",
            "/api/signing/certificates".into(),
            json!({"public_key": "MAMCAQE=", "challenge": "c", "proof": "AA==", "inspection_id": x}),
            [401, 400, 404, 400, 404, 403, 400],
        ),
        (
            "POST",
            "/api/signing/challenge".into(),
            json!({}),
            [401, 201, 201, 201, 201, 201, 201],
        ),
        // Durable results access.
        (
            "GET",
            format!("/api/inspections/{x}/results-access"),
            Value::Null,
            [401, 403, 404, 200, 404, 403, 200],
        ),
        (
            "POST",
            format!(
                "/api/inspections/{x}/results-access/{}/revoke",
                uuid::Uuid::new_v4()
            ),
            json!({}),
            [401, 403, 404, 404, 404, 403, 404],
        ),
        (
            "POST",
            "/api/results/accept".into(),
            json!({"token": "not a token"}),
            [404, 404, 404, 404, 404, 404, 404],
        ),
        // Notices (issue 15). Writes carry invalid input, so that allowed callers reach the
        // validation (400) and nothing is stored.
        (
            "GET",
            format!("/api/inspections/{x}/contacts"),
            Value::Null,
            [401, 403, 404, 200, 404, 403, 200],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/contacts"),
            json!({"email": "not an address", "consent": "business"}),
            [401, 403, 404, 400, 404, 403, 400],
        ),
        (
            "POST",
            format!(
                "/api/inspections/{x}/contacts/{}/remove",
                uuid::Uuid::new_v4()
            ),
            json!({}),
            [401, 403, 404, 404, 404, 403, 404],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/deliveries"),
            Value::Null,
            [401, 403, 404, 200, 404, 403, 200],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/reschedule"),
            json!({"scheduled_at": "2020-01-01T00:00:00Z"}),
            [401, 403, 404, 400, 404, 403, 400],
        ),
        (
            "POST",
            "/api/me/contacts".into(),
            json!({"email": "not an address"}),
            [401, 403, 403, 400, 400, 400, 400],
        ),
        (
            "POST",
            format!(
                "/api/inspections/{x}/deliveries/{}/retry",
                uuid::Uuid::new_v4()
            ),
            json!({}),
            [401, 403, 404, 404, 404, 403, 404],
        ),
        (
            "GET",
            "/api/push/key".into(),
            Value::Null,
            [200, 200, 200, 200, 200, 200, 200],
        ),
        (
            "POST",
            "/api/me/push-subscriptions".into(),
            json!({"subscription": {}}),
            [401, 403, 403, 400, 400, 400, 400],
        ),
        // The business's own phone subscribes; staff use /api/me.
        (
            "POST",
            format!("/api/inspections/{x}/push-subscriptions"),
            json!({"subscription": {}}),
            [401, 400, 404, 403, 404, 403, 403],
        ),
        (
            "GET",
            "/api/message-templates".into(),
            Value::Null,
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/api/message-templates".into(),
            json!({"purpose": "notice", "language": "ru", "subject": "", "body": ""}),
            [401, 403, 403, 403, 403, 403, 400],
        ),
        // The device check (issue 15): the business's own phone checks (staff: 403); the
        // staff with access read the results. Bad offers and oversized reports are refused
        // after the access rule, and nothing is stored.
        (
            "GET",
            format!("/api/inspections/{x}/device-check/rtc"),
            Value::Null,
            [401, 200, 404, 403, 404, 403, 403],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/device-check/rtc"),
            json!({"sdp": {"type": "offer", "sdp": "not sdp"}}),
            [401, 400, 404, 403, 404, 403, 403],
        ),
        (
            "PUT",
            format!("/api/inspections/{x}/device-check"),
            json!({"camera": "granted", "microphone": "granted", "location": "denied",
                   "browser": "x".repeat(41), "browser_version": "1"}),
            [401, 400, 404, 403, 404, 403, 403],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/device-checks"),
            Value::Null,
            [401, 403, 404, 200, 404, 200, 200],
        ),
        // What the media peer receives from the publishers (issue 19): staff with access.
        (
            "GET",
            format!("/api/inspections/{x}/uplink"),
            Value::Null,
            [401, 403, 404, 200, 404, 200, 200],
        ),
        // Ratings (issue 16): only the parties rate (X is not finished: they reach the
        // lifecycle check); statistics for staff of a control body and admins (nobody here
        // but the admin has a body); the public page is off by default.
        (
            "GET",
            format!("/api/inspections/{x}/rating"),
            Value::Null,
            [401, 200, 404, 200, 404, 403, 403],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/rating"),
            json!({"criteria_version": 1, "scores": []}),
            [401, 409, 404, 409, 404, 403, 403],
        ),
        (
            "GET",
            "/api/ratings/criteria".into(),
            Value::Null,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        (
            "POST",
            "/api/ratings/criteria/business".into(),
            json!({"criteria": []}),
            [401, 403, 403, 403, 403, 403, 400],
        ),
        (
            "GET",
            "/api/ratings/stats".into(),
            Value::Null,
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            "GET",
            "/api/ratings/stats.csv".into(),
            Value::Null,
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            "GET",
            "/api/ratings/stats.svg".into(),
            Value::Null,
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            "GET",
            "/api/public/ratings".into(),
            Value::Null,
            [404, 404, 404, 404, 404, 404, 404],
        ),
        (
            "POST",
            format!("/api/users/{admin_id}/head"),
            json!({"head": true}),
            [401, 403, 403, 403, 403, 403, 409],
        ),
        // External ids (issue 22): who manages the inspection reaches the validation.
        (
            "PUT",
            format!("/api/inspections/{x}/external-ids"),
            json!({"erknm_number": "12-34", "external_id": null}),
            [401, 403, 404, 400, 404, 403, 400],
        ),
        (
            "GET",
            "/api/inspections?erknm=12".into(),
            Value::Null,
            [401, 400, 400, 400, 400, 400, 400],
        ),
        // API tokens: administrators with a session only.
        (
            "GET",
            "/api/tokens".into(),
            Value::Null,
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/api/tokens".into(),
            json!({"name": "", "scopes": [], "expires_at": "2020-01-01T00:00:00Z"}),
            [401, 403, 403, 403, 403, 403, 400],
        ),
        (
            "POST",
            format!("/api/tokens/{}/revoke", uuid::Uuid::new_v4()),
            json!({}),
            [401, 403, 403, 403, 403, 403, 404],
        ),
        (
            "GET",
            format!("/api/tokens/{}/calls", uuid::Uuid::new_v4()),
            Value::Null,
            [401, 403, 403, 403, 403, 403, 404],
        ),
        // Webhooks (issue 22): administrators only. The new endpoint's URL is refused
        // (https only), so nothing is stored even for the admin.
        (
            "GET",
            "/api/webhooks".into(),
            Value::Null,
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/api/webhooks".into(),
            json!({"url": "http://hooks.example.org/in", "events": ["act.signed"]}),
            [401, 403, 403, 403, 403, 403, 400],
        ),
        (
            "PUT",
            format!("/api/webhooks/{hook}"),
            json!({"description": "СМЭВ"}),
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            "GET",
            format!("/api/webhooks/{hook}/deliveries"),
            Value::Null,
            [401, 403, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            format!(
                "/api/webhooks/{hook}/deliveries/{}/replay",
                uuid::Uuid::new_v4()
            ),
            json!({}),
            [401, 403, 403, 403, 403, 403, 404],
        ),
        (
            "DELETE",
            format!("/api/webhooks/{doomed}"),
            Value::Null,
            [401, 403, 403, 403, 403, 403, 204],
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, body, expected) in &cases {
        for (i, actor) in ACTORS.iter().enumerate() {
            let c = &w.clients[i];
            let before = w.app.dump().await;
            let r = if *method == "GET" {
                c.get(path).await
            } else if *method == "PUT" {
                c.put_json(path, body).await
            } else if *method == "DELETE" {
                c.delete(path).await
            } else {
                c.post_json(path, body).await
            };
            if r.status != expected[i] {
                failures.push(format!(
                    "{method} {path} as {actor}: expected {}, got {} {}",
                    expected[i], r.status, r.text
                ));
            }
            if r.status >= 400 {
                assert!(
                    r.body["error"]["code"].is_string(),
                    "{method} {path} as {actor}: error shape: {}",
                    r.text
                );
                if w.app.dump().await != before {
                    failures.push(format!(
                        "{method} {path} as {actor}: a refused request changed stored rows"
                    ));
                }
            }
            if !sees_x(actor) && (r.text.contains(x.as_str()) || r.text.contains(&w.x_name)) {
                failures.push(format!(
                    "{method} {path} as {actor}: answer leaks inspection X: {}",
                    r.text
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix failures:\n{}",
        failures.join("\n")
    );
    w.app.stop().await;
}

#[tokio::test]
async fn lists_contain_only_visible_inspections() {
    let w = world().await;
    for (i, actor) in ACTORS.iter().enumerate().skip(1) {
        let r = w.clients[i].get("/api/inspections").await;
        let ids: Vec<&str> = r.body["inspections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids.contains(&w.x.as_str()),
            sees_x(actor),
            "{actor} list: {ids:?}"
        );
        let expected_len = match *actor {
            "guest_x" | "guest_y" | "inspector_a" | "inspector_b" => 1,
            _ => 2,
        };
        assert_eq!(ids.len(), expected_len, "{actor} list: {ids:?}");
    }
    w.app.stop().await;
}

/// Callers of the organisation and prescription endpoints, in the column order below.
const ORG_ACTORS: [&str; 7] = [
    "anonymous",
    "business_x",
    "business_y",
    "inspector_a",
    "inspector_b",
    "reviewer",
    "admin",
];

#[tokio::test]
async fn prescription_endpoints_check_every_caller() {
    use inspector_tests::presc::{
        finished_with_two_violations, issue, representative, run_with_two_violations, send_proof,
        template, trace, SITE,
    };
    let app = spawn_app().await;
    // X: inspector_a's finished inspection of one organisation, with its prescription and a
    // proof; Y: inspector_b's, of another organisation (another INN).
    let x = finished_with_two_violations(&app, "inspector_a").await;
    let inspector_b = app.staff("inspector_b", Role::Inspector).await;
    let t = template(&inspector_b).await;
    let mut body = inspection_body(Some(&t));
    body["business"]["inn"] = json!("7736207543");
    body["business"]["name"] = json!("ИП Лютиков");
    let y = run_with_two_violations(inspector_b, &body).await;
    let p = issue(&x).await["id"].as_str().unwrap().to_string();
    let business_x = representative(&app, &x.inspector, &x.id).await;
    let business_y = representative(&app, &y.inspector, &y.id).await;
    let proof = send_proof(
        &business_x,
        &p,
        "1",
        Some(&trace(&[(SITE.0, SITE.1, 0)])),
        inspector_tests::images::picture("jpg", 320, 240, 0),
    )
    .await;
    assert_eq!(proof.status, 201, "{}", proof.text);
    let proof_id = proof.body["proof"]["id"].as_str().unwrap().to_string();
    let reviewer = app.staff("reviewer", Role::Reviewer).await;
    let admin = app.staff("admin", Role::Admin).await;
    let clients = [
        app.anonymous(),
        business_x,
        business_y,
        x.inspector,
        y.inspector,
        reviewer,
        admin,
    ];
    let xid = &x.id;
    let random = uuid::Uuid::new_v4();
    let cases: Vec<(&str, String, Value, [u16; 7])> = vec![
        (
            "GET",
            "/api/auth/me".into(),
            Value::Null,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        // The one access rule, extended: a business sees its own organisation's inspections.
        (
            "GET",
            "/api/inspections".into(),
            Value::Null,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            format!("/api/inspections/{xid}"),
            Value::Null,
            [401, 200, 404, 200, 404, 200, 200],
        ),
        (
            "GET",
            format!("/api/inspections/{xid}/act"),
            Value::Null,
            [401, 200, 404, 200, 404, 200, 200],
        ),
        // A representative reads; it does not take part live.
        (
            "POST",
            format!("/api/inspections/{xid}/evidence?item_id=x"),
            json!({}),
            [401, 403, 404, 400, 404, 403, 400],
        ),
        (
            "GET",
            format!("/api/inspections/{xid}/ws"),
            Value::Null,
            [401, 403, 404, 400, 404, 400, 400],
        ),
        // Prescriptions.
        (
            "GET",
            "/api/prescriptions".into(),
            Value::Null,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/api/prescriptions?filter=bogus".into(),
            Value::Null,
            [401, 400, 400, 400, 400, 400, 400],
        ),
        (
            "GET",
            format!("/api/prescriptions/{p}"),
            Value::Null,
            [401, 200, 404, 200, 404, 200, 200],
        ),
        (
            "GET",
            format!("/api/prescriptions/{random}"),
            Value::Null,
            [401, 404, 404, 404, 404, 404, 404],
        ),
        (
            "GET",
            format!("/api/prescriptions/{p}/log.jsonl"),
            Value::Null,
            [401, 200, 404, 200, 404, 200, 200],
        ),
        (
            "GET",
            format!("/api/prescriptions/{p}/document.pdf"),
            Value::Null,
            [401, 200, 404, 200, 404, 200, 200],
        ),
        (
            "GET",
            format!("/api/prescriptions/{p}/proofs/{proof_id}"),
            Value::Null,
            [401, 200, 404, 200, 404, 200, 200],
        ),
        (
            "GET",
            format!("/api/prescriptions/{p}/proofs/{random}"),
            Value::Null,
            [401, 404, 404, 404, 404, 404, 404],
        ),
        // Allowed callers reach the rules: a JSON body is not a photo; item 2 has no proof.
        (
            "POST",
            format!("/api/prescriptions/{p}/items/1/proofs"),
            json!({}),
            [401, 400, 404, 403, 404, 403, 403],
        ),
        (
            "POST",
            format!("/api/prescriptions/{p}/items/2/decision"),
            json!({"decision": "accept"}),
            [401, 403, 404, 409, 404, 403, 409],
        ),
        (
            "POST",
            format!("/api/inspections/{xid}/prescription"),
            json!({"items": []}),
            [401, 403, 404, 400, 404, 403, 400],
        ),
        // Organisations.
        (
            "POST",
            format!("/api/inspections/{xid}/business-links"),
            json!({}),
            [401, 403, 404, 201, 404, 403, 201],
        ),
        (
            "POST",
            format!("/api/business-links/{random}/revoke"),
            json!({}),
            [401, 403, 403, 404, 404, 404, 404],
        ),
        (
            "POST",
            "/api/business/sign-in".into(),
            json!({"token": "not a token"}),
            [404, 404, 404, 404, 404, 404, 404],
        ),
        (
            "GET",
            "/api/control-bodies".into(),
            Value::Null,
            [401, 403, 403, 200, 200, 200, 200],
        ),
        (
            "POST",
            "/api/control-bodies".into(),
            json!({"name": "Роспотребнадзор", "region": "77", "control_kind": "санитарный"}),
            [401, 403, 403, 403, 403, 403, 201],
        ),
        (
            "POST",
            format!("/api/users/{random}/control-body"),
            json!({"control_body_id": null}),
            [401, 403, 403, 403, 403, 403, 404],
        ),
    ];
    let sees_x = |actor: &str| matches!(actor, "business_x" | "inspector_a" | "reviewer" | "admin");
    let mut failures = Vec::new();
    for (method, path, body, expected) in &cases {
        for (i, actor) in ORG_ACTORS.iter().enumerate() {
            let c = &clients[i];
            let before = app.dump_all().await;
            let r = if *method == "GET" {
                c.get(path).await
            } else {
                c.post_json(path, body).await
            };
            if r.status != expected[i] {
                failures.push(format!(
                    "{method} {path} as {actor}: expected {}, got {} {}",
                    expected[i], r.status, r.text
                ));
            }
            if r.status >= 400 {
                if !r.body["error"]["code"].is_string() {
                    failures.push(format!(
                        "{method} {path} as {actor}: error shape: {}",
                        r.text
                    ));
                }
                if app.dump_all().await != before {
                    failures.push(format!(
                        "{method} {path} as {actor}: a refused request changed stored rows"
                    ));
                }
            }
            if !sees_x(actor) && (r.text.contains(p.as_str()) || r.text.contains(xid.as_str())) {
                failures.push(format!(
                    "{method} {path} as {actor}: answer leaks X: {}",
                    r.text
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix failures:\n{}",
        failures.join("\n")
    );
    app.stop().await;
}

/// Bearer callers, in the column order of the token matrix below: an unknown token, an
/// expired one and a revoked one (each with every scope), one token per scope, and a token
/// with every scope of another control body.
const TOKEN_ACTORS: [&str; 7] = [
    "bogus",
    "expired",
    "revoked",
    "read",
    "write",
    "templates",
    "other_body",
];

const ALL_SCOPES: [&str; 3] = ["results:read", "inspections:write", "templates:write"];

/// Creates an API token as `admin` and answers its id and secret.
pub async fn make_token(
    admin: &Client,
    scopes: &[&str],
    control_body: Option<&str>,
) -> (String, String) {
    let r = admin
        .post_json(
            "/api/tokens",
            &json!({
                "name": format!("система {}", scopes.join("+")),
                "scopes": scopes,
                "expires_at": (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339(),
                "control_body_id": control_body,
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["token"]["id"].as_str().unwrap().to_string(),
        r.body["secret"].as_str().unwrap().to_string(),
    )
}

/// Every endpoint with a bearer token of each scope (and an unknown, expired and revoked one,
/// and one of another control body): the scopes are enforced on every route, the browser-only
/// routes refuse every token, a token sees only its control body's inspections, a refusal
/// changes no stored row, and nothing of X leaks to a token that may not see it.
#[tokio::test]
async fn every_endpoint_checks_every_token() {
    let w = world().await;
    let admin = &w.clients[6];
    let x = &w.x;
    let t = &w.template;
    let admin_id = admin.get("/api/auth/me").await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let inspector_a_id = w.clients[3].get("/api/auth/me").await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let item = w.clients[3]
        .get(&format!("/api/inspections/{x}"))
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = admin
        .post_json(
            "/api/control-bodies",
            &json!({"name": "Другой орган", "region": "78", "control_kind": "пожарный"}),
        )
        .await;
    assert_eq!(body.status, 201, "{}", body.text);
    let other_body = body.body["id"].as_str().unwrap().to_string();
    let (expired_id, expired) = make_token(admin, &ALL_SCOPES, None).await;
    // Expired since a second: the API refuses to make one that is.
    sqlx::query("UPDATE api_tokens SET expires_at = $1 WHERE id = $2")
        .bind(chrono::Utc::now().timestamp_micros() - 1_000_000)
        .bind(&expired_id)
        .execute(&w.app.db)
        .await
        .unwrap();
    let (revoked_id, revoked) = make_token(admin, &ALL_SCOPES, None).await;
    let r = admin
        .post_json(&format!("/api/tokens/{revoked_id}/revoke"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let read = make_token(admin, &["results:read"], None).await.1;
    let write = make_token(admin, &["inspections:write"], None).await.1;
    let templates = make_token(admin, &["templates:write"], None).await.1;
    let other = make_token(admin, &ALL_SCOPES, Some(&other_body)).await.1;
    let clients: Vec<Client> = [
        "insp_not-a-token".to_string(),
        expired,
        revoked,
        read,
        write,
        templates,
        other,
    ]
    .iter()
    .map(|s| w.app.bearer(s))
    .collect();
    let random = uuid::Uuid::new_v4();
    // Refused by route (browser-only, or not for tokens at all): 401 for the three bad tokens,
    // 403 `token_not_allowed` for every valid one.
    const NO: [u16; 7] = [401, 401, 401, 403, 403, 403, 403];
    let with_inspector = {
        let mut b = inspection_body(None);
        b["inspector_id"] = json!(inspector_a_id);
        b
    };
    // (method, path, body, expected status per token in TOKEN_ACTORS order)
    let cases: Vec<(&str, String, Value, [u16; 7])> = vec![
        ("GET", "/api/auth/me".into(), Value::Null, NO),
        (
            "POST",
            "/api/auth/login".into(),
            json!({"username": "admin", "password": "x"}),
            NO,
        ),
        ("POST", "/api/auth/logout".into(), json!({}), NO),
        (
            "GET",
            "/api/openapi.json".into(),
            Value::Null,
            [401, 401, 401, 200, 200, 200, 200],
        ),
        // Inspections: read by `results:read` and `inspections:write`, within the body.
        (
            "GET",
            "/api/inspections".into(),
            Value::Null,
            [401, 401, 401, 200, 200, 403, 200],
        ),
        (
            "GET",
            format!("/api/inspections?erknm=1"),
            Value::Null,
            [401, 401, 401, 400, 400, 403, 400],
        ),
        (
            "GET",
            format!("/api/inspections/{x}"),
            Value::Null,
            [401, 401, 401, 200, 200, 403, 404],
        ),
        // A token names the responsible inspector (one of its body).
        (
            "POST",
            "/api/inspections".into(),
            inspection_body(None),
            [401, 401, 401, 403, 400, 403, 400],
        ),
        (
            "POST",
            "/api/inspections".into(),
            with_inspector,
            [401, 401, 401, 403, 201, 403, 400],
        ),
        (
            "PUT",
            format!("/api/inspections/{x}/external-ids"),
            json!({"erknm_number": "abc", "external_id": null}),
            [401, 401, 401, 403, 400, 403, 404],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/transition"),
            json!({"to": "signed"}),
            [401, 401, 401, 403, 409, 403, 404],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/reschedule"),
            json!({"scheduled_at": "2020-01-01T00:00:00Z"}),
            [401, 401, 401, 403, 400, 403, 404],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/invitations"),
            Value::Null,
            [401, 401, 401, 403, 200, 403, 404],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/invitations"),
            json!({}),
            [401, 401, 401, 403, 201, 403, 404],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/invitations/{random}/revoke"),
            json!({}),
            [401, 401, 401, 403, 404, 403, 404],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/contacts"),
            Value::Null,
            [401, 401, 401, 403, 200, 403, 404],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/contacts"),
            json!({"email": "not an address", "consent": "business"}),
            [401, 401, 401, 403, 400, 403, 404],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/contacts/{random}/remove"),
            json!({}),
            [401, 401, 401, 403, 404, 403, 404],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/deliveries"),
            Value::Null,
            [401, 401, 401, 403, 200, 403, 404],
        ),
        (
            "POST",
            format!("/api/inspections/{x}/deliveries/{random}/retry"),
            json!({}),
            NO,
        ),
        // Results: `results:read` (X is not finished: no recording yet, 409).
        (
            "GET",
            format!("/api/inspections/{x}/participants"),
            Value::Null,
            [401, 401, 401, 200, 403, 403, 404],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/track"),
            Value::Null,
            [401, 401, 401, 200, 403, 403, 404],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/state"),
            Value::Null,
            [401, 401, 401, 200, 403, 403, 404],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/events.jsonl"),
            Value::Null,
            [401, 401, 401, 200, 403, 403, 404],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/recording/manifest"),
            Value::Null,
            [401, 401, 401, 409, 403, 403, 404],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/recording/chapters.vtt"),
            Value::Null,
            [401, 401, 401, 409, 403, 403, 404],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/act"),
            Value::Null,
            [401, 401, 401, 200, 403, 403, 404],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/act.pdf"),
            Value::Null,
            [401, 401, 401, 409, 403, 403, 404],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/act/signatures/official.p7s"),
            Value::Null,
            [401, 401, 401, 409, 403, 403, 404],
        ),
        (
            "GET",
            format!("/api/inspections/{x}/device-checks"),
            Value::Null,
            [401, 401, 401, 200, 403, 403, 404],
        ),
        (
            "GET",
            "/api/prescriptions".into(),
            Value::Null,
            [401, 401, 401, 200, 403, 403, 200],
        ),
        (
            "GET",
            format!("/api/prescriptions/{random}"),
            Value::Null,
            [401, 401, 401, 404, 403, 403, 404],
        ),
        (
            "GET",
            format!("/api/prescriptions/{random}/log.jsonl"),
            Value::Null,
            [401, 401, 401, 404, 403, 403, 404],
        ),
        (
            "GET",
            format!("/api/prescriptions/{random}/document.pdf"),
            Value::Null,
            [401, 401, 401, 404, 403, 403, 404],
        ),
        // Templates: read by any scope, written by `templates:write` (templates are shared by
        // the installation: the second writer finds the code taken).
        (
            "GET",
            "/api/templates".into(),
            Value::Null,
            [401, 401, 401, 200, 200, 200, 200],
        ),
        (
            "GET",
            format!("/api/templates/{t}"),
            Value::Null,
            [401, 401, 401, 200, 200, 200, 200],
        ),
        (
            "POST",
            "/api/templates".into(),
            json!({"code": "tok", "version": 1, "title": "T", "items": [{"id": "i", "number": "1", "question": "Q"}]}),
            [401, 401, 401, 403, 403, 201, 409],
        ),
        // Public ones answer a valid token too.
        (
            "GET",
            "/api/signing/ca.pem".into(),
            Value::Null,
            [401, 401, 401, 200, 200, 200, 200],
        ),
        // Browser-only, or a person's own act: never a token.
        ("GET", format!("/api/inspections/{x}/ws"), Value::Null, NO),
        (
            "POST",
            format!("/api/inspections/{x}/queue"),
            json!({"ops": []}),
            NO,
        ),
        (
            "POST",
            format!("/api/inspections/{x}/evidence?item_id={item}"),
            json!({}),
            NO,
        ),
        (
            "GET",
            format!("/api/inspections/{x}/evidence/{random}"),
            Value::Null,
            NO,
        ),
        (
            "GET",
            format!("/api/inspections/{x}/recording"),
            Value::Null,
            NO,
        ),
        (
            "GET",
            format!("/api/inspections/{x}/recording/tracks/2"),
            Value::Null,
            NO,
        ),
        (
            "GET",
            format!("/api/inspections/{x}/bundle.zip"),
            Value::Null,
            NO,
        ),
        ("POST", format!("/api/inspections/{x}/act"), json!({}), NO),
        (
            "POST",
            format!("/api/inspections/{x}/act/signature/begin"),
            json!({"certificate_id": random}),
            NO,
        ),
        (
            "POST",
            format!("/api/inspections/{x}/act/signature"),
            json!({"certificate_id": random, "to_be_signed": "", "signature": ""}),
            NO,
        ),
        (
            "POST",
            format!("/api/inspections/{x}/act/refusal"),
            json!({"reason": "нет"}),
            NO,
        ),
        ("GET", "/api/signing/certificates".into(), Value::Null, NO),
        (
            "POST",
            "/api/signing/certificates".into(),
            json!({"public_key": "MAMCAQE=", "challenge": "c", "proof": "AA==", "inspection_id": x}),
            NO,
        ),
        ("POST", "/api/signing/challenge".into(), json!({}), NO),
        (
            "POST",
            "/api/invitations/accept".into(),
            json!({"token": "not a token"}),
            NO,
        ),
        (
            "GET",
            format!("/api/inspections/{x}/results-access"),
            Value::Null,
            NO,
        ),
        (
            "POST",
            format!("/api/inspections/{x}/results-access/{random}/revoke"),
            json!({}),
            NO,
        ),
        (
            "POST",
            "/api/results/accept".into(),
            json!({"token": "not a token"}),
            NO,
        ),
        (
            "POST",
            "/api/me/contacts".into(),
            json!({"email": "not an address"}),
            NO,
        ),
        ("GET", "/api/push/key".into(), Value::Null, NO),
        (
            "POST",
            "/api/me/push-subscriptions".into(),
            json!({"subscription": {}}),
            NO,
        ),
        (
            "POST",
            format!("/api/inspections/{x}/push-subscriptions"),
            json!({"subscription": {}}),
            NO,
        ),
        ("GET", "/api/message-templates".into(), Value::Null, NO),
        (
            "POST",
            "/api/message-templates".into(),
            json!({"purpose": "notice", "language": "ru", "subject": "", "body": ""}),
            NO,
        ),
        (
            "GET",
            format!("/api/inspections/{x}/uplink"),
            Value::Null,
            NO,
        ),
        (
            "GET",
            format!("/api/inspections/{x}/device-check/rtc"),
            Value::Null,
            NO,
        ),
        (
            "POST",
            format!("/api/inspections/{x}/device-check/rtc"),
            json!({"sdp": {"type": "offer", "sdp": "x"}}),
            NO,
        ),
        (
            "PUT",
            format!("/api/inspections/{x}/device-check"),
            json!({}),
            NO,
        ),
        (
            "GET",
            format!("/api/inspections/{x}/rating"),
            Value::Null,
            NO,
        ),
        (
            "POST",
            format!("/api/inspections/{x}/rating"),
            json!({"criteria_version": 1, "scores": []}),
            NO,
        ),
        ("GET", "/api/ratings/criteria".into(), Value::Null, NO),
        (
            "POST",
            "/api/ratings/criteria/business".into(),
            json!({"criteria": []}),
            NO,
        ),
        ("GET", "/api/ratings/stats".into(), Value::Null, NO),
        ("GET", "/api/ratings/stats.csv".into(), Value::Null, NO),
        ("GET", "/api/ratings/stats.svg".into(), Value::Null, NO),
        ("GET", "/api/public/ratings".into(), Value::Null, NO),
        ("GET", "/api/public/ratings.svg".into(), Value::Null, NO),
        ("GET", "/api/users".into(), Value::Null, NO),
        (
            "POST",
            "/api/users".into(),
            json!({"username": "newbie", "role": "reviewer", "password": "long enough pw"}),
            NO,
        ),
        (
            "POST",
            format!("/api/users/{admin_id}/disable"),
            json!({}),
            NO,
        ),
        (
            "POST",
            format!("/api/users/{admin_id}/head"),
            json!({"head": true}),
            NO,
        ),
        (
            "POST",
            format!("/api/users/{random}/control-body"),
            json!({"control_body_id": null}),
            NO,
        ),
        ("GET", "/api/control-bodies".into(), Value::Null, NO),
        (
            "POST",
            "/api/control-bodies".into(),
            json!({"name": "Орган", "region": "77", "control_kind": "санитарный"}),
            NO,
        ),
        (
            "POST",
            format!("/api/inspections/{x}/prescription"),
            json!({"items": []}),
            NO,
        ),
        (
            "POST",
            format!("/api/prescriptions/{random}/items/1/proofs"),
            json!({}),
            NO,
        ),
        (
            "POST",
            format!("/api/prescriptions/{random}/items/1/decision"),
            json!({"decision": "accept"}),
            NO,
        ),
        (
            "GET",
            format!("/api/prescriptions/{random}/proofs/{random}"),
            Value::Null,
            NO,
        ),
        (
            "POST",
            format!("/api/inspections/{x}/business-links"),
            json!({}),
            NO,
        ),
        (
            "POST",
            format!("/api/business-links/{random}/revoke"),
            json!({}),
            NO,
        ),
        (
            "POST",
            "/api/business/sign-in".into(),
            json!({"token": "not a token"}),
            NO,
        ),
        // Tokens do not manage tokens.
        ("GET", "/api/tokens".into(), Value::Null, NO),
        (
            "POST",
            "/api/tokens".into(),
            json!({"name": "n", "scopes": ["results:read"], "expires_at": "2099-01-01T00:00:00Z"}),
            NO,
        ),
        (
            "POST",
            format!("/api/tokens/{revoked_id}/revoke"),
            json!({}),
            NO,
        ),
        (
            "GET",
            format!("/api/tokens/{revoked_id}/calls"),
            Value::Null,
            NO,
        ),
        // Webhooks are an administrator's, and sign-in is a person's: never a token's.
        ("GET", "/api/webhooks".into(), Value::Null, NO),
        (
            "POST",
            "/api/webhooks".into(),
            json!({"url": "https://hooks.example.org/in", "events": ["act.signed"]}),
            NO,
        ),
        (
            "PUT",
            format!("/api/webhooks/{random}"),
            json!({"description": "x"}),
            NO,
        ),
        ("DELETE", format!("/api/webhooks/{random}"), Value::Null, NO),
        (
            "GET",
            format!("/api/webhooks/{random}/deliveries"),
            Value::Null,
            NO,
        ),
        (
            "POST",
            format!("/api/webhooks/{random}/deliveries/{random}/replay"),
            json!({}),
            NO,
        ),
        ("GET", "/api/auth/methods".into(), Value::Null, NO),
        ("GET", "/api/auth/oidc/start".into(), Value::Null, NO),
        (
            "GET",
            "/api/auth/oidc/callback?code=c&state=s".into(),
            Value::Null,
            NO,
        ),
        // No such route: 404 for a valid token (the fallback), 401 for a bad one.
        (
            "GET",
            "/api/nothing-here".into(),
            Value::Null,
            [401, 401, 401, 404, 404, 404, 404],
        ),
    ];
    // Which tokens may see inspection X (the others must get nothing of it).
    let sees_x = |actor: &str| matches!(actor, "read" | "write");
    let mut failures = Vec::new();
    for (method, path, body, expected) in &cases {
        for (i, actor) in TOKEN_ACTORS.iter().enumerate() {
            let c = &clients[i];
            let before = w.app.dump().await;
            let r = match *method {
                "GET" => c.get(path).await,
                "PUT" => c.put_json(path, body).await,
                "DELETE" => c.delete(path).await,
                _ => c.post_json(path, body).await,
            };
            if r.status != expected[i] {
                failures.push(format!(
                    "{method} {path} as {actor}: expected {}, got {} {}",
                    expected[i],
                    r.status,
                    r.text.chars().take(300).collect::<String>()
                ));
            }
            if r.status >= 400 {
                if !r.body["error"]["code"].is_string() {
                    failures.push(format!(
                        "{method} {path} as {actor}: error shape: {}",
                        r.text
                    ));
                }
                let want = match (r.status, actor) {
                    (401, &"bogus") => Some("token_invalid"),
                    (401, &"expired") => Some("token_expired"),
                    (401, &"revoked") => Some("token_revoked"),
                    (403, _) if expected == &NO => Some("token_not_allowed"),
                    _ => None,
                };
                if let Some(code) = want {
                    if r.code() != code {
                        failures.push(format!(
                            "{method} {path} as {actor}: code {} instead of {code}",
                            r.code()
                        ));
                    }
                }
                if r.status == 403 && expected != &NO && r.code() != "token_scope" {
                    failures.push(format!(
                        "{method} {path} as {actor}: 403 with {} instead of token_scope",
                        r.code()
                    ));
                }
                if w.app.dump().await != before {
                    failures.push(format!(
                        "{method} {path} as {actor}: a refused request changed stored rows"
                    ));
                }
            }
            if !sees_x(actor) && (r.text.contains(x.as_str()) || r.text.contains(&w.x_name)) {
                failures.push(format!(
                    "{method} {path} as {actor}: answer leaks inspection X: {}",
                    r.text
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "token authorization matrix failures:\n{}",
        failures.join("\n")
    );
    w.app.stop().await;
}

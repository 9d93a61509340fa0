//! The OpenAPI document says what the handlers really answer: real responses of the main
//! endpoints are validated against the schemas the served `/api/openapi.json` gives for their
//! path, method and status (JSON Schema 2020-12, formats checked, objects closed so an
//! undocumented field fails too).

use inspector_tests::{spawn_app, Answer, Role};
use serde_json::{json, Value};

/// The components an `allOf` combines (a `#[serde(flatten)]`): they must stay open, since
/// each branch sees only its own properties.
fn combined(v: &Value, out: &mut std::collections::HashSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(parts)) = m.get("allOf") {
                for p in parts {
                    if let Some(r) = p["$ref"].as_str() {
                        out.insert(r.rsplit('/').next().unwrap_or(r).to_string());
                    }
                }
            }
            m.values().for_each(|x| combined(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| combined(x, out)),
        _ => {}
    }
}

/// Closes every object schema, so an undocumented field fails: `additionalProperties: false`
/// where the properties are listed, `unevaluatedProperties: false` over an `allOf`.
fn close_objects(v: &mut Value, open: &std::collections::HashSet<String>) {
    match v {
        Value::Object(m) => {
            if m.contains_key("allOf") {
                m.insert("unevaluatedProperties".into(), json!(false));
                for x in m.values_mut() {
                    if let Value::Array(parts) = x {
                        // The branches stay open: the parent judges what is left over.
                        for p in parts {
                            if let Value::Object(pm) = p {
                                for (k, y) in pm.iter_mut() {
                                    if k == "properties" {
                                        close_objects(y, open);
                                    }
                                }
                            }
                        }
                    }
                }
                return;
            }
            if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), json!(false));
            }
            for (k, x) in m.iter_mut() {
                if k == "schemas" {
                    // Components: skip the ones an allOf combines.
                    if let Value::Object(schemas) = x {
                        for (name, schema) in schemas.iter_mut() {
                            if !open.contains(name) {
                                close_objects(schema, open);
                            }
                        }
                    }
                } else {
                    close_objects(x, open);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| close_objects(x, open)),
        _ => {}
    }
}

pub(crate) struct Spec {
    pub(crate) doc: Value,
}

impl Spec {
    /// Validates an answer against the documented schema of `method path` for its status.
    pub(crate) fn check(&self, method: &str, path: &str, answer: &Answer) {
        let status = answer.status.to_string();
        let response = &self.doc["paths"][path][method]["responses"][&status];
        assert!(
            response.is_object(),
            "{method} {path} answered {status}, which the document does not list: {}",
            answer.text
        );
        let schema = &response["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "{method} {path} {status} has no JSON schema in the document"
        );
        let mut root = schema.clone();
        // The components travel with the schema so that `#/components/schemas/…` resolves.
        root["components"] = self.doc["components"].clone();
        let mut open = std::collections::HashSet::new();
        combined(&root, &mut open);
        close_objects(&mut root, &open);
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("{method} {path} {status}: bad schema: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(&answer.body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status} does not match its schema:\n{}\nbody: {}",
            errors.join("\n"),
            answer.text
        );
    }
}

#[tokio::test]
async fn real_answers_match_the_generated_document() {
    let app = spawn_app().await;
    let anonymous = app.anonymous();
    let spec = Spec {
        doc: anonymous.get("/api/openapi.json").await.body,
    };
    // The document must say the list endpoints answer objects (the bug this test guards).
    assert_eq!(
        spec.doc["paths"]["/api/inspections"]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"]["$ref"],
        "#/components/schemas/InspectionList"
    );

    let admin = app.staff("admin", Role::Admin).await;
    spec.check("get", "/api/auth/me", &admin.get("/api/auth/me").await);
    let login = anonymous
        .post_json(
            "/api/auth/login",
            &json!({"username": "admin", "password": "a long test password"}),
        )
        .await;
    spec.check("post", "/api/auth/login", &login);
    let wrong = anonymous
        .post_json(
            "/api/auth/login",
            &json!({"username": "admin", "password": "wrong"}),
        )
        .await;
    spec.check("post", "/api/auth/login", &wrong);
    spec.check("get", "/api/users", &admin.get("/api/users").await);
    let created = admin
        .post_json(
            "/api/users",
            &json!({"username": "insp", "password": "another long password", "role": "inspector"}),
        )
        .await;
    spec.check("post", "/api/users", &created);

    let templates = admin.get("/api/templates").await;
    spec.check("get", "/api/templates", &templates);
    let t = templates.body["templates"][0]["id"]
        .as_str()
        .expect("a template")
        .to_string();
    spec.check(
        "get",
        "/api/templates/{id}",
        &admin.get(&format!("/api/templates/{t}")).await,
    );

    let insp = app.staff("inspector1", Role::Inspector).await;
    let r = insp
        .post_json(
            "/api/inspections",
            &inspector_tests::inspection_body(Some(&t)),
        )
        .await;
    spec.check("post", "/api/inspections", &r);
    let id = r.body["id"].as_str().expect("id").to_string();
    let bad = insp
        .post_json("/api/inspections", &json!({"kind": "control"}))
        .await;
    spec.check("post", "/api/inspections", &bad);
    spec.check(
        "get",
        "/api/inspections",
        &insp.get("/api/inspections").await,
    );
    spec.check(
        "get",
        "/api/inspections",
        &insp.get("/api/inspections?status=bogus").await,
    );
    spec.check(
        "get",
        "/api/inspections/{id}",
        &insp.get(&format!("/api/inspections/{id}")).await,
    );
    spec.check(
        "get",
        "/api/inspections/{id}",
        &insp
            .get(&format!("/api/inspections/{}", uuid::Uuid::new_v4()))
            .await,
    );

    let inv = insp
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    spec.check("post", "/api/inspections/{id}/invitations", &inv);
    spec.check(
        "get",
        "/api/inspections/{id}/invitations",
        &insp
            .get(&format!("/api/inspections/{id}/invitations"))
            .await,
    );
    let mut business = app.anonymous();
    let accepted = business
        .accept(inv.body["token"].as_str().expect("token"))
        .await;
    spec.check("post", "/api/invitations/accept", &accepted);

    let path = format!("/api/inspections/{id}/transition");
    let started = insp.post_json(&path, &json!({"to": "live"})).await;
    spec.check("post", "/api/inspections/{id}/transition", &started);
    let again = insp.post_json(&path, &json!({"to": "live"})).await;
    assert_eq!(again.status, 409);
    spec.check("post", "/api/inspections/{id}/transition", &again);
    let cancelled = insp
        .post_json(
            &path,
            &json!({"to": "cancelled", "reason": "technical_failure", "note": "нет связи"}),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    spec.check("post", "/api/inspections/{id}/transition", &cancelled);

    spec.check(
        "get",
        "/api/inspections/{id}/participants",
        &insp
            .get(&format!("/api/inspections/{id}/participants"))
            .await,
    );
    spec.check(
        "get",
        "/api/inspections/{id}/state",
        &insp.get(&format!("/api/inspections/{id}/state")).await,
    );
    app.stop().await;
}

/// The act's, signing's and results' endpoints answer what the document says, in success and
/// refusal: a finished inspection's act read, formed, begun, signed, refused, and the
/// business's durable link listed and opened.
#[tokio::test]
async fn act_answers_match_the_generated_document() {
    use inspector_tests::act::{finished_inspection, form_act, register, sign, BrowserKey};
    let app = spawn_app().await;
    let spec = Spec {
        doc: app.anonymous().get("/api/openapi.json").await.body,
    };
    let f = finished_inspection(&app).await;
    let id = f.id.clone();
    let act = format!("/api/inspections/{id}/act");

    spec.check(
        "get",
        "/api/inspections/{id}/act",
        &f.inspector.get(&act).await,
    );
    let stranger = app.anonymous().get(&act).await;
    spec.check("get", "/api/inspections/{id}/act", &stranger);
    let challenge = f
        .inspector
        .post_json("/api/signing/challenge", &json!({}))
        .await;
    spec.check("post", "/api/signing/challenge", &challenge);
    let key = BrowserKey::new();
    let cert = register(&f.inspector, &key, json!({})).await;
    spec.check("post", "/api/signing/certificates", &cert);
    let cert_id = cert.body["id"]
        .as_str()
        .expect("certificate id")
        .to_string();
    let bad_key = f
        .inspector
        .post_json(
            "/api/signing/certificates",
            &json!({"public_key": "AAAA", "challenge": "x", "proof": "AAAA"}),
        )
        .await;
    spec.check("post", "/api/signing/certificates", &bad_key);
    spec.check(
        "get",
        "/api/signing/certificates",
        &f.inspector.get("/api/signing/certificates").await,
    );

    let begin_path = format!("{act}/signature/begin");
    let early = f
        .inspector
        .post_json(&begin_path, &json!({"certificate_id": cert_id}))
        .await;
    assert_eq!(early.status, 409, "{}", early.text);
    spec.check("post", "/api/inspections/{id}/act/signature/begin", &early);
    spec.check(
        "get",
        "/api/inspections/{id}/act.pdf",
        &f.inspector.get(&format!("{act}.pdf")).await,
    );

    let formed = form_act(&f.inspector, &id).await;
    assert_eq!(formed.status, 201, "{}", formed.text);
    spec.check("post", "/api/inspections/{id}/act", &formed);
    let twice = f.inspector.post_json(&act, &json!({})).await;
    assert_eq!(twice.status, 409, "{}", twice.text);
    spec.check("post", "/api/inspections/{id}/act", &twice);

    let begin = f
        .inspector
        .post_json(&begin_path, &json!({"certificate_id": cert_id}))
        .await;
    assert_eq!(begin.status, 200, "{}", begin.text);
    spec.check("post", "/api/inspections/{id}/act/signature/begin", &begin);
    let forged = f
        .inspector
        .post_json(
            &format!("{act}/signature"),
            &json!({"certificate_id": cert_id, "to_be_signed": begin.body["to_be_signed"],
                    "signature": key.sign_b64(b"something else")}),
        )
        .await;
    assert_eq!(forged.status, 400, "{}", forged.text);
    spec.check("post", "/api/inspections/{id}/act/signature", &forged);
    let signed = sign(&f.inspector, &id, &cert_id, &key).await;
    assert_eq!(signed.status, 201, "{}", signed.text);
    spec.check("post", "/api/inspections/{id}/act/signature", &signed);

    let refusal = format!("{act}/refusal");
    let empty = f
        .business
        .post_json(&refusal, &json!({"reason": "  "}))
        .await;
    assert_eq!(empty.status, 400, "{}", empty.text);
    spec.check("post", "/api/inspections/{id}/act/refusal", &empty);
    let refused = f
        .business
        .post_json(&refusal, &json!({"reason": "Не согласны с пунктом 5"}))
        .await;
    assert_eq!(refused.status, 201, "{}", refused.text);
    spec.check("post", "/api/inspections/{id}/act/refusal", &refused);
    let again = f
        .business
        .post_json(&refusal, &json!({"reason": "Ещё раз"}))
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    spec.check("post", "/api/inspections/{id}/act/refusal", &again);
    spec.check(
        "get",
        "/api/inspections/{id}/act",
        &f.business.get(&act).await,
    );

    spec.check(
        "get",
        "/api/inspections/{id}/results-access",
        &f.inspector
            .get(&format!("/api/inspections/{id}/results-access"))
            .await,
    );
    let token = f
        .results_url
        .split("#r=")
        .nth(1)
        .expect("a results token")
        .to_string();
    let opened = app
        .anonymous()
        .post_json("/api/results/accept", &json!({"token": token}))
        .await;
    assert_eq!(opened.status, 200, "{}", opened.text);
    spec.check("post", "/api/results/accept", &opened);
    let unknown = app
        .anonymous()
        .post_json("/api/results/accept", &json!({"token": "nope"}))
        .await;
    spec.check("post", "/api/results/accept", &unknown);
    app.stop().await;
}

#[tokio::test]
async fn prescription_answers_match_the_generated_document() {
    use inspector_tests::presc::{
        finished_with_two_violations, in_days, link, representative, send_proof, trace, SITE,
    };
    let app = spawn_app().await;
    let spec = Spec {
        doc: app.anonymous().get("/api/openapi.json").await.body,
    };
    let f = finished_with_two_violations(&app, "inspector1").await;
    let issue_path = "/api/inspections/{id}/prescription";
    let bad = f
        .inspector
        .post_json(
            &format!("/api/inspections/{}/prescription", f.id),
            &json!({"items": [{"item_id": f.violated[0], "due_at": in_days(-1)}]}),
        )
        .await;
    spec.check("post", issue_path, &bad);
    let issued = f
        .inspector
        .post_json(
            &format!("/api/inspections/{}/prescription", f.id),
            &json!({"items": [{"item_id": f.violated[0], "due_at": in_days(9)}, {"item_id": f.violated[1], "due_at": in_days(9)}]}),
        )
        .await;
    assert_eq!(issued.status, 201, "{}", issued.text);
    spec.check("post", issue_path, &issued);
    let pid = issued.body["id"].as_str().unwrap().to_string();
    let created = f
        .inspector
        .post_json(
            &format!("/api/inspections/{}/business-links", f.id),
            &json!({}),
        )
        .await;
    spec.check("post", "/api/inspections/{id}/business-links", &created);
    let (_, _, token) = link(&f.inspector, &f.id).await;
    let signed = app
        .anonymous()
        .post_json("/api/business/sign-in", &json!({ "token": token }))
        .await;
    spec.check("post", "/api/business/sign-in", &signed);
    let used = app
        .anonymous()
        .post_json("/api/business/sign-in", &json!({ "token": token }))
        .await;
    spec.check("post", "/api/business/sign-in", &used);
    let rep = representative(&app, &f.inspector, &f.id).await;
    spec.check("get", "/api/auth/me", &rep.get("/api/auth/me").await);
    let proof = send_proof(
        &rep,
        &pid,
        "1",
        Some(&trace(&[(SITE.0, SITE.1, 3), (SITE.0 + 0.3, SITE.1, 0)])),
        inspector_tests::images::picture("jpg", 320, 240, 0),
    )
    .await;
    assert_eq!(proof.status, 201, "{}", proof.text);
    spec.check(
        "post",
        "/api/prescriptions/{id}/items/{item}/proofs",
        &proof,
    );
    let not_image = rep
        .post_raw(
            &format!("/api/prescriptions/{pid}/items/1/proofs"),
            "image/jpeg",
            b"plain text".to_vec(),
        )
        .await;
    spec.check(
        "post",
        "/api/prescriptions/{id}/items/{item}/proofs",
        &not_image,
    );
    let returned = f
        .inspector
        .post_json(
            &format!("/api/prescriptions/{pid}/items/1/decision"),
            &json!({"decision": "return", "comment": "нечётко", "due_at": in_days(12)}),
        )
        .await;
    spec.check(
        "post",
        "/api/prescriptions/{id}/items/{item}/decision",
        &returned,
    );
    let no_proof = f
        .inspector
        .post_json(
            &format!("/api/prescriptions/{pid}/items/2/decision"),
            &json!({"decision": "accept"}),
        )
        .await;
    spec.check(
        "post",
        "/api/prescriptions/{id}/items/{item}/decision",
        &no_proof,
    );
    spec.check(
        "get",
        "/api/prescriptions/{id}",
        &rep.get(&format!("/api/prescriptions/{pid}")).await,
    );
    spec.check(
        "get",
        "/api/prescriptions",
        &f.inspector.get("/api/prescriptions?filter=returned").await,
    );
    spec.check(
        "get",
        "/api/prescriptions",
        &f.inspector.get("/api/prescriptions?filter=nope").await,
    );
    spec.check(
        "get",
        "/api/control-bodies",
        &f.inspector.get("/api/control-bodies").await,
    );
    app.stop().await;
}

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

struct Spec {
    doc: Value,
}

impl Spec {
    /// Validates an answer against the documented schema of `method path` for its status.
    fn check(&self, method: &str, path: &str, answer: &Answer) {
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

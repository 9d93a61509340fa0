//! Prescriptions: a finished inspection with two violations, issuing its prescription, the
//! business's representative signing in, proofs with a location trace.

use serde_json::{json, Value};

use crate::{ws_connect, Client, Role, TestApp};

/// The registered site of `inspection_body` (what proofs are judged against).
pub const SITE: (f64, f64) = (55.7577, 37.6130);

/// A finished inspection with two violations (checklist items 2 and 5).
pub struct TwoViolations {
    /// Its inspector.
    pub inspector: Client,
    /// The inspection.
    pub id: String,
    /// The checklist items found violated.
    pub violated: [String; 2],
}

/// Runs an inspection by `inspector` over the socket with two violations and finishes it.
pub async fn run_with_two_violations(inspector: Client, body: &Value) -> TwoViolations {
    let r = inspector.post_json("/api/inspections", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_string();
    let mut ws = ws_connect(&inspector, &id).await.expect("socket");
    let welcome = ws.hello(None).await;
    let items: Vec<String> = welcome["checklist"]
        .as_array()
        .expect("checklist")
        .iter()
        .map(|i| i["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ws.op("s", json!({"kind": "start"})).await["type"], "ack");
    for (n, (item, text)) in [
        (&items[1], "Огнетушитель с истёкшим сроком поверки"),
        (&items[4], "Эвакуационный выход загромождён коробками"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = ws
            .op(
                &format!("v{n}"),
                json!({"kind": "set_result", "item_id": item, "result": "violation", "violation": text}),
            )
            .await;
        assert_eq!(r["type"], "ack", "{r}");
    }
    assert_eq!(ws.op("f", json!({"kind": "finish"})).await["type"], "ack");
    drop(ws);
    // The socket's `leave` is committed after it closes: wait for it, so that tests comparing
    // stored rows around a refusal start from a quiet log.
    for _ in 0..100 {
        let st = inspector.get(&format!("/api/inspections/{id}/state")).await;
        let online = st.body["state"]["participants"]
            .as_object()
            .map(|m| m.values().any(|p| p["online"] == true))
            .unwrap_or(true);
        if !online {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    TwoViolations {
        inspector,
        id,
        violated: [items[1].clone(), items[4].clone()],
    }
}

/// A template id (the first bundled one).
pub async fn template(c: &Client) -> String {
    c.get("/api/templates").await.body["templates"][0]["id"]
        .as_str()
        .expect("a bundled template")
        .to_string()
}

/// A finished inspection of `inspection_body` with two violations, by a new inspector.
pub async fn finished_with_two_violations(app: &TestApp, username: &str) -> TwoViolations {
    let inspector = app.staff(username, Role::Inspector).await;
    let t = template(&inspector).await;
    run_with_two_violations(inspector, &crate::inspection_body(Some(&t))).await
}

/// RFC 3339 time `days` from now.
pub fn in_days(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339()
}

/// Issues the prescription of both violations, due in 30 days; returns its body.
pub async fn issue(f: &TwoViolations) -> Value {
    let r = f
        .inspector
        .post_json(
            &format!("/api/inspections/{}/prescription", f.id),
            &json!({"items": [
                {"item_id": f.violated[0], "due_at": in_days(30)},
                {"item_id": f.violated[1], "due_at": in_days(30)},
            ]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

/// A sign-in link for the inspection's business: `(url, code, token)`.
pub async fn link(inspector: &Client, inspection: &str) -> (String, String, String) {
    let r = inspector
        .post_json(
            &format!("/api/inspections/{inspection}/business-links"),
            &json!({"label": "Иванов И. И."}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let url = r.body["url"].as_str().expect("url").to_string();
    let token = url
        .rsplit_once("#s=")
        .expect("token in the url")
        .1
        .to_string();
    (
        url,
        r.body["code"].as_str().expect("code").to_string(),
        token,
    )
}

/// The business's representative, signed in by a fresh link of `inspection`.
pub async fn representative(app: &TestApp, inspector: &Client, inspection: &str) -> Client {
    let (_, _, token) = link(inspector, inspection).await;
    let mut c = app.anonymous();
    let r = c
        .post_json("/api/business/sign-in", &json!({ "token": token }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    c.csrf = r.body["csrf_token"].as_str().map(String::from);
    c
}

/// A location trace header: samples `(lat, lon, seconds before now)`.
pub fn trace(samples: &[(f64, f64, i64)]) -> String {
    let now = chrono::Utc::now().timestamp_millis();
    json!({
        "samples": samples.iter().map(|(lat, lon, ago)| json!({
            "lat": lat, "lon": lon, "accuracy": 12.0, "device_ts": now - ago * 1000,
        })).collect::<Vec<_>>(),
        "timezone": "Europe/Moscow",
    })
    .to_string()
}

/// Sends a JPEG proof of `item` with this trace header (none when `None`).
pub async fn send_proof(
    c: &Client,
    prescription: &str,
    item: &str,
    trace: Option<&str>,
    bytes: Vec<u8>,
) -> crate::Answer {
    let path = format!("/api/prescriptions/{prescription}/items/{item}/proofs");
    let mut headers = vec![("content-type", "image/jpeg")];
    if let Some(t) = trace {
        headers.push(("x-proof-location", t));
    }
    c.post_raw_with(&path, &headers, bytes).await
}

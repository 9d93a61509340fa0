//! Web Push to a push service run by the test on loopback: the message is decrypted with
//! Mozilla's `ece` (RFC 8291, the push subscriber's side, independent of the server's crate),
//! its VAPID header checked (RFC 8292: the server's public key, a valid ES256 signature over
//! the audience), an expired subscription (410) removed, bad subscriptions refused.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use inspector_tests::{inspection_body, spawn_app_with, Role};
use serde_json::{json, Value};

type Received = Arc<Mutex<Vec<(String, HeaderMap, Vec<u8>)>>>;

/// A push service: `/push/ok/*` accepts (201), `/push/gone/*` answers 410 Gone.
async fn push_service() -> (String, Received) {
    let got: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/push/{kind}/{n}",
            axum::routing::post(
                |State(got): State<Received>,
                 Path((kind, n)): Path<(String, String)>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    got.lock()
                        .unwrap()
                        .push((format!("{kind}/{n}"), headers, body.to_vec()));
                    if kind == "gone" {
                        StatusCode::GONE
                    } else {
                        StatusCode::CREATED
                    }
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, got)
}

struct Subscriber {
    keys: ece::EcKeyComponents,
    auth: [u8; 16],
    json: Value,
}

fn subscriber(endpoint: &str) -> Subscriber {
    let (pair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
    let json = json!({"endpoint": endpoint, "expirationTime": null, "keys": {
        "p256dh": URL_SAFE_NO_PAD.encode(pair.pub_as_raw().unwrap()),
        "auth": URL_SAFE_NO_PAD.encode(auth)}});
    Subscriber {
        keys: pair.raw_components().unwrap(),
        auth,
        json,
    }
}

/// Checks `Authorization: vapid t=<jwt>, k=<key>`: the server's key, the push service's
/// origin as audience, a valid ES256 signature.
fn check_vapid(headers: &HeaderMap, server_key: &str, audience: &str) {
    let v = headers["authorization"].to_str().unwrap();
    let rest = v.strip_prefix("vapid t=").expect("vapid scheme");
    let (jwt, k) = rest.split_once(", k=").expect("t and k");
    assert_eq!(k, server_key);
    let mut parts = jwt.split('.');
    let (h, c, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).unwrap()).unwrap();
    assert_eq!(claims["aud"], audience);
    assert!(claims["sub"].as_str().unwrap().starts_with("mailto:"));
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        URL_SAFE_NO_PAD.decode(k).unwrap(),
    );
    key.verify(
        format!("{h}.{c}").as_bytes(),
        &URL_SAFE_NO_PAD.decode(s).unwrap(),
    )
    .expect("the VAPID signature verifies with the server's key");
}

#[tokio::test]
async fn push_messages_arrive_encrypted_and_expired_subscriptions_are_removed() {
    let (push_base, got) = push_service().await;
    let app = spawn_app_with(|c| {
        c.notify.tick_millis = 0;
        c.notify.push_hosts = vec!["127.0.0.1".into()];
        c.notify.push_allow_http = true;
        c.notify.push_contact = "mailto:ops@inspector.test".into();
    })
    .await;
    let inspector = app.staff("insp", Role::Inspector).await;
    let mut body = inspection_body(None);
    let start = chrono::Utc::now() + chrono::Duration::days(3);
    body["scheduled_at"] = json!(start.to_rfc3339());
    let id = inspector.post_json("/api/inspections", &body).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let token = inspector
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut phone = app.anonymous();
    assert_eq!(phone.accept(&token).await.status, 200);

    let ok = subscriber(&format!("{push_base}/push/ok/1"));
    let gone = subscriber(&format!("{push_base}/push/gone/1"));
    let path = format!("/api/inspections/{id}/push-subscriptions");
    for s in [&ok, &gone] {
        let r = phone
            .post_json(&path, &json!({"subscription": s.json}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(
            (
                r.body["channel"].as_str(),
                r.body["consent_source"].as_str()
            ),
            (Some("push"), Some("own"))
        );
    }
    // Refused: a host the server does not deliver to, a broken key, staff on the business's
    // route.
    let before = app.dump().await;
    let mut evil = ok.json.clone();
    evil["endpoint"] = json!("http://192.0.2.1/push");
    let r = phone.post_json(&path, &json!({"subscription": evil})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"]["fields"][0]["code"],
        "push_endpoint_not_allowed"
    );
    let mut broken = ok.json.clone();
    broken["keys"]["auth"] = json!("AAAA");
    let r = phone
        .post_json(&path, &json!({"subscription": broken}))
        .await;
    assert_eq!(r.body["error"]["fields"][0]["code"], "push_key_invalid");
    let r = inspector
        .post_json(&path, &json!({"subscription": ok.json}))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(app.dump().await, before);

    let now = chrono::Utc::now().timestamp_micros();
    let rep = app.notify.tick(now).await.unwrap();
    assert_eq!(rep.claimed, 2, "{rep:?}");
    assert_eq!(rep.sent, 1, "{rep:?}");
    let received = got.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    let (_, headers, body) = received.iter().find(|r| r.0 == "ok/1").unwrap();
    assert_eq!(headers["content-encoding"], "aes128gcm");
    let server_key = app.anonymous().get("/api/push/key").await.body["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    // web-push-native names the audience by scheme and host without the port (real push
    // services listen on 443, where the origin has no port either).
    check_vapid(headers, &server_key, "http://127.0.0.1");
    let plain = ece::decrypt(&ok.keys, &ok.auth, body).expect("decrypts");
    let payload: Value = serde_json::from_slice(&plain).unwrap();
    assert!(
        payload["title"]
            .as_str()
            .unwrap()
            .contains("Плановая проверка"),
        "{payload}"
    );
    let url = payload["url"].as_str().unwrap();
    let join = url.split("#t=").nth(1).expect("a join link");
    assert_eq!(app.anonymous().accept(join).await.status, 200);
    // The gone subscription's message failed and its contact is removed.
    let d = inspector
        .get(&format!("/api/inspections/{id}/deliveries"))
        .await
        .body;
    let failed: Vec<_> = d["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["state"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["last_error"], "push_gone");
    let contacts = inspector
        .get(&format!("/api/inspections/{id}/contacts"))
        .await
        .body;
    let removed: Vec<_> = contacts["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["removed_reason"] == "push_gone")
        .collect();
    assert_eq!(removed.len(), 1);
    assert!(removed[0]["address"]
        .as_str()
        .unwrap()
        .contains("/push/gone/1"));
    // The removed contact's reminders are dropped when due; the live one gets them.
    let rep = app
        .notify
        .tick(start.timestamp_micros() - 24 * 3_600_000_000)
        .await
        .unwrap();
    assert_eq!((rep.sent, rep.dropped), (1, 1), "{rep:?}");
    app.stop().await;
}

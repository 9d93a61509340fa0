//! Test support for the act: a P-256 key standing in for the browser's WebCrypto key (same
//! curve, same P1363 output), key registration and signing through the real API, and a whole
//! inspection driven to a formed, signed act.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use crate::{ws_connect, Client, Role, TestApp};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A browser-like signing key.
pub struct BrowserKey {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Default for BrowserKey {
    fn default() -> Self {
        Self::new()
    }
}

impl BrowserKey {
    /// A fresh key.
    pub fn new() -> BrowserKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("key generation");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("the generated key parses");
        BrowserKey { key, rng }
    }

    /// SubjectPublicKeyInfo DER, base64 (what `crypto.subtle.exportKey('spki')` gives).
    pub fn spki_b64(&self) -> String {
        // The fixed DER prefix of an id-ecPublicKey / prime256v1 SPKI, then the 65-byte point.
        let mut der = hex_decode("3059301306072a8648ce3d020106082a8648ce3d030107034200");
        der.extend_from_slice(self.key.public_key().as_ref());
        B64.encode(der)
    }

    /// Signs bytes: P1363 (r‖s), base64.
    pub fn sign_b64(&self, msg: &[u8]) -> String {
        B64.encode(self.key.sign(&self.rng, msg).expect("signing").as_ref())
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex literal"))
        .collect()
}

/// Registers `key` for the caller; returns the answer (201 with the certificate on success).
pub async fn register(c: &Client, key: &BrowserKey, extra: Value) -> crate::Answer {
    let ch = c.post_json("/api/signing/challenge", &json!({})).await;
    assert_eq!(ch.status, 201, "{}", ch.text);
    let challenge = ch.body["challenge"]
        .as_str()
        .expect("challenge")
        .to_string();
    let mut body = json!({
        "public_key": key.spki_b64(),
        "challenge": challenge,
        "proof": key.sign_b64(challenge.as_bytes()),
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    c.post_json("/api/signing/certificates", &body).await
}

/// Signs the inspection's act with `key` under certificate `cert`; returns the answer.
pub async fn sign(c: &Client, id: &str, cert: &str, key: &BrowserKey) -> crate::Answer {
    let begin = c
        .post_json(
            &format!("/api/inspections/{id}/act/signature/begin"),
            &json!({"certificate_id": cert}),
        )
        .await;
    if begin.status != 200 {
        return begin;
    }
    let tbs = begin.body["to_be_signed"]
        .as_str()
        .expect("to_be_signed")
        .to_string();
    let raw = B64.decode(&tbs).expect("base64");
    c.post_json(
        &format!("/api/inspections/{id}/act/signature"),
        &json!({"certificate_id": cert, "to_be_signed": tbs, "signature": key.sign_b64(&raw)}),
    )
    .await
}

/// A finished inspection with one violation (photographed by the business) and one
/// compliant item, not yet with an act.
pub struct Finished {
    /// The inspector.
    pub inspector: Client,
    /// The business (invitation guest).
    pub business: Client,
    /// The inspection.
    pub id: String,
    /// The durable results link from the business's sign-in.
    pub results_url: String,
    /// SHA-256 of the business's photo.
    pub photo_sha256: String,
    /// SHA-256 of the still of its camera the inspector asked the phone for (`frame`).
    pub frame_sha256: String,
}

/// Creates, runs (over the socket) and finishes an inspection.
pub async fn finished_inspection(app: &TestApp) -> Finished {
    let inspector = app.staff("inspector1", Role::Inspector).await;
    let id = inspector.create_inspection().await;
    let r = inspector
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    let mut business = app.anonymous();
    let acc = business
        .accept(r.body["token"].as_str().expect("token"))
        .await;
    assert_eq!(acc.status, 200, "{}", acc.text);
    let results_url = acc.body["results_url"]
        .as_str()
        .expect("results_url")
        .to_string();
    let mut ws = ws_connect(&inspector, &id).await.expect("socket");
    let welcome = ws.hello(None).await;
    let items: Vec<String> = welcome["checklist"]
        .as_array()
        .expect("checklist")
        .iter()
        .map(|i| i["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ws.op("s", json!({"kind": "start"})).await["type"], "ack");
    let r = ws
        .op(
            "r1",
            json!({"kind": "set_result", "item_id": items[0], "result": "compliant"}),
        )
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let r = ws
        .op(
            "r2",
            json!({"kind": "set_result", "item_id": items[4], "result": "violation",
                   "violation": "Эвакуационный выход загромождён коробками"}),
        )
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    // The business photographs the violation (a real JPEG through the upload endpoint).
    let photo = crate::images::picture("jpg", 320, 240, 0);
    let up = business
        .post_raw(
            &format!("/api/inspections/{id}/evidence?item_id={}", items[4]),
            "image/jpeg",
            photo.clone(),
        )
        .await;
    assert_eq!(up.status, 201, "{}", up.text);
    // And a still of its camera, asked for by the inspector (low-bandwidth mode's upload).
    let still = crate::images::picture("jpg", 640, 360, 1);
    let up = business
        .post_raw(
            &format!("/api/inspections/{id}/evidence?frame=requested"),
            "image/jpeg",
            still.clone(),
        )
        .await;
    assert_eq!(up.status, 201, "{}", up.text);
    assert_eq!(ws.op("f", json!({"kind": "finish"})).await["type"], "ack");
    drop(ws);
    Finished {
        inspector,
        business,
        id,
        results_url,
        photo_sha256: crate::images::sha256_hex(&photo),
        frame_sha256: crate::images::sha256_hex(&still),
    }
}

/// Waits until the inspection's socket participants are gone from the head (the inspector's
/// `leave` is committed), so that the act is formed from a quiet log.
pub async fn form_act(c: &Client, id: &str) -> crate::Answer {
    for _ in 0..50 {
        let r = c
            .post_json(&format!("/api/inspections/{id}/act"), &json!({}))
            .await;
        if r.status == 409 && (r.code() == "act_stale" || r.code() == "recording_not_ready") {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        }
        return r;
    }
    panic!("the act could not be formed");
}

/// The whole path: a finished inspection, its act formed, signed by the official and by the
/// business. Returns the inspection and the downloaded bundle.
pub async fn signed_bundle(app: &TestApp) -> (Finished, Vec<u8>) {
    let f = finished_inspection(app).await;
    let r = form_act(&f.inspector, &f.id).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let official = BrowserKey::new();
    let cert = register(&f.inspector, &official, json!({})).await;
    assert_eq!(cert.status, 201, "{}", cert.text);
    let r = sign(
        &f.inspector,
        &f.id,
        cert.body["id"].as_str().unwrap_or_default(),
        &official,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let biz = BrowserKey::new();
    let cert = register(&f.business, &biz, json!({"inspection_id": f.id})).await;
    assert_eq!(cert.status, 201, "{}", cert.text);
    let r = sign(
        &f.business,
        &f.id,
        cert.body["id"].as_str().unwrap_or_default(),
        &biz,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let zip = f
        .inspector
        .download(&format!("/api/inspections/{}/bundle.zip", f.id))
        .await;
    (f, zip)
}

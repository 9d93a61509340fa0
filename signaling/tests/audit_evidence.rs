//! `inspector audit verify` (the real binary) re-hashes every evidence blob the event log
//! names: clean after an upload, an altered or missing blob makes it fail naming the event.

use std::process::Command;

use inspector_tests::images::{picture, sha256_hex};
use inspector_tests::{spawn_app, Role};
use serde_json::json;

const EXE: &str = env!("CARGO_BIN_EXE_inspector");

#[tokio::test]
async fn audit_verify_rehashes_evidence_blobs() {
    let app = spawn_app().await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "live"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let item = insp.get(&format!("/api/inspections/{id}")).await.body["items"][0]["id"]
        .as_str()
        .expect("item")
        .to_string();
    let jpeg = picture("jpg", 320, 240, 0);
    let sha = sha256_hex(&jpeg);
    let r = insp
        .post_raw(
            &format!("/api/inspections/{id}/evidence?item_id={item}"),
            "image/jpeg",
            jpeg,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let data = app.data_dir.path().to_path_buf();
    let url = app.database_url.clone();
    let audit = || {
        let out = Command::new(EXE)
            .args(["audit", "verify", &id, "--data-dir"])
            .arg(&data)
            .args(["--database-url", &url])
            .output()
            .expect("audit runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, text) = audit();
    assert!(ok, "{text}");
    assert!(
        text.contains("evidence: 1 blobs match their hashes"),
        "{text}"
    );

    let blob = data.join("blobs").join("sha256").join(&sha[..2]).join(&sha);
    std::fs::write(&blob, b"someone swapped the photo").expect("tamper");
    let (ok, text) = audit();
    assert!(!ok, "an altered blob fails the audit: {text}");
    assert!(text.contains("EVIDENCE Altered"), "{text}");
    std::fs::remove_file(&blob).expect("remove");
    let (ok, text) = audit();
    assert!(!ok && text.contains("EVIDENCE Missing"), "{text}");
    app.stop().await;
}

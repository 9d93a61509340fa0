//! The act through the real server: formed only after finish, once; signatures by the
//! official and the business verified and recorded in the log; `signed` from the official's
//! signature; refusals; bad input refused with stable codes and nothing stored; the evidence
//! bundle checked by the real `openssl`/`sha256sum` (VERIFY.md) and by `bundle verify`, which
//! names what a tampered bundle breaks.

use std::io::{Read, Write};
use std::path::Path;

use inspector_tests::act::{
    finished_inspection, form_act, register, sign, signed_bundle, BrowserKey,
};
use inspector_tests::{spawn_app, ws_connect, Role, TestApp};
use serde_json::json;
use signaling::act::bundle;
use sqlx::Row;

/// What a refusal must not change: the act's tables and the event log.
async fn stored(app: &TestApp) -> String {
    use sqlx::Row;
    let mut out = app.dump().await;
    for q in [
        "SELECT COUNT(*) FROM events",
        "SELECT COUNT(*) FROM signing_certificates",
        "SELECT COUNT(*) FROM results_access",
    ] {
        let n: i64 = sqlx::query(q).fetch_one(&app.db).await.unwrap().get(0);
        out.push_str(&format!("{q}: {n}\n"));
    }
    out
}

#[tokio::test]
async fn act_lifecycle_signatures_and_bad_input() {
    let app = spawn_app().await;
    let inspector = app.staff("inspector0", Role::Inspector).await;
    // An unfinished inspection: no act.
    let early = inspector.create_inspection().await;
    let before = stored(&app).await;
    let r = inspector
        .post_json(&format!("/api/inspections/{early}/act"), &json!({}))
        .await;
    assert_eq!((r.status, r.code()), (409, "not_finished"), "{}", r.text);
    let r = inspector
        .post_json(
            &format!("/api/inspections/{early}/act/signature/begin"),
            &json!({"certificate_id": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "act_not_formed"), "{}", r.text);
    // A bare request cannot make an inspection signed.
    let r = inspector
        .post_json(
            &format!("/api/inspections/{early}/transition"),
            &json!({"to": "signed"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "illegal_transition"));
    assert_eq!(stored(&app).await, before, "refusals stored nothing");

    let f = finished_inspection(&app).await;
    let id = &f.id;
    let r = form_act(&f.inspector, id).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let act = r.body["act"].clone();
    assert_eq!(act["sha256"].as_str().unwrap().len(), 64);
    let pdf = f
        .inspector
        .download(&format!("/api/inspections/{id}/act.pdf"))
        .await;
    assert!(pdf.starts_with(b"%PDF-"));
    assert_eq!(
        signaling::act::sha256_hex(&pdf),
        act["sha256"].as_str().unwrap()
    );
    // The log's head hash is printed in the act.
    assert_eq!(
        bundle::pdf_keyword(&pdf, "head-hash").as_deref(),
        act["head_hash"].as_str()
    );
    // The business's photo of the violation is a picture in the act.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("act.pdf"), &pdf).unwrap();
    let list = std::process::Command::new("pdfimages")
        .arg("-list")
        .arg(dir.path().join("act.pdf"))
        .output()
        .expect("pdfimages (poppler-utils) runs");
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        list.lines().skip(2).any(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            c.get(3) == Some(&"320") && c.get(4) == Some(&"240")
        }),
        "the photo is in the act: {list}"
    );
    // PDF/A-2b as far as the tools installed here can tell (no validator such as veraPDF is
    // installable): the XMP identification, every font embedded, no encryption, and a PDF
    // structure that qpdf finds sound.
    let path = dir.path().join("act.pdf");
    let tool = |name: &str, args: &[&str]| {
        let out = std::process::Command::new(name)
            .args(args)
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{name} runs: {e}"));
        assert!(out.status.success(), "{name} {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let meta = tool("pdfinfo", &["-meta"]);
    let compact: String = meta.split_whitespace().collect();
    assert!(
        compact.contains("<pdfaid:part>2</pdfaid:part>") || compact.contains("pdfaid:part=\"2\""),
        "PDF/A part 2 in the XMP: {meta}"
    );
    assert!(
        compact.contains("<pdfaid:conformance>B</pdfaid:conformance>")
            || compact.contains("pdfaid:conformance=\"B\""),
        "PDF/A conformance B in the XMP: {meta}"
    );
    let info = tool("pdfinfo", &[]);
    assert!(
        info.lines()
            .any(|l| l.starts_with("Encrypted:") && l.ends_with("no")),
        "{info}"
    );
    let fonts = tool("pdffonts", &[]);
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(!rows.is_empty(), "the act has fonts: {fonts}");
    for row in rows {
        // Columns: name type encoding emb sub uni object ID; `emb` is the fifth from the end.
        let c: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(c[c.len() - 5], "yes", "every font embedded: {fonts}");
    }
    tool("qpdf", &["--check"]);
    // Accounts the refusals below need, made before the stored state is taken.
    let stranger = app.staff("inspector2", Role::Inspector).await;
    let other_user = app
        .create_user("someone", "a long test password", Role::Inspector)
        .await;
    let before = stored(&app).await;
    let r = f
        .inspector
        .post_json(&format!("/api/inspections/{id}/act"), &json!({}))
        .await;
    assert_eq!((r.status, r.code()), (409, "act_already_formed"));
    // The business cannot form it; a stranger cannot see it.
    let r = f
        .business
        .post_json(&format!("/api/inspections/{id}/act"), &json!({}))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        stranger
            .get(&format!("/api/inspections/{id}/act"))
            .await
            .status,
        404
    );

    // Certificates: for another account, for another inspection, a bad proof, a key that is
    // not P-256, a replayed challenge.
    let key = BrowserKey::new();
    let r = register(&f.inspector, &key, json!({"user_id": other_user})).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{}", r.text);
    let r = register(&f.business, &key, json!({"inspection_id": early})).await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "{}", r.text);
    let ch = f
        .inspector
        .post_json("/api/signing/challenge", &json!({}))
        .await;
    let challenge = ch.body["challenge"].as_str().unwrap().to_string();
    let r = f
        .inspector
        .post_json(
            "/api/signing/certificates",
            &json!({"public_key": key.spki_b64(), "challenge": challenge,
                    "proof": BrowserKey::new().sign_b64(challenge.as_bytes())}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "proof_invalid"), "{}", r.text);
    let r = f
        .inspector
        .post_json(
            "/api/signing/certificates",
            &json!({"public_key": "MAMCAQE=", "challenge": challenge, "proof": key.sign_b64(challenge.as_bytes())}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "public_key_invalid"),
        "{}",
        r.text
    );
    // Challenges are per subject: the business cannot answer the inspector's.
    let r = f
        .business
        .post_json(
            "/api/signing/certificates",
            &json!({"public_key": key.spki_b64(), "challenge": challenge,
                    "proof": key.sign_b64(challenge.as_bytes()), "inspection_id": id}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "challenge_invalid"),
        "{}",
        r.text
    );
    assert_eq!(stored(&app).await, before, "refusals stored nothing");

    let cert = register(&f.inspector, &key, json!({})).await;
    assert_eq!(cert.status, 201, "{}", cert.text);
    let cert_id = cert.body["id"].as_str().unwrap().to_string();
    // The certificate names the official and the control body, issued by the CA.
    let ca = app.anonymous().get("/api/signing/ca.pem").await;
    assert_eq!(ca.status, 200);
    assert!(ca.text.starts_with("-----BEGIN CERTIFICATE-----"));

    // A signature that does not verify: signed with another key. Nothing stored.
    let before = stored(&app).await;
    let r = sign(&f.inspector, id, &cert_id, &BrowserKey::new()).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "signature_invalid"),
        "{}",
        r.text
    );
    // Somebody else's certificate.
    let r = sign(&f.business, id, &cert_id, &key).await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "{}", r.text);
    // A reviewer signs nothing; a forged refusal by a reviewer or over the socket fails.
    let reviewer = app.staff("reviewer1", Role::Reviewer).await;
    let r = reviewer
        .post_json(
            &format!("/api/inspections/{id}/act/refusal"),
            &json!({"reason": "x"}),
        )
        .await;
    assert_eq!(r.status, 403);
    let events = || async {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM events WHERE inspection_id = $1")
            .bind(id.as_str())
            .fetch_one(&app.db)
            .await
            .unwrap()
            .get(0);
        n
    };
    let n0 = events().await;
    // After the end the business opens no socket at all (issue 10 item 3); the forgery is
    // tried on the inspector's.
    assert_eq!(ws_connect(&f.business, id).await.err(), Some(403));
    let mut ws = ws_connect(&f.inspector, id).await.unwrap();
    ws.hello(None).await;
    let r = ws
        .op("forged", json!({"kind": "act_refused", "role": "business", "act_sha256": act["sha256"], "signer": "x", "reason": "x"}))
        .await;
    assert_eq!(r["code"], "forbidden", "{r}");
    drop(ws);
    // The socket's join and leave are the only events it made (the forgery is not logged).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while events().await != n0 + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "join and leave commit"
        );
        tokio::task::yield_now().await;
    }
    let logged: Vec<String> =
        sqlx::query("SELECT kind FROM events WHERE inspection_id = $1 AND seq > $2 ORDER BY seq")
            .bind(id.as_str())
            .bind(n0)
            .fetch_all(&app.db)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert_eq!(logged, ["join", "leave"]);
    let before = {
        let mut b = before;
        b.truncate(0);
        b.push_str(&stored(&app).await);
        b
    };

    let r = sign(&f.inspector, id, &cert_id, &key).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_ne!(stored(&app).await, before, "the signature is recorded");
    let insp = f.inspector.get(&format!("/api/inspections/{id}")).await;
    assert_eq!(
        insp.body["status"], "signed",
        "signed follows from the official's signature"
    );
    let before = stored(&app).await;
    let r = sign(&f.inspector, id, &cert_id, &key).await;
    assert_eq!((r.status, r.code()), (409, "already_signed"), "{}", r.text);
    let r = f
        .inspector
        .post_json(
            &format!("/api/inspections/{id}/act/refusal"),
            &json!({"reason": "передумал"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "already_signed"));
    assert_eq!(stored(&app).await, before);

    // The business refuses, with a reason; the refusal is in the log and the act view.
    let r = f
        .business
        .post_json(
            &format!("/api/inspections/{id}/act/refusal"),
            &json!({"reason": "   "}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    let r = f
        .business
        .post_json(
            &format!("/api/inspections/{id}/act/refusal"),
            &json!({"reason": "Не согласны с пунктом 5"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let view = f.business.get(&format!("/api/inspections/{id}/act")).await;
    assert_eq!(
        view.body["act"]["refusals"][0]["reason"],
        "Не согласны с пунктом 5"
    );
    assert_eq!(view.body["can_sign"], false);
    let log = f
        .inspector
        .get(&format!("/api/inspections/{id}/events.jsonl"))
        .await;
    for kind in ["act_formed", "act_signed", "act_refused"] {
        assert!(
            log.text.contains(&format!("\"kind\":\"{kind}\"")),
            "{kind} in the log"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn business_keeps_access_through_its_durable_link() {
    let app = spawn_app().await;
    let f = finished_inspection(&app).await;
    let token = f.results_url.split("#r=").nth(1).unwrap().to_string();
    // Expire and revoke nothing yet: a fresh browser with only the durable link gets in.
    let mut later = app.anonymous();
    let r = later
        .post_json("/api/results/accept", &json!({"token": token}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    later.csrf = r.body["csrf_token"].as_str().map(String::from);
    // The invitation expires: the live link is dead, the durable one still works.
    sqlx::query("UPDATE invitations SET expires_at = 0")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        later
            .get(&format!("/api/inspections/{}", f.id))
            .await
            .status,
        200
    );
    assert_eq!(
        later
            .get(&format!("/api/inspections/{}/act", f.id))
            .await
            .status,
        200
    );
    // It reads; it does not take part live: no socket, no uploads.
    assert_eq!(
        ws_connect(&later, &f.id).await.err(),
        Some(403),
        "the live socket needs the live invitation"
    );
    let photo = inspector_tests::images::picture("jpg", 64, 48, 0);
    let r = later
        .post_raw(
            &format!("/api/inspections/{}/evidence?item_id=x", f.id),
            "image/jpeg",
            photo,
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{}", r.text);
    // It sees only its own inspection.
    let other = f.inspector.create_inspection().await;
    assert_eq!(
        later.get(&format!("/api/inspections/{other}")).await.status,
        404
    );
    // It can sign the act later.
    assert_eq!(form_act(&f.inspector, &f.id).await.status, 201);
    let key = BrowserKey::new();
    let cert = register(&later, &key, json!({"inspection_id": f.id})).await;
    assert_eq!(cert.status, 201, "{}", cert.text);
    let r = sign(&later, &f.id, cert.body["id"].as_str().unwrap(), &key).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // The inspector revokes it: access ends.
    let list = f
        .inspector
        .get(&format!("/api/inspections/{}/results-access", f.id))
        .await;
    for a in list.body["results_access"].as_array().unwrap() {
        let rid = a["id"].as_str().unwrap();
        let r = f
            .inspector
            .post_json(
                &format!("/api/inspections/{}/results-access/{rid}/revoke", f.id),
                &json!({}),
            )
            .await;
        assert_eq!(r.status, 204);
    }
    assert_eq!(
        later
            .get(&format!("/api/inspections/{}", f.id))
            .await
            .status,
        401
    );
    let r = app
        .anonymous()
        .post_json("/api/results/accept", &json!({"token": token}))
        .await;
    assert_eq!(r.status, 404);
    app.stop().await;
}

pub fn unzip(bytes: &[u8], dir: &Path) {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    for i in 0..z.len() {
        let mut e = z.by_index(i).unwrap();
        let path = dir.join(e.name().expect("a UTF-8 name").to_string());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut v = Vec::new();
        e.read_to_end(&mut v).unwrap();
        std::fs::write(path, v).unwrap();
    }
}

/// Rewrites one file of a bundle (and, when `fix_hashes`, the manifest and SHA256SUMS too,
/// as a careful forger would).
pub fn rewrite(bytes: &[u8], name: &str, f: impl Fn(&mut Vec<u8>), fix_hashes: bool) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..z.len() {
        let mut e = z.by_index(i).unwrap();
        let mut v = Vec::new();
        e.read_to_end(&mut v).unwrap();
        files.push((e.name().expect("a UTF-8 name").to_string(), v));
    }
    for (n, v) in files.iter_mut() {
        if n == name {
            f(v);
        }
    }
    if fix_hashes {
        let sha = |v: &[u8]| signaling::act::sha256_hex(v);
        let changed = files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| (sha(v), v.len()))
            .unwrap();
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&files.iter().find(|(n, _)| n == "manifest.json").unwrap().1)
                .unwrap();
        for e in manifest["files"].as_array_mut().unwrap() {
            if e["path"] == name {
                e["sha256"] = json!(changed.0);
                e["size"] = json!(changed.1);
            }
        }
        if name == "events.jsonl" {
            let text = String::from_utf8(files.iter().find(|(n, _)| n == name).unwrap().1.clone())
                .unwrap();
            let last: serde_json::Value =
                serde_json::from_str(text.lines().last().unwrap()).unwrap();
            manifest["events"] = json!(text.lines().count());
            manifest["log_head_hash"] = last["hash"].clone();
        }
        let sums: String = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}  {}\n",
                    e["sha256"].as_str().unwrap(),
                    e["path"].as_str().unwrap()
                )
            })
            .collect();
        for (n, v) in files.iter_mut() {
            if n == "manifest.json" {
                *v = serde_json::to_vec_pretty(&manifest).unwrap();
            }
            if n == "SHA256SUMS" {
                *v = sums.clone().into_bytes();
            }
        }
    }
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (n, v) in files {
        out.start_file(n, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(&v).unwrap();
    }
    out.finish().unwrap().into_inner()
}

fn verify_bytes(bytes: &[u8]) -> Result<bundle::Verified, bundle::Mismatch> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.zip");
    std::fs::write(&p, bytes).unwrap();
    bundle::verify(&p)
}

/// Runs every ```sh block of VERIFY.md with bash in the unpacked bundle.
pub fn run_verify_md(dir: &Path) {
    let md = std::fs::read_to_string(dir.join("VERIFY.md")).unwrap();
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in md.lines() {
        match (&mut cur, line.trim()) {
            (None, "```sh") => cur = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(b.clone());
                cur = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    assert!(blocks.len() >= 5, "VERIFY.md has its commands: {md}");
    for b in blocks {
        let out = std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &b])
            .current_dir(dir)
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "VERIFY.md block failed:\n{b}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn bundle_verifies_offline_and_names_what_was_tampered() {
    let app = spawn_app().await;
    let (f, zip) = signed_bundle(&app).await;
    let v = verify_bytes(&zip).expect("the bundle verifies");
    {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(&zip[..])).unwrap();
        assert!(
            z.by_name(&format!("evidence/{}.jpg", f.photo_sha256))
                .is_ok(),
            "the photo is in the bundle"
        );
        assert!(
            z.by_name(&format!("evidence/{}.jpg", f.frame_sha256))
                .is_ok(),
            "the still of the camera is in the bundle"
        );
    }
    assert_eq!(
        v.signed_by,
        vec!["official".to_string(), "business".to_string()]
    );
    let dir = tempfile::tempdir().unwrap();
    unzip(&zip, dir.path());
    run_verify_md(dir.path());

    // One byte of any file changed: named.
    let names: Vec<String> = {
        let z = zip::ZipArchive::new(std::io::Cursor::new(&zip[..])).unwrap();
        z.file_names()
            .map(|n| n.expect("a UTF-8 name").to_string())
            .collect()
    };
    for name in &names {
        let bad = rewrite(
            &zip,
            name,
            |v| {
                let i = v.len() / 2;
                v[i] ^= 0x01;
            },
            false,
        );
        let err = verify_bytes(&bad).expect_err(name);
        if name == "manifest.json" {
            // Whatever the flipped byte hit, the bundle no longer checks out.
            continue;
        }
        assert!(
            err.what.contains(&**name) || (name == "SHA256SUMS" && err.what == "SHA256SUMS"),
            "{name} changed, but the mismatch names {err}"
        );
    }
    // The last event removed, hashes fixed up as a forger would: still caught.
    let cut = rewrite(
        &zip,
        "events.jsonl",
        |v| {
            let text = String::from_utf8(v.clone()).unwrap();
            let mut lines: Vec<&str> = text.lines().collect();
            lines.pop();
            *v = (lines.join("\n") + "\n").into_bytes();
        },
        true,
    );
    let err = verify_bytes(&cut).expect_err("truncated log");
    assert!(
        err.what.contains("business.p7s") || err.what.contains("events.jsonl"),
        "{err}"
    );
    // Signed with another key under the same CA: a different, valid-looking signature.
    let imposter = BrowserKey::new();
    let cert = register(&f.inspector, &imposter, json!({})).await;
    assert_eq!(cert.status, 201);
    let sig_dir = tempfile::tempdir().unwrap();
    // Produce a CMS with the imposter key over the same act through the signer directly.
    let pdf = {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(&zip[..])).unwrap();
        let mut v = Vec::new();
        z.by_name("act.pdf").unwrap().read_to_end(&mut v).unwrap();
        v
    };
    let digest: [u8; 32] = hex_to_32(&signaling::act::sha256_hex(&pdf));
    let now = chrono::Utc::now().timestamp() as u64;
    use signaling::signing::Signer;
    let signer = signaling::signing::WebCryptoP256;
    let tbs = signer.to_be_signed(&digest, now).unwrap();
    let sig = base64_decode(&imposter.sign_b64(&tbs));
    let cert_der = signaling::signing::ca::pem_to_der(cert.body["pem"].as_str().unwrap()).unwrap();
    let forged = signer.finish(&cert_der, &digest, &tbs, &sig, now).unwrap();
    std::fs::write(sig_dir.path().join("forged.p7s"), &forged).unwrap();
    let bad = rewrite(
        &zip,
        "signatures/official.p7s",
        |v| *v = forged.clone(),
        true,
    );
    let err = verify_bytes(&bad).expect_err("another key");
    assert!(err.what.contains("signatures/official.p7s"), "{err}");
    app.stop().await;
}

fn hex_to_32(h: &str) -> [u8; 32] {
    let v: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

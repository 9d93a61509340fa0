//! "My prescriptions" over the API (issue 14): issuing from a finished inspection, the
//! business's one-time sign-in, proofs with location traces judged by the server (far and
//! teleporting traces flagged, not refused), decisions, fulfilment, the hash-chained log and
//! its audit, the PDF, and the bad inputs that must change nothing.

use inspector_tests::images::{picture, sha256_hex};
use inspector_tests::presc::{
    finished_with_two_violations, in_days, issue, link, representative, run_with_two_violations,
    send_proof, template, trace, SITE,
};
use inspector_tests::{inspection_body, spawn_app, spawn_app_with, Role};
use serde_json::{json, Value};

fn near() -> String {
    // Two samples a few metres from the site, ten seconds apart.
    trace(&[
        (SITE.0 + 0.0001, SITE.1, 10),
        (SITE.0 + 0.0001, SITE.1 + 0.0001, 0),
    ])
}

fn flags(proof: &Value) -> Vec<String> {
    proof["flags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn signals(proof: &Value) -> Vec<String> {
    proof["verdict"]["signals"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn issue_prove_return_accept_fulfil() {
    let app = spawn_app().await;
    let f = finished_with_two_violations(&app, "inspector1").await;
    let p = issue(&f).await;
    let pid = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["status"], "open");
    assert_eq!(p["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        p["items"][1]["description"],
        "Эвакуационный выход загромождён коробками"
    );
    assert!(p["items"][0]["requirement"].as_str().unwrap().len() > 3);
    assert_eq!(p["can_decide"], true);

    // The one-time link: works once, then it is used up; the code works for its own link.
    let (url, code, token) = link(&f.inspector, &f.id).await;
    assert!(url.contains("/my/#s="), "{url}");
    let mut rep = app.anonymous();
    let r = rep
        .post_json("/api/business/sign-in", &json!({ "token": token }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["business"]["inn"], "7707083893");
    rep.csrf = r.body["csrf_token"].as_str().map(String::from);
    let again = app
        .anonymous()
        .post_json("/api/business/sign-in", &json!({ "token": token }))
        .await;
    assert_eq!((again.status, again.code()), (410, "sign_in_used"));
    let code_user = app
        .anonymous()
        .post_json(
            "/api/business/sign-in",
            &json!({"inn": "7707083893", "code": code}),
        )
        .await;
    assert_eq!((code_user.status, code_user.code()), (410, "sign_in_used"));
    let (_, code2, _) = link(&f.inspector, &f.id).await;
    let by_code = app
        .anonymous()
        .post_json(
            "/api/business/sign-in",
            &json!({"inn": "7707083893", "code": code2.to_lowercase().replace('-', " ")}),
        )
        .await;
    assert_eq!(by_code.status, 200, "{}", by_code.text);

    // The business sees its prescriptions and its inspections; it may prove, not decide.
    let mine = rep.get("/api/prescriptions").await;
    assert_eq!(mine.body["prescriptions"][0]["id"], pid.as_str());
    assert_eq!(mine.body["prescriptions"][0]["can_prove"], true);
    assert_eq!(mine.body["prescriptions"][0]["can_decide"], false);
    let insp = rep.get(&format!("/api/inspections/{}", f.id)).await;
    assert_eq!(insp.status, 200);
    let me = rep.get("/api/auth/me").await;
    assert_eq!(me.body["business"]["label"], "Иванов И. И.");

    // A proof for each, near the site.
    let photo1 = picture("jpg", 640, 480, 0);
    let photo2 = picture("jpg", 320, 240, 10);
    let r1 = send_proof(&rep, &pid, "1", Some(&near()), photo1.clone()).await;
    assert_eq!(r1.status, 201, "{}", r1.text);
    assert_eq!(r1.body["proof"]["sha256"], sha256_hex(&photo1).as_str());
    assert_eq!(r1.body["proof"]["within_radius"], true, "{}", r1.text);
    assert!(flags(&r1.body["proof"]).is_empty(), "{}", r1.text);
    assert_eq!(
        r1.body["proof"]["verdict"]["level"], "trusted",
        "{}",
        r1.text
    );
    let r2 = send_proof(&rep, &pid, "2", Some(&near()), photo2).await;
    assert_eq!(r2.status, 201, "{}", r2.text);
    let served = f
        .inspector
        .get_bytes(r1.body["url"].as_str().unwrap())
        .await;
    assert_eq!(served.0, 200);
    assert_eq!(served.2, photo1);

    // Return one with a comment and a new due date, accept the other.
    let back = f
        .inspector
        .post_json(
            &format!("/api/prescriptions/{pid}/items/1/decision"),
            &json!({"decision": "return", "comment": "На фото не видно бирки поверки", "due_at": in_days(40)}),
        )
        .await;
    assert_eq!(back.status, 200, "{}", back.text);
    assert_eq!(back.body["status"], "returned");
    let ok = f
        .inspector
        .post_json(
            &format!("/api/prescriptions/{pid}/items/2/decision"),
            &json!({"decision": "accept"}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let seen = rep.get(&format!("/api/prescriptions/{pid}")).await;
    assert_eq!(seen.body["items"][0]["status"], "returned");
    assert_eq!(
        seen.body["items"][0]["decisions"][0]["comment"],
        "На фото не видно бирки поверки"
    );
    assert_eq!(seen.body["items"][1]["status"], "closed");
    let returned = f.inspector.get("/api/prescriptions?filter=returned").await;
    assert_eq!(returned.body["prescriptions"].as_array().unwrap().len(), 1);

    // A new proof, accepted: fulfilled, no repeat visit.
    let r3 = send_proof(&rep, &pid, "1", Some(&near()), picture("jpg", 640, 480, 20)).await;
    assert_eq!(r3.status, 201, "{}", r3.text);
    let ok = f
        .inspector
        .post_json(
            &format!("/api/prescriptions/{pid}/items/1/decision"),
            &json!({"decision": "accept"}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["status"], "fulfilled");
    assert_eq!(ok.body["no_repeat_visit"], true);
    let seen = rep.get(&format!("/api/prescriptions/{pid}")).await;
    assert_eq!(seen.body["status"], "fulfilled");
    assert_eq!(seen.body["no_repeat_visit"], true);
    let fulfilled = f.inspector.get("/api/prescriptions?filter=fulfilled").await;
    assert_eq!(fulfilled.body["prescriptions"].as_array().unwrap().len(), 1);
    let open = f.inspector.get("/api/prescriptions?filter=open").await;
    assert!(open.body["prescriptions"].as_array().unwrap().is_empty());

    // The log: issued, 3 proofs, 3 decisions; chained; proofs re-hash; exported.
    let pid_uuid: uuid::Uuid = pid.parse().unwrap();
    let audit = signaling::prescriptions::log::verify(&app.db, &app.blobs, pid_uuid)
        .await
        .unwrap();
    assert!(audit.is_clean(), "{audit:?}");
    assert_eq!(audit.chain.events, 7);
    assert_eq!(audit.proofs_checked, 3);
    assert_eq!(
        audit.chain.head_hash.as_deref(),
        seen.body["head_hash"].as_str()
    );
    let (status, _, jsonl) = rep
        .get_bytes(&format!("/api/prescriptions/{pid}/log.jsonl"))
        .await;
    assert_eq!(status, 200);
    let kinds: Vec<String> = String::from_utf8(jsonl)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "issued",
            "proof_added",
            "proof_added",
            "returned",
            "accepted",
            "proof_added",
            "accepted"
        ]
    );

    // The document: a PDF/A with the items, the decisions and the outcome.
    let (status, headers, pdf) = f
        .inspector
        .get_bytes(&format!("/api/prescriptions/{pid}/document.pdf"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/pdf");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils)");
    let text = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    for needle in [
        "ПРЕДПИСАНИЕ",
        "Эвакуационный выход загромождён коробками",
        "бирки поверки",
        "повторная проверка не требуется",
        &sha256_hex(&photo1)[..16],
    ] {
        assert!(text.contains(needle), "{needle:?} not in the PDF: {text}");
    }

    // Tampering with a stored event is found.
    sqlx::query(
        "UPDATE prescription_events SET payload = REPLACE(payload, 'бирки', 'пломбы') \
         WHERE prescription_id = $1 AND kind = 'returned'",
    )
    .bind(&pid)
    .execute(&app.db)
    .await
    .unwrap();
    let audit = signaling::prescriptions::log::verify(&app.db, &app.blobs, pid_uuid)
        .await
        .unwrap();
    assert_eq!(audit.chain.first_broken.map(|b| b.seq), Some(4));

    // Logging out ends the representative's session.
    assert_eq!(
        rep.post_json("/api/auth/logout", &json!({})).await.status,
        204
    );
    assert_eq!(rep.get("/api/prescriptions").await.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn far_and_teleporting_proofs_are_flagged_with_reasons() {
    let app = spawn_app().await;
    let f = finished_with_two_violations(&app, "inspector1").await;
    let pid = issue(&f).await["id"].as_str().unwrap().to_string();
    let rep = representative(&app, &f.inspector, &f.id).await;

    // 10 km north of the site.
    let far = trace(&[
        (SITE.0 + 0.09, SITE.1, 5),
        (SITE.0 + 0.09, SITE.1 + 0.0001, 0),
    ]);
    let r = send_proof(&rep, &pid, "1", Some(&far), picture("jpg", 320, 240, 0)).await;
    assert_eq!(
        r.status, 201,
        "a far proof is kept, not refused: {}",
        r.text
    );
    let p = &r.body["proof"];
    assert_eq!(p["within_radius"], false, "{p}");
    assert!(p["distance_m"].as_f64().unwrap() > 9000.0, "{p}");
    assert!(flags(p).contains(&"far_from_site".to_string()), "{p}");
    assert!(signals(p).contains(&"far_from_site".to_string()), "{p}");

    // At the site, then 50 km away a second later: a teleport.
    let jump = trace(&[(SITE.0, SITE.1, 1), (SITE.0 + 0.45, SITE.1, 0)]);
    let r = send_proof(&rep, &pid, "2", Some(&jump), picture("jpg", 320, 240, 5)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let p = &r.body["proof"];
    assert_eq!(p["verdict"]["level"], "spoofed", "{p}");
    assert!(flags(p).contains(&"spoofed".to_string()), "{p}");
    assert!(signals(p).contains(&"impossible_speed".to_string()), "{p}");

    // No location at all is marked too.
    let r = send_proof(&rep, &pid, "2", None, picture("jpg", 320, 240, 7)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(flags(&r.body["proof"]), ["no_location"]);

    // The inspector sees them, with their reasons, and the list counts them.
    let seen = f.inspector.get(&format!("/api/prescriptions/{pid}")).await;
    assert_eq!(seen.body["flagged_proofs"], 3);
    assert_eq!(
        seen.body["items"][1]["proofs"][0]["verdict"]["signals"][0]["name"],
        "impossible_speed"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_stable_codes_and_changes_nothing() {
    let app = spawn_app_with(|c| c.max_upload_bytes = 64 * 1024).await;
    let f = finished_with_two_violations(&app, "inspector1").await;

    // Issuing: due date in the past, a compliant item, an empty list, a duplicate.
    let before = app.dump_all().await;
    let cases = [
        (
            json!({"items": [{"item_id": f.violated[0], "due_at": in_days(-1)}]}),
            "items.0.due_at",
            "due_in_past",
        ),
        (
            json!({"items": [{"item_id": "no-such-item", "due_at": in_days(3)}]}),
            "items.0.item_id",
            "not_a_violation",
        ),
        (
            json!({"items": [{"item_id": f.violated[0], "due_at": in_days(3)}, {"item_id": f.violated[0], "due_at": in_days(3)}]}),
            "items.1.item_id",
            "duplicate_item",
        ),
        (json!({"items": []}), "items", "items_required"),
    ];
    for (body, field, code) in cases {
        let r = f
            .inspector
            .post_json(&format!("/api/inspections/{}/prescription", f.id), &body)
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "validation_failed"),
            "{}",
            r.text
        );
        assert!(
            r.body["error"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field && e["code"] == code),
            "{field} {code}: {}",
            r.text
        );
        assert_eq!(app.dump_all().await, before, "{code} changed something");
    }
    // A live (not finished) inspection gets no prescription.
    let live = f.inspector.create_inspection().await;
    let r = f
        .inspector
        .post_json(
            &format!("/api/inspections/{live}/prescription"),
            &json!({"items": [{"item_id": f.violated[0], "due_at": in_days(3)}]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "inspection_not_finished"));

    let pid = issue(&f).await["id"].as_str().unwrap().to_string();
    let rep = representative(&app, &f.inspector, &f.id).await;
    // A business of another organisation (another INN), signed in by its own inspection.
    let other = app.staff("inspector2", Role::Inspector).await;
    let t = template(&other).await;
    let mut body = inspection_body(Some(&t));
    body["business"]["inn"] = json!("7736207543");
    body["business"]["name"] = json!("ООО «Другая»");
    let g = run_with_two_violations(other, &body).await;
    let stranger = representative(&app, &g.inspector, &g.id).await;

    let ok = send_proof(&rep, &pid, "2", Some(&near()), picture("jpg", 320, 240, 0)).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let accepted = f
        .inspector
        .post_json(
            &format!("/api/prescriptions/{pid}/items/2/decision"),
            &json!({"decision": "accept"}),
        )
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);

    let before = app.dump_all().await;
    let jpeg = picture("jpg", 320, 240, 0);
    let expect = |r: inspector_tests::Answer, status: u16, code: &str| {
        assert_eq!((r.status, r.code()), (status, code), "{}", r.text);
    };
    // A proof for a closed item.
    expect(
        send_proof(&rep, &pid, "2", Some(&near()), jpeg.clone()).await,
        409,
        "item_closed",
    );
    // A proof from another organisation: its prescription does not exist for it.
    expect(
        send_proof(&stranger, &pid, "1", Some(&near()), jpeg.clone()).await,
        404,
        "not_found",
    );
    // A decision by the business.
    expect(
        rep.post_json(
            &format!("/api/prescriptions/{pid}/items/1/decision"),
            &json!({"decision": "accept"}),
        )
        .await,
        403,
        "forbidden",
    );
    // Accepting an item with no proof yet; returning without a comment or into the past.
    expect(
        f.inspector
            .post_json(
                &format!("/api/prescriptions/{pid}/items/1/decision"),
                &json!({"decision": "accept"}),
            )
            .await,
        409,
        "no_proof",
    );
    for body in [
        json!({"decision": "return", "comment": "  "}),
        json!({"decision": "return", "comment": "нет", "due_at": in_days(-2)}),
        json!({"decision": "maybe"}),
    ] {
        expect(
            f.inspector
                .post_json(&format!("/api/prescriptions/{pid}/items/1/decision"), &body)
                .await,
            400,
            "validation_failed",
        );
    }
    // Oversized and non-image proofs; a malformed trace; an unknown item.
    expect(
        send_proof(&rep, &pid, "1", None, picture("jpg", 1920, 1080, 100)).await,
        413,
        "payload_too_large",
    );
    expect(
        send_proof(
            &rep,
            &pid,
            "1",
            None,
            b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
        )
        .await,
        400,
        "unsupported_proof_type",
    );
    expect(
        send_proof(&rep, &pid, "1", Some("{\"samples\": 3}"), jpeg.clone()).await,
        400,
        "invalid_location",
    );
    expect(
        send_proof(
            &rep,
            &pid,
            "1",
            Some(&trace(&[(91.0, 0.0, 0)])),
            jpeg.clone(),
        )
        .await,
        400,
        "geo_lat_out_of_range",
    );
    expect(
        send_proof(&rep, &pid, "9", None, jpeg.clone()).await,
        404,
        "not_found",
    );
    // Staff send no proofs.
    expect(
        send_proof(&f.inspector, &pid, "1", None, jpeg.clone()).await,
        403,
        "forbidden",
    );
    // A second prescription for the same inspection.
    expect(
        f.inspector
            .post_json(
                &format!("/api/inspections/{}/prescription", f.id),
                &json!({"items": [{"item_id": f.violated[0], "due_at": in_days(3)}]}),
            )
            .await,
        409,
        "prescription_exists",
    );
    // Sign-in with nonsense.
    expect(
        app.anonymous()
            .post_json("/api/business/sign-in", &json!({"inn": "7707083893"}))
            .await,
        400,
        "sign_in_shape",
    );
    expect(
        app.anonymous()
            .post_json(
                "/api/business/sign-in",
                &json!({"inn": "7707083893", "code": "AAAA-BBBB-CCCC"}),
            )
            .await,
        404,
        "not_found",
    );
    assert_eq!(
        app.dump_all().await,
        before,
        "a refusal changed stored rows or blobs"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_short_video_is_a_proof_too() {
    let app = spawn_app().await;
    let f = finished_with_two_violations(&app, "inspector1").await;
    let pid = issue(&f).await["id"].as_str().unwrap().to_string();
    let rep = representative(&app, &f.inspector, &f.id).await;
    // What MediaRecorder gives a browser: a WebM clip (VP8), made here by the real ffmpeg.
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=10",
        ])
        .args(["-t", "1", "-c:v", "libvpx", "-f", "webm", "pipe:1"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success() && !out.stdout.is_empty());
    let r = rep
        .post_raw_with(
            &format!("/api/prescriptions/{pid}/items/1/proofs"),
            &[
                ("content-type", "video/webm"),
                ("x-proof-location", &near()),
            ],
            out.stdout.clone(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["proof"]["kind"], "video");
    assert_eq!(r.body["proof"]["media_type"], "video/webm");
    assert_eq!(r.body["proof"]["sha256"], sha256_hex(&out.stdout).as_str());
    let (status, headers, bytes) = f.inspector.get_bytes(r.body["url"].as_str().unwrap()).await;
    assert_eq!((status, bytes.len()), (200, out.stdout.len()));
    assert_eq!(headers["content-type"], "video/webm");
    app.stop().await;
}

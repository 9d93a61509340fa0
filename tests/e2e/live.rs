//! The inspection socket through the real server: authorization before the upgrade, roles,
//! sequencing, REST lifecycle through the sync room, revocation, the event log and audit.

use inspector_tests::{spawn_app, ws_connect, Client, Role};
use serde_json::json;

async fn setup(app: &inspector_tests::TestApp) -> (Client, Client, String, String) {
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    let r = insp
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    let inv = r.body["invitation"]["id"].as_str().unwrap().to_string();
    let mut business = app.anonymous();
    assert_eq!(
        business
            .accept(r.body["token"].as_str().unwrap())
            .await
            .status,
        200
    );
    (insp, business, id, inv)
}

#[tokio::test]
async fn socket_is_authorized_before_upgrade() {
    let app = spawn_app().await;
    let (insp, _business, id, _) = setup(&app).await;
    assert_eq!(ws_connect(&app.anonymous(), &id).await.err(), Some(401));
    let stranger = app.staff("inspector2", Role::Inspector).await;
    assert_eq!(ws_connect(&stranger, &id).await.err(), Some(404));
    assert_eq!(
        ws_connect(&insp, &uuid::Uuid::new_v4().to_string())
            .await
            .err(),
        Some(404)
    );
    let mut ws = ws_connect(&insp, &id).await.expect("owner connects");
    let welcome = ws.hello(None).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["you"]["role"], "inspector");
    assert_eq!(welcome["checklist"].as_array().unwrap().len(), 10);
    assert!(welcome["rtc"]["ice_servers"].is_array(), "{welcome}");
    app.stop().await;
}

#[tokio::test]
async fn checklist_mirrors_between_inspector_and_business() {
    let app = spawn_app().await;
    let (insp, business, id, _) = setup(&app).await;
    let mut wi = ws_connect(&insp, &id).await.unwrap();
    wi.hello(None).await;
    let mut wb = ws_connect(&business, &id).await.unwrap();
    let welcome = wb.hello(None).await;
    assert_eq!(welcome["you"]["role"], "business");
    let item = welcome["checklist"][0]["id"].as_str().unwrap().to_string();

    // Before start, results are refused; the business may never set them.
    let r = wi
        .op(
            "i-1",
            json!({"kind": "set_result", "item_id": item, "result": "compliant"}),
        )
        .await;
    assert_eq!(r["code"], "not_live");
    let r = wb.op("b-1", json!({"kind": "start"})).await;
    assert_eq!(r["code"], "forbidden");
    let r = wi.op("i-2", json!({"kind": "start"})).await;
    assert_eq!(r["type"], "ack", "{r}");
    assert_eq!(
        insp.get(&format!("/api/inspections/{id}")).await.body["status"],
        "live"
    );

    let r = wi.op("i-3", json!({"kind": "set_result", "item_id": item, "result": "violation", "comment": "Нет огнетушителя", "violation": "Огнетушитель отсутствует"})).await;
    assert_eq!(r["type"], "ack", "{r}");
    let seq = r["seq"].as_u64().unwrap();
    let ev = wb
        .recv_until(|m| m["type"] == "event" && m["kind"] == "set_result")
        .await;
    assert_eq!(ev["seq"].as_u64(), Some(seq));
    assert_eq!(ev["payload"]["result"], "violation");
    let r = wb
        .op(
            "b-2",
            json!({"kind": "set_result", "item_id": item, "result": "compliant"}),
        )
        .await;
    assert_eq!(r["code"], "forbidden");
    let r = wb
        .op(
            "b-3",
            json!({"kind": "comment", "item_id": item, "text": "Огнетушитель в подсобке"}),
        )
        .await;
    assert_eq!(r["type"], "ack");
    // A retry of an applied op is answered with the original seq, not applied twice.
    let r = wi
        .op(
            "i-3",
            json!({"kind": "set_result", "item_id": item, "result": "compliant"}),
        )
        .await;
    assert_eq!(
        (r["code"].as_str(), r["seq"].as_u64()),
        (Some("duplicate_op_id"), Some(seq))
    );
    // Garbage keeps the socket open.
    wb.send_text("{not json".into()).await;
    assert_eq!(
        wb.recv_until(|m| m["type"] == "error").await["code"],
        "bad_json"
    );
    wb.send_text("x".repeat(70 * 1024)).await;
    assert_eq!(
        wb.recv_until(|m| m["type"] == "error").await["code"],
        "frame_too_large"
    );
    let r = wb
        .op(
            "b-4",
            json!({"kind": "comment", "item_id": "no-such-item", "text": "?"}),
        )
        .await;
    assert_eq!(r["code"], "unknown_item");

    // Finishing over REST goes through the same room: logged, broadcast, status changed.
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "finished"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "finished");
    wb.recv_until(|m| m["type"] == "event" && m["kind"] == "finish")
        .await;

    let state = business.get(&format!("/api/inspections/{id}/state")).await;
    assert_eq!(state.status, 200);
    // After the end the raw log is the business's only as configured (off by default).
    let refused = business
        .get(&format!("/api/inspections/{id}/events.jsonl"))
        .await;
    assert_eq!(refused.status, 403);
    let log = insp
        .get(&format!("/api/inspections/{id}/events.jsonl"))
        .await;
    assert_eq!(log.status, 200);
    let kinds: Vec<String> = log
        .text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for k in ["join", "start", "set_result", "comment", "finish"] {
        assert!(
            kinds.iter().any(|x| x == k),
            "event log lacks {k}: {kinds:?}"
        );
    }
    let report = checklist_sync::verify(&app.db, id.parse().unwrap())
        .await
        .unwrap();
    assert!(report.is_intact());
    assert_eq!(report.events as usize, kinds.len());
    app.stop().await;
}

#[tokio::test]
async fn revoking_an_invitation_closes_its_sockets() {
    let app = spawn_app().await;
    let (insp, business, id, inv) = setup(&app).await;
    let mut wb = ws_connect(&business, &id).await.unwrap();
    wb.hello(None).await;
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/invitations/{inv}/revoke"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 204);
    // The socket closes (any remaining events first).
    while wb.recv().await.is_some() {}
    assert_eq!(ws_connect(&business, &id).await.err(), Some(401));
    app.stop().await;
}

#[tokio::test]
async fn audit_detects_an_edited_row() {
    let app = spawn_app().await;
    let (insp, _business, id, _) = setup(&app).await;
    let mut wi = ws_connect(&insp, &id).await.unwrap();
    let welcome = wi.hello(None).await;
    let item = welcome["checklist"][1]["id"].as_str().unwrap().to_string();
    wi.op("a", json!({"kind": "start"})).await;
    let r = wi
        .op(
            "b",
            json!({"kind": "set_result", "item_id": item, "result": "violation"}),
        )
        .await;
    let seq = r["seq"].as_i64().unwrap();
    wi.op(
        "c",
        json!({"kind": "set_result", "item_id": item, "result": "compliant"}),
    )
    .await;
    let uuid: uuid::Uuid = id.parse().unwrap();
    assert!(checklist_sync::verify(&app.db, uuid)
        .await
        .unwrap()
        .is_intact());
    // Someone rewrites history directly in the database.
    let payload = format!(r#"{{"item_id":"{item}","result":"compliant"}}"#);
    sqlx::query("UPDATE events SET payload = $1 WHERE inspection_id = $2 AND seq = $3")
        .bind(payload)
        .bind(&id)
        .bind(seq)
        .execute(&app.db)
        .await
        .unwrap();
    let report = checklist_sync::verify(&app.db, uuid).await.unwrap();
    assert_eq!(report.first_broken.map(|b| b.seq), Some(seq as u64));
    app.stop().await;
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test]
async fn location_samples_get_a_trust_verdict() {
    let app = spawn_app().await;
    let (insp, business, id, _) = setup(&app).await;
    let mut wi = ws_connect(&insp, &id).await.unwrap();
    wi.hello(None).await;
    let mut wb = ws_connect(&business, &id).await.unwrap();
    let welcome = wb.hello(None).await;
    let me = welcome["you"]["participant_id"]
        .as_str()
        .unwrap()
        .to_string();
    // At the registered site (inspection_body puts it in central Moscow), Moscow time zone.
    let r = wb.op("l1", json!({"kind": "location", "lat": 55.75772, "lon": 37.61297, "accuracy": 14.2, "device_ts": now_ms()})).await;
    assert_eq!(r["type"], "ack", "{r}");
    let v = wi
        .recv_until(|m| m["type"] == "event" && m["kind"] == "verdict")
        .await;
    assert_eq!(v["participant_id"], me.as_str());
    assert_eq!(v["payload"]["level"], "trusted", "{v}");
    // Bad samples are refused with a code and do not move the verdict.
    let r = wb.op("l2", json!({"kind": "location", "lat": 55.7, "lon": 37.6, "accuracy": 10.0, "device_ts": now_ms() + 3 * 86_400_000})).await;
    assert_eq!(r["code"], "geo_timestamp_in_future", "{r}");
    let r = wb.op("l3", json!({"kind": "location", "lat": 155.7, "lon": 37.6, "accuracy": 10.0, "device_ts": now_ms()})).await;
    assert_eq!(r["code"], "invalid_field", "{r}");
    // A jump to Novosibirsk a second later is impossible travel.
    let r = wb.op("l4", json!({"kind": "location", "lat": 55.0302, "lon": 82.9204, "accuracy": 9.7, "device_ts": now_ms()})).await;
    assert_eq!(r["type"], "ack", "{r}");
    let v = wi
        .recv_until(|m| m["type"] == "event" && m["kind"] == "verdict")
        .await;
    assert_ne!(v["payload"]["level"], "trusted", "{v}");
    let names: Vec<&str> = v["payload"]["signals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(names.contains(&"impossible_speed"), "{names:?}");
    // The verdict is part of the state every client gets.
    let state = insp.get(&format!("/api/inspections/{id}/state")).await;
    assert_ne!(
        state.body["state"]["participants"][&me]["verdict"]["level"], "trusted",
        "{}",
        state.text
    );
    // Permission denied is recorded and judged too.
    let r = wb
        .op(
            "l5",
            json!({"kind": "location_unavailable", "reason": "permission_denied"}),
        )
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    app.stop().await;
}

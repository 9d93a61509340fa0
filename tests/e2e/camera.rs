//! Issue 25 at the socket: guiding the business's camera. The phone reports what its camera
//! can do; the inspector's commands must fit that report; the business cannot steer; an
//! unknown capability, a value out of range and a flood get stable codes and change nothing
//! (the log and the state are as before); a photo names the pointer it showed and the server
//! copies it from the log.

use std::time::Duration;

use inspector_tests::images::picture;
use inspector_tests::{spawn_app, ws_connect, Client, Role, TestApp, Ws};
use serde_json::{json, Value};

struct Room {
    insp: Client,
    business: Client,
    id: String,
    item: String,
}

async fn live_room(app: &TestApp) -> Room {
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    let r = insp
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    let mut business = app.anonymous();
    let token = r.body["token"].as_str().expect("token");
    assert_eq!(business.accept(token).await.status, 200);
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "live"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let item = r.body["items"][0]["id"].as_str().expect("item").to_string();
    Room {
        insp,
        business,
        id,
        item,
    }
}

/// The log as the server exports it.
async fn log(c: &Client, id: &str) -> Vec<Value> {
    let r = c.get(&format!("/api/inspections/{id}/events.jsonl")).await;
    assert_eq!(r.status, 200);
    r.text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

async fn camera_state(c: &Client, id: &str) -> Value {
    c.get(&format!("/api/inspections/{id}/state")).await.body["state"]["camera"].clone()
}

fn code(answer: &Value) -> &str {
    answer["code"].as_str().unwrap_or("ack")
}

async fn refused(ws: &mut Ws, op_id: &str, op: Value, expect: &str) {
    let a = ws.op(op_id, op.clone()).await;
    assert_eq!(a["type"], "error", "{op} was accepted: {a}");
    assert_eq!(code(&a), expect, "{op}: {a}");
}

#[tokio::test]
async fn camera_commands_are_the_inspectors_and_fit_the_phones_report() {
    let app = spawn_app().await;
    let room = live_room(&app).await;
    let mut wi = ws_connect(&room.insp, &room.id)
        .await
        .expect("inspector socket");
    assert_eq!(wi.hello(None).await["type"], "welcome");
    let mut wb = ws_connect(&room.business, &room.id)
        .await
        .expect("phone socket");
    assert_eq!(wb.hello(None).await["type"], "welcome");

    // Nothing reported yet: the console has nothing to steer.
    refused(
        &mut wi,
        "c0",
        json!({"kind": "camera", "capability": "torch", "value": true}),
        "camera_not_supported",
    )
    .await;
    // The phone reports its camera (the inspector cannot report for it).
    let report = json!({"kind": "camera_caps",
        "caps": {"facing": ["environment", "user"], "torch": true, "zoom": {"min": 1.0, "max": 4.0, "step": 0.5}},
        "settings": {"facing": "environment", "torch": false, "zoom": 1.0}});
    assert_eq!(wb.op("r1", report.clone()).await["type"], "ack");
    refused(&mut wi, "c1", report, "forbidden").await;
    // A report names only known capabilities.
    refused(
        &mut wb,
        "r2",
        json!({"kind": "camera_caps", "caps": {"exposure": {"min": 0, "max": 1}}}),
        "camera_unknown_capability",
    )
    .await;

    let before = log(&room.insp, &room.id).await.len();
    let state_before = camera_state(&room.insp, &room.id).await;
    // The business does not steer or point.
    for (i, op) in [
        json!({"kind": "camera", "capability": "torch", "value": true}),
        json!({"kind": "pointer", "at": {"x": 0.5, "y": 0.5}}),
    ]
    .into_iter()
    .enumerate()
    {
        refused(&mut wb, &format!("b{i}"), op, "forbidden").await;
    }
    // Unknown capability, values out of range, a capability the phone did not report.
    refused(
        &mut wi,
        "c2",
        json!({"kind": "camera", "capability": "exposure", "value": 1}),
        "camera_unknown_capability",
    )
    .await;
    refused(
        &mut wi,
        "c3",
        json!({"kind": "camera", "capability": "zoom", "value": 9}),
        "camera_value_out_of_range",
    )
    .await;
    refused(
        &mut wi,
        "c4",
        json!({"kind": "camera", "capability": "torch", "value": "on"}),
        "camera_value_out_of_range",
    )
    .await;
    refused(
        &mut wi,
        "c5",
        json!({"kind": "camera", "capability": "focus", "value": {"x": 0.5, "y": 0.5}}),
        "camera_not_supported",
    )
    .await;
    refused(
        &mut wi,
        "c6",
        json!({"kind": "pointer", "at": {"x": 1.2, "y": 0.5}}),
        "camera_value_out_of_range",
    )
    .await;
    assert_eq!(
        log(&room.insp, &room.id).await.len(),
        before,
        "a refusal logs nothing"
    );
    assert_eq!(camera_state(&room.insp, &room.id).await, state_before);

    // What the phone supports goes through, and the phone hears it.
    for (id, op) in [
        (
            "ok1",
            json!({"kind": "camera", "capability": "torch", "value": true}),
        ),
        (
            "ok2",
            json!({"kind": "camera", "capability": "zoom", "value": 2.5}),
        ),
        (
            "ok3",
            json!({"kind": "pointer", "at": {"x": 0.25, "y": 0.75}, "text": "табличка"}),
        ),
    ] {
        let a = wi.op(id, op).await;
        assert_eq!(a["type"], "ack", "{a}");
    }
    let heard = wb
        .recv_until(|m| m["type"] == "event" && m["kind"] == "pointer")
        .await;
    assert_eq!(heard["payload"]["text"], "табличка");
    let pointer_seq = heard["seq"].as_u64().expect("seq");
    let cam = camera_state(&room.insp, &room.id).await;
    assert_eq!(cam["settings"]["torch"], true, "{cam}");
    assert_eq!(cam["settings"]["zoom"], 2.5, "{cam}");
    assert_eq!(cam["pointers"][0]["seq"], pointer_seq, "{cam}");

    // A flood: the camera's burst passes, the rest is refused with its own code and logged
    // nowhere; the socket stays open.
    let before = log(&room.insp, &room.id).await.len();
    for i in 0..30 {
        wi.send(json!({"type": "op", "op_id": format!("f{i}"),
            "op": {"kind": "camera", "capability": "zoom", "value": 1.0 + (i % 4) as f64 * 0.5}}))
            .await;
    }
    let mut acks = 0;
    let mut limited = 0;
    while acks + limited < 30 {
        let m = wi
            .recv_until(|m| m["type"] == "ack" || m["type"] == "error")
            .await;
        match code(&m) {
            "ack" => acks += 1,
            "camera_rate_limited" => limited += 1,
            other => panic!("unexpected answer {other}: {m}"),
        }
    }
    assert!(limited >= 15, "{acks} accepted, {limited} limited");
    assert_eq!(log(&room.insp, &room.id).await.len(), before + acks);
    // The bucket refills: one command a second later passes.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        wi.op(
            "after",
            json!({"kind": "camera", "capability": "torch", "value": false})
        )
        .await["type"],
        "ack"
    );

    // A photo taken while the pointer showed carries it, copied from the log; a pointer the
    // log does not keep is refused and nothing is stored.
    let path = |seq: u64| {
        format!(
            "/api/inspections/{}/evidence?item_id={}&pointer_seq={seq}",
            room.id, room.item
        )
    };
    let r = room
        .business
        .post_raw(&path(9999), "image/jpeg", picture("jpg", 320, 240, 3))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "unknown_pointer", "{}", r.text);
    let r = room
        .business
        .post_raw(
            &path(pointer_seq),
            "image/jpeg",
            picture("jpg", 320, 240, 4),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let state = room
        .insp
        .get(&format!("/api/inspections/{}/state", room.id))
        .await;
    let evidence = state.body["state"]["items"][&room.item]["evidence"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(evidence.len(), 1, "only the second upload is stored");
    let p = &evidence[0]["pointer"];
    assert_eq!(p["seq"], pointer_seq, "{p}");
    assert_eq!(p["at"], json!({"x": 0.25, "y": 0.75}), "{p}");
    app.stop().await;
}

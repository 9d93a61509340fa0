//! Issue 23 over the socket, without media: a mark that names no frame, or a frame the
//! server never sent to the marker, is placed at the server's time and the log says by which
//! rule; a client cannot claim the server's resolution. (With real video and a delay relay:
//! seen_frame_browser.)

use anyhow::{ensure, Result};
use inspector_tests::{spawn_app, ws_connect, Role};
use serde_json::{json, Value};

#[tokio::test]
async fn a_forged_frame_falls_back_to_server_time() -> Result<()> {
    let app = spawn_app().await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    let mut ws = ws_connect(&insp, &id)
        .await
        .expect("the inspector's socket");
    let welcome = ws.hello(None).await;
    let items: Vec<String> = welcome["checklist"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["id"].as_str().map(String::from))
        .collect();
    ensure!(items.len() >= 3, "a checklist: {welcome}");
    let r = ws.op("s", json!({"kind": "start"})).await;
    ensure!(r["type"] == "ack", "start: {r}");
    let ops = [
        (
            "none",
            json!({"kind": "set_result", "item_id": items[0], "result": "compliant"}),
        ),
        (
            "never-sent",
            json!({"kind": "set_result", "item_id": items[1], "result": "compliant",
                   "seen": {"rtp_timestamp": 123_456, "presentation_time": 1000.5,
                            "receive_time": 990.25, "click_offset_ms": 40}}),
        ),
        (
            "no-timestamp",
            json!({"kind": "set_result", "item_id": items[2], "result": "compliant",
                   "seen": {"click_offset_ms": 10}}),
        ),
        (
            "clear",
            json!({"kind": "set_result", "item_id": items[0], "result": "clear",
                         "seen": {"rtp_timestamp": 1}}),
        ),
    ];
    for (op_id, op) in &ops {
        let r = ws.op(op_id, op.clone()).await;
        ensure!(r["type"] == "ack", "{op_id}: {r}");
    }
    // The server's fields, and out-of-range claims, are refused with a stable code.
    for (op_id, seen) in [
        ("rule", json!({"rtp_timestamp": 1, "rule": "seen_frame"})),
        ("at", json!({"rtp_timestamp": 1, "at_micros": 5})),
        (
            "offset",
            json!({"rtp_timestamp": 1, "click_offset_ms": 3_600_000}),
        ),
        ("ts", json!({"rtp_timestamp": -1})),
    ] {
        let r = ws
            .op(
                op_id,
                json!({"kind": "set_result", "item_id": items[1], "result": "violation", "seen": seen}),
            )
            .await;
        ensure!(
            r["type"] == "error" && (r["code"] == "invalid_field" || r["code"] == "bad_message"),
            "{op_id}: {r}"
        );
    }
    let (status, _, body) = insp
        .get_bytes(&format!("/api/inspections/{id}/events.jsonl"))
        .await;
    ensure!(status == 200, "events: {status}");
    let marks: Vec<Value> = String::from_utf8(body)?
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "set_result")
        .collect();
    let seen: Vec<&Value> = marks.iter().map(|e| &e["payload"]["seen"]).collect();
    ensure!(marks.len() == 4, "four marks: {marks:#?}");
    ensure!(
        seen[0] == &json!({"rule": "server_time_no_metadata"}),
        "no metadata: {}",
        seen[0]
    );
    ensure!(
        seen[1]
            == &json!({"rule": "server_time_implausible", "rtp_timestamp": 123_456,
                       "presentation_time": 1000.5, "receive_time": 990.25,
                       "click_offset_ms": 40.0}),
        "a frame never sent: {}",
        seen[1]
    );
    ensure!(
        seen[2] == &json!({"rule": "server_time_no_metadata", "click_offset_ms": 10.0}),
        "no timestamp: {}",
        seen[2]
    );
    ensure!(seen[3].is_null(), "a clear is no mark: {}", seen[3]);
    app.stop().await;
    Ok(())
}

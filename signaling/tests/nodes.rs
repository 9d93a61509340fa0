//! Several `inspector` processes on one PostgreSQL database (issue 20): what one node changes
//! reaches the sockets another node holds within a second, through `LISTEN/NOTIFY`
//! (`signaling::signals`), not through the periodic access re-check, which this test sets to a
//! minute so that only the signal can be what closes a socket.
//!
//! Runs on PostgreSQL on every pass (`inspector_tests::pg_server_url`); the PostgreSQL pass of
//! `scripts/test` leaves it out, so it runs once.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{add_user, login, start, EXE};
use inspector_tests::{ws_connect, Client, Ws};
use serde_json::json;

/// The target of issue 20: a revocation on one node closes a socket on another within this.
const WITHIN: Duration = Duration::from_secs(1);

/// Waits for `ws` to be closed by the server with 4401 (access ended); how long it took.
async fn closed_for_access(ws: &mut Ws, since: Instant, what: &str) -> Duration {
    let code = ws.close_code(Duration::from_secs(10)).await;
    let took = since.elapsed();
    assert_eq!(code, Some(4401), "{what}: closed with {code:?}");
    println!("{what}: closed after {took:?}");
    assert!(took < WITHIN, "{what}: closed after {took:?}");
    took
}

/// A greeted socket of `client` on inspection `id`, and its checklist's item ids.
async fn socket(client: &Client, id: &str) -> (Ws, Vec<String>) {
    let mut ws = ws_connect(client, id).await.expect("socket");
    let welcome = ws.hello(None).await;
    let items = welcome["checklist"]
        .as_array()
        .expect("checklist")
        .iter()
        .map(|i| i["id"].as_str().expect("item id").to_string())
        .collect();
    (ws, items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_ended_on_one_node_closes_sockets_on_another_within_a_second() {
    let db = inspector_tests::fresh_pg_database(&inspector_tests::pg_server_url()).await;
    let _guard = inspector_tests::PgDatabaseGuard::for_url(&db);
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let config = dir_a.path().join("inspector.toml");
    std::fs::write(&config, "access_recheck_secs = 60\n").expect("config");
    let a = start(dir_a.path(), &db, &config).await;
    let b = start(dir_b.path(), &db, &config).await;
    add_user(&db, "inspector1", "inspector");
    add_user(&db, "inspector2", "inspector");

    // The inspector works through node A; the business and every socket of the inspection
    // are on node B.
    let insp_a = login(&a.base, "inspector1").await;
    let id = insp_a.create_inspection().await;
    let r = insp_a
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let inv = r.body["invitation"]["id"]
        .as_str()
        .expect("invitation id")
        .to_string();
    let mut business = Client::new(&b.base);
    assert_eq!(
        business
            .accept(r.body["token"].as_str().expect("token"))
            .await
            .status,
        200
    );
    let insp_b = insp_a.on(&b.base);
    let (mut insp_ws, items) = socket(&insp_b, &id).await;
    assert_eq!(
        insp_ws.op("start", json!({"kind": "start"})).await["type"],
        "ack"
    );
    let (mut business_ws, _) = socket(&business, &id).await;

    // 1. The invitation revoked on A: the business's socket on B closes; the inspector's
    // stays open and keeps working.
    let t = Instant::now();
    let r = insp_a
        .post_json(
            &format!("/api/inspections/{id}/invitations/{inv}/revoke"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    closed_for_access(&mut business_ws, t, "revoked invitation, guest socket on B").await;
    let ack = insp_ws
        .op(
            "still-open",
            json!({"kind": "set_result", "item_id": items[0], "result": "compliant"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");

    // 2. The inspector signs out on A: the same session's socket on B closes.
    let t = Instant::now();
    let r = insp_a.post_json("/api/auth/logout", &json!({})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    closed_for_access(&mut insp_ws, t, "signed out, staff socket on B").await;

    // 3. An account disabled from the command line (a third process): its socket on B closes.
    let other = login(&b.base, "inspector2").await;
    let id2 = other.create_inspection().await;
    let (mut other_ws, _) = socket(&other, &id2).await;
    let out = Command::new(EXE)
        .args(["user", "disable", "inspector2", "--database-url", &db])
        .output()
        .expect("user disable");
    // From the command's exit, just after its commit (its start-up is not the signal's time).
    let t = Instant::now();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    closed_for_access(&mut other_ws, t, "account disabled by the CLI, socket on B").await;
}

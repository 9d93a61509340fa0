//! Issue 10, item 2: a live socket dies with the access it was opened with. Before, a socket
//! kept getting `ack`s after `POST /api/auth/logout`, after its account was disabled, and after
//! its invitation expired; only revocation closed it. Every case now closes it with 4401, and
//! the socket cannot be reopened. (`inspector user disable` from another process:
//! signaling/tests/access.rs.)

use std::time::Duration;

use inspector_tests::{spawn_app_with, ws_connect, Client, Role, TestApp, Ws};
use serde_json::json;

/// Re-checks every second, so expiry is seen quickly.
async fn app() -> TestApp {
    spawn_app_with(|c| c.access_recheck = Duration::from_secs(1)).await
}

struct Setup {
    insp: Client,
    business: Client,
    id: String,
    invitation: String,
}

async fn setup(app: &TestApp) -> Setup {
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    let r = insp
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    let invitation = r.body["invitation"]["id"].as_str().unwrap().to_string();
    let mut business = app.anonymous();
    assert_eq!(
        business
            .accept(r.body["token"].as_str().unwrap())
            .await
            .status,
        200
    );
    Setup {
        insp,
        business,
        id,
        invitation,
    }
}

/// A socket that works: welcome, then an acknowledged presence op.
async fn working_socket(c: &Client, id: &str) -> Ws {
    let mut ws = ws_connect(c, id).await.expect("connects");
    assert_eq!(ws.hello(None).await["type"], "welcome");
    // Op ids are unique per participant, and a participant may have several sockets.
    let op_id = format!("p-{}", uuid::Uuid::new_v4());
    let r = ws
        .op(&op_id, json!({"kind": "presence", "quality": "good"}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    ws
}

/// The socket is closed with 4401 within `within`, and a new one is refused.
async fn closed_for_good(ws: &mut Ws, c: &Client, id: &str, within: Duration) {
    assert_eq!(ws.close_code(within).await, Some(4401));
    assert_eq!(ws_connect(c, id).await.err(), Some(401));
}

/// At once: within this (the action fires the socket's stop signal in-process).
const AT_ONCE: Duration = Duration::from_secs(1);
/// By the periodic re-check (every second here).
const BY_RECHECK: Duration = Duration::from_secs(4);

#[tokio::test]
async fn logout_closes_the_sessions_sockets() {
    let app = app().await;
    let s = setup(&app).await;
    // A second session of the same user keeps its socket: only the ended session's close.
    let mut other = app.anonymous();
    let r = other
        .post_json(
            "/api/auth/login",
            &json!({"username": "inspector1", "password": "a long test password"}),
        )
        .await;
    assert_eq!(r.status, 200);
    other.csrf = r.body["csrf_token"].as_str().map(String::from);
    let mut ws = working_socket(&s.insp, &s.id).await;
    let mut kept = working_socket(&other, &s.id).await;
    assert_eq!(
        s.insp
            .post_json("/api/auth/logout", &json!({}))
            .await
            .status,
        204
    );
    closed_for_good(&mut ws, &s.insp, &s.id, AT_ONCE).await;
    let r = kept
        .op("p1", json!({"kind": "presence", "quality": "fair"}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    // The business logs out too: its guest session ends, and its sockets with it.
    let mut wb = working_socket(&s.business, &s.id).await;
    assert_eq!(
        s.business
            .post_json("/api/auth/logout", &json!({}))
            .await
            .status,
        204
    );
    closed_for_good(&mut wb, &s.business, &s.id, AT_ONCE).await;
    app.stop().await;
}

#[tokio::test]
async fn disabling_an_account_closes_its_sockets() {
    let app = app().await;
    let admin = app.staff("admin", Role::Admin).await;
    let s = setup(&app).await;
    let mut ws = working_socket(&s.insp, &s.id).await;
    // The disabled user may be an admin watching the room too.
    let mut wa = working_socket(&admin, &s.id).await;
    let id = s.insp.get("/api/auth/me").await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = admin
        .post_json(&format!("/api/users/{id}/disable"), &json!({}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    closed_for_good(&mut ws, &s.insp, &s.id, AT_ONCE).await;
    let r = wa
        .op("p1", json!({"kind": "presence", "quality": "fair"}))
        .await;
    assert_eq!(r["type"], "ack", "other users' sockets stay: {r}");
    app.stop().await;
}

#[tokio::test]
async fn an_expired_session_closes_its_sockets() {
    let app = app().await;
    let s = setup(&app).await;
    let mut ws = working_socket(&s.insp, &s.id).await;
    // Time passes: the session's expiry is now in the past.
    sqlx::query("UPDATE sessions SET expires_at = $1")
        .bind(chrono::Utc::now().timestamp_micros() - 1)
        .execute(&app.db)
        .await
        .unwrap();
    closed_for_good(&mut ws, &s.insp, &s.id, BY_RECHECK).await;
    app.stop().await;
}

#[tokio::test]
async fn an_expired_invitation_closes_its_sockets() {
    let app = app().await;
    let s = setup(&app).await;
    let mut wb = working_socket(&s.business, &s.id).await;
    let mut wi = working_socket(&s.insp, &s.id).await;
    sqlx::query("UPDATE invitations SET expires_at = $1 WHERE id = $2")
        .bind(chrono::Utc::now().timestamp_micros() - 1)
        .bind(&s.invitation)
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(wb.close_code(BY_RECHECK).await, Some(4401));
    // The durable results access outlives the invitation: the browser is still known, and
    // may read its results, but it takes no part live any more (docs/security.md).
    assert_eq!(ws_connect(&s.business, &s.id).await.err(), Some(403));
    s.business.forget_cookie("inspector_results");
    assert_eq!(ws_connect(&s.business, &s.id).await.err(), Some(401));
    let r = wi
        .op("p1", json!({"kind": "presence", "quality": "fair"}))
        .await;
    assert_eq!(r["type"], "ack", "the inspector stays: {r}");
    app.stop().await;
}

#[tokio::test]
async fn revoking_an_invitation_closes_its_sockets_with_4401() {
    let app = app().await;
    let s = setup(&app).await;
    let mut wb = working_socket(&s.business, &s.id).await;
    let mut wb2 = working_socket(&s.business, &s.id).await;
    let r = s
        .insp
        .post_json(
            &format!(
                "/api/inspections/{}/invitations/{}/revoke",
                s.id, s.invitation
            ),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 204);
    closed_for_good(&mut wb, &s.business, &s.id, AT_ONCE).await;
    assert_eq!(wb2.close_code(AT_ONCE).await, Some(4401));
    app.stop().await;
}

#[tokio::test]
async fn a_server_shutdown_is_not_an_end_of_access() {
    // Clients give up on 4401; on a restart they must reconnect, so the close code is 1001.
    let app = app().await;
    let s = setup(&app).await;
    let mut wi = working_socket(&s.insp, &s.id).await;
    let mut wb = working_socket(&s.business, &s.id).await;
    let stopping = tokio::spawn(app.stop());
    assert_eq!(wi.close_code(Duration::from_secs(5)).await, Some(1001));
    assert_eq!(wb.close_code(Duration::from_secs(5)).await, Some(1001));
    stopping.await.unwrap();
}

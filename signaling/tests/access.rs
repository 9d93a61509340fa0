//! Issue 10, item 2, across processes: `inspector user disable` runs in its own process, so
//! nothing in the server is told; the server's periodic re-check of every open socket's
//! session closes the disabled user's socket with 4401 within a few seconds.

use std::process::{Command, Stdio};
use std::time::Duration;

use inspector_tests::{spawn_app_with, ws_connect, Role};
use serde_json::json;

const EXE: &str = env!("CARGO_BIN_EXE_inspector");

#[tokio::test]
async fn inspector_user_disable_from_the_cli_closes_open_sockets() {
    let app = spawn_app_with(|c| c.access_recheck = Duration::from_secs(1)).await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    let mut ws = ws_connect(&insp, &id).await.expect("connects");
    assert_eq!(ws.hello(None).await["type"], "welcome");
    let r = ws
        .op("p1", json!({"kind": "presence", "quality": "good"}))
        .await;
    assert_eq!(r["type"], "ack", "{r}");
    let database_url = app.database_url.clone();
    let data_dir = app.data_dir.path().to_path_buf();
    let status = tokio::task::spawn_blocking(move || {
        Command::new(EXE)
            .args(["user", "disable", "inspector1"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--database-url", &database_url])
            .stdout(Stdio::null())
            .status()
            .expect("run inspector user disable")
    })
    .await
    .expect("join");
    assert!(status.success());
    // The re-check runs every second here (every 5 s by default).
    assert_eq!(ws.close_code(Duration::from_secs(4)).await, Some(4401));
    assert_eq!(ws_connect(&insp, &id).await.err(), Some(401));
    app.stop().await;
}

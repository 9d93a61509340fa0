//! Webhooks across `kill -9` of a real `inspector` process, with a real receiver in the test:
//! a change acknowledged before the process dies is delivered by the next process (the
//! outbox row was committed with the change; the endpoint's sealed secret and its key file
//! survive), and a delivery the kill cut short is sent again with the same event id.
//! PostgreSQL under `INSPECTOR_TEST_PG_URL`, else a SQLite file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use inspector_tests::webhooks::{signature_valid, Receiver};
use inspector_tests::Client;
use serde_json::json;

mod common;
use common::{add_user, database_url, login, start};

fn config(dir: &Path, name: &str, webhooks: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("[notify]\ntick_millis = 0\n[webhooks]\nallow_http_loopback = true\n{webhooks}"),
    )
    .expect("config file");
    path
}

async fn register(admin: &Client, url: &str) -> (String, String) {
    let r = admin
        .post_json(
            "/api/webhooks",
            &json!({"url": url, "events": ["inspection.scheduled", "inspection.started"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["endpoint"]["id"].as_str().unwrap().to_string(),
        r.body["secret"].as_str().unwrap().to_string(),
    )
}

async fn delivered(admin: &Client, hook: &str, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..200 {
        let r = admin.get(&format!("/api/webhooks/{hook}/deliveries")).await;
        let d = r.body["deliveries"].as_array().cloned().unwrap_or_default();
        if d.len() == n && d.iter().all(|x| x["state"] == "delivered") {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deliveries never delivered");
}

#[tokio::test]
async fn kill_9_between_the_change_and_the_delivery_loses_nothing() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    // The first process never runs its worker: whatever it acknowledged is only in the outbox
    // when it dies.
    let quiet = config(dir.path(), "quiet.toml", "tick_millis = 0\n");
    let server = start(dir.path(), &db, &quiet).await;
    add_user(&db, "admin1", "admin");
    add_user(&db, "inspector1", "inspector");
    let admin = login(&server.base, "admin1").await;
    let (hook, secret) = register(&admin, &rx.url).await;
    let inspector = login(&server.base, "inspector1").await;
    let id = inspector.create_inspection().await;
    let r = inspector
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "live"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    server.kill_9();
    assert!(rx.received().is_empty());

    let working = config(dir.path(), "working.toml", "tick_millis = 100\n");
    let server = start(dir.path(), &db, &working).await;
    let got = rx
        .wait_until(Duration::from_secs(20), |g| g.len() >= 2)
        .await;
    let mut types: Vec<String> = got
        .iter()
        .map(|r| {
            assert!(
                signature_valid(r, &secret),
                "signed with the secret from before the kill"
            );
            assert_eq!(r.json()["inspection_id"], id.as_str());
            r.json()["type"].as_str().unwrap().to_string()
        })
        .collect();
    types.sort();
    assert_eq!(types, ["inspection.scheduled", "inspection.started"]);
    let admin = login(&server.base, "admin1").await;
    let d = delivered(&admin, &hook, 2).await;
    assert!(d.iter().all(|x| x["attempts"] == 1), "{d:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), 2, "each once");
}

#[tokio::test]
async fn a_delivery_cut_short_by_kill_9_is_sent_again_with_the_same_event_id() {
    let rx = Receiver::start().await;
    // The receiver holds the first request until the process is dead.
    rx.delay(Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    let cfg = config(
        dir.path(),
        "hooks.toml",
        "tick_millis = 100\ntimeout_secs = 5\nlease_secs = 6\n",
    );
    let server = start(dir.path(), &db, &cfg).await;
    add_user(&db, "admin1", "admin");
    add_user(&db, "inspector1", "inspector");
    let admin = login(&server.base, "admin1").await;
    let (hook, secret) = register(&admin, &rx.url).await;
    let inspector = login(&server.base, "inspector1").await;
    inspector.create_inspection().await;
    rx.wait_until(Duration::from_secs(10), |g| g.len() == 1)
        .await;
    server.kill_9();
    let killed_at = Instant::now();
    rx.delay(Duration::ZERO);
    let server = start(dir.path(), &db, &cfg).await;
    let got = rx
        .wait_until(Duration::from_secs(20), |g| g.len() >= 2)
        .await;
    // Not before the lease of the cut attempt ended (at least once, never two at a time).
    assert!(got[1].at >= killed_at, "after the kill");
    assert_eq!(
        got[1].json()["id"],
        got[0].json()["id"],
        "the same event id"
    );
    assert_eq!(got[1].body, got[0].body);
    assert!(signature_valid(&got[1], &secret));
    let admin = login(&server.base, "admin1").await;
    let d = delivered(&admin, &hook, 1).await;
    assert_eq!(d[0]["attempts"], 2, "the cut attempt is counted: {}", d[0]);
}

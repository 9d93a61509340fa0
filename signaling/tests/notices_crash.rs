//! The durable scheduler with real `inspector` processes and a real SMTP server (aiosmtpd):
//! `kill -9` between two reminders loses none and doubles none; two processes on one
//! database (PostgreSQL under `INSPECTOR_TEST_PG_URL`, else one SQLite file) send each
//! message once. These run on the wall clock (the processes' own scheduler loop), with
//! reminders seconds apart.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use inspector_tests::smtp::SmtpServer;
use inspector_tests::{inspection_body, Client};
use serde_json::json;

mod common;
use common::{add_user, database_url, login, start};

fn write_config(dir: &Path, smtp_port: u16) -> std::path::PathBuf {
    let path = dir.join("inspector.toml");
    std::fs::write(
        &path,
        format!(
            "[notify]\ntick_millis = 100\nreminder_offsets_secs = [6, 3]\n\
             [notify.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n\
             from = \"Inspector <noreply@inspector.test>\"\ntimeout_secs = 5\n"
        ),
    )
    .expect("config file");
    path
}

/// An inspection starting `secs` seconds from now, with the business's and the inspector's
/// e-mail contacts.
async fn inspection_in(c: &Client, secs: i64) -> (String, chrono::DateTime<Utc>) {
    let start = Utc::now() + chrono::Duration::seconds(secs);
    let mut body = inspection_body(None);
    body["scheduled_at"] = json!(start.to_rfc3339());
    let r = c.post_json("/api/inspections", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = c
        .post_json(
            &format!("/api/inspections/{id}/contacts"),
            &json!({"email": "shop@example.test", "consent": "business"}),
        )
        .await;
    assert!(r.status == 201 || r.status == 200, "{}", r.text);
    (id, start)
}

async fn until(t: chrono::DateTime<Utc>) {
    let left = (t - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left).await;
}

#[tokio::test]
async fn kill_9_between_reminders_loses_none_and_doubles_none() {
    let smtp = SmtpServer::start().await.expect("smtp server");
    let dir = tempfile::tempdir().unwrap();
    let db = database_url(dir.path()).await;
    let config = write_config(dir.path(), smtp.port);
    let server = start(dir.path(), &db, &config).await;
    add_user(&db, "inspector1", "inspector");
    let c = login(&server.base, "inspector1").await;
    let (id, start_at) = inspection_in(&c, 9).await;
    // The notice at once, the 6-second reminder: then the process dies.
    smtp.wait_for(2, Duration::from_secs(15)).await.unwrap();
    server.kill_9();
    let server = start(dir.path(), &db, &config).await;
    let c = login(&server.base, "inspector1").await;
    // The 3-second reminder comes from the restarted process; nothing else, ever.
    smtp.wait_for(3, Duration::from_secs(15)).await.unwrap();
    until(start_at + chrono::Duration::seconds(2)).await;
    let mails = smtp.messages().unwrap();
    assert_eq!(mails.len(), 3, "{mails:#?}");
    assert!(mails[0].calendar.is_some());
    assert!(
        mails[1].subject.contains("через 6 секунд"),
        "{}",
        mails[1].subject
    );
    assert!(
        mails[2].subject.contains("через 3 секунды"),
        "{}",
        mails[2].subject
    );
    let d = c.get(&format!("/api/inspections/{id}/deliveries")).await;
    assert_eq!(d.status, 200, "{}", d.text);
    let rows = d.body["deliveries"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        // A row the kill caught between the SMTP answer and its record stays `sending`
        // (then `unknown`): it is never pending again, so never sent twice.
        assert!(
            matches!(r["state"].as_str(), Some("sent" | "sending" | "unknown")),
            "{r}"
        );
        assert_eq!(r["attempts"], 1, "{r}");
    }
}

#[tokio::test]
async fn two_processes_on_one_database_send_each_message_once() {
    let smtp = SmtpServer::start().await.expect("smtp server");
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let db = database_url(dir_a.path()).await;
    let config = write_config(dir_a.path(), smtp.port);
    let a = start(dir_a.path(), &db, &config).await;
    let b = start(dir_b.path(), &db, &config).await;
    add_user(&db, "inspector1", "inspector");
    let c = login(&a.base, "inspector1").await;
    let r = c
        .post_json("/api/me/contacts", &json!({"email": "insp@example.test"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut ids = Vec::new();
    let mut last = Utc::now();
    for _ in 0..3 {
        let (id, s) = inspection_in(&c, 9).await;
        ids.push(id);
        last = s;
    }
    until(last + chrono::Duration::seconds(2)).await;
    // Per inspection: the notice, two reminders to the business, two to the inspector.
    let mails = smtp.wait_for(15, Duration::from_secs(10)).await.unwrap();
    assert_eq!(mails.len(), 15, "{mails:#?}");
    for id in &ids {
        let d = c.get(&format!("/api/inspections/{id}/deliveries")).await;
        let rows = d.body["deliveries"].as_array().unwrap().clone();
        assert_eq!(rows.len(), 5);
        for r in rows {
            assert_eq!(
                (r["state"].as_str(), r["attempts"].as_i64()),
                (Some("sent"), Some(1)),
                "{r}"
            );
        }
    }
    drop(b);
    drop(a);
}

//! Webhooks (issue 22 item 3) against a real HTTP receiver in the test: every event type
//! arrives signed (the HMAC checked independently with ring) in the documented envelope;
//! retries after failures with a doubling wait (counted from the end of the failed attempt); `failed` after the last attempt with the
//! receiver's answer bounded; replay with the same event id; timeouts; the refused inputs and
//! the bounds, each changing no stored row. (`kill -9`: signaling/tests/webhooks_crash.rs.)

use std::time::Duration;

use inspector_tests::presc::{self, SITE};
use inspector_tests::webhooks::{signature_valid, Receiver};
use inspector_tests::{act, images, spawn_app_with, Client, Role, TestApp};
use serde_json::{json, Value};

use crate::openapi::Spec;

const ALL: [&str; 5] = [
    "inspection.scheduled",
    "inspection.started",
    "inspection.finished",
    "act.signed",
    "prescription.item_decided",
];

async fn hooks_app(adjust: impl FnOnce(&mut signaling::webhooks::WebhooksConfig)) -> TestApp {
    spawn_app_with(|c| {
        c.webhooks.tick_millis = 100;
        c.webhooks.allow_http_loopback = true;
        c.webhooks.retry_base_secs = 1;
        c.webhooks.retry_max_secs = 2;
        adjust(&mut c.webhooks);
    })
    .await
}

/// Registers an endpoint; returns its id and secret.
async fn register(admin: &Client, url: &str, events: &[&str]) -> (String, String) {
    let r = admin
        .post_json(
            "/api/webhooks",
            &json!({"url": url, "events": events, "description": "ЕРКНМ шлюз"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let secret = r.body["secret"].as_str().expect("secret").to_string();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    (
        r.body["endpoint"]["id"].as_str().unwrap().to_string(),
        secret,
    )
}

async fn deliveries(admin: &Client, hook: &str) -> Vec<Value> {
    let r = admin.get(&format!("/api/webhooks/{hook}/deliveries")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["deliveries"].as_array().unwrap().clone()
}

/// Waits until the endpoint's deliveries satisfy `pred`.
async fn deliveries_until(
    admin: &Client,
    hook: &str,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..200 {
        let d = deliveries(admin, hook).await;
        if pred(&d) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "deliveries never got there: {:#?}",
        deliveries(admin, hook).await
    );
}

#[tokio::test]
async fn every_event_arrives_signed_in_the_documented_envelope() {
    let rx = Receiver::start().await;
    let app = hooks_app(|_| {}).await;
    let admin = app.staff("admin", Role::Admin).await;
    let (hook, secret) = register(&admin, &rx.url, &ALL).await;
    let spec = Spec {
        doc: admin.get("/api/openapi.json").await.body,
    };
    let made = admin
        .post_json(
            "/api/webhooks",
            &json!({"url": "https://hooks.example.org/in", "events": ["act.signed"]}),
        )
        .await;
    spec.check("post", "/api/webhooks", &made);
    let r = admin
        .delete(&format!(
            "/api/webhooks/{}",
            made.body["endpoint"]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Listing never shows the secret.
    let list = admin.get("/api/webhooks").await;
    assert_eq!(list.status, 200);
    assert!(!list.text.contains(&secret));
    assert_eq!(list.body["endpoints"][0]["events"], json!(ALL));

    // Scheduled, started, finished, and the act signed by both sides.
    let (f, _) = act::signed_bundle(&app).await;
    // A reschedule is a second `inspection.scheduled`, revision 1.
    let moved = f.inspector.create_inspection().await;
    let when = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let r = f
        .inspector
        .post_json(
            &format!("/api/inspections/{moved}/reschedule"),
            &json!({"scheduled_at": when}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A prescription with a decision of each kind.
    let two = presc::finished_with_two_violations(&app, "inspector2").await;
    let pid = presc::issue(&two).await["id"].as_str().unwrap().to_string();
    let rep = presc::representative(&app, &two.inspector, &two.id).await;
    let near = presc::trace(&[
        (SITE.0 + 0.0001, SITE.1, 10),
        (SITE.0 + 0.0001, SITE.1 + 0.0001, 0),
    ]);
    for item in ["1", "2"] {
        let r = presc::send_proof(
            &rep,
            &pid,
            item,
            Some(&near),
            images::picture("jpg", 320, 240, 0),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let back = two
        .inspector
        .post_json(
            &format!("/api/prescriptions/{pid}/items/1/decision"),
            &json!({"decision": "return", "comment": "Не видно бирки"}),
        )
        .await;
    assert_eq!(back.status, 200, "{}", back.text);
    let ok = two
        .inspector
        .post_json(
            &format!("/api/prescriptions/{pid}/items/2/decision"),
            &json!({"decision": "accept"}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);

    // f: scheduled, started, finished, 2 × act.signed; moved: 2 × scheduled; two: scheduled,
    // started, finished, 2 × item_decided.
    let got = rx
        .wait_until(Duration::from_secs(30), |g| g.len() >= 12)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_again = rx.received();
    assert_eq!(got_again.len(), 12, "nothing more, nothing twice");
    let mut ids = std::collections::BTreeSet::new();
    let mut seen: Vec<(String, String, Value)> = Vec::new();
    for r in &got {
        assert!(
            signature_valid(r, &secret),
            "signature of {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            !signature_valid(r, "whsec_another"),
            "another secret must not verify"
        );
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json")
        );
        let b = r.json();
        assert_eq!(b["version"], 1, "{b}");
        let id = b["id"].as_str().unwrap().to_string();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{b}");
        assert_eq!(r.header("inspector-event-id").as_deref(), Some(id.as_str()));
        assert_eq!(
            r.header("inspector-event-type").as_deref(),
            b["type"].as_str()
        );
        assert!(
            chrono::DateTime::parse_from_rfc3339(b["occurred_at"].as_str().unwrap()).is_ok(),
            "{b}"
        );
        assert!(ids.insert(id), "each event once: {b}");
        seen.push((
            b["inspection_id"].as_str().unwrap().to_string(),
            b["type"].as_str().unwrap().to_string(),
            b["data"].clone(),
        ));
    }
    let of = |insp: &str, kind: &str| -> Vec<Value> {
        seen.iter()
            .filter(|(i, k, _)| i == insp && k == kind)
            .map(|(_, _, d)| d.clone())
            .collect()
    };
    let sched = of(&f.id, "inspection.scheduled");
    assert_eq!(sched.len(), 1);
    assert_eq!(sched[0]["business"]["inn"], "7707083893", "{}", sched[0]);
    assert_eq!(sched[0]["revision"], 0);
    for kind in ["inspection.started", "inspection.finished"] {
        let d = of(&f.id, kind);
        assert_eq!(d.len(), 1, "{kind}");
        assert_eq!(d[0]["hash"].as_str().map(str::len), Some(64), "{}", d[0]);
        assert!(d[0]["seq"].as_u64().is_some());
    }
    // The event's seq and hash are the log's own.
    let log = f
        .inspector
        .get(&format!("/api/inspections/{}/events.jsonl", f.id))
        .await;
    let start = of(&f.id, "inspection.started")[0].clone();
    assert!(
        log.text.contains(start["hash"].as_str().unwrap()),
        "the started event's hash is in the log"
    );
    let mut roles: Vec<String> = of(&f.id, "act.signed")
        .iter()
        .map(|d| d["role"].as_str().unwrap().to_string())
        .collect();
    roles.sort();
    assert_eq!(roles, ["business", "official"]);
    assert!(of(&f.id, "act.signed")
        .iter()
        .all(|d| d["act_sha256"].as_str().map(str::len) == Some(64)));
    let revisions: Vec<i64> = of(&moved, "inspection.scheduled")
        .iter()
        .map(|d| d["revision"].as_i64().unwrap())
        .collect();
    assert_eq!(revisions.len(), 2);
    assert!(
        revisions.contains(&0) && revisions.contains(&1),
        "{revisions:?}"
    );
    let mut decided = of(&two.id, "prescription.item_decided");
    decided.sort_by_key(|d| d["seq"].as_u64());
    assert_eq!(decided.len(), 2);
    assert_eq!(
        (
            decided[0]["item_id"].as_str(),
            decided[0]["decision"].as_str()
        ),
        (Some("1"), Some("return"))
    );
    assert_eq!(decided[0]["comment"], "Не видно бирки");
    assert_eq!(decided[0]["prescription_id"], pid.as_str());
    assert_eq!(
        (
            decided[1]["item_id"].as_str(),
            decided[1]["decision"].as_str()
        ),
        (Some("2"), Some("accept"))
    );
    assert_eq!(of(&two.id, "inspection.finished").len(), 1);

    // The admin sees every delivery: delivered at the first attempt, HTTP 200.
    let d = deliveries_until(&admin, &hook, |d| {
        d.len() == 12 && d.iter().all(|x| x["state"] == "delivered")
    })
    .await;
    for x in &d {
        assert_eq!(
            (x["attempts"].as_i64(), x["last_status"].as_i64()),
            (Some(1), Some(200)),
            "{x}"
        );
        assert!(
            x["delivered_at"].is_string() && x["last_error"].is_null(),
            "{x}"
        );
    }
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_event_a_third_time_after_doubling_waits() {
    let rx = Receiver::start().await;
    rx.fail_next(2);
    let app = hooks_app(|_| {}).await;
    let admin = app.staff("admin", Role::Admin).await;
    let (hook, secret) = register(&admin, &rx.url, &["inspection.scheduled"]).await;
    let inspector = app.staff("inspector1", Role::Inspector).await;
    let id = inspector.create_inspection().await;
    let got = rx
        .wait_until(Duration::from_secs(20), |g| g.len() >= 3)
        .await;
    let answered: Vec<u16> = got.iter().map(|r| r.answered).collect();
    assert_eq!(answered, [500, 500, 200]);
    // The same bytes every time (the stored event), each signed afresh.
    assert!(got
        .iter()
        .all(|r| r.body == got[0].body && signature_valid(r, &secret)));
    assert_eq!(got[0].json()["inspection_id"], id.as_str());
    // retry_base_secs = 1, then doubled to 2 (the cap).
    let first = got[1].at - got[0].at;
    let second = got[2].at - got[1].at;
    assert!(first >= Duration::from_millis(950), "{first:?}");
    assert!(second >= Duration::from_millis(1950), "{second:?}");
    let d = deliveries_until(&admin, &hook, |d| {
        d.len() == 1 && d[0]["state"] == "delivered"
    })
    .await;
    assert_eq!(
        (d[0]["attempts"].as_i64(), d[0]["last_status"].as_i64()),
        (Some(3), Some(200)),
        "{}",
        d[0]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), 3);
}

#[tokio::test]
async fn after_the_last_attempt_a_delivery_fails_and_a_replay_sends_the_same_event() {
    let rx = Receiver::start().await;
    rx.fail_next(1000);
    // 2 MiB answers: the server reads 4 KiB of them and keeps 512 bytes.
    rx.answer_with(2 * 1024 * 1024);
    let app = hooks_app(|c| c.max_attempts = 2).await;
    let admin = app.staff("admin", Role::Admin).await;
    let (hook, secret) = register(&admin, &rx.url, &["inspection.scheduled"]).await;
    let inspector = app.staff("inspector1", Role::Inspector).await;
    inspector.create_inspection().await;
    let d = deliveries_until(&admin, &hook, |d| d.len() == 1 && d[0]["state"] == "failed").await;
    let spec = Spec {
        doc: admin.get("/api/openapi.json").await.body,
    };
    spec.check(
        "get",
        "/api/webhooks/{id}/deliveries",
        &admin.get(&format!("/api/webhooks/{hook}/deliveries")).await,
    );
    spec.check("get", "/api/webhooks", &admin.get("/api/webhooks").await);
    let x = &d[0];
    assert_eq!(
        (x["attempts"].as_i64(), x["last_status"].as_i64()),
        (Some(2), Some(500)),
        "{x}"
    );
    assert_eq!(x["last_error"], "http_status");
    assert_eq!(x["last_response"].as_str().map(str::len), Some(512));
    assert!(x["next_attempt_at"].is_null());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.received().len(), 2, "no attempt after the last");

    rx.fail_next(0);
    rx.answer_with(0);
    let delivery = x["id"].as_str().unwrap();
    let r = admin
        .post_json(
            &format!("/api/webhooks/{hook}/deliveries/{delivery}/replay"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    spec.check(
        "post",
        "/api/webhooks/{id}/deliveries/{delivery}/replay",
        &r,
    );
    assert_eq!(
        (r.body["state"].as_str(), r.body["attempts"].as_i64()),
        (Some("pending"), Some(0))
    );
    let got = rx
        .wait_until(Duration::from_secs(10), |g| g.len() >= 3)
        .await;
    assert_eq!(got[2].answered, 200);
    assert!(signature_valid(&got[2], &secret));
    assert_eq!(
        got[2].json()["id"],
        got[0].json()["id"],
        "a replay keeps the event id"
    );
    let d = deliveries_until(&admin, &hook, |d| d[0]["state"] == "delivered").await;
    assert_eq!(d[0]["attempts"], 1);
    spec.check(
        "get",
        "/api/webhooks/{id}/deliveries",
        &admin.get(&format!("/api/webhooks/{hook}/deliveries")).await,
    );
    // A delivered one can be replayed too (the receiver lost it): the same id again.
    let r = admin
        .post_json(
            &format!("/api/webhooks/{hook}/deliveries/{delivery}/replay"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let got = rx
        .wait_until(Duration::from_secs(10), |g| g.len() >= 4)
        .await;
    assert_eq!(got[3].json()["id"], got[0].json()["id"]);
    // Someone else's delivery id, or none: 404.
    let r = admin
        .post_json(
            &format!(
                "/api/webhooks/{hook}/deliveries/{}/replay",
                uuid::Uuid::new_v4()
            ),
            &json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
}

#[tokio::test]
async fn a_silent_receiver_times_out() {
    let rx = Receiver::start().await;
    rx.delay(Duration::from_secs(4));
    let app = hooks_app(|c| {
        c.timeout_secs = 1;
        c.lease_secs = 2;
        c.max_attempts = 1;
    })
    .await;
    let admin = app.staff("admin", Role::Admin).await;
    let (hook, _) = register(&admin, &rx.url, &["inspection.scheduled"]).await;
    let inspector = app.staff("inspector1", Role::Inspector).await;
    inspector.create_inspection().await;
    let d = deliveries_until(&admin, &hook, |d| d.len() == 1 && d[0]["state"] == "failed").await;
    assert_eq!(d[0]["last_error"], "timeout", "{}", d[0]);
    assert!(d[0]["last_status"].is_null());
}

#[tokio::test]
async fn disabled_endpoints_hear_nothing_deleted_ones_stop_and_bad_input_changes_nothing() {
    let rx = Receiver::start().await;
    let app = hooks_app(|c| c.max_endpoints = 2).await;
    let admin = app.staff("admin", Role::Admin).await;
    let inspector = app.staff("inspector1", Role::Inspector).await;
    let spec = Spec {
        doc: admin.get("/api/openapi.json").await.body,
    };
    let long = format!("https://example.org/{}", "a".repeat(2000));
    for (body, field, code) in [
        (
            json!({"url": "http://example.org/in", "events": ["act.signed"]}),
            "url",
            "https_required",
        ),
        (
            json!({"url": long, "events": ["act.signed"]}),
            "url",
            "invalid_length",
        ),
        (
            json!({"url": "ftp://example.org/", "events": ["act.signed"]}),
            "url",
            "invalid_url",
        ),
        (
            json!({"url": "https://u:p@example.org/", "events": ["act.signed"]}),
            "url",
            "credentials_in_url",
        ),
        (
            json!({"url": "https://example.org/", "events": []}),
            "events",
            "events_required",
        ),
        (
            json!({"url": "https://example.org/", "events": ["inspection.deleted"]}),
            "events",
            "unknown_event",
        ),
        (
            json!({"url": "https://example.org/", "events": ["act.signed"], "description": "x".repeat(201)}),
            "description",
            "invalid_length",
        ),
    ] {
        let before = app.dump().await;
        let r = admin.post_json("/api/webhooks", &body).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "validation_failed"),
            "{body}: {}",
            r.text
        );
        spec.check("post", "/api/webhooks", &r);
        assert_eq!(
            r.body["error"]["fields"][0],
            json!({"field": field, "code": code}),
            "{}",
            r.text
        );
        assert_eq!(app.dump().await, before);
    }
    let (hook, _) = register(&admin, &rx.url, &["inspection.scheduled"]).await;
    let (other, _) = register(&admin, "https://hooks.example.org/in", &["act.signed"]).await;
    let before = app.dump().await;
    let r = admin
        .post_json(
            "/api/webhooks",
            &json!({"url": "https://example.org/", "events": ["act.signed"]}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (409, "too_many_endpoints"),
        "{}",
        r.text
    );
    spec.check("post", "/api/webhooks", &r);
    assert_eq!(app.dump().await, before);

    // Disabled: told nothing committed meanwhile (no outbox row for it); enabled again, it
    // hears of what follows.
    let r = admin
        .put_json(&format!("/api/webhooks/{hook}"), &json!({"enabled": false}))
        .await;
    assert_eq!(
        (r.status, &r.body["enabled"]),
        (200, &json!(false)),
        "{}",
        r.text
    );
    spec.check("put", "/api/webhooks/{id}", &r);
    inspector.create_inspection().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(rx.received().is_empty());
    assert!(deliveries(&admin, &hook).await.is_empty());
    let r = admin
        .put_json(&format!("/api/webhooks/{hook}"), &json!({"enabled": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let later = inspector.create_inspection().await;
    let got = rx
        .wait_until(Duration::from_secs(10), |g| g.len() == 1)
        .await;
    assert_eq!(got[0].json()["inspection_id"], later.as_str());

    // Deleted: gone from the list, nothing more is sent, its id answers 404.
    let r = admin.delete(&format!("/api/webhooks/{hook}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    inspector.create_inspection().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.received().len(), 1);
    let list = admin.get("/api/webhooks").await;
    let ids: Vec<&str> = list.body["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [other.as_str()]);
    for r in [
        admin.get(&format!("/api/webhooks/{hook}/deliveries")).await,
        admin
            .put_json(&format!("/api/webhooks/{hook}"), &json!({"enabled": true}))
            .await,
        admin.delete(&format!("/api/webhooks/{hook}")).await,
    ] {
        assert_eq!((r.status, r.code()), (404, "not_found"), "{}", r.text);
    }
    // An event only `other` would want was never created, so nothing waits for it.
    let before = app.dump().await;
    let r = admin
        .put_json(
            &format!("/api/webhooks/{other}"),
            &json!({"events": ["nope"]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    assert_eq!(app.dump().await, before);
}

/// Makes the database refuse the status `finished` (the status projection's UPDATE, which runs
/// after the outbox row is written in the same transaction), or lifts that. One connection
/// for both: SQLite checks a DROP against the schema that connection last read.
async fn fault_on_finish(conn: &mut sqlx::pool::PoolConnection<sqlx::Any>, pg: bool, on: bool) {
    let sqls: &[&str] = match (pg, on) {
        (false, true) => &["CREATE TRIGGER hook_fault BEFORE UPDATE ON inspections \
             WHEN NEW.status = 'finished' BEGIN SELECT RAISE(ABORT, 'injected fault'); END"],
        (false, false) => &["DROP TRIGGER hook_fault"],
        (true, true) => &[
            "CREATE OR REPLACE FUNCTION hook_fault() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
            "CREATE TRIGGER hook_fault BEFORE UPDATE ON inspections FOR EACH ROW \
             WHEN (NEW.status = 'finished') EXECUTE FUNCTION hook_fault()",
        ],
        (true, false) => &["DROP TRIGGER hook_fault ON inspections"],
    };
    for sql in sqls {
        sqlx::query(*sql)
            .execute(&mut **conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[tokio::test]
async fn a_change_whose_commit_fails_tells_no_webhook_and_its_retry_tells_one() {
    let rx = Receiver::start().await;
    let app = hooks_app(|_| {}).await;
    let admin = app.staff("admin", Role::Admin).await;
    let (hook, _) = register(&admin, &rx.url, &["inspection.finished"]).await;
    let inspector = app.staff("inspector1", Role::Inspector).await;
    let id = inspector.create_inspection().await;
    let path = format!("/api/inspections/{id}/transition");
    let r = inspector.post_json(&path, &json!({"to": "live"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let pg = app.database_url.starts_with("postgres");
    let mut conn = app.db.acquire().await.expect("a connection");
    fault_on_finish(&mut conn, pg, true).await;
    let r = inspector.post_json(&path, &json!({"to": "finished"})).await;
    assert_eq!((r.status, r.code()), (500, "internal"), "{}", r.text);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        rx.received().is_empty(),
        "a rolled-back finish is told to nobody"
    );
    assert!(deliveries(&admin, &hook).await.is_empty());
    use sqlx::Row;
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM webhook_events")
        .fetch_one(&app.db)
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        rows, 0,
        "no outbox row outlives its rolled-back transaction"
    );
    fault_on_finish(&mut conn, pg, false).await;
    drop(conn);
    // The room reloaded from the database: the retry commits, and is told once.
    let mut r = inspector.post_json(&path, &json!({"to": "finished"})).await;
    for _ in 0..50 {
        if r.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = inspector.post_json(&path, &json!({"to": "finished"})).await;
    }
    assert_eq!(r.status, 200, "{}", r.text);
    let got = rx
        .wait_until(Duration::from_secs(10), |g| !g.is_empty())
        .await;
    assert_eq!(got[0].json()["type"], "inspection.finished");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), 1);
}

//! The inspection's lifecycle is its committed event log: the status is a projection written
//! in the same transaction (so a failed commit leaves both as they were), a cancelled
//! inspection refuses every checklist operation, and the recording's chapters come from the
//! log, not from a broadcast that may be behind.

use std::time::{Duration, Instant};

use inspector_tests::{spawn_app, ws_connect, Client, Role, TestApp};
use serde_json::{json, Value};

fn postgres(app: &TestApp) -> bool {
    app.database_url.starts_with("postgres")
}

/// One connection for the schema changes of the faults: SQLite checks a CREATE or DROP
/// against the schema the connection last read, so they go through the one that made them.
struct Faults {
    conn: sqlx::pool::PoolConnection<sqlx::Any>,
    postgres: bool,
}

impl Faults {
    async fn new(app: &TestApp) -> Faults {
        Faults {
            conn: app.db.acquire().await.expect("a connection"),
            postgres: postgres(app),
        }
    }

    async fn exec(&mut self, sql: &'static str) {
        sqlx::query(sql)
            .execute(&mut *self.conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Makes the database refuse what the named fault says, as a failing disk or a violated
    /// constraint would: `events` refuses a `finish` row, `inspections` the status `finished`.
    async fn inject(&mut self, fault: &str) {
        match (self.postgres, fault) {
            (false, "events") => {
                self.exec(
                    "CREATE TRIGGER fault_events BEFORE INSERT ON events WHEN NEW.kind = 'finish' \
                     BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
                )
                .await
            }
            (false, _) => {
                self.exec(
                    "CREATE TRIGGER fault_inspections BEFORE UPDATE ON inspections \
                     WHEN NEW.status = 'finished' BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
                )
                .await
            }
            (true, fault) => {
                self.exec(
                    "CREATE OR REPLACE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
                )
                .await;
                if fault == "events" {
                    self.exec(
                        "CREATE TRIGGER fault_events BEFORE INSERT ON events FOR EACH ROW \
                         WHEN (NEW.kind = 'finish') EXECUTE FUNCTION fault()",
                    )
                    .await
                } else {
                    self.exec(
                        "CREATE TRIGGER fault_inspections BEFORE UPDATE ON inspections \
                         FOR EACH ROW WHEN (NEW.status = 'finished') EXECUTE FUNCTION fault()",
                    )
                    .await
                }
            }
        }
    }

    async fn heal(&mut self, fault: &str) {
        match (self.postgres, fault) {
            (false, "events") => self.exec("DROP TRIGGER fault_events").await,
            (false, _) => self.exec("DROP TRIGGER fault_inspections").await,
            (true, "events") => self.exec("DROP TRIGGER fault_events ON events").await,
            (true, _) => {
                self.exec("DROP TRIGGER fault_inspections ON inspections")
                    .await
            }
        }
    }
}

/// The stored status row and the kinds in the event log.
async fn status_and_log(app: &TestApp, id: &str) -> (String, Vec<String>) {
    use sqlx::Row;
    let row = sqlx::query("SELECT status FROM inspections WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .expect("inspection row");
    let status: String = row.try_get(0).expect("status");
    let kinds = checklist_sync::read_events(&app.db, id.parse().expect("uuid"))
        .await
        .expect("the log")
        .iter()
        .map(|e| e.body.kind().to_string())
        .collect();
    (status, kinds)
}

async fn started_inspection(app: &TestApp) -> (Client, String) {
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "live"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    (insp, id)
}

#[tokio::test]
async fn a_failed_commit_of_finish_leaves_status_and_log_agreeing_and_a_retry_works() {
    let app = spawn_app().await;
    let (insp, id) = started_inspection(&app).await;
    let path = format!("/api/inspections/{id}/transition");
    assert_eq!(
        status_and_log(&app, &id).await,
        ("live".to_string(), vec!["start".to_string()])
    );

    // The event cannot be stored, then the status row cannot be updated: either way, nothing
    // of the finish is anywhere, and the inspection is still live for everybody.
    let mut faults = Faults::new(&app).await;
    for fault in ["events", "inspections"] {
        faults.inject(fault).await;
        let r = insp.post_json(&path, &json!({"to": "finished"})).await;
        assert_eq!(
            (r.status, r.code()),
            (500, "internal"),
            "{fault}: {}",
            r.text
        );
        assert_eq!(
            status_and_log(&app, &id).await,
            ("live".to_string(), vec!["start".to_string()]),
            "{fault}: the status agrees with the log"
        );
        let shown = insp.get(&format!("/api/inspections/{id}")).await;
        assert_eq!(shown.body["status"], "live");
        assert!(shown.body["finished_at"].is_null());
        let state = insp.get(&format!("/api/inspections/{id}/state")).await;
        assert_eq!(state.body["state"]["lifecycle"]["status"], "live");
        faults.heal(fault).await;
    }
    drop(faults);

    // The retry works: the event is committed and the status follows it, to the microsecond.
    let r = insp.post_json(&path, &json!({"to": "finished"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "finished");
    let (status, kinds) = status_and_log(&app, &id).await;
    assert_eq!(
        (status.as_str(), kinds),
        ("finished", vec!["start".to_string(), "finish".to_string()])
    );
    let state = insp.get(&format!("/api/inspections/{id}/state")).await;
    let finished_at = state.body["state"]["lifecycle"]["finished_at"]
        .as_i64()
        .expect("finished_at in the log");
    let shown =
        chrono::DateTime::parse_from_rfc3339(r.body["finished_at"].as_str().expect("finished_at"))
            .expect("RFC 3339");
    assert_eq!(shown.timestamp_micros(), finished_at);
    let report = checklist_sync::verify(&app.db, id.parse().expect("uuid"))
        .await
        .expect("verify");
    assert!(report.is_intact(), "{report}");
    app.stop().await;
}

#[tokio::test]
async fn cancel_while_live_refuses_results_with_a_stable_code() {
    let app = spawn_app().await;
    let (insp, id) = started_inspection(&app).await;
    let r = insp
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    let mut business = app.anonymous();
    business
        .accept(r.body["token"].as_str().expect("token"))
        .await;
    let mut wi = ws_connect(&insp, &id).await.expect("inspector socket");
    let welcome = wi.hello(None).await;
    let item = welcome["checklist"][0]["id"]
        .as_str()
        .expect("item")
        .to_string();
    let mut wb = ws_connect(&business, &id).await.expect("business socket");
    wb.hello(None).await;
    let ack = wi
        .op(
            "r1",
            json!({"kind": "set_result", "item_id": item, "result": "violation"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");

    // A reason with another target is refused and changes nothing.
    let path = format!("/api/inspections/{id}/transition");
    let before = app.dump().await;
    let r = insp
        .post_json(&path, &json!({"to": "finished", "reason": "withdrawn"}))
        .await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    let r = insp
        .post_json(&path, &json!({"to": "cancelled", "note": "x".repeat(1001)}))
        .await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    assert_eq!(app.dump().await, before);

    let r = insp
        .post_json(
            &path,
            &json!({"to": "cancelled", "reason": "business_absent", "note": "не вышли на связь"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "cancelled");
    // Both sides see the cancellation as an event of the log.
    for ws in [&mut wi, &mut wb] {
        let ev = ws
            .recv_until(|m| m["type"] == "event" && m["kind"] == "cancel")
            .await;
        assert_eq!(
            ev["payload"],
            json!({"reason": "business_absent", "note": "не вышли на связь"})
        );
    }
    // Every checklist operation is refused with the same code; nothing is stored.
    let rows = status_and_log(&app, &id).await.1.len();
    for (n, op) in [
        json!({"kind": "set_result", "item_id": item, "result": "compliant"}),
        json!({"kind": "comment", "item_id": item, "text": "ещё"}),
        json!({"kind": "finish"}),
        json!({"kind": "start"}),
    ]
    .into_iter()
    .enumerate()
    {
        let e = wi.op(&format!("after-{n}"), op.clone()).await;
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("error"), Some("cancelled")),
            "{op}"
        );
    }
    let (status, kinds) = status_and_log(&app, &id).await;
    assert_eq!(status, "cancelled");
    assert_eq!(kinds.len(), rows);
    for to in ["finished", "live", "cancelled", "signed"] {
        let r = insp.post_json(&path, &json!({ "to": to })).await;
        assert_eq!((r.status, r.code()), (409, "illegal_transition"), "to {to}");
    }
    let state = insp.get(&format!("/api/inspections/{id}/state")).await;
    let lc = &state.body["state"]["lifecycle"];
    assert_eq!(
        (&lc["status"], &lc["cancel_reason"], &lc["cancel_note"]),
        (
            &json!("cancelled"),
            &json!("business_absent"),
            &json!("не вышли на связь")
        )
    );
    app.stop().await;
}

/// Waits until the recording's manifest is published (the finalization runs after commit).
async fn manifest(c: &Client, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = c
            .get(&format!("/api/inspections/{id}/recording/manifest"))
            .await;
        if r.status == 200 {
            return r.body;
        }
        assert_eq!(r.code(), "recording_not_ready", "{}", r.text);
        assert!(Instant::now() < deadline, "no manifest after 90 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chapters_come_from_the_log_even_when_the_broadcast_is_behind() {
    let app = spawn_app().await;
    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    // A subscriber of the live broadcast that reads nothing: everything is behind for it.
    let mut behind = app.live.sync.events();
    let mut wi = ws_connect(&insp, &id).await.expect("socket");
    let welcome = wi.hello(None).await;
    let items: Vec<(String, String)> = welcome["checklist"]
        .as_array()
        .expect("checklist")
        .iter()
        .map(|i| {
            (
                i["id"].as_str().expect("id").to_string(),
                format!(
                    "{}. {}",
                    i["number"].as_str().expect("number"),
                    i["question"].as_str().expect("question")
                ),
            )
        })
        .collect();
    let start = wi.op("s", json!({"kind": "start"})).await;
    let t0 = start["server_ts"].as_i64().expect("start ts");

    // The business's camera, recorded: a synthetic segment journaled under the inspection,
    // covering the whole inspection (the media side records; signaling finalizes).
    let recordings = app.data_dir.path().join("recordings");
    let spec = media_recorder::testsrc::SegmentSpec::new(0, t0 - 1_000_000, 12_000_000);
    let segment_dir = recordings.clone();
    let inspection = id.clone();
    tokio::task::spawn_blocking(move || {
        media_recorder::testsrc::write_segment(&segment_dir, &inspection, spec)
    })
    .await
    .expect("join")
    .expect("journals");

    // A burst of results, then finish at once: nothing waits for anybody to catch up.
    let (q1, q2, q3) = (&items[0].0, &items[1].0, &items[2].0);
    let mut ts = Vec::new();
    for (n, (item, result, comment)) in [
        (q1, "violation", None),
        (q1, "violation", Some("нет огнетушителя")),
        (q2, "compliant", None),
        (q3, "not_applicable", None),
        (q1, "compliant", None),
        (q2, "clear", None),
        (q2, "compliant", None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut op = json!({"kind": "set_result", "item_id": item, "result": result});
        if let Some(c) = comment {
            op["comment"] = json!(c);
        }
        let ack = wi.op(&format!("r{n}"), op).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        ts.push(ack["server_ts"].as_i64().expect("ts"));
        // Results a few milliseconds apart, as a fast inspector's are: the containers place
        // chapters to the millisecond, so marks within one millisecond would share a start.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let r = insp
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "finished"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let m = manifest(&insp, &id).await;
    let title = |item: &str| {
        items
            .iter()
            .find(|(i, _)| i == item)
            .map(|(_, t)| t.clone())
            .expect("title")
    };
    // One chapter per finding: the re-save and the clear make none, the changes do.
    let want = vec![
        (q1.clone(), title(q1), "violation", ts[0]),
        (q2.clone(), title(q2), "compliant", ts[2]),
        (q3.clone(), title(q3), "not_applicable", ts[3]),
        (q1.clone(), title(q1), "compliant", ts[4]),
        (q2.clone(), title(q2), "compliant", ts[6]),
    ];
    let chapters = m["chapters"].as_array().expect("chapters");
    // The introduction comes first; then one chapter per finding, titled with its result.
    assert_eq!(chapters[0]["item_id"], "", "{chapters:?}");
    let got: Vec<(String, String, &str, i64)> = chapters[1..]
        .iter()
        .map(|c| {
            (
                c["item_id"].as_str().expect("item").to_string(),
                c["title"].as_str().expect("title").to_string(),
                c["result"].as_str().expect("result"),
                c["mark_at_micros"].as_i64().expect("at"),
            )
        })
        .collect();
    assert_eq!(got.len(), want.len(), "{got:?}");
    let mut previous_mark: Option<i64> = None;
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.0, g.2), (&w.0, w.2));
        assert!(g.1.starts_with(&format!("{} — ", w.1)), "title {}", g.1);
        assert!(
            g.1.contains("(отметка "),
            "the mark's time in the title: {}",
            g.1
        );
        // A chapter begins where its item began being looked at: at the previous mark
        // (these came 15 ms apart, well within the lead-in), never after its own mark.
        assert!(g.3 <= w.3, "chapter {g:?} begins after its mark {}", w.3);
        if let Some(p) = previous_mark {
            assert_eq!(g.3, p, "chapter {g:?} begins at the previous mark");
        }
        previous_mark = Some(w.3);
    }
    // The file itself has them, at the marks' media times.
    let file = recordings.join(&id).join(m["file"].as_str().expect("file"));
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_chapters", "-of", "json"])
        .arg(&file)
        .output()
        .expect("run ffprobe");
    assert!(probe.status.success(), "ffprobe failed");
    let probe: Value = serde_json::from_slice(&probe.stdout).expect("ffprobe JSON");
    let starts: Vec<f64> = probe["chapters"]
        .as_array()
        .expect("chapters in the file")
        .iter()
        .map(|c| {
            c["start_time"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("start_time")
        })
        .collect();
    let epoch = m["epoch_micros"].as_i64().expect("epoch");
    assert_eq!(starts.len(), chapters.len(), "{probe}");
    for (s, c) in starts.iter().zip(chapters) {
        let begins = c["mark_at_micros"].as_i64().expect("at");
        let expected = ((begins - epoch) as f64 / 1e6).max(0.0);
        assert!(
            (s - expected).abs() < 0.01,
            "chapter at {s} s, planned at {expected} s"
        );
    }
    // The subscriber has still read nothing: it was behind the whole time.
    assert!(
        matches!(behind.try_recv(), Ok(ev) if ev.kind == "join"),
        "the unread broadcast still holds the first event"
    );
    app.stop().await;
}

/// Inspector socket, started inspection; returns the socket, the checklist and the start time.
async fn live_inspection(
    insp: &Client,
) -> (String, inspector_tests::Ws, Vec<(String, String)>, i64) {
    let id = insp.create_inspection().await;
    let mut wi = ws_connect(insp, &id).await.expect("socket");
    let welcome = wi.hello(None).await;
    let items = welcome["checklist"]
        .as_array()
        .expect("checklist")
        .iter()
        .map(|i| {
            (
                i["id"].as_str().expect("id").to_string(),
                format!(
                    "{}. {}",
                    i["number"].as_str().expect("number"),
                    i["question"].as_str().expect("question")
                ),
            )
        })
        .collect();
    let start = wi.op("s", json!({"kind": "start"})).await;
    let t0 = start["server_ts"].as_i64().expect("start ts");
    (id, wi, items, t0)
}

/// Journals a synthetic camera segment for an inspection, covering 12 s from `from`.
async fn record(app: &TestApp, id: &str, from: i64) {
    let dir = app.data_dir.path().join("recordings");
    let spec = media_recorder::testsrc::SegmentSpec::new(0, from, 12_000_000);
    let inspection = id.to_string();
    tokio::task::spawn_blocking(move || {
        media_recorder::testsrc::write_segment(&dir, &inspection, spec)
    })
    .await
    .expect("join")
    .expect("journals");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_an_ended_inspection_gets_its_recording_and_a_live_one_does_not() {
    let app = spawn_app().await;
    let insp = app.staff("inspector1", Role::Inspector).await;

    // A finishes while its recording cannot be built yet (its journals reach the disk only
    // later, as when the server stops between the commit and the manifest).
    let (a, mut wa, items, t0) = live_inspection(&insp).await;
    let mut ts = Vec::new();
    for (n, result) in ["violation", "compliant"].into_iter().enumerate() {
        let ack = wa
            .op(
                &format!("a{n}"),
                json!({"kind": "set_result", "item_id": items[n].0, "result": result}),
            )
            .await;
        ts.push(ack["server_ts"].as_i64().expect("ts"));
    }
    let r = insp
        .post_json(
            &format!("/api/inspections/{a}/transition"),
            &json!({"to": "finished"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The finalization that followed the commit found nothing to build.
    app.live.recordings.settled().await;
    assert_eq!(
        insp.get(&format!("/api/inspections/{a}/recording/manifest"))
            .await
            .code(),
        "recording_not_ready"
    );
    // B is live when the server stops.
    let (b, _wb, _, tb) = live_inspection(&insp).await;
    drop(wa);
    record(&app, &a, t0 - 1_000_000).await;
    record(&app, &b, tb - 1_000_000).await;

    let app = app.restart().await;
    let insp = {
        let c = app.anonymous();
        let r = c
            .post_json(
                "/api/auth/login",
                &json!({"username": "inspector1", "password": "a long test password"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let mut c = c;
        c.csrf = r.body["csrf_token"].as_str().map(String::from);
        c
    };
    let m = manifest(&insp, &a).await;
    // The introduction, then A's findings; each chapter begins at most the lead-in before its
    // mark and not after it (the second at the first's mark).
    let chapters: Vec<(String, String, i64)> = m["chapters"]
        .as_array()
        .expect("chapters")
        .iter()
        .map(|c| {
            (
                c["item_id"].as_str().expect("item").to_string(),
                c["result"].as_str().expect("result").to_string(),
                c["mark_at_micros"].as_i64().expect("at"),
            )
        })
        .collect();
    assert_eq!(chapters.len(), 3, "{chapters:?}");
    assert_eq!(chapters[0].0, "", "the introduction first: {chapters:?}");
    assert_eq!(
        chapters[1..]
            .iter()
            .map(|c| (c.0.clone(), c.1.clone()))
            .collect::<Vec<_>>(),
        vec![
            (items[0].0.clone(), "violation".to_string()),
            (items[1].0.clone(), "compliant".to_string()),
        ],
        "the chapters come from A's log"
    );
    assert!(chapters[1].2 <= ts[0] && chapters[1].2 >= ts[0] - 30_000_000);
    assert_eq!(chapters[2].2, ts[0]);
    assert!(m["chapters"][1]["title"]
        .as_str()
        .expect("title")
        .starts_with(&format!("{} — Нарушение", items[0].1)));
    // Recovery is over, and the live inspection was left alone: no manifest, still live.
    app.live.recordings.settled().await;
    assert_eq!(
        insp.get(&format!("/api/inspections/{b}/recording/manifest"))
            .await
            .code(),
        "recording_not_ready"
    );
    assert_eq!(
        insp.get(&format!("/api/inspections/{b}")).await.body["status"],
        "live"
    );
    app.stop().await;
}

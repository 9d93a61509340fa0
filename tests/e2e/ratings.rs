//! Mutual ratings (issue 16) over HTTP: a rating is an event of the inspection's hash chain,
//! changed in place within the edit window; the refusals (before the end, twice, after the
//! window, by a non-party, out of range, without the follow-ups) have stable codes and store
//! nothing; the statistics' numbers; no caller without the right finds an inspector's name in
//! any statistics answer.

use inspector_tests::presc::representative;
use inspector_tests::{spawn_app, spawn_app_with, ws_connect, Client, Role, TestApp};
use serde_json::{json, Value};

/// A finished inspection of `inspector` with its business signed in by invitation.
pub struct Done {
    pub id: String,
    pub business: Client,
    pub results_url: String,
}

/// Creates, starts and finishes an inspection over REST, its business invited and signed in.
pub async fn finished(app: &TestApp, inspector: &Client) -> Done {
    let id = inspector.create_inspection().await;
    let r = inspector
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut business = app.anonymous();
    let acc = business
        .accept(r.body["token"].as_str().expect("token"))
        .await;
    assert_eq!(acc.status, 200, "{}", acc.text);
    let results_url = acc.body["results_url"]
        .as_str()
        .expect("results_url")
        .to_string();
    for to in ["live", "finished"] {
        let r = inspector
            .post_json(
                &format!("/api/inspections/{id}/transition"),
                &json!({ "to": to }),
            )
            .await;
        assert_eq!(r.status, 200, "{to}: {}", r.text);
    }
    Done {
        id,
        business,
        results_url,
    }
}

/// Every criterion of the side at `score`, with follow-ups where a score below 5 needs them;
/// `low` overrides single criteria: `(code, score)`.
pub fn scores(view: &Value, score: i64, low: &[(&str, i64)]) -> Value {
    let list: Vec<Value> = view["criteria"]["criteria"]
        .as_array()
        .expect("criteria")
        .iter()
        .map(|c| {
            let code = c["code"].as_str().expect("code");
            let s = low
                .iter()
                .find(|(k, _)| *k == code)
                .map(|(_, s)| *s)
                .unwrap_or(score);
            if s < 5 {
                json!({"criterion": code, "score": s,
                       "reasons": [c["choices"][0]["code"]], "note": "Подробности причины"})
            } else {
                json!({"criterion": code, "score": s})
            }
        })
        .collect();
    json!({"criteria_version": view["criteria"]["version"], "scores": list})
}

async fn view(c: &Client, id: &str) -> Value {
    let r = c.get(&format!("/api/inspections/{id}/rating")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

async fn events(c: &Client, id: &str) -> Vec<Value> {
    let r = c.get(&format!("/api/inspections/{id}/events.jsonl")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
        .lines()
        .map(|l| serde_json::from_str(l).expect("event line"))
        .collect()
}

/// Sends `body` and expects a refusal with `status` and `code` that stores nothing.
async fn refused(
    app: &TestApp,
    c: &Client,
    method: &str,
    id: &str,
    body: &Value,
    status: u16,
    code: &str,
) -> Value {
    let before = app.dump_all().await;
    let path = format!("/api/inspections/{id}/rating");
    let r = if method == "PUT" {
        c.put_json(&path, body).await
    } else {
        c.post_json(&path, body).await
    };
    assert_eq!(r.status, status, "{method}: {}", r.text);
    assert_eq!(r.code(), code, "{}", r.text);
    assert_eq!(
        app.dump_all().await,
        before,
        "a refused rating stored something"
    );
    r.body
}

fn field_codes(body: &Value) -> Vec<(String, String)> {
    body["error"]["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    (
                        f["field"].as_str().unwrap_or_default().to_string(),
                        f["code"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The counted cells of the statistics, a line per row (reason rows end with their count).
async fn counted_cells(app: &TestApp) -> String {
    use sqlx::Row;
    let mut out = String::new();
    for (table, sql) in [
        ("rating_cells", "SELECT side, control_body_id, subject, month, criterion, n1, n2, n3, n4, n5, n6, n7, n8, n9, n10 FROM rating_cells ORDER BY 1, 2, 3, 4, 5"),
        ("rating_subject_months", "SELECT side, control_body_id, subject, month, ratings FROM rating_subject_months ORDER BY 1, 2, 3, 4"),
        ("rating_cell_reasons", "SELECT side, control_body_id, subject, month, criterion || '/' || reason, n FROM rating_cell_reasons ORDER BY 1, 2, 3, 4, 5"),
    ] {
        for r in sqlx::query(sql).fetch_all(&app.db).await.expect("cells") {
            out.push_str(table);
            for i in 0..r.len() {
                let v = r
                    .try_get::<String, _>(i)
                    .or_else(|_| r.try_get::<i64, _>(i).map(|n| n.to_string()))
                    .expect("a text or a number");
                out.push('|');
                out.push_str(&v);
            }
            out.push('\n');
        }
    }
    out
}

#[tokio::test]
async fn a_rating_is_a_chain_event_changed_in_place() {
    let app = spawn_app().await;
    let inspector = app.staff("insp", Role::Inspector).await;
    let d = finished(&app, &inspector).await;
    let id = &d.id;
    let v = view(&d.business, id).await;
    assert_eq!(v["side"], "business");
    assert_eq!(v["can_rate"], true);
    assert_eq!(v["rating"], Value::Null);
    assert_eq!(v["criteria"]["version"], 1);
    assert!(v["criteria"]["criteria"].as_array().unwrap().len() >= 5);

    // One criterion at 3 without its follow-ups: both the choice and the text are required.
    let mut body = scores(&v, 8, &[]);
    body["scores"][0]["score"] = json!(3);
    let r = refused(
        &app,
        &d.business,
        "POST",
        id,
        &body,
        400,
        "validation_failed",
    )
    .await;
    let first = v["criteria"]["criteria"][0]["code"].as_str().unwrap();
    assert_eq!(
        field_codes(&r),
        vec![
            (
                format!("scores.{first}.reasons"),
                "follow_up_required".into()
            ),
            (format!("scores.{first}.note"), "follow_up_required".into()),
        ]
    );

    let body = scores(&v, 8, &[(first, 3)]);
    let r = d
        .business
        .post_json(&format!("/api/inspections/{id}/rating"), &body)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["rating"]["scores"][0]["score"], 3);
    assert_eq!(r.body["rating"]["scores"][0]["note"], "Подробности причины");
    assert_eq!(r.body["can_rate"], false);
    assert_eq!(r.body["can_change"], true);
    let first_at = r.body["rating"]["first_at"].clone();
    let seq = r.body["rating"]["seq"].as_u64().unwrap();

    // The event is in the chain, chained to its predecessor, made through the server.
    let log = events(&inspector, id).await;
    let e = log
        .iter()
        .find(|e| e["kind"] == "rating")
        .expect("a rating event");
    assert_eq!(e["seq"].as_u64(), Some(seq));
    assert_eq!(e["payload"]["side"], "business");
    assert_eq!(e["payload"]["scores"][0]["score"], 3);
    let prev = &log[(seq - 1) as usize - 1];
    assert_eq!(e["prev_hash"], prev["hash"]);
    // The state folds it (server and browser fold alike).
    let st = inspector.get(&format!("/api/inspections/{id}/state")).await;
    assert_eq!(
        st.body["state"]["ratings"]["business"]["seq"].as_u64(),
        Some(seq)
    );

    // Twice: refused, nothing stored.
    refused(&app, &d.business, "POST", id, &body, 409, "rating_exists").await;

    // A change within the window: a new event revising the first; the first time stays.
    let changed = scores(&v, 9, &[]);
    let r = d
        .business
        .put_json(&format!("/api/inspections/{id}/rating"), &changed)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["rating"]["scores"][0]["score"], 9);
    assert_eq!(r.body["rating"]["first_at"], first_at);
    let log = events(&inspector, id).await;
    let ratings: Vec<&Value> = log.iter().filter(|e| e["kind"] == "rating").collect();
    assert_eq!(ratings.len(), 2);
    assert_eq!(ratings[1]["payload"]["revises"].as_u64(), Some(seq));

    // The durable results access reads the same rating of the same side.
    let token = d
        .results_url
        .rsplit_once("#r=")
        .expect("token")
        .1
        .to_string();
    let durable = app.anonymous();
    let r = durable
        .post_json("/api/results/accept", &json!({ "token": token }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut durable = durable;
    durable.csrf = r.body["csrf_token"].as_str().map(String::from);
    let dv = view(&durable, id).await;
    assert_eq!(dv["side"], "business");
    assert_eq!(dv["rating"]["scores"][0]["score"], 9);

    // The inspector rates the business on its own side.
    let iv = view(&inspector, id).await;
    assert_eq!(iv["side"], "inspector");
    assert_eq!(iv["can_rate"], true);
    let r = inspector
        .post_json(
            &format!("/api/inspections/{id}/rating"),
            &scores(&iv, 7, &[]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["side"], "inspector");
    // The counted cells the projection kept (a low score with reasons, changed to 9, and
    // the inspector's rating) are what deriving them from the scores again gives.
    let kept = counted_cells(&app).await;
    assert!(kept.contains("rating_cells|business|"), "{kept}");
    assert!(kept.contains("rating_cells|inspector|"), "{kept}");
    assert!(
        !kept
            .lines()
            .any(|l| l.starts_with("rating_cell_reasons|") && !l.ends_with("|0")),
        "the changed rating's reasons are still counted: {kept}"
    );
    signaling::ratings::rebuild_cells(&app.db)
        .await
        .expect("rebuild");
    let rebuilt = counted_cells(&app).await;
    let nonzero = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.ends_with("|0"))
            .map(String::from)
            .collect()
    };
    assert_eq!(nonzero(&kept), nonzero(&rebuilt));
    // The organisation's session rates on the business side too (its rating exists).
    let rep = representative(&app, &inspector, id).await;
    let rv = view(&rep, id).await;
    assert_eq!(rv["side"], "business");
    refused(
        &app,
        &rep,
        "POST",
        id,
        &scores(&rv, 6, &[]),
        409,
        "rating_exists",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn refusals_store_nothing() {
    let app = spawn_app().await;
    let inspector = app.staff("insp", Role::Inspector).await;
    let other = app.staff("other", Role::Inspector).await;
    let reviewer = app.staff("rev", Role::Reviewer).await;
    let admin = app.staff("adm", Role::Admin).await;

    // Before the end.
    let id = inspector.create_inspection().await;
    let r = inspector
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    let mut early = app.anonymous();
    assert_eq!(
        early.accept(r.body["token"].as_str().unwrap()).await.status,
        200
    );
    let v = view(&early, &id).await;
    assert_eq!(v["finished"], false);
    assert_eq!(v["can_rate"], false);
    let body = scores(&v, 8, &[]);
    refused(&app, &early, "POST", &id, &body, 409, "not_finished").await;
    refused(
        &app,
        &inspector,
        "POST",
        &id,
        &scores(&view(&inspector, &id).await, 8, &[]),
        409,
        "not_finished",
    )
    .await;
    let r = inspector
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "live"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    refused(&app, &early, "POST", &id, &body, 409, "not_finished").await;
    // A cancelled inspection is never rated.
    let r = inspector
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "cancelled", "reason": "business_absent"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    refused(&app, &early, "POST", &id, &body, 409, "cancelled").await;

    let d = finished(&app, &inspector).await;
    let id = &d.id;
    let v = view(&d.business, id).await;
    let first = v["criteria"]["criteria"][0]["code"]
        .as_str()
        .unwrap()
        .to_string();
    // Not a party: other staff who see it get 403, who do not get 404.
    for c in [&reviewer, &admin] {
        let r = c.get(&format!("/api/inspections/{id}/rating")).await;
        assert_eq!(r.status, 403, "{}", r.text);
        refused(&app, c, "POST", id, &scores(&v, 8, &[]), 403, "forbidden").await;
    }
    let r = other.get(&format!("/api/inspections/{id}/rating")).await;
    assert_eq!(r.status, 404, "{}", r.text);
    refused(
        &app,
        &other,
        "POST",
        id,
        &scores(&v, 8, &[]),
        404,
        "not_found",
    )
    .await;
    // A change before any rating.
    refused(
        &app,
        &d.business,
        "PUT",
        id,
        &scores(&v, 8, &[]),
        409,
        "rating_missing",
    )
    .await;
    // Out of range, every one named.
    for bad in [0, 11, -1, 1000] {
        let mut body = scores(&v, 8, &[]);
        body["scores"][0]["score"] = json!(bad);
        let r = refused(
            &app,
            &d.business,
            "POST",
            id,
            &body,
            400,
            "validation_failed",
        )
        .await;
        assert_eq!(
            field_codes(&r),
            vec![(format!("scores.{first}.score"), "score_out_of_range".into())]
        );
    }
    // A missing criterion, an unknown one, an unknown reason, follow-ups on a high score.
    let mut body = scores(&v, 8, &[]);
    body["scores"].as_array_mut().unwrap().remove(0);
    body["scores"]
        .as_array_mut()
        .unwrap()
        .push(json!({"criterion": "nope", "score": 5}));
    let r = refused(
        &app,
        &d.business,
        "POST",
        id,
        &body,
        400,
        "validation_failed",
    )
    .await;
    let codes = field_codes(&r);
    assert!(
        codes.contains(&("scores.4.criterion".into(), "criterion_unknown".into())),
        "{codes:?}"
    );
    assert!(
        codes.contains(&(format!("scores.{first}.score"), "score_required".into())),
        "{codes:?}"
    );
    let mut body = scores(&v, 8, &[(&first, 2)]);
    body["scores"][0]["reasons"] = json!(["no_such_reason"]);
    body["scores"][1]["reasons"] = json!([v["criteria"]["criteria"][1]["choices"][0]["code"]]);
    let r = refused(
        &app,
        &d.business,
        "POST",
        id,
        &body,
        400,
        "validation_failed",
    )
    .await;
    let codes = field_codes(&r);
    assert!(
        codes.contains(&(format!("scores.{first}.reasons"), "reason_unknown".into())),
        "{codes:?}"
    );
    assert!(
        codes.iter().any(|(_, c)| c == "follow_up_not_asked"),
        "{codes:?}"
    );
    // A text over 1000 characters.
    let mut body = scores(&v, 8, &[(&first, 2)]);
    body["scores"][0]["note"] = json!("я".repeat(1001));
    let r = refused(
        &app,
        &d.business,
        "POST",
        id,
        &body,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_codes(&r),
        vec![(format!("scores.{first}.note"), "note_too_long".into())]
    );
    // An old version of the criteria.
    let mut body = scores(&v, 8, &[]);
    body["criteria_version"] = json!(99);
    refused(
        &app,
        &d.business,
        "POST",
        id,
        &body,
        409,
        "criteria_changed",
    )
    .await;
    // A socket cannot forge a rating: the server makes the event.
    let mut ws = ws_connect(&inspector, id).await.expect("socket");
    ws.hello(None).await;
    let r = ws
        .op(
            "forged",
            json!({"kind": "rating", "side": "inspector", "criteria_version": 1,
                   "scores": [{"criterion": "cooperation", "score": 10}]}),
        )
        .await;
    assert_eq!(r["type"], "error", "{r}");
    assert_eq!(r["code"], "forbidden", "{r}");
    drop(ws);
    app.stop().await;

    // After the window: with a window of 0 the first rating is final at once.
    let app = spawn_app_with(|c| c.ratings.edit_window_secs = 0).await;
    let inspector = app.staff("insp", Role::Inspector).await;
    let d = finished(&app, &inspector).await;
    let v = view(&d.business, &d.id).await;
    let r = d
        .business
        .post_json(
            &format!("/api/inspections/{}/rating", d.id),
            &scores(&v, 8, &[]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["can_change"], false);
    // Wait for the inspector's leave etc. to settle: nothing else writes here.
    refused(
        &app,
        &d.business,
        "PUT",
        &d.id,
        &scores(&v, 9, &[]),
        409,
        "rating_final",
    )
    .await;
    refused(
        &app,
        &d.business,
        "POST",
        &d.id,
        &scores(&v, 9, &[]),
        409,
        "rating_exists",
    )
    .await;
    app.stop().await;
}

/// Two inspectors of one control body, its head, a plain colleague; `per` ratings per
/// inspector given by the businesses.
pub(crate) struct Body {
    pub(crate) app: TestApp,
    pub(crate) admin: Client,
    pub(crate) head: Client,
    pub(crate) colleague: Client,
    pub(crate) names: Vec<String>,
    pub(crate) ids: Vec<String>,
    pub(crate) body_id: String,
    pub(crate) inspections: Vec<String>,
    pub(crate) business: Client,
}

pub(crate) async fn body_with_ratings(app: TestApp) -> Body {
    let admin = app.staff("admin", Role::Admin).await;
    let r = admin
        .post_json(
            "/api/control-bodies",
            &json!({"name": "ГУ МЧС по г. Москве", "region": "Москва", "control_kind": "пожарный надзор"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let body_id = r.body["id"].as_str().unwrap().to_string();
    let mut staff = Vec::new();
    for name in ["petrov_a", "sidorova_b", "chief_h", "colleague_c"] {
        let c = app.staff(name, Role::Inspector).await;
        let me = c.get("/api/auth/me").await;
        let uid = me.body["user"]["id"].as_str().unwrap().to_string();
        let r = admin
            .post_json(
                &format!("/api/users/{uid}/control-body"),
                &json!({ "control_body_id": body_id }),
            )
            .await;
        assert!(r.status < 300, "{}", r.text);
        staff.push((
            c,
            uid,
            me.body["user"]["display_name"]
                .as_str()
                .unwrap()
                .to_string(),
        ));
    }
    let r = admin
        .post_json(
            &format!("/api/users/{}/head", staff[2].1),
            &json!({"head": true}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let mut inspections = Vec::new();
    let mut business = app.anonymous();
    // Petrov: two ratings (courtesy 3 with a reason, then 9); Sidorova: one (courtesy 6).
    for (who, courtesy) in [(0, 3), (0, 9), (1, 6)] {
        let d = finished(&app, &staff[who].0).await;
        let v = view(&d.business, &d.id).await;
        let r = d
            .business
            .post_json(
                &format!("/api/inspections/{}/rating", d.id),
                &scores(&v, 8, &[("courtesy", courtesy)]),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        inspections.push(d.id);
        business = d.business;
    }
    let (colleague, head) = {
        let mut it = staff.drain(2..);
        let head = it.next().unwrap().0;
        let colleague = it.next().unwrap().0;
        (colleague, head)
    };
    Body {
        app,
        admin,
        head,
        colleague,
        names: staff.iter().map(|s| s.2.clone()).collect(),
        ids: staff.iter().map(|s| s.1.clone()).collect(),
        body_id,
        inspections,
        business,
    }
}

fn courtesy(subject: &Value) -> &Value {
    subject["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["criterion"] == "courtesy")
        .expect("courtesy")
}

#[tokio::test]
async fn statistics_of_control_bodies_and_inspectors() {
    let b = body_with_ratings(spawn_app().await).await;
    let r = b.admin.get("/api/ratings/stats").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let s = &r.body;
    assert_eq!(s["side"], "business");
    assert_eq!(s["names_visible"], true);
    let bodies = s["control_bodies"].as_array().unwrap();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["id"], b.body_id.as_str());
    assert_eq!(bodies[0]["name"], "ГУ МЧС по г. Москве");
    assert_eq!(bodies[0]["ratings"], 3);
    let c = courtesy(&bodies[0]);
    assert_eq!(c["overall"]["count"], 3);
    assert_eq!(c["overall"]["mean"], 6.0);
    assert_eq!(c["overall"]["median"], 6.0);
    assert_eq!(
        c["overall"]["distribution"],
        json!([0, 0, 1, 0, 0, 1, 0, 0, 1, 0])
    );
    assert_eq!(c["overall"]["share_below_5"], 0.333);
    assert_eq!(c["overall"]["top_reasons"][0]["reason"], "rude_tone");
    assert_eq!(c["overall"]["top_reasons"][0]["count"], 1);
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    assert_eq!(c["months"][0]["month"], month.as_str());
    assert_eq!(c["months"][0]["count"], 3);
    let rated = s["rated"].as_array().unwrap();
    assert_eq!(rated.len(), 2);
    let petrov = rated
        .iter()
        .find(|x| x["id"] == b.ids[0].as_str())
        .expect("petrov");
    assert_eq!(petrov["name"], b.names[0].as_str());
    assert_eq!(courtesy(petrov)["overall"]["mean"], 6.0);
    assert_eq!(courtesy(petrov)["overall"]["count"], 2);

    // CSV: a header and one line per subject, criterion and month (and `all`).
    let (status, headers, bytes) = b.admin.get_bytes("/api/ratings/stats.csv").await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = String::from_utf8(bytes).unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("level,subject,criterion,month,count,mean,median"));
    assert!(csv.contains("control_body,ГУ МЧС по г. Москве,courtesy,all,3,6,6,0.333,0,0,1,0,0,1,0,0,1,0,rude_tone:1"), "{csv}");
    assert!(
        csv.contains(&format!(
            "inspector,{},courtesy,{month},2,6,6,0.5",
            b.names[0]
        )),
        "{csv}"
    );
    // SVG: drawn by the server.
    let (status, headers, bytes) = b.admin.get_bytes("/api/ratings/stats.svg?lang=en").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/svg+xml");
    let svg = String::from_utf8(bytes).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("Courtesy and correctness"),
        "{svg}"
    );
    // Per month and per inspector: a bar each, with the month's and the inspector's count.
    let (status, _, bytes) = b
        .admin
        .get_bytes("/api/ratings/stats.svg?chart=months")
        .await;
    assert_eq!(status, 200);
    let svg = String::from_utf8(bytes).unwrap();
    assert!(svg.contains("средний балл по месяцам"), "{svg}");
    assert_eq!(svg.matches("<g class=\"bar\"").count(), 1, "{svg}");
    assert!(svg.contains(&format!(">{month}</text>")), "{svg}");
    let (_, _, bytes) = b
        .admin
        .get_bytes("/api/ratings/stats.svg?chart=subjects")
        .await;
    let svg = String::from_utf8(bytes).unwrap();
    assert_eq!(svg.matches("<g class=\"bar\"").count(), 2, "{svg}");
    assert!(svg.contains(b.names[0].as_str()), "{svg}");
    let r = b.admin.get("/api/ratings/stats.svg?chart=pie").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        field_codes(&r.body),
        vec![("chart".into(), "chart_unknown".into())]
    );

    // Filters: a month range that excludes everything; a bad month.
    let r = b
        .admin
        .get("/api/ratings/stats?from=2000-01&to=2000-02")
        .await;
    assert_eq!(r.body["control_bodies"], json!([]));
    let r = b.admin.get("/api/ratings/stats?from=2000-13").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        field_codes(&r.body),
        vec![("from".into(), "month_invalid".into())]
    );
    // The inspectors' side: businesses by INN.
    let r = b.admin.get("/api/ratings/stats?side=inspector").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["rated"], json!([]));
    let _ = (&b.inspections, &b.business, &b.head, &b.colleague);
    b.app.stop().await;
}

#[tokio::test]
async fn inspector_names_are_hidden_from_everyone_without_the_right() {
    let b = body_with_ratings(spawn_app_with(|c| c.ratings.public_page = true).await).await;
    // Everything that could name an inspector: display names, user names, ids.
    let mut secrets: Vec<String> = b.names.clone();
    secrets.extend(b.ids.iter().cloned());
    secrets.extend(["petrov_a".to_string(), "sidorova_b".to_string()]);
    let paths = [
        "/api/ratings/stats",
        "/api/ratings/stats?side=inspector",
        "/api/ratings/stats.csv",
        "/api/ratings/stats.csv?side=inspector",
        "/api/ratings/stats.svg",
        "/api/ratings/stats.svg?lang=en",
        "/api/ratings/stats.svg?chart=subjects",
        "/api/ratings/stats.svg?chart=subjects&lang=en",
        "/api/ratings/stats.svg?chart=subjects&side=inspector",
        "/api/ratings/stats.svg?chart=months",
    ];
    // The colleague in the same body sees the numbers, anonymised.
    for p in paths {
        let (status, _, bytes) = b.colleague.get_bytes(p).await;
        assert_eq!(status, 200, "{p}");
        let text = String::from_utf8_lossy(&bytes);
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "{p} shows {s} to a colleague: {text}"
            );
        }
    }
    // The per-inspector chart labels the colleague's view by the numbers.
    let (_, _, bytes) = b
        .colleague
        .get_bytes("/api/ratings/stats.svg?chart=subjects")
        .await;
    let svg = String::from_utf8_lossy(&bytes);
    assert!(
        svg.contains("Инспектор #1") && svg.contains("Инспектор #2"),
        "{svg}"
    );
    let r = b.colleague.get("/api/ratings/stats").await;
    assert_eq!(r.body["names_visible"], false);
    let numbers: Vec<u64> = r.body["rated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["anonymous_number"]
                .as_u64()
                .expect("a number instead of a name")
        })
        .collect();
    assert_eq!(numbers, vec![1, 2]);
    // The same numbers the next time.
    let again = b.colleague.get("/api/ratings/stats").await;
    assert_eq!(again.body["rated"], r.body["rated"]);
    // Another body's staff: only its own (empty) body; asking for this one answers 404.
    let r = b
        .admin
        .post_json(
            "/api/control-bodies",
            &json!({"name": "Роспотребнадзор", "region": "Москва", "control_kind": "санитарный"}),
        )
        .await;
    let other_body = r.body["id"].as_str().unwrap().to_string();
    let outsider = b.app.staff("outsider", Role::Inspector).await;
    let uid = outsider.get("/api/auth/me").await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.admin
        .post_json(
            &format!("/api/users/{uid}/control-body"),
            &json!({"control_body_id": other_body}),
        )
        .await;
    let r = outsider.get("/api/ratings/stats").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["control_bodies"], json!([]));
    let r = outsider
        .get(&format!("/api/ratings/stats?control_body={}", b.body_id))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    // The public page: control bodies only.
    let anon = b.app.anonymous();
    for p in [
        "/api/public/ratings",
        "/api/public/ratings.svg",
        "/api/public/ratings.svg?chart=subjects",
        "/api/public/ratings.svg?chart=months",
    ] {
        let (status, _, bytes) = anon.get_bytes(p).await;
        assert_eq!(status, 200, "{p}");
        let text = String::from_utf8_lossy(&bytes);
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{p} shows {s} publicly: {text}");
        }
    }
    let r = anon.get("/api/public/ratings").await;
    assert_eq!(r.body["rated"], json!([]));
    assert_eq!(r.body["control_bodies"][0]["name"], "ГУ МЧС по г. Москве");
    // The business, guests and staff without a body get no statistics at all.
    let r = b.business.get("/api/ratings/stats").await;
    assert_eq!(r.status, 403, "{}", r.text);
    let nobody = b.app.staff("nobody", Role::Reviewer).await;
    assert_eq!(nobody.get("/api/ratings/stats").await.status, 403);
    // The head and the admin see the names.
    for c in [&b.head, &b.admin] {
        let r = c.get("/api/ratings/stats").await;
        assert_eq!(r.body["names_visible"], true);
        let text = r.text;
        assert!(
            text.contains(b.names[0].as_str()) && text.contains(b.names[1].as_str()),
            "{text}"
        );
        let (_, _, bytes) = c.get_bytes("/api/ratings/stats.svg?chart=subjects").await;
        let svg = String::from_utf8_lossy(&bytes);
        assert!(
            svg.contains(b.names[0].as_str()) && svg.contains(b.names[1].as_str()),
            "{svg}"
        );
    }
    // The head stops being head: the names go.
    let head_id = b.head.get("/api/auth/me").await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = b
        .admin
        .post_json(
            &format!("/api/users/{head_id}/head"),
            &json!({"head": false}),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = b.head.get("/api/ratings/stats").await;
    assert!(!r.text.contains(b.names[0].as_str()), "{}", r.text);
    let _ = &b.inspections;
    b.app.stop().await;
}

#[tokio::test]
async fn criteria_are_versioned_by_admins() {
    let app = spawn_app().await;
    let admin = app.staff("adm", Role::Admin).await;
    let inspector = app.staff("insp", Role::Inspector).await;
    let r = inspector.get("/api/ratings/criteria").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["business"]["version"], 1);
    assert_eq!(r.body["inspector"]["version"], 1);
    assert_eq!(
        r.body["business"]["criteria"][0]["title"]["en"],
        "Courtesy and correctness"
    );
    let new = json!({"criteria": [{
        "code": "speed", "title": {"ru": "Скорость", "en": "Speed"},
        "follow_up": {"ru": "Почему?", "en": "Why?"},
        "choices": [{"code": "slow", "title": {"ru": "Медленно", "en": "Slow"}}]
    }]});
    let before = app.dump_all().await;
    let r = inspector
        .post_json("/api/ratings/criteria/business", &new)
        .await;
    assert_eq!(r.status, 403);
    let r = admin
        .post_json("/api/ratings/criteria/business", &json!({"criteria": [{"code": "Bad Code", "title": {"ru": "", "en": "x"}, "follow_up": {"ru": "a", "en": "b"}, "choices": []}]}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        field_codes(&r.body),
        vec![
            ("criteria.0.code".into(), "code_invalid".into()),
            ("criteria.0.title".into(), "words_required".into()),
            ("criteria.0.choices".into(), "choices_count".into()),
        ]
    );
    let r = admin.post_json("/api/ratings/criteria/nobody", &new).await;
    assert_eq!(r.code(), "side_unknown");
    assert_eq!(app.dump_all().await, before);
    let r = admin
        .post_json("/api/ratings/criteria/business", &new)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["version"], 2);
    // A rating now answers version 2.
    let d = finished(&app, &inspector).await;
    let v = view(&d.business, &d.id).await;
    assert_eq!(v["criteria"]["version"], 2);
    let r = d
        .business
        .post_json(
            &format!("/api/inspections/{}/rating", d.id),
            &scores(&v, 2, &[]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["rating"]["criteria_version"], 2);
    app.stop().await;
}

#[tokio::test]
async fn rating_answers_match_the_generated_document() {
    use crate::openapi::Spec;
    let b = body_with_ratings(spawn_app().await).await;
    let spec = Spec {
        doc: b.app.anonymous().get("/api/openapi.json").await.body,
    };
    let id = &b.inspections[2];
    let path = "/api/inspections/{id}/rating";
    spec.check(
        "get",
        path,
        &b.business
            .get(&format!("/api/inspections/{id}/rating"))
            .await,
    );
    let v = view(&b.business, id).await;
    let again = b
        .business
        .post_json(
            &format!("/api/inspections/{id}/rating"),
            &scores(&v, 5, &[]),
        )
        .await;
    assert_eq!(again.status, 409);
    spec.check("post", path, &again);
    let changed = b
        .business
        .put_json(
            &format!("/api/inspections/{id}/rating"),
            &scores(&v, 4, &[]),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    spec.check("put", path, &changed);
    let mut bad = scores(&v, 5, &[]);
    bad["scores"][0]["score"] = json!(12);
    let bad = b
        .business
        .put_json(&format!("/api/inspections/{id}/rating"), &bad)
        .await;
    assert_eq!(bad.status, 400);
    spec.check("put", path, &bad);
    spec.check(
        "get",
        "/api/ratings/criteria",
        &b.admin.get("/api/ratings/criteria").await,
    );
    for c in [&b.admin, &b.colleague] {
        spec.check(
            "get",
            "/api/ratings/stats",
            &c.get("/api/ratings/stats").await,
        );
    }
    spec.check(
        "get",
        "/api/ratings/stats",
        &b.business.get("/api/ratings/stats").await,
    );
    spec.check(
        "get",
        "/api/public/ratings",
        &b.app.anonymous().get("/api/public/ratings").await,
    );
    let new = json!({"criteria": [{"code": "speed", "title": {"ru": "Скорость", "en": "Speed"},
        "follow_up": {"ru": "Почему?", "en": "Why?"},
        "choices": [{"code": "slow", "title": {"ru": "Медленно", "en": "Slow"}}]}]});
    let made = b
        .admin
        .post_json("/api/ratings/criteria/inspector", &new)
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    spec.check("post", "/api/ratings/criteria/{side}", &made);
    b.app.stop().await;
}

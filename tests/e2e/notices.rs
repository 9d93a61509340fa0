//! Notices and reminders against a real SMTP server (aiosmtpd on loopback): the notice with a
//! working join link and a calendar event parsed by an independent parser, reminders at their
//! times, reschedule and cancellation as calendar updates, retries of an unreachable server,
//! two nodes on one database. The scheduler is driven with the test's own clock
//! (`Notify::tick(now)`), so nothing here sleeps for the scheduler.

use std::time::Duration;

use chrono::{DateTime, Utc};
use inspector_tests::smtp::{free_port, parse_ics, Mail, SmtpServer};
use inspector_tests::{inspection_body, spawn_app_with, Client, Role, TestApp};
use serde_json::{json, Value};
use signaling::notify::{SmtpConfig, SmtpTls};

const SEC: i64 = 1_000_000;
const H: i64 = 3600 * SEC;
const D: i64 = 24 * H;
const WAIT: Duration = Duration::from_secs(20);

fn smtp_on(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "Inspector <noreply@inspector.test>".into(),
        timeout_secs: 5,
    }
}

async fn app_with_smtp(port: u16) -> TestApp {
    spawn_app_with(|c| {
        c.notify.tick_millis = 0;
        c.notify.smtp = Some(smtp_on(port));
    })
    .await
}

fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn at(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap()
}

/// An inspection in Moscow (the site's zone is Europe/Moscow) starting at `start`.
async fn create(inspector: &Client, start: DateTime<Utc>) -> String {
    let mut body = inspection_body(None);
    body["scheduled_at"] = json!(start.to_rfc3339());
    let r = inspector.post_json("/api/inspections", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["time_zone"], "Europe/Moscow");
    r.body["id"].as_str().unwrap().to_string()
}

async fn deliveries(c: &Client, id: &str) -> Vec<Value> {
    let r = c.get(&format!("/api/inspections/{id}/deliveries")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["deliveries"].as_array().unwrap().clone()
}

/// The token of the join link in a message's text.
fn join_token(mail: &Mail) -> String {
    let at = mail.text.find("/b/#t=").expect("a join link in the text");
    mail.text[at + 6..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// The text of the QR code in a PNG, read by zbar's `zbarimg` (Debian's zbar-tools).
fn qr_text(png: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qr.png");
    std::fs::write(&path, png).unwrap();
    let out = std::process::Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&path)
        .output()
        .expect("zbarimg runs (zbar-tools, installed by scripts/install-deps test)");
    assert!(out.status.success(), "zbarimg found no code: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The text of a PDF, by poppler's `pdftotext`.
fn pdf_text(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ics_start(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

#[tokio::test]
async fn notice_reminders_reschedule_and_cancel_arrive_by_email() {
    let smtp = SmtpServer::start().await.expect("smtp server");
    let app = app_with_smtp(smtp.port).await;
    let inspector = app.staff("insp", Role::Inspector).await;
    let now = Utc::now();
    let s0 = at(us(now) / SEC * SEC + 10 * D);
    let id = create(&inspector, s0).await;
    let r = inspector
        .post_json(
            &format!("/api/inspections/{id}/contacts"),
            &json!({"email": "Shop@Example.test", "consent": "business"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["address"], "Shop@example.test");
    assert_eq!(r.body["consent_source"], "business");
    let r = inspector
        .post_json("/api/me/contacts", &json!({"email": "insp@example.test"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // The notice now, three reminders each to the business and the inspector.
    let d = deliveries(&inspector, &id).await;
    assert_eq!(d.len(), 7, "{d:#?}");
    assert!(d.iter().all(|x| x["state"] == "pending"));

    // The notice.
    let t = us(Utc::now());
    let rep = app.notify.tick(t).await.unwrap();
    assert_eq!((rep.claimed, rep.sent), (1, 1), "{rep:?}");
    let mails = smtp.wait_for(1, WAIT).await.unwrap();
    let notice = &mails[0];
    assert!(notice.to.contains("Shop@example.test"), "{}", notice.to);
    assert!(
        notice.subject.contains("Плановая проверка"),
        "{}",
        notice.subject
    );
    assert!(notice.text.contains("7707083893"), "{}", notice.text);
    let (method, ics) = notice.calendar.clone().expect("a calendar attachment");
    assert_eq!(method, "REQUEST");
    let ev = parse_ics(&ics).expect("the .ics parses");
    assert_eq!(ev.method, "REQUEST");
    assert_eq!(ev.uid, format!("{id}@inspector"));
    assert_eq!(ev.sequence, 0);
    // The start is the site's local time, defined by the calendar's VTIMEZONE: converted
    // with its offset it is the planned start in UTC.
    assert_eq!(ev.dtstart, ics_start(s0));
    assert_eq!(ev.dtstart_tzid.as_deref(), Some("Europe/Moscow"));
    assert_eq!(ev.time_zone.as_deref(), Some("Europe/Moscow"));
    assert_eq!(ev.status, "CONFIRMED");
    // The local time is in the text: 10 days ahead, at UTC+3.
    let local = s0
        .with_timezone(&chrono_tz::Europe::Moscow)
        .format("%d.%m.%Y %H:%M")
        .to_string();
    assert!(notice.text.contains(&local), "{local} in {}", notice.text);
    // The printable notice: a PDF with the same link.
    let token = join_token(notice);
    let (_, pdf) = notice
        .attachments
        .iter()
        .find(|(mime, _)| mime == "application/pdf")
        .expect("the printable notice");
    let text = pdf_text(pdf);
    // The join link's QR code, inline in the HTML part, read back by a QR decoder.
    let (_, png) = notice
        .attachments
        .iter()
        .find(|(mime, _)| mime == "image/png")
        .expect("the inline QR code");
    let link = qr_text(png);
    assert!(link.contains("/b/#t=") && link.ends_with(&token), "{link}");
    let (_, html) = notice
        .attachments
        .iter()
        .find(|(mime, _)| mime == "text/html")
        .expect("an HTML part");
    let html = String::from_utf8_lossy(html);
    assert!(
        html.contains("cid:join-qr") && html.contains(&token),
        "{html}"
    );
    assert!(
        text.contains("УВЕДОМЛЕНИЕ") && text.contains("7707083893"),
        "{text}"
    );
    assert!(
        text.replace(char::is_whitespace, "").contains(&token),
        "{text}"
    );
    // The join link opens the inspection.
    assert!(ev.url.as_deref().unwrap().ends_with(&token));
    let mut business = app.anonymous();
    let r = business.accept(&token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["inspection"]["id"], id.as_str());
    // Nothing more is due now, however often the scheduler looks.
    assert_eq!(app.notify.tick(t).await.unwrap().claimed, 0);

    // The 7-day reminders, once each.
    let r7 = us(s0) - 7 * D;
    assert_eq!(app.notify.tick(r7 - SEC).await.unwrap().claimed, 0);
    assert_eq!(app.notify.tick(r7).await.unwrap().sent, 2);
    assert_eq!(app.notify.tick(r7 + SEC).await.unwrap().claimed, 0);
    let mails = smtp.wait_for(3, WAIT).await.unwrap();
    let reminders: Vec<_> = mails[1..].iter().collect();
    assert!(reminders.iter().all(|m| m.calendar.is_none()));
    assert!(reminders.iter().all(|m| m.subject.contains("через 7 дней")));
    let mut to: Vec<_> = reminders.iter().map(|m| m.to.clone()).collect();
    to.sort();
    assert!(to[0].contains("Shop@example.test") && to[1].contains("insp@example.test"));
    // The business's reminder has a join link of its own; the inspector's leads to the console.
    let inspector_mail = reminders.iter().find(|m| m.to.contains("insp@")).unwrap();
    assert!(inspector_mail.text.contains(&format!("#/room/{id}")));

    // Reschedule three days later: an updated notice, the old reminders dropped.
    let s1 = at(us(s0) + 3 * D);
    let r = inspector
        .post_json(
            &format!("/api/inspections/{id}/reschedule"),
            &json!({"scheduled_at": s1.to_rfc3339()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["scheduled_at"],
        json!(s1.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );
    let d = deliveries(&inspector, &id).await;
    let superseded = d
        .iter()
        .filter(|x| x["state"] == "dropped" && x["last_error"] == "superseded")
        .count();
    assert_eq!(
        superseded, 4,
        "the 1-day and 1-hour reminders of the old time: {d:#?}"
    );
    assert_eq!(app.notify.tick(r7 + 2 * SEC).await.unwrap().sent, 1);
    let mails = smtp.wait_for(4, WAIT).await.unwrap();
    let update = &mails[3];
    assert!(
        update.subject.contains("Время изменено"),
        "{}",
        update.subject
    );
    let ev = parse_ics(&update.calendar.as_ref().unwrap().1).unwrap();
    assert_eq!(
        (ev.uid.as_str(), ev.sequence),
        (format!("{id}@inspector").as_str(), 1)
    );
    assert_eq!(ev.dtstart, ics_start(s1));
    assert_eq!(business.accept(&join_token(update)).await.status, 200);
    // The new reminders come at their times; the old 1-day time passes without a message.
    assert_eq!(app.notify.tick(us(s1) - 7 * D).await.unwrap().sent, 2);
    assert_eq!(app.notify.tick(us(s0) - D).await.unwrap().claimed, 0);
    assert_eq!(app.notify.tick(us(s1) - D).await.unwrap().sent, 2);
    smtp.wait_for(8, WAIT).await.unwrap();

    // Cancel: the business gets the cancellation, the 1-hour reminders never come.
    let r = inspector
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "cancelled", "reason": "withdrawn"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rep = app.notify.tick(us(s1) - D + SEC).await.unwrap();
    assert_eq!((rep.sent, rep.dropped), (1, 2), "{rep:?}");
    let mails = smtp.wait_for(9, WAIT).await.unwrap();
    let cancel = &mails[8];
    assert!(cancel.to.contains("Shop@example.test"));
    let (method, ics) = cancel.calendar.clone().unwrap();
    assert_eq!(method, "CANCEL");
    let ev = parse_ics(&ics).unwrap();
    assert_eq!(
        (ev.method.as_str(), ev.status.as_str()),
        ("CANCEL", "CANCELLED")
    );
    assert_eq!((ev.uid, ev.sequence), (format!("{id}@inspector"), 2));
    assert_eq!(app.notify.tick(us(s1) - H).await.unwrap().claimed, 0);
    assert_eq!(app.notify.tick(us(s1) + D).await.unwrap().claimed, 0);
    assert_eq!(smtp.messages().unwrap().len(), 9);
    // Every row ended: sent, or dropped with its reason.
    let d = deliveries(&inspector, &id).await;
    let sent = d.iter().filter(|x| x["state"] == "sent").count();
    assert_eq!(sent, 9, "{d:#?}");
    assert!(d
        .iter()
        .all(|x| x["state"] == "sent" || x["state"] == "dropped"));
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_shown_and_retried() {
    let port = free_port().unwrap();
    let app = app_with_smtp(port).await;
    let inspector = app.staff("insp", Role::Inspector).await;
    let id = create(&inspector, at(us(Utc::now()) + 2 * D)).await;
    let r = inspector
        .post_json(
            &format!("/api/inspections/{id}/contacts"),
            &json!({"email": "shop@example.test", "consent": "register"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let t = us(Utc::now());
    let rep = app.notify.tick(t).await.unwrap();
    assert_eq!((rep.claimed, rep.sent), (1, 0));
    let d = deliveries(&inspector, &id).await;
    let notice = d.iter().find(|x| x["purpose"] == "notice").unwrap();
    assert_eq!(notice["state"], "pending");
    assert_eq!(notice["attempts"], 1);
    assert_eq!(notice["last_error"], "smtp_unreachable");
    // The inspection stands.
    assert_eq!(
        inspector
            .get(&format!("/api/inspections/{id}"))
            .await
            .status,
        200
    );
    // The link of the failed attempt never left: its invitation is revoked.
    let open: i64 = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM invitations WHERE inspection_id = $1 AND revoked_at IS NULL",
    )
    .bind(&id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(open, 0);
    // Not before its backoff (60 s by default).
    assert_eq!(app.notify.tick(t + 59 * SEC).await.unwrap().claimed, 0);
    let smtp = SmtpServer::start_on(port).await.expect("smtp server");
    let rep = app.notify.tick(t + 60 * SEC).await.unwrap();
    assert_eq!((rep.claimed, rep.sent), (1, 1));
    let mails = smtp.wait_for(1, WAIT).await.unwrap();
    assert_eq!(
        app.anonymous().accept(&join_token(&mails[0])).await.status,
        200
    );
    let d = deliveries(&inspector, &id).await;
    let notice = d.iter().find(|x| x["purpose"] == "notice").unwrap();
    assert_eq!(
        (notice["state"].as_str(), notice["attempts"].as_i64()),
        (Some("sent"), Some(2))
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_contacts_and_reschedules_are_refused_without_change() {
    let app = app_with_smtp(free_port().unwrap()).await;
    let inspector = app.staff("insp", Role::Inspector).await;
    let id = create(&inspector, at(us(Utc::now()) + 2 * D)).await;
    let before = app.dump().await;
    let path = format!("/api/inspections/{id}/contacts");
    for (body, field, code) in [
        (
            json!({"email": "not an address", "consent": "business"}),
            "email",
            "invalid_email",
        ),
        (
            json!({"email": "a@b@c", "consent": "business"}),
            "email",
            "invalid_email",
        ),
        (
            json!({"email": "shop@example.test"}),
            "consent",
            "consent_required",
        ),
        (
            json!({"email": "shop@example.test", "consent": "own"}),
            "consent",
            "consent_required",
        ),
    ] {
        let r = inspector.post_json(&path, &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["fields"][0]["field"], field);
        assert_eq!(r.body["error"]["fields"][0]["code"], code);
    }
    let r = inspector
        .post_json(
            &path,
            &json!({"email": "shop@example.test", "consent": "business", "x": 1}),
        )
        .await;
    assert_eq!(r.status, 400);
    let resched = format!("/api/inspections/{id}/reschedule");
    let r = inspector
        .post_json(&resched, &json!({"scheduled_at": "2020-01-01T00:00:00Z"}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["fields"][0]["code"], "in_the_past");
    assert_eq!(app.dump().await, before);
    // A cancelled inspection is not rescheduled.
    let r = inspector
        .post_json(
            &format!("/api/inspections/{id}/transition"),
            &json!({"to": "cancelled"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = inspector
        .post_json(
            &resched,
            &json!({"scheduled_at": (Utc::now() + chrono::Duration::days(3)).to_rfc3339()}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "illegal_transition");
    app.stop().await;
}

#[tokio::test]
async fn admins_change_message_texts_as_new_versions() {
    let smtp = SmtpServer::start().await.expect("smtp server");
    let app = app_with_smtp(smtp.port).await;
    let admin = app.staff("admin", Role::Admin).await;
    let inspector = app.staff("insp", Role::Inspector).await;
    let r = admin.get("/api/message-templates").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["templates"].as_array().unwrap().len(), 6);
    assert!(r.body["templates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["version"] == 0));
    assert_eq!(inspector.get("/api/message-templates").await.status, 403);
    let change = json!({"purpose": "notice", "language": "ru",
        "subject": "Извещение: {title} ({inn})", "body": "Подключение: {link}\nКогда: {when}"});
    for v in 1..=2 {
        let r = admin.post_json("/api/message-templates", &change).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["version"], v);
    }
    let r = admin
        .post_json(
            "/api/message-templates",
            &json!({"purpose": "spam", "language": "de", "subject": "", "body": ""}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["fields"].as_array().unwrap().len(), 4);
    let id = create(&inspector, at(us(Utc::now()) + 2 * D)).await;
    inspector
        .post_json(
            &format!("/api/inspections/{id}/contacts"),
            &json!({"email": "shop@example.test", "consent": "business"}),
        )
        .await;
    app.notify.tick(us(Utc::now())).await.unwrap();
    let mail = &smtp.wait_for(1, WAIT).await.unwrap()[0];
    assert_eq!(mail.subject, "Извещение: Плановая проверка (7707083893)");
    assert!(mail.text.starts_with("Подключение: http"), "{}", mail.text);
    assert_eq!(app.anonymous().accept(&join_token(mail)).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn two_nodes_on_one_database_send_each_message_once() {
    let smtp = SmtpServer::start().await.expect("smtp server");
    let a = app_with_smtp(smtp.port).await;
    let b = a
        .another_node(|c| {
            c.notify.tick_millis = 0;
            c.notify.smtp = Some(smtp_on(smtp.port));
        })
        .await;
    let inspector = a.staff("insp", Role::Inspector).await;
    let start = at(us(Utc::now()) / SEC * SEC + 10 * D);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = create(&inspector, start).await;
        ids.push(id);
    }
    inspector
        .post_json(
            &format!("/api/inspections/{}/contacts", ids[0]),
            &json!({"email": "shop@example.test", "consent": "business"}),
        )
        .await;
    inspector
        .post_json("/api/me/contacts", &json!({"email": "insp@example.test"}))
        .await;
    // 3 inspections × (1 notice + 3 reminders to the business + 3 to the inspector).
    let times = [
        us(Utc::now()),
        us(start) - 7 * D,
        us(start) - D,
        us(start) - H,
        us(start) + SEC,
    ];
    let mut sent = 0;
    for t in times {
        for _ in 0..2 {
            let (ra, rb) = tokio::join!(a.notify.tick(t), b.notify.tick(t));
            let (ra, rb) = (ra.unwrap(), rb.unwrap());
            sent += ra.sent + rb.sent;
        }
    }
    assert_eq!(sent, 21);
    let mails = smtp.wait_for(21, WAIT).await.unwrap();
    assert_eq!(mails.len(), 21);
    // Every row was claimed once: one attempt each, all sent.
    let mut rows = 0;
    for id in &ids {
        for d in deliveries(&inspector, id).await {
            assert_eq!(
                (d["state"].as_str(), d["attempts"].as_i64()),
                (Some("sent"), Some(1))
            );
            rows += 1;
        }
    }
    assert_eq!(rows, 21);
    b.stop().await;
    a.stop().await;
}

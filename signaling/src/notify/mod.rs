//! Notices and reminders (issue 15): the notice of a scheduled inspection to the business
//! (with its join link and an iCalendar event), its updates on reschedule and cancellation,
//! and reminders before the start to the business and the inspector.
//!
//! - `core.rs` — the pure scheduler: planning, the verdict on a due row, retries.
//! - `ics.rs` — the iCalendar event. `texts.rs` — message templates (ru, en).
//! - `channel.rs` — the channel trait; `email.rs` — SMTP with `lettre`.
//! - `http.rs` — contacts, reschedule, delivery status, template administration.
//!
//! This file is the thin IO shell: the `deliveries` table is the durable queue. A row is
//! claimed by one conditional UPDATE (`pending` → `sending` with a lease, the same on SQLite
//! and PostgreSQL, so two nodes never claim one row); `sending` is recorded before the channel
//! is called and the result after; a row still `sending` after its lease is `unknown` (its
//! node died mid-send) and is reported, never resent.

pub mod channel;
pub mod core;
pub mod document;
pub mod email;
pub mod http;
pub mod ics;
pub mod push;
pub mod texts;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sqlx::AnyPool;
use uuid::Uuid;

use self::channel::{Channel, ChannelKind, Outgoing};
use self::core::{Audience, Next, Outcome, Purpose, Recipient, RetryPolicy, Verdict};
use crate::db::{from_micros, RowExt};
use crate::domain::Status;
use crate::error::ApiResult;
use crate::Config;

pub use self::http::router;

/// How mail leaves (`[notify.smtp]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name.
    pub host: String,
    /// Port [default: 587 with STARTTLS, 465 with TLS, 25 without].
    #[serde(default)]
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    #[serde(default)]
    pub tls: SmtpTls,
    /// User name, if the server wants one.
    pub username: Option<String>,
    /// Password (prefer a file readable only by the server).
    pub password: Option<String>,
    /// The sender, e.g. `Inspector <noreply@example.org>`.
    pub from: String,
    /// Seconds before a silent server counts as failed.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
}

fn default_smtp_timeout() -> u64 {
    30
}

/// TLS towards the SMTP server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a local relay only).
    None,
    /// STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the first byte.
    Tls,
}

/// `[notify]`: channels, reminder offsets and the scheduler.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// How often the scheduler looks for due messages, ms (0: never by itself — tests call
    /// [`Notify::tick`] with their own clock).
    pub tick_millis: u64,
    /// Reminders this many seconds before the start.
    pub reminder_offsets_secs: Vec<u64>,
    /// Attempts at a message at most.
    pub max_attempts: u32,
    /// The first retry's wait, seconds (doubled each time).
    pub retry_base_secs: u64,
    /// The longest wait between retries, seconds.
    pub retry_max_secs: u64,
    /// How long a claimed row may stay `sending`, seconds (longer than the SMTP timeout).
    pub lease_secs: u64,
    /// Rows claimed per tick at most.
    pub batch: usize,
    /// The event's length in the calendar, minutes.
    pub event_minutes: i64,
    /// SMTP; without it e-mail deliveries fail with `email_not_configured`.
    pub smtp: Option<SmtpConfig>,
    /// Hosts (and their subdomains) of the push services whose subscriptions are accepted.
    pub push_hosts: Vec<String>,
    /// Accept `http://` push endpoints (tests with a local push service only).
    pub push_allow_http: bool,
    /// The VAPID `sub` claim: how a push service reaches the operator (`mailto:` or `https:`).
    pub push_contact: String,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            tick_millis: 15_000,
            reminder_offsets_secs: vec![7 * 86_400, 86_400, 3600],
            max_attempts: 8,
            retry_base_secs: 60,
            retry_max_secs: 3600,
            lease_secs: 120,
            batch: 50,
            event_minutes: 60,
            smtp: None,
            push_hosts: vec![
                "fcm.googleapis.com".into(),
                "updates.push.services.mozilla.com".into(),
                "push.apple.com".into(),
                "notify.windows.com".into(),
            ],
            push_allow_http: false,
            push_contact: "mailto:admin@localhost".into(),
        }
    }
}

impl NotifyConfig {
    /// Refuses settings that cannot work.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.reminder_offsets_secs.len() > 10 {
            anyhow::bail!("notify.reminder_offsets_secs: at most 10 reminders");
        }
        if self
            .reminder_offsets_secs
            .iter()
            .any(|&o| o == 0 || o > 90 * 86_400)
        {
            anyhow::bail!("notify.reminder_offsets_secs: each between 1 s and 90 days");
        }
        if self.max_attempts == 0 || self.batch == 0 {
            anyhow::bail!("notify.max_attempts and notify.batch must be positive");
        }
        if let Some(s) = &self.smtp {
            if s.timeout_secs >= self.lease_secs {
                anyhow::bail!("notify.lease_secs must exceed notify.smtp.timeout_secs");
            }
        }
        Ok(())
    }

    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base_secs: self.retry_base_secs.max(1),
            max_secs: self.retry_max_secs.max(1),
        }
    }
}

/// What one tick did (for tests and logs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Rows this node claimed.
    pub claimed: usize,
    /// Of which sent.
    pub sent: usize,
    /// Rows found `sending` past their lease, now `unknown`.
    pub unknown: usize,
    /// Rows dropped.
    pub dropped: usize,
}

/// The notice service: planning, and the scheduler's ticks.
pub struct Notify {
    db: AnyPool,
    config: Arc<Config>,
    email: Option<email::Email>,
    push: push::Push,
    renderer: crate::act::render::Renderer,
    /// This process's claim mark.
    node: String,
}

const SEC: i64 = 1_000_000;

impl Notify {
    /// Builds the channels from the configuration.
    pub fn new(
        db: AnyPool,
        config: Arc<Config>,
        renderer: crate::act::render::Renderer,
    ) -> anyhow::Result<Notify> {
        let email = match &config.notify.smtp {
            Some(s) => {
                let mut s = s.clone();
                if s.port == 0 {
                    s.port = match s.tls {
                        SmtpTls::None => 25,
                        SmtpTls::Starttls => 587,
                        SmtpTls::Tls => 465,
                    };
                }
                Some(email::Email::new(&s)?)
            }
            None => None,
        };
        let vapid = push::Vapid::load_or_create(&config.data_dir.join("notify").join("vapid.key"))?;
        let push = push::Push::new(vapid, &config.notify)?;
        Ok(Notify {
            db,
            config,
            email,
            push,
            renderer,
            node: Uuid::new_v4().to_string(),
        })
    }

    /// The VAPID public key browsers subscribe with.
    pub fn push_public_key(&self) -> String {
        self.push.public_key()
    }

    /// Runs ticks every `tick_millis` with the wall clock until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let every = self.config.notify.tick_millis;
        if every == 0 {
            return;
        }
        let mut interval = tokio::time::interval(Duration::from_millis(every));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(e) = self.tick(crate::db::now_micros()).await {
                tracing::warn!(error = %e, "notify: tick failed");
            }
        }
    }

    /// Plans what a scheduled inspection owes its contacts at `now` (idempotent: planned rows
    /// exist once by their unique key). Does nothing for an inspection that is not scheduled.
    pub async fn plan_inspection(&self, id: Uuid, now: i64) -> ApiResult<usize> {
        let mut conn = self.db.acquire().await?;
        plan_in(&mut conn, &self.config, id, now).await
    }

    /// One pass of the scheduler at `now`: leases past their end become `unknown`, rows no
    /// longer wanted are dropped, cancellations are planned, due rows are claimed and sent.
    pub async fn tick(&self, now: i64) -> ApiResult<TickReport> {
        let unknown = sqlx::query(
            "UPDATE deliveries SET state = 'unknown', last_error = 'interrupted', updated_at = $1 \
             WHERE state = 'sending' AND claimed_until < $1",
        )
        .bind(now)
        .execute(&self.db)
        .await?
        .rows_affected() as usize;
        let mut report = TickReport {
            unknown,
            ..TickReport::default()
        };
        for (status, code) in [
            ("= 'cancelled'", "cancelled"),
            ("IN ('live', 'finished', 'signed')", "started"),
        ] {
            report.dropped += sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE deliveries SET state = 'dropped', last_error = $1, updated_at = $2 \
                 WHERE state = 'pending' AND purpose <> 'cancel' AND inspection_id IN \
                 (SELECT id FROM inspections WHERE status {status})"
            )))
            .bind(code)
            .bind(now)
            .execute(&self.db)
            .await?
            .rows_affected() as usize;
        }
        self.plan_cancellations(now).await?;
        let due = sqlx::query(
            "SELECT id FROM deliveries WHERE state = 'pending' AND due_at <= $1 \
             ORDER BY due_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::try_from(self.config.notify.batch).unwrap_or(50))
        .fetch_all(&self.db)
        .await?;
        for row in due {
            let id: String = row.col(0)?;
            // The claim: exactly one node's UPDATE finds the row still pending.
            let claimed = sqlx::query(
                "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, \
                 claimed_by = $1, claimed_until = $2, updated_at = $3 \
                 WHERE id = $4 AND state = 'pending'",
            )
            .bind(&self.node)
            .bind(now + i64::try_from(self.config.notify.lease_secs).unwrap_or(120) * SEC)
            .bind(now)
            .bind(&id)
            .execute(&self.db)
            .await?
            .rows_affected();
            if claimed != 1 {
                continue;
            }
            report.claimed += 1;
            match self.deliver(&id, now).await {
                Ok(Delivered::Sent) => report.sent += 1,
                Ok(Delivered::Dropped) => report.dropped += 1,
                Ok(Delivered::NotSent) => {}
                Err(e) => {
                    // The row stays `sending` and becomes `unknown` after its lease.
                    tracing::warn!(error = ?e, delivery = %id, "notify: delivery failed");
                }
            }
        }
        Ok(report)
    }

    /// Every business contact that got a notice of a now cancelled inspection is owed one
    /// cancellation (of the schedule's last revision).
    async fn plan_cancellations(&self, now: i64) -> ApiResult<()> {
        let rows = sqlx::query(
            "SELECT DISTINCT d.inspection_id, d.contact_id, p.notice_seq FROM deliveries d \
             JOIN inspections p ON p.id = d.inspection_id \
             WHERE p.status = 'cancelled' AND d.purpose = 'notice' \
             AND d.state IN ('sent', 'unknown') AND NOT EXISTS (SELECT 1 FROM deliveries c \
             WHERE c.inspection_id = d.inspection_id AND c.contact_id = d.contact_id \
             AND c.purpose = 'cancel') LIMIT 200",
        )
        .fetch_all(&self.db)
        .await?;
        for r in rows {
            let p = core::plan_cancel(r.uuid(1)?, r.col(2)?, now);
            insert(
                &mut *self.db.acquire().await?,
                &r.col::<String>(0)?,
                &p,
                now,
            )
            .await?;
        }
        Ok(())
    }

    async fn deliver(&self, id: &str, now: i64) -> ApiResult<Delivered> {
        let r = sqlx::query(
            "SELECT d.inspection_id, d.purpose, d.offset_secs, d.seq, d.attempts, c.channel, \
             c.address, c.removed_at, c.owner_kind, c.id, p.status, p.notice_seq, p.scheduled_at \
             FROM deliveries d JOIN contacts c ON c.id = d.contact_id \
             JOIN inspections p ON p.id = d.inspection_id WHERE d.id = $1",
        )
        .bind(id)
        .fetch_one(&self.db)
        .await?;
        let inspection_id = r.uuid(0)?;
        let purpose = r.parsed(1, "delivery purpose", Purpose::parse)?;
        let offset: i64 = r.col(2)?;
        let seq: i64 = r.col(3)?;
        let attempts: i32 = r.col(4)?;
        let channel = r.parsed(5, "contact channel", ChannelKind::parse)?;
        let address: String = r.col(6)?;
        let removed: Option<i64> = r.col(7)?;
        let audience = match r.col::<String>(8)?.as_str() {
            "business" => Audience::Business,
            _ => Audience::Inspector,
        };
        let contact_id: String = r.col(9)?;
        let status = r.parsed(10, "inspection status", Status::parse)?;
        let verdict = if removed.is_some() {
            Verdict::Drop("contact_removed")
        } else {
            core::judge(purpose, seq, status, r.col(11)?, r.col(12)?, now)
        };
        if let Verdict::Drop(code) = verdict {
            self.finish(id, "dropped", Some(code), None).await?;
            return Ok(Delivered::Dropped);
        }
        let insp = crate::inspections::load(&self.db, inspection_id)
            .await?
            .ok_or(crate::error::ApiError::NotFound("inspection"))?;
        // The business's link is its own invitation, made for this message (its token is
        // never stored in clear, so every message carries a fresh one).
        let (link, invitation) = match (audience, purpose) {
            (Audience::Business, Purpose::Notice | Purpose::Reminder) => {
                let ttl = i64::from(self.config.invitation_ttl_hours) * 3600 * SEC;
                let expires = (now + ttl).max(crate::db::micros(insp.scheduled_at) + ttl);
                let inv = crate::inspections::issue_invitation(
                    &self.db,
                    &self.config,
                    &insp,
                    "notice",
                    insp.inspector.id,
                    now,
                    expires,
                )
                .await?;
                (inv.1, Some(inv.0))
            }
            _ => (
                format!("{}/#/room/{}", self.config.public_url, insp.id),
                None,
            ),
        };
        let outcome = match (channel, &self.email) {
            (ChannelKind::Email, Some(email)) => {
                let msg = compose(
                    &self.db,
                    &self.config,
                    Some(&self.renderer),
                    &insp,
                    (purpose, offset, seq),
                    &link,
                    (&email.from_address(), &address),
                    now,
                )
                .await?;
                email.send(&address, &msg).await
            }
            (ChannelKind::Email, None) => Outcome::Permanent("email_not_configured"),
            (ChannelKind::Push, _) => {
                let msg = compose(
                    &self.db,
                    &self.config,
                    None,
                    &insp,
                    (purpose, offset, seq),
                    &link,
                    ("", ""),
                    now,
                )
                .await?;
                self.push.send(&address, &msg).await
            }
        };
        let next = core::after_attempt(
            &self.config.notify.policy(),
            u32::try_from(attempts).unwrap_or(u32::MAX),
            &outcome,
            now,
        );
        if next != Next::Sent {
            if let Some(inv) = invitation {
                // The link never left: its invitation must not stay usable.
                sqlx::query("UPDATE invitations SET revoked_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(inv.to_string())
                    .execute(&self.db)
                    .await?;
            }
        }
        Ok(match next {
            Next::Sent => {
                self.finish(id, "sent", None, Some(now)).await?;
                Delivered::Sent
            }
            Next::Retry { due_at, code } => {
                sqlx::query(
                    "UPDATE deliveries SET state = 'pending', due_at = $1, last_error = $2, \
                     claimed_by = NULL, claimed_until = NULL, updated_at = $3 \
                     WHERE id = $4 AND state = 'sending' AND claimed_by = $5",
                )
                .bind(due_at)
                .bind(code)
                .bind(now)
                .bind(id)
                .bind(&self.node)
                .execute(&self.db)
                .await?;
                Delivered::NotSent
            }
            Next::Failed(code) => {
                self.finish(id, "failed", Some(code), None).await?;
                Delivered::NotSent
            }
            Next::RemoveContact(code) => {
                self.finish(id, "failed", Some(code), None).await?;
                sqlx::query(
                    "UPDATE contacts SET removed_at = $1, removed_reason = $2 \
                     WHERE id = $3 AND removed_at IS NULL",
                )
                .bind(now)
                .bind(code)
                .bind(&contact_id)
                .execute(&self.db)
                .await?;
                Delivered::NotSent
            }
        })
    }

    /// Records a claimed row's end; only the claiming node may (its claim is the condition).
    async fn finish(
        &self,
        id: &str,
        state: &str,
        code: Option<&str>,
        sent_at: Option<i64>,
    ) -> ApiResult<()> {
        sqlx::query(
            "UPDATE deliveries SET state = $1, last_error = $2, sent_at = $3, \
             claimed_until = NULL, updated_at = COALESCE($3, updated_at) \
             WHERE id = $4 AND state = 'sending' AND claimed_by = $5",
        )
        .bind(state)
        .bind(code)
        .bind(sent_at)
        .bind(id)
        .bind(&self.node)
        .execute(&self.db)
        .await?;
        Ok(())
    }
}

enum Delivered {
    Sent,
    Dropped,
    NotSent,
}

/// Plans a scheduled inspection's rows on `conn` (a transaction's, when the caller has one).
pub(crate) async fn plan_in(
    conn: &mut sqlx::AnyConnection,
    config: &Config,
    id: Uuid,
    now: i64,
) -> ApiResult<usize> {
    let row = sqlx::query(
        "SELECT status, scheduled_at, notice_seq, business_inn, inspector_id \
         FROM inspections WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(0) };
    if row.parsed(0, "inspection status", Status::parse)? != Status::Scheduled {
        return Ok(0);
    }
    let scheduled_at: i64 = row.col(1)?;
    let seq: i64 = row.col(2)?;
    let inn: String = row.col(3)?;
    let inspector: String = row.col(4)?;
    let contacts = sqlx::query(
        "SELECT id, owner_kind FROM contacts WHERE removed_at IS NULL AND \
         ((owner_kind = 'business' AND owner_id = $1) OR (owner_kind = 'user' AND owner_id = $2))",
    )
    .bind(&inn)
    .bind(&inspector)
    .fetch_all(&mut *conn)
    .await?;
    let recipients = contacts
        .iter()
        .map(|c| {
            Ok(Recipient {
                contact_id: c.uuid(0)?,
                audience: if c.col::<String>(1)? == "business" {
                    Audience::Business
                } else {
                    Audience::Inspector
                },
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let planned = core::plan(
        scheduled_at,
        seq,
        &recipients,
        &config.notify.reminder_offsets_secs,
        now,
    );
    let mut n = 0;
    for p in &planned {
        n += insert(conn, &id.to_string(), p, now).await?;
    }
    Ok(n)
}

async fn insert(
    conn: &mut sqlx::AnyConnection,
    inspection_id: &str,
    p: &core::Planned,
    now: i64,
) -> ApiResult<usize> {
    let done = sqlx::query(
        "INSERT INTO deliveries (id, inspection_id, purpose, offset_secs, contact_id, seq, \
         due_at, state, attempts, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8) \
         ON CONFLICT (inspection_id, purpose, offset_secs, contact_id, seq) DO NOTHING",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(inspection_id)
    .bind(p.purpose.as_str())
    .bind(p.offset_secs)
    .bind(p.contact_id.to_string())
    .bind(p.seq)
    .bind(p.due_at)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() as usize)
}

/// The message for one delivery, in the inspection's language. With a `renderer` (e-mail)
/// the notice carries its calendar event and printable PDF; without (push), text only.
#[allow(clippy::too_many_arguments)]
async fn compose(
    db: &AnyPool,
    config: &Config,
    renderer: Option<&crate::act::render::Renderer>,
    insp: &crate::inspections::Inspection,
    (purpose, offset_secs, seq): (Purpose, i64, i64),
    link: &str,
    (organizer, attendee): (&str, &str),
    now: i64,
) -> ApiResult<Outgoing> {
    let lang = insp.language.as_str();
    let en = lang == "en";
    let tz: chrono_tz::Tz = insp.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let when = insp
        .scheduled_at
        .with_timezone(&tz)
        .format("%d.%m.%Y %H:%M")
        .to_string();
    let legal_basis = insp
        .template
        .as_ref()
        .map(|t| t.legal_basis.clone())
        .unwrap_or_default();
    let kind = match (insp.kind, en) {
        (crate::domain::Kind::Control, false) => "контрольное мероприятие",
        (crate::domain::Kind::Control, true) => "control inspection",
        (crate::domain::Kind::Preventive, false) => "профилактический визит",
        (crate::domain::Kind::Preventive, true) => "preventive visit",
    };
    let update = match (purpose, seq > 0, en) {
        (Purpose::Notice, true, false) => "Время изменено. ",
        (Purpose::Notice, true, true) => "Rescheduled. ",
        _ => "",
    };
    let mut v: BTreeMap<&str, String> = BTreeMap::new();
    v.insert("title", insp.title.clone());
    v.insert("kind", kind.into());
    v.insert("business", insp.business.name.clone());
    v.insert("inn", insp.business.inn.as_str().into());
    v.insert("address", insp.business.address.clone());
    v.insert("when", when);
    v.insert("zone", insp.time_zone.clone());
    v.insert("inspector", insp.inspector.display_name.clone());
    v.insert("legal_basis", legal_basis);
    v.insert("control_body", config.control_body.clone());
    v.insert("link", link.into());
    // The business's link is its invitation (`/b/#t=…`); the same token opens the device
    // check. The inspector's link (the console) has no check.
    let check_link = if link.contains("/b/#t=") {
        link.replacen("/b/#t=", "/check/#t=", 1)
    } else {
        String::new()
    };
    let check_line = match (check_link.is_empty(), en) {
        (true, _) => String::new(),
        (false, false) => format!(
            "Проверьте телефон заранее (камера, микрофон, геолокация, связь): {check_link}\n"
        ),
        (false, true) => format!(
            "Check your phone in advance (camera, microphone, location, connection): {check_link}\n"
        ),
    };
    v.insert("check_link", check_link.clone());
    v.insert("check", check_line);
    v.insert("lead", texts::lead(offset_secs, lang));
    v.insert("update", update.into());
    let t = texts::current(db, purpose, lang).await?;
    let subject = texts::render(&t.subject, &v);
    let text = texts::render(&t.body, &v);
    let files = renderer.is_some();
    let calendar = (files && matches!(purpose, Purpose::Notice | Purpose::Cancel)).then(|| {
        let cancelled = purpose == Purpose::Cancel;
        (
            ics::method(cancelled),
            ics::event(&ics::EventInfo {
                inspection_id: insp.id,
                seq,
                cancelled,
                start: insp.scheduled_at,
                minutes: config.notify.event_minutes,
                summary: &insp.title,
                description: &text,
                location: &insp.business.address,
                url: link,
                time_zone: tz,
                organizer,
                attendee,
                now: from_micros(now),
            }),
        )
    });
    let mut attachments = Vec::new();
    if let (Some(renderer), Purpose::Notice) = (renderer, purpose) {
        let doc = document::NoticeDoc {
            lang: lang.into(),
            inspection_id: insp.id.to_string(),
            seq,
            control_body: config.control_body.clone(),
            title: insp.title.clone(),
            kind: v["kind"].clone(),
            business: insp.business.name.clone(),
            inn: insp.business.inn.as_str().into(),
            address: insp.business.address.clone(),
            when: v["when"].clone(),
            when_utc: insp
                .scheduled_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            zone: insp.time_zone.clone(),
            inspector: insp.inspector.display_name.clone(),
            legal_basis: v["legal_basis"].clone(),
            link: link.into(),
            check_link,
        };
        let pdf = document::render(renderer, doc, from_micros(now))
            .await
            .map_err(|e| crate::error::ApiError::Internal(e.into()))?;
        let name = if en { "notice.pdf" } else { "uvedomlenie.pdf" };
        attachments.push((name.to_string(), "application/pdf", pdf));
    }
    Ok(Outgoing {
        subject,
        text,
        link: link.into(),
        calendar,
        attachments,
    })
}

//! Signed webhooks (issue 22 item 3): an administrator's endpoints receive the inspection's
//! facts — scheduled, started, finished, act signed, prescription item decided — as signed
//! JSON POSTs (docs/protocol.md, "Webhooks").
//!
//! - `sign.rs` — the pure parts: signature, retry schedule, URL rule, sealed secrets.
//! - `http.rs` — the administrator's API: endpoints, their deliveries, replay.
//!
//! This file is the outbox and its worker. Every fact is written to `webhook_events` in the
//! transaction that commits it ([`project`] in the sync writer's group commit,
//! [`item_decided_in`] in the prescription log's append, [`scheduled_in`] with the
//! inspection's insert or reschedule), so nothing acknowledged is lost and nothing rolled
//! back is told. The worker fans each event out to a `webhook_deliveries` row per subscribed
//! endpoint, claims due rows with one conditional UPDATE (two nodes never send one attempt),
//! POSTs, and records the outcome: delivered, a retry after a doubling wait, or failed after
//! `max_attempts`. A row left `sending` past its lease is sent again: delivery is at least
//! once, and receivers dedupe by the event id.

pub mod http;
pub mod sign;

use std::sync::Arc;
use std::time::Duration;

use checklist_sync::CommittedEvent;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::{AnyConnection, AnyPool};
use uuid::Uuid;

use crate::db::{from_micros, RowExt};
use crate::error::ApiResult;
use crate::Config;

pub use self::http::router;

/// The event types, in the order the documentation lists them.
pub const EVENT_TYPES: [&str; 5] = [
    "inspection.scheduled",
    "inspection.started",
    "inspection.finished",
    "act.signed",
    "prescription.item_decided",
];

/// The envelope's schema version (docs/protocol.md).
pub const SCHEMA_VERSION: u32 = 1;

/// How much of a receiver's answer is read (and the first 512 bytes of it kept), bytes.
pub const MAX_RESPONSE_BYTES: usize = 4096;
const KEPT_RESPONSE_BYTES: usize = 512;

/// `[webhooks]`: the worker, retries, bounds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// How often the worker looks for due deliveries, ms (0: never — the outbox still fills).
    pub tick_millis: u64,
    /// Attempts at one delivery before it is `failed`.
    pub max_attempts: u32,
    /// The wait after the first failed attempt, seconds (doubled each time).
    pub retry_base_secs: u64,
    /// The longest wait between attempts, seconds.
    pub retry_max_secs: u64,
    /// The whole request's timeout, seconds (connect, send, the answer's head and body).
    pub timeout_secs: u64,
    /// How long a claimed delivery may stay `sending` before another attempt, seconds.
    pub lease_secs: u64,
    /// Deliveries sent per tick at most (at once).
    pub batch: usize,
    /// Endpoints (not deleted) at most.
    pub max_endpoints: i64,
    /// Accept `http://` URLs whose host is a loopback address (tests only); https otherwise.
    pub allow_http_loopback: bool,
    /// Delivered and failed deliveries (and their events) are removed after this many days.
    pub retention_days: u64,
    /// The key endpoint secrets are sealed with [default: `<data>/webhooks/secret.key`].
    pub secret_key_file: Option<std::path::PathBuf>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            tick_millis: 1000,
            max_attempts: 10,
            retry_base_secs: 30,
            retry_max_secs: 6 * 3600,
            timeout_secs: 10,
            lease_secs: 60,
            batch: 16,
            max_endpoints: 20,
            allow_http_loopback: false,
            retention_days: 30,
            secret_key_file: None,
        }
    }
}

impl WebhooksConfig {
    /// Refuses settings that cannot work.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.max_attempts == 0 || self.max_attempts > 100 {
            anyhow::bail!("webhooks.max_attempts must be between 1 and 100");
        }
        if self.batch == 0 || self.batch > 256 {
            anyhow::bail!("webhooks.batch must be between 1 and 256");
        }
        if self.timeout_secs == 0 || self.timeout_secs > 120 {
            anyhow::bail!("webhooks.timeout_secs must be between 1 and 120");
        }
        if self.lease_secs <= self.timeout_secs {
            anyhow::bail!("webhooks.lease_secs must exceed webhooks.timeout_secs");
        }
        if !(1..=1000).contains(&self.max_endpoints) {
            anyhow::bail!("webhooks.max_endpoints must be between 1 and 1000");
        }
        Ok(())
    }
}

/// Writes one event to the outbox inside the caller's transaction — only when an enabled
/// endpoint subscribes to its type (without endpoints the outbox stays empty; an endpoint
/// hears of what is committed after it exists).
pub async fn record_in(
    conn: &mut AnyConnection,
    kind: &str,
    inspection_id: Uuid,
    occurred_at: i64,
    data: Value,
) -> Result<(), sqlx::Error> {
    let like = format!("%\"{kind}\"%");
    let wanted = sqlx::query(
        "SELECT 1 FROM webhook_endpoints WHERE enabled = 1 AND deleted_at IS NULL \
         AND events LIKE $1 LIMIT 1",
    )
    .bind(like)
    .fetch_optional(&mut *conn)
    .await?;
    if wanted.is_none() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO webhook_events (id, type, inspection_id, occurred_at, data, dispatched, \
         created_at) VALUES ($1, $2, $3, $4, $5, 0, $6)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(kind)
    .bind(inspection_id.to_string())
    .bind(occurred_at)
    .bind(data.to_string())
    .bind(crate::db::now_micros())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn rfc3339(us: i64) -> String {
    from_micros(us).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The outbox rows of committed log events (called by the status projection in the sync
/// writer's transaction): start, finish, and each signature of the act.
pub async fn project(conn: &mut AnyConnection, e: &CommittedEvent) -> Result<(), sqlx::Error> {
    let (kind, data) = match e.kind.as_str() {
        "start" => (
            "inspection.started",
            json!({"seq": e.seq, "hash": e.hash, "started_at": rfc3339(e.server_ts_micros)}),
        ),
        "finish" => (
            "inspection.finished",
            json!({"seq": e.seq, "hash": e.hash, "finished_at": rfc3339(e.server_ts_micros)}),
        ),
        "act_signed" => (
            "act.signed",
            json!({"seq": e.seq, "hash": e.hash, "role": e.payload.get("role"),
                   "act_sha256": e.payload.get("act_sha256")}),
        ),
        _ => return Ok(()),
    };
    record_in(conn, kind, e.inspection_id, e.server_ts_micros, data).await
}

/// The outbox row of an inspection's schedule as committed in `conn`'s transaction (its
/// creation, or a reschedule: `revision` is the notice's revision).
pub async fn scheduled_in(conn: &mut AnyConnection, id: Uuid, now: i64) -> ApiResult<()> {
    let r = sqlx::query(
        "SELECT scheduled_at, notice_seq, title, kind, mode, business_name, business_inn, \
         time_zone FROM inspections WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    let data = json!({
        "scheduled_at": rfc3339(r.col(0)?),
        "revision": r.col::<i64>(1)?,
        "title": r.col::<String>(2)?,
        "kind": r.col::<String>(3)?,
        "mode": r.col::<String>(4)?,
        "business": {"name": r.col::<String>(5)?, "inn": r.col::<String>(6)?},
        "time_zone": r.col::<String>(7)?,
    });
    record_in(conn, "inspection.scheduled", id, now, data).await?;
    Ok(())
}

/// The outbox row of a decision on a prescription item, inside the log append's transaction.
#[allow(clippy::too_many_arguments)]
pub async fn item_decided_in(
    conn: &mut AnyConnection,
    prescription: Uuid,
    seq: u64,
    hash: &str,
    ts: i64,
    item: &str,
    decision: &str,
    comment: Option<&str>,
    due_at: Option<i64>,
) -> ApiResult<()> {
    let inspection = sqlx::query("SELECT inspection_id FROM prescriptions WHERE id = $1")
        .bind(prescription.to_string())
        .fetch_one(&mut *conn)
        .await?
        .uuid(0)?;
    let data = json!({
        "prescription_id": prescription,
        "item_id": item,
        "decision": decision,
        "comment": comment,
        "due_at": due_at.map(rfc3339),
        "seq": seq,
        "hash": hash,
    });
    record_in(conn, "prescription.item_decided", inspection, ts, data).await?;
    Ok(())
}

/// The JSON body of an event (the same bytes on every attempt and replay).
pub fn envelope(id: &str, kind: &str, inspection: &str, occurred_at: i64, data: Value) -> Value {
    json!({
        "version": SCHEMA_VERSION,
        "id": id,
        "type": kind,
        "inspection_id": inspection,
        "occurred_at": rfc3339(occurred_at),
        "data": data,
    })
}

/// What one tick did (tests and logs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Events fanned out to deliveries.
    pub fanned_out: usize,
    /// Deliveries this node claimed.
    pub claimed: usize,
    /// Of which delivered.
    pub delivered: usize,
}

/// The worker and the secret key.
pub struct Webhooks {
    db: AnyPool,
    config: Arc<Config>,
    key: sign::SecretKey,
    client: reqwest::Client,
    node: String,
    /// When the last purge ran, µs (purges run at most once a minute).
    purged_at: std::sync::atomic::AtomicI64,
}

const SEC: i64 = 1_000_000;

/// How one attempt ended.
struct Attempt {
    status: Option<u16>,
    error: Option<&'static str>,
    response: Option<String>,
}

impl Webhooks {
    /// Loads (or makes) the secret key and builds the HTTP client.
    pub fn new(db: AnyPool, config: Arc<Config>) -> anyhow::Result<Webhooks> {
        let c = &config.webhooks;
        let key_file = c
            .secret_key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join("webhooks").join("secret.key"));
        let key = sign::SecretKey::load_or_create(&key_file)?;
        // No redirects (a 3xx is an answer, not a new target), no proxies from the
        // environment, and every request bounded in time.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(c.timeout_secs.min(5)))
            .timeout(Duration::from_secs(c.timeout_secs))
            .user_agent("Inspector-Webhooks/1")
            .build()?;
        Ok(Webhooks {
            db,
            config,
            key,
            client,
            node: Uuid::new_v4().to_string(),
            purged_at: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// The sealing key (the HTTP API seals new secrets).
    pub fn key(&self) -> &sign::SecretKey {
        &self.key
    }

    /// Runs ticks every `tick_millis` until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let every = self.config.webhooks.tick_millis;
        if every == 0 {
            return;
        }
        let mut interval = tokio::time::interval(Duration::from_millis(every));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(e) = self.tick(crate::db::now_micros()).await {
                tracing::warn!(error = %e, "webhooks: tick failed");
            }
        }
    }

    /// One pass at `now`: fan out new events, send due deliveries, purge old ones.
    pub async fn tick(&self, now: i64) -> ApiResult<TickReport> {
        let mut report = TickReport {
            fanned_out: self.fan_out(now).await?,
            ..TickReport::default()
        };
        let due = sqlx::query(
            "SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE ((d.state = 'pending' AND d.next_at <= $1) OR (d.state = 'sending' AND d.claimed_until < $1)) \
             AND e.enabled = 1 AND e.deleted_at IS NULL ORDER BY d.next_at LIMIT $2",
        )
        .bind(now)
        .bind(self.config.webhooks.batch as i64)
        .fetch_all(&self.db)
        .await?;
        let mut claimed = Vec::new();
        for r in &due {
            let id: String = r.col(0)?;
            if let Some(attempts) = self.claim(&id, now).await? {
                claimed.push((id, attempts));
            }
        }
        report.claimed = claimed.len();
        let sent = futures_util::future::join_all(
            claimed
                .iter()
                .map(|(id, attempts)| self.deliver(id, *attempts, now)),
        )
        .await;
        for s in sent {
            if s? {
                report.delivered += 1;
            }
        }
        self.purge(now).await?;
        Ok(report)
    }

    /// Delivery rows for every event not yet fanned out, one per endpoint subscribed now
    /// (idempotent: the pair is unique, so two nodes fanning out one event make one row).
    async fn fan_out(&self, now: i64) -> ApiResult<usize> {
        let events = sqlx::query(
            "SELECT id, type FROM webhook_events WHERE dispatched = 0 ORDER BY created_at LIMIT 200",
        )
        .fetch_all(&self.db)
        .await?;
        if events.is_empty() {
            return Ok(0);
        }
        let endpoints = sqlx::query(
            "SELECT id, events FROM webhook_endpoints WHERE enabled = 1 AND deleted_at IS NULL",
        )
        .fetch_all(&self.db)
        .await?;
        let mut subs = Vec::new();
        for r in &endpoints {
            let id: String = r.col(0)?;
            let types: Vec<String> = serde_json::from_str(&r.col::<String>(1)?)
                .map_err(|e| crate::db::corrupt("webhook endpoint events", e))?;
            subs.push((id, types));
        }
        let mut tx = crate::db::begin(&self.db).await?;
        for r in &events {
            let event: String = r.col(0)?;
            let kind: String = r.col(1)?;
            for (endpoint, types) in &subs {
                if !types.iter().any(|t| *t == kind) {
                    continue;
                }
                sqlx::query(
                    "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, state, attempts, \
                     next_at, created_at, updated_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4, $4) \
                     ON CONFLICT (endpoint_id, event_id) DO NOTHING",
                )
                .bind(Uuid::now_v7().to_string())
                .bind(endpoint)
                .bind(&event)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE webhook_events SET dispatched = 1 WHERE id = $1")
                .bind(&event)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(events.len())
    }

    /// Claims a due row for this node: the attempt is counted and the lease recorded before
    /// anything is sent. Returns the attempt's number, or `None` if another node won.
    async fn claim(&self, id: &str, now: i64) -> ApiResult<Option<i32>> {
        let lease = now + self.config.webhooks.lease_secs as i64 * SEC;
        let won = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'sending', attempts = attempts + 1, \
             claimed_by = $1, claimed_until = $2, updated_at = $3 WHERE id = $4 AND \
             ((state = 'pending' AND next_at <= $3) OR (state = 'sending' AND claimed_until < $3))",
        )
        .bind(&self.node)
        .bind(lease)
        .bind(now)
        .bind(id)
        .execute(&self.db)
        .await?;
        if won.rows_affected() == 0 {
            return Ok(None);
        }
        let attempts: i32 = sqlx::query("SELECT attempts FROM webhook_deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(&self.db)
            .await?
            .col(0)?;
        Ok(Some(attempts))
    }

    /// One attempt at a claimed row; records its outcome. Returns whether it was delivered.
    async fn deliver(&self, id: &str, attempts: i32, now: i64) -> ApiResult<bool> {
        let r = sqlx::query(
            "SELECT e.id, e.url, e.sealed_secret, v.id, v.type, v.inspection_id, v.occurred_at, v.data \
             FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             JOIN webhook_events v ON v.id = d.event_id WHERE d.id = $1",
        )
        .bind(id)
        .fetch_one(&self.db)
        .await?;
        let endpoint: String = r.col(0)?;
        let url: String = r.col(1)?;
        let sealed: String = r.col(2)?;
        let event_id: String = r.col(3)?;
        let kind: String = r.col(4)?;
        let data: Value = serde_json::from_str(&r.col::<String>(7)?)
            .map_err(|e| crate::db::corrupt("webhook event data", e))?;
        let body = envelope(&event_id, &kind, &r.col::<String>(5)?, r.col(6)?, data).to_string();
        let attempt = match self.key.open(&endpoint, &sealed) {
            // A key file other than the one that sealed it (a node without the shared file).
            None => Attempt {
                status: None,
                error: Some("secret_unreadable"),
                response: None,
            },
            Some(secret) => self.post(&url, &secret, &event_id, &kind, body).await,
        };
        self.record(id, attempts, now, attempt).await
    }

    async fn post(
        &self,
        url: &str,
        secret: &str,
        event: &str,
        kind: &str,
        body: String,
    ) -> Attempt {
        let ts = chrono::Utc::now().timestamp();
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                sign::SIGNATURE_HEADER,
                sign::header_value(secret, ts, body.as_bytes()),
            )
            .header("Inspector-Event-Id", event)
            .header("Inspector-Event-Type", kind)
            .body(body)
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                return Attempt {
                    status: None,
                    error: Some(if e.is_timeout() {
                        "timeout"
                    } else if e.is_connect() {
                        "connect_failed"
                    } else {
                        "request_failed"
                    }),
                    response: None,
                }
            }
        };
        let status = resp.status().as_u16();
        // At most MAX_RESPONSE_BYTES of the answer are read; the rest is never waited for.
        let mut kept = Vec::new();
        let mut read_error = None;
        while kept.len() < MAX_RESPONSE_BYTES {
            match resp.chunk().await {
                Ok(Some(c)) => kept.extend_from_slice(&c),
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(if e.is_timeout() {
                        "timeout"
                    } else {
                        "read_failed"
                    });
                    break;
                }
            }
        }
        kept.truncate(KEPT_RESPONSE_BYTES);
        let response = (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned());
        let error = if (200..300).contains(&status) {
            None
        } else {
            Some(read_error.unwrap_or("http_status"))
        };
        Attempt {
            status: Some(status),
            error,
            response,
        }
    }

    /// The outcome, only if the row is still this node's claim of this attempt (a replay or
    /// another node's later claim wins).
    async fn record(&self, id: &str, attempts: i32, now: i64, a: Attempt) -> ApiResult<bool> {
        let c = &self.config.webhooks;
        let delivered = a.error.is_none();
        // The wait counts from the end of the failed attempt, not from its claim.
        let done = crate::db::now_micros().max(now);
        let (state, next_at) = if delivered {
            ("delivered", done)
        } else if attempts as u32 >= c.max_attempts {
            ("failed", done)
        } else {
            let wait = sign::backoff_secs(attempts as u32, c.retry_base_secs, c.retry_max_secs);
            ("pending", done + wait as i64 * SEC)
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, next_at = $2, last_status = $3, \
             last_error = $4, last_response = $5, claimed_by = NULL, claimed_until = NULL, \
             updated_at = $6, delivered_at = CASE WHEN $1 = 'delivered' THEN $6 ELSE delivered_at END \
             WHERE id = $7 AND state = 'sending' AND claimed_by = $8 AND attempts = $9",
        )
        .bind(state)
        .bind(next_at)
        .bind(a.status.map(i32::from))
        .bind(a.error)
        .bind(a.response)
        .bind(done)
        .bind(id)
        .bind(&self.node)
        .bind(attempts)
        .execute(&self.db)
        .await?;
        Ok(delivered)
    }

    /// Removes finished deliveries and fanned-out events older than the retention.
    async fn purge(&self, now: i64) -> ApiResult<()> {
        use std::sync::atomic::Ordering;
        if now - self.purged_at.load(Ordering::Relaxed) < 60 * SEC {
            return Ok(());
        }
        self.purged_at.store(now, Ordering::Relaxed);
        let cut = now - self.config.webhooks.retention_days as i64 * 86_400 * SEC;
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE state IN ('delivered', 'failed') AND updated_at < $1",
        )
        .bind(cut)
        .execute(&self.db)
        .await?;
        sqlx::query(
            "DELETE FROM webhook_events WHERE dispatched = 1 AND created_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id)",
        )
        .bind(cut)
        .execute(&self.db)
        .await?;
        Ok(())
    }
}

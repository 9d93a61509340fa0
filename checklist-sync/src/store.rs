//! Persistence of the event log: loading a room, the group-commit writer, audit verification
//! and JSON Lines export. SQL is the subset SQLite and PostgreSQL share.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use serde_json::{json, Value};
use sqlx::pool::PoolConnection;
use sqlx::AnyConnection;
use sqlx::{Any, AnyPool, Row};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::chain::{event_hash, CommittedEvent, GENESIS_HASH};
use crate::owner::{Fence, Ownership};
use crate::projection::Projection;
use crate::room::Restored;
use crate::state::{Event, EventBody, State};

/// Errors of storage-level operations.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored event cannot be read back.
    #[error("stored event {seq} of inspection {inspection_id} is unreadable: {reason}")]
    Corrupt {
        /// The inspection.
        inspection_id: Uuid,
        /// The event.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// Writing the export failed.
    #[error("write: {0}")]
    Io(#[from] std::io::Error),
    /// The hub is shutting down or the room failed.
    #[error("the sync hub is unavailable")]
    Unavailable,
}

const SELECT_EVENTS: &str =
    "SELECT seq, server_ts, participant_id, client_op_id, kind, payload, prev_hash, hash \
     FROM events WHERE inspection_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// One stored row, as read.
#[derive(Debug, Clone)]
struct Row_ {
    seq: i64,
    server_ts: i64,
    participant_id: String,
    client_op_id: Option<String>,
    kind: String,
    payload: String,
    prev_hash: String,
    hash: String,
}

/// The last `limit` actions at or before `upto`, newest first: the measurements (`presence`,
/// `location`, most of a long inspection's rows) are left out.
const SELECT_ACTIONS_BEFORE: &str =
    "SELECT seq, server_ts, participant_id, client_op_id, kind, payload, prev_hash, hash \
     FROM events WHERE inspection_id = $1 AND seq <= $2 \
     AND kind NOT IN ('presence', 'location') ORDER BY seq DESC LIMIT $3";

async fn page(pool: &AnyPool, id: Uuid, after: i64, limit: i64) -> Result<Vec<Row_>, sqlx::Error> {
    rows(pool, SELECT_EVENTS, id, after, limit).await
}

async fn rows(
    pool: &AnyPool,
    sql: &'static str,
    id: Uuid,
    seq: i64,
    limit: i64,
) -> Result<Vec<Row_>, sqlx::Error> {
    let rows = sqlx::query(sql)
        .bind(id.to_string())
        .bind(seq)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Row_ {
                seq: r.try_get(0)?,
                server_ts: r.try_get(1)?,
                participant_id: r.try_get(2)?,
                client_op_id: r.try_get(3)?,
                kind: r.try_get(4)?,
                payload: r.try_get(5)?,
                prev_hash: r.try_get(6)?,
                hash: r.try_get(7)?,
            })
        })
        .collect()
}

const PAGE: i64 = 2000;

fn to_committed(id: Uuid, r: &Row_) -> Result<(Event, CommittedEvent), SyncError> {
    let corrupt = |reason: String| SyncError::Corrupt {
        inspection_id: id,
        seq: r.seq as u64,
        reason,
    };
    let payload: Value = serde_json::from_str(&r.payload).map_err(|e| corrupt(e.to_string()))?;
    let participant_id = Uuid::parse_str(&r.participant_id).map_err(|e| corrupt(e.to_string()))?;
    let body = EventBody::from_parts(&r.kind, &payload).map_err(corrupt)?;
    let event = Event {
        seq: r.seq as u64,
        server_ts: r.server_ts,
        participant_id,
        client_op_id: r.client_op_id.clone(),
        device_time: crate::state::device_time_of(&payload),
        clock_offset_ms: crate::state::clock_offset_of(&payload),
        body,
    };
    let ce = CommittedEvent {
        inspection_id: id,
        seq: r.seq as u64,
        server_ts_micros: r.server_ts,
        participant_id,
        client_op_id: r.client_op_id.clone(),
        kind: r.kind.clone(),
        payload,
        payload_text: r.payload.clone(),
        prev_hash: r.prev_hash.clone(),
        hash: r.hash.clone(),
    };
    Ok((event, ce))
}

/// Rebuilds a room's starting point from the stored log.
pub(crate) async fn load(
    pool: &AnyPool,
    id: Uuid,
    replay_window: usize,
) -> Result<Restored, SyncError> {
    let mut restored = Restored::default();
    let mut recent: VecDeque<Arc<CommittedEvent>> = VecDeque::new();
    let mut after = 0i64;
    loop {
        let rows = page(pool, id, after, PAGE).await?;
        let n = rows.len();
        for r in &rows {
            let (ev, ce) = to_committed(id, r)?;
            restored.state.apply(&ev);
            if let Some(op_id) = &ev.client_op_id {
                restored
                    .op_ids
                    .insert((ev.participant_id, op_id.clone()), (ev.seq, ev.server_ts));
            }
            restored.seq = ev.seq;
            restored.ts = ev.server_ts;
            restored.hash = Some(ce.hash.clone());
            recent.push_back(Arc::new(ce));
            if recent.len() > replay_window {
                recent.pop_front();
            }
            after = r.seq;
        }
        if (n as i64) < PAGE {
            break;
        }
    }
    restored.recent = recent;
    Ok(restored)
}

/// The state after the last stored event and its seq, folded from the log straight from the
/// database (for inspections no room holds; audit tools need no hub).
pub async fn load_snapshot(pool: &AnyPool, id: Uuid) -> Result<(u64, State), SyncError> {
    let r = load(pool, id, 0).await?;
    Ok((r.seq, r.state))
}

/// Every committed event of an inspection, oldest first, typed: what projections and side
/// effects derive their data from (recording chapters, for example).
pub async fn read_events(pool: &AnyPool, inspection_id: Uuid) -> Result<Vec<Event>, SyncError> {
    let mut out = Vec::new();
    let mut after = 0i64;
    loop {
        let rows = page(pool, inspection_id, after, PAGE).await?;
        let n = rows.len();
        for r in &rows {
            out.push(to_committed(inspection_id, r)?.0);
            after = r.seq;
        }
        if (n as i64) < PAGE {
            break;
        }
    }
    Ok(out)
}

/// Whether `e` says the database did not answer (no connection, a connection cut, the server
/// shutting down or not yet accepting connections) rather than refused the statement: such a
/// failure is the database's outage, answered `database_unavailable` (retry), not `internal`.
pub fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception), 57P01–57P03 (admin/crash shutdown,
        // cannot connect now).
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// How a write request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Durable up to this seq.
    Upto(u64),
    /// Not written; nothing of it is in the database.
    Failed,
    /// Not written because the database did not answer ([`unreachable`]); nothing of it is in
    /// the database, and the same write may succeed once it is back.
    Unreachable,
}

/// A room's request to the writer.
pub(crate) struct WriteReq {
    pub generation: u64,
    /// The room's claim on its inspection, checked in the transaction (`crate::owner`).
    pub fence: Fence,
    pub events: Vec<Arc<CommittedEvent>>,
    /// Told how the write ended (once, unless the request was empty).
    pub done: Box<dyn Fn(Written) + Send + Sync>,
}

const INSERT_HEAD: &str = "INSERT INTO events (inspection_id, seq, server_ts, participant_id, client_op_id, kind, payload, prev_hash, hash) VALUES ";

/// Rows per INSERT statement: 9 parameters each stays under SQLite's oldest limit (999).
const ROWS_PER_INSERT: usize = 100;

/// `INSERT … VALUES ($1, …, $9), ($10, …)` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(INSERT_HEAD.len() + rows * 48);
    sql.push_str(INSERT_HEAD);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..9 {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * 9 + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

async fn write_batch(
    conn: &mut AnyConnection,
    reqs: &[&WriteReq],
    projection: &dyn Projection,
    ownership: &dyn Ownership,
) -> Result<Vec<Arc<CommittedEvent>>, sqlx::Error> {
    let events: Vec<Arc<CommittedEvent>> =
        reqs.iter().flat_map(|r| r.events.iter().cloned()).collect();
    let mut held: Vec<(Uuid, Fence)> = reqs
        .iter()
        .filter_map(|r| Some((r.events.first()?.inspection_id, r.fence)))
        .collect();
    held.sort_unstable();
    held.dedup();
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // Before any row: a room whose claim moved to another node appends nothing.
    ownership.check(&mut tx, &held).await?;
    // One statement per 100 rows: each statement is a round trip to the database (for SQLite
    // to its worker thread), which per row cost more than the rows themselves.
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let sql = insert_sql(chunk.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in chunk {
            q = q
                .bind(e.inspection_id.to_string())
                .bind(e.seq as i64)
                .bind(e.server_ts_micros)
                .bind(e.participant_id.to_string())
                .bind(e.client_op_id.clone())
                .bind(e.kind.clone())
                .bind(e.payload_text.clone())
                .bind(e.prev_hash.clone())
                .bind(e.hash.clone());
        }
        q.execute(&mut *tx).await?;
    }
    // The read models change in the same transaction as the log, or not at all.
    projection.apply(&mut tx, &events).await?;
    tx.commit().await?;
    Ok(events)
}

/// The writer's own connection, prepared for durable appends.
async fn writer_connection(pool: &AnyPool) -> Result<(PoolConnection<Any>, bool), sqlx::Error> {
    let mut c = pool.acquire().await?;
    let sqlite = c.backend_name().eq_ignore_ascii_case("sqlite");
    if sqlite {
        // WAL lets readers (reconnects, exports) run beside the writer; it persists in the file.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut *c)
            .await?;
        // Durability before acknowledgement: every commit reaches the disk.
        sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *c)
            .await?;
        // Checkpoints run beside the writer (see `checkpointer`), not inside a commit, where
        // they would stall every acknowledgement of the batch.
        sqlx::query("PRAGMA wal_autocheckpoint = 0")
            .execute(&mut *c)
            .await?;
    }
    Ok((c, sqlite))
}

/// Moves the SQLite WAL into the database file in the background (PASSIVE: never blocks the
/// writer). Stops when the writer is gone.
async fn checkpointer(pool: AnyPool, alive: std::sync::Weak<()>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    while alive.upgrade().is_some() {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

/// How the writer runs.
pub(crate) struct WriterConfig {
    /// Most events per group commit.
    pub max_batch: usize,
    /// SQLite: the WAL checkpoint interval.
    pub checkpoint_every: std::time::Duration,
    /// Events handed to the writer and not yet answered; the writer subtracts what it answers.
    pub queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Tests: a pause per event before each commit (a slow disk without a fake store).
    pub test_delay_per_event: std::time::Duration,
    /// When the commit under way started, µs after `epoch` (0: none under way).
    pub commit_started: Arc<std::sync::atomic::AtomicU64>,
    /// The time base of `commit_started`.
    pub epoch: std::time::Instant,
}

/// The group-commit writer: batches every room's pending appends into one transaction
/// (with the projection's updates), commits, runs the projection's after-commit step, then
/// tells each room how far it is durable.
pub(crate) async fn writer(
    pool: AnyPool,
    mut rx: mpsc::UnboundedReceiver<WriteReq>,
    projection: Arc<dyn Projection>,
    ownership: Arc<dyn Ownership>,
    config: WriterConfig,
) {
    let WriterConfig {
        max_batch,
        checkpoint_every,
        queued,
        test_delay_per_event,
        commit_started,
        epoch,
    } = config;
    let busy = |on: bool| {
        let us = if on {
            (epoch.elapsed().as_micros() as u64).max(1)
        } else {
            0
        };
        commit_started.store(us, std::sync::atomic::Ordering::Relaxed);
    };
    let answered = |r: &WriteReq| {
        queued.fetch_sub(r.events.len(), std::sync::atomic::Ordering::Relaxed);
    };
    let alive = Arc::new(());
    let mut conn: Option<PoolConnection<Any>> = None;
    let mut checkpointing = false;
    let mut failed: std::collections::HashSet<u64> = Default::default();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut n = batch[0].events.len();
        while n < max_batch {
            match rx.try_recv() {
                Ok(r) => {
                    n += r.events.len();
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        // A room whose earlier append failed must not get later ones in: that would leave a gap.
        let (live, dead): (Vec<&WriteReq>, Vec<&WriteReq>) =
            batch.iter().partition(|r| !failed.contains(&r.generation));
        for r in dead {
            answered(r);
            (r.done)(Written::Failed);
        }
        if conn.is_none() {
            match writer_connection(&pool).await {
                Ok((c, sqlite)) => {
                    conn = Some(c);
                    if sqlite && !checkpointing {
                        checkpointing = true;
                        tokio::spawn(checkpointer(
                            pool.clone(),
                            Arc::downgrade(&alive),
                            checkpoint_every,
                        ));
                    }
                }
                Err(e) => tracing::error!(error = %e, "sync writer cannot reach the database"),
            }
        }
        // `Err` carries how a request failed (`Failed` or `Unreachable`).
        let mut outcome: Vec<(&WriteReq, Result<(), Written>)> = Vec::new();
        busy(true);
        if !test_delay_per_event.is_zero() {
            let events: usize = live.iter().map(|r| r.events.len()).sum();
            tokio::time::sleep(test_delay_per_event * events as u32).await;
        }
        let started = std::time::Instant::now();
        let first_try = match conn.as_mut() {
            Some(c) => write_batch(c, &live, projection.as_ref(), ownership.as_ref()).await,
            None => Err(sqlx::Error::PoolClosed),
        };
        let took = started.elapsed();
        if took > std::time::Duration::from_millis(100) {
            // Every op in the batch waited this long for its ack: worth knowing in production.
            tracing::warn!(
                ms = took.as_millis() as u64,
                events = n,
                "slow group commit"
            );
        }
        match first_try {
            Ok(events) => {
                projection.committed(&events);
                outcome.extend(live.iter().map(|r| (*r, Ok(()))));
            }
            Err(e) => {
                tracing::warn!(error = %e, requests = live.len(), "group commit failed; retrying one by one");
                // The connection may be broken; take a fresh one for the retries.
                conn = writer_connection(&pool).await.ok().map(|(c, _)| c);
                for r in live {
                    let written = match conn.as_mut() {
                        Some(c) => {
                            match write_batch(c, &[r], projection.as_ref(), ownership.as_ref())
                                .await
                            {
                                Ok(events) => {
                                    projection.committed(&events);
                                    Ok(())
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, inspection = ?r.events.first().map(|e| e.inspection_id), "event append failed");
                                    Err(if unreachable(&e) {
                                        Written::Unreachable
                                    } else {
                                        Written::Failed
                                    })
                                }
                            }
                        }
                        None => Err(Written::Unreachable),
                    };
                    if written.is_err() {
                        failed.insert(r.generation);
                    }
                    outcome.push((r, written));
                }
            }
        }
        busy(false);
        for (r, written) in outcome {
            answered(r);
            match (written, r.events.last()) {
                (Ok(()), Some(last)) => (r.done)(Written::Upto(last.seq)),
                (Ok(()), None) => {}
                (Err(failure), _) => (r.done)(failure),
            }
        }
    }
}

/// Why a link of the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokenReason {
    /// A sequence number is missing or out of order.
    SeqGap {
        /// What should have come.
        expected: u64,
    },
    /// `prev_hash` is not the previous event's hash.
    PrevHashMismatch {
        /// The previous event's hash.
        expected: String,
        /// What the row says.
        found: String,
    },
    /// The row's content does not hash to its `hash`.
    HashMismatch {
        /// Recomputed from the row.
        computed: String,
        /// Stored.
        stored: String,
    },
}

/// The first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The seq of the first event that does not check out.
    pub seq: u64,
    /// Why.
    pub reason: BrokenReason,
}

/// Outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The inspection.
    pub inspection_id: Uuid,
    /// Number of events checked.
    pub events: u64,
    /// Hash of the last event (the value to write down to detect later truncation).
    pub head_hash: Option<String>,
    /// The first broken link, if any.
    pub first_broken: Option<BrokenLink>,
}

impl VerifyReport {
    /// True when every link checks out.
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.first_broken {
            None => write!(
                f,
                "inspection {}: {} events, chain intact, head {}",
                self.inspection_id,
                self.events,
                self.head_hash.as_deref().unwrap_or("(empty)")
            ),
            Some(b) => {
                write!(
                    f,
                    "inspection {}: chain BROKEN at event {}: ",
                    self.inspection_id, b.seq
                )?;
                match &b.reason {
                    BrokenReason::SeqGap { expected } => write!(f, "expected seq {expected}"),
                    BrokenReason::PrevHashMismatch { expected, found } => {
                        write!(
                            f,
                            "prev_hash {found} does not match previous event's hash {expected}"
                        )
                    }
                    BrokenReason::HashMismatch { computed, stored } => {
                        write!(f, "content hashes to {computed} but stored hash is {stored} (row altered)")
                    }
                }
            }
        }
    }
}

/// Checks an inspection's hash chain and names the first broken link.
pub async fn verify(pool: &AnyPool, inspection_id: Uuid) -> Result<VerifyReport, SyncError> {
    let mut prev = GENESIS_HASH.to_string();
    let mut expected = 1u64;
    let mut count = 0u64;
    let mut after = 0i64;
    let mut report = VerifyReport {
        inspection_id,
        events: 0,
        head_hash: None,
        first_broken: None,
    };
    'pages: loop {
        let rows = page(pool, inspection_id, after, PAGE).await?;
        let n = rows.len();
        for r in &rows {
            after = r.seq;
            count += 1;
            let seq = r.seq as u64;
            let broken = |reason| Some(BrokenLink { seq, reason });
            if seq != expected {
                report.first_broken = broken(BrokenReason::SeqGap { expected });
                break 'pages;
            }
            if r.prev_hash != prev {
                report.first_broken = broken(BrokenReason::PrevHashMismatch {
                    expected: prev.clone(),
                    found: r.prev_hash.clone(),
                });
                break 'pages;
            }
            let pid = Uuid::parse_str(&r.participant_id).unwrap_or(Uuid::nil());
            let participant_ok = pid.to_string() == r.participant_id;
            let computed = event_hash(
                inspection_id,
                seq,
                r.server_ts,
                pid,
                r.client_op_id.as_deref(),
                &r.kind,
                &r.payload,
                &r.prev_hash,
            );
            if computed != r.hash || !participant_ok {
                report.first_broken = broken(BrokenReason::HashMismatch {
                    computed,
                    stored: r.hash.clone(),
                });
                break 'pages;
            }
            prev = r.hash.clone();
            expected += 1;
        }
        if (n as i64) < PAGE {
            break;
        }
    }
    report.events = count;
    report.head_hash = if count > 0 && report.first_broken.is_none() {
        Some(prev)
    } else {
        None
    };
    Ok(report)
}

/// One exported event: a JSON object and a newline.
fn jsonl_line(inspection_id: Uuid, r: &Row_) -> String {
    // The payload is exported as JSON when it parses, else verbatim as a string, so that an
    // altered row still shows what it holds.
    let payload: Value = serde_json::from_str(&r.payload).unwrap_or_else(|_| json!(r.payload));
    let server_time = chrono::DateTime::from_timestamp_micros(r.server_ts)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    let mut s = json!({
        "inspection_id": inspection_id,
        "seq": r.seq,
        "server_ts": r.server_ts,
        "server_time": server_time,
        "participant_id": r.participant_id,
        "client_op_id": r.client_op_id,
        "kind": r.kind,
        "payload": payload,
        "payload_text": r.payload,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    })
    .to_string();
    s.push('\n');
    s
}

/// Writes the last `limit` actions at or before `upto` as JSON Lines, oldest first — the lines
/// of [`export_jsonl`] without the measurements (`presence`, `location`) — for a live page's
/// list of what happened, which then costs its window and not the inspection's whole history.
/// The lines keep their hashes, but a window is not a chain: verifying needs the whole log.
/// Returns the number of lines.
pub async fn export_jsonl_window<W: AsyncWrite + Unpin>(
    pool: &AnyPool,
    inspection_id: Uuid,
    upto: i64,
    limit: i64,
    out: &mut W,
) -> Result<u64, SyncError> {
    let rows = rows(pool, SELECT_ACTIONS_BEFORE, inspection_id, upto, limit).await?;
    for r in rows.iter().rev() {
        out.write_all(jsonl_line(inspection_id, r).as_bytes())
            .await?;
    }
    out.flush().await?;
    Ok(rows.len() as u64)
}

/// Writes an inspection's log as JSON Lines, one event per line, oldest first; returns the
/// number of lines.
pub async fn export_jsonl<W: AsyncWrite + Unpin>(
    pool: &AnyPool,
    inspection_id: Uuid,
    out: &mut W,
) -> Result<u64, SyncError> {
    let mut after = 0i64;
    let mut count = 0u64;
    loop {
        let rows = page(pool, inspection_id, after, PAGE).await?;
        let n = rows.len();
        for r in &rows {
            after = r.seq;
            out.write_all(jsonl_line(inspection_id, r).as_bytes())
                .await?;
            count += 1;
        }
        if (n as i64) < PAGE {
            break;
        }
    }
    out.flush().await?;
    Ok(count)
}

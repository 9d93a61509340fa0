//! The prescription's log: the `prescription_events` table, sealed with the inspection log's
//! own chain (`checklist_sync::chain::event_hash`, the prescription's id in the inspection's
//! place, the actor in the participant's), appended one event per transaction, verified and
//! exported like the inspection's.

use std::sync::LazyLock;

use checklist_sync::chain::{event_hash, ChainCheck, GENESIS_HASH};
use checklist_sync::VerifyReport;
use serde_json::{json, Value};
use sqlx::{Any, AnyPool, Transaction};
use uuid::Uuid;

use super::model::{Event, Logged};
use crate::audit::{EvidenceFinding, EvidenceProblem};
use crate::blobs::BlobStore;
use crate::db::{corrupt, RowExt};
use crate::error::{ApiError, ApiResult};

/// Events one prescription's log may hold (bounded by the item limits; a guard).
pub const MAX_EVENTS: i64 = 5000;

/// Appends in this process one at a time: the next seq and the previous hash are read and
/// written in one transaction, and a second node racing it loses on the primary key.
static APPEND: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

/// One stored row.
#[derive(Debug, Clone)]
pub struct Row {
    /// Seq.
    pub seq: i64,
    /// Server time, µs.
    pub server_ts: i64,
    /// Actor id text.
    pub actor_id: String,
    /// Always null here (kept for the chain's canonical form).
    pub client_op_id: Option<String>,
    /// Kind.
    pub kind: String,
    /// Payload text, as hashed.
    pub payload: String,
    /// Previous hash.
    pub prev_hash: String,
    /// Hash.
    pub hash: String,
}

/// Every stored row of a prescription, oldest first.
pub async fn rows(db: &AnyPool, id: Uuid) -> ApiResult<Vec<Row>> {
    let rows = sqlx::query(
        "SELECT seq, server_ts, actor_id, client_op_id, kind, payload, prev_hash, hash \
         FROM prescription_events WHERE prescription_id = $1 ORDER BY seq LIMIT $2",
    )
    .bind(id.to_string())
    .bind(MAX_EVENTS)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Row {
                seq: r.col(0)?,
                server_ts: r.col(1)?,
                actor_id: r.col(2)?,
                client_op_id: r.col(3)?,
                kind: r.col(4)?,
                payload: r.col(5)?,
                prev_hash: r.col(6)?,
                hash: r.col(7)?,
            })
        })
        .collect()
}

/// The typed log of a prescription, oldest first.
pub async fn read(db: &AnyPool, id: Uuid) -> ApiResult<Vec<Logged>> {
    rows(db, id)
        .await?
        .iter()
        .map(|r| {
            Ok(Logged {
                seq: r.seq as u64,
                ts: r.server_ts,
                actor: Uuid::parse_str(&r.actor_id)
                    .map_err(|_| corrupt("prescription event actor", &r.actor_id))?,
                event: Event::from_parts(&r.kind, &r.payload)
                    .map_err(|e| corrupt("prescription event", e))?,
            })
        })
        .collect()
}

/// What an append committed.
#[derive(Debug, Clone)]
pub struct Appended {
    /// Seq.
    pub seq: u64,
    /// Server time, µs.
    pub ts: i64,
    /// Hash.
    pub hash: String,
}

/// Appends one event inside `tx` (the caller commits; nothing is acknowledged before).
/// The timestamp strictly increases along the log.
pub async fn append_in(
    tx: &mut Transaction<'static, Any>,
    id: Uuid,
    actor: Uuid,
    event: &Event,
    now: i64,
) -> ApiResult<Appended> {
    // A write first: on SQLite a read first would pin the transaction's snapshot, and a write
    // another connection commits meanwhile (the webhook worker's, the sync writer's) would
    // fail the INSERT at once (SQLITE_BUSY_SNAPSHOT) instead of waiting its turn.
    sqlx::query("UPDATE prescriptions SET created_at = created_at WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    let last = sqlx::query(
        "SELECT seq, server_ts, hash FROM prescription_events WHERE prescription_id = $1 \
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let (seq, ts, prev) = match last {
        None => (1u64, now, GENESIS_HASH.to_string()),
        Some(r) => {
            let seq: i64 = r.col(0)?;
            if seq >= MAX_EVENTS {
                return Err(ApiError::Conflict {
                    code: "log_full",
                    message: "the prescription's log is full".into(),
                });
            }
            let ts: i64 = r.col(1)?;
            (seq as u64 + 1, now.max(ts + 1), r.col::<String>(2)?)
        }
    };
    let payload = event.payload().to_string();
    let hash = event_hash(id, seq, ts, actor, None, event.kind(), &payload, &prev);
    sqlx::query(
        "INSERT INTO prescription_events (prescription_id, seq, server_ts, actor_id, \
         client_op_id, kind, payload, prev_hash, hash) VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8)",
    )
    .bind(id.to_string())
    .bind(seq as i64)
    .bind(ts)
    .bind(actor.to_string())
    .bind(event.kind())
    .bind(&payload)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut **tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => ApiError::Conflict {
            code: "concurrent_change",
            message: "the prescription changed meanwhile; try again".into(),
        },
        _ => ApiError::Database(e),
    })?;
    // A decision's webhook outbox row, in the append's transaction.
    let decided = match event {
        Event::Accepted(a) => Some((a.item.as_str(), "accept", None, None)),
        Event::Returned(r) => Some((
            r.item.as_str(),
            "return",
            Some(r.comment.as_str()),
            r.due_at,
        )),
        _ => None,
    };
    if let Some((item, decision, comment, due_at)) = decided {
        crate::webhooks::item_decided_in(
            &mut **tx, id, seq, &hash, ts, item, decision, comment, due_at,
        )
        .await?;
    }
    Ok(Appended { seq, ts, hash })
}

/// Serializes this process's appends (see [`APPEND`]); hold the guard until the commit.
pub async fn lock() -> tokio::sync::MutexGuard<'static, ()> {
    APPEND.lock().await
}

/// The audit of one prescription.
#[derive(Debug)]
pub struct PrescriptionAudit {
    /// The chain check (in the inspection report's shape; `inspection_id` holds the
    /// prescription's id).
    pub chain: VerifyReport,
    /// Proofs re-hashed.
    pub proofs_checked: usize,
    /// Proofs that are missing or altered (`evidence_id` is the proof's id).
    pub proof_problems: Vec<EvidenceFinding>,
}

impl PrescriptionAudit {
    /// Chain intact and every proof as logged.
    pub fn is_clean(&self) -> bool {
        self.chain.is_intact() && self.proof_problems.is_empty()
    }
}

/// Checks the chain and re-hashes every proof the log names.
pub async fn verify(
    db: &AnyPool,
    blobs: &BlobStore,
    id: Uuid,
) -> anyhow::Result<PrescriptionAudit> {
    let rows = rows(db, id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut check = ChainCheck::new(id);
    let mut first_broken = None;
    for r in &rows {
        if let Err(b) = check.next(
            r.seq as u64,
            r.server_ts,
            &r.actor_id,
            r.client_op_id.as_deref(),
            &r.kind,
            &r.payload,
            &r.prev_hash,
            &r.hash,
        ) {
            first_broken = Some(b);
            break;
        }
    }
    let chain = VerifyReport {
        inspection_id: id,
        events: rows.len() as u64,
        head_hash: if first_broken.is_none() {
            check.head().map(str::to_string)
        } else {
            None
        },
        first_broken,
    };
    let mut checked = 0;
    let mut problems = Vec::new();
    for r in rows.iter().filter(|r| r.kind == "proof_added") {
        let Ok(Event::ProofAdded(p)) = Event::from_parts(&r.kind, &r.payload) else {
            continue;
        };
        checked += 1;
        let problem = match blobs.rehash(&p.proof.sha256).await? {
            None => Some(EvidenceProblem::Missing),
            Some((h, n)) if h != p.proof.sha256 || n != p.proof.size => {
                Some(EvidenceProblem::Altered {
                    actual_sha256: h,
                    actual_size: n,
                })
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            problems.push(EvidenceFinding {
                seq: r.seq as u64,
                evidence_id: p.proof.id.to_string(),
                sha256: p.proof.sha256.clone(),
                problem,
            });
        }
    }
    Ok(PrescriptionAudit {
        chain,
        proofs_checked: checked,
        proof_problems: problems,
    })
}

/// The prescriptions that follow up an inspection (for `audit verify`).
pub async fn of_inspection(db: &AnyPool, inspection: Uuid) -> ApiResult<Vec<Uuid>> {
    let rows = sqlx::query("SELECT id FROM prescriptions WHERE inspection_id = $1 ORDER BY id")
        .bind(inspection.to_string())
        .fetch_all(db)
        .await?;
    rows.iter().map(|r| r.uuid(0)).collect()
}

/// The log as JSON Lines, one event per line, in the inspection export's shape.
pub fn export_jsonl(id: Uuid, rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        let payload: Value = serde_json::from_str(&r.payload).unwrap_or_else(|_| json!(r.payload));
        let server_time = chrono::DateTime::from_timestamp_micros(r.server_ts)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        let line = json!({
            "prescription_id": id,
            "seq": r.seq,
            "server_ts": r.server_ts,
            "server_time": server_time,
            "actor_id": r.actor_id,
            "client_op_id": r.client_op_id,
            "kind": r.kind,
            "payload": payload,
            "payload_text": r.payload,
            "prev_hash": r.prev_hash,
            "hash": r.hash,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

//! The nodes of one deployment on PostgreSQL (issue 20, item 1): which node runs a live
//! inspection. One row per inspection in `inspection_leases` names its owner, the owner's URL
//! for the other nodes, an expiry and a fencing token.
//!
//! Decisions:
//! - **A lease row with a fencing token, not an advisory lock.** An advisory lock lives and dies
//!   with one database connection: a pool that recycles the connection, or a connection that
//!   drops for a moment, loses every lock it held without the node noticing, and a lock says
//!   nothing a later write could check. A row outlives connection trouble for its TTL, names its
//!   owner's URL (routing reads it) and carries a token that grows with every claim; the sync
//!   writer checks the token in each commit's own transaction (`FOR SHARE`, so a take-over waits
//!   for a commit under way and the new owner then loads a log that has it).
//! - **Expiry on the database's clock** (`clock_timestamp()`), so the nodes' clocks need not
//!   agree.
//! - **A release keeps the row** (its expiry goes to 0): the token must only grow, or a new
//!   claim could reuse the token a stale room still holds.
//! - **Renewal in one statement per period** for every lease of the node; a room whose lease
//!   was taken over meanwhile fails its next commit (the fence) and its sockets reconnect.
//!
//! SQLite is one machine: [`checklist_sync::owner::OneNode`], no rows.

pub mod proxy;
pub mod recordings;

use std::sync::Arc;
use std::time::Duration;

use checklist_sync::owner::{Claim, Fence, Ownership};
use sqlx::{AnyConnection, AnyPool, Row};
use uuid::Uuid;

use crate::db::{Backend, RowExt};

/// Now on the database's clock, µs since the epoch (PostgreSQL).
const DB_NOW: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)";

/// This node's claims on live inspections, kept in PostgreSQL.
#[derive(Debug)]
pub struct Leases {
    db: AnyPool,
    /// This node (its data directory's id: the same after a restart).
    node_id: String,
    /// Where the other nodes reach this one.
    node_url: String,
    ttl: Duration,
    /// The claims this node holds, and when each was granted (a renewal that began before a
    /// claim cannot have renewed it).
    held: std::sync::Mutex<std::collections::HashMap<Uuid, (Fence, tokio::time::Instant)>>,
    /// Told every inspection whose claim a renewal found gone: its room must close.
    lost: tokio::sync::mpsc::UnboundedSender<Uuid>,
}

/// The ownership for a database: leases on PostgreSQL, none on SQLite.
/// `lost` is told every inspection whose claim another node took while this one held it.
///
/// The node's id is its data directory's (`node_id`): a node restarted after a crash is the
/// same node, so it takes its inspections back at once instead of waiting for its own leases
/// to expire; the claims of its previous run are released first (their rooms are gone), and
/// the fencing token still keeps a previous run that is somehow alive from appending.
pub async fn ownership_for(
    db: &AnyPool,
    database_url: &str,
    node_id: &str,
    node_url: &str,
    ttl: Duration,
    lost: tokio::sync::mpsc::UnboundedSender<Uuid>,
) -> anyhow::Result<(Arc<dyn Ownership>, Option<Arc<Leases>>)> {
    Ok(match Backend::of(database_url)? {
        Backend::Sqlite => (Arc::new(checklist_sync::owner::OneNode), None),
        Backend::Postgres => {
            let leases = Arc::new(Leases {
                db: db.clone(),
                node_id: node_id.to_string(),
                node_url: node_url.to_string(),
                ttl,
                held: Default::default(),
                lost,
            });
            leases.release_all().await;
            tokio::spawn(renew(Arc::downgrade(&leases)));
            (leases.clone(), Some(leases))
        }
    })
}

/// The node's stable id, made once in its data directory (`<data>/node-id`): the same across
/// restarts of that node, different for every node (each has its own data directory).
pub fn node_id(data_dir: &std::path::Path) -> std::io::Result<String> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => {
            let id = Uuid::new_v4().simple().to_string();
            let tmp = data_dir.join("node-id.tmp");
            std::fs::write(&tmp, &id)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(id)
        }
    }
}

impl Leases {
    fn held_map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<Uuid, (Fence, tokio::time::Instant)>>
    {
        // Plain data; a panic elsewhere leaves it usable.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ttl_us(&self) -> i64 {
        self.ttl.as_micros() as i64
    }

    /// The URL of the node that holds a live lease on `inspection`, if it is another node.
    pub async fn owner_elsewhere(&self, inspection: Uuid) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT node_url FROM inspection_leases \
             WHERE inspection_id = $1 AND node_id <> $2 AND expires_at > {DB_NOW}"
        )))
        .bind(inspection.to_string())
        .bind(&self.node_id)
        .fetch_optional(&self.db)
        .await?;
        Ok(row.and_then(|r| r.col::<String>(0).ok()))
    }

    /// Gives up every lease of this node (a drain at shutdown, after its rooms closed).
    pub async fn release_all(&self) {
        if let Err(e) = sqlx::query(
            "UPDATE inspection_leases SET expires_at = 0 WHERE node_id = $1 AND expires_at > 0",
        )
        .bind(&self.node_id)
        .execute(&self.db)
        .await
        {
            tracing::warn!(error = %e, "leases: cannot release this node's leases");
        }
    }
}

#[async_trait::async_trait]
impl Ownership for Leases {
    async fn claim(&self, inspection: Uuid) -> Result<Claim, sqlx::Error> {
        // Taken when free, expired or already ours; the token grows either way.
        let got = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO inspection_leases (inspection_id, node_id, node_url, token, expires_at) \
             VALUES ($1, $2, $3, 1, {DB_NOW} + $4) \
             ON CONFLICT (inspection_id) DO UPDATE SET node_id = EXCLUDED.node_id, \
               node_url = EXCLUDED.node_url, token = inspection_leases.token + 1, \
               expires_at = EXCLUDED.expires_at \
             WHERE inspection_leases.expires_at <= {DB_NOW} \
               OR inspection_leases.node_id = EXCLUDED.node_id \
             RETURNING token"
        )))
        .bind(inspection.to_string())
        .bind(&self.node_id)
        .bind(&self.node_url)
        .bind(self.ttl_us())
        .fetch_optional(&self.db)
        .await?;
        if let Some(r) = got {
            let token: i64 = r.try_get(0)?;
            self.held_map()
                .insert(inspection, (Fence(token), tokio::time::Instant::now()));
            return Ok(Claim::Granted(Fence(token)));
        }
        let owner = sqlx::query("SELECT node_url FROM inspection_leases WHERE inspection_id = $1")
            .bind(inspection.to_string())
            .fetch_optional(&self.db)
            .await?;
        Ok(Claim::HeldBy {
            node_url: owner
                .and_then(|r| r.try_get::<String, _>(0).ok())
                .unwrap_or_default(),
        })
    }

    async fn release(&self, inspection: Uuid, fence: Fence) {
        {
            let mut held = self.held_map();
            if held.get(&inspection).is_some_and(|(f, _)| *f == fence) {
                held.remove(&inspection);
            }
        }
        if let Err(e) = sqlx::query(
            "UPDATE inspection_leases SET expires_at = 0 \
             WHERE inspection_id = $1 AND node_id = $2 AND token = $3",
        )
        .bind(inspection.to_string())
        .bind(&self.node_id)
        .bind(fence.0)
        .execute(&self.db)
        .await
        {
            tracing::warn!(error = %e, inspection = %inspection, "leases: cannot release");
        }
    }

    async fn check(
        &self,
        tx: &mut AnyConnection,
        held: &[(Uuid, Fence)],
    ) -> Result<(), sqlx::Error> {
        // One statement per 500 rooms, not one per room: a group commit carries many.
        for chunk in held.chunks(500) {
            let mut sql = String::from(
                "SELECT inspection_id, token FROM inspection_leases WHERE node_id = $1 AND inspection_id IN (",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", i + 2));
            }
            // FOR SHARE: a take-over (an UPDATE of these rows) waits until this commit is done.
            sql.push_str(") FOR SHARE");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&self.node_id);
            for (inspection, _) in chunk {
                q = q.bind(inspection.to_string());
            }
            let rows = q.fetch_all(&mut *tx).await?;
            let mut tokens = std::collections::HashMap::with_capacity(rows.len());
            for r in &rows {
                let id: String = r.try_get(0)?;
                let token: i64 = r.try_get(1)?;
                tokens.insert(id, token);
            }
            for (inspection, fence) in chunk {
                if tokens.get(&inspection.to_string()) != Some(&fence.0) {
                    tracing::warn!(inspection = %inspection, "leases: another node took this inspection over");
                    return Err(sqlx::Error::Protocol(format!(
                        "inspection {inspection}: the lease moved to another node"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Renews every live lease of the node three times per TTL, until the node is gone. A claim
/// the renewal no longer finds (another node took it over) is reported as lost, so that its
/// room closes instead of serving a state that is no longer the inspection's.
async fn renew(leases: std::sync::Weak<Leases>) {
    loop {
        let Some(l) = leases.upgrade() else { return };
        let every = l.ttl / 3;
        let began = tokio::time::Instant::now();
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE inspection_leases SET expires_at = {DB_NOW} + $1 \
             WHERE node_id = $2 AND expires_at > 0 RETURNING inspection_id, token"
        )))
        .bind(l.ttl_us())
        .bind(&l.node_id)
        .fetch_all(&l.db)
        .await;
        match r {
            Ok(rows) => {
                let renewed: std::collections::HashSet<(String, i64)> = rows
                    .iter()
                    .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
                    .collect();
                let lost: Vec<Uuid> = {
                    let mut held = l.held_map();
                    let lost: Vec<Uuid> = held
                        .iter()
                        .filter(|(id, (fence, at))| {
                            *at < began && !renewed.contains(&(id.to_string(), fence.0))
                        })
                        .map(|(id, _)| *id)
                        .collect();
                    for id in &lost {
                        held.remove(id);
                    }
                    lost
                };
                for id in lost {
                    tracing::warn!(inspection = %id, "leases: another node took this inspection over");
                    let _ = l.lost.send(id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "leases: renewal failed"),
        }
        drop(l);
        tokio::time::sleep(every).await;
    }
}

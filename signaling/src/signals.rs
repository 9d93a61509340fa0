//! Signals between the nodes of one deployment (issue 20, item 3): what one node changed that
//! sockets held by another node must act on at once. Today: access that ended (a session
//! logged out, an account disabled, an invitation revoked) — the other nodes re-check the
//! sockets that credential opened and close the invalid ones within a second instead of at
//! their next periodic re-check (`access_recheck`, 5 s).
//!
//! Decisions:
//! - **An outbox row in the change's own transaction.** [`Bus::publish`] takes the
//!   transaction that makes the change: a rolled-back change signals nothing, a committed one
//!   always has its row. On PostgreSQL the row's id rides `NOTIFY inspector_signals`, which
//!   the server delivers at commit; the payload is only the id, so a signal may grow past
//!   NOTIFY's 8 000 bytes and is readable after the fact.
//! - **A signal is a hint, the database is the truth.** A node that hears one re-checks the
//!   matching sockets with the rule that authenticates requests (`auth::credential_valid`); it
//!   never closes a socket on the signal's word. So a replayed or late signal (an account
//!   disabled, then enabled again) cannot close a socket that is allowed.
//! - **A gap is closed by a full re-check.** When the listener's connection drops, the signals
//!   sent meanwhile are lost to it; once it is back it re-checks every registered socket
//!   ([`Heard::Resync`]), which is what replaying the missed rows would have achieved.
//! - **SQLite is one node**: [`NoBus`] records nothing and hears nothing; the process that made
//!   the change closes its own sockets directly (`live::AccessWatch::end_*`), a change made by
//!   another process (the `inspector user disable` command) within the periodic re-check.
//!
//! [`Bus`] is the whole interface: a NATS subject could replace `LISTEN/NOTIFY` behind it (the
//! outbox row stays, a relay publishes its id after the commit).

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::db::{Backend, RowExt};

/// The PostgreSQL channel the nodes listen on.
pub const CHANNEL: &str = "inspector_signals";

/// How long a signal's row is kept: it is only read within a second of its commit; the rest
/// is a trail for whoever investigates a socket that closed.
const KEEP: Duration = Duration::from_secs(3600);

/// What a node tells the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A session (staff or guest) ended: its sockets must close. The token's hash.
    SessionEnded(String),
    /// An account was disabled: its staff sockets must close.
    UserDisabled(Uuid),
    /// An invitation was revoked: its guests' sockets must close.
    InvitationRevoked(Uuid),
}

impl Signal {
    /// The stored form: a code and its subject.
    fn parts(&self) -> (&'static str, String) {
        match self {
            Signal::SessionEnded(h) => ("session_ended", h.clone()),
            Signal::UserDisabled(u) => ("user_disabled", u.to_string()),
            Signal::InvitationRevoked(i) => ("invitation_revoked", i.to_string()),
        }
    }

    fn from_parts(kind: &str, subject: &str) -> Option<Signal> {
        match kind {
            "session_ended" => Some(Signal::SessionEnded(subject.to_string())),
            "user_disabled" => Uuid::parse_str(subject).ok().map(Signal::UserDisabled),
            "invitation_revoked" => Uuid::parse_str(subject).ok().map(Signal::InvitationRevoked),
            _ => None,
        }
    }
}

/// What the listener hands to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A signal some node (this one included) committed.
    Signal(Signal),
    /// Signals may have been missed (the listener reconnected): re-check everything.
    Resync,
}

/// The nodes' channel (see the module documentation).
#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Records `signal` in `tx`, the transaction that makes the change it reports.
    async fn publish(
        &self,
        tx: &mut Transaction<'static, Any>,
        signal: &Signal,
    ) -> Result<(), sqlx::Error>;

    /// Runs for the life of the process, handing every signal any node commits to `heard`.
    async fn listen(self: Arc<Self>, heard: mpsc::Sender<Heard>);
}

/// The bus for a database URL: PostgreSQL's `LISTEN/NOTIFY`, or none for SQLite.
pub fn bus_for(db: &AnyPool, database_url: &str) -> anyhow::Result<Arc<dyn Bus>> {
    Ok(match Backend::of(database_url)? {
        Backend::Sqlite => Arc::new(NoBus),
        Backend::Postgres => Arc::new(PgBus {
            db: db.clone(),
            url: database_url.to_string(),
        }),
    })
}

/// One node (SQLite): nothing to tell anyone.
pub struct NoBus;

#[async_trait::async_trait]
impl Bus for NoBus {
    async fn publish(
        &self,
        _tx: &mut Transaction<'static, Any>,
        _signal: &Signal,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn listen(self: Arc<Self>, _heard: mpsc::Sender<Heard>) {}
}

/// PostgreSQL: a `node_signals` row and `pg_notify` with its id, in the change's transaction.
pub struct PgBus {
    db: AnyPool,
    url: String,
}

#[async_trait::async_trait]
impl Bus for PgBus {
    async fn publish(
        &self,
        tx: &mut Transaction<'static, Any>,
        signal: &Signal,
    ) -> Result<(), sqlx::Error> {
        let id = Uuid::now_v7().to_string();
        let (kind, subject) = signal.parts();
        sqlx::query(
            "INSERT INTO node_signals (id, kind, subject, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(kind)
        .bind(subject)
        .bind(crate::db::now_micros())
        .execute(&mut **tx)
        .await?;
        // Delivered to every listener when `tx` commits, never if it rolls back.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn listen(self: Arc<Self>, heard: mpsc::Sender<Heard>) {
        let mut pruned = tokio::time::Instant::now();
        loop {
            // Connect (again); a failure is retried, and what was missed meanwhile is resynced.
            let mut listener = match sqlx::postgres::PgListener::connect(&self.url).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "signals: cannot connect the listener");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %e, "signals: LISTEN failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // Anything sent before LISTEN took effect is covered by a full re-check.
            if heard.send(Heard::Resync).await.is_err() {
                return;
            }
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        if let Some(signal) = self.read(n.payload()).await {
                            if heard.send(Heard::Signal(signal)).await.is_err() {
                                return;
                            }
                        }
                    }
                    // The connection dropped and the notifications since are gone. Connect
                    // and LISTEN again first, then re-check everything (the outer loop): a
                    // change committed before the LISTEN is caught by the re-check, one after
                    // it by its notification.
                    Ok(None) => {
                        tracing::warn!("signals: listener lost its connection; reconnecting");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "signals: listener failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        break;
                    }
                }
                if pruned.elapsed() > Duration::from_secs(600) {
                    pruned = tokio::time::Instant::now();
                    self.prune().await;
                }
            }
        }
    }
}

impl PgBus {
    /// The signal behind a notification's payload; `None` (logged) if it cannot be read.
    async fn read(&self, id: &str) -> Option<Signal> {
        let row = sqlx::query("SELECT kind, subject FROM node_signals WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db)
            .await;
        let parsed = match row {
            Ok(Some(r)) => match (r.col::<String>(0), r.col::<String>(1)) {
                (Ok(kind), Ok(subject)) => Signal::from_parts(&kind, &subject),
                _ => None,
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, id, "signals: cannot read a signal");
                None
            }
        };
        if parsed.is_none() {
            tracing::warn!(id, "signals: a notification without a readable signal");
        }
        parsed
    }

    async fn prune(&self) {
        let before = crate::db::now_micros() - KEEP.as_micros() as i64;
        if let Err(e) = sqlx::query("DELETE FROM node_signals WHERE created_at < $1")
            .bind(before)
            .execute(&self.db)
            .await
        {
            tracing::warn!(error = %e, "signals: pruning old rows failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_reads_back_from_its_stored_parts() {
        let u = Uuid::now_v7();
        for s in [
            Signal::SessionEnded("ab12".into()),
            Signal::UserDisabled(u),
            Signal::InvitationRevoked(u),
        ] {
            let (kind, subject) = s.parts();
            assert_eq!(Signal::from_parts(kind, &subject), Some(s));
        }
        assert_eq!(Signal::from_parts("user_disabled", "not a uuid"), None);
        assert_eq!(Signal::from_parts("unknown", "x"), None);
    }
}

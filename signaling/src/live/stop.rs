//! What closes a live socket from the server's side: the end of the access it was opened
//! with. Every socket registers the credential it was authorized by (a staff session, or a
//! guest session of an invitation) and gets a [`Stop`] future; the socket closes with code 4401
//! when it completes.
//!
//! Two ways end a credential:
//! - at once, from this process: logout ([`AccessWatch::end_session`]), disabling an account
//!   ([`AccessWatch::end_user`]), revoking an invitation ([`AccessWatch::end_invitation`]);
//! - by a periodic re-check (every `access_recheck`, 5 s by default) of each registered
//!   credential against the database with the same rule that authenticates requests. This
//!   catches session and invitation expiry and changes made by another process, such as
//!   `inspector user disable` from the command line, within one period;
//! - on PostgreSQL, by the same re-check run at once for the credentials another node or
//!   process signalled (`crate::signals`, [`AccessWatch::follow`]): within a second.
//!
//! Server shutdown is not an end of access and is not signalled here: the sync hub closes
//! every socket with 1001 then ([`checklist_sync::SyncHub::shutdown`]), so clients reconnect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::auth;
use crate::signals::{Heard, Signal};

/// What authorized a socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A staff session (its token's hash) of a user.
    Staff {
        /// `sessions.token_hash`.
        session_hash: String,
        /// The account.
        user_id: Uuid,
    },
    /// A guest session (its token's hash) of an invitation.
    Guest {
        /// `guest_sessions.token_hash`.
        session_hash: String,
        /// The invitation.
        invitation_id: Uuid,
    },
}

impl Credential {
    fn session_hash(&self) -> &str {
        match self {
            Credential::Staff { session_hash, .. } | Credential::Guest { session_hash, .. } => {
                session_hash
            }
        }
    }
}

struct Entry {
    credential: Credential,
    end: watch::Sender<bool>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    entries: HashMap<u64, Entry>,
}

struct Inner {
    registry: Mutex<Registry>,
}

/// The registry of open sockets' credentials (see the module documentation).
#[derive(Clone)]
pub struct AccessWatch {
    inner: Arc<Inner>,
}

/// Completes when the socket's access ends; dropping it unregisters the socket.
pub struct Stop {
    watch: AccessWatch,
    id: u64,
    end: watch::Receiver<bool>,
}

impl Stop {
    /// Waits until the socket must close.
    pub async fn wait(mut self) {
        let _ = self.end.wait_for(|v| *v).await;
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        self.watch.registry().entries.remove(&self.id);
    }
}

impl AccessWatch {
    /// Starts the registry and its re-check task (which ends when the registry is dropped).
    pub fn new(db: AnyPool, recheck_every: Duration) -> AccessWatch {
        let watch = AccessWatch {
            inner: Arc::new(Inner {
                registry: Mutex::new(Registry::default()),
            }),
        };
        tokio::spawn(recheck(Arc::downgrade(&watch.inner), db, recheck_every));
        watch
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // Plain data; a panic elsewhere leaves it usable.
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a socket opened with `credential`.
    pub fn watch(&self, credential: Credential) -> Stop {
        let (end, rx) = watch::channel(false);
        let mut r = self.registry();
        r.next += 1;
        let id = r.next;
        r.entries.insert(id, Entry { credential, end });
        drop(r);
        Stop {
            watch: self.clone(),
            id,
            end: rx,
        }
    }

    fn end_where(&self, pred: impl Fn(&Credential) -> bool) -> usize {
        let r = self.registry();
        let mut n = 0;
        for e in r.entries.values().filter(|e| pred(&e.credential)) {
            let _ = e.end.send(true);
            n += 1;
        }
        n
    }

    /// Closes the sockets of one session (staff or guest), e.g. on logout.
    pub fn end_session(&self, session_hash: &str) -> usize {
        self.end_where(|c| c.session_hash() == session_hash)
    }

    /// Closes every staff socket of a user, e.g. when the account is disabled.
    pub fn end_user(&self, user: Uuid) -> usize {
        self.end_where(|c| matches!(c, Credential::Staff { user_id, .. } if *user_id == user))
    }

    /// Closes every guest socket of an invitation, e.g. when it is revoked.
    pub fn end_invitation(&self, invitation: Uuid) -> usize {
        self.end_where(
            |c| matches!(c, Credential::Guest { invitation_id, .. } if *invitation_id == invitation),
        )
    }

    /// Number of registered sockets.
    pub fn sockets(&self) -> usize {
        self.registry().entries.len()
    }
}

/// Every `every`, checks each distinct registered credential once and ends the invalid ones.
async fn recheck(inner: Weak<Inner>, db: AnyPool, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        AccessWatch { inner }.recheck_where(&db, |_| true).await;
    }
}

impl AccessWatch {
    /// Checks each distinct registered credential that `pred` selects once against the
    /// database and closes the sockets of the invalid ones.
    async fn recheck_where(&self, db: &AnyPool, pred: impl Fn(&Credential) -> bool) {
        let credentials: Vec<Credential> = {
            let r = self.registry();
            let mut v: Vec<Credential> = r
                .entries
                .values()
                .map(|e| &e.credential)
                .filter(|c| pred(c))
                .cloned()
                .collect();
            v.sort_by(|a, b| a.session_hash().cmp(b.session_hash()));
            v.dedup();
            v
        };
        for c in credentials {
            match auth::credential_valid(db, &c).await {
                Ok(true) => {}
                Ok(false) => {
                    let n = self.end_where(|x| *x == c);
                    tracing::info!(sockets = n, "access ended; closing its sockets");
                }
                // A database hiccup is not a reason to cut an inspection; check again later.
                Err(e) => tracing::warn!(error = %e, "cannot re-check a socket's access"),
            }
        }
    }

    /// Acts on what the other nodes signalled (`crate::signals`) until the bus ends: the
    /// sockets a signal names are re-checked at once, never closed on its word alone.
    pub async fn follow(&self, db: AnyPool, mut heard: mpsc::Receiver<Heard>) {
        while let Some(h) = heard.recv().await {
            match h {
                Heard::Resync => self.recheck_where(&db, |_| true).await,
                Heard::Signal(Signal::SessionEnded(hash)) => {
                    self.recheck_where(&db, |c| c.session_hash() == hash).await
                }
                Heard::Signal(Signal::UserDisabled(user)) => {
                    self.recheck_where(
                        &db,
                        |c| matches!(c, Credential::Staff { user_id, .. } if *user_id == user),
                    )
                    .await
                }
                Heard::Signal(Signal::InvitationRevoked(inv)) => {
                    self.recheck_where(&db, |c| {
                        matches!(c, Credential::Guest { invitation_id, .. } if *invitation_id == inv)
                    })
                    .await
                }
            }
        }
    }
}

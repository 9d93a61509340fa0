//! What closes a socket from the server's side: its invitation is revoked, or the server
//! shuts down. One switch per invitation with open sockets, one for the whole server.

use std::collections::HashMap;

use tokio::sync::{watch, Mutex};
use uuid::Uuid;

/// The stop switches.
pub(crate) struct StopSignals {
    revocations: Mutex<HashMap<Uuid, watch::Sender<bool>>>,
    shutdown: watch::Sender<bool>,
}

impl StopSignals {
    pub(crate) fn new() -> StopSignals {
        let (shutdown, _) = watch::channel(false);
        StopSignals {
            revocations: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// Flips the invitation's switch: every socket opened through it closes.
    pub(crate) async fn revoke(&self, invitation: Uuid) {
        if let Some(tx) = self.revocations.lock().await.remove(&invitation) {
            let _ = tx.send(true);
        }
    }

    /// Flips the server's switch: every socket closes.
    pub(crate) fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// A future that completes when a socket must close: its invitation (if any) is revoked
    /// or the server shuts down.
    pub(crate) async fn signal(
        &self,
        invitation: Option<Uuid>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut down = self.shutdown.subscribe();
        let mut revoked = match invitation {
            Some(inv) => {
                let mut map = self.revocations.lock().await;
                Some(
                    map.entry(inv)
                        .or_insert_with(|| watch::channel(false).0)
                        .subscribe(),
                )
            }
            None => None,
        };
        async move {
            let revoked = async {
                match revoked.as_mut() {
                    Some(rx) => {
                        let _ = rx.wait_for(|v| *v).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = down.wait_for(|v| *v) => {}
                _ = revoked => {}
            }
        }
    }
}

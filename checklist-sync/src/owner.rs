//! Which node may run an inspection's room (issue 20, item 1). The hub is the sequencer of
//! each inspection it has loaded; two nodes sequencing one inspection would hand out the same
//! `seq` twice. So a room claims its inspection before it loads the log, and every group
//! commit checks, in its own transaction and before its rows, that each room's claim still
//! stands ([`Ownership::check`], a fencing token): a node that lost its claim — paused past
//! its lease, cut off from the others — cannot append after the new owner loaded the log.
//!
//! The hub knows nothing of how claims are kept: one machine needs none ([`OneNode`]); the
//! server keeps them as lease rows in PostgreSQL (`signaling::nodes`).

use sqlx::AnyConnection;
use uuid::Uuid;

/// A claim's fencing token: grows with every new claim of the inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fence(pub i64);

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node runs the room, under this fence.
    Granted(Fence),
    /// Another node does; `node_url` is where it is reached.
    HeldBy {
        /// The owner's URL for the other nodes.
        node_url: String,
    },
}

/// How claims are kept (see the module documentation).
#[async_trait::async_trait]
pub trait Ownership: Send + Sync + std::fmt::Debug + 'static {
    /// Claims `inspection` for this node before its room loads the log.
    async fn claim(&self, inspection: Uuid) -> Result<Claim, sqlx::Error>;

    /// Gives up the claim made under `fence` (the room unloaded). Best effort: a claim that
    /// is not released expires.
    async fn release(&self, inspection: Uuid, fence: Fence);

    /// In the writer's transaction, before its rows: an error unless every `(inspection,
    /// fence)` is still this node's claim. The writer then retries room by room, so only the
    /// room that lost its claim fails.
    async fn check(
        &self,
        tx: &mut AnyConnection,
        held: &[(Uuid, Fence)],
    ) -> Result<(), sqlx::Error>;
}

/// One machine: every claim is granted and always stands.
#[derive(Debug, Default)]
pub struct OneNode;

#[async_trait::async_trait]
impl Ownership for OneNode {
    async fn claim(&self, _inspection: Uuid) -> Result<Claim, sqlx::Error> {
        Ok(Claim::Granted(Fence(0)))
    }

    async fn release(&self, _inspection: Uuid, _fence: Fence) {}

    async fn check(
        &self,
        _tx: &mut AnyConnection,
        _held: &[(Uuid, Fence)],
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

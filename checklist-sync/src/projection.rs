//! Read models of the event log kept by the embedding server, in step with the log.
//!
//! The log is the one source of truth. What the embedding server derives from it and stores
//! beside it (an inspection's status, for example) is updated by a [`Projection`] inside the
//! very transaction that appends the events, so the two can never disagree: either both are
//! committed or neither is. Side effects that must not happen before the events are durable
//! (finalizing a recording) go in [`Projection::committed`], called after the commit.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::AnyConnection;

use crate::chain::CommittedEvent;

/// A read model updated with every group commit of the writer.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Called inside the transaction that appends `events` (the whole group commit: several
    /// inspections, each in seq order), after the rows are inserted. An error rolls the whole
    /// transaction back: nothing is committed, acknowledged or broadcast, and the rooms reload
    /// from the database. Must not call back into the hub.
    async fn apply(
        &self,
        tx: &mut AnyConnection,
        events: &[Arc<CommittedEvent>],
    ) -> Result<(), sqlx::Error>;

    /// Called after `events` are committed, on the writer task: must not block (spawn what
    /// takes time). A crash between the commit and this call skips it, so whatever it starts
    /// must also be started from the log at the next start.
    fn committed(&self, events: &[Arc<CommittedEvent>]) {
        let _ = events;
    }
}

/// A projection that keeps nothing (tests, stand-alone use).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProjection;

#[async_trait]
impl Projection for NoProjection {
    async fn apply(
        &self,
        _: &mut AnyConnection,
        _: &[Arc<CommittedEvent>],
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

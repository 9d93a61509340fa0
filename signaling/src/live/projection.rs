//! `inspections.status`, `started_at` and `finished_at` as a read model of the committed
//! event log, updated by the sync writer in the transaction that appends the events: the
//! status can never say what the log does not (design choice: docs/ARCHITECTURE.md). After the
//! commit, the events' side effects start: a keyframe for a recorded item, the recording's
//! finalization for a finish or cancel.

use std::sync::Arc;

use async_trait::async_trait;
use checklist_sync::{CommittedEvent, ItemResult, Projection};
use media_recorder::MediaHub;
use sqlx::AnyConnection;

use super::recording::Recordings;
use crate::domain::Status;

/// The status an event sets, if any: the one place that maps event kinds to statuses (an act
/// signature event will map to `signed` here).
pub fn status_after(event: &CommittedEvent) -> Option<Status> {
    match event.kind.as_str() {
        "start" => Some(Status::Live),
        "finish" => Some(Status::Finished),
        "cancel" => Some(Status::Cancelled),
        _ => None,
    }
}

/// The status projection and the after-commit side effects.
pub struct StatusProjection {
    media: MediaHub,
    recordings: Recordings,
}

impl StatusProjection {
    /// Keyframes go to `media`; finished inspections to `recordings`.
    pub fn new(media: MediaHub, recordings: Recordings) -> StatusProjection {
        StatusProjection { media, recordings }
    }
}

#[async_trait]
impl Projection for StatusProjection {
    async fn apply(
        &self,
        tx: &mut AnyConnection,
        events: &[Arc<CommittedEvent>],
    ) -> Result<(), sqlx::Error> {
        for e in events {
            let Some(status) = status_after(e) else {
                continue;
            };
            // The room already decided the transition is legal from the log; the row follows.
            sqlx::query(
                "UPDATE inspections SET status = $1, updated_at = $2, \
                 started_at = CASE WHEN $1 = 'live' THEN $2 ELSE started_at END, \
                 finished_at = CASE WHEN $1 = 'finished' THEN $2 ELSE finished_at END \
                 WHERE id = $3",
            )
            .bind(status.as_str())
            .bind(e.server_ts_micros)
            .bind(e.inspection_id.to_string())
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    fn committed(&self, events: &[Arc<CommittedEvent>]) {
        for e in events {
            match e.item_result() {
                // A chapter starts here: a keyframe makes its first picture clean. (The chapter
                // itself comes from the log at finalization.)
                Some(r) if r.result != ItemResult::Clear => {
                    self.media.request_keyframe(e.inspection_id)
                }
                _ => {}
            }
            if matches!(status_after(e), Some(s) if s.is_over()) {
                self.recordings.finalize_in_background(e.inspection_id);
            }
        }
    }
}

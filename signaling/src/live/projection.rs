//! `inspections.status`, `started_at` and `finished_at` as a read model of the committed
//! event log (`signed` included: the official's `act_signed` event), updated by the sync writer in the transaction that appends the events: the
//! status can never say what the log does not (design choice: docs/ARCHITECTURE.md). After the
//! commit, the events' side effects start: a keyframe for a recorded item, the recording's
//! finalization for a finish or cancel.

use std::sync::Arc;

use async_trait::async_trait;
use checklist_sync::{CommittedEvent, ItemResult, Projection, SignerRole};
use media_recorder::MediaHub;
use sqlx::AnyConnection;

use super::recording::Recordings;
use crate::domain::Status;

/// The status an event sets, if any: the one place that maps event kinds to statuses. The
/// official's signature of the act makes a finished inspection `signed`; the business's
/// signature or a refusal changes no status.
pub fn status_after(event: &CommittedEvent) -> Option<Status> {
    status_after_parts(&event.kind, &event.payload)
}

/// [`status_after`] from an event's kind and payload (`audit verify` folds the stored log).
pub fn status_after_parts(kind: &str, payload: &serde_json::Value) -> Option<Status> {
    match kind {
        "start" => Some(Status::Live),
        "finish" => Some(Status::Finished),
        "cancel" => Some(Status::Cancelled),
        "act_signed"
            if payload.get("role").and_then(|r| r.as_str())
                == Some(SignerRole::Official.as_str()) =>
        {
            Some(Status::Signed)
        }
        _ => None,
    }
}

/// Whether an event asks for a checkpoint of the head at once (crate::anchor): the end, and
/// every event the server makes after it (the recording's hash, derived evidence, the act).
pub fn checkpoint_at_once(event: &CommittedEvent) -> bool {
    matches!(
        event.kind.as_str(),
        "finish"
            | "cancel"
            | "recording_finalized"
            | "act_formed"
            | "act_signed"
            | "act_refused"
            | "rating"
    ) || event.participant_id == crate::derived::SERVER_PARTICIPANT
}

/// The status projection and the after-commit side effects.
pub struct StatusProjection {
    media: MediaHub,
    recordings: Recordings,
    checkpoints: tokio::sync::mpsc::UnboundedSender<uuid::Uuid>,
}

impl StatusProjection {
    /// Keyframes go to `media`; finished inspections to `recordings`; inspections whose head
    /// is to be checkpointed at once to `checkpoints`.
    pub fn new(
        media: MediaHub,
        recordings: Recordings,
        checkpoints: tokio::sync::mpsc::UnboundedSender<uuid::Uuid>,
    ) -> StatusProjection {
        StatusProjection {
            media,
            recordings,
            checkpoints,
        }
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
            // A rating's statistics read model, with its event.
            if e.kind == "rating" {
                crate::ratings::project(&mut *tx, e).await?;
            }
            // The webhook outbox's row, committed with its event or not at all.
            crate::webhooks::project(&mut *tx, e).await?;
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
        // One checkpoint per batch and inspection, after the whole batch is committed.
        let mut at_once: Vec<uuid::Uuid> = events
            .iter()
            .filter(|e| checkpoint_at_once(e))
            .map(|e| e.inspection_id)
            .collect();
        at_once.dedup();
        for id in at_once {
            // The receiver lives as long as the server; the first sweep after a restart
            // checkpoints whatever was missed.
            let _ = self.checkpoints.send(id);
        }
        for e in events {
            match e.item_result() {
                // A chapter starts here: a keyframe makes its first picture clean. (The chapter
                // itself comes from the log at finalization.)
                Some(r) if r.result != ItemResult::Clear => {
                    self.media.request_keyframe(e.inspection_id)
                }
                _ => {}
            }
            // The recording ends with the inspection (a signature comes after that).
            if matches!(status_after(e), Some(Status::Finished | Status::Cancelled)) {
                self.recordings.finalize_in_background(e.inspection_id);
            }
        }
    }
}

//! Lifecycle transitions requested over the REST API. Start, finish and cancel go through the
//! inspection's sync room (`SyncHub::submit`): the room decides their legality from the
//! committed log, and the status follows as a projection of the committed event. `signed`
//! is not asked for here: it follows from the official's `act_signed` event (crate::act).

use std::sync::Arc;

use checklist_sync::state::Source;
use checklist_sync::{OpError, Operation};
use sqlx::AnyPool;

use super::{participants, principal, Live};
use crate::auth::Caller;
use crate::domain::{CancelReason, Status};
use crate::error::{ApiError, ApiResult};
use crate::inspections::{Access, Inspection};

/// What a transition request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionTo {
    /// Target status.
    pub to: Status,
    /// Why (only with `cancelled`).
    pub reason: Option<CancelReason>,
    /// Free text (only with `cancelled`).
    pub note: Option<String>,
}

/// The REST lifecycle.
pub struct LifecycleService {
    db: AnyPool,
    live: Arc<Live>,
}

fn illegal(message: String) -> ApiError {
    ApiError::Conflict {
        code: "illegal_transition",
        message,
    }
}

/// A refusal of the room as an HTTP error: lifecycle rules are 409 `illegal_transition`, a
/// failed commit is a 500 (nothing was applied; the request may be retried).
fn refused(e: OpError) -> ApiError {
    if let Some(e) = crate::error::sync_unavailable(&e) {
        return e;
    }
    use checklist_sync::proto::codes;
    match e.code.as_str() {
        codes::NOT_LIVE | codes::ALREADY_STARTED | codes::ALREADY_FINISHED | codes::CANCELLED => {
            illegal(e.message)
        }
        codes::INTERNAL | codes::OVERLOADED => {
            ApiError::Internal(anyhow::anyhow!("lifecycle event not committed: {e}"))
        }
        codes::INVALID_FIELD => ApiError::validation(e.message),
        _ => ApiError::Conflict {
            code: "lifecycle_refused",
            message: e.message,
        },
    }
}

impl LifecycleService {
    /// Creates the service.
    pub fn new(db: AnyPool, live: Arc<Live>) -> LifecycleService {
        LifecycleService { db, live }
    }

    /// Moves the inspection to `req.to` (409 `illegal_transition` if the lifecycle forbids
    /// it). Returns once the transition's event is committed (and with it the status).
    pub async fn apply(
        &self,
        insp: &Inspection,
        req: &TransitionTo,
        caller: &Caller,
    ) -> ApiResult<()> {
        if req.to != Status::Cancelled && (req.reason.is_some() || req.note.is_some()) {
            return Err(ApiError::validation(
                "reason and note go only with \"to\": \"cancelled\"",
            ));
        }
        let op = match req.to {
            Status::Live => Operation::Start,
            Status::Finished => Operation::Finish,
            Status::Cancelled => Operation::Cancel {
                reason: req.reason.map(CancelReason::to_sync),
                note: req.note.clone(),
            },
            Status::Signed => {
                // `signed` follows from the official's signature event (crate::act), never
                // from a bare request.
                return Err(illegal(
                    "an inspection becomes signed when the official signs its act".into(),
                ));
            }
            Status::Scheduled => {
                return Err(illegal(format!(
                    "an inspection cannot go from {} to scheduled",
                    insp.status.as_str()
                )))
            }
        };
        op.validate().map_err(|e| ApiError::validation(e.message))?;
        // Refuse early, from the log's committed state, so that a refused request changes no
        // row (not even the participant's); the room checks again when it sequences the event.
        let snapshot = self
            .live
            .sync
            .snapshot(insp.id)
            .await
            .map_err(|e| anyhow::anyhow!("snapshot: {e}"))?;
        snapshot
            .state
            .lifecycle
            .status
            .allows(&op, Source::Server)
            .map_err(refused)?;
        let participant_id = participants::register(&self.db, caller, insp, "api").await?;
        let who = principal(caller, insp, Access::Manage, participant_id, "api");
        self.live
            .sync
            .submit(&who, &Live::room_spec(insp), op, None)
            .await
            .map_err(refused)?;
        Ok(())
    }
}

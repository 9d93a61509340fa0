//! The one place where the act's events move the inspection's status: `signed` follows from
//! the official's `act_signed` event. (When the lifecycle becomes a projection of the log,
//! this mapping moves there.)

use checklist_sync::{ActState, SignerRole};
use sqlx::{AnyPool, Row};
use uuid::Uuid;

use crate::db::now_micros;
use crate::error::ApiResult;

/// Brings the status column in line with the act: `finished` becomes `signed` once the log
/// holds the official's signature. Idempotent, so it also repairs a crash between the event's
/// commit and this update.
pub async fn reconcile(db: &AnyPool, inspection: Uuid, act: Option<&ActState>) -> ApiResult<()> {
    let signed = act.is_some_and(|a| a.signature(SignerRole::Official).is_some());
    if !signed {
        return Ok(());
    }
    let row = sqlx::query("SELECT status FROM inspections WHERE id = $1")
        .bind(inspection.to_string())
        .fetch_optional(db)
        .await?;
    if row.map(|r| r.get::<String, _>(0)).as_deref() == Some("finished") {
        sqlx::query(
            "UPDATE inspections SET status = 'signed', updated_at = $1 WHERE id = $2 AND status = 'finished'",
        )
        .bind(now_micros())
        .bind(inspection.to_string())
        .execute(db)
        .await?;
    }
    Ok(())
}

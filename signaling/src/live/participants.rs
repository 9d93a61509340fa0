//! The `participants` table: one row per person and inspection (staff by user, the business
//! by invitation), whose id is the participant id in the event log.

use sqlx::AnyPool;
use uuid::Uuid;

use crate::auth::Caller;
use crate::db::{now_micros, RowExt};
use crate::error::ApiResult;
use crate::inspections::Inspection;

/// The participant row's key and columns of a caller: role, user id, invitation id, name.
fn identity(
    caller: &Caller,
    insp: &Inspection,
) -> (&'static str, Option<String>, Option<String>, String) {
    match caller {
        Caller::Staff(s) => {
            let role = if s.id == insp.inspector.id {
                "inspector"
            } else {
                s.role.as_str()
            };
            (role, Some(s.id.to_string()), None, s.display_name.clone())
        }
        Caller::Guest(g) => (
            "business",
            None,
            Some(g.invitation_id.to_string()),
            g.label.clone(),
        ),
        // Never reached: a representative takes no part live (`inspections::takes_part`).
        Caller::Business(b) => ("business", None, None, b.label.clone()),
    }
}

/// The id of this caller's participant row in this inspection, if it has one.
async fn lookup(
    db: &AnyPool,
    insp: &Inspection,
    user_id: &Option<String>,
    invitation_id: &Option<String>,
) -> ApiResult<Option<Uuid>> {
    sqlx::query(
        "SELECT id FROM participants WHERE inspection_id = $1 AND \
         ((user_id IS NOT NULL AND user_id = $2) OR (invitation_id IS NOT NULL AND invitation_id = $3))",
    )
    .bind(insp.id.to_string())
    .bind(user_id.clone())
    .bind(invitation_id.clone())
    .fetch_optional(db)
    .await?
    .map(|row| row.uuid(0))
    .transpose()
}

/// The participant id of this caller in this inspection, without creating one.
pub(crate) async fn find(
    db: &AnyPool,
    caller: &Caller,
    insp: &Inspection,
) -> ApiResult<Option<Uuid>> {
    let (_, user_id, invitation_id, _) = identity(caller, insp);
    lookup(db, insp, &user_id, &invitation_id).await
}

/// Finds or creates the participant row of this caller in this inspection, noting the device
/// and the time it was last seen.
pub(crate) async fn register(
    db: &AnyPool,
    caller: &Caller,
    insp: &Inspection,
    device: &str,
) -> ApiResult<Uuid> {
    let (role, user_id, invitation_id, name) = identity(caller, insp);
    let now = now_micros();
    if let Some(id) = lookup(db, insp, &user_id, &invitation_id).await? {
        sqlx::query("UPDATE participants SET last_seen_at = $1, device = $2 WHERE id = $3")
            .bind(now)
            .bind(device)
            .bind(id.to_string())
            .execute(db)
            .await?;
        return Ok(id);
    }
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO participants (id, inspection_id, role, user_id, invitation_id, display_name, device, joined_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(id.to_string())
    .bind(insp.id.to_string())
    .bind(role)
    .bind(user_id)
    .bind(invitation_id)
    .bind(name)
    .bind(device)
    .bind(now)
    .execute(db)
    .await?;
    Ok(id)
}

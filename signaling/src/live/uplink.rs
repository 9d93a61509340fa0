//! `GET /api/inspections/{id}/uplink`: what the server's media peer is receiving from the
//! inspection's publishers right now (bit rate, loss after repair, silence), so that the
//! inspector sees the business's network as the server measures it, not as the phone reports
//! it (issue 19, item 3). Staff with access only; nothing is stored: the figures live as long
//! as the tracks. On several nodes the request is proxied to the node that runs the
//! inspection (`nodes::proxy`), which is where the packets arrive.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::inspections::{load_for, Access};
use crate::AppState;

/// The inspection's received tracks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UplinkList {
    /// One per live received track; empty when no media is arriving.
    #[schema(value_type = Vec<Object>)]
    pub uplinks: Vec<media_recorder::Uplink>,
}

/// The reception of every live published track of the inspection (staff only).
#[utoipa::path(get, path = "/api/inspections/{id}/uplink", tag = "live", params(("id" = Uuid, Path)),
    responses((status = 200, body = UplinkList), (status = 403, body = crate::error::ErrorBody)))]
pub async fn uplink(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<UplinkList>> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Read).await?;
    caller.staff()?;
    Ok(Json(UplinkList {
        uplinks: state.live.media.uplinks(insp.id),
    }))
}

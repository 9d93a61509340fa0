//! The business's durable access to its results. The live invitation expires; when the
//! business signs in by it, it also gets a long-lived, revocable results token (a second
//! HttpOnly cookie and a link to keep), so it can come back for the act, the recording and
//! signing after the inspection. The token is stored hashed; it reaches only the inspection of
//! its invitation, through the same access rule (`inspections::access`) as any guest, to read
//! it and to sign or refuse the act — not to take part live (`inspections::takes_part`: no
//! socket, no uploads). Revoking the invitation revokes it too.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{self, Caller, RESULTS_COOKIE};
use crate::db::{now_micros, RowExt};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::inspections::{self, load_for, Access};
use crate::AppState;

/// Results tokens kept per invitation; signing in again beyond this revokes the oldest.
pub const MAX_PER_INVITATION: i64 = 10;
/// Lifetime of the results cookie in the browser.
pub const COOKIE_MAX_AGE_SECS: i64 = 5 * 365 * 24 * 3600;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/results/accept", post(accept))
        .route("/api/inspections/{id}/results-access", get(list))
        .route(
            "/api/inspections/{id}/results-access/{rid}/revoke",
            post(revoke),
        )
}

/// A freshly issued results access: the token is shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Issued {
    /// The secret token.
    pub token: String,
    /// The durable link for the business to keep.
    pub url: String,
}

/// Issues a results token for a guest that just signed in by its invitation.
pub async fn issue(
    state: &AppState,
    inspection_id: Uuid,
    invitation_id: Uuid,
) -> ApiResult<Issued> {
    let token = auth::new_token();
    let now = now_micros();
    let mut tx = crate::db::begin(&state.db).await?;
    sqlx::query(
        "INSERT INTO results_access (id, inspection_id, invitation_id, token_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(inspection_id.to_string())
    .bind(invitation_id.to_string())
    .bind(auth::hash_token(&token))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    // Bound what one invitation can make the server hold.
    let rows = sqlx::query(
        "SELECT id FROM results_access WHERE invitation_id = $1 AND revoked_at IS NULL \
         ORDER BY created_at DESC, id",
    )
    .bind(invitation_id.to_string())
    .fetch_all(&mut *tx)
    .await?;
    for r in rows.iter().skip(MAX_PER_INVITATION as usize) {
        sqlx::query("UPDATE results_access SET revoked_at = $1 WHERE id = $2")
            .bind(now)
            .bind(r.col::<String>(0)?)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Issued {
        url: format!("{}/b/#r={token}", state.config.public_url),
        token,
    })
}

/// The `Set-Cookie` value of a results token.
pub fn cookie(state: &AppState, token: &str) -> String {
    auth::set_cookie(
        RESULTS_COOKIE,
        token,
        COOKIE_MAX_AGE_SECS,
        state.config.secure_cookies(),
    )
}

/// Accept-results request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptResults {
    /// The token from the durable link.
    pub token: String,
}

/// An accepted results link: the inspection, and the CSRF token of the guest's writes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResultsAccepted {
    /// The inspection, with its checklist.
    pub inspection: inspections::Inspection,
    /// Echo in `X-CSRF-Token` on writes.
    pub csrf_token: String,
}

/// The business opens its durable link: the token becomes the results cookie.
#[utoipa::path(post, path = "/api/results/accept", tag = "results", request_body = AcceptResults,
    responses((status = 200, body = ResultsAccepted), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn accept(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<AcceptResults>,
) -> ApiResult<Response> {
    let guest = auth::guest_by_results_token(&state, &req.token)
        .await?
        .ok_or(ApiError::NotFound("results access"))?;
    let insp = inspections::load(&state.db, guest.inspection_id)
        .await?
        .ok_or(ApiError::NotFound("inspection"))?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&cookie(&state, &req.token)) {
        headers.insert(header::SET_COOKIE, v);
    }
    let body = ResultsAccepted {
        inspection: insp,
        csrf_token: guest.csrf,
    };
    Ok((headers, Json(body)).into_response())
}

/// A results access as listed (never with its token).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResultsAccess {
    /// Id.
    pub id: Uuid,
    /// The invitation it came by.
    pub invitation_id: Uuid,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Revocation time.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// An inspection's results accesses.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResultsAccessList {
    /// Oldest first.
    pub results_access: Vec<ResultsAccess>,
}

/// Lists the results accesses of an inspection (manager).
#[utoipa::path(get, path = "/api/inspections/{id}/results-access", tag = "results", params(("id" = Uuid, Path)),
    responses((status = 200, body = ResultsAccessList), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ResultsAccessList>> {
    load_for(&state.db, &caller, id, Access::Manage).await?;
    let rows = sqlx::query(
        "SELECT id, invitation_id, created_at, revoked_at FROM results_access \
         WHERE inspection_id = $1 ORDER BY created_at, id",
    )
    .bind(id.to_string())
    .fetch_all(&state.db)
    .await?;
    let results_access = rows
        .iter()
        .map(|r| {
            Ok(ResultsAccess {
                id: r.uuid(0)?,
                invitation_id: r.uuid(1)?,
                created_at: r.time(2)?,
                revoked_at: r.opt_time(3)?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(ResultsAccessList { results_access }))
}

/// Revokes one results access (manager).
#[utoipa::path(post, path = "/api/inspections/{id}/results-access/{rid}/revoke", tag = "results",
    params(("id" = Uuid, Path), ("rid" = Uuid, Path)), responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, rid)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    load_for(&state.db, &caller, id, Access::Manage).await?;
    let done = sqlx::query(
        "UPDATE results_access SET revoked_at = $1 WHERE id = $2 AND inspection_id = $3 AND revoked_at IS NULL",
    )
    .bind(now_micros())
    .bind(rid.to_string())
    .bind(id.to_string())
    .execute(&state.db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("results access"));
    }
    Ok(StatusCode::NO_CONTENT)
}

//! The administrator's webhook API: endpoints (the secret shown once, at creation), their
//! deliveries with status, attempts and the last answer, and replay. Administrators only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{sign, EVENT_TYPES};
use crate::auth::{Caller, Role, Staff};
use crate::db::{now_micros, RowExt};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::ApiJson;
use crate::AppState;

/// Longest description, characters.
const MAX_DESCRIPTION_CHARS: usize = 200;
/// Deliveries listed per endpoint, newest first, at most.
const MAX_LISTED: i64 = 100;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/webhooks", get(list).post(create))
        .route(
            "/api/webhooks/{id}",
            axum::routing::put(change).delete(remove),
        )
        .route("/api/webhooks/{id}/deliveries", get(deliveries))
        .route(
            "/api/webhooks/{id}/deliveries/{delivery}/replay",
            post(replay),
        )
}

fn admin(caller: &Caller) -> ApiResult<&Staff> {
    caller.require(&[Role::Admin])
}

/// A registered endpoint (never its secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    /// Id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// The administrator's note.
    pub description: String,
    /// Event types it receives.
    pub events: Vec<String>,
    /// Whether it is told of events (a disabled one hears nothing committed meanwhile; its
    /// deliveries queued before wait until it is enabled again).
    pub enabled: bool,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The endpoints and the event types there are.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    /// Endpoints, oldest first.
    pub endpoints: Vec<Endpoint>,
    /// Every event type an endpoint may subscribe to.
    pub event_types: Vec<String>,
    /// How many endpoints there may be.
    pub max_endpoints: i64,
}

/// A new endpoint.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// https URL (http only for a loopback host with `[webhooks] allow_http_loopback`),
    /// at most 2000 characters.
    pub url: String,
    /// Event types, at least one.
    pub events: Vec<String>,
    /// At most 200 characters.
    #[serde(default)]
    pub description: String,
}

/// A created endpoint with its secret: the only time the secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedEndpoint {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The signing secret (`whsec_…`), shown once.
    pub secret: String,
}

/// A change of an endpoint: what is given changes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointChange {
    /// New URL.
    #[serde(default)]
    pub url: Option<String>,
    /// New event types.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// Enable or disable.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// One event to one endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// Id.
    pub id: Uuid,
    /// The event's id (the same on every attempt and replay: receivers dedupe by it).
    pub event_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// The inspection.
    pub inspection_id: Uuid,
    /// When the fact was committed.
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// `pending`, `sending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts made (since the last replay).
    pub attempts: i32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The last answer's HTTP status.
    pub last_status: Option<i32>,
    /// The last attempt's error code (`http_status`, `timeout`, `connect_failed`, …).
    pub last_error: Option<String>,
    /// The first 512 bytes of the last answer's body.
    pub last_response: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// An endpoint's deliveries, newest first (at most 100).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    /// Deliveries.
    pub deliveries: Vec<Delivery>,
}

const ENDPOINT_COLUMNS: &str =
    "id, url, description, events, enabled, created_at, updated_at FROM webhook_endpoints";

fn endpoint_of(r: &sqlx::any::AnyRow) -> ApiResult<Endpoint> {
    Ok(Endpoint {
        id: r.uuid(0)?,
        url: r.col(1)?,
        description: r.col(2)?,
        events: serde_json::from_str(&r.col::<String>(3)?)
            .map_err(|e| crate::db::corrupt("webhook endpoint events", e))?,
        enabled: r.col::<i64>(4)? != 0,
        created_at: r.time(5)?,
        updated_at: r.time(6)?,
    })
}

async fn load(state: &AppState, id: Uuid) -> ApiResult<Endpoint> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ENDPOINT_COLUMNS} WHERE id = $1 AND deleted_at IS NULL"
    )))
    .bind(id.to_string())
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound("webhook"))?;
    endpoint_of(&r)
}

fn check_events(events: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    if events.is_empty() {
        errors.push(FieldError::new("events", "events_required"));
    } else if events.iter().any(|e| !EVENT_TYPES.contains(&e.as_str())) {
        errors.push(FieldError::new("events", "unknown_event"));
    }
    // Stored in the documentation's order, each once.
    EVENT_TYPES
        .iter()
        .filter(|t| events.iter().any(|e| e == *t))
        .map(|t| t.to_string())
        .collect()
}

fn check_url(state: &AppState, url: &str, errors: &mut Vec<FieldError>) {
    if let Err(code) = sign::check_url(url.trim(), state.config.webhooks.allow_http_loopback) {
        errors.push(FieldError::new("url", code));
    }
}

fn check_description(d: &str, errors: &mut Vec<FieldError>) {
    if d.trim().chars().count() > MAX_DESCRIPTION_CHARS || d.contains(['\r', '\n']) {
        errors.push(FieldError::new("description", "invalid_length"));
    }
}

/// The endpoints (admin).
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks",
    responses((status = 200, body = EndpointList), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<EndpointList>> {
    admin(&caller)?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ENDPOINT_COLUMNS} WHERE deleted_at IS NULL ORDER BY created_at LIMIT $1"
    )))
    .bind(state.config.webhooks.max_endpoints)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(EndpointList {
        endpoints: rows.iter().map(endpoint_of).collect::<ApiResult<_>>()?,
        event_types: EVENT_TYPES.iter().map(|t| t.to_string()).collect(),
        max_endpoints: state.config.webhooks.max_endpoints,
    }))
}

/// Registers an endpoint (admin); the answer holds its secret, shown this once.
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", request_body = NewEndpoint,
    responses((status = 201, body = CreatedEndpoint),
              (status = 400, description = "validation_failed (url: invalid_length, invalid_url, https_required, credentials_in_url; events: events_required, unknown_event; description: invalid_length)", body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody),
              (status = 409, description = "too_many_endpoints", body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewEndpoint>,
) -> ApiResult<(StatusCode, Json<CreatedEndpoint>)> {
    let me = admin(&caller)?;
    let mut errors = Vec::new();
    check_url(&state, &new.url, &mut errors);
    let events = check_events(&new.events, &mut errors);
    check_description(&new.description, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Fields(errors));
    }
    let id = Uuid::new_v4();
    let secret = sign::new_secret();
    let sealed = state.webhooks.key().seal(&id.to_string(), &secret);
    let now = now_micros();
    let mut tx = crate::db::begin(&state.db).await?;
    let count: i64 = sqlx::query("SELECT COUNT(*) FROM webhook_endpoints WHERE deleted_at IS NULL")
        .fetch_one(&mut *tx)
        .await?
        .col(0)?;
    if count >= state.config.webhooks.max_endpoints {
        return Err(ApiError::Conflict {
            code: "too_many_endpoints",
            message: format!(
                "at most {} webhook endpoints",
                state.config.webhooks.max_endpoints
            ),
        });
    }
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, description, events, sealed_secret, enabled, \
         created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $7)",
    )
    .bind(id.to_string())
    .bind(new.url.trim())
    .bind(new.description.trim())
    .bind(serde_json::Value::from(events).to_string())
    .bind(sealed)
    .bind(me.id.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedEndpoint {
            endpoint: load(&state, id).await?,
            secret,
        }),
    ))
}

/// Changes an endpoint's URL, events, description or enabled flag (admin).
#[utoipa::path(put, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    request_body = EndpointChange,
    responses((status = 200, body = Endpoint), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn change(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<EndpointChange>,
) -> ApiResult<Json<Endpoint>> {
    admin(&caller)?;
    let current = load(&state, id).await?;
    let mut errors = Vec::new();
    if let Some(u) = &req.url {
        check_url(&state, u, &mut errors);
    }
    let events = req.events.as_ref().map(|e| check_events(e, &mut errors));
    if let Some(d) = &req.description {
        check_description(d, &mut errors);
    }
    if !errors.is_empty() {
        return Err(ApiError::Fields(errors));
    }
    sqlx::query(
        "UPDATE webhook_endpoints SET url = $1, events = $2, description = $3, enabled = $4, \
         updated_at = $5 WHERE id = $6 AND deleted_at IS NULL",
    )
    .bind(req.url.as_deref().map(str::trim).unwrap_or(&current.url))
    .bind(serde_json::Value::from(events.unwrap_or(current.events)).to_string())
    .bind(
        req.description
            .as_deref()
            .map(str::trim)
            .unwrap_or(&current.description),
    )
    .bind(i16::from(req.enabled.unwrap_or(current.enabled)))
    .bind(now_micros())
    .bind(id.to_string())
    .execute(&state.db)
    .await?;
    Ok(Json(load(&state, id).await?))
}

/// Deletes an endpoint (admin): nothing more is sent to it; its waiting deliveries fail with
/// `endpoint_deleted`.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    admin(&caller)?;
    let now = now_micros();
    let mut tx = crate::db::begin(&state.db).await?;
    let gone = sqlx::query(
        "UPDATE webhook_endpoints SET deleted_at = $1, enabled = 0, updated_at = $1 \
         WHERE id = $2 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    if gone.rows_affected() == 0 {
        return Err(ApiError::NotFound("webhook"));
    }
    sqlx::query(
        "UPDATE webhook_deliveries SET state = 'failed', last_error = 'endpoint_deleted', \
         updated_at = $1 WHERE endpoint_id = $2 AND state IN ('pending', 'sending')",
    )
    .bind(now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

const DELIVERY_SELECT: &str = "SELECT d.id, v.id, v.type, v.inspection_id, v.occurred_at, \
     d.state, d.attempts, d.next_at, d.last_status, d.last_error, d.last_response, d.delivered_at \
     FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id";

fn delivery_of(r: &sqlx::any::AnyRow) -> ApiResult<Delivery> {
    let state: String = r.col(5)?;
    Ok(Delivery {
        id: r.uuid(0)?,
        event_id: r.uuid(1)?,
        event_type: r.col(2)?,
        inspection_id: r.uuid(3)?,
        occurred_at: r.time(4)?,
        next_attempt_at: if state == "pending" {
            Some(r.time(7)?)
        } else {
            None
        },
        state,
        attempts: r.col(6)?,
        last_status: r.col(8)?,
        last_error: r.col(9)?,
        last_response: r.col(10)?,
        delivered_at: r.opt_time(11)?,
    })
}

/// An endpoint's deliveries, newest first (admin).
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 200, body = DeliveryList), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<DeliveryList>> {
    admin(&caller)?;
    load(&state, id).await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{DELIVERY_SELECT} WHERE d.endpoint_id = $1 ORDER BY d.created_at DESC, d.id DESC LIMIT $2"
    )))
    .bind(id.to_string())
    .bind(MAX_LISTED)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(DeliveryList {
        deliveries: rows.iter().map(delivery_of).collect::<ApiResult<_>>()?,
    }))
}

/// Queues a delivery again at once, with the same event id (admin). Refused while an attempt
/// is under way.
#[utoipa::path(post, path = "/api/webhooks/{id}/deliveries/{delivery}/replay", tag = "webhooks",
    params(("id" = Uuid, Path), ("delivery" = Uuid, Path)),
    responses((status = 200, body = Delivery), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody),
              (status = 409, description = "delivery_in_flight", body = crate::error::ErrorBody)))]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, delivery)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<Delivery>> {
    admin(&caller)?;
    load(&state, id).await?;
    let now = now_micros();
    let found =
        sqlx::query("SELECT state FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2")
            .bind(delivery.to_string())
            .bind(id.to_string())
            .fetch_optional(&state.db)
            .await?
            .ok_or(ApiError::NotFound("delivery"))?;
    let in_flight = || ApiError::Conflict {
        code: "delivery_in_flight",
        message: "an attempt at this delivery is under way".into(),
    };
    if found.col::<String>(0)? == "sending" {
        return Err(in_flight());
    }
    let queued = sqlx::query(
        "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_at = $1, \
         updated_at = $1 WHERE id = $2 AND state <> 'sending'",
    )
    .bind(now)
    .bind(delivery.to_string())
    .execute(&state.db)
    .await?;
    if queued.rows_affected() == 0 {
        return Err(in_flight());
    }
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{DELIVERY_SELECT} WHERE d.id = $1"
    )))
    .bind(delivery.to_string())
    .fetch_one(&state.db)
    .await?;
    Ok(Json(delivery_of(&r)?))
}

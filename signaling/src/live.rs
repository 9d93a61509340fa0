//! The live room: the inspection's WebSocket (checklist sync + WebRTC signaling) and the
//! lifecycle side effects (recording finalization). This is where the crates are composed.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use sqlx::AnyPool;
use tokio::sync::{Mutex, Notify};
use uuid::Uuid;

use crate::auth::{self, Caller};
use crate::config::Config;
use crate::db::now_micros;
use crate::domain::Status;
use crate::error::{ApiError, ApiResult};
use crate::inspections::{self, Access, Inspection};
use crate::AppState;

/// Live rooms: open sockets and what can close them.
pub struct Live {
    db: AnyPool,
    config: Arc<Config>,
    /// One notifier per invitation with open sockets; revoking wakes them to close.
    revocations: Mutex<HashMap<Uuid, Arc<Notify>>>,
    shutdown: Arc<Notify>,
}

impl Live {
    /// Creates the live layer.
    pub async fn new(db: AnyPool, config: Arc<Config>) -> anyhow::Result<Live> {
        Ok(Live {
            db,
            config,
            revocations: Mutex::new(HashMap::new()),
            shutdown: Arc::new(Notify::new()),
        })
    }

    /// Closes every socket opened through a revoked invitation.
    pub async fn revoke_invitation(&self, _inspection: Uuid, invitation: Uuid) {
        if let Some(n) = self.revocations.lock().await.remove(&invitation) {
            n.notify_waiters();
        }
    }

    /// Closes every socket (graceful shutdown).
    pub async fn shutdown(&self) {
        self.shutdown.notify_waiters();
    }

    async fn revocation(&self, invitation: Uuid) -> Arc<Notify> {
        self.revocations
            .lock()
            .await
            .entry(invitation)
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }
}

/// Lifecycle transitions with their side effects, shared by the REST API and the socket.
pub struct LifecycleService {
    db: AnyPool,
    live: Arc<Live>,
}

impl LifecycleService {
    /// Creates the service.
    pub fn new(db: AnyPool, live: Arc<Live>) -> LifecycleService {
        LifecycleService { db, live }
    }

    /// Moves the inspection to `to` (409 `illegal_transition` if the lifecycle forbids it).
    pub async fn apply(&self, id: Uuid, to: Status) -> ApiResult<()> {
        inspections::transition(&self.db, id, to).await?;
        let _ = &self.live;
        Ok(())
    }
}

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/inspections/{id}/ws", get(socket))
}

/// Whether the request's Origin is this server (defence against cross-site WebSocket hijacking;
/// browsers always send Origin on WebSocket handshakes).
fn same_origin(headers: &HeaderMap, config: &Config) -> bool {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            origin == config.public_url
                || origin == format!("http://{host}")
                || origin == format!("https://{host}")
        }
    }
}

/// Who is on the socket, resolved before the upgrade.
struct SocketPeer {
    caller: Caller,
    inspection: Inspection,
    access: Access,
}

async fn authorize(state: &AppState, headers: &HeaderMap, id: Uuid) -> ApiResult<SocketPeer> {
    if !same_origin(headers, &state.config) {
        return Err(ApiError::Forbidden);
    }
    let caller = auth::authenticate(headers, state)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let (inspection, access) = inspections::load_for(&state.db, &caller, id, Access::Read).await?;
    Ok(SocketPeer {
        caller,
        inspection,
        access,
    })
}

/// Finds or creates the participant row of this caller in this inspection.
async fn register_participant(
    db: &AnyPool,
    caller: &Caller,
    insp: &Inspection,
    headers: &HeaderMap,
) -> ApiResult<Uuid> {
    use sqlx::Row;
    let device = device_kind(headers);
    let (role, user_id, invitation_id, name) = match caller {
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
    };
    let now = now_micros();
    let existing = sqlx::query(
        "SELECT id FROM participants WHERE inspection_id = $1 AND \
         ((user_id IS NOT NULL AND user_id = $2) OR (invitation_id IS NOT NULL AND invitation_id = $3))",
    )
    .bind(insp.id.to_string())
    .bind(user_id.clone())
    .bind(invitation_id.clone())
    .fetch_optional(db)
    .await?;
    if let Some(row) = existing {
        let id: String = row.get(0);
        sqlx::query("UPDATE participants SET last_seen_at = $1, device = $2 WHERE id = $3")
            .bind(now)
            .bind(&device)
            .bind(&id)
            .execute(db)
            .await?;
        return Ok(auth::parse_uuid(id));
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

/// A coarse device description from the User-Agent.
fn device_kind(headers: &HeaderMap) -> String {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind = if ua.contains("iPhone") || ua.contains("iPad") {
        "ios"
    } else if ua.contains("Android") {
        "android"
    } else if ua.contains("Mozilla") {
        "desktop"
    } else {
        "other"
    };
    kind.to_string()
}

/// The inspection's live socket. Authenticated by staff session or invitation cookie, before
/// the upgrade; the protocol is in docs/protocol.md.
#[utoipa::path(get, path = "/api/inspections/{id}/ws", tag = "live", params(("id" = Uuid, Path)),
    responses((status = 101, description = "WebSocket upgrade"), (status = 401, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn socket(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    // Authorize first, so that a stranger learns nothing, not even that a socket lives here.
    let peer = authorize(&state, &headers, id).await?;
    let ws = ws.map_err(|_| ApiError::Invalid {
        code: "websocket_required",
        message: "this endpoint needs a WebSocket upgrade".into(),
    })?;
    let participant_id =
        register_participant(&state.db, &peer.caller, &peer.inspection, &headers).await?;
    let _ = (
        peer.access,
        participant_id,
        &ws,
        &state.live.config,
        &state.live.shutdown,
    );
    let _ = state.live.revocation(Uuid::nil()).await;
    Err(ApiError::Conflict {
        code: "live_unavailable",
        message: "live rooms are not wired yet".into(),
    })
}

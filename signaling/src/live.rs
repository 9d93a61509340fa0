//! The live room: the inspection's WebSocket (checklist sync + WebRTC signaling) and the
//! lifecycle side effects (recording finalization). This is where the crates are composed:
//! checklist events become recording marks (plain data), `rtc.*` messages reach the media hub,
//! and neither crate knows about the other.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use checklist_sync::{
    ExtError, Extension, ItemSpec, Lifecycle, LifecycleError, Operation, Principal, RoomSpec, Site,
    SyncHub, Transition,
};
use media_recorder::{IceServer, Mark, MediaConfig, MediaEvent, MediaHub, MediaRole};
use serde_json::{json, Value};
use sqlx::AnyPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::auth::{self, Caller};
use crate::config::Config;
use crate::db::now_micros;
use crate::domain::Status;
use crate::error::{ApiError, ApiResult};
use crate::inspections::{self, Access, Inspection};
use crate::AppState;

/// Live rooms: the sync hub and the media hub. (What closes a socket when its access ends is
/// `access_watch`.)
pub struct Live {
    /// Checklist sync (inspection state, event log).
    pub sync: SyncHub,
    /// WebRTC forwarding and recording.
    pub media: MediaHub,
}

impl Live {
    /// Creates both hubs, starts turning checklist events into recording marks, and finalizes
    /// in the background the recordings a crash left unfinished.
    pub async fn new(db: AnyPool, config: Arc<Config>) -> anyhow::Result<Live> {
        let recordings_dir = config.recordings_dir();
        let media = MediaHub::new(MediaConfig {
            recordings_dir: recordings_dir.clone(),
            udp_addrs: vec![config.media_udp.clone()],
            nat_1to1_ips: Vec::new(),
            ice_servers: config
                .ice_servers
                .iter()
                .map(|s| IceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone(),
                    credential: s.credential.clone(),
                })
                .collect(),
        })
        .await
        .map_err(|e| anyhow::anyhow!("media: {e}"))?;
        let lifecycle = Arc::new(SyncLifecycle {
            db: db.clone(),
            media: media.clone(),
        });
        let sync = SyncHub::new(db.clone(), config.live.sync_config(), lifecycle);
        tokio::spawn(forward_marks(db.clone(), sync.clone(), media.clone()));
        tokio::spawn(async move {
            let done = tokio::task::spawn_blocking(move || {
                media_recorder::finalize::recover_all(&recordings_dir)
            })
            .await;
            match done {
                Ok(results) => {
                    for (dir, r) in results {
                        match r {
                            Ok(m) => {
                                tracing::info!(dir = %dir.display(), duration_ms = m.duration_ms, "recovered an unfinished recording")
                            }
                            Err(e) => {
                                tracing::warn!(dir = %dir.display(), error = %e, "could not recover a recording")
                            }
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "recording recovery panicked"),
            }
        });
        // Load the embedded time-zone map now rather than on the first location sample.
        tokio::task::spawn_blocking(checklist_sync::trust::tz::warm_up);
        Ok(Live { sync, media })
    }

    /// The room description of an inspection (checklist, site).
    pub fn room_spec(insp: &Inspection) -> RoomSpec {
        RoomSpec {
            inspection_id: insp.id,
            items: insp
                .items
                .iter()
                .flatten()
                .map(|i| ItemSpec {
                    id: i.id.clone(),
                    number: i.number.clone(),
                    question: i.question.clone(),
                })
                .collect(),
            site: insp.site().map(|c| Site {
                lat: c.lat,
                lon: c.lon,
            }),
        }
    }
}

/// Turns every committed item result into a recording mark (and a keyframe request).
async fn forward_marks(db: AnyPool, sync: SyncHub, media: MediaHub) {
    let mut events = sync.events();
    let mut titles: HashMap<Uuid, HashMap<String, String>> = HashMap::new();
    // The last result marked per item: re-saving the same result (e.g. to add the violation's
    // text) is not a new finding and gets no new chapter; a changed result does.
    let mut marked: HashMap<(Uuid, String), String> = HashMap::new();
    loop {
        let ev = match events.recv().await {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                // Marks are also rebuilt from the event log at finalization, so a lag only
                // costs the keyframe request of those marks.
                tracing::warn!(missed = n, "mark forwarding lagged");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if ev.kind == "finish" {
            // Nothing of a finished inspection is needed any more.
            titles.remove(&ev.inspection_id);
            marked.retain(|(i, _), _| *i != ev.inspection_id);
            continue;
        }
        let Some(mark) = ev.item_result() else {
            continue;
        };
        let key = (ev.inspection_id, mark.item_id.clone());
        if mark.result.as_str() == "clear" {
            marked.remove(&key);
            continue;
        }
        if marked.get(&key).is_some_and(|r| r == mark.result.as_str()) {
            continue;
        }
        marked.insert(key, mark.result.as_str().to_string());
        if !titles.contains_key(&ev.inspection_id) {
            if let Ok(Some(insp)) = inspections::load(&db, ev.inspection_id).await {
                let map = insp
                    .items
                    .iter()
                    .flatten()
                    .map(|i| (i.id.clone(), format!("{}. {}", i.number, i.question)))
                    .collect();
                titles.insert(ev.inspection_id, map);
            }
        }
        let title = titles
            .get(&ev.inspection_id)
            .and_then(|m| m.get(&mark.item_id))
            .cloned()
            .unwrap_or_else(|| mark.item_id.clone());
        media.mark(
            ev.inspection_id,
            Mark {
                item_id: mark.item_id,
                title,
                result: mark.result.as_str().to_string(),
                at_micros: ev.server_ts_micros,
            },
        );
    }
}

/// Confirms start/finish from the socket with the inspection's lifecycle in the database, and
/// finalizes the recording when the inspection ends.
struct SyncLifecycle {
    db: AnyPool,
    media: MediaHub,
}

#[async_trait]
impl Lifecycle for SyncLifecycle {
    async fn transition(
        &self,
        inspection_id: Uuid,
        to: Transition,
        by: &Principal,
    ) -> Result<(), LifecycleError> {
        if by.role != checklist_sync::Role::Inspector {
            return Err(LifecycleError {
                code: "forbidden".into(),
                message: "only the inspector starts and finishes".into(),
            });
        }
        let status = match to {
            Transition::Start => Status::Live,
            Transition::Finish => Status::Finished,
        };
        inspections::transition(&self.db, inspection_id, status)
            .await
            .map_err(|e| {
                let (_, code) = e.status_and_code();
                LifecycleError {
                    code: code.into(),
                    message: e.to_string(),
                }
            })?;
        if to == Transition::Finish {
            finalize_in_background(self.media.clone(), inspection_id);
        }
        Ok(())
    }
}

/// Builds the recording without blocking the caller; the manifest appears when it is done.
fn finalize_in_background(media: MediaHub, inspection_id: Uuid) {
    tokio::spawn(async move {
        match media.finish(inspection_id, Vec::new()).await {
            Ok(m) => {
                tracing::info!(%inspection_id, duration_ms = m.duration_ms, "recording finalized")
            }
            Err(e) if e.code() == "no_media" => {
                tracing::info!(%inspection_id, "inspection had no media to record")
            }
            Err(e) => tracing::error!(%inspection_id, error = %e, "recording finalization failed"),
        }
    });
}

/// Lifecycle transitions requested over the REST API. Start and finish go through the sync
/// room, so they are sequenced and logged exactly like the socket's; cancel and sign change
/// the status directly.
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
    pub async fn apply(&self, insp: &Inspection, to: Status, caller: &Caller) -> ApiResult<()> {
        if !insp.status.can_become(to) {
            return Err(ApiError::Conflict {
                code: "illegal_transition",
                message: format!(
                    "an inspection cannot go from {} to {}",
                    insp.status.as_str(),
                    to.as_str()
                ),
            });
        }
        let op = match to {
            Status::Live => Operation::Start,
            Status::Finished => Operation::Finish,
            _ => {
                inspections::transition(&self.db, insp.id, to).await?;
                if to == Status::Cancelled && insp.status == Status::Live {
                    // A cancelled inspection's recording is still evidence.
                    finalize_in_background(self.live.media.clone(), insp.id);
                }
                return Ok(());
            }
        };
        let participant_id = register_participant(&self.db, caller, insp, "api").await?;
        let who = principal(caller, insp, Access::Manage, participant_id, "api");
        self.live
            .sync
            .submit(&who, &Live::room_spec(insp), op, None)
            .await
            .map_err(|e| ApiError::Conflict {
                code: if e.code == "illegal_transition"
                    || e.code.starts_with("not_")
                    || e.code.starts_with("already_")
                {
                    "illegal_transition"
                } else {
                    "lifecycle_refused"
                },
                message: e.message.clone(),
            })?;
        Ok(())
    }
}

/// The sync principal of a caller on an inspection.
fn principal(
    caller: &Caller,
    insp: &Inspection,
    access: Access,
    participant_id: Uuid,
    device: &str,
) -> Principal {
    let (role, display_name) = match caller {
        Caller::Staff(s) if access == Access::Manage => {
            (checklist_sync::Role::Inspector, s.display_name.clone())
        }
        Caller::Staff(s) => (checklist_sync::Role::Observer, s.display_name.clone()),
        Caller::Guest(g) => (checklist_sync::Role::Business, g.label.clone()),
    };
    Principal {
        inspection_id: insp.id,
        participant_id,
        role,
        display_name,
        device: device.to_string(),
    }
}

/// WebRTC signaling over the inspection socket: `rtc.*` messages to the media hub.
struct RtcBridge {
    media: MediaHub,
}

impl RtcBridge {
    fn role(who: &Principal) -> MediaRole {
        match who.role {
            checklist_sync::Role::Business => MediaRole::Publisher,
            checklist_sync::Role::Inspector => MediaRole::Inspector,
            checklist_sync::Role::Observer => MediaRole::Viewer,
        }
    }
}

fn ext_error(e: media_recorder::MediaError) -> ExtError {
    ExtError {
        code: e.code().into(),
        message: e.to_string(),
    }
}

#[async_trait]
impl Extension for RtcBridge {
    async fn on_message(
        &self,
        who: &Principal,
        msg: Value,
        out: mpsc::Sender<Value>,
    ) -> Result<(), ExtError> {
        let kind = msg.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "rtc.offer" => {
                let sdp = msg.get("sdp").cloned().unwrap_or(Value::Null);
                let (tx, mut rx) = mpsc::unbounded_channel::<MediaEvent>();
                let events_out = out.clone();
                tokio::spawn(async move {
                    while let Some(ev) = rx.recv().await {
                        let msg = match ev {
                            MediaEvent::LocalCandidate(c) => {
                                json!({"type": "rtc.candidate", "candidate": c})
                            }
                            MediaEvent::Renegotiate => json!({"type": "rtc.renegotiate"}),
                            MediaEvent::State(s) => json!({"type": "rtc.state", "state": s}),
                        };
                        if events_out.send(msg).await.is_err() {
                            break;
                        }
                    }
                });
                let answer = self
                    .media
                    .offer(
                        who.inspection_id,
                        who.participant_id,
                        Self::role(who),
                        sdp,
                        tx,
                    )
                    .await
                    .map_err(ext_error)?;
                let _ = out.send(json!({"type": "rtc.answer", "sdp": answer})).await;
                Ok(())
            }
            "rtc.candidate" => {
                let candidate = msg.get("candidate").cloned().unwrap_or(Value::Null);
                self.media
                    .candidate(who.inspection_id, who.participant_id, candidate)
                    .await
                    .map_err(ext_error)
            }
            "rtc.leave" => {
                self.media
                    .leave(who.inspection_id, who.participant_id)
                    .await;
                Ok(())
            }
            _ => Err(ExtError {
                code: "unknown_type".into(),
                message: format!("unknown message type {kind:?}"),
            }),
        }
    }

    async fn on_close(&self, who: &Principal) {
        self.media
            .leave(who.inspection_id, who.participant_id)
            .await;
    }

    fn hello(&self, _who: &Principal) -> Option<Value> {
        Some(json!({ "ice_servers": self.media.ice_servers() }))
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
    device: &str,
) -> ApiResult<Uuid> {
    use sqlx::Row;
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
            .bind(device)
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
fn device_kind(headers: &HeaderMap) -> &'static str {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ua.contains("iPhone") || ua.contains("iPad") {
        "ios"
    } else if ua.contains("Android") {
        "android"
    } else if ua.contains("Mozilla") {
        "desktop"
    } else {
        "other"
    }
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
    let device = device_kind(&headers);
    let participant_id =
        register_participant(&state.db, &peer.caller, &peer.inspection, device).await?;
    let who = principal(
        &peer.caller,
        &peer.inspection,
        peer.access,
        participant_id,
        device,
    );
    let spec = Live::room_spec(&peer.inspection);
    let live = state.live.clone();
    // Closes the socket (4401) when its session or invitation ends.
    let stop = state.access.watch(peer.caller.credential()).wait();
    let bridge: Arc<dyn Extension> = Arc::new(RtcBridge {
        media: live.media.clone(),
    });
    Ok(
        checklist_sync::configure_upgrade(ws).on_upgrade(move |socket| async move {
            live.sync
                .serve_socket_until(socket, who, spec, bridge, stop)
                .await;
        }),
    )
}

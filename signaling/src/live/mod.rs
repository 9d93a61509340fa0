//! The live room: the inspection's WebSocket (checklist sync + WebRTC signaling) and what
//! follows from its committed events. This is where the crates are composed: committed
//! checklist events become the inspection's status (a read model in the same transaction) and
//! the recording's chapters (derived from the log at finalization), `rtc.*` messages reach the
//! media hub, and neither crate knows about the other.
//!
//! One file per job: this one wires the hubs and serves the socket; [`recording`] finalizes
//! recordings (after a committed finish or cancel, and at start for what a crash left);
//! [`projection`] keeps `inspections.status` in step with the log; [`marks`] turns the log
//! into chapters; [`lifecycle`] is the REST lifecycle; [`rtc`] the typed `rtc.*` bridge;
//! [`stop`] closes sockets whose access ends (4401); [`uplink`] says what the media peer
//! receives; `origin`, `participants` and `device` are
//! the socket's checks and bookkeeping (the last two shared with evidence uploads).

pub(crate) mod device;
pub mod lifecycle;
pub mod marks;
mod origin;
pub(crate) mod participants;
pub mod projection;
pub mod recording;
pub mod rtc;
pub mod stop;
pub mod uplink;

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use checklist_sync::{Extension, ItemSpec, Principal, RoomSpec, Site, SyncHub};
use media_recorder::{IceServer, MediaConfig, MediaHub};
use sqlx::AnyPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::auth::{self, Caller};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::inspections::{self, Access, Inspection};
use crate::AppState;

pub use lifecycle::LifecycleService;
pub use stop::{AccessWatch, Credential};

/// Live rooms: the sync hub and the media hub. (What closes a socket when its access ends is
/// [`AccessWatch`], in `AppState`; server shutdown is [`SyncHub::shutdown`].)
pub struct Live {
    /// Checklist sync (inspection state, event log).
    pub sync: SyncHub,
    /// WebRTC forwarding and recording.
    pub media: MediaHub,
    /// Finalization of recordings from the committed log.
    pub recordings: recording::Recordings,
    /// This node's claims on live inspections (PostgreSQL; `None` on SQLite, one machine).
    pub leases: Option<Arc<crate::nodes::Leases>>,
    /// Recordings in the shared object store (several nodes and a remote store only).
    pub shared: Option<Arc<crate::nodes::recordings::SharedRecordings>>,
}

impl Live {
    /// Creates both hubs, with the status projection and the after-commit side effects in the
    /// sync writer, finalizes in the background the recordings of inspections that ended
    /// while the server was down, and derives evidence (clips, stills, into `blobs`) from
    /// every finalized recording.
    pub async fn new(
        db: AnyPool,
        config: Arc<Config>,
        blobs: crate::blobs::BlobStore,
    ) -> anyhow::Result<Live> {
        let media = MediaHub::new(MediaConfig {
            recordings_dir: config.recordings_dir(),
            udp_addrs: vec![config.media_udp.clone()],
            nat_1to1_ips: config.media_public_ip.into_iter().collect(),
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
        let node_url = config.node_url.as_deref().unwrap_or(&config.public_url);
        let (lost, mut lost_rx) = mpsc::unbounded_channel();
        let node_id = crate::nodes::node_id(&config.data_dir)?;
        let (ownership, leases) = crate::nodes::ownership_for(
            &db,
            &config.database_url,
            &node_id,
            node_url,
            config.lease_ttl,
            lost,
        )
        .await?;
        // Several nodes and a remote store: recordings are shipped there (`nodes::recordings`).
        let shared = match (&leases, blobs.local_root()) {
            (Some(_), None) => {
                let shared = Arc::new(crate::nodes::recordings::SharedRecordings::new(
                    db.clone(),
                    blobs.clone(),
                    config.recordings_dir(),
                    node_id.clone(),
                ));
                tokio::spawn(shared.clone().run_shipper());
                Some(shared)
            }
            _ => None,
        };
        let (finalized, finalized_rx) = mpsc::unbounded_channel();
        let recordings = recording::Recordings::new(
            db.clone(),
            media.clone(),
            finalized,
            config.chapter_lead_in_ms,
            shared.clone(),
        );
        let (checkpoints, checkpoints_rx) = mpsc::unbounded_channel();
        let key = crate::anchor::CheckpointKey::load_or_create(&config.anchor.key_file)?;
        crate::anchor::spawn(
            crate::anchor::Checkpointer::new(
                db.clone(),
                config.data_dir.clone(),
                key,
                config.anchor.interval,
            ),
            checkpoints_rx,
        );
        let projection = Arc::new(projection::StatusProjection::new(
            media.clone(),
            recordings.clone(),
            checkpoints,
        ));
        let sync =
            SyncHub::with_ownership(db.clone(), config.live.sync_config(), projection, ownership);
        crate::derived::spawn(
            crate::derived::Deriver {
                db: db.clone(),
                sync: sync.clone(),
                blobs,
                config: config.clone(),
            },
            finalized_rx,
        );
        {
            // A room whose claim another node took closes; its sockets go to the new owner.
            let sync = sync.clone();
            tokio::spawn(async move {
                while let Some(id) = lost_rx.recv().await {
                    sync.evict(id);
                }
            });
        }
        recording::recover_in_background(recordings.clone());
        // Load the embedded time-zone map now rather than on the first location sample.
        tokio::task::spawn_blocking(checklist_sync::trust::tz::warm_up);
        Ok(Live {
            sync,
            media,
            recordings,
            leases,
            shared,
        })
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

/// The sync principal of a caller on an inspection: whoever may manage it acts as the
/// inspector, other staff observe, the invitation's guest is the business.
pub(crate) fn principal(
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
        Caller::Business(b) => (checklist_sync::Role::Business, b.label.clone()),
    };
    Principal {
        inspection_id: insp.id,
        participant_id,
        role,
        display_name,
        device: device.to_string(),
    }
}

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/inspections/{id}/ws", get(socket))
        .route("/api/inspections/{id}/uplink", get(uplink::uplink))
}

/// Who is on the socket, resolved before the upgrade.
struct SocketPeer {
    caller: Caller,
    inspection: Inspection,
    access: Access,
}

async fn authorize(state: &AppState, headers: &HeaderMap, id: Uuid) -> ApiResult<SocketPeer> {
    if !origin::same_origin(headers, &state.config) {
        return Err(ApiError::Forbidden);
    }
    let caller = auth::authenticate(headers, state)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let (inspection, access) = inspections::load_for(&state.db, &caller, id, Access::Read).await?;
    if !inspections::takes_part(&caller, &inspection) {
        return Err(ApiError::Forbidden);
    }
    Ok(SocketPeer {
        caller,
        inspection,
        access,
    })
}

/// The inspection's live socket. Authenticated by staff session or invitation cookie, before
/// the upgrade; the protocol is in docs/protocol.md.
#[utoipa::path(get, path = "/api/inspections/{id}/ws", tag = "live", params(("id" = Uuid, Path)),
    responses((status = 101, description = "WebSocket upgrade"), (status = 401, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn socket(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    axum::extract::ConnectInfo(remote): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    // Authorize first, so that a stranger learns nothing, not even that a socket lives here.
    let peer = authorize(&state, &headers, id).await?;
    let ws = ws.map_err(|_| ApiError::Invalid {
        code: "websocket_required",
        message: "this endpoint needs a WebSocket upgrade".into(),
    })?;
    // Another node runs the inspection: the socket goes there (`nodes::proxy`).
    if let Some(leases) = &state.live.leases {
        if !crate::nodes::proxy::is_hop(&headers) {
            if let Some(owner) = leases.owner_elsewhere(id).await? {
                let upstream =
                    crate::nodes::proxy::connect(&owner, id, &headers, Some(remote.ip())).await?;
                let idle = state.config.live.sync_config().idle_timeout;
                return Ok(checklist_sync::configure_upgrade(ws)
                    .on_upgrade(move |socket| crate::nodes::proxy::pump(socket, upstream, idle)));
            }
        }
    }
    let device = device::device_kind(&headers);
    let participant_id =
        participants::register(&state.db, &peer.caller, &peer.inspection, device).await?;
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
    let bridge: Arc<dyn Extension> = Arc::new(rtc::RtcBridge::new(
        live.media.clone(),
        state.config.media.max_video_kbps,
    ));
    Ok(
        checklist_sync::configure_upgrade(ws).on_upgrade(move |socket| async move {
            live.sync
                .serve_socket_until(socket, who, spec, bridge, stop)
                .await;
        }),
    )
}

//! A development server around `SyncHub`, shared by the integration tests, the
//! `checklist-sync-server` binary (the kill -9 test and the benchmark spawn it) and nothing
//! else. Authentication is replaced by query parameters, so it must never face a network.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use checklist_sync::{
    configure_upgrade, ItemSpec, NoExtension, NoProjection, Principal, Projection, Role, RoomSpec,
    SyncConfig, SyncHub,
};
use serde::Deserialize;
use sqlx::AnyPool;
use uuid::Uuid;

/// Opens (creating if needed) the database and runs the workspace migrations.
pub async fn open_pool(url: &str) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await?;
    sqlx::migrate!("../migrations").run(&pool).await?;
    Ok(pool)
}

/// The checklist every dev inspection has: items `q1` … `q{n}`.
pub fn spec(inspection_id: Uuid, items: usize) -> RoomSpec {
    RoomSpec {
        inspection_id,
        items: (1..=items)
            .map(|i| ItemSpec {
                id: format!("q{i}"),
                number: format!("1.{i}"),
                question: format!("Question {i}?"),
            })
            .collect(),
        site: None,
    }
}

#[derive(Clone)]
struct App {
    hub: SyncHub,
    items: usize,
}

#[derive(Deserialize)]
struct Who {
    role: String,
    pid: Uuid,
    name: Option<String>,
    device: Option<String>,
}

async fn ws(
    State(app): State<App>,
    Path(inspection_id): Path<Uuid>,
    Query(who): Query<Who>,
    upgrade: WebSocketUpgrade,
) -> axum::response::Response {
    let role = match who.role.as_str() {
        "inspector" => Role::Inspector,
        "business" => Role::Business,
        "observer" => Role::Observer,
        _ => return (axum::http::StatusCode::BAD_REQUEST, "role").into_response(),
    };
    let principal = Principal {
        inspection_id,
        participant_id: who.pid,
        role,
        display_name: who.name.unwrap_or_else(|| role.as_str().to_string()),
        device: who.device.unwrap_or_else(|| "desktop".into()),
    };
    let spec = spec(inspection_id, app.items);
    configure_upgrade(upgrade).on_upgrade(move |socket| async move {
        app.hub
            .serve_socket(socket, principal, spec, Arc::new(NoExtension))
            .await
    })
}

/// The router: `GET /ws/{inspection_id}?role=&pid=&name=&device=`.
pub fn router(hub: SyncHub, items: usize) -> Router {
    Router::new()
        .route("/ws/{inspection_id}", get(ws))
        .with_state(App { hub, items })
}

/// A running dev server.
pub struct DevServer {
    /// The hub.
    pub hub: SyncHub,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its database.
    pub pool: AnyPool,
}

/// Starts a dev server on 127.0.0.1 with an ephemeral port.
pub async fn start(
    pool: AnyPool,
    config: SyncConfig,
    projection: Option<Arc<dyn Projection>>,
    items: usize,
    addr: &str,
) -> anyhow::Result<DevServer> {
    let projection = projection.unwrap_or_else(|| Arc::new(NoProjection));
    let hub = SyncHub::new(pool.clone(), config, projection);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = router(hub.clone(), items);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(DevServer { hub, addr, pool })
}

//! The Inspector server: HTTP API, accounts, invitations and the live room, composing
//! `checklist-sync` (inspection state) and `media-recorder` (WebRTC and recording).
//!
//! Layout follows one rule: `main.rs` does config → pool → migrate → serve; every feature
//! module exposes `router()`; one cloneable [`AppState`] reaches handlers through `State`; one
//! error type ([`error::ApiError`]) answers every failure in one shape.
#![deny(missing_docs)]

pub mod audit;
pub mod auth;
pub mod blobs;
pub mod config;
pub mod db;
pub mod derived;
pub mod domain;
pub mod error;
pub mod evidence;
pub mod extract;
pub mod inspections;
pub mod live;
pub mod openapi;
pub mod ops;
pub mod templates;
pub mod uploads;
pub mod users;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::Router;
use sqlx::AnyPool;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use config::Config;

/// Largest JSON body accepted by the API (templates have their own, larger limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: AnyPool,
    /// Resolved configuration.
    pub config: Arc<Config>,
    /// A real argon2 hash verified against when the user is unknown, so that login timing
    /// does not reveal which user names exist.
    pub dummy_hash: Arc<String>,
    /// Lifecycle transitions and their side effects.
    pub lifecycle: Arc<live::LifecycleService>,
    /// The live rooms: sockets, media, revocation.
    pub live: Arc<live::Live>,
    /// Evidence files (photos, clips, stills).
    pub blobs: blobs::BlobStore,
}

/// A built server, bound to its port, ready to serve.
pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Connects and migrates the database, imports the bundled templates, binds the port.
    pub async fn build(mut config: Config) -> anyhow::Result<Application> {
        // Install the metrics recorder before anything is counted.
        ops::prometheus();
        std::fs::create_dir_all(&config.data_dir)?;
        std::fs::create_dir_all(config.recordings_dir())?;
        let db = db::connect(&config.database_url).await?;
        db::migrate(&db).await?;
        templates::import_bundled(&db).await?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        if config.listen.port() == 0 && config.public_url == format!("http://{}", config.listen) {
            config.public_url = format!("http://{addr}");
        }
        config.listen = addr;
        let blobs = blobs::BlobStore::open(&config.blob, &config.blobs_dir())?;
        {
            // Temporaries an interrupted write left behind (none in normal operation).
            let blobs = blobs.clone();
            tokio::spawn(async move {
                if let Err(e) = blobs
                    .sweep_temporaries(std::time::Duration::from_secs(3600))
                    .await
                {
                    tracing::warn!(error = %e, "blob store: sweeping temporaries failed");
                }
            });
        }
        let config = Arc::new(config);
        let live = Arc::new(live::Live::new(db.clone(), config.clone(), blobs.clone()).await?);
        let lifecycle = Arc::new(live::LifecycleService::new(db.clone(), live.clone()));
        let dummy_hash = Arc::new(auth::hash_password("dummy password for timing")?);
        let state = AppState {
            db,
            config,
            dummy_hash,
            lifecycle,
            live,
            blobs,
        };
        let router = router(state.clone());
        Ok(Application {
            listener,
            router,
            state,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.config.listen
    }

    /// The shared state (tests use its pool).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let live = self.state.live.clone();
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            live.shutdown().await;
        })
        .await?;
        Ok(())
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(users::router())
        .merge(templates::router())
        .merge(inspections::router())
        .merge(live::router())
        .merge(evidence::router())
        .merge(uploads::router())
        .merge(openapi::router())
        .merge(ops::router())
        .merge(web::router())
        .fallback(|| async { error::error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            error::error_response(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed here")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(ops::track))
        .layer(TraceLayer::new_for_http())
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
                 connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ))
        .with_state(state)
}

//! The Inspector server: HTTP API, accounts, invitations and the live room, composing
//! `checklist-sync` (inspection state) and `media-recorder` (WebRTC and recording).
//!
//! Layout follows one rule: `main.rs` does config → pool → migrate → serve; every feature
//! module exposes `router()`; one cloneable [`AppState`] reaches handlers through `State`; one
//! error type ([`error::ApiError`]) answers every failure in one shape.
#![deny(missing_docs)]

pub mod act;
pub mod anchor;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod blobs;
pub mod config;
pub mod db;
pub mod derived;
pub mod devcheck;
pub mod domain;
pub mod error;
pub mod evidence;
pub mod extract;
pub mod fuzzing;
pub mod inspections;
pub mod live;
pub mod names;
pub mod nodes;
pub mod notify;
pub mod oidc;
pub mod onsite;
pub mod openapi;
pub mod ops;
pub mod orgs;
pub mod prescriptions;
pub mod ratings;
pub mod results;
pub mod server;
pub mod signals;
pub mod signing;
pub mod templates;
pub mod throttle;
pub mod tokens;
pub mod uploads;
pub mod users;
pub mod web;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use sqlx::AnyPool;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
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
    /// The live rooms: sockets and media.
    pub live: Arc<live::Live>,
    /// The certificate authority and the signature scheme of acts.
    pub signing: Arc<signing::Signing>,
    /// Acts: storage and rendering.
    pub acts: Arc<act::Acts>,
    /// Every live socket's credential; ends sockets whose access ends.
    pub access: live::AccessWatch,
    /// What this node tells the others (ended access), and hears from them.
    pub bus: Arc<dyn signals::Bus>,
    /// Evidence files (photos, clips, stills).
    pub blobs: blobs::BlobStore,
    /// Notices and reminders: planning and the durable scheduler.
    pub notify: Arc<notify::Notify>,
    /// Webhooks: the outbox's worker and the endpoints' sealing key.
    pub webhooks: Arc<webhooks::Webhooks>,
    /// OpenID Connect sign-in: pending sign-ins, the provider's cached discovery and keys.
    pub oidc: Arc<oidc::Oidc>,
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
        ratings::seed_defaults(&db).await?;
        ratings::ensure_cells(&db).await?;
        clamp_to_open_files(&mut config.http, server::open_file_limit());
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
        let ca = signing::ca::Ca::load_or_create(
            &signing::ca::ca_dir(&config.data_dir),
            &config.control_body,
        )?;
        let signing = Arc::new(signing::Signing {
            ca,
            signer: Box::new(signing::WebCryptoP256),
        });
        // Several nodes with a remote store keep the acts there too (`Acts::shared`).
        let acts = Arc::new(match live.shared {
            Some(_) => act::Acts::shared(&config.data_dir, blobs.clone()),
            None => act::Acts::new(&config.data_dir),
        });
        let access = live::AccessWatch::new(db.clone(), config.access_recheck);
        let bus = signals::bus_for(&db, &config.database_url)?;
        {
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            tokio::spawn(bus.clone().listen(tx));
            let access = access.clone();
            let db = db.clone();
            tokio::spawn(async move { access.follow(db, rx).await });
        }
        let notify = Arc::new(notify::Notify::new(
            db.clone(),
            config.clone(),
            acts.renderer.clone(),
        )?);
        let webhooks = Arc::new(webhooks::Webhooks::new(db.clone(), config.clone())?);
        let oidc = Arc::new(oidc::Oidc::new(&config.oidc, &config.public_url)?);
        let state = AppState {
            oidc,
            db,
            config,
            dummy_hash,
            lifecycle,
            live,
            signing,
            acts,
            access,
            bus,
            blobs,
            notify,
            webhooks,
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
        let http = &self.state.config.http;
        let limits = server::Limits {
            max_connections: http.max_connections,
            max_websockets: http.max_websockets,
            header_timeout: Duration::from_secs(http.header_timeout_secs.max(1)),
        };
        // The scheduler stops with the server (an attempt cut short is `unknown` later).
        let scheduler = tokio::spawn(self.state.notify.clone().run());
        // Deliveries cut short by the stop are claimed again after their lease.
        let hooks = tokio::spawn(self.state.webhooks.clone().run());
        let served = server::serve(self.listener, self.router, limits, async move {
            shutdown.await;
            // Live sockets close with 1001, so their clients reconnect to the next server.
            live.sync.shutdown();
        })
        .await;
        scheduler.abort();
        hooks.abort();
        // A drain: the rooms are closed, so the other nodes may take them over at once.
        if let Some(leases) = &self.state.live.leases {
            leases.release_all().await;
        }
        served?;
        Ok(())
    }
}

/// Keeps the connection cap below the open-file limit (database, recordings and media
/// sockets need descriptors too), lowering the WebSocket share in proportion.
fn clamp_to_open_files(http: &mut config::HttpLimits, open_files: Option<u64>) {
    const RESERVED: u64 = 512;
    let Some(limit) = open_files else { return };
    let fits = usize::try_from(limit.saturating_sub(RESERVED).max(64)).unwrap_or(usize::MAX);
    if http.max_connections > fits {
        tracing::warn!(
            configured = http.max_connections,
            open_file_limit = limit,
            used = fits,
            "max_connections lowered to fit the open-file limit"
        );
        http.max_websockets = http.max_websockets * fits / http.max_connections;
        http.max_connections = fits;
    }
}

/// The Content-Security-Policy: everything from this origin only; sockets only to this
/// server's own host (ws/wss as the public URL's scheme); no inline scripts or styles. Images
/// also from the map tile server, when an administrator configured one (`[review] tile_url`).
pub fn content_security_policy(public_url: &str, tile_origin: Option<&str>) -> String {
    let (ws, host) = match public_url.split_once("://") {
        Some(("https", rest)) => ("wss", rest),
        Some((_, rest)) => ("ws", rest),
        None => ("ws", public_url),
    };
    let host = host.split('/').next().unwrap_or(host);
    let tiles = tile_origin.map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:{tiles}; \
         media-src 'self' blob:; connect-src 'self' {ws}://{host}; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Private API answers (session state, CSRF tokens, event logs, recordings) must not be kept
/// by browsers or shared caches.
async fn no_store_for_api(req: Request, next: Next) -> Response {
    let private = req.uri().path().starts_with("/api/");
    let mut response = next.run(req).await;
    if private {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let csp = HeaderValue::from_str(&content_security_policy(
        &state.config.public_url,
        state.config.review.tile_origin().as_deref(),
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    let hsts = state.config.secure_cookies().then(|| {
        SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        )
    });
    let body_timeout = Duration::from_secs(state.config.http.body_timeout_secs.max(1));
    Router::new()
        .merge(users::router())
        .merge(oidc::router())
        .merge(templates::router())
        .merge(inspections::router())
        .merge(live::router())
        .merge(evidence::router())
        .merge(act::http::router())
        .merge(signing::http::router())
        .merge(results::router())
        .merge(orgs::router())
        .merge(prescriptions::router())
        .merge(notify::router())
        .merge(webhooks::router())
        .merge(devcheck::router())
        .merge(ratings::router())
        .merge(uploads::router())
        .merge(onsite::router())
        .merge(tokens::router())
        .merge(openapi::router())
        .merge(ops::router())
        .merge(web::router())
        .fallback(|| async {
            error::error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            error::error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            )
        })
        // Per route (so it sees the matched route): bearer calls' scopes and their log.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            tokens::gate,
        ))
        // Several nodes: what another node runs is answered there (the owner checks it all).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            nodes::proxy::route,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(axum::middleware::from_fn(ops::track))
        .layer(axum::middleware::from_fn(no_store_for_api))
        .layer(TraceLayer::new_for_http())
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ))
        .layer(tower::util::option_layer(hsts))
        .with_state(state)
}

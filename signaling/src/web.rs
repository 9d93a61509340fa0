//! The browser front end, embedded in the binary (no CDN, nothing to build).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::AppState;

#[derive(rust_embed::RustEmbed)]
#[folder = "../web/"]
struct Assets;

/// Routes of this module: the faces and their assets.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { page("index.html") }))
        .route("/b/", get(|| async { page("business.html") }))
        .route("/review/", get(|| async { page("review.html") }))
        .route("/my/", get(|| async { page("my.html") }))
        .route("/onsite/", get(|| async { page("onsite.html") }))
        // The on-site page's service worker, served under the scope it controls.
        .route("/onsite/sw.js", get(|| async { page("sw-onsite.js") }))
        .route("/rate/", get(|| async { page("rate.html") }))
        .route("/check/", get(|| async { page("check.html") }))
        .route("/messages/", get(|| async { page("messages.html") }))
        .route("/tokens/", get(|| async { page("tokens.html") }))
        .route("/webhooks/", get(|| async { page("webhooks.html") }))
        .route("/ratings/", get(|| async { page("ratings.html") }))
        .route(
            "/assets/{*path}",
            get(|Path(path): Path<String>| async move { asset(&path) }),
        )
}

fn page(name: &str) -> Response {
    let mut r = asset(name);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    r
}

fn asset(path: &str) -> Response {
    match Assets::get(path) {
        Some(file) => (
            [
                (header::CONTENT_TYPE, file.metadata.mimetype().to_string()),
                (header::CACHE_CONTROL, "no-cache".to_string()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            ],
            file.data.into_owned(),
        )
            .into_response(),
        None => crate::error::error_response(StatusCode::NOT_FOUND, "not_found", "no such file"),
    }
}

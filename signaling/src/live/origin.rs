//! The WebSocket handshake's Origin check: a defence against cross-site WebSocket hijacking
//! (browsers always send Origin on WebSocket handshakes, and cookies ride along).

use axum::http::{header, HeaderMap};

use crate::config::Config;

/// Whether the request's Origin is this server. A request without Origin is not from a
/// browser page, so no other site can have made it.
pub(crate) fn same_origin(headers: &HeaderMap, config: &Config) -> bool {
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

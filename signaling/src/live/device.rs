//! A coarse device description for the participant list, from the User-Agent header.

use axum::http::{header, HeaderMap};

/// `ios`, `android`, `desktop` or `other`.
pub(crate) fn device_kind(headers: &HeaderMap) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(ua: &str) -> &'static str {
        let mut h = HeaderMap::new();
        if let Ok(v) = ua.parse() {
            h.insert(header::USER_AGENT, v);
        }
        device_kind(&h)
    }

    #[test]
    fn kinds() {
        assert_eq!(
            kind("Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X)"),
            "ios"
        );
        assert_eq!(kind("Mozilla/5.0 (Linux; Android 10; K)"), "android");
        assert_eq!(kind("Mozilla/5.0 (X11; Linux x86_64)"), "desktop");
        assert_eq!(kind("curl/8.0"), "other");
        assert_eq!(kind(""), "other");
    }
}

//! Request extractors that answer malformed input in the API's error shape.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

/// The client's address: the TCP peer, or, when the peer is a configured trusted proxy, the
/// nearest address in `X-Forwarded-For` that is not a trusted proxy. Without trusted proxies
/// configured the header is ignored, so a client cannot choose its own address.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no peer address on the request")))?;
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

/// See [`ClientIp`]. Walks `X-Forwarded-For` from the right (the hop nearest to us) while the
/// hops are trusted; an unparsable entry stops the walk at the last trusted hop.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// A JSON body. Not JSON → `malformed_json`; JSON of the wrong shape → `invalid_body`;
/// over the body limit → 413 `payload_too_large`; wrong content type → `unsupported_media_type`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::Invalid {
                code: "unsupported_media_type",
                message: "expected Content-Type: application/json".into(),
            });
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::Invalid {
                    code: "invalid_body",
                    message: "the body could not be read".into(),
                }
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body, telling "not JSON" from "JSON of the wrong shape".
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
            ApiError::Invalid {
                code: "invalid_body",
                message: format!("the body does not match the expected shape: {e}"),
            }
        } else {
            ApiError::Invalid {
                code: "malformed_json",
                message: "the body is not valid JSON".into(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.9, 10.1.1.1".parse().unwrap(),
        );
        // Behind the trusted proxy: the nearest untrusted hop; the spoofed leftmost is ignored.
        assert_eq!(client_ip(proxy, &h, &trusted).to_string(), "203.0.113.9");
        // Not from a trusted proxy, or none configured: the header is ignored.
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(client_ip(stranger, &h, &trusted), stranger);
        assert_eq!(client_ip(proxy, &h, &[]), proxy);
        // Garbage stops at the last trusted hop; no header means the proxy itself.
        h.insert("x-forwarded-for", "203.0.113.9, junk".parse().unwrap());
        assert_eq!(client_ip(proxy, &h, &trusted), proxy);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        kind: String,
    }

    #[test]
    fn tells_malformed_from_mistyped() {
        let code = |b: &[u8]| match parse::<Body>(b) {
            Err(ApiError::Invalid { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(b"{not json"), "malformed_json");
        assert_eq!(code(b""), "malformed_json");
        assert_eq!(code(br#"{"kind": 5}"#), "invalid_body");
        assert_eq!(code(br#"[1]"#), "invalid_body");
        assert!(parse::<Body>(br#"{"kind": "x"}"#).is_ok());
    }
}

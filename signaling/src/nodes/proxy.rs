//! Routing (issue 20, item 2): a client may reach any node; a node that does not run the
//! inspection proxies the socket — and every request under `/api/inspections/{id}/` — to the
//! node that does (the lease names its URL). Requests about an inspection no node runs are
//! served where they land.
//!
//! Why a proxy and not a redirect: the browser's cookies belong to the address it opened (the
//! load balancer's), so a page told to reconnect to another node's own URL would arrive there
//! signed out; a proxy keeps one origin, and the media still flows straight to the owner, whose
//! ICE candidates ride the proxied socket.
//!
//! The hop carries the client's cookies, so the owner authenticates and authorizes the socket
//! itself, with the rule every socket passes, and watches its access (a revocation anywhere
//! closes it there, and the proxy passes the close code on). The node in front has already
//! checked the Origin; the hop has none (it is not a page), and is marked [`HOP`] so that it is
//! never proxied again (two nodes that disagree about the owner cannot bounce a socket between
//! them: the owner's room refuses with `moved` instead).

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
use uuid::Uuid;

use crate::error::ApiError;
use crate::AppState;

/// The header that marks a request proxied from another node.
pub const HOP: &str = "x-inspector-hop";

/// A socket to the owner, opened before the client's upgrade is answered.
pub struct Upstream {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// Whether a request came from another node.
pub fn is_hop(headers: &HeaderMap) -> bool {
    headers.contains_key(HOP)
}

/// Opens inspection `id`'s socket on the owner at `owner_url` with the client's credentials.
/// An owner that does not answer is `node_unavailable` (503): the client retries, and once
/// the owner's lease has expired this node takes the inspection over.
pub async fn connect(
    owner_url: &str,
    id: Uuid,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<Upstream, ApiError> {
    let url = format!(
        "{}/api/inspections/{id}/ws",
        owner_url.replacen("http", "ws", 1)
    );
    let mut req = url
        .into_client_request()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("owner URL {owner_url}: {e}")))?;
    for name in [header::COOKIE, header::USER_AGENT] {
        if let Some(v) = headers.get(&name) {
            req.headers_mut().insert(name, v.clone());
        }
    }
    if let Some(v) = forwarded_for(headers, peer) {
        req.headers_mut().insert("x-forwarded-for", v);
    }
    req.headers_mut().insert(HOP, HeaderValue::from_static("1"));
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(checklist_sync::proto::HARD_FRAME_LIMIT))
        .max_frame_size(Some(checklist_sync::proto::HARD_FRAME_LIMIT));
    let connect = tokio_tungstenite::connect_async_with_config(req, Some(config), true);
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok((stream, _))) => Ok(Upstream { stream }),
        Ok(Err(tungstenite::Error::Http(r))) if r.status().is_client_error() => {
            // The owner refused the client itself (its access ended meanwhile).
            Err(ApiError::Forbidden)
        }
        Ok(Err(e)) => {
            tracing::warn!(owner = owner_url, error = %e, "proxy: the owner node does not answer");
            Err(unavailable())
        }
        Err(_) => {
            tracing::warn!(
                owner = owner_url,
                "proxy: the owner node does not answer in 5 s"
            );
            Err(unavailable())
        }
    }
}

fn unavailable() -> ApiError {
    ApiError::Unavailable {
        code: "node_unavailable",
        message: "the node that runs this inspection does not answer; retry".into(),
    }
}

/// Pumps frames both ways until either side closes; a close code passes through. A client
/// silent (no frame, no pong) for `idle` is dropped, as the owner would drop it: the owner
/// sees only this node, which answers its pings.
pub async fn pump(client: WebSocket, upstream: Upstream, idle: Duration) {
    let (mut up_tx, mut up_rx) = upstream.stream.split();
    let (mut cl_tx, mut cl_rx) = client.split();
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            m = cl_rx.next() => match m {
                Some(Ok(m)) => {
                    last_heard = tokio::time::Instant::now();
                    let close = matches!(m, Message::Close(_));
                    if up_tx.send(to_upstream(m)).await.is_err() || close {
                        break;
                    }
                }
                _ => {
                    let _ = up_tx.send(tungstenite::Message::Close(None)).await;
                    break;
                }
            },
            m = up_rx.next() => match m {
                Some(Ok(m)) => {
                    let close = matches!(m, tungstenite::Message::Close(_));
                    if let Some(m) = to_client(m) {
                        if cl_tx.send(m).await.is_err() {
                            let _ = up_tx.send(tungstenite::Message::Close(None)).await;
                            break;
                        }
                    }
                    if close {
                        break;
                    }
                }
                // The owner went away without a close: "service restart", reconnect.
                _ => {
                    let _ = cl_tx
                        .send(Message::Close(Some(CloseFrame {
                            code: 1012,
                            reason: "the node that ran this inspection is gone".into(),
                        })))
                        .await;
                    break;
                }
            },
            _ = tokio::time::sleep_until(last_heard + idle) => {
                let _ = up_tx.send(tungstenite::Message::Close(None)).await;
                let _ = cl_tx.send(Message::Close(None)).await;
                break;
            }
        }
    }
}

fn to_upstream(m: Message) -> tungstenite::Message {
    match m {
        Message::Text(t) => tungstenite::Message::Text(t.as_str().into()),
        Message::Binary(b) => tungstenite::Message::Binary(b),
        Message::Ping(b) => tungstenite::Message::Ping(b),
        Message::Pong(b) => tungstenite::Message::Pong(b),
        Message::Close(f) => {
            tungstenite::Message::Close(f.map(|f| tungstenite::protocol::CloseFrame {
                code: f.code.into(),
                reason: f.reason.as_str().into(),
            }))
        }
    }
}

fn to_client(m: tungstenite::Message) -> Option<Message> {
    Some(match m {
        tungstenite::Message::Text(t) => Message::Text(t.as_str().into()),
        tungstenite::Message::Binary(b) => Message::Binary(b),
        tungstenite::Message::Ping(b) => Message::Ping(b),
        tungstenite::Message::Pong(b) => Message::Pong(b),
        tungstenite::Message::Close(f) => Message::Close(f.map(|f| CloseFrame {
            code: f.code.into(),
            reason: f.reason.as_str().into(),
        })),
        tungstenite::Message::Frame(_) => return None,
    })
}

/// `X-Forwarded-For` for the hop: what came in, then the peer this node saw. The owner believes
/// it only from the nodes named in its `trusted_proxies`.
fn forwarded_for(headers: &HeaderMap, peer: Option<IpAddr>) -> Option<HeaderValue> {
    let prior = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let value = match (prior, peer) {
        (Some(p), Some(ip)) => format!("{p}, {ip}"),
        (Some(p), None) => p.to_string(),
        (None, Some(ip)) => ip.to_string(),
        (None, None) => return None,
    };
    HeaderValue::from_str(&value).ok()
}

/// The inspection a path is about, when it is under `/api/inspections/{id}/` (its socket
/// excepted: the socket handler proxies the upgrade itself).
fn inspection_of(path: &str) -> Option<Uuid> {
    let rest = path.strip_prefix("/api/inspections/")?;
    let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if tail == "ws" {
        return None;
    }
    Uuid::parse_str(id).ok()
}

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1), and the
/// ones the hop sets itself.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "x-forwarded-for"
    )
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()
            // Only fails when the TLS backend cannot start, which a running server has done.
            .unwrap_or_default()
    })
}

/// Middleware: a request about an inspection another node runs is answered by that node.
pub async fn route(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(leases) = state.live.leases.clone() else {
        return next.run(req).await;
    };
    let Some(id) = inspection_of(req.uri().path()) else {
        return next.run(req).await;
    };
    if is_hop(req.headers()) {
        return next.run(req).await;
    }
    let owner = match leases.owner_elsewhere(id).await {
        Ok(Some(owner)) => owner,
        Ok(None) => return next.run(req).await,
        Err(e) => return ApiError::Database(e).into_response(),
    };
    forward(&owner, req)
        .await
        .unwrap_or_else(|e| e.into_response())
}

async fn forward(owner: &str, req: Request) -> Result<Response, ApiError> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut out = client().request(parts.method.clone(), format!("{owner}{path}"));
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            out = out.header(name, value);
        }
    }
    if let Some(v) = forwarded_for(&parts.headers, peer) {
        out = out.header("x-forwarded-for", v);
    }
    out = out.header(HOP, "1");
    // Streamed both ways: an upload or a recording is never held whole here.
    let answer = out
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(owner, error = %e, "proxy: the owner node does not answer");
            unavailable()
        })?;
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !hop_by_hop(name) || name == header::CONTENT_LENGTH {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("proxy response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_inspections_own_paths_are_routed() {
        let id = Uuid::new_v4();
        assert_eq!(inspection_of(&format!("/api/inspections/{id}")), Some(id));
        assert_eq!(
            inspection_of(&format!("/api/inspections/{id}/evidence")),
            Some(id)
        );
        assert_eq!(inspection_of(&format!("/api/inspections/{id}/ws")), None);
        assert_eq!(inspection_of("/api/inspections"), None);
        assert_eq!(inspection_of("/api/inspections/not-a-uuid/x"), None);
        assert_eq!(inspection_of("/api/templates"), None);
    }

    #[test]
    fn the_hop_names_the_peer_after_what_came_in() {
        let mut h = HeaderMap::new();
        let peer: IpAddr = "10.0.0.5".parse().expect("literal");
        assert_eq!(forwarded_for(&h, Some(peer)).expect("a value"), "10.0.0.5");
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        assert_eq!(
            forwarded_for(&h, Some(peer)).expect("a value"),
            "203.0.113.7, 10.0.0.5"
        );
    }
}

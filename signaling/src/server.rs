//! The HTTP listener, driven with hyper directly because `axum::serve` has no header timeout
//! and no connection cap. Without both, about 20 000 idle TCP connections exhausted the
//! process's file descriptors and `/healthz` and login stopped answering.
//!
//! - **Header timeout**: a connection that has not sent a complete request head within
//!   `header_timeout` is closed: a silent connection, a half-sent request, and a kept-alive
//!   connection waiting for its next request alike (hyper's one timer covers the three).
//! - **Connection cap**: at most `max_connections` at once. A new connection over the cap
//!   closes the oldest *idle* one (no request in progress and not a WebSocket; one that never
//!   sent a request goes first), so idle connections cannot crowd out requests; with none idle
//!   the new connection is closed at once.
//! - **Headroom for the API**: at most `max_websockets` WebSockets (further upgrades answer 503
//!   `too_many_connections`), so `max_connections - max_websockets` stay for plain requests.
//! - A request body must arrive within `body_timeout` (a layer in `lib.rs`).
//!
//! Graceful shutdown stops accepting, lets in-flight requests finish and waits (at most
//! [`DRAIN_TIMEOUT`]) for every connection, WebSockets included, to close.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

/// The longest graceful shutdown waits for connections to close.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits of the listener (resolved from `config::HttpLimits`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// WebSockets at most.
    pub max_websockets: usize,
    /// Time to send a complete request head.
    pub header_timeout: Duration,
}

/// One accepted connection.
#[derive(Debug, Default)]
struct Conn {
    /// Requests whose response body has not been sent completely.
    in_flight: AtomicUsize,
    /// Requests whose head arrived.
    requests: AtomicU64,
    /// Became a WebSocket.
    upgraded: AtomicBool,
    /// Asked to close to make room.
    shedding: AtomicBool,
    shed: Notify,
}

impl Conn {
    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && !self.upgraded.load(Ordering::Acquire)
    }
}

/// Every open connection, oldest first.
struct Tracker {
    limits: Limits,
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    websockets: AtomicUsize,
    /// Connections asked to close that have not closed yet.
    shedding: AtomicUsize,
    empty: Notify,
}

impl Tracker {
    fn conns(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        // Plain data; a panic elsewhere leaves it usable.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Room for one more connection, closing an idle one if the cap is reached.
    fn admit(self: &Arc<Self>) -> Option<Guard> {
        let mut conns = self.conns();
        let shedding = self.shedding.load(Ordering::Acquire);
        if conns.len().saturating_sub(shedding) >= self.limits.max_connections {
            let victim = {
                let candidates = || {
                    conns
                        .values()
                        .filter(|c| !c.shedding.load(Ordering::Acquire) && c.idle())
                };
                candidates()
                    .find(|c| c.requests.load(Ordering::Acquire) == 0)
                    .or_else(|| candidates().next())
                    .cloned()
            };
            let victim = victim?;
            victim.shedding.store(true, Ordering::Release);
            self.shedding.fetch_add(1, Ordering::AcqRel);
            victim.shed.notify_one();
            metrics::counter!("inspector_http_connections_shed_total").increment(1);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::default());
        conns.insert(id, conn.clone());
        Some(Guard {
            tracker: self.clone(),
            id,
            conn,
        })
    }

    fn reserve_websocket(&self) -> bool {
        self.websockets
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limits.max_websockets).then_some(n + 1)
            })
            .is_ok()
    }

    fn release_websocket(&self) {
        self.websockets.fetch_sub(1, Ordering::AcqRel);
    }

    fn len(&self) -> usize {
        self.conns().len()
    }

    /// The connection stays after all (it became busy before it saw the request to close).
    fn unshed(&self, conn: &Conn) {
        if conn.shedding.swap(false, Ordering::AcqRel) {
            self.shedding.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Holds a connection's place until its socket is dropped (for a WebSocket: when the upgraded
/// stream is dropped, long after the HTTP connection task ended).
struct Guard {
    tracker: Arc<Tracker>,
    id: u64,
    conn: Arc<Conn>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.conn.upgraded.load(Ordering::Acquire) {
            self.tracker.release_websocket();
        }
        self.tracker.unshed(&self.conn);
        let mut conns = self.tracker.conns();
        conns.remove(&self.id);
        if conns.is_empty() {
            self.tracker.empty.notify_waiters();
        }
    }
}

/// The TCP stream with its place in the tracker.
struct TrackedIo {
    stream: TcpStream,
    _guard: Guard,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Counts a request as in flight until its response body is dropped (sent or abandoned).
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: Arc<Conn>) -> Busy {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.requests.fetch_add(1, Ordering::AcqRel);
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight.
struct TrackedBody {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn too_many_websockets() -> Response<Body> {
    let mut r = crate::error::error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        "the server has as many live connections as it accepts; retry later",
    );
    let h = r.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn handle(
    router: Router,
    tracker: Arc<Tracker>,
    conn: Arc<Conn>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let busy = Busy::new(conn.clone());
    let websocket = is_websocket_upgrade(&req);
    if websocket && !tracker.reserve_websocket() {
        metrics::counter!("inspector_http_websockets_refused_total").increment(1);
        return Ok(too_many_websockets().map(|inner| Body::new(TrackedBody { inner, _busy: busy })));
    }
    let mut req = req.map(Body::new);
    req.extensions_mut().insert(ConnectInfo(peer));
    let response = match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    if websocket {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            // Counted until the upgraded stream (and with it the guard) is dropped.
            conn.upgraded.store(true, Ordering::Release);
        } else {
            tracker.release_websocket();
        }
    }
    Ok(response.map(|inner| Body::new(TrackedBody { inner, _busy: busy })))
}

/// Serves `router` on `listener` until `shutdown` completes, then drains (see the module
/// documentation).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tracker = Arc::new(Tracker {
        limits,
        conns: Mutex::new(BTreeMap::new()),
        next: AtomicU64::new(0),
        websockets: AtomicUsize::new(0),
        shedding: AtomicUsize::new(0),
        empty: Notify::new(),
    });
    let (down_tx, down_rx) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Per-connection failures (reset before accept) are harmless; anything
                    // else (e.g. out of file descriptors) gets a pause, not a busy loop.
                    if !matches!(e.kind(), std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::Interrupted)
                    {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(guard) = tracker.admit() else {
            metrics::counter!("inspector_http_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = guard.conn.clone();
        let io = TokioIo::new(TrackedIo {
            stream,
            _guard: guard,
        });
        let (router, tracker2, tracker3) = (router.clone(), tracker.clone(), tracker.clone());
        let conn2 = conn.clone();
        let service = tower::service_fn(move |req: Request<Incoming>| {
            handle(router.clone(), tracker2.clone(), conn2.clone(), peer, req)
        });
        let serving = builder
            .serve_connection(io, TowerToHyperService::new(service))
            .with_upgrades();
        let mut down = down_rx.clone();
        tokio::spawn(async move {
            tokio::pin!(serving);
            let mut draining = false;
            loop {
                tokio::select! {
                    r = serving.as_mut() => {
                        if let Err(e) = r {
                            tracing::trace!(error = %e, "connection ended with an error");
                        }
                        return;
                    }
                    // Dropping the connection closes the socket; only ever an idle one.
                    _ = conn.shed.notified() => {
                        if conn.idle() {
                            return;
                        }
                        tracker3.unshed(&conn);
                    }
                    _ = down.wait_for(|v| *v), if !draining => {
                        draining = true;
                        serving.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    let _ = down_tx.send(true);
    drop(listener);
    let drained = async {
        loop {
            let empty = tracker.empty.notified();
            tokio::pin!(empty);
            empty.as_mut().enable();
            if tracker.len() == 0 {
                return;
            }
            empty.await;
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::warn!(
            open = tracker.len(),
            "connections still open after the drain timeout"
        );
    }
    Ok(())
}

/// Raises the soft limit of open files to the hard limit and returns the soft limit, so the
/// connection cap can be kept below it (`None` where it cannot be read).
pub fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let mut l = getrlimit(Resource::Nofile);
        if let (Some(cur), Some(max)) = (l.current, l.maximum) {
            if cur < max {
                let raised = Rlimit {
                    current: Some(max),
                    maximum: Some(max),
                };
                if setrlimit(Resource::Nofile, raised).is_ok() {
                    l.current = Some(max);
                }
            }
        }
        l.current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

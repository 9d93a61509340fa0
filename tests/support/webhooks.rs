//! A real HTTP receiver of webhooks for the tests (axum on 127.0.0.1:0): it records every
//! request (headers and body bytes) and answers 200, or 500 for the next `fail_next` ones,
//! with an optional large body or a delay. The signature is checked here independently of
//! the server's code: HMAC-SHA256 with `ring` over `timestamp.body`, as docs/protocol.md says.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub answered: u16,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    fail_next: usize,
    answer_bytes: usize,
    delay: Option<Duration>,
}

/// The receiver; stops when dropped.
pub struct Receiver {
    /// Its URL (`http://127.0.0.1:<port>/hook`).
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hook(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let (status, size, delay) = {
        let mut i = inner.lock().expect("receiver lock");
        let status = if i.fail_next > 0 {
            i.fail_next -= 1;
            500
        } else {
            200
        };
        i.received.push(Received {
            headers,
            body: body.to_vec(),
            answered: status,
            at: std::time::Instant::now(),
        });
        (status, i.answer_bytes, i.delay)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let text = if size > 0 {
        "x".repeat(size)
    } else if status == 500 {
        "receiver is down for the test".into()
    } else {
        "ok".into()
    };
    (StatusCode::from_u16(status).expect("literal status"), text)
}

impl Receiver {
    /// Starts on a free port.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        Self::on(listener)
    }

    /// Starts on a given port (a receiver that comes back after being away).
    pub async fn start_on(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind receiver");
        Self::on(listener)
    }

    fn on(listener: tokio::net::TcpListener) -> Receiver {
        let port = listener.local_addr().expect("receiver addr").port();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            inner,
            task,
        }
    }

    /// The next `n` requests are answered 500.
    pub fn fail_next(&self, n: usize) {
        self.inner.lock().expect("receiver lock").fail_next = n;
    }

    /// Every answer carries `bytes` bytes of body.
    pub fn answer_with(&self, bytes: usize) {
        self.inner.lock().expect("receiver lock").answer_bytes = bytes;
    }

    /// Every answer waits this long first.
    pub fn delay(&self, d: Duration) {
        self.inner.lock().expect("receiver lock").delay = Some(d);
    }

    /// What arrived so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("receiver lock").received.clone()
    }

    /// Waits until `pred` holds for what arrived, at most `within`; returns what arrived.
    pub async fn wait_until(
        &self,
        within: Duration,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.received();
            if pred(&got) {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver waited {within:?} in vain; got {} requests: {:#?}",
                got.len(),
                got.iter()
                    .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Checks `Inspector-Signature: t=…,v1=…` against `secret`, independently of the server: the
/// HMAC-SHA256 over `t.body` with ring, and the timestamp within 300 s of this clock.
pub fn signature_valid(r: &Received, secret: &str) -> bool {
    let Some(h) = r.header("inspector-signature") else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in h.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(tag)) = (t, v1) else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - t).abs() > 300 {
        return false;
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(&r.body);
    ring::hmac::verify(&key, &msg, &tag).is_ok()
}

//! Test support: `spawn_app()` starts a real server on port 0 with a fresh database (SQLite
//! in a temporary directory, or a new PostgreSQL database when `INSPECTOR_TEST_PG_URL` is
//! set), and clients that speak to it like browsers do. Logs only with `TEST_LOG=1`.

/// The password of the users [`App::staff`] creates (a browser signs in with it).
pub const STAFF_PASSWORD: &str = "a long test password";

pub mod act;
pub mod browser;
pub mod fuzz;
pub mod images;
pub mod netbench;
pub mod netns;
pub mod oidc;
pub mod onsite;
pub mod photo;
pub mod presc;
pub mod relay;
pub mod seaweed;
pub mod smtp;
pub mod webhooks;

use std::sync::Once;

use serde_json::{json, Value};
use sqlx::AnyPool;
use tempfile::TempDir;

pub use signaling::auth::Role;

/// A running server and its database.
pub struct TestApp {
    /// `http://127.0.0.1:port`.
    pub address: String,
    /// The public URL the server uses in links (same as address in tests).
    pub public_url: String,
    /// The server's database.
    pub db: AnyPool,
    /// The data directory (recordings).
    pub data_dir: TempDir,
    /// The database URL.
    pub database_url: String,
    /// The configuration the server was built with (before it bound its port), kept for
    /// [`TestApp::restart`].
    config: signaling::Config,
    /// The server's blob store.
    pub blobs: signaling::blobs::BlobStore,
    /// The server's live rooms (its sync and media hubs), for tests that look inside.
    pub live: std::sync::Arc<signaling::live::Live>,
    /// The server's notice service: tests call its `tick` with their own clock.
    pub notify: std::sync::Arc<signaling::notify::Notify>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// Drops the test's PostgreSQL database when the app goes away (last field: dropped last).
    _db_guard: Option<PgDatabaseGuard>,
}

/// A PostgreSQL test database that is dropped with its guard, so that a run of the suite does
/// not leave hundreds of databases behind.
pub struct PgDatabaseGuard {
    admin: String,
    name: String,
}

impl PgDatabaseGuard {
    /// The guard for `url` when it names a database made by [`fresh_database`] or
    /// [`fresh_pg_database`].
    pub fn for_url(url: &str) -> Option<PgDatabaseGuard> {
        let admin = ["INSPECTOR_TEST_PG_URL", "INSPECTOR_TEST_PG_SERVER"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .find(|u| !u.is_empty())?;
        let (_, name) = url.rsplit_once('/')?;
        name.starts_with("t_").then(|| PgDatabaseGuard {
            admin,
            name: name.to_string(),
        })
    }
}

impl Drop for PgDatabaseGuard {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop may run inside the test's runtime, so the cleanup gets its own thread and runtime.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime builds");
            rt.block_on(async {
                sqlx::any::install_default_drivers();
                if let Ok(pool) = sqlx::any::AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin)
                    .await
                {
                    // FORCE ends the stopped server's idle connections.
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                    pool.close().await;
                }
            });
            let _ = done.send(());
        });
        // Bounded, as in checklist-sync's TestDb: a backend still in authentication waits for
        // the test's runtime, and the DROP then finishes on the server without us.
        let _ = finished.recv_timeout(std::time::Duration::from_secs(2));
    }
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            tracing_subscriber::fmt()
                .with_env_filter(
                    std::env::var("RUST_LOG")
                        .unwrap_or_else(|_| "info,webrtc=error,rtc=error,sqlx=warn".into()),
                )
                .with_test_writer()
                .init();
        }
    });
}

/// A fresh database URL: PostgreSQL when `INSPECTOR_TEST_PG_URL` is set, else SQLite in `dir`.
pub async fn fresh_database(dir: &std::path::Path) -> String {
    match std::env::var("INSPECTOR_TEST_PG_URL") {
        Ok(base) if !base.is_empty() => fresh_pg_database(&base).await,
        _ => signaling::config::sqlite_url(&dir.join("inspector.db")),
    }
}

/// The PostgreSQL server of the test run, for the tests that need one on every pass (several
/// nodes): `INSPECTOR_TEST_PG_URL` on the PostgreSQL pass, `INSPECTOR_TEST_PG_SERVER` (set by
/// `scripts/test` for the whole run) otherwise. Panics without either: such a test cannot
/// run on SQLite, and must not pass without running.
pub fn pg_server_url() -> String {
    ["INSPECTOR_TEST_PG_URL", "INSPECTOR_TEST_PG_SERVER"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|u| !u.is_empty())
        .expect("this test needs PostgreSQL: set INSPECTOR_TEST_PG_SERVER (scripts/test does)")
}

/// A fresh database `t_<uuid>` on the PostgreSQL server `base` (a URL ending in
/// `/<database>`), dropped by a [`PgDatabaseGuard`].
pub async fn fresh_pg_database(base: &str) -> String {
    sqlx::any::install_default_drivers();
    let admin = AnyPool::connect(base)
        .await
        .expect("connect to the test PostgreSQL server");
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("create test database");
    admin.close().await;
    let (prefix, _) = base
        .rsplit_once('/')
        .expect("the PostgreSQL URL ends with /<database>");
    format!("{prefix}/{name}")
}

/// Starts the server on 127.0.0.1:0 with a fresh database and data directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with the resolved configuration changed by `adjust` first (blob
/// store, upload limit, clip lengths); a [`TestApp::restart`] keeps the change.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut signaling::Config)) -> TestApp {
    init_logs();
    let data_dir = tempfile::tempdir().expect("temp dir");
    let database_url = fresh_database(data_dir.path()).await;
    let args = signaling::config::ServeArgs {
        listen: Some("127.0.0.1:0".parse().expect("literal address")),
        data_dir: Some(data_dir.path().to_path_buf()),
        database_url: Some(database_url.clone()),
        media_udp: Some("127.0.0.1:0".into()),
        ..Default::default()
    };
    let mut config = signaling::Config::resolve(&args).expect("config");
    adjust(&mut config);
    let guard = PgDatabaseGuard::for_url(&database_url);
    start_on(data_dir, database_url, config, guard).await
}

/// Starts the server with this configuration (on port 0) over this data directory and
/// database.
async fn start_on(
    data_dir: TempDir,
    database_url: String,
    config: signaling::Config,
    db_guard: Option<PgDatabaseGuard>,
) -> TestApp {
    let app = signaling::Application::build(config.clone())
        .await
        .expect("build app");
    let address = format!("http://{}", app.local_addr());
    let public_url = app.state().config.public_url.clone();
    let db = app.state().db.clone();
    let blobs = app.state().blobs.clone();
    let live = app.state().live.clone();
    let notify = app.state().notify.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async move {
            let _ = rx.await;
        })
        .await
        .expect("server runs");
    });
    TestApp {
        address,
        public_url,
        db,
        data_dir,
        database_url,
        config,
        blobs,
        live,
        notify,
        shutdown: Some(tx),
        server: Some(server),
        _db_guard: db_guard,
    }
}

impl TestApp {
    /// Stops the server and starts a new one on the same database and data directory, as a
    /// restart of the process would (what was not committed or written is gone). The new
    /// server has the default configuration.
    pub async fn restart(mut self) -> TestApp {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
        let guard = self._db_guard.take();
        start_on(self.data_dir, self.database_url, self.config, guard).await
    }

    /// A second server on the same database (a node of a cluster), with its own data
    /// directory and the configuration changed by `adjust`.
    pub async fn another_node(&self, adjust: impl FnOnce(&mut signaling::Config)) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse().expect("literal address");
        config.public_url = "http://127.0.0.1:0".into();
        config.data_dir = data_dir.path().to_path_buf();
        config.anchor.key_file = data_dir.path().join("anchor").join("checkpoint.key");
        adjust(&mut config);
        // The first node owns the database and drops it.
        start_on(data_dir, self.database_url.clone(), config, None).await
    }

    /// Creates an account directly in the database.
    pub async fn create_user(&self, username: &str, password: &str, role: Role) -> uuid::Uuid {
        signaling::users::create_user(
            &self.db,
            signaling::users::NewUser {
                username: username.into(),
                display_name: Some(format!("{username} (test)")),
                role,
                password: password.into(),
            },
        )
        .await
        .expect("create user")
        .id
    }

    /// A client with no credentials.
    pub fn anonymous(&self) -> Client {
        Client::new(&self.address)
    }

    /// A client that sends the API token `secret` as `Authorization: Bearer` (no cookies).
    pub fn bearer(&self, secret: &str) -> Client {
        let mut c = Client::new(&self.address);
        c.bearer = Some(secret.to_string());
        c
    }

    /// Creates a user with `role` (password [`STAFF_PASSWORD`]) and logs it in.
    pub async fn staff(&self, username: &str, role: Role) -> Client {
        let password = STAFF_PASSWORD;
        self.create_user(username, password, role).await;
        let mut c = self.anonymous();
        let r = c
            .post_json(
                "/api/auth/login",
                &json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(r.status, 200, "login failed: {}", r.body);
        c.csrf = r.body["csrf_token"].as_str().map(String::from);
        c
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
    }

    /// Everything a refused upload must leave untouched: every table (with the event log)
    /// and the blob store's content keys.
    pub async fn dump_all(&self) -> String {
        use sqlx::Row;
        let mut out = self.dump().await;
        let rows = sqlx::query("SELECT inspection_id, seq, hash FROM events ORDER BY 1, 2")
            .fetch_all(&self.db)
            .await
            .expect("events");
        for r in rows {
            let (i, seq, h): (String, i64, String) = (r.get(0), r.get(1), r.get(2));
            out.push_str(&format!("events|{i}|{seq}|{h}\n"));
        }
        let tmp = self.blobs.temporaries().await.expect("blob temporaries");
        out.push_str(&format!("blob temporaries|{tmp}\n"));
        for b in self.blobs.list().await.expect("blob list") {
            out.push_str(&format!("blob|{b}\n"));
        }
        out
    }

    /// Every row of every foundation table, as text, to prove a rejected request changed
    /// nothing. Login throttling rows are excluded: recording failures is their purpose.
    pub async fn dump(&self) -> String {
        use sqlx::Row;
        let mut out = String::new();
        for (table, cols) in [
            ("users", "id, username, display_name, role, password_hash, disabled, created_at"),
            ("sessions", "token_hash, user_id, csrf_token, created_at, expires_at"),
            ("templates", "id, code, version, title, body"),
            ("template_items", "template_id, item_id, position, number, question"),
            ("inspections", "id, kind, mode, template_id, title, scheduled_at, inspector_id, business_name, business_inn, business_address, site_lat, site_lon, status, created_at, updated_at, started_at, finished_at"),
            ("invitations", "id, inspection_id, token_hash, label, created_by, created_at, expires_at, revoked_at"),
            ("guest_sessions", "token_hash, invitation_id, csrf_token, created_at, expires_at"),
            ("participants", "id, inspection_id, role, user_id, invitation_id, display_name, device, joined_at, last_seen_at"),
            ("users", "id, control_body_id"),
            ("control_bodies", "id, name, region, control_kind, created_at"),
            ("organisations", "id, inn, name, created_at"),
            ("business_links", "id, organisation_id, inspection_id, token_hash, code_hash, label, created_by, created_at, expires_at, used_at, revoked_at"),
            ("business_sessions", "token_hash, organisation_id, link_id, csrf_token, created_at, expires_at"),
            ("prescriptions", "id, inspection_id, business_inn, issued_by, created_at"),
            ("prescription_events", "prescription_id, seq, server_ts, actor_id, kind, payload, prev_hash, hash"),
            ("rating_criteria", "side, version, body, created_by, created_at"),
            ("ratings", "inspection_id, side, control_body_id, inspector_id, business_inn, criteria_version, month, first_seq, first_at, seq, updated_at"),
            ("rating_scores", "inspection_id, side, criterion, score, reasons, note"),
            ("rating_cells", "side, control_body_id, subject, month, criterion, n1, n2, n3, n4, n5, n6, n7, n8, n9, n10"),
            ("rating_cell_reasons", "side, control_body_id, subject, month, criterion, reason, n"),
            ("rating_subject_months", "side, control_body_id, subject, month, ratings"),
            ("users", "id, heads_control_body"),
            ("inspections", "id, erknm_number, external_id"),
            ("api_tokens", "id, name, token_hash, scopes, control_body_id, user_id, created_by, created_at, expires_at, revoked_at"),
            ("webhook_endpoints", "id, url, description, events, sealed_secret, enabled, created_by, created_at, updated_at, deleted_at"),
            ("webhook_events", "id, type, inspection_id, occurred_at, data, dispatched, created_at"),
            ("webhook_deliveries", "id, endpoint_id, event_id, state, attempts, next_at, last_status, last_error, last_response, created_at, updated_at, delivered_at"),
        ] {
            let sql = format!("SELECT {cols} FROM {table} ORDER BY 1, 2");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.db).await.expect("dump");
            for r in rows {
                out.push_str(table);
                for i in 0..r.len() {
                    let v: String = r
                        .try_get::<Option<String>, _>(i)
                        .map(|v| v.unwrap_or_else(|| "NULL".into()))
                        .or_else(|_| r.try_get::<Option<i64>, _>(i).map(|v| v.map(|v| v.to_string()).unwrap_or_else(|| "NULL".into())))
                        .or_else(|_| r.try_get::<Option<f64>, _>(i).map(|v| v.map(|v| v.to_string()).unwrap_or_else(|| "NULL".into())))
                        .unwrap_or_else(|_| "?".into());
                    out.push('|');
                    out.push_str(&v);
                }
                out.push('\n');
            }
        }
        out
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Parsed JSON body (Null when not JSON).
    pub body: Value,
    /// Raw body text.
    pub text: String,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// A cookie-keeping client that sends the CSRF header on writes, like the web front end.
pub struct Client {
    base: String,
    http: reqwest::Client,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
    /// CSRF token from login / accept.
    pub csrf: Option<String>,
    /// An API token sent as `Authorization: Bearer` on every request.
    pub bearer: Option<String>,
}

impl Client {
    /// A new client without cookies.
    pub fn new(base: &str) -> Client {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .build()
            .expect("client");
        Client {
            base: base.to_string(),
            http,
            jar,
            csrf: None,
            bearer: None,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let req = match &self.csrf {
            Some(t) => req.header("x-csrf-token", t),
            None => req,
        };
        let req = match &self.bearer {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            text,
            headers,
        }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// POST with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Answer {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// PUT with a JSON body.
    pub async fn put_json(&self, path: &str, body: &Value) -> Answer {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// GET raw bytes (asserting 200).
    pub async fn download(&self, path: &str) -> Vec<u8> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.bytes().await.expect("body").to_vec()
    }

    /// GET with extra request headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.http.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// POST a JSON body with extra request headers.
    pub async fn post_json_with(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// POST with a raw body and content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    /// POST with a raw body and extra headers.
    pub async fn post_raw_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut req = self.http.post(format!("{}{path}", self.base)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// GET the raw bytes of an answer, with its status and headers.
    pub async fn get_bytes(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        self.get_bytes_with(path, &[]).await
    }

    /// [`Client::get_bytes`] with extra request headers (a `Range`).
    pub async fn get_bytes_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (
            status,
            headers,
            r.bytes().await.unwrap_or_default().to_vec(),
        )
    }

    /// A new invitation to inspection `id` labelled `label`: its join URL.
    pub async fn invite_url(&self, id: &str, label: &str) -> String {
        let r = self
            .post_json(
                &format!("/api/inspections/{id}/invitations"),
                &serde_json::json!({ "label": label }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["url"]
            .as_str()
            .expect("an invitation has a url")
            .to_string()
    }

    /// Creates an inspection (`inspection_body`) with the first bundled checklist template
    /// and returns its id.
    pub async fn create_inspection(&self) -> String {
        let t = self.get("/api/templates").await.body["templates"][0]["id"]
            .as_str()
            .expect("a bundled template")
            .to_string();
        let r = self
            .post_json("/api/inspections", &inspection_body(Some(&t)))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().expect("inspection id").to_string()
    }

    /// Accepts an invitation token (becomes the business's guest session).
    pub async fn accept(&mut self, token: &str) -> Answer {
        let r = self
            .post_json("/api/invitations/accept", &json!({ "token": token }))
            .await;
        if r.status == 200 {
            self.csrf = r.body["csrf_token"].as_str().map(String::from);
        }
        r
    }

    /// Drops one cookie, as a browser whose user cleared it would.
    pub fn forget_cookie(&self, name: &str) {
        let url = self.base.parse().expect("base URL");
        self.jar
            .add_cookie_str(&format!("{name}=; Max-Age=0; Path=/"), &url);
    }

    /// The `Cookie` header this client would send (for WebSocket handshakes).
    pub fn cookie_header(&self) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url = self.base.parse().expect("base URL");
        self.jar
            .cookies(&url)
            .and_then(|v| v.to_str().ok().map(String::from))
    }

    /// A client of another node (`base`) with this one's cookies and CSRF token: the same
    /// browser, sent elsewhere by a load balancer.
    pub fn on(&self, base: &str) -> Client {
        let mut c = Client::new(base);
        let url = base.parse().expect("base URL");
        for pair in self.cookie_header().unwrap_or_default().split("; ") {
            if !pair.is_empty() {
                c.jar.add_cookie_str(&format!("{pair}; Path=/"), &url);
            }
        }
        c.csrf = self.csrf.clone();
        c.bearer = self.bearer.clone();
        c
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }
}

/// A valid inspection body; `template_id` may be null.
pub fn inspection_body(template_id: Option<&str>) -> Value {
    json!({
        "kind": "control",
        "mode": "remote",
        "title": "Плановая проверка",
        "template_id": template_id,
        "scheduled_at": "2026-12-01T09:00:00Z",
        "business": {"name": "ООО «Ромашка»", "inn": "7707083893", "address": "Москва, ул. Тверская, 1", "lat": 55.7577, "lon": 37.6130}
    })
}

/// A WebSocket client of the inspection socket, speaking docs/protocol.md.
pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// Opens the inspection socket with the client's cookies (and a same-origin Origin header).
pub async fn ws_connect(client: &Client, inspection: &str) -> Result<Ws, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!(
        "{}/api/inspections/{inspection}/ws",
        client.base().replacen("http", "ws", 1)
    );
    let mut req = url.into_client_request().expect("ws request");
    if let Some(cookie) = client.cookie_header() {
        req.headers_mut()
            .insert("cookie", cookie.parse().expect("cookie header"));
    }
    req.headers_mut()
        .insert("origin", client.base().parse().expect("origin"));
    match tokio_tungstenite::connect_async(req).await {
        Ok((stream, _)) => Ok(Ws { stream }),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("ws connect: {e}"),
    }
}

impl Ws {
    /// Sends a JSON message.
    pub async fn send(&mut self, v: Value) {
        use futures_util::SinkExt;
        self.stream
            .send(tokio_tungstenite::tungstenite::Message::Text(
                v.to_string().into(),
            ))
            .await
            .expect("ws send");
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, s: String) {
        use futures_util::SinkExt;
        self.stream
            .send(tokio_tungstenite::tungstenite::Message::Text(s.into()))
            .await
            .expect("ws send");
    }

    /// Reads until the socket closes and returns the close code (`None`: closed without a
    /// close frame). Waits at most `within`.
    pub async fn close_code(&mut self, within: std::time::Duration) -> Option<u16> {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let m = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("the socket closes in time");
            match m {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => {
                    return f.map(|f| u16::from(f.code))
                }
                None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next JSON message (10 s at most); `None` when the socket closed.
    pub async fn recv(&mut self) -> Option<Value> {
        use futures_util::StreamExt;
        loop {
            let m = tokio::time::timeout(std::time::Duration::from_secs(10), self.stream.next())
                .await
                .expect("a message within 10 s");
            match m {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                    return Some(serde_json::from_str(&t).expect("server sends JSON"))
                }
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))
                | None
                | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next JSON message if one comes within `wait`: `Err(())` on timeout, `Ok(None)`
    /// when the socket closed (a killed server's socket ends this way).
    pub async fn recv_within(&mut self, wait: std::time::Duration) -> Result<Option<Value>, ()> {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let Ok(m) = tokio::time::timeout_at(deadline, self.stream.next()).await else {
                return Err(());
            };
            match m {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                    return Ok(Some(serde_json::from_str(&t).expect("server sends JSON")))
                }
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))
                | None
                | Some(Err(_)) => return Ok(None),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Skips messages until one satisfies `pred`.
    pub async fn recv_until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let m = self.recv().await.expect("socket open");
            if pred(&m) {
                return m;
            }
        }
    }

    /// Says hello and returns the welcome (reassembled from `welcome_part`s when the server
    /// split it), or the error that came instead.
    pub async fn hello(&mut self, last_seq: Option<u64>) -> Value {
        self.send(json!({"type": "hello", "protocol": 1, "last_seq": last_seq, "client": {"timezone": "Europe/Moscow"}})).await;
        let first = self
            .recv_until(|m| {
                m["type"] == "welcome" || m["type"] == "welcome_part" || m["type"] == "error"
            })
            .await;
        if first["type"] != "welcome_part" {
            return first;
        }
        let count = first["count"].as_u64().expect("welcome_part.count");
        let mut text = String::new();
        let mut part = first;
        for i in 0..count {
            assert_eq!(part["type"], "welcome_part", "parts come back to back");
            assert_eq!(part["index"].as_u64(), Some(i));
            text.push_str(part["data"].as_str().expect("welcome_part.data"));
            if i + 1 < count {
                part = self.recv().await.expect("socket open");
            }
        }
        serde_json::from_str(&text).expect("the parts make a welcome")
    }

    /// Sends an operation and waits for its ack or error.
    pub async fn op(&mut self, op_id: &str, op: Value) -> Value {
        self.send(json!({"type": "op", "op_id": op_id, "op": op}))
            .await;
        self.recv_until(|m| (m["type"] == "ack" || m["type"] == "error") && m["op_id"] == op_id)
            .await
    }
}

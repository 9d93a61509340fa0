//! A real OpenID Connect provider for the sign-in tests: `oidc-provider` from the npm registry
//! (installed by `scripts/test` with `npm ci` into `.cache/`; its `node_modules` is
//! `$OIDC_PROVIDER_MODULES`) run by Node with `tests/support/oidc/provider.mjs`, behind a
//! small proxy in this process. The proxy is the issuer the server talks to and the browser
//! goes through; it passes everything on, and can change the ID token in the token response
//! (re-signed with the provider's own key, or corrupted) or add keys to the key set, so that
//! each ID-token check is tried alone. The provider is killed when dropped.
//!
//! [`Browser`] drives the flow like a browser: a cookie-keeping client that does not follow
//! redirects by itself, and fills in the provider's development login form.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::{json, Value};

/// The client registered at the provider.
pub const CLIENT_ID: &str = "inspector";
/// Its secret.
pub const CLIENT_SECRET: &str = "inspector-test-secret-0123456789";

/// The provider's signing keys (PEM), as it wrote them.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Keys {
    /// RSA key id.
    pub rsa_kid: String,
    /// RSA private key, PKCS#1 PEM.
    pub rsa_pem: String,
    /// P-256 key id.
    pub ec_kid: String,
    /// P-256 private key, PKCS#8 PEM.
    pub ec_pem: String,
}

/// What the proxy does to the ID token of token responses.
pub enum TokenEdit {
    /// Nothing.
    Keep,
    /// Changes the payload and keeps the old signature (a tampered token).
    Corrupt,
    /// Changes the claims and signs again with the provider's RSA key.
    Resign(Box<dyn Fn(&mut Value) + Send + Sync>),
    /// Changes the claims and signs with this key under this `kid` (ES256, PKCS#8 DER).
    ResignEs256 {
        /// The header's `kid`.
        kid: String,
        /// The private key.
        pkcs8: Vec<u8>,
    },
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    keys: Keys,
    edit: Mutex<TokenEdit>,
    extra_jwks: Mutex<Vec<Value>>,
    jwks_fetches: Mutex<u32>,
    last_id_token: Mutex<Option<String>>,
}

/// A running provider and its proxy.
pub struct Provider {
    child: Child,
    /// The issuer (the proxy's URL).
    pub issuer: String,
    /// The provider's keys.
    pub keys: Keys,
    state: Arc<ProxyState>,
    proxy: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.proxy.abort();
    }
}

/// Where `npm ci` put the provider's modules.
fn modules_dir() -> PathBuf {
    match std::env::var("OIDC_PROVIDER_MODULES") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../.cache/oidc-provider-9.13.3/node_modules"),
    }
}

/// The proxy's port, bound before the server starts (the server needs the issuer, the
/// provider the server's callback URL).
pub struct Slot {
    listener: tokio::net::TcpListener,
    /// The issuer the provider will have.
    pub issuer: String,
}

impl Provider {
    /// Binds the proxy's port: the issuer is known from now on.
    pub async fn bind() -> Result<Slot> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let issuer = format!("http://{}", listener.local_addr()?);
        Ok(Slot { listener, issuer })
    }
}

impl Slot {
    /// Starts the provider for a server whose public URL is `public_url`, with `accounts`
    /// (account id → claims) and ID tokens signed with `alg` (RS256 or ES256). Fails (never
    /// skips) when the provider's modules are missing.
    pub async fn start(self, public_url: &str, accounts: Value, alg: &str) -> Result<Provider> {
        let Slot {
            listener: proxy_listener,
            issuer,
        } = self;
        let modules = modules_dir();
        if !modules.join("oidc-provider").join("package.json").exists() {
            bail!(
                "oidc-provider is not installed at {} (run ./scripts/test, or set OIDC_PROVIDER_MODULES)",
                modules.display()
            );
        }
        let dir = tempfile::tempdir()?;
        let keys_out = dir.path().join("keys.json");
        let config = json!({
            "issuer": issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": format!("{public_url}/api/auth/oidc/callback"),
            "keys_out": keys_out,
            "modules_dir": modules,
            "alg": alg,
            "accounts": accounts,
        });
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/oidc/provider.mjs");
        let log_path = dir.path().join("provider.log");
        // Starting takes under a second here. Rarely a start hangs in node itself before it
        // writes its keys (twice in some two hundred starts: Node 20 sleeping in a futex after
        // 0.3 s of CPU, inside the import of oidc-provider 9, which warns that it wants Node
        // 22): such a start is killed, reported on stderr, and tried once more. The helper is
        // restarted, never a request of the test; a second hang fails the test.
        let mut attempt = 1;
        let (child, port) = loop {
            let deadline = Duration::from_secs(if attempt == 1 { 20 } else { 60 });
            match start_node(&script, &config, &log_path, &keys_out, deadline).await? {
                Ok(started) => break started,
                Err(hang) if attempt == 1 => {
                    eprintln!("oidc test provider: {hang}; starting it again");
                    attempt += 1;
                }
                Err(hang) => bail!("{hang}"),
            }
        };
        let keys: Keys = serde_json::from_slice(&std::fs::read(&keys_out)?)?;
        let state = Arc::new(ProxyState {
            upstream: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            keys: keys.clone(),
            edit: Mutex::new(TokenEdit::Keep),
            extra_jwks: Mutex::new(Vec::new()),
            jwks_fetches: Mutex::new(0),
            last_id_token: Mutex::new(None),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let proxy = tokio::spawn(async move {
            let _ = axum::serve(proxy_listener, app).await;
        });
        Ok(Provider {
            child,
            issuer,
            keys,
            state,
            proxy,
            _dir: dir,
        })
    }
}

/// Spawns the provider and waits up to `deadline` for its ready line and its keys: the
/// child and its port, `Ok(Err(what))` when it hung (the child killed, what it was doing in
/// the message), `Err` when it could not be spawned or exited.
async fn start_node(
    script: &std::path::Path,
    config: &Value,
    log_path: &std::path::Path,
    keys_out: &std::path::Path,
    deadline: Duration,
) -> Result<std::result::Result<(std::process::Child, u16), String>> {
    let _ = std::fs::remove_file(keys_out);
    let log = std::fs::File::create(log_path)?;
    let mut child = Command::new("node")
        .arg(script)
        .env("OIDC_TEST_CONFIG", config.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("spawn node (Debian's nodejs)")?;
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(log_path).unwrap_or_default();
        if let Some(status) = child.try_wait()? {
            bail!("the provider exited with {status}: {log}");
        }
        let port = log
            .lines()
            .find_map(|l| l.strip_prefix("ready ")?.trim().parse::<u16>().ok());
        if let (Some(port), true) = (port, keys_out.exists()) {
            return Ok(Ok((child, port)));
        }
        if started.elapsed() > deadline {
            // What the process was doing, so that a slow start can be told from a hang.
            let pid = child.id();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Err(format!(
                "the provider did not start in {:?} (keys written: {}; stat: {stat}; wchan: {wchan}): {log}",
                started.elapsed(),
                keys_out.exists()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Provider {
    /// What the proxy does to the next token responses' ID tokens.
    pub fn edit_tokens(&self, edit: TokenEdit) {
        *self.state.edit.lock().expect("edit lock") = edit;
    }

    /// Replaces the keys the proxy adds to the key set.
    pub fn set_extra_jwks(&self, keys: Vec<Value>) {
        *self.state.extra_jwks.lock().expect("jwks lock") = keys;
    }

    /// Adds a public key to the key set the proxy serves.
    pub fn add_jwk(&self, jwk: Value) {
        self.state.extra_jwks.lock().expect("jwks lock").push(jwk);
    }

    /// The header of the last ID token the provider issued (before any edit).
    pub fn last_id_token_header(&self) -> Value {
        let t = self.state.last_id_token.lock().expect("token lock").clone();
        let t = t.expect("an ID token was issued");
        serde_json::from_slice(&unb64(t.split('.').next().expect("header"))).expect("JSON header")
    }

    /// How many times the key set was fetched through the proxy.
    pub fn jwks_fetches(&self) -> u32 {
        *self.state.jwks_fetches.lock().expect("count lock")
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url")
}

/// The claims of a compact JWS (unverified: the test reads what it is about to change).
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWS has a payload");
    serde_json::from_slice(&unb64(payload)).expect("JSON claims")
}

fn edit_id_token(st: &ProxyState, token: &str) -> String {
    let edit = st.edit.lock().expect("edit lock");
    match &*edit {
        TokenEdit::Keep => token.to_string(),
        TokenEdit::Corrupt => {
            let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
            let mut claims = claims_of(token);
            claims["sub"] = json!("mallory");
            parts[1] = b64(claims.to_string().as_bytes());
            parts.join(".")
        }
        TokenEdit::Resign(f) => {
            let mut claims = claims_of(token);
            f(&mut claims);
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
            header.kid = Some(st.keys.rsa_kid.clone());
            let key = jsonwebtoken::EncodingKey::from_rsa_pem(st.keys.rsa_pem.as_bytes())
                .expect("the provider's RSA key");
            jsonwebtoken::encode(&header, &claims, &key).expect("sign")
        }
        TokenEdit::ResignEs256 { kid, pkcs8 } => {
            let claims = claims_of(token);
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            header.kid = Some(kid.clone());
            let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8);
            jsonwebtoken::encode(&header, &claims, &key).expect("sign")
        }
    }
}

/// Passes a request on to the provider, changing token responses and the key set as told.
async fn forward(State(st): State<Arc<ProxyState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).expect("method");
    let mut out = st.http.request(method, format!("{}{path}", st.upstream));
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let resp = match out.body(body.to_vec()).send().await {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(502)
                .body(Body::from(e.to_string()))
                .expect("response")
        }
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut bytes = resp.bytes().await.unwrap_or_default().to_vec();
    let p = parts.uri.path();
    if p == "/token" && status == 200 {
        let mut v: Value = serde_json::from_slice(&bytes).expect("token JSON");
        if let Some(t) = v["id_token"].as_str().map(str::to_string) {
            *st.last_id_token.lock().expect("token lock") = Some(t.clone());
            v["id_token"] = json!(edit_id_token(&st, &t));
        }
        bytes = v.to_string().into_bytes();
    }
    if p == "/jwks" {
        *st.jwks_fetches.lock().expect("count lock") += 1;
        let extra = st.extra_jwks.lock().expect("jwks lock").clone();
        if !extra.is_empty() {
            let mut v: Value = serde_json::from_slice(&bytes).expect("JWKS JSON");
            if let Some(keys) = v["keys"].as_array_mut() {
                keys.extend(extra);
            }
            bytes = v.to_string().into_bytes();
        }
    }
    let mut b = Response::builder().status(status);
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            b = b.header(name.as_str(), value.as_bytes());
        }
    }
    b.body(Body::from(bytes)).expect("response")
}

/// A browser: keeps cookies, follows redirects one at a time.
pub struct Browser {
    http: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    /// The server's base URL.
    pub base: String,
}

/// Where a sign-in ended.
#[derive(Debug)]
pub struct Landing {
    /// The server's last `Location` (`/#/list`, or `/?login_error=<code>#/login`).
    pub location: String,
}

impl Landing {
    /// The refusal's code, if any.
    pub fn error(&self) -> Option<String> {
        let q = self.location.split_once("login_error=")?.1;
        Some(q.split(['&', '#']).next().unwrap_or_default().to_string())
    }
}

fn absolute(base: &str, location: &str) -> String {
    reqwest::Url::parse(base)
        .and_then(|b| b.join(location))
        .expect("a location")
        .to_string()
}

impl Browser {
    /// A new browser for the server at `base`.
    pub fn new(base: &str) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Browser {
            http,
            jar,
            base: base.to_string(),
        }
    }

    /// Clicks "Sign in with …": the provider's authorization URL.
    pub async fn start(&self) -> String {
        let r = self
            .http
            .get(format!("{}/api/auth/oidc/start", self.base))
            .send()
            .await
            .expect("start");
        assert_eq!(r.status().as_u16(), 303, "start: {:?}", r.text().await);
        r.headers()["location"]
            .to_str()
            .expect("location")
            .to_string()
    }

    /// At the provider: signs in as `account` and returns the callback URL it redirects to
    /// (not yet opened).
    pub async fn authorize(&self, auth_url: &str, account: &str) -> String {
        let mut url = auth_url.to_string();
        for _ in 0..10 {
            let r = self.http.get(&url).send().await.expect("provider");
            let status = r.status().as_u16();
            if status == 200 && url.contains("/interaction/") {
                // The development login form: its submit URL is the interaction's own.
                let r = self
                    .http
                    .post(&url)
                    .form(&[("prompt", "login"), ("login", account), ("password", "any")])
                    .send()
                    .await
                    .expect("login form");
                assert!(
                    r.status().is_redirection(),
                    "login form answered {}",
                    r.status()
                );
                url = absolute(&url, r.headers()["location"].to_str().expect("location"));
                continue;
            }
            assert!(
                r.status().is_redirection(),
                "provider answered {status} at {url}: {}",
                r.text().await.unwrap_or_default()
            );
            let next = absolute(&url, r.headers()["location"].to_str().expect("location"));
            if next.starts_with(&format!("{}/api/auth/oidc/callback", self.base)) {
                return next;
            }
            url = next;
        }
        panic!("the provider never redirected back");
    }

    /// Opens the callback URL at the server.
    pub async fn callback(&self, callback_url: &str) -> Landing {
        let r = self.http.get(callback_url).send().await.expect("callback");
        assert_eq!(r.status().as_u16(), 303, "callback: {:?}", r.text().await);
        Landing {
            location: r.headers()["location"]
                .to_str()
                .expect("location")
                .to_string(),
        }
    }

    /// The whole sign-in as `account`.
    pub async fn sign_in(&self, account: &str) -> Landing {
        let auth = self.start().await;
        let cb = self.authorize(&auth, account).await;
        self.callback(&cb).await
    }

    /// `GET` at the server, with this browser's cookies: status and JSON.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("get");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// The query parameters of a URL.
    pub fn params(url: &str) -> HashMap<String, String> {
        reqwest::Url::parse(url)
            .expect("url")
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The cookies the server would get.
    pub fn cookies(&self) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url = self.base.parse().expect("base url");
        self.jar
            .cookies(&url)
            .and_then(|v| v.to_str().ok().map(str::to_string))
    }
}

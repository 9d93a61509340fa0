//! OpenID Connect sign-in for staff: the authorization code flow with PKCE (S256), `state` and
//! `nonce`, against a provider found by discovery; its ID token is verified against its key
//! set (`jsonwebtoken`, RS256/ES256) and mapped to an account and role.
//!
//! `GET /api/auth/oidc/start` remembers a pending sign-in (bounded in count and time, in this
//! process: a sign-in returns to the node that began it) bound to this browser by a random
//! cookie, and sends the browser to the provider. `GET /api/auth/oidc/callback` takes the
//! pending sign-in (once), exchanges the code, verifies the token and starts the same staff
//! session as a password login (`users::start_session`). Every refusal sends the browser back
//! to the login page with a stable code (`?login_error=…`), which the page says in ru/en.
//! The account is found by the provider's issuer and subject (`oidc_identities`), never by
//! e-mail or name.

pub mod config;
pub mod ext;
mod token;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use uuid::Uuid;

pub use config::OidcConfig;
pub use ext::ClientAuth;

use crate::auth::{self, Role};
use crate::db::{now_micros, RowExt};
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// The cookie binding a pending sign-in to the browser that began it. SameSite=Lax: the
/// provider's redirect back is a cross-site navigation, which drops Strict cookies.
pub const BINDING_COOKIE: &str = "inspector_oidc";
/// Where the provider sends the browser back (below the public URL).
pub const CALLBACK_PATH: &str = "/api/auth/oidc/callback";

/// Largest discovery document, token response or ID token accepted.
const MAX_DOC_BYTES: usize = 64 * 1024;
/// Largest key set accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Keys in a key set, at most.
const MAX_JWKS_KEYS: usize = 64;

/// Why a sign-in through the provider was refused. Each has a stable code; the detail is
/// logged, never shown.
#[derive(Debug)]
pub enum Refusal {
    /// No pending sign-in has this `state` (expired, already used, or never begun here).
    StateUnknown,
    /// The `state` belongs to a sign-in begun by another browser (or an older tab).
    StateMismatch,
    /// The provider answered with an error (the user cancelled, or the provider refused).
    ProviderRefused(String),
    /// The provider could not be reached, or answered something unusable.
    ProviderUnreachable(String),
    /// The token endpoint refused the code (used before, expired, or not ours).
    CodeRejected(String),
    /// The ID token is malformed, its signature does not verify, or a claim is missing.
    TokenInvalid(String),
    /// The ID token names another issuer.
    WrongIssuer,
    /// The ID token is for another client (`aud`, or `azp` with several audiences).
    WrongAudience,
    /// The ID token has expired (or is dated in the future).
    TokenExpired,
    /// The ID token's `nonce` is not this sign-in's.
    NonceMismatch,
    /// The subject is linked to no account and provisioning is off.
    UnknownAccount,
    /// None of the subject's role claim values is mapped and there is no default role.
    NoRole,
    /// The linked account is disabled.
    AccountDisabled,
    /// Too many sign-ins are pending.
    Busy,
    /// A database failure.
    Internal(String),
}

impl Refusal {
    /// The stable code (rendered in ru/en by the login page, `web/i18n.js` `error.*`).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::StateUnknown => "oidc_state_unknown",
            Refusal::StateMismatch => "oidc_state_mismatch",
            Refusal::ProviderRefused(_) => "oidc_provider_refused",
            Refusal::ProviderUnreachable(_) => "oidc_provider_unreachable",
            Refusal::CodeRejected(_) => "oidc_code_rejected",
            Refusal::TokenInvalid(_) => "oidc_token_invalid",
            Refusal::WrongIssuer => "oidc_wrong_issuer",
            Refusal::WrongAudience => "oidc_wrong_audience",
            Refusal::TokenExpired => "oidc_token_expired",
            Refusal::NonceMismatch => "oidc_nonce_mismatch",
            Refusal::UnknownAccount => "oidc_unknown_account",
            Refusal::NoRole => "oidc_no_role",
            Refusal::AccountDisabled => "oidc_account_disabled",
            Refusal::Busy => "oidc_busy",
            Refusal::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        Refusal::Internal(e.to_string())
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Internal(e.to_string())
    }
}

/// A sign-in sent to the provider and not yet back.
struct Pending {
    /// The client address's throttling key (`users::address_key`).
    addr: String,
    binding_hash: String,
    nonce: String,
    verifier: String,
    begun: Instant,
    begun_unix: i64,
}

/// What discovery says (the parts used).
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

struct Cached<T> {
    value: T,
    fetched: Instant,
}

/// The provider's client: configuration, pending sign-ins, cached discovery and keys.
pub struct Oidc {
    cfg: OidcConfig,
    redirect_uri: String,
    secure: bool,
    http: reqwest::Client,
    client_auth: Box<dyn ClientAuth>,
    pending: Mutex<HashMap<String, Pending>>,
    discovery: tokio::sync::Mutex<Option<Cached<Discovery>>>,
    jwks: tokio::sync::Mutex<Option<Cached<jsonwebtoken::jwk::JwkSet>>>,
    /// The raw key set, for [`ClientAuth::verify_signature`].
    jwks_raw: Mutex<serde_json::Value>,
}

impl Oidc {
    /// The client for `cfg`, returning to `public_url` + [`CALLBACK_PATH`].
    pub fn new(cfg: &OidcConfig, public_url: &str) -> anyhow::Result<Oidc> {
        let http = reqwest::Client::builder()
            // Discovery, keys and tokens come from the configured provider only.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(Oidc {
            client_auth: Box::new(ext::SecretOrPublic {
                client_id: cfg.client_id.clone(),
                secret: cfg.client_secret.clone(),
            }),
            cfg: cfg.clone(),
            redirect_uri: format!("{public_url}{CALLBACK_PATH}"),
            secure: public_url.starts_with("https://"),
            http,
            pending: Mutex::new(HashMap::new()),
            discovery: tokio::sync::Mutex::new(None),
            jwks: tokio::sync::Mutex::new(None),
            jwks_raw: Mutex::new(serde_json::Value::Null),
        })
    }

    /// Replaces the client authentication (the ЕСИА extension point, `ext`).
    pub fn with_client_auth(mut self, auth: Box<dyn ClientAuth>) -> Oidc {
        self.client_auth = auth;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.cfg
    }

    /// Sign-ins pending now (tests read the bound).
    pub fn pending_count(&self) -> usize {
        self.lock_pending().len()
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        // A panic while holding the map cannot leave it inconsistent (single inserts and
        // removes), so a poisoned lock is used as is.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn issuer(&self) -> &str {
        self.cfg.issuer.as_deref().unwrap_or_default()
    }

    async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        max: usize,
    ) -> Result<T, Refusal> {
        let unreachable = |e: String| Refusal::ProviderUnreachable(format!("{url}: {e}"));
        let resp = self
            .http
            .get(url)
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(unreachable(format!("status {}", resp.status())));
        }
        let body = read_bounded(resp, max).await.map_err(unreachable)?;
        serde_json::from_slice(&body).map_err(|e| unreachable(e.to_string()))
    }

    /// Discovery, cached for `cache_secs`.
    async fn discovery(&self) -> Result<Discovery, Refusal> {
        let mut cached = self.discovery.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.fetched.elapsed() < Duration::from_secs(self.cfg.cache_secs) {
                return Ok(c.value.clone());
            }
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer().trim_end_matches('/')
        );
        let d: Discovery = self.fetch_json(&url, MAX_DOC_BYTES).await?;
        // OpenID Connect Discovery §4.3: the document must name the issuer it was read from.
        if d.issuer != self.issuer() {
            return Err(Refusal::ProviderUnreachable(format!(
                "discovery names issuer {:?}, not the configured one",
                d.issuer
            )));
        }
        if let Some(methods) = &d.code_challenge_methods_supported {
            if !methods.iter().any(|m| m == "S256") {
                return Err(Refusal::ProviderUnreachable(
                    "the provider does not support PKCE S256".into(),
                ));
            }
        }
        *cached = Some(Cached {
            value: d.clone(),
            fetched: Instant::now(),
        });
        Ok(d)
    }

    /// The key set: cached for `cache_secs`; `refresh` (an unknown `kid`) fetches it again,
    /// but not more often than every `jwks_refetch_secs`, so that tokens naming made-up keys
    /// cannot make this server hammer the provider.
    async fn jwks(
        &self,
        d: &Discovery,
        refresh: bool,
    ) -> Result<(jsonwebtoken::jwk::JwkSet, bool), Refusal> {
        let mut cached = self.jwks.lock().await;
        if let Some(c) = cached.as_ref() {
            let age = c.fetched.elapsed();
            let fresh = age < Duration::from_secs(self.cfg.cache_secs);
            let recent = age < Duration::from_secs(self.cfg.jwks_refetch_secs);
            if (fresh && !refresh) || recent {
                return Ok((c.value.clone(), false));
            }
        }
        let raw: serde_json::Value = self.fetch_json(&d.jwks_uri, MAX_JWKS_BYTES).await?;
        let n = raw["keys"].as_array().map_or(0, Vec::len);
        if n > MAX_JWKS_KEYS {
            return Err(Refusal::ProviderUnreachable(format!(
                "the key set has {n} keys (at most {MAX_JWKS_KEYS})"
            )));
        }
        // Keys of kinds this server does not know (e.g. GOST, for `ClientAuth`) are skipped,
        // not fatal.
        let keys = raw["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone()).ok())
            .collect();
        let set = jsonwebtoken::jwk::JwkSet { keys };
        *self.jwks_raw.lock().unwrap_or_else(|p| p.into_inner()) = raw;
        *cached = Some(Cached {
            value: set.clone(),
            fetched: Instant::now(),
        });
        Ok((set, true))
    }

    /// Begins a sign-in: the provider's authorization URL and the binding cookie's value.
    async fn begin(&self, addr: String) -> Result<(String, String), Refusal> {
        let d = self.discovery().await?;
        let state = auth::new_token();
        let nonce = auth::new_token();
        // 43 characters of the URL-safe alphabet: a valid PKCE verifier (RFC 7636 §4.1).
        let verifier = auth::new_token();
        let binding = auth::new_token();
        {
            let mut pending = self.lock_pending();
            let ttl = Duration::from_secs(self.cfg.pending_ttl_secs);
            if pending.len() >= self.cfg.max_pending / 2 {
                pending.retain(|_, p| p.begun.elapsed() < ttl);
            }
            // One address cannot take every place (a page that opens the start URL in a loop).
            let from_addr = pending.values().filter(|p| p.addr == addr).count();
            if pending.len() >= self.cfg.max_pending
                || from_addr >= self.cfg.max_pending_per_address
            {
                return Err(Refusal::Busy);
            }
            pending.insert(
                state.clone(),
                Pending {
                    addr,
                    binding_hash: auth::hash_token(&binding),
                    nonce: nonce.clone(),
                    verifier: verifier.clone(),
                    begun: Instant::now(),
                    begun_unix: now_micros() / 1_000_000,
                },
            );
        }
        let challenge = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(verifier.as_bytes()))
        };
        let mut scopes = self.cfg.scopes.clone();
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        let mut params: Vec<(String, String)> = vec![
            ("response_type".into(), "code".into()),
            ("client_id".into(), self.cfg.client_id.clone()),
            ("redirect_uri".into(), self.redirect_uri.clone()),
            ("scope".into(), scopes.join(" ")),
            ("state".into(), state.clone()),
            ("nonce".into(), nonce),
            ("code_challenge".into(), challenge),
            ("code_challenge_method".into(), "S256".into()),
        ];
        self.client_auth
            .authorization_params(&mut params)
            .map_err(|e| Refusal::Internal(format!("client authentication: {e}")))?;
        let url = reqwest::Url::parse_with_params(&d.authorization_endpoint, &params)
            .map_err(|e| Refusal::ProviderUnreachable(format!("authorization endpoint: {e}")))?;
        Ok((url.to_string(), binding))
    }

    /// Takes the pending sign-in of `state` if this browser began it.
    fn take_pending(&self, state: &str, binding: Option<&str>) -> Result<Pending, Refusal> {
        let mut pending = self.lock_pending();
        let ttl = Duration::from_secs(self.cfg.pending_ttl_secs);
        let p = pending.get(state).ok_or(Refusal::StateUnknown)?;
        if p.begun.elapsed() >= ttl {
            pending.remove(state);
            return Err(Refusal::StateUnknown);
        }
        let ours = binding.is_some_and(|b| {
            auth::constant_time_eq(auth::hash_token(b).as_bytes(), p.binding_hash.as_bytes())
        });
        if !ours {
            // Left in place: another browser's stray callback must not cancel this one's.
            return Err(Refusal::StateMismatch);
        }
        pending.remove(state).ok_or(Refusal::StateUnknown)
    }

    /// Exchanges the code at the token endpoint; returns the ID token.
    async fn exchange(&self, d: &Discovery, code: &str, p: &Pending) -> Result<String, Refusal> {
        let mut params: Vec<(String, String)> = vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code.into()),
            ("redirect_uri".into(), self.redirect_uri.clone()),
            ("code_verifier".into(), p.verifier.clone()),
        ];
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, "application/json".parse().expect("literal"));
        self.client_auth
            .token_request(&mut params, &mut headers)
            .map_err(|e| Refusal::Internal(format!("client authentication: {e}")))?;
        let unreachable = |e: String| Refusal::ProviderUnreachable(format!("token endpoint: {e}"));
        let resp = self
            .http
            .post(&d.token_endpoint)
            .headers(headers)
            .form(&params)
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status();
        let body = read_bounded(resp, MAX_DOC_BYTES)
            .await
            .map_err(unreachable)?;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if status.is_client_error() {
            // RFC 6749 §5.2: invalid_grant is a used, expired or foreign code (or verifier).
            return Err(Refusal::CodeRejected(format!(
                "{status}: {}",
                json["error"].as_str().unwrap_or("no error code")
            )));
        }
        if !status.is_success() {
            return Err(unreachable(format!("status {status}")));
        }
        json["id_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Refusal::TokenInvalid("no id_token in the token response".into()))
    }

    /// The callback's work: pending sign-in → code → verified claims → account id.
    async fn finish(
        &self,
        db: &AnyPool,
        params: &HashMap<String, String>,
        binding: Option<&str>,
    ) -> Result<Uuid, Refusal> {
        let state = params.get("state").ok_or(Refusal::StateUnknown)?;
        let pending = self.take_pending(state, binding)?;
        if let Some(err) = params.get("error") {
            return Err(Refusal::ProviderRefused(err.chars().take(200).collect()));
        }
        let code = params
            .get("code")
            .ok_or_else(|| Refusal::ProviderRefused("no code".into()))?;
        let d = self.discovery().await?;
        let id_token = self.exchange(&d, code, &pending).await?;
        let claims = self.verify(&d, &id_token, &pending).await?;
        self.account(db, &claims).await
    }

    /// The role the claims give: the strongest mapped value of `role_claim`, else the default.
    /// `None` when no role claim is configured (a linked account keeps its stored role).
    fn role_of(&self, claims: &serde_json::Value) -> Result<Option<Role>, Refusal> {
        let Some(claim) = &self.cfg.role_claim else {
            return Ok(None);
        };
        let values: Vec<&str> = match &claims[claim.as_str()] {
            serde_json::Value::String(s) => vec![s.as_str()],
            serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        let rank = |r: Role| match r {
            Role::Inspector => 0,
            Role::Reviewer => 1,
            Role::Admin => 2,
        };
        values
            .iter()
            .filter_map(|v| self.cfg.roles.get(*v).copied())
            .max_by_key(|r| rank(*r))
            .or(self.cfg.default_role)
            .map(Some)
            .ok_or(Refusal::NoRole)
    }

    /// The account of the verified claims: the linked one (its role and e-mail updated), or a
    /// new one with provisioning on.
    async fn account(&self, db: &AnyPool, claims: &serde_json::Value) -> Result<Uuid, Refusal> {
        let sub = claims["sub"].as_str().unwrap_or_default();
        let issuer = self.issuer();
        let role = self.role_of(claims)?;
        let email = claims["email"]
            .as_str()
            .map(|e| e.chars().take(320).collect::<String>());
        let now = now_micros();
        let mut tx = crate::db::begin(&db).await?;
        let row = sqlx::query(
            "SELECT u.id, u.disabled FROM oidc_identities o JOIN users u ON u.id = o.user_id \
             WHERE o.issuer = $1 AND o.subject = $2",
        )
        .bind(issuer)
        .bind(sub)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = row {
            let id: String = row.col(0)?;
            if row.col::<i64>(1)? != 0 {
                return Err(Refusal::AccountDisabled);
            }
            if let Some(role) = role {
                // The provider is the source of truth for the role of its subjects.
                sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                    .bind(role.as_str())
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "UPDATE oidc_identities SET email = $1, last_login_at = $2 \
                 WHERE issuer = $3 AND subject = $4",
            )
            .bind(&email)
            .bind(now)
            .bind(issuer)
            .bind(sub)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Uuid::parse_str(&id).map_err(|e| Refusal::Internal(e.to_string()));
        }
        if !self.cfg.jit_provisioning {
            return Err(Refusal::UnknownAccount);
        }
        let role = role.or(self.cfg.default_role).ok_or(Refusal::NoRole)?;
        let base = username_from(claims, &self.cfg.username_claim, issuer, sub);
        let display = claims[self.cfg.display_name_claim.as_str()]
            .as_str()
            .map(|s| s.trim().chars().take(200).collect::<String>())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| base.clone());
        let id = Uuid::new_v4();
        // A name taken by another account (a local one, or another subject's) is never
        // reused: the new account gets a suffix derived from its subject.
        let suffixed = format!(
            "{}-{}",
            truncate(&base, 55),
            &subject_hash(issuer, sub)[..8]
        );
        let mut created = false;
        for username in [base.as_str(), suffixed.as_str()] {
            let r = sqlx::query(
                "INSERT INTO users (id, username, display_name, role, password_hash, disabled, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6) ON CONFLICT (username) DO NOTHING",
            )
            .bind(id.to_string())
            .bind(username)
            .bind(&display)
            .bind(role.as_str())
            // Not an argon2 hash: no password ever verifies against it.
            .bind("!oidc")
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() == 1 {
                created = true;
                break;
            }
        }
        if !created {
            return Err(Refusal::Internal(format!(
                "no free user name for subject (tried {base:?}, {suffixed:?})"
            )));
        }
        let linked = sqlx::query(
            "INSERT INTO oidc_identities (issuer, subject, user_id, email, created_at, last_login_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (issuer, subject) DO NOTHING",
        )
        .bind(issuer)
        .bind(sub)
        .bind(id.to_string())
        .bind(&email)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if linked.rows_affected() == 0 {
            // A concurrent first sign-in of the same subject provisioned it: use that one.
            drop(tx);
            return Box::pin(self.account(db, claims)).await;
        }
        tx.commit().await?;
        tracing::info!(user = %id, role = role.as_str(), "oidc: provisioned an account");
        Ok(id)
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn subject_hash(issuer: &str, sub: &str) -> String {
    hex::encode(Sha256::digest(format!("{issuer}\n{sub}").as_bytes()))
}

/// A valid user name (3–64 of letters, digits, `.`, `_`, `-`) from the claims.
fn username_from(claims: &serde_json::Value, claim: &str, issuer: &str, sub: &str) -> String {
    let email_local = claims["email"]
        .as_str()
        .and_then(|e| e.split('@').next())
        .map(str::to_string);
    let raw = claims[claim]
        .as_str()
        .map(str::to_string)
        .or(email_local)
        .unwrap_or_else(|| sub.to_string());
    let clean: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if clean.chars().count() >= 3 {
        clean
    } else {
        format!("oidc-{}", &subject_hash(issuer, sub)[..12])
    }
}

/// Reads a response body of at most `max` bytes.
async fn read_bounded(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("answer larger than {max} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err(format!("answer larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Links an account to a provider's subject (`inspector user link-oidc`): with provisioning
/// off, the only way a subject gets in. Returns false when the account does not exist.
pub async fn link(
    db: &AnyPool,
    username_or_id: &str,
    issuer: &str,
    subject: &str,
) -> ApiResult<bool> {
    let Some(row) = sqlx::query("SELECT id FROM users WHERE username = $1 OR id = $1")
        .bind(username_or_id)
        .fetch_optional(db)
        .await?
    else {
        return Ok(false);
    };
    let id: String = row.col(0)?;
    let r = sqlx::query(
        "INSERT INTO oidc_identities (issuer, subject, user_id, email, created_at, last_login_at) \
         VALUES ($1, $2, $3, NULL, $4, NULL) ON CONFLICT (issuer, subject) DO NOTHING",
    )
    .bind(issuer)
    .bind(subject)
    .bind(&id)
    .bind(now_micros())
    .execute(db)
    .await?;
    if r.rows_affected() == 0 {
        return Err(ApiError::Conflict {
            code: "oidc_subject_linked",
            message: "this subject is already linked to an account".into(),
        });
    }
    Ok(true)
}

/// How staff may sign in, for the login page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignInMethods {
    /// Whether user name and password work.
    pub password: bool,
    /// The identity provider, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcMethod>,
}

/// The identity provider's button.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OidcMethod {
    /// "Sign in with <name>".
    pub name: String,
    /// Where the button goes.
    pub start_url: String,
}

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/methods", get(methods))
        .route("/api/auth/oidc/start", get(start))
        .route(CALLBACK_PATH, get(callback))
}

/// How staff may sign in (public: the login page asks before anyone is signed in).
#[utoipa::path(get, path = "/api/auth/methods", tag = "auth",
    responses((status = 200, body = SignInMethods)))]
pub async fn methods(State(state): State<AppState>) -> Json<SignInMethods> {
    let cfg = &state.config.oidc;
    Json(SignInMethods {
        password: cfg.password_login,
        oidc: cfg.enabled().then(|| OidcMethod {
            name: cfg.provider_name.clone(),
            start_url: "/api/auth/oidc/start".into(),
        }),
    })
}

/// Where a refused sign-in lands: the login page, which says the code in the reader's words.
fn to_login(refusal: &Refusal, secure: bool) -> Response {
    match refusal {
        Refusal::Internal(d) | Refusal::ProviderUnreachable(d) => {
            tracing::error!(code = refusal.code(), detail = %d, "oidc: sign-in failed")
        }
        other => tracing::warn!(code = other.code(), detail = ?other, "oidc: sign-in refused"),
    }
    metrics::counter!("inspector_oidc_refused_total", "code" => refusal.code()).increment(1);
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::LOCATION,
                format!("/?login_error={}#/login", refusal.code()),
            ),
            (header::SET_COOKIE, binding_cookie("", 0, secure)),
        ],
    )
        .into_response()
}

fn binding_cookie(value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{BINDING_COOKIE}={value}; Path={CALLBACK_PATH}; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Begins a sign-in at the provider (303 to its authorization endpoint).
#[utoipa::path(get, path = "/api/auth/oidc/start", tag = "auth",
    responses((status = 303, description = "to the provider, or to the login page with `login_error`"),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    crate::extract::ClientIp(ip): crate::extract::ClientIp,
) -> ApiResult<Response> {
    let o = &state.oidc;
    if !o.cfg.enabled() {
        return Err(ApiError::NotFound("identity provider"));
    }
    match o.begin(crate::users::address_key(ip)).await {
        Ok((url, binding)) => Ok((
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, url),
                (
                    header::SET_COOKIE,
                    binding_cookie(&binding, o.cfg.pending_ttl_secs, o.secure),
                ),
            ],
        )
            .into_response()),
        Err(r) => Ok(to_login(&r, o.secure)),
    }
}

/// The provider's redirect back: verifies and starts the staff session (303 to the console),
/// or sends the browser to the login page with the refusal's code.
#[utoipa::path(get, path = "/api/auth/oidc/callback", tag = "auth",
    responses((status = 303, description = "to the console, or to the login page with `login_error`"),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let o = &state.oidc;
    if !o.cfg.enabled() {
        return Err(ApiError::NotFound("identity provider"));
    }
    // Parsed here rather than by an extractor, so that no query is refused outside the
    // login page's codes (a malformed pair is just absent).
    let params: HashMap<String, String> = reqwest::Url::parse("http://callback/")
        .map(|mut u| {
            u.set_query(query.as_deref());
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let binding = auth::cookie(&headers, BINDING_COOKIE);
    let user_id = match o.finish(&state.db, &params, binding.as_deref()).await {
        Ok(id) => id,
        Err(r) => return Ok(to_login(&r, o.secure)),
    };
    let mut tx = crate::db::begin(&state.db).await?;
    let session =
        crate::users::start_session(&mut tx, &state, &user_id.to_string(), now_micros()).await?;
    tx.commit().await?;
    metrics::counter!("inspector_oidc_logins_total").increment(1);
    let mut response = (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/#/list".to_string()),
            (header::SET_COOKIE, session.cookie),
        ],
    )
        .into_response();
    if let Ok(v) = header::HeaderValue::from_str(&binding_cookie("", 0, o.secure)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn oidc(cfg: OidcConfig) -> Oidc {
        Oidc::new(&cfg, "http://127.0.0.1:1").expect("client")
    }

    #[test]
    fn user_names_are_valid_and_fall_back() {
        let c = json!({"preferred_username": "иван.петров@орган.рф", "email": "x@y"});
        assert_eq!(
            username_from(&c, "preferred_username", "i", "s"),
            "иван.петров_орган.рф"
        );
        let c = json!({"email": "anna.k@body.example"});
        assert_eq!(username_from(&c, "preferred_username", "i", "s"), "anna.k");
        let c = json!({"preferred_username": "ab"});
        let u = username_from(&c, "preferred_username", "i", "s");
        assert!(u.starts_with("oidc-") && u.len() == 17, "{u}");
        let long = "x".repeat(300);
        assert_eq!(
            username_from(&json!({}), "preferred_username", "i", &long).len(),
            64
        );
    }

    #[test]
    fn the_strongest_mapped_role_wins_else_the_default_else_refusal() {
        let mut cfg = OidcConfig {
            issuer: Some("http://idp".into()),
            client_id: "c".into(),
            role_claim: Some("groups".into()),
            roles: [
                ("a".to_string(), Role::Admin),
                ("i".to_string(), Role::Inspector),
            ]
            .into_iter()
            .collect(),
            ..OidcConfig::default()
        };
        let o = oidc(cfg.clone());
        assert_eq!(
            o.role_of(&json!({"groups": ["i", "a", "zz"]})).unwrap(),
            Some(Role::Admin)
        );
        assert_eq!(
            o.role_of(&json!({"groups": "i"})).unwrap(),
            Some(Role::Inspector)
        );
        assert!(matches!(
            o.role_of(&json!({"groups": ["zz"]})),
            Err(Refusal::NoRole)
        ));
        assert!(matches!(o.role_of(&json!({})), Err(Refusal::NoRole)));
        cfg.default_role = Some(Role::Reviewer);
        assert_eq!(
            oidc(cfg.clone()).role_of(&json!({})).unwrap(),
            Some(Role::Reviewer)
        );
        cfg.role_claim = None;
        assert_eq!(oidc(cfg).role_of(&json!({"groups": "a"})).unwrap(), None);
    }

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        let ok = OidcConfig {
            issuer: Some("https://idp.example".into()),
            client_id: "inspector".into(),
            ..OidcConfig::default()
        };
        assert!(ok.check().is_ok());
        assert!(OidcConfig::default().check().is_ok());
        let no_password = OidcConfig {
            password_login: false,
            ..OidcConfig::default()
        };
        assert!(no_password.check().is_err(), "nobody could sign in");
        let no_client = OidcConfig {
            client_id: String::new(),
            ..ok.clone()
        };
        assert!(no_client.check().is_err());
        let not_url = OidcConfig {
            issuer: Some("idp.example".into()),
            ..ok
        };
        assert!(not_url.check().is_err());
    }

    #[test]
    fn pending_sign_ins_are_bound_to_their_browser_and_used_once() {
        let o = oidc(OidcConfig {
            issuer: Some("http://idp".into()),
            client_id: "c".into(),
            ..OidcConfig::default()
        });
        o.lock_pending().insert(
            "st".into(),
            Pending {
                addr: "127.0.0.1".into(),
                binding_hash: auth::hash_token("b"),
                nonce: "n".into(),
                verifier: "v".into(),
                begun: Instant::now(),
                begun_unix: 0,
            },
        );
        assert!(matches!(
            o.take_pending("st", None),
            Err(Refusal::StateMismatch)
        ));
        assert!(matches!(
            o.take_pending("st", Some("other")),
            Err(Refusal::StateMismatch)
        ));
        assert!(matches!(
            o.take_pending("xx", Some("b")),
            Err(Refusal::StateUnknown)
        ));
        assert_eq!(o.take_pending("st", Some("b")).unwrap().nonce, "n");
        assert!(matches!(
            o.take_pending("st", Some("b")),
            Err(Refusal::StateUnknown)
        ));
        assert_eq!(o.pending_count(), 0);
    }
}

//! API tokens: how another system of a control body calls the API without a person.
//!
//! An administrator creates a token (`POST /api/tokens`) with scopes, a required expiry (at
//! most [`MAX_LIFETIME_DAYS`] ahead) and the control body it acts in; the secret is answered
//! once and only its SHA-256 is stored ([`crate::auth::hash_token`], as for sessions). A
//! system sends it as `Authorization: Bearer <secret>` on `/api/…` routes.
//!
//! [`gate`] runs on every route: it resolves the token from the database on every call (no
//! cache, so a revocation takes effect at the next call), refuses a route that is not in
//! [`ROUTES`] (deny by default: browser-only endpoints and every endpoint added later stay
//! closed to tokens until listed) or whose scopes the token lacks, and records the call
//! (method, path, status, time) in `api_token_calls`, bounded by age and count per token.
//! A bearer call needs no CSRF header: a browser never attaches the token by itself.
//!
//! The token acts as its own system account (a disabled `users` row that never signs in) with
//! the administrator's role for the handlers' checks; what it reaches is narrowed by its scopes
//! here and by [`crate::inspections::access`], which shows it only the inspections whose
//! responsible inspector belongs to the token's control body (no body: staff of no body).

use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{self, Caller, Role, Staff};
use crate::db::{from_micros, micros, now_micros, RowExt};
use crate::error::{error_response, ApiError, ApiResult, FieldError};
use crate::extract::ApiJson;
use crate::AppState;

/// The longest a token may live.
pub const MAX_LIFETIME_DAYS: i64 = 366;
/// How long calls stay in the log.
pub const CALL_RETENTION_DAYS: i64 = 90;
/// The most calls kept per token (the oldest go first).
pub const MAX_CALLS_PER_TOKEN: i64 = 10_000;
/// Prefix of every secret: lets secret scanners and people recognise one.
pub const SECRET_PREFIX: &str = "insp_";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Scope {
    /// Read inspections, results, acts, prescriptions and recordings' metadata.
    #[serde(rename = "results:read")]
    ResultsRead,
    /// Create and schedule inspections, set their external ids, invite, notify.
    #[serde(rename = "inspections:write")]
    InspectionsWrite,
    /// Manage checklist templates.
    #[serde(rename = "templates:write")]
    TemplatesWrite,
}

impl Scope {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ResultsRead => "results:read",
            Scope::InspectionsWrite => "inspections:write",
            Scope::TemplatesWrite => "templates:write",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "results:read" => Some(Scope::ResultsRead),
            "inspections:write" => Some(Scope::InspectionsWrite),
            "templates:write" => Some(Scope::TemplatesWrite),
            _ => None,
        }
    }
}

use Scope::{InspectionsWrite as W, ResultsRead as R, TemplatesWrite as T};

/// Every route a token may call, with the scopes any one of which suffices (empty: any valid
/// token; these are public anyway). Everything else answers 403 `token_not_allowed`, notably
/// the browser-only endpoints: sign-in and sessions (`/api/auth/*`), the account's own pages
/// (`/api/me/*`), live sockets (`/ws`), invitation, results and business sign-in, the on-site
/// queue, evidence uploads, the act's forming, signing and refusal (a person's acts), personal
/// signing keys, device checks, ratings, users, control bodies, message templates, the full
/// recording, its audio tracks and evidence files, and token management itself.
pub const ROUTES: &[(Method, &str, &[Scope])] = &[
    (Method::GET, "/api/openapi.json", &[]),
    (Method::GET, "/api/signing/ca.pem", &[]),
    (Method::GET, "/api/templates", &[R, W, T]),
    (Method::GET, "/api/templates/{id}", &[R, W, T]),
    (Method::POST, "/api/templates", &[T]),
    (Method::GET, "/api/inspections", &[R, W]),
    (Method::GET, "/api/inspections/{id}", &[R, W]),
    (Method::POST, "/api/inspections", &[W]),
    (Method::PUT, "/api/inspections/{id}/external-ids", &[W]),
    (Method::POST, "/api/inspections/{id}/transition", &[W]),
    (Method::POST, "/api/inspections/{id}/reschedule", &[W]),
    (Method::GET, "/api/inspections/{id}/invitations", &[W]),
    (Method::POST, "/api/inspections/{id}/invitations", &[W]),
    (
        Method::POST,
        "/api/inspections/{id}/invitations/{inv}/revoke",
        &[W],
    ),
    (Method::GET, "/api/inspections/{id}/contacts", &[W]),
    (Method::POST, "/api/inspections/{id}/contacts", &[W]),
    (
        Method::POST,
        "/api/inspections/{id}/contacts/{contact}/remove",
        &[W],
    ),
    (Method::GET, "/api/inspections/{id}/deliveries", &[W]),
    (Method::GET, "/api/inspections/{id}/participants", &[R]),
    (Method::GET, "/api/inspections/{id}/track", &[R]),
    (Method::GET, "/api/inspections/{id}/state", &[R]),
    (Method::GET, "/api/inspections/{id}/events.jsonl", &[R]),
    (
        Method::GET,
        "/api/inspections/{id}/recording/manifest",
        &[R],
    ),
    (
        Method::GET,
        "/api/inspections/{id}/recording/chapters.vtt",
        &[R],
    ),
    (Method::GET, "/api/inspections/{id}/act", &[R]),
    (Method::GET, "/api/inspections/{id}/act.pdf", &[R]),
    (
        Method::GET,
        "/api/inspections/{id}/act/signatures/{file}",
        &[R],
    ),
    (Method::GET, "/api/inspections/{id}/device-checks", &[R]),
    (Method::GET, "/api/prescriptions", &[R]),
    (Method::GET, "/api/prescriptions/{id}", &[R]),
    (Method::GET, "/api/prescriptions/{id}/log.jsonl", &[R]),
    (Method::GET, "/api/prescriptions/{id}/document.pdf", &[R]),
];

/// The scopes a route needs from a token, `None` when tokens may not call it.
pub fn route_scopes(method: &Method, route: &str) -> Option<&'static [Scope]> {
    // A HEAD is answered by the GET handler, so it needs what the GET needs.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    ROUTES
        .iter()
        .find(|(m, r, _)| m == method && *r == route)
        .map(|(_, _, s)| *s)
}

/// What a token grants its calls (carried by the [`Staff`] it acts as).
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// The token.
    pub id: Uuid,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// The control body it acts in (`None`: the staff of no control body).
    pub control_body_id: Option<String>,
}

impl TokenGrant {
    /// Whether the token has this scope.
    pub fn has(&self, s: Scope) -> bool {
        self.scopes.contains(&s)
    }
}

/// The caller a token resolved to; the [`Caller`] extractor takes it from the request's
/// extensions (so bearer calls skip the cookie and CSRF checks).
#[derive(Debug, Clone)]
pub struct TokenCaller(pub Staff);

/// The bearer secret of a request, if it sends one.
fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 9110, 11.1).
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, secret)| secret.trim())
}

/// A refusal of a bearer call, answered in the one error shape.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn refuse(f: Refusal) -> Response {
    let mut r = error_response(f.status, f.code, &f.message);
    if f.status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// A token row as found by its secret.
struct Found {
    id: Uuid,
    user_id: Uuid,
    name: String,
    grant: TokenGrant,
    expires_at: i64,
    revoked_at: Option<i64>,
}

async fn find(state: &AppState, secret: &str) -> ApiResult<Option<Found>> {
    // Longer than any secret we issue: refuse before hashing and looking up.
    if secret.len() > 128 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT id, user_id, name, scopes, control_body_id, expires_at, revoked_at \
         FROM api_tokens WHERE token_hash = $1",
    )
    .bind(auth::hash_token(secret))
    .fetch_optional(&state.db)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let id = r.uuid(0)?;
    let scopes: String = r.col(3)?;
    Ok(Some(Found {
        id,
        user_id: r.uuid(1)?,
        name: r.col(2)?,
        grant: TokenGrant {
            id,
            scopes: scopes.split_whitespace().filter_map(Scope::parse).collect(),
            control_body_id: r.col(4)?,
        },
        expires_at: r.col(5)?,
        revoked_at: r.col(6)?,
    }))
}

/// The middleware of bearer calls (see the module documentation). Requests without a bearer
/// token, and routes outside `/api/`, pass untouched (`/metrics` has its own bearer token).
pub async fn gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let Some(secret) = bearer(&req).map(str::to_string) else {
        return next.run(req).await;
    };
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(500).collect();
    let found = match find(&state, &secret).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let Some(token) = found else {
        tracing::info!(%method, %path, "api token call refused: unknown token");
        return refuse(Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: "token_invalid",
            message: "the bearer token is not known".into(),
        });
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let response = if token.revoked_at.is_some() {
        refuse(Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: "token_revoked",
            message: "the bearer token was revoked".into(),
        })
    } else if token.expires_at <= now_micros() {
        refuse(Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: "token_expired",
            message: "the bearer token has expired".into(),
        })
    } else {
        match route.as_deref().map(|r| route_scopes(&method, r)) {
            // No such route: the fallback answers 404 (it reads no caller).
            None => next.run(req).await,
            Some(None) => refuse(Refusal {
                status: StatusCode::FORBIDDEN,
                code: "token_not_allowed",
                message: "this endpoint is not for API tokens".into(),
            }),
            Some(Some(need)) if !need.is_empty() && !need.iter().any(|s| token.grant.has(*s)) => {
                refuse(Refusal {
                    status: StatusCode::FORBIDDEN,
                    code: "token_scope",
                    message: format!(
                        "the token lacks the scope this endpoint needs ({})",
                        need.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                })
            }
            Some(Some(_)) => {
                req.extensions_mut().insert(TokenCaller(Staff {
                    id: token.user_id,
                    username: format!("api-token:{}", token.id),
                    display_name: token.name.clone(),
                    role: Role::Admin,
                    // Unused: bearer calls are not checked for CSRF (`auth::Caller`).
                    csrf: String::new(),
                    session_hash: String::new(),
                    token: Some(token.grant.clone()),
                }));
                next.run(req).await
            }
        }
    };
    let status = response.status().as_u16();
    tracing::info!(token = %token.id, %method, %path, status, "api token call");
    if let Err(e) = record_call(&state, token.id, method.as_str(), &path, status).await {
        tracing::warn!(error = %e, token = %token.id, "api token call not recorded");
    }
    response
}

/// Every how many calls of a token (in this process) its log is pruned: the first call and
/// then every [`PRUNE_EVERY`]th, so a token holds at most `MAX_CALLS_PER_TOKEN + PRUNE_EVERY - 1`
/// calls, and most calls write two rows instead of also running two deletes.
pub const PRUNE_EVERY: u32 = 100;

/// Whether this call of `token` prunes its log (see [`PRUNE_EVERY`]).
fn prune_due(token: Uuid) -> bool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CALLS: OnceLock<Mutex<HashMap<Uuid, u32>>> = OnceLock::new();
    // Plain counters; a panic elsewhere leaves them usable.
    let mut calls = CALLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let n = calls.entry(token).or_insert(0);
    let due = *n % PRUNE_EVERY == 0;
    *n = n.wrapping_add(1);
    due
}

/// Records one call and keeps the log bounded: calls older than the retention go, and of a
/// token's calls only the newest [`MAX_CALLS_PER_TOKEN`] stay (checked every
/// [`PRUNE_EVERY`] calls).
async fn record_call(
    state: &AppState,
    token: Uuid,
    method: &str,
    path: &str,
    status: u16,
) -> Result<(), sqlx::Error> {
    let now = now_micros();
    let mut tx = crate::db::begin(&state.db).await?;
    sqlx::query(
        "INSERT INTO api_token_calls (id, token_id, at, method, path, status) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(token.to_string())
    .bind(now)
    .bind(method)
    .bind(path)
    .bind(i32::from(status))
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(token.to_string())
        .execute(&mut *tx)
        .await?;
    if !prune_due(token) {
        return tx.commit().await;
    }
    sqlx::query("DELETE FROM api_token_calls WHERE at < $1")
        .bind(now - CALL_RETENTION_DAYS * 24 * 3600 * 1_000_000)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM api_token_calls WHERE token_id = $1 AND at < (SELECT at FROM \
         api_token_calls WHERE token_id = $1 ORDER BY at DESC LIMIT 1 OFFSET $2)",
    )
    .bind(token.to_string())
    .bind(MAX_CALLS_PER_TOKEN - 1)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Routes of this module (administrators with a session only: tokens do not manage tokens).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tokens", get(list).post(create))
        .route("/api/tokens/{id}/revoke", post(revoke))
        .route("/api/tokens/{id}/calls", get(calls))
}

/// An API token as shown (never its secret or hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    /// Id (what its calls are logged by).
    pub id: Uuid,
    /// What the administrator called it (e.g. the system it is for).
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// The control body it acts in (null: the staff of no control body).
    pub control_body_id: Option<Uuid>,
    /// Who created it.
    pub created_by: Uuid,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// When it was revoked.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Its last call.
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A new token's answer: the only time its secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The token.
    pub token: ApiToken,
    /// The secret, for `Authorization: Bearer <secret>`; not stored, not shown again.
    pub secret: String,
}

/// Tokens, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    /// At most 500.
    pub tokens: Vec<ApiToken>,
}

/// New token request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// 1–100 characters.
    pub name: String,
    /// At least one of `results:read`, `inspections:write`, `templates:write`.
    pub scopes: Vec<String>,
    /// Required; in the future, at most 366 days ahead.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The control body it acts in (null: the staff of no control body).
    #[serde(default)]
    pub control_body_id: Option<Uuid>,
}

/// One logged call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenCall {
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// HTTP method.
    pub method: String,
    /// Path (without the query).
    pub path: String,
    /// Answer status.
    pub status: u16,
}

/// A token's calls, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenCalls {
    /// At most 500 (the log keeps more, up to its bounds).
    pub calls: Vec<TokenCall>,
}

/// The administrator of a session (never a token).
fn admin(caller: &Caller) -> ApiResult<&Staff> {
    let s = caller.require(&[Role::Admin])?;
    if s.token.is_some() {
        return Err(ApiError::Forbidden);
    }
    Ok(s)
}

const SELECT: &str = "SELECT id, name, scopes, control_body_id, created_by, created_at, \
    expires_at, revoked_at, last_used_at FROM api_tokens";

fn from_row(r: &sqlx::any::AnyRow) -> ApiResult<ApiToken> {
    let scopes: String = r.col(2)?;
    let body: Option<String> = r.col(3)?;
    Ok(ApiToken {
        id: r.uuid(0)?,
        name: r.col(1)?,
        scopes: scopes.split_whitespace().filter_map(Scope::parse).collect(),
        control_body_id: body
            .map(|b| Uuid::parse_str(&b))
            .transpose()
            .map_err(|e| crate::db::corrupt("token control body", e))?,
        created_by: r.uuid(4)?,
        created_at: r.time(5)?,
        expires_at: r.time(6)?,
        revoked_at: r.opt_time(7)?,
        last_used_at: r.opt_time(8)?,
    })
}

async fn load(state: &AppState, id: Uuid) -> ApiResult<ApiToken> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
        .bind(id.to_string())
        .fetch_optional(&state.db)
        .await?
        .ok_or(ApiError::NotFound("token"))?;
    from_row(&row)
}

/// Lists the tokens (administrators).
#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses((status = 200, body = TokenList), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<TokenList>> {
    admin(&caller)?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} ORDER BY created_at DESC LIMIT 500"
    )))
    .fetch_all(&state.db)
    .await?;
    Ok(Json(TokenList {
        tokens: rows.iter().map(from_row).collect::<ApiResult<_>>()?,
    }))
}

/// Every invalid field of a new token request, with the parsed scopes.
fn check_new(new: &NewToken) -> Result<Vec<Scope>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = new.name.trim();
    if name.is_empty() {
        errors.push(FieldError::new("name", "token_name_required"));
    } else if name.chars().count() > 100 || name.chars().any(char::is_control) {
        errors.push(FieldError::new("name", "token_name_invalid"));
    }
    let mut scopes = Vec::new();
    for s in &new.scopes {
        match Scope::parse(s) {
            Some(s) if !scopes.contains(&s) => scopes.push(s),
            Some(_) => {}
            None => {
                errors.push(FieldError::new("scopes", "scope_unknown"));
                break;
            }
        }
    }
    if new.scopes.is_empty() {
        errors.push(FieldError::new("scopes", "scopes_required"));
    }
    let expires = micros(new.expires_at);
    let now = now_micros();
    if expires <= now {
        errors.push(FieldError::new("expires_at", "expiry_in_past"));
    } else if expires > now + MAX_LIFETIME_DAYS * 24 * 3600 * 1_000_000 {
        errors.push(FieldError::new("expires_at", "expiry_too_far"));
    }
    if errors.is_empty() {
        Ok(scopes)
    } else {
        Err(errors)
    }
}

/// Creates a token (administrators); its secret is in this answer only.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let me = admin(&caller)?;
    let scopes = check_new(&new).map_err(ApiError::Fields)?;
    if let Some(body) = new.control_body_id {
        let exists = sqlx::query("SELECT 1 FROM control_bodies WHERE id = $1")
            .bind(body.to_string())
            .fetch_optional(&state.db)
            .await?;
        if exists.is_none() {
            return Err(ApiError::Fields(vec![FieldError::new(
                "control_body_id",
                "control_body_not_found",
            )]));
        }
    }
    let id = Uuid::new_v4();
    let user_id = Uuid::new_v4();
    let secret = format!("{SECRET_PREFIX}{}", auth::new_token());
    let now = now_micros();
    let body = new.control_body_id.map(|b| b.to_string());
    let mut tx = crate::db::begin(&state.db).await?;
    // The system account: disabled, with a password hash no password matches, so it never
    // signs in; its role passes the handlers' checks, its scopes narrow it (`gate`).
    sqlx::query(
        "INSERT INTO users (id, username, display_name, role, password_hash, disabled, \
         created_at, control_body_id) VALUES ($1, $2, $3, 'admin', '!', 1, $4, $5)",
    )
    .bind(user_id.to_string())
    .bind(format!("api-token:{id}"))
    .bind(new.name.trim())
    .bind(now)
    .bind(&body)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO api_tokens (id, name, token_hash, scopes, control_body_id, user_id, \
         created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id.to_string())
    .bind(new.name.trim())
    .bind(auth::hash_token(&secret))
    .bind(
        scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    )
    .bind(&body)
    .bind(user_id.to_string())
    .bind(me.id.to_string())
    .bind(now)
    .bind(micros(new.expires_at))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(token = %id, by = %me.id, "api token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: load(&state, id).await?,
            secret,
        }),
    ))
}

/// Revokes a token (administrators): its next call is refused (401 `token_revoked`).
#[utoipa::path(post, path = "/api/tokens/{id}/revoke", tag = "tokens", params(("id" = Uuid, Path)),
    responses((status = 200, body = ApiToken), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ApiToken>> {
    let me = admin(&caller)?;
    load(&state, id).await?;
    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now_micros())
        .bind(id.to_string())
        .execute(&state.db)
        .await?;
    tracing::info!(token = %id, by = %me.id, "api token revoked");
    Ok(Json(load(&state, id).await?))
}

/// A token's logged calls, newest first (administrators).
#[utoipa::path(get, path = "/api/tokens/{id}/calls", tag = "tokens", params(("id" = Uuid, Path)),
    responses((status = 200, body = TokenCalls), (status = 404, body = crate::error::ErrorBody)))]
pub async fn calls(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<TokenCalls>> {
    admin(&caller)?;
    load(&state, id).await?;
    let rows = sqlx::query(
        "SELECT at, method, path, status FROM api_token_calls WHERE token_id = $1 \
         ORDER BY at DESC LIMIT 500",
    )
    .bind(id.to_string())
    .fetch_all(&state.db)
    .await?;
    let calls = rows
        .iter()
        .map(|r| {
            Ok(TokenCall {
                at: from_micros(r.col(0)?),
                method: r.col(1)?,
                path: r.col(2)?,
                status: u16::try_from(r.col::<i32>(3)?)
                    .map_err(|e| crate::db::corrupt("call status", e))?,
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(Json(TokenCalls { calls }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_their_scopes_and_unlisted_ones_are_closed() {
        assert_eq!(
            route_scopes(&Method::GET, "/api/inspections/{id}/act"),
            Some(&[Scope::ResultsRead][..])
        );
        assert_eq!(
            route_scopes(&Method::HEAD, "/api/inspections/{id}/act.pdf"),
            Some(&[Scope::ResultsRead][..])
        );
        assert_eq!(route_scopes(&Method::GET, "/api/inspections/{id}/ws"), None);
        assert_eq!(route_scopes(&Method::POST, "/api/auth/login"), None);
        assert_eq!(route_scopes(&Method::GET, "/api/tokens"), None);
        // The same path with another method is another route.
        assert_eq!(route_scopes(&Method::DELETE, "/api/inspections"), None);
        for s in [
            Scope::ResultsRead,
            Scope::InspectionsWrite,
            Scope::TemplatesWrite,
        ] {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
    }
}
